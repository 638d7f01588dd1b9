/**
 * Benchmark 3, child phases: webhook ingest throughput and latency of the real service against a
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
 *         With `dataDir` (the service's), then reads the journal and checks that every 2xx
 *         answer's signal has exactly one `signal.received` record.
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
  /** The service's DATA_DIR: check the journal afterwards. */
  dataDir?: string;
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
}

const newTally = (): Tally => ({ ok: 0, failures: {}, latencies: [] });

function count(t: Tally, status: string | number, ms?: number): void {
  if (typeof status === 'number' && status >= 200 && status < 300) {
    t.ok += 1;
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

/** `signal.received` records of this run's alerts (their `id` starts with `tag`), by signal id. */
function receivedSignals(dataDir: string, tag: string): Map<string, number> {
  const dir = path.join(dataDir, 'journal');
  const counts = new Map<string, number>();
  const marker = `"externalId":"${tag}-`;
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort()) {
    for (const line of fs.readFileSync(path.join(dir, file), 'utf8').split('\n')) {
      if (!line.includes('"type":"signal.received"') || !line.includes(marker)) continue;
      const record = JSON.parse(line) as { signalId: string };
      counts.set(record.signalId, (counts.get(record.signalId) ?? 0) + 1);
    }
  }
  return counts;
}

function checkJournal(dataDir: string, tag: string, answered: string[]): JournalCheck {
  const received = receivedSignals(dataDir, tag);
  let missing = 0;
  let repeated = 0;
  const answeredSet = new Set(answered);
  for (const id of answeredSet) {
    const n = received.get(id) ?? 0;
    if (n === 0) missing += 1;
    else if (n > 1) repeated += 1;
  }
  let unanswered = 0;
  for (const id of received.keys()) if (!answeredSet.has(id)) unanswered += 1;
  let total = 0;
  for (const n of received.values()) total += n;
  return { received: total, answered: answered.length, missing, repeated: repeated + (answered.length - answeredSet.size), unanswered };
}

async function load(args: LoadArgs): Promise<LoadMeasured> {
  const nextBody = alertBodies(args.secret, args.tag);
  const ids: string[] = [];
  const drive = (durationS: number): Promise<{ tally: Tally; elapsedS: number; lagMaxMs?: number; sockets?: number }> => (
    args.mode === 'max' ? autocannonRun(args, durationS, nextBody, ids) : pacedRun(args, durationS, nextBody, ids)
  );
  if (args.warmupS > 0) await drive(args.warmupS);
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
  // The record is written (synchronously) before the 202 goes out: every answered signal must be there now.
  if (args.dataDir) measured.journal = checkJournal(args.dataDir, args.tag, ids);
  return measured;
}

childMain({ bare, load });
