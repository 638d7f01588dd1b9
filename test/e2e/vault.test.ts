import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { readJournalRecords, recountJournal } from '../../src/journal/ledger';
import { noteLinks, parseFrontMatter, type Yaml } from '../support/front-matter';
import { startService, tempDir, waitFor, writeCandles, type ServiceHandle } from '../support/service-process';

const ROOT = path.resolve(import.meta.dirname, '../..');
const TSX_LOADER = pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;

/** Runs `npm run vault -- <args>` as npm would (node + tsx), in the service's environment. */
function runVault(env: Record<string, string>, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', TSX_LOADER, path.join(ROOT, 'scripts/vault.ts'), ...args], { cwd: env['DATA_DIR'], env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    child.once('exit', (code) => resolve({ code, out }));
  });
}

/** Every file under `root`: relative path → bytes. */
function tree(root: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(path.relative(root, p), fs.readFileSync(p));
    }
  };
  walk(root);
  return out;
}

/**
 * The vault through a real process (paper venue, replay candles): a settled buy and the exit
 * that closes it (PnL once closed), an operator's rejection, a time-out and a venue's refusal
 * each get a note, the day gets a note linking them, and once the service stops a rebuild from
 * the journal alone writes the same bytes. A rebuild is refused while the service runs.
 */
