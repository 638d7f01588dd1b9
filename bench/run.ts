/**
 * Benchmarks (`npm run bench`). Every prepared and measured phase runs in its own child process
 * (see `bench/lib.ts`), in temporary DATA_DIRs that are removed at the end. Figures are printed
 * with their goals; a missed goal is reported, never a failure (exit 0 unless something crashes).
 *
 *   1. memory with 10,000 live proposals, created and restored, and the restore time
 *   2. cost of one persisted transition and of approve → settled with 100, 10k and 100k live
 *   3. group commit: syncs per 1,000 acknowledgements in a burst of approvals
 *   4. webhook ingest throughput, latency, backlog drain and syncs, the real service against a
 *      bare express handler
 *   5. Telegram gate latencies: webhook 202 → card, Approve callback → order at the venue
 *   6. Telegram under a stranger flood (issue 9): Approve tap → decision with 300 strangers'
 *      `/help` ahead of it, against the same without them
 *
 * `npm run bench -- webhook telegram` runs only the parts named (restore, transition, commit,
 * webhook, telegram, telegram-flood); no name runs them all.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { startService, type ServiceHandle } from '../test/support/service-process';
import {
  BENCH_DIR, TRANSITIONS_PER_PROPOSAL, captureDirState, fmt, makeTempRoot, mb, median, removeDir, restoreDirState, runChild, spread, startChild, table,
  type AreaCount, type DirState, type Spread,
} from './lib';
import type { BurstMeasured } from './commit';
import type { RestoreMeasured, RestorePrepared } from './restore';
import type { FloodArgs, FloodMeasured, FloodRound } from './telegram-flood';
import type { TelegramArgs, TelegramMeasured } from './telegram-latency';
import type { TransitionMeasured, TransitionPrepared } from './transition';
import type { LoadArgs, LoadMeasured } from './webhook';

const RESTORE = { live: 10_000, createRuns: 3, concurrency: 4, burstConcurrency: 1000, runs: 3, goalMs: 1000, goalRssMb: 250 };
const TRANSITION = { live: [100, 10_000, 100_000], proposals: 200, warmup: 20, rounds: 3, goalRatio: 1.5 };
const COMMIT = { proposals: 1000, concurrency: [1, 100, 1000] };
const WEBHOOK = { rounds: 3, connections: 10, maxS: 10, rate: 200, rateS: 10, warmupS: 1, unboundedBacklog: 100_000, goalRatio: 0.7, goalP99Ms: 10 };
const TELEGRAM = { proposals: 500, warmup: 20, signalRate: 10, tapRate: 20, goalP99Ms: 15 };
const TELEGRAM_FLOOD = { rounds: 5, strangers: 300 };
const PARTS = ['restore', 'transition', 'commit', 'webhook', 'telegram', 'telegram-flood'] as const;
type Part = (typeof PARTS)[number];

const goal = (met: boolean) => (met ? 'met' : 'MISSED');
const ms = (v: number) => `${fmt(v)} ms`;
const mib = (bytes: number, digits = 0) => `${fmt(mb(bytes), digits)} MB`;
const secs = (millis: number) => `${fmt(millis / 1000, 1)} s`;
const count = (n: number) => (n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n));
/** Syncs per 1,000 acknowledgements. */
const perThousand = (syncs: number, acks: number) => fmt((syncs * 1000) / acks);
/** Syncs per 1,000 acknowledgements by part of DATA_DIR, most first, with the records each sync covered. */
function areasText(areas: Record<string, AreaCount>, acks: number): string {
  return Object.entries(areas).filter(([, c]) => c.syncs > 0).sort((a, b) => b[1].syncs - a[1].syncs)
    .map(([area, c]) => `${area} ${perThousand(c.syncs, acks)}${c.records > 0 ? ` (${fmt(c.records / c.syncs, 1)})` : ''}`).join(', ');
}

// ---------------------------------------------------------------------------------------------
// 1. Memory and restore with 10,000 live proposals

