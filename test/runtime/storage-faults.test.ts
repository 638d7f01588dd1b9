/**
 * Every write point of the whole service fails in turn. The real service runs in this process
 * on a fault-injecting file layer; a scenario (a signal, its proposal, an approval, the fill)
 * is driven over HTTP as a client would, retrying what was refused. For each write point and
 * each of ENOSPC, EROFS and EIO:
 * - every 2xx is covered by what is on disk at that moment (no acknowledgement without a
 *   durable record);
 * - after the fault, what the service shows equals what its files hold (memory equals disk);
 * - after recovery and a restart, the proposal settled with exactly one order at the venue and
 *   one fill in the journal (no second order).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { startService, type RunningService } from '../../src/main';
import { FAULT_CODES, FaultyIo, type FaultCode, type FaultEffect } from '../fakes/faulty-io';
import { paperVenueOrders, readLogStore } from '../support/store-files';
import { readJournal, waitFor, writeCandles } from '../support/service-process';

const TOKEN = 'fault-test-token-0123456789abcdef';
const MANUAL_BUY = { symbol: 'KRW-BTC', action: 'buy', confidence: 0.5, size: 50_000 };

interface Run {
  service: RunningService;
  io: FaultyIo;
  url: string;
  dir: string;
}

async function launch(dir: string, candles: string): Promise<Run> {
  let io!: FaultyIo;
  const service = await startService({
    DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1', API_TOKEN: TOKEN, WEBHOOK_SECRET: 'fault-test-secret-0123456789',
    LOG_LEVEL: 'error', MARKET_DATA_SOURCE: 'replay', MARKET_DATA_REPLAY_FILE: candles, DAILY_SUMMARY: 'false',
  }, {
    storageIo: (observer) => (io = new FaultyIo(observer)),
    storageProbeIntervalMs: 20,
    consoleLog: false,
  });
  const address = service.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { service, io, url: `http://127.0.0.1:${port}`, dir };
}

async function api(run: Run, method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${run.url}${p}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: await res.json() };
}

/** Calls until the answer is not a 503 (a client retrying after storage_unavailable). */
async function untilAccepted(run: Run, method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
  return waitFor(async () => {
    const res = await api(run, method, p, body);
    if (res.status === 503) {
      expect(res.body.error).to.equal('storage_unavailable');
      return undefined;
    }
    return res;
  }, `${method} ${p} to be accepted`);
}

