/**
 * What the live end-to-end tests (Upbit, Freqtrade, KIS) share: a signal taken to a person's
 * approval and to its end, and `npm run ledger` on a stopped service's DATA_DIR.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { waitFor, type ServiceHandle } from './service-process';

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
