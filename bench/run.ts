/**
 * Benchmarks (`npm run bench`). Every prepared and measured phase runs in its own child process
 * (see `bench/lib.ts`), in temporary DATA_DIRs that are removed at the end. Figures are printed
 * with their goals; a missed goal is reported, never a failure (exit 0 unless something crashes).
 *
 *   1. restore time and RSS with 10,000 live proposals persisted
 *   2. cost of one persisted transition with 1k vs 100k finished proposals in history
 */
import os from 'node:os';
import path from 'node:path';
import {
  TRANSITIONS_PER_PROPOSAL, captureDirState, dirBytes, fmt, makeTempRoot, mb, median, removeDir, restoreDirState, runChild, table, type DirState,
} from './lib';
import type { RestoreMeasured, RestorePrepared } from './restore';
import type { TransitionMeasured, TransitionPrepared } from './transition';

const RESTORE = { live: 10_000, runs: 3, goalMs: 1000, goalRssMb: 250 };
const TRANSITION = { small: 1_000, large: 100_000, days: 10, live: 50, proposals: 500, warmup: 20, rounds: 3, goalRatio: 1.5 };

const goal = (met: boolean) => (met ? 'met' : 'MISSED');
const ms = (v: number) => `${fmt(v)} ms`;
const mib = (bytes: number, digits = 0) => `${fmt(mb(bytes), digits)} MB`;
const secs = (millis: number) => `${fmt(millis / 1000, 1)} s`;
const count = (n: number) => (n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n));

interface Prepared {
  restore: { dataDir: string; prep: RestorePrepared; state: DirState };
  history: Array<{ finished: number; dataDir: string; prep: TransitionPrepared; state: DirState; bytes: number }>;
}

/** Builds every DATA_DIR (in parallel: nothing is measured yet) and records its prepared state. */
async function prepareAll(root: string): Promise<Prepared> {
  const T = TRANSITION;
  const restoreDir = path.join(root, 'restore');
  const sizes = [T.small, T.large];
  const historyDirs = sizes.map((n) => path.join(root, `history-${count(n)}`));
  const [restorePrep, ...historyPreps] = await Promise.all([
    runChild<RestorePrepared>('restore.ts', 'prepare', { dataDir: restoreDir, count: RESTORE.live }),
    ...sizes.map((finished, i) => runChild<TransitionPrepared>('transition.ts', 'prepare', { dataDir: historyDirs[i], finished, days: T.days, live: T.live })),
  ]);
  // Measured runs change their DATA_DIR (a restore rewrites proposals.json, a transition run
  // archives 520 more proposals): each run starts from the prepared state again.
  return {
    restore: { dataDir: restoreDir, prep: restorePrep as RestorePrepared, state: captureDirState(restoreDir, `${restoreDir}-prepared`) },
    history: historyPreps.map((prep, i) => ({
      finished: sizes[i]!, dataDir: historyDirs[i]!, prep: prep as TransitionPrepared,
      state: captureDirState(historyDirs[i]!, `${historyDirs[i]}-prepared`), bytes: dirBytes(historyDirs[i]!),
    })),
  };
}

async function benchRestore({ dataDir, prep, state }: Prepared['restore']): Promise<void> {
  console.log(`\n1. Restore with ${fmt(RESTORE.live)} live proposals persisted (${RESTORE.runs} fresh processes)`);
  console.log(`  prepared ${fmt(prep.count)} proposals awaiting approval in ${secs(prep.prepareMs)}; proposals.json ${mib(prep.fileBytes, 1)}`);
  const runs: RestoreMeasured[] = [];
  for (let i = 0; i < RESTORE.runs; i++) {
    restoreDirState(dataDir, state);
    const run = await runChild<RestoreMeasured>('restore.ts', 'measure', { dataDir });
    if (run.restored !== prep.count || run.failed > 0) throw new Error(`restored ${run.restored} of ${prep.count}, ${run.failed} failed`);
    runs.push(run);
  }
  const m = (pick: (r: RestoreMeasured) => number) => median(runs.map(pick));
  const row = (label: string, r: (pick: (r: RestoreMeasured) => number) => number) => [
    label, ms(r((x) => x.openMs)), ms(r((x) => x.restoreMs)), ms(r((x) => x.readyMs)), ms(r((x) => x.readyCpuMs)),
    mib(r((x) => x.rssBytes)), mib(r((x) => x.heapUsedBytes)), mib(r((x) => x.rssBeforeBytes)), ms(r((x) => x.bootMs)),
  ];
  const rows = runs.map((run, i) => [
    ...row(String(i + 1), (pick) => pick(run)),
    `${run.writesAfterReady} write, on disk ${ms(run.flushAfterReadyMs)} after ready, loop blocked up to ${ms(run.maxLoopStallMs)}`,
  ]);
  rows.push(row('median', m));
  console.log(table(['run', 'open store', 'restore', 'ready', 'ready cpu', 'rss', 'heapUsed', 'rss at start', 'boot', 'after ready'], rows));
  console.log('  ready = open store + wire + restore, from the start of the measured code; boot = node + tsx + imports before it');
  const ready = m((r) => r.readyMs);
  const rss = m((r) => r.rssBytes);
  console.log(
    `restore ${RESTORE.live} live proposals: median ${ms(ready)} (goal ≤ ${RESTORE.goalMs} ms, ${goal(ready <= RESTORE.goalMs)}), `
    + `rss ${mib(rss)} (goal ≤ ${RESTORE.goalRssMb} MB, ${goal(mb(rss) <= RESTORE.goalRssMb)}), heapUsed ${mib(m((r) => r.heapUsedBytes))}, `
    + `proposals.json ${mib(prep.fileBytes, 1)}`,
  );
}

