/**
 * Benchmark 2, child phases: cost of one persisted transition, and of approve → settled, with a
 * given number of live proposals waiting for a person.
 *
 *   prepare  one proposal through the orchestrator to `awaiting-approval` (the template), then
 *            `live - 1` copies of its record with fresh ids written straight into the live store
 *            (a group commit per batch), closed with a checkpoint as a clean stop leaves it
 *   measure  open the store and restore, then run `proposals` proposals one after another through
 *            pending → awaiting-approval → approved → executing → settled with the product's
 *            services (paper venue, replay prices), each step durable before the next
 *
 * Run by `bench/run.ts`; each phase answers with one JSON line.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  DAY_MS, TRANSITIONS_PER_PROPOSAL, CountingIo, StateWatcher, childMain, makeDraft, openRuntime, openStore, preloadAwaiting, wireRuntime,
} from './lib';

export interface TransitionPrepared {
  live: number;
  prepareMs: number;
  /** The live store's files (checkpoint and log). */
  storeBytes: number;
}

export interface TransitionMeasured {
  live: number;
  proposals: number;
  transitions: number;
  /** Open the store and restore every live proposal. */
  openMs: number;
  restoreMs: number;
  /** Wall time per transition: a whole proposal's cycle (every step durable) / 4. */
  perTransitionUs: number;
  cpuPerTransitionUs: number;
  /** `orchestrator.start` until `awaiting-approval` is durable (and shown). */
  startMs: number;
  /** `orchestrator.approve` until `settled` is durable (and shown): re-check, order at the paper venue, fill. */
  approveToSettledMs: number;
  /** Then until it is archived and removed from the live store (the end of the cycle). */
  settledToRemovedMs: number;
  /** Syncs (fdatasync, replace, folder) per proposal, and live-store commits per proposal. */
  syncsPerProposal: number;
  commitsPerProposal: number;
  /** Live-store checkpoints during the measured cycles. */
  checkpoints: number;
  rssBytes: number;
}

const storeBytes = (dataDir: string): number => {
  const dir = path.join(dataDir, 'proposals');
  return fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
};

async function prepare(args: { dataDir: string; live: number }): Promise<TransitionPrepared> {
  const started = performance.now();
  const rt = await openRuntime(args.dataDir, 'waiting');
  const watcher = new StateWatcher(rt.orchestrator);
  // Deadlines a day away: nothing times out while the benchmark runs.
  const { id } = await rt.orchestrator.start(makeDraft(Date.now(), DAY_MS));
  await watcher.until(id, 'awaiting-approval');
  await preloadAwaiting(rt.store, rt.store.get(id)!, args.live - 1);
  if (rt.store.size !== args.live) throw new Error(`expected ${args.live} live proposals in the store, have ${rt.store.size}`);
  await rt.close({ checkpoint: true });
  return { live: args.live, prepareMs: performance.now() - started, storeBytes: storeBytes(args.dataDir) };
}

async function measure(args: { dataDir: string; proposals: number; warmup: number }): Promise<TransitionMeasured> {
  const io = new CountingIo();
  const t0 = performance.now();
  const store = await openStore(io, args.dataDir);
  const openMs = performance.now() - t0;
  const rt = await wireRuntime(args.dataDir, io, store, 'paper');
  const r0 = performance.now();
  const { restored } = await rt.orchestrator.restore();
  const restoreMs = performance.now() - r0;
  const watcher = new StateWatcher(rt.orchestrator);

  let startMs = 0;
  let approveMs = 0;
  let removeMs = 0;
  const cycle = async () => {
    const t1 = performance.now();
    const { id } = await rt.orchestrator.start(makeDraft(Date.now()));
    await watcher.until(id, 'awaiting-approval');
    const t2 = performance.now();
    const removed = rt.store.removed(id);
    await rt.orchestrator.approve(id, 'telegram:10001');
    await watcher.until(id, 'settled');
    const t3 = performance.now();
    await removed;
    const t4 = performance.now();
    startMs += t2 - t1;
    approveMs += t3 - t2;
    removeMs += t4 - t3;
  };

  for (let i = 0; i < args.warmup; i++) await cycle();
  startMs = 0;
  approveMs = 0;
  removeMs = 0;
  const syncs0 = io.syncs;
  const stats0 = rt.store.stats;
  const cpu0 = process.cpuUsage();
  const w0 = performance.now();
  for (let i = 0; i < args.proposals; i++) await cycle();
  const wallMs = performance.now() - w0;
  const cpu = process.cpuUsage(cpu0);
  const stats = rt.store.stats;
  const syncs = io.syncs - syncs0;
  const rssBytes = process.memoryUsage().rss;
  // The measured DATA_DIR is reset by the caller: no checkpoint on the way out.
  await rt.close();

  const transitions = args.proposals * TRANSITIONS_PER_PROPOSAL;
  return {
    live: restored,
    proposals: args.proposals,
    transitions,
    openMs,
    restoreMs,
    perTransitionUs: (wallMs * 1000) / transitions,
    cpuPerTransitionUs: (cpu.user + cpu.system) / transitions,
    startMs: startMs / args.proposals,
    approveToSettledMs: approveMs / args.proposals,
    settledToRemovedMs: removeMs / args.proposals,
    syncsPerProposal: syncs / args.proposals,
    commitsPerProposal: (stats.commits - stats0.commits) / args.proposals,
    checkpoints: stats.checkpoints - stats0.checkpoints,
    rssBytes,
  };
}

childMain({ prepare, measure });
