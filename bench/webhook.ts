/**
 * Benchmark 4, child phases: webhook ingest throughput and latency of the real service against a
 * bare express handler. The service (started by `bench/run.ts` through the test harness), the
 * bare app and the load generator each run in their own process.
 *
 *   bare  express 5 with one route, `POST /webhook/tradingview`, answering 202 with a JSON body
 *         shaped like the service's answer; it does not read the body (node drains it).
 *         Announces `{ port }` and serves until SIGTERM.
 *   load  drives one target with TradingView-shaped alerts (text/plain holding JSON, the right
 *         secret, a unique `id` each, so nothing is a duplicate):
 *           max    autocannon, a fixed number of connections for a fixed time
 *           paced  an open-loop sender at a fixed rate (one request every 1000/rate ms on a
 *                  keep-alive agent, whether or not earlier answers came back)
 *         Against the service (`service` given) it also reads the service's syncs, CPU time
 *         and event-loop delay over the measured part (`bench/service-probe.mjs`, read on
 *         SIGUSR2), measures how long the
 *         backlog takes to drain after the last 202 (`chatops_ingest_backlog` at 0 on
 *         `/metrics` and the last answered signals proposed or dropped on `/api/signals/:id`),
 *         then reads the journal and checks that every 2xx answer's signal has exactly one
 *         `signal.received` record and a `signal.proposed` or `signal.dropped` one.
 *
 * Why `paced` is not autocannon's `overallRate`: autocannon rate-limits per connection per
 * second (lib/httpClient.js, `reqsMadeThisSecond`): each connection sends its share back to back
 * at the start of every second and then idles, so "200 requests/s" is a burst of 200 requests at
 * a concurrency of `connections` once a second. With a rate it also "corrects" latencies for
 * coordinated omission with an expected interval of ceil(1/rate) = 1 ms, which adds synthetic
 * samples. Latencies here come from autocannon's `response` events (hrtime, sub-millisecond)
 * or from the paced sender's own hrtime stamps, not from autocannon's integer-ms histogram.
 */
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { EventEmitter } from 'node:events';
import express from 'express';
import { announce, childMain, spread, untilTerminated, type Spread } from './lib';

export const WEBHOOK_PATH = '/webhook/tradingview';

// ---------------------------------------------------------------------------------------------
// autocannon 8 has no type declarations: the part used here, typed by hand.

interface AutocannonRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  setupRequest?: (req: AutocannonRequest, context: Record<string, unknown>) => AutocannonRequest;
  onResponse?: (status: number, body: string, context: Record<string, unknown>) => void;
}

interface AutocannonResult {
  errors: number;
  timeouts: number;
  duration: number;
  '2xx': number;
  non2xx: number;
}

type AutocannonRun = EventEmitter & PromiseLike<AutocannonResult>;
type Autocannon = (opts: {
  url: string;
  connections: number;
  duration: number;
  method?: string;
  headers?: Record<string, string>;
  requests?: AutocannonRequest[];
  timeout?: number;
}) => AutocannonRun;

const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

// ---------------------------------------------------------------------------------------------
// bare

