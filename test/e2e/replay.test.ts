import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { startService, tempDir, waitFor, type ServiceHandle } from '../support/service-process';

/**
 * `npm run replay` against a real run: the service (paper, replay candles) takes four signals —
 * one auto-approved and settled, one a person approves, one nobody answers (timed out), one the
 * rules drop — and stops. Replaying that day's journal under the same policy gives the same
 * outcomes (the person's one times out: nobody answers in a replay), the same output every time,
 * and the same output once the candles file has changed or is gone: market data comes from the
 * journal. With `--approve all` the proposal that needed a person settles at the price its
 * approval saw.
 */
const ROOT = path.resolve(import.meta.dirname, '../..');

interface Replayed {
  signalId: string;
  symbol: string;
  side: string;
  state: string;
  notional: number | null;
  reason?: string;
  fill?: { exact: { price: string; quantity: string } };
  original?: { state: string; fillPrice?: string };
}
interface ReplayDocument {
  proposals: Replayed[];
  portfolio: { cash: number; positions: Array<{ symbol: string; exactQuantity: string }> };
}

/** Runs `npm run replay -- …` as a person would; npm prints its banner before the document. */
function npmReplay(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', ['run', 'replay', '--', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function documentOf(stdout: string): { text: string; doc: ReplayDocument } {
  const text = stdout.split('\n').find((l) => l.startsWith('{'));
  if (!text) throw new Error(`no JSON document in the output:\n${stdout}`);
  return { text, doc: JSON.parse(text) as ReplayDocument };
}

