/**
 * Benchmarks (`npm run bench`). Every prepared and measured phase runs in its own child process
 * (see `bench/lib.ts`), in temporary DATA_DIRs that are removed at the end. Figures are printed
 * with their goals; a missed goal is reported, never a failure (exit 0 unless something crashes).
 *
 *   1. restore time and RSS with 10,000 live proposals persisted
 *   2. cost of one persisted transition with 1k vs 100k finished proposals in history
 *   3. webhook ingest throughput and latency, the real service against a bare express handler
 *   4. Telegram gate latencies: webhook 202 → card, Approve callback → order at the venue
 *
 * `npm run bench -- webhook telegram` runs only the parts named (restore, transition, webhook,
 * telegram); no name runs them all.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startService, type ServiceHandle } from '../test/support/service-process';
import {
  TRANSITIONS_PER_PROPOSAL, captureDirState, dirBytes, fmt, makeTempRoot, mb, median, removeDir, restoreDirState, runChild, startChild, table,
  type DirState, type Spread,
} from './lib';
import type { RestoreMeasured, RestorePrepared } from './restore';
import type { TelegramArgs, TelegramMeasured } from './telegram-latency';
import type { TransitionMeasured, TransitionPrepared } from './transition';
import type { LoadArgs, LoadMeasured } from './webhook';

const RESTORE = { live: 10_000, runs: 3, goalMs: 1000, goalRssMb: 250 };
const TRANSITION = { small: 1_000, large: 100_000, days: 10, live: 50, proposals: 500, warmup: 20, rounds: 3, goalRatio: 1.5 };
const WEBHOOK = { rounds: 3, connections: 10, maxS: 10, rate: 200, rateS: 10, warmupS: 1, goalRatio: 0.7, goalP99Ms: 10 };
const TELEGRAM = { proposals: 500, warmup: 20, signalRate: 10, tapRate: 20, goalP99Ms: 15 };
const PARTS = ['restore', 'transition', 'webhook', 'telegram'] as const;
type Part = (typeof PARTS)[number];

const goal = (met: boolean) => (met ? 'met' : 'MISSED');
const ms = (v: number) => `${fmt(v)} ms`;
const mib = (bytes: number, digits = 0) => `${fmt(mb(bytes), digits)} MB`;
const secs = (millis: number) => `${fmt(millis / 1000, 1)} s`;
const count = (n: number) => (n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n));

interface Prepared {
  restore?: { dataDir: string; prep: RestorePrepared; state: DirState };
  history?: Array<{ finished: number; dataDir: string; prep: TransitionPrepared; state: DirState; bytes: number }>;
}

/** Builds the DATA_DIRs of the selected parts (in parallel: nothing is measured yet) and records their prepared state. */
async function prepareAll(root: string, parts: Set<Part>): Promise<Prepared> {
  const T = TRANSITION;
  const restoreDir = path.join(root, 'restore');
  const sizes = parts.has('transition') ? [T.small, T.large] : [];
  const historyDirs = sizes.map((n) => path.join(root, `history-${count(n)}`));
  const [restorePrep, ...historyPreps] = await Promise.all([
    parts.has('restore') ? runChild<RestorePrepared>('restore.ts', 'prepare', { dataDir: restoreDir, count: RESTORE.live }) : undefined,
    ...sizes.map((finished, i) => runChild<TransitionPrepared>('transition.ts', 'prepare', { dataDir: historyDirs[i], finished, days: T.days, live: T.live })),
  ]);
  // Measured runs change their DATA_DIR (a restore rewrites the live store, a transition run
  // archives 520 more proposals): each run starts from the prepared state again.
  return {
    ...(restorePrep ? { restore: { dataDir: restoreDir, prep: restorePrep as RestorePrepared, state: captureDirState(restoreDir, `${restoreDir}-prepared`) } } : {}),
    ...(sizes.length > 0 ? {
      history: historyPreps.map((prep, i) => ({
        finished: sizes[i]!, dataDir: historyDirs[i]!, prep: prep as TransitionPrepared,
        state: captureDirState(historyDirs[i]!, `${historyDirs[i]}-prepared`), bytes: dirBytes(historyDirs[i]!),
      })),
    } : {}),
  };
}