async function bare(): Promise<{ served: number }> {
  const app = express();
  let served = 0;
  app.post(WEBHOOK_PATH, (_req, res) => {
    served += 1;
    res.status(202).json({ status: 'accepted', signalId: 'sig-00000000-000000000000' });
  });
  const server = await new Promise<http.Server>((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  announce({ port: (server.address() as { port: number }).port, pid: process.pid });
  await untilTerminated();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  return { served };
}

// ---------------------------------------------------------------------------------------------
// load

export interface LoadArgs {
  /** Base URL of the target. */
  url: string;
  secret: string;
  /** Makes the alert ids of this run unique. */
  tag: string;
  mode: 'max' | 'paced';
  /** max: autocannon connections. */
  connections: number;
  /** paced: requests per second. */
  rate: number;
  durationS: number;
  /** Load of the same shape before the measured part (not counted in the figures). */
  warmupS: number;
  /** The service under load: its DATA_DIR (the journal is checked afterwards), pid, probe report file and API token. */
  service?: { dataDir: string; pid: number; probeFile: string; apiToken: string };
}

export interface JournalCheck {
  /** `signal.received` records of this run's alerts. */
  received: number;
  /** 2xx answers (warm-up included) that named a signal id. */
  answered: number;
  /** Answered signals without a record (must be 0). */
  missing: number;
  /** Answered signals with more than one record (must be 0). */
  repeated: number;
  /** Records without an answer: requests in flight when autocannon closed its connections. */
  unanswered: number;
  /** Answered signals with a `signal.proposed` or `signal.dropped` record after the drain, and the drop codes. */
  processed: number;
  dropped: Record<string, number>;
}

export interface Drain {
  /** Last 2xx answer → backlog empty and the last answered signals proposed or dropped. */
  ms: number;
  /** Backlog when the load stopped. */
  backlogAtEnd: number;
  /** The service's syncs over the measured part, until the last answer and until drained. */
  syncsAtEnd: number;
  syncsDrained: number;
  /** Until drained, by part of DATA_DIR: syncs and records (lines) written. */
  areas: Record<string, AreaCount>;
  /** The service's CPU time (user, system) over the measured part and its event-loop delay then, ms. */
  userMs: number;
  systemMs: number;
  loop: { p50: number; p99: number; max: number };
}

export interface AreaCount {
  syncs: number;
  records: number;
}

/** What `bench/service-probe.mjs` reports. */
interface ProbeReport {
  syncs: number;
  areas: Record<string, AreaCount>;
  userMs: number;
  systemMs: number;
  loop: { p50: number; p99: number; max: number };
}

export interface LoadMeasured {
  mode: LoadArgs['mode'];
  /** 2xx answers in the measured part. */
  ok: number;
  /** Other statuses and transport errors in the measured part, by status ("error" for errors). */
  failures: Record<string, number>;
  elapsedS: number;
  perSecond: number;
  /** ms, 2xx answers only. */
  latency: Spread;
  /** paced: the largest delay of a send behind its schedule (ms), and sockets the agent opened. */
  lagMaxMs?: number;
  sockets?: number;
  journal?: JournalCheck;
  drain?: Drain;
}

/** TradingView-shaped alert bodies with ids `<tag>-1`, `<tag>-2`, …. */
function alertBodies(secret: string, tag: string): () => string {
  const time = new Date().toISOString();
  const head = `{"secret":${JSON.stringify(secret)},"ticker":"UPBIT:BTCKRW","action":"buy","price":"100000000",`
    + `"strategy":"bench-ingest","timeframe":"15","time":"${time}","id":"${tag}-`;
  let n = 0;
  return () => `${head}${++n}"}`;
}

const HEADERS = { 'content-type': 'text/plain; charset=utf-8' };

interface Tally {
  ok: number;
  failures: Record<string, number>;
  latencies: number[];
  /** performance.now() of the last 2xx answer. */
  lastOkAt: number;
}

const newTally = (): Tally => ({ ok: 0, failures: {}, latencies: [], lastOkAt: 0 });

function count(t: Tally, status: string | number, ms?: number): void {
  if (typeof status === 'number' && status >= 200 && status < 300) {
    t.ok += 1;
    t.lastOkAt = performance.now();
    if (ms !== undefined) t.latencies.push(ms);
  } else {
    t.failures[String(status)] = (t.failures[String(status)] ?? 0) + 1;
  }
}

/** Signal ids named by 2xx answers (the bare app names none). */
function rememberSignal(ids: string[], status: number, body: string): void {
  if (status < 200 || status >= 300) return;
  const m = /"signalId":"(sig-[^"]+)"/.exec(body);
  if (m && m[1] !== 'sig-00000000-000000000000') ids.push(m[1]!);
}

async function autocannonRun(args: LoadArgs, durationS: number, nextBody: () => string, ids: string[]): Promise<{ tally: Tally; elapsedS: number }> {
  const tally = newTally();
  const started = performance.now();
  const run = autocannon({
    url: `${args.url}${WEBHOOK_PATH}`,
    connections: args.connections,
    duration: durationS,
    timeout: 10,
    requests: [{
      method: 'POST',
      path: WEBHOOK_PATH,
      headers: HEADERS,
      setupRequest: (req) => ({ ...req, body: nextBody() }),
      onResponse: (status, body) => rememberSignal(ids, status, body),
    }],
  });
  run.on('response', (_client: unknown, status: number, _bytes: number, responseTimeMs: number) => count(tally, status, responseTimeMs));
  run.on('reqError', () => count(tally, 'error'));
  const result = await run;
  const elapsedS = (performance.now() - started) / 1000;
  if (result.timeouts > 0) tally.failures['timeout'] = (tally.failures['timeout'] ?? 0) + result.timeouts;
  return { tally, elapsedS };
}