async function benchRestore(root: string): Promise<void> {
  const R = RESTORE;
  console.log(`\n1. Memory and restore with ${fmt(R.live)} live proposals waiting for approval (every figure from a fresh process)`);
  // Created one process at a time: the creating process's memory and time are measured.
  const created: RestorePrepared[] = [];
  const plan = [...Array.from({ length: R.createRuns }, () => R.concurrency), R.burstConcurrency];
  for (const [i, concurrency] of plan.entries()) {
    created.push(await runChild<RestorePrepared>('restore.ts', 'prepare', { dataDir: path.join(root, `restore-${i + 1}`), count: R.live, concurrency }));
  }
  console.log(`  a) created through the orchestrator (started, assessed, waiting for approval, each snapshot durable), ${R.concurrency} at a time as the`);
  console.log(`     trading loop starts them (${R.createRuns} processes) and ${fmt(R.burstConcurrency)} at a time (1 process); memory once the last one waits`);
  console.log(table(['run', 'at a time', 'create', 'rss', 'heapUsed', 'heap after full GC', 'heap committed after GC', 'store: checkpoint', 'store: crash log'], created.map((c, i) => [
    String(i + 1), fmt(c.concurrency), secs(c.createMs), mib(c.rssBytes), mib(c.heapUsedBytes), mib(c.heapLiveBytes), mib(c.heapTotalBytes), mib(c.storeBytes, 1), mib(c.crashStoreBytes, 1),
  ])));
  const createdRss = median(created.filter((c) => c.concurrency === R.concurrency).map((c) => c.rssBytes));
  const burstRss = created.find((c) => c.concurrency === R.burstConcurrency)!.rssBytes;

  // Restored from the first prepared DATA_DIR after a clean stop (one checkpoint) and as a crash
  // left it (log since the last checkpoint, perhaps a checkpoint half written), each run from a
  // fresh copy: opening a store tidies it (temp files, covered segments).
  const sources = [
    { from: 'clean stop', dataDir: path.join(root, 'restore-1') },
    { from: 'crash', dataDir: created[0]!.crashDataDir },
  ];
  const runDir = path.join(root, 'restore-run');
  const runs: Array<{ from: string; r: RestoreMeasured }> = [];
  for (let i = 0; i < R.runs; i++) {
    for (const s of sources) {
      removeDir(runDir);
      fs.cpSync(s.dataDir, runDir, { recursive: true });
      const r = await runChild<RestoreMeasured>('restore.ts', 'measure', { dataDir: runDir });
      if (r.restored !== R.live || r.failed > 0) throw new Error(`restored ${r.restored} of ${R.live} (${s.from}), ${r.failed} failed`);
      runs.push({ from: s.from, r });
    }
  }
  console.log(`  b) restored: open the store and restore every proposal (the service's path to /readyz), ${R.runs} processes each after a clean stop and after a crash`);
  console.log(table(['run', 'from', 'open store', 'restore', 'ready', 'ready cpu', 'rss', 'heapUsed', 'heap after GC', 'rss at start', 'boot', 'after ready'], runs.map(({ from, r }, i) => [
    String(Math.floor(i / sources.length) + 1), from, ms(r.openMs), ms(r.restoreMs), ms(r.readyMs), ms(r.readyCpuMs), mib(r.rssBytes), mib(r.heapUsedBytes), mib(r.heapLiveBytes),
    mib(r.rssBeforeBytes), ms(r.bootMs), `${r.commitsAfterReady} commits, flushed ${ms(r.flushAfterReadyMs)} after ready, loop blocked up to ${ms(r.maxLoopStallMs)}`,
  ])));
  console.log('  ready = open store + wire + restore, from the start of the measured code; boot = node + tsx + imports before it; rss at start is that baseline');
  const med = (from: string, pick: (r: RestoreMeasured) => number) => median(runs.filter((x) => x.from === from).map((x) => pick(x.r)));
  const restoredRss = Math.max(med('clean stop', (r) => r.rssBytes), med('crash', (r) => r.rssBytes));
  const ready = Math.max(med('clean stop', (r) => r.readyMs), med('crash', (r) => r.readyMs));
  console.log(
    `memory with ${fmt(R.live)} live proposals: created rss ${mib(createdRss)} (median, ${R.concurrency} at a time; goal ≤ ${R.goalRssMb} MB, ${goal(mb(createdRss) <= R.goalRssMb)}; `
    + `${fmt(R.burstConcurrency)} at a time ${mib(burstRss)}, ${goal(mb(burstRss) <= R.goalRssMb)}), `
    + `restored rss ${mib(restoredRss)} (worse median of clean stop and crash; goal ≤ ${R.goalRssMb} MB, ${goal(mb(restoredRss) <= R.goalRssMb)})`,
  );
  console.log(
    `restore ${fmt(R.live)} live proposals: median ${ms(med('clean stop', (r) => r.readyMs))} after a clean stop, ${ms(med('crash', (r) => r.readyMs))} after a crash `
    + `(goal ≤ ${R.goalMs} ms, ${goal(ready <= R.goalMs)})`,
  );
}

// ---------------------------------------------------------------------------------------------
// 2. Persisted transition vs live proposals

interface LiveDir { live: number; dataDir: string; prep: TransitionPrepared; state: DirState }