async function benchRestore({ dataDir, prep, state }: NonNullable<Prepared['restore']>): Promise<void> {
  console.log(`\n1. Restore with ${fmt(RESTORE.live)} live proposals persisted (${RESTORE.runs} fresh processes)`);
  console.log(`  prepared ${fmt(prep.count)} proposals awaiting approval in ${secs(prep.prepareMs)}; live store ${mib(prep.fileBytes, 1)}`);
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
    + `live store ${mib(prep.fileBytes, 1)}`,
  );
}

async function benchTransition(history: NonNullable<Prepared['history']>): Promise<void> {
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

// ---------------------------------------------------------------------------------------------
// 3. Webhook ingest

const pct = (s: Spread, digits = 1) => [fmt(s.p50, digits), fmt(s.p90, digits), fmt(s.p99, digits), fmt(s.max, digits)];
const failuresText = (f: Record<string, number>) => Object.entries(f).map(([k, n]) => `${fmt(n)}× ${k}`).join(', ');

/** One line on the journal check of a service run: every 2xx answer has exactly one `signal.received`. */
function journalText(r: LoadMeasured): string {
  const j = r.journal;
  if (!j) return '';
  const inFlight = j.unanswered > 0 ? ` + ${fmt(j.unanswered)} in flight at the end` : '';
  const verdict = j.missing === 0 && j.repeated === 0 ? 'ok' : `NOT DURABLE: ${fmt(j.missing)} answered without a record, ${fmt(j.repeated)} recorded twice`;
  return `${fmt(j.received)} signal.received = ${fmt(j.answered)} 2xx${inFlight}: ${verdict}`;
}

interface WebhookRow { round: number; target: 'service' | 'bare'; r: LoadMeasured }

async function benchWebhook(root: string): Promise<void> {
  const W = WEBHOOK;
  console.log(`\n3. Webhook ingest: the real service vs a bare express 5 handler, each in its own process, load from a third (A/B alternated ${W.rounds}×)`);
  console.log('  body: a TradingView alert, text/plain holding JSON with the secret and a unique id (nothing is a duplicate); service with');
  console.log('  WEBHOOK_RATE_LIMIT_PER_MINUTE=0, DEDUPE_WINDOW_SECONDS=300, replay prices, paper venue, a fresh process and DATA_DIR per run');
  console.log('  bare: express 5, the same route, 202 with a JSON body of the same shape, body not parsed; ids checked in the journal after each service run');
  console.log('  the service figures include the work after each 202: every alert becomes a proposal awaiting approval (rules, risk, actor, live store)');
  const bare = await startChild<{ port: number }, { served: number }>('webhook.ts', 'bare', {});
  const bareUrl = `http://127.0.0.1:${bare.ready.port}`;
  let runs = 0;
  const drive = async (target: 'service' | 'bare', mode: LoadArgs['mode']): Promise<LoadMeasured> => {
    runs += 1;
    const base = { mode, connections: W.connections, rate: W.rate, durationS: mode === 'max' ? W.maxS : W.rateS, warmupS: W.warmupS, tag: `bench-${runs}` };
    if (target === 'bare') return runChild<LoadMeasured>('webhook.ts', 'load', { ...base, url: bareUrl, secret: 'none' } satisfies LoadArgs);
    const svc = await startWebhookService(path.join(root, `webhook-${runs}`));
    try {
      return await runChild<LoadMeasured>('webhook.ts', 'load', { ...base, url: svc.url, secret: svc.env['WEBHOOK_SECRET']!, dataDir: svc.dataDir } satisfies LoadArgs);
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
  } finally {
    await bare.stop();
  }
  const med = (rows: WebhookRow[], target: string, pick: (r: LoadMeasured) => number) => median(rows.filter((x) => x.target === target).map((x) => pick(x.r)));
  const header = ['round', 'target', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'];
  const rowOf = (x: WebhookRow, extra: string[]) => [String(x.round), x.target, fmt(x.r.perSecond), ...pct(x.r.latency), ...extra];
  const note = (r: LoadMeasured) => [failuresText(r.failures), journalText(r)].filter(Boolean).join('; ');

  console.log(`  a) maximum throughput: autocannon, ${W.connections} connections, ${W.warmupS} s warm-up + ${W.maxS} s; latency of 2xx answers`);
  console.log(table([...header, 'journal / failures'], max.map((x) => rowOf(x, [note(x.r)]))));
  const svcRate = med(max, 'service', (r) => r.perSecond);
  const bareRate = med(max, 'bare', (r) => r.perSecond);
  const ratios = max.filter((x) => x.target === 'service').map((x) => x.r.perSecond / max.find((y) => y.round === x.round && y.target === 'bare')!.r.perSecond);
  console.log(`  median service ${fmt(svcRate)} req/s, bare ${fmt(bareRate)} req/s; per-round ratios ${ratios.map((x) => fmt(x, 2)).join(', ')}`);

  console.log(`  b) fixed rate: ${W.rate} requests/s open loop (one every ${fmt(1000 / W.rate, 1)} ms on a keep-alive agent, whether or not answers came back), ${W.warmupS} s warm-up + ${W.rateS} s`);
  console.log(table([...header, 'sender lag', 'sockets', 'journal / failures'], paced.map((x) => rowOf(x, [`${fmt(x.r.lagMaxMs ?? 0, 1)} ms`, String(x.r.sockets ?? ''), note(x.r)]))));
  const svcP50 = med(paced, 'service', (r) => r.latency.p50);
  const svcP99 = med(paced, 'service', (r) => r.latency.p99);
  const bareP50 = med(paced, 'bare', (r) => r.latency.p50);
  const bareP99 = med(paced, 'bare', (r) => r.latency.p99);
  console.log(`  median p50/p99 service ${fmt(svcP50, 1)}/${fmt(svcP99, 1)} ms, bare ${fmt(bareP50, 1)}/${fmt(bareP99, 1)} ms`);
  const durable = [...max, ...paced].every((x) => !x.r.journal || (x.r.journal.missing === 0 && x.r.journal.repeated === 0));
  console.log(
    `webhook ingest (service figures include proposal creation after the 202): throughput ${fmt(svcRate)} vs bare ${fmt(bareRate)} req/s, `
    + `ratio ${fmt(svcRate / bareRate, 2)} (goal ≥ ${W.goalRatio}, ${goal(svcRate / bareRate >= W.goalRatio)}); `
    + `p99 at ${W.rate} req/s ${fmt(svcP99, 1)} ms (goal ≤ ${W.goalP99Ms} ms, ${goal(svcP99 <= W.goalP99Ms)}), bare ${fmt(bareP99, 1)} ms; `
    + `journal: ${durable ? 'one signal.received per 2xx answer in every run' : 'ANSWERED SIGNALS MISSING FROM THE JOURNAL (see the tables)'}`,
  );
}

/** The real service for the webhook benchmark: fresh DATA_DIR, no rate limit, a 300 s dedupe window. */
async function startWebhookService(dataDir: string): Promise<ServiceHandle> {
  fs.mkdirSync(dataDir, { recursive: true });
  const svc = await startService({ dataDir, env: { WEBHOOK_RATE_LIMIT_PER_MINUTE: '0', DEDUPE_WINDOW_SECONDS: '300' }, waitReady: false });
  try {
    await svc.waitReady(30_000);
  } catch (err) {
    await svc.kill();
    throw err;
  }
  return svc;
}

// ---------------------------------------------------------------------------------------------
// 4. Telegram gate latencies

async function benchTelegram(root: string): Promise<void> {
  const T = TELEGRAM;
  console.log(`\n4. Telegram gate latency: the real service and the telegram-test-api emulator (in the benchmark's process), ${fmt(T.proposals)} proposals after ${T.warmup} warm-up`);
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
    const prepared = await prepareAll(root, parts);
    if (prepared.restore) await benchRestore(prepared.restore);
    if (prepared.history) await benchTransition(prepared.history);
    if (parts.has('webhook')) await benchWebhook(root);
    if (parts.has('telegram')) await benchTelegram(root);
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