/** Open loop: request i goes out at start + i × 1000/rate ms, on a keep-alive agent. */
async function pacedRun(args: LoadArgs, durationS: number, nextBody: () => string, ids: string[]): Promise<{ tally: Tally; elapsedS: number; lagMaxMs: number; sockets: number }> {
  const url = new URL(args.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  let sockets = 0;
  const tally = newTally();
  const total = Math.round(args.rate * durationS);
  const interval = 1000 / args.rate;
  let sent = 0;
  let settled = 0;
  let lagMaxMs = 0;
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const finish = () => {
      settled += 1;
      if (settled === total) resolve();
    };
    const fire = () => {
      const body = nextBody();
      const t0 = performance.now();
      let done = false;
      const settle = (status: number | 'error', text = '') => {
        if (done) return;
        done = true;
        count(tally, status, status === 'error' ? undefined : performance.now() - t0);
        if (status !== 'error') rememberSignal(ids, status, text);
        finish();
      };
      const req = http.request({
        agent, host: url.hostname, port: url.port, method: 'POST', path: WEBHOOK_PATH, timeout: 10_000,
        headers: { ...HEADERS, 'content-length': Buffer.byteLength(body) },
      }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => settle(res.statusCode ?? 0, text));
        res.on('error', () => settle('error'));
      });
      req.on('socket', (socket) => {
        if (!(socket as { counted?: boolean }).counted) {
          (socket as { counted?: boolean }).counted = true;
          sockets += 1;
        }
      });
      req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
      req.on('error', () => settle('error'));
      req.end(body);
    };
    const tick = () => {
      const now = performance.now();
      while (sent < total && started + sent * interval <= now) {
        lagMaxMs = Math.max(lagMaxMs, now - (started + sent * interval));
        sent += 1;
        fire();
      }
      if (sent < total) setTimeout(tick, Math.max(0, started + sent * interval - performance.now()));
    };
    tick();
  });
  const elapsedS = (performance.now() - started) / 1000;
  agent.destroy();
  return { tally, elapsedS, lagMaxMs, sockets };
}

/**
 * From the journal: `signal.received` records of this run's alerts (their `id` starts with
 * `tag`), by signal id, and the outcome of every processed signal (`proposed` or the drop code).
 */
function journalSignals(dataDir: string, tag: string): { received: Map<string, number>; outcomes: Map<string, string> } {
  const dir = path.join(dataDir, 'journal');
  const received = new Map<string, number>();
  const outcomes = new Map<string, string>();
  const marker = `"externalId":"${tag}-`;
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort()) {
    for (const line of fs.readFileSync(path.join(dir, file), 'utf8').split('\n')) {
      if (line.includes('"type":"signal.received"') && line.includes(marker)) {
        const record = JSON.parse(line) as { signalId: string };
        received.set(record.signalId, (received.get(record.signalId) ?? 0) + 1);
      } else if (line.includes('"type":"signal.proposed"') || line.includes('"type":"signal.dropped"')) {
        const record = JSON.parse(line) as { type: string; signalId: string; code?: string };
        outcomes.set(record.signalId, record.type === 'signal.proposed' ? 'proposed' : (record.code ?? 'dropped'));
      }
    }
  }
  return { received, outcomes };
}

