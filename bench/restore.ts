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
  /** `LowdbProposalStore.open`: read and parse the live store's shards. */
  openMs: number;
  /** `orchestrator.restore()`: one actor per record, started. */
  restoreMs: number;
  /** open + wiring + restore: the figure the goal is about. */
  readyMs: number;
  /** CPU time (user + system, all threads) over the same span: steadier than wall time on busy cores. */
  readyCpuMs: number;
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
  return { count: args.count, prepareMs: performance.now() - started, fileBytes: fs.readdirSync(path.join(args.dataDir, 'proposals')).reduce((n, f) => n + fs.statSync(path.join(args.dataDir, 'proposals', f)).size, 0) };
}

async function measure(args: { dataDir: string }): Promise<RestoreMeasured> {
  const rssBeforeBytes = process.memoryUsage().rss;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const store = await LowdbProposalStore.open(args.dataDir);
  const t1 = performance.now();
  const rt = wireRuntime(args.dataDir, store, () => waitingServices());
  const t2 = performance.now();
  const { restored, failed } = await rt.orchestrator.restore();
  const t3 = performance.now();
  const cpu = process.cpuUsage(cpu0);
  const mem = process.memoryUsage();

  // What follows readiness: restored actors re-persist their snapshots (one coalesced write of
  // the whole file) and re-arm their deadlines.
  const probe = stallProbe();
  const writes0 = store.writeCount;
  await store.flush();
  const t4 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, 50));
  const maxLoopStallMs = probe.stop();
  const writesAfterReady = store.writeCount - writes0;
  await rt.close();
  return {
    restored, failed,
    bootMs: t0,
    openMs: t1 - t0,
    restoreMs: t3 - t2,
    readyMs: t3 - t0,
    readyCpuMs: (cpu.user + cpu.system) / 1000,
    rssBeforeBytes,
    rssBytes: mem.rss,
    heapUsedBytes: mem.heapUsed,
    writesAfterReady,
    flushAfterReadyMs: t4 - t3,
    maxLoopStallMs,
  };
}

/** Measures the longest time the event loop went without running a 1 ms timer. */
function stallProbe(): { stop(): number } {
  let last = performance.now();
  let max = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    max = Math.max(max, now - last - 1);
    last = now;
  }, 1);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(max, performance.now() - last - 1);
    },
  };
}

childMain({ prepare, measure });