async function benchTransition(root: string): Promise<void> {
  const T = TRANSITION;
  console.log(`\n2. One persisted transition, and approve → settled, vs live proposals waiting for approval (${T.live.map(count).join(', ')})`);
  console.log(`  ${T.proposals} proposals × ${TRANSITIONS_PER_PROPOSAL} transitions per run after ${T.warmup} warm-up, one after another, each step durable before the next;`);
  console.log('  the product\'s services (re-check, paper venue, replay prices), in process; a fresh process per run, sizes alternated');
  console.log(`  ${T.rounds}×; the live proposals are written straight into the store (a group commit per 5,000) and restored at the start of each run`);
  // Prepared in parallel: nothing is measured yet.
  const dirs: LiveDir[] = await Promise.all(T.live.map(async (live) => {
    const dataDir = path.join(root, `live-${count(live)}`);
    const prep = await runChild<TransitionPrepared>('transition.ts', 'prepare', { dataDir, live });
    return { live, dataDir, prep, state: captureDirState(dataDir, `${dataDir}-prepared`) };
  }));
  console.log(`  prepared ${dirs.map((d) => `${count(d.live)} (live store ${mib(d.prep.storeBytes, 1)}, ${secs(d.prep.prepareMs)})`).join(', ')}`);
  const results: TransitionMeasured[][] = dirs.map(() => []);
  const rows: string[][] = [];
  for (let round = 1; round <= T.rounds; round++) {
    for (const [i, d] of dirs.entries()) {
      restoreDirState(d.dataDir, d.state);
      const r = await runChild<TransitionMeasured>('transition.ts', 'measure', { dataDir: d.dataDir, proposals: T.proposals, warmup: T.warmup });
      if (r.live !== d.live) throw new Error(`restored ${r.live} of ${d.live} live proposals`);
      results[i]!.push(r);
      rows.push([
        String(round), count(d.live), `${fmt(r.perTransitionUs)} µs`, `${fmt(r.cpuPerTransitionUs)} µs`, `${fmt(r.startMs, 2)} ms`, `${fmt(r.approveToSettledMs, 2)} ms`,
        `${fmt(r.settledToRemovedMs, 2)} ms`, fmt(r.syncsPerProposal, 1), fmt(r.commitsPerProposal, 1), String(r.checkpoints), ms(r.openMs + r.restoreMs), mib(r.rssBytes),
      ]);
    }
  }
  console.log(table(['round', 'live', 'per transition', 'cpu/transition', 'start → awaiting', 'approve → settled', 'settled → archived', 'syncs/proposal', 'commits/proposal', 'checkpoints', 'open + restore', 'rss'], rows));
  console.log('  durable = the snapshot\'s record synced (and its journal line); archived = archive record, index and removal from the live store synced');
  const med = (i: number, pick: (r: TransitionMeasured) => number) => median(results[i]!.map(pick));
  const line = (label: string, pick: (r: TransitionMeasured) => number, unit: (v: number) => string) => {
    const base = med(0, pick);
    const ratios = dirs.map((_, i) => med(i, pick) / base);
    const roundRatios = results[1]!.map((r, k) => pick(r) / pick(results[0]![k]!));
    return `${label}: ${dirs.map((d, i) => `${count(d.live)} live ${unit(med(i, pick))}`).join(', ')}; `
      + `${count(dirs[1]!.live)}/${count(dirs[0]!.live)} ratio ${fmt(ratios[1]!, 2)} (per round ${roundRatios.map((x) => fmt(x, 2)).join(', ')}; goal ≤ ${T.goalRatio}, ${goal(ratios[1]! <= T.goalRatio)}), `
      + `${count(dirs[2]!.live)}/${count(dirs[0]!.live)} ratio ${fmt(ratios[2]!, 2)} (information)`;
  };
  console.log(`  cpu per transition: ${dirs.map((d, i) => `${count(d.live)} live ${fmt(med(i, (r) => r.cpuPerTransitionUs))} µs`).join(', ')}`);
  console.log(line('persisted transition (median)', (r) => r.perTransitionUs, (v) => `${fmt(v)} µs`));
  console.log(line('approve → settled in process (median)', (r) => r.approveToSettledMs, (v) => `${fmt(v, 2)} ms`));
}

// ---------------------------------------------------------------------------------------------
// 3. Group commit under a burst of approvals