async function benchTransition(history: Prepared['history']): Promise<void> {
  const T = TRANSITION;
  console.log(`\n2. One persisted transition vs finished history (${T.proposals} proposals × ${TRANSITIONS_PER_PROPOSAL} transitions per run, ${T.live} live, A/B alternated ${T.rounds}×)`);
  console.log(`  prepared ${history.map((h) => `${count(h.finished)} finished (${mib(h.bytes)} of journal and archive over ${T.days + 1} day files, ${secs(h.prep.prepareMs)})`).join(', ')}; each with ${T.live} live`);
  const results: TransitionMeasured[][] = history.map(() => []);
  const rows: string[][] = [];
  for (let round = 1; round <= T.rounds; round++) {
    for (const [i, h] of history.entries()) {
      restoreDirState(h.dataDir, h.state);
      const r = await runChild<TransitionMeasured>('transition.ts', 'measure', { dataDir: h.dataDir, proposals: T.proposals, warmup: T.warmup });
      results[i]!.push(r);
      rows.push([String(round), count(h.finished), `${fmt(r.perTransitionUs)} µs`, `${fmt(r.cpuPerTransitionUs)} µs`, `${fmt(r.startMs, 2)} ms`, `${fmt(r.approveToSettledMs, 2)} ms`, fmt(r.writesPerProposal, 2)]);
    }
  }
  console.log(table(['round', 'history', 'per transition', 'cpu/transition', 'start → awaiting on disk', 'approve → settled on disk', 'writes/proposal'], rows));
  const [small, large] = results.map((runs) => median(runs.map((r) => r.perTransitionUs))) as [number, number];
  const [cpuSmall, cpuLarge] = results.map((runs) => median(runs.map((r) => r.cpuPerTransitionUs))) as [number, number];
  const ratio = large / small;
  const roundRatios = results[1]!.map((r, i) => r.perTransitionUs / results[0]![i]!.perTransitionUs);
  console.log(`  per-round ratios ${roundRatios.map((x) => fmt(x, 2)).join(', ')}; cpu per transition ${fmt(cpuSmall)} µs vs ${fmt(cpuLarge)} µs (ratio ${fmt(cpuLarge / cpuSmall, 2)})`);
  console.log(
    `persisted transition: ${count(T.small)} history ${fmt(small)} µs, ${count(T.large)} history ${fmt(large)} µs, `
    + `ratio ${fmt(ratio, 2)} (goal ≤ ${T.goalRatio}, ${goal(ratio <= T.goalRatio)})`,
  );
}

async function main(): Promise<void> {
  const root = makeTempRoot();
  const cleanUp = () => removeDir(root);
  process.once('SIGINT', () => {
    cleanUp();
    process.exit(130);
  });
  const started = performance.now();
  const load = os.loadavg().map((x) => fmt(x, 2)).join(' ');
  console.log(`chatops-trading benchmarks: node ${process.version}, ${os.cpus().length} cpus, ${os.platform()}, load average ${load}`);
  console.log('figures move ±15 % between runs on shared cores; compare medians and ratios');
  try {
    const prepared = await prepareAll(root);
    await benchRestore(prepared.restore);
    await benchTransition(prepared.history);
  } finally {
    cleanUp();
  }
  const busy = os.loadavg()[0]! > os.cpus().length;
  console.log(`\ndone in ${secs(performance.now() - started)}; load average now ${os.loadavg().map((x) => fmt(x, 2)).join(' ')}`
    + (busy ? ' (more runnable processes than cores: wall-clock figures are inflated, cpu figures are steadier)' : ''));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
