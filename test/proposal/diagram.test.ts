import fs from 'node:fs';
import { expect } from 'chai';
import { mermaidDiagram } from '../../src/proposal/diagram';
import { LIFECYCLE_DOC, REGENERATE, diagramInDoc, withDiagram } from '../../scripts/diagram';
import { PROPOSAL_STATES } from '../../machines/proposal.machine';

describe('proposal diagram', () => {
  it('is what docs/proposal-lifecycle.md shows (fails when the machine changes and the doc does not)', () => {
    const inDoc = diagramInDoc(fs.readFileSync(LIFECYCLE_DOC, 'utf8'));
    expect(inDoc, 'docs/proposal-lifecycle.md has a ```mermaid block').to.be.a('string');
    expect(inDoc, `docs/proposal-lifecycle.md does not match machines/proposal.machine.ts; regenerate it with: ${REGENERATE}`).to.equal(mermaidDiagram());
  });

  it('names every state of the machine', () => {
    const diagram = mermaidDiagram();
    for (const state of PROPOSAL_STATES) expect(diagram).to.match(new RegExp(`\\b${state.replace(/-/g, '_')}\\b`));
  });

  it('replaces only the mermaid block when regenerating', () => {
    const doc = 'intro\n\n```mermaid\nstale\n```\n\nafter $& $1\n';
    expect(withDiagram(doc, 'fresh\n')).to.equal('intro\n\n```mermaid\nfresh\n```\n\nafter $& $1\n');
    expect(() => withDiagram('no block', 'x\n')).to.throw(/no ```mermaid block/);
  });
});