describe('vault notes (real process)', function () {
  this.timeout(120_000);
  let svc: ServiceHandle | undefined;

  after(async () => {
    await svc?.kill();
    if (svc) fs.rmSync(svc.dataDir, { recursive: true, force: true });
  });

  const STRATEGY = 'evil]] [[x]] <b>bold</b> #tag';

  async function propose(body: Record<string, unknown>): Promise<string> {
    const res = await svc!.api('POST', '/api/signals', { confidence: 0.9, ...body });
    expect(res.status, JSON.stringify(res.body)).to.equal(202);
    const signal = await waitFor(async () => {
      const s = (await svc!.api('GET', `/api/signals/${res.body.signalId}`)).body;
      return s.status === 'received' ? undefined : s;
    }, 'the signal to be processed', 20_000);
    expect(signal.status, JSON.stringify(signal)).to.equal('proposed');
    return signal.proposalId as string;
  }
  const stateOf = (id: string, states: string[]) => waitFor(async () => {
    const p = (await svc!.api('GET', `/api/proposals/${id}`)).body;
    return states.includes(p.state) ? p : undefined;
  }, `${id} to reach ${states.join(' or ')}`, 30_000);
  const FINAL = ['settled', 'rejected', 'timed-out', 'failed'];

  /** The note of `id` once it shows `state`, wherever its day put it. */
  const noteOf = (id: string, check: (data: Record<string, Yaml>) => boolean = () => true) => waitFor(() => {
    const dir = path.join(svc!.dataDir, 'vault', 'proposals');
    if (!fs.existsSync(dir)) return undefined;
    for (const day of fs.readdirSync(dir)) {
      const file = path.join(dir, day, `${id}.md`);
      if (!fs.existsSync(file)) continue;
      const text = fs.readFileSync(file, 'utf8');
      const note = parseFrontMatter(text);
      return check(note.data) ? { ...note, text } : undefined;
    }
    return undefined;
  }, `the vault note of ${id}`, 15_000);

  it('writes a note per finished proposal and per day, and a rebuild from the journal gives the same files', async () => {
    const dataDir = tempDir();
    const candles = writeCandles(dataDir, { 'KRW-BTC': 100_000_000, 'KRW-ETH': 5_000_000 }, '.candles.jsonl');
    svc = await startService({
      dataDir,
      env: { MARKET_DATA_REPLAY_FILE: candles, APPROVAL_TIMEOUT_SECONDS: '5', PAPER_MIN_ORDER_NOTIONAL: '5000', PAPER_SLIPPAGE_PCT: '0.1' },
    });

    // Settled: a buy an operator approves, then the exit that closes the position.
    const buyId = await propose({ symbol: 'KRW-BTC', action: 'buy', size: 500_000, strategy: STRATEGY });
    await stateOf(buyId, ['awaiting-approval', ...FINAL]);
    expect((await svc.api('POST', `/api/proposals/${buyId}/approve`, { by: 'alice' })).status).to.equal(200);
    const buy = await stateOf(buyId, FINAL);
    expect(buy.state, JSON.stringify(buy.outcome)).to.equal('settled');
    const exitId = await propose({ symbol: 'KRW-BTC', action: 'exit' });
    await stateOf(exitId, ['awaiting-approval', ...FINAL]);
    expect((await svc.api('POST', `/api/proposals/${exitId}/approve`, { by: 'bob' })).status).to.equal(200);
    expect((await stateOf(exitId, FINAL)).state).to.equal('settled');
    // Rejected by an operator.
    const rejectId = await propose({ symbol: 'KRW-ETH', action: 'buy', size: 300_000 });
    await stateOf(rejectId, ['awaiting-approval', ...FINAL]);
    expect((await svc.api('POST', `/api/proposals/${rejectId}/reject`, { by: 'carol', reason: 'not [[today]]' })).status).to.equal(200);
    // Failed: the paper venue refuses an order below its minimum (small enough to need no person).
    const failId = await propose({ symbol: 'KRW-ETH', action: 'buy', size: 4000 });
    // Timed out: nobody answers within APPROVAL_TIMEOUT_SECONDS.
    const timeoutId = await propose({ symbol: 'KRW-ETH', action: 'buy', size: 200_000 });
    expect((await stateOf(rejectId, FINAL)).state).to.equal('rejected');
    expect((await stateOf(failId, FINAL)).state).to.equal('failed');
    expect((await stateOf(timeoutId, FINAL)).state).to.equal('timed-out');

    const ledger = recountJournal(readJournalRecords(path.join(svc.dataDir, 'journal')));
    expect(ledger.errors).to.deep.equal([]);
    expect(ledger.positions).to.deep.equal({});

    const buyNote = await noteOf(buyId, (d) => d['pnl'] !== null);
    expect(buyNote.data).to.include({ id: buyId, signalId: buy.signalId, clientOrderId: buy.clientOrderId, symbol: 'BTC/KRW', side: 'buy', state: 'settled', venue: 'paper', quoteCurrency: 'KRW', notional: '500000' });
    expect(buyNote.data['approvers']).to.deep.equal([{ principal: 'api', label: 'alice', at: buy.approvals[0].at, sizeFactor: 1 }]);
    expect(buyNote.data['fill']).to.deep.include({ quantity: buy.fill.exact.quantity, price: buy.fill.exact.price, fee: buy.fill.exact.fee, notional: buy.fill.exact.notional });
    const pnl = buyNote.data['pnl'] as { positionClosed: boolean; roundTrip: { realized: string; sells: string[] } };
    expect(pnl.positionClosed).to.equal(true);
    expect(pnl.roundTrip.realized).to.equal(ledger.realizedPnl);
    expect(pnl.roundTrip.sells).to.deep.equal([`[[${exitId}]]`]);
    // The strategy's text is in the reasons, and makes no link or HTML.
    expect(buyNote.body).to.contain('evil\\]\\] \\[\\[x\\]\\] \\<b\\>bold\\</b\\> \\#tag');
    expect(noteLinks(buyNote.text).filter((l) => ![buyId, exitId].includes(l) && !/^\d{4}-\d{2}-\d{2}$/.test(l))).to.deep.equal([]);

    const exitNote = await noteOf(exitId);
    expect(exitNote.data).to.include({ side: 'sell', state: 'settled' });
    expect((exitNote.data['pnl'] as { realized: string }).realized).to.equal(ledger.realizedPnl);
    const rejectNote = await noteOf(rejectId);
    expect(rejectNote.data).to.include({ state: 'rejected', fill: null });
    expect(rejectNote.data['outcome']).to.deep.include({ by: 'api' });
    expect((rejectNote.data['outcome'] as { reason: string }).reason).to.contain('not [ [today] ]');
    const timeoutNote = await noteOf(timeoutId);
    expect(timeoutNote.data).to.include({ state: 'timed-out' });
    expect((timeoutNote.data['history'] as Array<{ state: string }>).map((h) => h.state)).to.include('awaiting-approval');
    const failNote = await noteOf(failId);
    expect(failNote.data).to.include({ state: 'failed', venue: 'paper' });
    expect(JSON.stringify(failNote.data['outcome'])).to.contain('below_minimum');

    // The day's note (two, if the test ran over midnight UTC) links every proposal and sums them.
    const ids = [buyId, exitId, rejectId, failId, timeoutId];
    const daily = await waitFor(() => {
      const dir = path.join(svc!.dataDir, 'vault', 'daily');
      const notes = fs.existsSync(dir) ? fs.readdirSync(dir).map((f) => fs.readFileSync(path.join(dir, f), 'utf8')) : [];
      const linked = notes.flatMap(noteLinks);
      return ids.every((id) => linked.includes(id)) ? notes : undefined;
    }, 'the daily note to link every proposal');
    if (daily.length === 1) {
      const { data } = parseFrontMatter(daily[0]!);
      expect(data).to.include({ proposals: 5, fills: 2, realizedPnl: ledger.realizedPnl });
      expect(data['states']).to.deep.equal({ settled: 2, rejected: 1, 'timed-out': 1, failed: 1 });
      expect(data['approvals']).to.deep.equal([{ principal: 'api', label: 'alice', count: 1 }, { principal: 'api', label: 'bob', count: 1 }]);
    }

    // While the service runs, it writes the vault: a rebuild in place is refused, naming it.
    const refused = await runVault(svc.env, ['--rebuild']);
    expect(refused.code, refused.out).to.equal(1);
    expect(refused.out).to.contain(`in use by process ${svc.child.pid}`).and.contain('--out');

    expect(await svc.stop()).to.equal(0);
    const live = tree(path.join(svc.dataDir, 'vault'));
    const rebuilt = await runVault(svc.env, ['--rebuild']);
    expect(rebuilt.code, rebuilt.out).to.equal(0);
    expect(rebuilt.out).to.contain('5 proposal notes');
    const again = tree(path.join(svc.dataDir, 'vault'));
    expect([...again.keys()].sort()).to.deep.equal([...live.keys()].sort());
    for (const [file, bytes] of live) expect(again.get(file)!.equals(bytes), `${file} is the same after the rebuild`).to.equal(true);
  });
});
