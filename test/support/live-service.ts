/**
 * What the live end-to-end tests (Upbit, Freqtrade, KIS) share: a signal taken to a person's
 * approval and to its end, and `npm run ledger` on a stopped service's DATA_DIR.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { startService, waitFor, type ServiceHandle } from './service-process';

export interface FinishedProposal {
  id: string;
  state: string;
  intent?: string;
  order?: { dryRun?: boolean; simulatedByVenue?: boolean; venue: string; exact?: { filledQuantity: string } };
  outcome?: { code: string; reason?: string };
}

const FINAL = ['settled', 'failed', 'rejected', 'timed-out'];

/** The proposal of a signal, once it asks a person (live mode asks for every entry and exit). */
export async function proposalAwaitingApproval(svc: ServiceHandle, signal: Record<string, unknown>): Promise<string> {
  const sent = await svc.api('POST', '/api/signals', signal);
  expect(sent.status, JSON.stringify(sent.body)).to.equal(202);
  const id = await waitFor(async () => {
    const s = (await svc.api('GET', `/api/signals/${sent.body.signalId}`)).body;
    if (s.status === 'dropped') throw new Error(`dropped: ${s.reason}`);
    return s.proposalId as string | undefined;
  }, 'the proposal');
  await waitFor(async () => {
    const p = (await svc.api('GET', `/api/proposals/${id}`)).body;
    if (FINAL.includes(p.state)) throw new Error(`ended ${p.state} before approval: ${JSON.stringify(p.outcome)}`);
    return p.state === 'awaiting-approval' ? true : undefined;
  }, 'a person to be asked (live mode)');
  return id;
}

/** Waits for a proposal to end. */
export function finished(svc: ServiceHandle, id: string, timeoutMs = 30_000): Promise<FinishedProposal> {
  return waitFor(async () => {
    const p = (await svc.api('GET', `/api/proposals/${id}`)).body;
    return FINAL.includes(p.state) ? p as FinishedProposal : undefined;
  }, `proposal ${id} to finish`, timeoutMs);
}

/** A signal approved by `ops`, followed to its end. */
export async function approvedSignal(svc: ServiceHandle, signal: Record<string, unknown>, timeoutMs?: number): Promise<FinishedProposal> {
  const id = await proposalAwaitingApproval(svc, signal);
  const approved = await svc.api('POST', `/api/proposals/${id}/approve`, { by: 'ops' });
  expect(approved.status, JSON.stringify(approved.body)).to.equal(200);
  return finished(svc, id, timeoutMs);
}

/** `npm run ledger` on a stopped service's DATA_DIR, configured as the service was. */
export function ledger(dir: string, env: Record<string, string>): { status: number | null; out: string } {
  const root = path.resolve('.');
  const r = spawnSync(process.execPath, ['--import', pathToFileURL(path.join(root, 'node_modules/tsx/dist/loader.mjs')).href, path.join(root, 'scripts/ledger.ts'), '--data-dir', dir], {
    cwd: dir, env: { PATH: process.env['PATH'] ?? '', ...env }, encoding: 'utf8',
  });
  return { status: r.status, out: r.stdout + r.stderr };
}

/** A start that must fail: waits for the process to exit and gives its exit code and output. */
export async function refusedStart(dataDir: string, env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  const bad = await startService({ dataDir, waitReady: false, env });
  let closedWith: number | null | undefined;
  bad.child.once('close', (c) => { closedWith = c; });
  try {
    const code = await waitFor(() => closedWith, 'the service to exit', 45_000);
    return { code, out: bad.output() };
  } finally {
    await bad.kill();
  }
}

/** A fake venue whose next order's answer a test can hold, then drop (the order placed or not). */
export interface HoldingVenue {
  holdNextOrder(hold: { after: 'placed' | 'not-placed' }): void;
  readonly heldCount: number;
  releaseHeld(): void;
}

/**
 * SIGKILL in `executing` with the order's answer lost: arms the service, holds the venue's answer
 * to the next order (placed there or not), approves `signal`, kills the service while the answer
 * is held, drops it, and restarts. `track` hears of each service started (for the test's clean-up).
 */
export async function killWhileOrderAnswerHeld(opts: {
  start: () => Promise<ServiceHandle>;
  track: (svc: ServiceHandle) => void;
  venue: HoldingVenue;
  after: 'placed' | 'not-placed';
  signal: Record<string, unknown>;
}): Promise<{ svc: ServiceHandle; id: string }> {
  const first = await opts.start();
  opts.track(first);
  await first.api('POST', '/api/arm', { by: 'ops', minutes: 30 });
  opts.venue.holdNextOrder({ after: opts.after });
  const id = await proposalAwaitingApproval(first, opts.signal);
  await first.api('POST', `/api/proposals/${id}/approve`, { by: 'ops' });
  await waitFor(() => (opts.venue.heldCount > 0 ? true : undefined), 'the order to reach the venue');
  await first.kill();
  opts.venue.releaseHeld();
  const svc = await opts.start();
  opts.track(svc);
  return { svc, id };
}