async function benchCommit(root: string): Promise<void> {
  const C = COMMIT;
  console.log(`\n3. Group commit: syncs per 1,000 acknowledgements while ${fmt(C.proposals)} proposals waiting for approval are approved, ${C.concurrency.map((c) => fmt(c)).join(', ')} at a time`);
  console.log('  in process, the product\'s services (re-check, paper venue); an acknowledgement = approve() resolved, what Telegram and REST answer on');
  console.log('  (approval.given journalled, the approved snapshot durable, the re-check decided and durable or MARKET_DATA_TIMEOUT_MS passed);');
  console.log('  syncs counted at the file-operations port (fdatasync 1, atomic replace 2, new file or removal 1) and by the live store');
  const runs: BurstMeasured[] = [];
  for (const concurrency of C.concurrency) {
    runs.push(await runChild<BurstMeasured>('commit.ts', 'burst', { dataDir: path.join(root, `commit-${concurrency}`), proposals: C.proposals, concurrency }));
  }
  console.log(table(['at a time', 'ack p50', 'ack p99', 'all acked', 'syncs by then', 'per 1,000 acks', 'all settled', 'syncs by then', 'per 1,000 proposals', 'live store commits/syncs', 'syncs per 1,000 by part (records per sync), to settled'], runs.map((r) => [
    fmt(r.concurrency), `${fmt(r.ackLatency.p50, 1)} ms`, `${fmt(r.ackLatency.p99, 1)} ms`, secs(r.ackMs), fmt(r.syncsAtAck), perThousand(r.syncsAtAck, r.proposals),
    secs(r.settledMs), fmt(r.syncsAtSettled), perThousand(r.syncsAtSettled, r.proposals), `${fmt(r.storeCommits)}/${fmt(r.storeSyncs)}`, areasText(r.syncsByArea, r.proposals),
  ])));
  const burst = runs.at(-1)!;
  const mid = runs.find((r) => r.concurrency === 100) ?? burst;
  console.log(
    `syncs per 1,000 acknowledgements (approvals): ${perThousand(mid.syncsAtAck, mid.proposals)} at ${mid.concurrency} at a time, ${perThousand(burst.syncsAtAck, burst.proposals)} at ${fmt(burst.concurrency)} at once `
    + `(the issue sets no goal: every sync of the service counts, the re-check and settlement that run meanwhile included); through settlement ${perThousand(mid.syncsAtSettled, mid.proposals)} and `
    + `${perThousand(burst.syncsAtSettled, burst.proposals)} per 1,000 proposals (webhook 202s: see 4)`,
  );
}

// ---------------------------------------------------------------------------------------------
// 4. Webhook ingest

const pct = (s: Spread, digits = 1) => [fmt(s.p50, digits), fmt(s.p90, digits), fmt(s.p99, digits), fmt(s.max, digits)];
const failuresText = (f: Record<string, number>) => Object.entries(f).map(([k, n]) => `${fmt(n)}× ${k}`).join(', ');

/**
 * One line on the journal check of a service run: every 2xx answer has exactly one
 * `signal.received`, and after the drain a `signal.proposed` or `signal.dropped`.
 */
function journalText(r: LoadMeasured): string {
  const j = r.journal;
  if (!j) return '';
  const inFlight = j.unanswered > 0 ? ` + ${fmt(j.unanswered)} in flight at the end` : '';
  const verdict = j.missing === 0 && j.repeated === 0 ? 'ok' : `NOT DURABLE: ${fmt(j.missing)} answered without a record, ${fmt(j.repeated)} recorded twice`;
  const drops = Object.entries(j.dropped).map(([code, n]) => `${fmt(n)} ${code}`).join(', ');
  const processed = j.processed === j.answered ? `all processed${drops ? ` (dropped: ${drops})` : ''}` : `${fmt(j.answered - j.processed)} NOT PROCESSED`;
  return `${fmt(j.received)} signal.received = ${fmt(j.answered)} 2xx${inFlight}: ${verdict}, ${processed}`;
}

/**
 * Columns of a service run: drain ms (backlog at the end), syncs per 1,000 2xx to the last one /
 * drained, the service's CPU (user+system) per second of load, its event-loop delay p99/max.
 */
function serviceColumns(r: LoadMeasured): string[] {
  const d = r.drain;
  if (!d) return ['', '', '', ''];
  return [
    `${fmt(d.ms)} ms (${fmt(d.backlogAtEnd)})`, `${perThousand(d.syncsAtEnd, r.ok)} / ${perThousand(d.syncsDrained, r.ok)}`,
    `${fmt(d.userMs / (r.elapsedS * 1000), 2)}+${fmt(d.systemMs / (r.elapsedS * 1000), 2)}`, `${fmt(d.loop.p99)}/${fmt(d.loop.max)} ms`,
  ];
}
const SERVICE_HEADER = ['drain', 'syncs/1,000', 'svc cpu user+sys', 'loop p99/max'];

interface WebhookRow { round: number; target: 'service' | 'bare' | 'unbounded'; r: LoadMeasured }