describe('npm run replay (real service, then the replay as a child process)', function () {
  this.timeout(180_000);
  let svc: ServiceHandle | undefined;
  let dataDir: string | undefined;

  after(async () => {
    await svc?.kill();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('replays a recorded day with the original outcomes, deterministically, from the journal alone', async () => {
    dataDir = tempDir();
    const candles = path.join(dataDir, 'candles.jsonl');
    const prices: Record<string, number> = { 'KRW-BTC': 100_000_000, 'KRW-ETH': 5_000_000, 'KRW-XRP': 1_000 };
    const writeCandles = (factor: number) => fs.writeFileSync(candles, Object.entries(prices).map(([symbol, close]) => JSON.stringify({
      symbol, time: '2026-11-26T00:00:00Z', open: close * factor, high: close * factor, low: close * factor, close: close * factor, volume: 10,
    })).join('\n'));
    writeCandles(1);
    svc = await startService({
      dataDir,
      env: { MARKET_DATA_SOURCE: 'replay', MARKET_DATA_REPLAY_FILE: candles, APPROVAL_TIMEOUT_SECONDS: '4', WEBHOOK_RATE_LIMIT_PER_MINUTE: '0' },
    });
    const s = svc;
    const signal = async (body: Record<string, string>) => {
      const res = await fetch(`${s.url}/webhook/tradingview`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ secret: 'test-webhook-secret-0123456789', confidence: '0.9', ...body }),
      });
      expect(res.status).to.equal(202);
      const { signalId } = (await res.json()) as { signalId: string };
      return waitFor(async () => {
        const r = (await s.api('GET', `/api/signals/${signalId}`)).body;
        return r.status === 'received' ? undefined : r as { id: string; status: string; proposalId?: string; reason?: string };
      }, 'the signal to be processed', 20_000);
    };
    const proposal = (id: string, states: string[]) => waitFor(async () => {
      const p = (await s.api('GET', `/api/proposals/${id}`)).body;
      return states.includes(p.state) ? p : undefined;
    }, `${id} to be ${states.join(' or ')}`, 20_000);
    const final = ['settled', 'rejected', 'timed-out', 'failed'];

    // Within APPROVAL_AUTO_MAX_NOTIONAL (100 000) at confidence 0.9: approved by policy.
    const auto = await signal({ id: 'auto', ticker: 'UPBIT:BTCKRW', action: 'buy', size: '50000' });
    const autoDone = await proposal(auto.proposalId!, final);
    expect(autoDone.state).to.equal('settled');
    // Larger: a person must approve; one does.
    const person = await signal({ id: 'person', ticker: 'UPBIT:ETHKRW', action: 'buy', size: '300000' });
    await proposal(person.proposalId!, ['awaiting-approval']);
    expect((await s.api('POST', `/api/proposals/${person.proposalId}/approve`, { by: 'alice' })).status).to.equal(200);
    const personDone = await proposal(person.proposalId!, final);
    expect(personDone.state).to.equal('settled');
    // Needs a person; nobody answers.
    const nobody = await signal({ id: 'nobody', ticker: 'UPBIT:XRPKRW', action: 'buy', size: '200000' });
    // BTC is held and adding to a position is off: the rules drop it.
    const dropped = await signal({ id: 'dropped', ticker: 'UPBIT:BTCKRW', action: 'buy', size: '50000' });
    expect(dropped.status).to.equal('dropped');
    expect(dropped.reason).to.equal('duplicate_position');
    const nobodyDone = await proposal(nobody.proposalId!, final);
    expect(nobodyDone.state).to.equal('timed-out');
    expect(await svc.stop()).to.equal(0);
    svc = undefined;

    // The day's journal (the days', if the run crossed midnight UTC).
    const journalDir = path.join(dataDir, 'journal');
    const files = fs.readdirSync(journalDir).filter((f) => /^\d{4}-\d{2}-\d{2}\.jsonl$/.test(f)).sort().map((f) => path.join(journalDir, f));
    const env = { ...s.env };
    const replay = async (approve: string) => {
      const run = await npmReplay([...files, '--approve', approve, '--json'], env);
      expect(run.code, run.stderr).to.equal(0);
      return documentOf(run.stdout);
    };

    const policy = await replay('policy');
    const byId = new Map(policy.doc.proposals.map((p) => [p.signalId, p]));
    expect(policy.doc.proposals.map((p) => p.signalId)).to.deep.equal([auto.id, person.id, nobody.id, dropped.id]);
    // Decided by policy, by the deadline and by the rules: as in the original run.
    expect(byId.get(auto.id)).to.include({ symbol: 'BTC/KRW', side: 'buy', state: 'settled', notional: 50_000 });
    expect(byId.get(auto.id)!.fill!.exact.price).to.equal(autoDone.fill.exact.price);
    expect(byId.get(nobody.id)).to.include({ symbol: 'XRP/KRW', state: 'timed-out', notional: 200_000 });
    expect(byId.get(dropped.id)).to.include({ state: 'dropped', reason: 'duplicate_position', notional: null });
    // The person's approval is not replayed: under the policy alone it times out.
    expect(byId.get(person.id)).to.include({ symbol: 'ETH/KRW', state: 'timed-out' });
    // Each entry says what the original run did.
    expect(policy.doc.proposals.map((p) => p.original?.state)).to.deep.equal(['settled', 'settled', 'timed-out', 'dropped']);
    expect(policy.doc.portfolio.positions.map((p) => [p.symbol, p.exactQuantity])).to.deep.equal([['BTC/KRW', autoDone.fill.exact.quantity]]);

    // Deterministic, and from the records: the same output again with other candles, and without any.
    writeCandles(2);
    expect((await replay('policy')).text).to.equal(policy.text);
    fs.rmSync(candles);
    expect((await replay('policy')).text).to.equal(policy.text);

    // Everyone says yes: the person's proposal settles at the price its approval saw, and so does the unanswered one.
    const all = await replay('all');
    const allById = new Map(all.doc.proposals.map((p) => [p.signalId, p]));
    expect(allById.get(person.id)!.state).to.equal('settled');
    expect(allById.get(person.id)!.fill!.exact.price).to.equal(personDone.fill.exact.price);
    expect(allById.get(nobody.id)!.state).to.equal('settled');
    expect(allById.get(auto.id)!.state).to.equal('settled');
    expect(allById.get(dropped.id)!.state).to.equal('dropped');
  });

  // Bad flags are refused by the same argument parser (test/replay/report.test.ts).
  it('refuses a missing file with a message and a non-zero exit', async () => {
    const env = { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', DATA_DIR: tempDir() };
    try {
      const missing = await npmReplay(['/nonexistent/2026-11-26.jsonl', '--json'], env);
      expect(missing.code).to.equal(2);
      expect(missing.stderr).to.include('replay: cannot read /nonexistent/2026-11-26.jsonl: no such file');
      expect(missing.stdout).not.to.include('{');
    } finally {
      fs.rmSync(env.DATA_DIR, { recursive: true, force: true });
    }
  });
});
