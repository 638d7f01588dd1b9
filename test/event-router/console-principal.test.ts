import fs from 'node:fs';
import { expect } from 'chai';
import { readJournal, startService, waitFor, type ServiceHandle } from '../support/service-process';

/** A stand-in for the few DOM calls the console's script makes. */
interface Node { textContent: string; value: string; children: Node[]; onclick?: () => unknown; onsubmit?: (e: unknown) => unknown; appendChild(c: Node): Node; replaceChildren(): void }
const node = (): Node => ({
  textContent: '', value: '', children: [],
  appendChild(c) { this.children.push(c); return c; },
  replaceChildren() { this.children = []; },
});
const find = (n: Node, text: string): Node | undefined => (n.textContent === text ? n : n.children.map((c) => find(c, text)).find(Boolean));

/**
 * The console's own script (served by GET /), run against the real service with a stand-in for the DOM:
 * decisions are made as the token's principal, and only the shared API_TOKEN asks for a name.
 */
describe('operator console: decisions as the token\'s principal', function () {
  this.timeout(60_000);
  const ALICE = 'alice-operator-token-0123456789';
  let svc: ServiceHandle;
  before(async () => { svc = await startService({ env: { OPERATOR_TOKENS: `alice:${ALICE}` } }); });
  after(async () => { await svc.kill(); fs.rmSync(svc.dataDir, { recursive: true, force: true }); });

  async function runConsole(token: string, answer: string): Promise<{ elements: Map<string, Node>; prompts: string[] }> {
    const html = await (await fetch(`${svc.url}/`)).text();
    const script = /<script>([\s\S]*)<\/script>/.exec(html)![1]!;
    const elements = new Map<string, Node>();
    const prompts: string[] = [];
    const document = { getElementById: (id: string) => elements.get(id) ?? elements.set(id, node()).get(id)!, createElement: () => node() };
    const run = new Function('document', 'fetch', 'prompt', 'sessionStorage', 'setInterval', script) as (...args: unknown[]) => void;
    run(document, (p: string, o: RequestInit) => fetch(`${svc.url}${p}`, o), (q: string) => { prompts.push(q); return answer; },
      { getItem: () => token, setItem: () => undefined }, () => 0);
    return { elements, prompts };
  }

  /** A buy that waits for a person (low confidence), in a symbol not yet held. */
  async function pendingProposal(symbol: string): Promise<string> {
    const res = await svc.api('POST', '/api/signals', { symbol, action: 'buy', price: 5_000_000, size: 50_000, confidence: 0.5 });
    return waitFor(async () => {
      const s = (await svc.api('GET', `/api/signals/${res.body.signalId}`)).body;
      return s.proposalId && (await svc.api('GET', `/api/proposals/${s.proposalId}`)).body.state === 'awaiting-approval' ? s.proposalId as string : undefined;
    }, 'a proposal awaiting approval');
  }

  async function approveInConsole(token: string, answer: string, symbol: string): Promise<{ id: string; prompts: string[] }> {
    const id = await pendingProposal(symbol);
    const c = await runConsole(token, answer);
    const approve = await waitFor(() => find(c.elements.get('pending') ?? node(), 'Approve'), 'the Approve button');
    await approve.onclick!();
    await waitFor(async () => ((await svc.api('GET', `/api/proposals/${id}`)).body.approvals.length > 0 ? true : undefined), 'the approval');
    return { id, prompts: c.prompts };
  }

  it('a named token approves and pauses as its name, without asking for one', async () => {
    const { id, prompts } = await approveInConsole(ALICE, 'mallory', 'KRW-ETH');
    expect(prompts).to.deep.equal([]);
    expect((await svc.api('GET', `/api/proposals/${id}`)).body.approvals.map((a: { by: string }) => a.by)).to.deep.equal(['alice']);
    const c = await runConsole(ALICE, 'mallory');
    await c.elements.get('pause')!.onclick!();
    await waitFor(() => readJournal(svc.dataDir).find((r) => r['type'] === 'state.changed' && r['change'] === 'paused'), 'the pause');
    expect(readJournal(svc.dataDir).filter((r) => r['change'] === 'paused').map((r) => r['by'])).to.deep.equal(['alice']);
    await c.elements.get('resume')!.onclick!();
    expect(c.prompts).to.deep.equal([]);
  });

  it('the shared API_TOKEN asks for a name once and records it as the label of principal api', async () => {
    const { id, prompts } = await approveInConsole(svc.token, 'carol', 'KRW-XRP');
    expect(prompts).to.have.length(1);
    const approvals = (await svc.api('GET', `/api/proposals/${id}`)).body.approvals as Array<{ by: string; label?: string }>;
    expect(approvals.map((a) => [a.by, a.label])).to.deep.equal([['api', 'carol']]);
  });
});