async function benchWebhook(root: string): Promise<void> {
  const W = WEBHOOK;
  console.log(`\n4. Webhook ingest: the real service vs a bare express 5 handler, each in its own process, load from a third (A/B alternated ${W.rounds}×)`);
  console.log('  body: a TradingView alert, text/plain holding JSON with the secret and a unique id (nothing is a duplicate); service with');
  console.log('  WEBHOOK_RATE_LIMIT_PER_MINUTE=0, DEDUPE_WINDOW_SECONDS=300, INGEST_BACKLOG_LIMIT 1000 (default), replay prices, paper venue, a fresh process and DATA_DIR per run');
  console.log('  bare: express 5, the same route, 202 with a JSON body of the same shape, body not parsed; ids checked in the journal after each service run');
  console.log('  after each 202 the service turns the alert into a proposal awaiting approval (rules, risk, actor, live store), a few at a time;');
  console.log('  beyond the backlog limit it answers 503 backlog_full. drain = last 202 → chatops_ingest_backlog 0 and the last answered signals');
  console.log('  proposed or dropped (backlog when the load stopped in brackets); syncs = the service\'s fsync + fdatasync calls per 1,000 202s over the');
  console.log('  measured part, until the last 202 / until drained; svc cpu = the service\'s CPU seconds (user+system) per second of load; loop = its event-loop\n  delay p99/max over the load (both from bench/service-probe.mjs preloaded in the service)');
  const bare = await startChild<{ port: number }, { served: number }>('webhook.ts', 'bare', {});
  const bareUrl = `http://127.0.0.1:${bare.ready.port}`;
  let runs = 0;
  const drive = async (target: WebhookRow['target'], mode: LoadArgs['mode']): Promise<LoadMeasured> => {
    runs += 1;
    const base = { mode, connections: W.connections, rate: W.rate, durationS: mode === 'max' ? W.maxS : W.rateS, warmupS: W.warmupS, tag: `bench-${runs}` };
    if (target === 'bare') return runChild<LoadMeasured>('webhook.ts', 'load', { ...base, url: bareUrl, secret: 'none' } satisfies LoadArgs);
    const probeFile = path.join(root, `webhook-${runs}-probe.json`);
    const svc = await startWebhookService(path.join(root, `webhook-${runs}`), probeFile, target === 'unbounded' ? W.unboundedBacklog : undefined);
    try {
      const service = { dataDir: svc.dataDir, pid: svc.child.pid!, probeFile, apiToken: svc.token };
      return await runChild<LoadMeasured>('webhook.ts', 'load', { ...base, url: svc.url, secret: svc.env['WEBHOOK_SECRET']!, service } satisfies LoadArgs);
    } finally {
      await svc.kill();
      removeDir(svc.dataDir);
    }
  };
  const max: WebhookRow[] = [];
  const paced: WebhookRow[] = [];
  try {
    for (let round = 1; round <= W.rounds; round++) {
      // Alternate which side goes first, so a drift in the machine's load does not favour one.
      const order: Array<'service' | 'bare'> = round % 2 === 1 ? ['service', 'bare'] : ['bare', 'service'];
      for (const target of order) max.push({ round, target, r: await drive(target, 'max') });
      for (const target of order) paced.push({ round, target, r: await drive(target, 'paced') });
    }
    // Once, for information: the 202 path's own ceiling, with a backlog that does not fill in the burst.
    max.push({ round: 1, target: 'unbounded', r: await drive('unbounded', 'max') });
  } finally {
    await bare.stop();
  }
  const med = (rows: WebhookRow[], target: string, pick: (r: LoadMeasured) => number) => median(rows.filter((x) => x.target === target).map((x) => pick(x.r)));
  const header = ['round', 'target', '2xx/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'];
  const rowOf = (x: WebhookRow, extra: string[]) => [String(x.round), x.target, fmt(x.r.perSecond), ...pct(x.r.latency), ...extra];
  const note = (r: LoadMeasured) => [failuresText(r.failures), journalText(r)].filter(Boolean).join('; ');

  console.log(`  a) maximum throughput (the burst): autocannon, ${W.connections} connections, ${W.warmupS} s warm-up + ${W.maxS} s; latency of 2xx answers`);
  console.log(table([...header, ...SERVICE_HEADER, 'journal / failures'], max.map((x) => rowOf(x, [...serviceColumns(x.r), note(x.r)]))));
  const svcRate = med(max, 'service', (r) => r.perSecond);
  const bareRate = med(max, 'bare', (r) => r.perSecond);
  const unbounded = max.find((x) => x.target === 'unbounded')!.r;
  const ratios = max.filter((x) => x.target === 'service').map((x) => x.r.perSecond / max.find((y) => y.round === x.round && y.target === 'bare')!.r.perSecond);
  console.log(`  median service ${fmt(svcRate)} 2xx/s, bare ${fmt(bareRate)} 2xx/s; per-round ratios ${ratios.map((x) => fmt(x, 2)).join(', ')}`);
  console.log(`  unbounded = the service with INGEST_BACKLOG_LIMIT=${fmt(W.unboundedBacklog)} (nothing refused in the burst): the 202 path with proposal creation`);
  console.log(`  competing for the event loop, ${fmt(unbounded.perSecond)} 2xx/s (${fmt(unbounded.perSecond / bareRate, 2)} × bare), then ${secs(unbounded.drain!.ms)} to drain ${fmt(unbounded.drain!.backlogAtEnd)} signals`);

  console.log(`  b) fixed rate: ${W.rate} requests/s open loop (one every ${fmt(1000 / W.rate, 1)} ms on a keep-alive agent, whether or not answers came back), ${W.warmupS} s warm-up + ${W.rateS} s`);
  console.log(table([...header, 'sender lag', 'sockets', ...SERVICE_HEADER, 'journal / failures'], paced.map((x) => rowOf(x, [
    `${fmt(x.r.lagMaxMs ?? 0, 1)} ms`, String(x.r.sockets ?? ''), ...serviceColumns(x.r), note(x.r),
  ]))));
  const svcP50 = med(paced, 'service', (r) => r.latency.p50);
  const svcP99 = med(paced, 'service', (r) => r.latency.p99);
  const bareP50 = med(paced, 'bare', (r) => r.latency.p50);
  const bareP99 = med(paced, 'bare', (r) => r.latency.p99);
  console.log(`  median p50/p99 service ${fmt(svcP50, 1)}/${fmt(svcP99, 1)} ms, bare ${fmt(bareP50, 1)}/${fmt(bareP99, 1)} ms`);
  const services = [...max, ...paced].filter((x) => x.r.journal);
  const durable = services.every((x) => x.r.journal!.missing === 0 && x.r.journal!.repeated === 0);
  const processed = services.every((x) => x.r.journal!.processed === x.r.journal!.answered);
  const drainMs = med(max, 'service', (r) => r.drain!.ms);
  const backlogAtEnd = med(max, 'service', (r) => r.drain!.backlogAtEnd);
  const syncs = (rows: WebhookRow[], pick: (d: NonNullable<LoadMeasured['drain']>) => number) => med(rows, 'service', (r) => (pick(r.drain!) * 1000) / r.ok);
  /** The service run with the median syncs until drained: its syncs by part. */
  const typical = (rows: WebhookRow[]) => {
    const runsOf = rows.filter((x) => x.target === 'service').sort((a, b) => a.r.drain!.syncsDrained / a.r.ok - b.r.drain!.syncsDrained / b.r.ok);
    const x = runsOf[Math.floor(runsOf.length / 2)]!.r;
    return areasText(x.drain!.areas, x.ok);
  };
  console.log(`  syncs per 1,000 202s by part until drained (records per sync), median run: burst ${typical(max)}; ${W.rate} req/s ${typical(paced)}`);
  console.log(
    `webhook ingest: throughput ${fmt(svcRate)} vs bare ${fmt(bareRate)} 2xx/s, `
    + `ratio ${fmt(svcRate / bareRate, 2)} (goal ≥ ${W.goalRatio}, ${goal(svcRate / bareRate >= W.goalRatio)}; with an unbounded backlog ${fmt(unbounded.perSecond / bareRate, 2)}); `
    + `p99 at ${W.rate} req/s ${fmt(svcP99, 1)} ms (goal ≤ ${W.goalP99Ms} ms, ${goal(svcP99 <= W.goalP99Ms)}), bare ${fmt(bareP99, 1)} ms `
    + `(the service's own event-loop delay p99 ${fmt(med(paced, 'service', (r) => r.drain!.loop.p99))} ms, cpu ${fmt(med(paced, 'service', (r) => (r.drain!.userMs + r.drain!.systemMs) / (r.elapsedS * 1000)), 2)} s per second)`,
  );
  console.log(
    `  backlog drain after the burst: median ${ms(drainMs)} from the last 202 (backlog ${fmt(backlogAtEnd)} when the load stopped; the issue sets no number); `
    + `syncs per 1,000 202s, proposal creation included: ${fmt(syncs(max, (d) => d.syncsAtEnd))} in the burst (${fmt(syncs(max, (d) => d.syncsDrained))} with the drain), `
    + `${fmt(syncs(paced, (d) => d.syncsDrained))} at ${W.rate} req/s (for information: acknowledgements and processing share the files); `
    + `journal: ${durable ? 'one signal.received per 2xx answer in every run' : 'ANSWERED SIGNALS MISSING FROM THE JOURNAL (see the tables)'}, `
    + `${processed ? 'every answered signal proposed or dropped' : 'SIGNALS LEFT UNPROCESSED (see the tables)'}`,
  );
}

