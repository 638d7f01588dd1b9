/**
 * `npx tsx scripts/diagram.ts [--write | --check]`: the proposal machine's Mermaid diagram, as
 * `GET /api/machines/proposal` returns it. Without a flag it is printed; `--write` puts it into the
 * mermaid block of docs/proposal-lifecycle.md; `--check` exits 1 when that block is out of date.
 */
import fs from 'node:fs';
import path from 'node:path';
import { mermaidDiagram } from '../src/proposal/diagram';

export const LIFECYCLE_DOC = path.resolve(import.meta.dirname, '../docs/proposal-lifecycle.md');
export const REGENERATE = 'npx tsx scripts/diagram.ts --write';

const BLOCK = /```mermaid\n([\s\S]*?)```/;

/** The text of the doc's (first) mermaid block, or null when it has none. */
export function diagramInDoc(doc: string): string | null {
  return BLOCK.exec(doc)?.[1] ?? null;
}

/** The doc with its mermaid block replaced by `diagram`. */
export function withDiagram(doc: string, diagram: string): string {
  if (!BLOCK.test(doc)) throw new Error(`${LIFECYCLE_DOC} has no \`\`\`mermaid block to replace`);
  return doc.replace(BLOCK, () => `\`\`\`mermaid\n${diagram}\`\`\``);
}

function main(argv: string[]): number {
  const diagram = mermaidDiagram();
  const flag = argv[0];
  if (flag === undefined) {
    process.stdout.write(diagram);
    return 0;
  }
  const doc = fs.readFileSync(LIFECYCLE_DOC, 'utf8');
  if (flag === '--check') {
    if (diagramInDoc(doc) === diagram) return 0;
    process.stderr.write(`${path.relative(process.cwd(), LIFECYCLE_DOC)} does not match the machine; run: ${REGENERATE}\n`);
    return 1;
  }
  if (flag === '--write') {
    const next = withDiagram(doc, diagram);
    if (next !== doc) fs.writeFileSync(LIFECYCLE_DOC, next);
    process.stdout.write(`${path.relative(process.cwd(), LIFECYCLE_DOC)} ${next === doc ? 'already matches' : 'updated'}\n`);
    return 0;
  }
  process.stderr.write('usage: npx tsx scripts/diagram.ts [--write | --check]\n');
  return 2;
}

const isEntryPoint = process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname);
if (isEntryPoint) process.exitCode = main(process.argv.slice(2));
