/**
 * Benchmark 1, child phases: restore time and memory with many live proposals persisted.
 *
 *   prepare  start `count` proposals that all wait for approval, flush, stop
 *   measure  open the store and restore every proposal (the service's path to /readyz)
 *
 * Run by `bench/run.ts`; each phase answers with one JSON line.
 */
import fs from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { LowdbProposalStore } from '../src/persistence/proposal-store';
import { childMain, makeDraft, nextTurn, openRuntime, waitingServices, wireRuntime } from './lib';

export interface RestorePrepared {
  count: number;
  prepareMs: number;
  fileBytes: number;
}

export interface RestoreMeasured {
  restored: number;
  failed: number;
  /** Process start (performance.timeOrigin) → measured code starts: Node + tsx + imports. */
  bootMs: number;
  /** `LowdbProposalStore.open`: read and parse proposals.json. */
  openMs: number;
  /** `orchestrator.restore()`: one actor per record, started. */
  restoreMs: number;
  /** open + wiring + restore: the figure the goal is about. */
  readyMs: number;
  rssBeforeBytes: number;
  rssBytes: number;
  heapUsedBytes: number;
  /** After ready: store writes caused by the restore, time until they are on disk, longest loop stall. */
  writesAfterReady: number;
  flushAfterReadyMs: number;
  maxLoopStallMs: number;
}

const BATCH = 1000;

async function prepare(args: { dataDir: string; count: number }): Promise<RestorePrepared> {
  const started = performance.now();
  const rt = await openRuntime(args.dataDir, () => waitingServices());
  let awaiting = 0;
  rt.orchestrator.onChange((c) => {
    if (c.to === 'awaiting-approval') awaiting += 1;
  });
  for (let i = 0; i < args.count; i += BATCH) {
    const n = Math.min(BATCH, args.count - i);
    await Promise.all(Array.from({ length: n }, () => rt.orchestrator.start(makeDraft(Date.now()))));
  }
  while (awaiting < args.count) await nextTurn();
  await rt.store.flush();
  const live = rt.orchestrator.live();
  const wrong = live.filter((p) => p.state !== 'awaiting-approval');
  if (live.length !== args.count || wrong.length > 0) {
    throw new Error(`expected ${args.count} proposals awaiting approval, have ${live.length} live, ${wrong.length} in other states`);
  }
  await rt.close();
  return { count: args.count, prepareMs: performance.now() - started, fileBytes: fs.statSync(path.join(args.dataDir, 'proposals.json')).size };
}

async function measure(args: { dataDir: string }): Promise<RestoreMeasured> {
  const rssBeforeBytes = process.memoryUsage().rss;
  const t0 = performance.now();
  const store = await LowdbProposalStore.open(args.dataDir);
  const t1 = performance.now();
  const rt = wireRuntime(args.dataDir, store, () => waitingServices());
  const t2 = performance.now();
  const { restored, failed } = await rt.orchestrator.restore();
  const t3 = performance.now();
  const mem = process.memoryUsage();

  // What follows readiness: restored actors re-persist their snapshots (one coalesced write of
  // the whole file) and re-arm their deadlines.
  const stalls = monitorEventLoopDelay({ resolution: 1 });
  stalls.enable();
  const writes0 = store.writeCount;
  await store.flush();
  const t4 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, 50));
  stalls.disable();
  const writesAfterReady = store.writeCount - writes0;
  await rt.close();
  return {
    restored, failed,
    bootMs: t0,
    openMs: t1 - t0,
    restoreMs: t3 - t2,
    readyMs: t3 - t0,
    rssBeforeBytes,
    rssBytes: mem.rss,
    heapUsedBytes: mem.heapUsed,
    writesAfterReady,
    flushAfterReadyMs: t4 - t3,
    maxLoopStallMs: stalls.max / 1e6,
  };
}

childMain({ prepare, measure });