/**
 * The real service for the webhook benchmark: fresh DATA_DIR, no rate limit, a 300 s dedupe
 * window, the default backlog limit unless one is given, and `bench/service-probe.mjs` preloaded
 * to report its syncs, CPU time and event-loop delay into `probeFile`.
 */
async function startWebhookService(dataDir: string, probeFile: string, backlogLimit?: number): Promise<ServiceHandle> {
  fs.mkdirSync(dataDir, { recursive: true });
  const svc = await startService({
    dataDir, waitReady: false,
    env: {
      WEBHOOK_RATE_LIMIT_PER_MINUTE: '0', DEDUPE_WINDOW_SECONDS: '300', ...(backlogLimit !== undefined ? { INGEST_BACKLOG_LIMIT: String(backlogLimit) } : {}),
      NODE_OPTIONS: `--import=${pathToFileURL(path.join(BENCH_DIR, 'service-probe.mjs')).href}`, BENCH_PROBE_FILE: probeFile,
    },
  });
  try {
    await svc.waitReady(30_000);
  } catch (err) {
    await svc.kill();
    throw err;
  }
  return svc;
}

// ---------------------------------------------------------------------------------------------
// 5. Telegram gate latencies

async function benchTelegram(root: string): Promise<void> {
  const T = TELEGRAM;
  console.log(`\n5. Telegram gate latency: the real service and the telegram-test-api emulator (in the benchmark's process), ${fmt(T.proposals)} proposals after ${T.warmup} warm-up`);
  console.log('  alerts need a person (confidence 0.5, size 50,000, allowAddToPosition, RISK_MAX_POSITION_PCT=100, PAPER_INITIAL_CASH=1e11); replay prices, paper venue');
  const r = await runChild<TelegramMeasured>('telegram-latency.ts', 'measure', {
    dataDir: path.join(root, 'telegram'), proposals: T.proposals, warmup: T.warmup, signalRate: T.signalRate, tapRate: T.tapRate,
  } satisfies TelegramArgs);
  const row = (label: string, s: Spread, digits = 1) => [label, fmt(s.n), ...pct(s, digits)];
  const header = ['', 'n', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'];
  console.log(`  a) webhook 202 → the card's sendMessage at the emulator; alerts paced at ${r.signalRate}/s, open loop (sender lag ≤ ${fmt(r.signalLagMaxMs, 1)} ms), well under`);
  console.log(`     the 25 sends/s of the service's Telegram queue: ${fmt(r.heldCards)} of ${fmt(r.cardMs.n)} cards still reached the emulator < 45 ms after the previous call (held by that spacing)`);
  console.log(table(header, [
    row('202 → card at the emulator', r.cardMs, 2),
    row('  202 → awaiting-approval journalled (ms stamps)', r.toAwaitingMs),
    row('  awaiting-approval → card at the emulator', r.awaitingToCardMs),
  ]));
  console.log(`  b) Approve callback handed to the bot → order at the paper venue; taps paced at ${r.tapRate}/s, open loop (sender lag ≤ ${fmt(r.tapLagMaxMs, 1)} ms)`);
  console.log('     measured from the emulator sending the getUpdates response that carries the tap: the bot sleeps 250 ms (idlePollMs) after an');
  console.log('     empty poll, so taps wait in the emulator first (not counted) and taps of one sleep arrive together and are handled in turn (counted)');
  console.log(table(header, [
    row('hand-over → order submittedAt', r.orderMs, 0),
    row('hand-over → order.submitted journalled', r.orderJournalMs, 0),
    row('first tap of its getUpdates answer → submittedAt', r.orderFirstInBatchMs, 0),
    row('  hand-over → approval.given journalled', r.toApprovalMs, 0),
    row('  same, first tap of its answer', r.firstToApprovalMs, 0),
    row('  approval.given → executing journalled', r.approvalToExecutingMs, 0),
    row('  executing → order submittedAt', r.executingToOrderMs, 0),
  ]));
  const b = r.batchSizes;
  console.log(`  taps per getUpdates answer: mean ${fmt(b.mean, 1)}, max ${b.max} (${b.single} of ${b.answers} answers carried one); service stamps have 1 ms resolution`);
  if (r.missingCards > 0 || r.missingOrders > 0) console.log(`  INCOMPLETE: ${r.missingCards} cards and ${r.missingOrders} orders did not arrive in time`);
  console.log(
    `telegram gate over ${fmt(r.proposals)} proposals: 202 → card p50 ${fmt(r.cardMs.p50, 1)} ms, p99 ${fmt(r.cardMs.p99, 1)} ms (goal ≤ ${T.goalP99Ms} ms, ${goal(r.cardMs.p99 <= T.goalP99Ms)}); `
    + `callback → order p50 ${fmt(r.orderMs.p50)} ms, p99 ${fmt(r.orderMs.p99)} ms (goal ≤ ${T.goalP99Ms} ms, ${goal(r.orderMs.p99 <= T.goalP99Ms)}; `
    + `first tap of each answer p99 ${fmt(r.orderFirstInBatchMs.p99)} ms)`,
  );
}

// ---------------------------------------------------------------------------------------------
// 6. Telegram under a stranger flood (issue 9)

async function benchTelegramFlood(root: string): Promise<void> {
  const F = TELEGRAM_FLOOD;
  console.log(`\n6. Telegram under a stranger flood: ${F.rounds} rounds with ${fmt(F.strangers)} strangers' /help ahead of an Approve tap, ${F.rounds} without (alternated, one service)`);
  console.log('  each round: an alert that needs a person, its card; in a flood round fresh strangers (private chats) each send /help, 10 at a time, all in');
  console.log('  the emulator before the allowed user taps Approve; a round starts once the bot\'s outbound calls have been quiet for 1 s; one warm-up round');
  const r = await runChild<FloodMeasured>('telegram-flood.ts', 'measure', {
    dataDir: path.join(root, 'telegram-flood'), rounds: F.rounds, strangers: F.strangers,
  } satisfies FloodArgs);
  console.log('  hand-over = the emulator ends the getUpdates answer carrying the tap; approval = journal approval.given; answer = answerCallbackQuery at the emulator');
  console.log(table(
    ['round', 'flood', 'sent in', 'tap → hand-over', 'ahead in batch', 'hand-over → approval', 'hand-over → answer', 'tap → answer', 'stranger replies before answer / by round end', 'quiet at start'],
    r.rounds.map((x, i) => [
      String(Math.floor(i / 2) + 1), x.flood ? fmt(r.strangers) : '-', ms(x.floodSendMs), ms(x.tapToHandoverMs), String(x.aheadInBatch), ms(x.handoverToApprovalMs),
      ms(x.handoverToAnswerMs), ms(x.tapToAnswerMs), x.flood ? `${fmt(x.strangerRepliesBeforeAnswer)} / ${fmt(x.strangerReplies)}` : '-', x.quietAtStart ? 'yes' : 'NO',
    ]),
  ));
  const spreadOf = (flood: boolean, pick: (x: FloodRound) => number) => spread(r.rounds.filter((x) => x.flood === flood).map(pick));
  const legs: Array<[string, (x: FloodRound) => number]> = [
    ['hand-over → approval.given', (x) => x.handoverToApprovalMs],
    ['hand-over → answer at the emulator', (x) => x.handoverToAnswerMs],
    ['tap sent → answer (what the person waits)', (x) => x.tapToAnswerMs],
  ];
  const rows: string[][] = [];
  for (const [label, pick] of legs) {
    const f = spreadOf(true, pick);
    const b = spreadOf(false, pick);
    rows.push([label, 'flood', fmt(f.n), ...pct(f, 0)]);
    rows.push(['', 'baseline', fmt(b.n), ...pct(b, 0)]);
    rows.push(['', 'ratio', '', fmt(f.p50 / b.p50, 1), fmt(f.p90 / b.p90, 1), fmt(f.p99 / b.p99, 1), fmt(f.max / b.max, 1)]);
  }
  console.log(table(['', '', 'n', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'], rows));
  const f = spreadOf(true, (x) => x.handoverToApprovalMs);
  const b = spreadOf(false, (x) => x.handoverToApprovalMs);
  const e2e = spreadOf(true, (x) => x.tapToAnswerMs);
  console.log(
    `telegram under a flood of ${fmt(r.strangers)} strangers: hand-over → decision p50 ${ms(f.p50)}, p99 ${ms(f.p99)}, max ${ms(f.max)} `
    + `vs ${ms(b.p50)}, ${ms(b.p99)}, ${ms(b.max)} without (p50 ratio ${fmt(f.p50 / b.p50, 1)}); tap → answer under the flood p50 ${ms(e2e.p50)}, max ${ms(e2e.max)} `
    + `(the issue sets no number: a stranger must never delay an allowed user)`,
  );
}

/** The parts named on the command line (all when none is). */
function selectedParts(): Set<Part> {
  const names = process.argv.slice(2).map((a) => a.toLowerCase());
  const unknown = names.filter((n) => !(PARTS as readonly string[]).includes(n));
  if (unknown.length > 0) {
    console.error(`unknown benchmark ${unknown.join(', ')}; expected any of ${PARTS.join(', ')} (none: all)`);
    process.exit(2);
  }
  return new Set(names.length > 0 ? (names as Part[]) : PARTS);
}

async function main(): Promise<void> {
  const parts = selectedParts();
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
    if (parts.has('restore')) await benchRestore(root);
    if (parts.has('transition')) await benchTransition(root);
    if (parts.has('commit')) await benchCommit(root);
    if (parts.has('webhook')) await benchWebhook(root);
    if (parts.has('telegram')) await benchTelegram(root);
    if (parts.has('telegram-flood')) await benchTelegramFlood(root);
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