/** Signal records on disk (every status line), by signal id. */
function signalLines(dir: string, id: string): Array<Record<string, unknown>> {
  const folder = path.join(dir, 'journal', 'signals');
  if (!fs.existsSync(folder)) return [];
  return fs.readdirSync(folder).filter((f) => f.endsWith('.jsonl'))
    .flatMap((f) => fs.readFileSync(path.join(folder, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>))
    .filter((r) => r['id'] === id);
}

/** The proposal as its files hold it: the live store's snapshot, or the archive. */
function onDisk(dir: string, id: string): { state: string; approvals: string[] } | undefined {
  const live = readLogStore(path.join(dir, 'proposals')).get(id) as { snapshot: { value: string; context: { approvals: Array<{ by: string }> } } } | undefined;
  if (live) return { state: live.snapshot.value, approvals: live.snapshot.context.approvals.map((a) => a.by) };
  const folder = path.join(dir, 'journal', 'proposals');
  if (!fs.existsSync(folder)) return undefined;
  for (const f of fs.readdirSync(folder).filter((n) => n.endsWith('.jsonl'))) {
    for (const line of fs.readFileSync(path.join(folder, f), 'utf8').split('\n').filter(Boolean)) {
      const p = (JSON.parse(line) as { proposal: { id: string; state: string; approvals: Array<{ by: string }> } }).proposal;
      if (p.id === id) return { state: p.state, approvals: p.approvals.map((a) => a.by) };
    }
  }
  return undefined;
}

describe('storage faults at every write point (in-process service, fault-injecting file layer)', function () {
  this.timeout(600_000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'chatops-faults-'));
  const candles = writeCandles(tmp, { 'KRW-BTC': 100_000_000 });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** Runs the scenario; with `fault`, the write point `at` (counted from ready) fails once. */
  async function scenario(fault?: { at: number; code: FaultCode }): Promise<{ points: number; detail: string }> {
    const dir = fs.mkdtempSync(path.join(tmp, 'run-'));
    let run = await launch(dir, candles);
    try {
      const start = run.io.count;
      // What each kind of failure leaves: a short write on a full disk, nothing on a read-only
      // one, and an I/O error reported after the data reached the file.
      const effect: Record<FaultCode, FaultEffect> = { ENOSPC: 'partial', EROFS: 'none', EIO: 'done' };
      if (fault) run.io.failAt(start + fault.at, fault.code, { effect: effect[fault.code] });
      const detail = fault ? `fault ${fault.code} at write point ${fault.at}` : 'no fault';

      const ack = await untilAccepted(run, 'POST', '/api/signals', MANUAL_BUY);
      expect(ack.status, detail).to.equal(202);
      const signalId = ack.body.signalId as string;
      expect(signalLines(dir, signalId), `202 covered by the signal record on disk; ${detail}`).to.not.have.length(0);

      const id = signalId.replace(/^sig-/, 'p-');
      await waitFor(async () => ((await api(run, 'GET', `/api/proposals/${id}`)).body.state === 'awaiting-approval' ? true : undefined), `the proposal to wait; ${detail}`, 20_000);
      const approve = await untilAccepted(run, 'POST', `/api/proposals/${id}/approve`, { by: 'alice' });
      expect(approve.status, `${detail}: ${JSON.stringify(approve.body)}`).to.equal(200);
      expect(onDisk(dir, id)?.approvals, `200 covered by the approval on disk; ${detail}`).to.include('api');

      await waitFor(async () => ((await api(run, 'GET', `/api/proposals/${id}`)).body.state === 'settled' ? true : undefined), `the proposal to settle; ${detail}`, 20_000);
      await waitFor(() => (onDisk(dir, id)?.state === 'settled' ? true : undefined), `the settled proposal on disk; ${detail}`);
      // Memory equals disk: the book the service shows is the venue's store.
      const shown = (await api(run, 'GET', '/api/portfolio')).body as { positions: Array<{ symbol: string; quantity: number }> };
      const stored = readLogStore(path.join(dir, 'paper-venue')).get('portfolio') as { positions: Record<string, { quantity: string }> };
      expect(Object.fromEntries(shown.positions.map((p) => [p.symbol, p.quantity])), detail)
        .to.deep.equal(Object.fromEntries(Object.entries(stored.positions).map(([s, p]) => [s, Number(p.quantity)])));
      const points = run.io.count - start;

      await run.service.stop();
      run = await launch(dir, candles);
      expect((await api(run, 'GET', `/api/proposals/${id}`)).body.state, `settled after restart; ${detail}`).to.equal('settled');
      expect(paperVenueOrders(dir).filter((o) => o.clientOrderId.startsWith(`ct-${id}`)), `one order; ${detail}`).to.have.length(1);
      expect(readJournal(dir).filter((r) => r['type'] === 'order.filled' && r['proposalId'] === id), `one fill in the journal; ${detail}`).to.have.length(1);
      return { points, detail };
    } finally {
      await run.service.stop();
    }
  }

  it('keeps every promise when each write point of signal → approval → fill fails in turn with ENOSPC, EROFS and EIO', async () => {
    const { points } = await scenario();
    expect(points, 'the scenario has write points to fail').to.be.greaterThan(5);
    let failedRuns = 0;
    for (let at = 1; at <= points; at++) {
      for (const code of FAULT_CODES) {
        await scenario({ at, code });
        failedRuns += 1;
      }
    }
    expect(failedRuns).to.equal(points * FAULT_CODES.length);
    process.stdout.write(`      ${points} write points × ${FAULT_CODES.length} faults = ${failedRuns} runs\n`);
  });
});
