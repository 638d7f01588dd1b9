/**
 * Benchmark 1, child phases: memory with many live proposals, created and restored, and the
 * time a restore takes.
 *
 *   prepare  start `count` proposals through the orchestrator that all wait for approval,
 *            `concurrency` at a time (the trading loop starts 4 at a time), measure the
 *            process's memory, copy DATA_DIR as a crash would leave it
 *            (`<dataDir>-crash`: the log since the last automatic checkpoint), then stop cleanly
 *            (a checkpoint)
 *   measure  open the store and restore every proposal (the service's path to /readyz)
 *
 * Run by `bench/run.ts`; each phase answers with one JSON line.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CountingIo, childMain, makeDraft, openRuntime, openStore, wireRuntime } from './lib';

export interface RestorePrepared {
  count: number;
  concurrency: number;
  /** Start of the first proposal until the last one waits for approval. */
  createMs: number;
  /** Memory of the process that created them, once every one waits for approval. */
  rssBytes: number;
  heapUsedBytes: number;
  /** V8 heap in use, and committed, after a full collection: what the live proposals keep. */
  heapLiveBytes: number;
  heapTotalBytes: number;
  /** The live store after a clean stop (checkpoint) and as a crash leaves it (log since the last checkpoint). */
  storeBytes: number;
  crashStoreBytes: number;
  crashDataDir: string;
}

export interface RestoreMeasured {
  restored: number;
  failed: number;
  /** Process start (performance.timeOrigin) → measured code starts: Node + tsx + imports. */
  bootMs: number;
  /** `WalProposalStore.open`: read the checkpoint and replay the log. */
  openMs: number;
  /** `orchestrator.restore()`: waiting proposals get a deadline entry, others an actor. */
  restoreMs: number;
  /** open + wiring + restore: the figure the goal is about. */
  readyMs: number;
  /** CPU time (user + system, all threads) over the same span: steadier than wall time on busy cores. */
  readyCpuMs: number;
  rssBeforeBytes: number;
  rssBytes: number;
  heapUsedBytes: number;
  heapLiveBytes: number;
  /** After ready: live-store commits caused by the restore, time until they are on disk, longest loop stall. */
  commitsAfterReady: number;
  flushAfterReadyMs: number;
  maxLoopStallMs: number;
}

const storeBytes = (dataDir: string): number => {
  const dir = path.join(dataDir, 'proposals');
  return fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
};

/** V8 heap after a full collection (children run with --expose-gc). */
function liveHeap(): { used: number; total: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const { heapUsed, heapTotal } = process.memoryUsage();
  return { used: heapUsed, total: heapTotal };
}

async function prepare(args: { dataDir: string; count: number; concurrency: number }): Promise<RestorePrepared> {
  const rt = await openRuntime(args.dataDir, 'waiting');
  let awaiting = 0;
  let allAwaiting = () => undefined as void;
  const done = new Promise<void>((resolve) => {
    allAwaiting = resolve;
  });
  rt.orchestrator.onChange((c) => {
    if (c.to === 'awaiting-approval' && ++awaiting === args.count) allAwaiting();
  });
  const started = performance.now();
  for (let i = 0; i < args.count; i += args.concurrency) {
    const n = Math.min(args.concurrency, args.count - i);
    await Promise.all(Array.from({ length: n }, () => rt.orchestrator.start(makeDraft(Date.now()))));
  }
  await done;
  const createMs = performance.now() - started;
  const mem = process.memoryUsage();
  const heap = liveHeap();
  const live = rt.orchestrator.liveCount();
  if (live.total !== args.count || live.awaitingApproval !== args.count) {
    throw new Error(`expected ${args.count} proposals awaiting approval, have ${live.total} live, ${live.awaitingApproval} awaiting`);
  }
  await rt.orchestrator.stop();
  const crashDataDir = `${args.dataDir}-crash`;
  fs.cpSync(args.dataDir, crashDataDir, { recursive: true });
  await rt.close({ checkpoint: true });
  return {
    count: args.count, concurrency: args.concurrency, createMs, rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, heapLiveBytes: heap.used, heapTotalBytes: heap.total,
    storeBytes: storeBytes(args.dataDir), crashStoreBytes: storeBytes(crashDataDir), crashDataDir,
  };
}

async function measure(args: { dataDir: string }): Promise<RestoreMeasured> {
  const rssBeforeBytes = process.memoryUsage().rss;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const io = new CountingIo();
  const store = await openStore(io, args.dataDir);
  const t1 = performance.now();
  const rt = await wireRuntime(args.dataDir, io, store, 'waiting');
  const t2 = performance.now();
  const { restored, failed } = await rt.orchestrator.restore();
  const t3 = performance.now();
  const cpu = process.cpuUsage(cpu0);
  const mem = process.memoryUsage();

  // What follows readiness: writes the restore queued (proposals waiting for a person have no
  // actor and write nothing) and deadline timers.
  const probe = stallProbe();
  const commits0 = store.stats.commits;
  await store.flush();
  const t4 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, 50));
  const maxLoopStallMs = probe.stop();
  const commitsAfterReady = store.stats.commits - commits0;
  const heap = liveHeap();
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
    heapLiveBytes: heap.used,
    commitsAfterReady,
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