function checkJournal(dataDir: string, tag: string, answered: string[]): JournalCheck {
  const { received, outcomes } = journalSignals(dataDir, tag);
  let missing = 0;
  let repeated = 0;
  let processed = 0;
  const dropped: Record<string, number> = {};
  const answeredSet = new Set(answered);
  for (const id of answeredSet) {
    const n = received.get(id) ?? 0;
    if (n === 0) missing += 1;
    else if (n > 1) repeated += 1;
    const outcome = outcomes.get(id);
    if (outcome !== undefined) processed += 1;
    if (outcome !== undefined && outcome !== 'proposed') dropped[outcome] = (dropped[outcome] ?? 0) + 1;
  }
  let unanswered = 0;
  for (const id of received.keys()) if (!answeredSet.has(id)) unanswered += 1;
  let total = 0;
  for (const n of received.values()) total += n;
  return { received: total, answered: answered.length, missing, repeated: repeated + (answered.length - answeredSet.size), unanswered, processed, dropped };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The service's probe report now: SIGUSR2, then wait for `bench/service-probe.mjs` to write it. */
async function probeService(service: NonNullable<LoadArgs['service']>): Promise<ProbeReport> {
  const read = (): (ProbeReport & { seq: number }) | undefined => {
    try {
      return JSON.parse(fs.readFileSync(service.probeFile, 'utf8')) as ProbeReport & { seq: number };
    } catch {
      return undefined;
    }
  };
  const before = read()?.seq ?? 0;
  process.kill(service.pid, 'SIGUSR2');
  const until = performance.now() + 5000;
  for (;;) {
    const now = read();
    if (now && now.seq > before) return now;
    if (performance.now() > until) throw new Error(`the service (pid ${service.pid}) did not report; is bench/service-probe.mjs preloaded?`);
    await sleep(2);
  }
}

/** What `to` counted beyond `from`, by area. */
function areasSince(from: ProbeReport, to: ProbeReport): Record<string, AreaCount> {
  const out: Record<string, AreaCount> = {};
  for (const [area, c] of Object.entries(to.areas)) {
    const before = from.areas[area] ?? { syncs: 0, records: 0 };
    out[area] = { syncs: c.syncs - before.syncs, records: c.records - before.records };
  }
  return out;
}

/** `chatops_ingest_backlog` from /metrics. */
async function backlog(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^chatops_ingest_backlog (\d+)$/m.exec(text);
  if (!m) throw new Error('/metrics has no chatops_ingest_backlog gauge');
  return Number(m[1]);
}

/** Waits until the backlog is empty and the last answered signals are proposed or dropped; resolves with when that was seen. */
async function drained(args: LoadArgs, service: NonNullable<LoadArgs['service']>, answered: string[]): Promise<{ at: number; backlogAtEnd: number }> {
  const until = performance.now() + 120_000;
  const backlogAtEnd = await backlog(args.url);
  let n = backlogAtEnd;
  while (n > 0) {
    if (performance.now() > until) throw new Error(`the backlog still holds ${n} signals 120 s after the load`);
    await sleep(10);
    n = await backlog(args.url);
  }
  // Signals start in arrival order, a few at a time: the last ones answered finish last.
  const last = [...new Set(answered.slice(-16))];
  while (last.length > 0) {
    const res = await fetch(`${args.url}/api/signals/${last[0]}`, { headers: { authorization: `Bearer ${service.apiToken}` } });
    const status = res.ok ? ((await res.json()) as { status: string }).status : 'unknown';
    if (status === 'proposed' || status === 'dropped') last.shift();
    else if (performance.now() > until) throw new Error(`signal ${last[0]} is still ${status} 120 s after the load`);
    else await sleep(10);
  }
  return { at: performance.now(), backlogAtEnd };
}

async function load(args: LoadArgs): Promise<LoadMeasured> {
  const nextBody = alertBodies(args.secret, args.tag);
  const ids: string[] = [];
  const drive = (durationS: number): Promise<{ tally: Tally; elapsedS: number; lagMaxMs?: number; sockets?: number }> => (
    args.mode === 'max' ? autocannonRun(args, durationS, nextBody, ids) : pacedRun(args, durationS, nextBody, ids)
  );
  if (args.warmupS > 0) await drive(args.warmupS);
  const service = args.service;
  const probe0 = service ? await probeService(service) : undefined;
  const run = await drive(args.durationS);
  const measured: LoadMeasured = {
    mode: args.mode,
    ok: run.tally.ok,
    failures: run.tally.failures,
    elapsedS: run.elapsedS,
    perSecond: run.tally.ok / run.elapsedS,
    latency: spread(run.tally.latencies),
  };
  if (run.lagMaxMs !== undefined) measured.lagMaxMs = run.lagMaxMs;
  if (run.sockets !== undefined) measured.sockets = run.sockets;
  if (service && probe0) {
    const atEnd = await probeService(service);
    const { at, backlogAtEnd } = await drained(args, service, ids);
    const atDrained = await probeService(service);
    measured.drain = {
      ms: at - run.tally.lastOkAt, backlogAtEnd, syncsAtEnd: atEnd.syncs - probe0.syncs, syncsDrained: atDrained.syncs - probe0.syncs, areas: areasSince(probe0, atDrained),
      userMs: atEnd.userMs - probe0.userMs, systemMs: atEnd.systemMs - probe0.systemMs, loop: atEnd.loop,
    };
    // The record is written before the 202 goes out: every answered signal must be there.
    measured.journal = checkJournal(service.dataDir, args.tag, ids);
  }
  return measured;
}

childMain({ bare, load });
