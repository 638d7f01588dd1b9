/**
 * `npm run demo`: an offline demonstration. Starts the service on the sample candles
 * (docs/samples/candles.jsonl) in a temporary DATA_DIR on a free loopback port, posts the sample
 * TradingView alerts from docs/samples/ one after another (each once the previous one is handled),
 * and prints what became of each.
 *
 * The service then keeps running, and the demo prints commands for it (approve and reject the
 * proposals that wait for a person, look at one, the portfolio) with the real address, token and
 * ids: approving is what this product is about, so a newcomer gets to do it. Ctrl-C (SIGINT) or
 * SIGTERM stops the service and deletes the temporary folder. Nothing leaves this machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = path.resolve(import.meta.dirname, '..');
const SAMPLES = path.join(ROOT, 'docs/samples');
const CANDLES = path.join(SAMPLES, 'candles.jsonl');
/** Time a proposal waits for a person in the demo: long enough to read, try and approve. */
const APPROVAL_TIMEOUT_SECONDS = 3600;
/**
 * The order the alerts are posted in, as a story on one BTC/KRW position: a small buy approved by
 * policy, then the exit of what it bought (it waits for you), then two buys that the rules drop
 * because BTC/KRW is held. Other sample files follow, by name.
 */
const ORDER = ['upbit-sized.json', 'indicator-exit.json', 'indicator-buy.json', 'strategy-alert.json'];
/** States a proposal passes through on its own; the demo reports once none is in one. */
const MOVING = new Set(['pending', 'approved', 'executing']);

interface Demo {
  dir: string;
  url: string;
  secret: string;
  token: string;
  child: ChildProcess;
  exited: Promise<number | null>;
}

interface Posted {
  file: string;
  status: number;
  signalId: string | undefined;
}

interface ProposalAnswer {
  id: string;
  state: string;
  side: string;
  symbol: string;
  notional: number;
  confidence: number;
  reasons: Array<{ message: string }>;
  explanation: string;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `check` until it gives a value, for at most `ms`; throws naming `what` after that. */
async function waitFor<T>(what: string, ms: number, check: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`the demo gave up waiting for ${what} after ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The service as a child process (node + tsx, so signals reach it), with a minimal environment. */
async function startDemoService(): Promise<Demo> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatops-demo-'));
  const port = await freePort();
  const secret = randomBytes(24).toString('base64url');
  const token = randomBytes(24).toString('base64url');
  // Only what a process needs from the caller's environment: the demo's settings are its own.
  const inherited = Object.fromEntries(['PATH', 'HOME', 'TMPDIR', 'SYSTEMROOT'].flatMap((k) => (process.env[k] ? [[k, process.env[k]!]] : [])));
  const tsx = pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;
  const child = spawn(process.execPath, ['--import', tsx, path.join(ROOT, 'src/main.ts')], {
    cwd: dir,
    env: {
      ...inherited, DATA_DIR: path.join(dir, 'data'), HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn',
      MARKET_DATA_SOURCE: 'replay', MARKET_DATA_REPLAY_FILE: CANDLES, WEBHOOK_SECRET: secret, API_TOKEN: token,
      APPROVAL_TIMEOUT_SECONDS: String(APPROVAL_TIMEOUT_SECONDS),
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { dir, url: `http://127.0.0.1:${port}`, secret, token, child, exited };
}

async function api<T>(demo: Demo, p: string): Promise<T> {
  const res = await fetch(`${demo.url}${p}`, { headers: { authorization: `Bearer ${demo.token}` } });
  if (!res.ok) throw new Error(`GET ${p} answered ${res.status}`);
  return (await res.json()) as T;
}

/**
 * Posts every sample alert as TradingView does (text/plain JSON), with the demo's secret, in
 * ORDER; each waits until the previous one is handled, as alerts that arrive over time would.
 */
async function postAlerts(demo: Demo): Promise<Posted[]> {
  const rank = (f: string) => (ORDER.includes(f) ? ORDER.indexOf(f) : ORDER.length);
  const files = fs.readdirSync(SAMPLES).filter((f) => f.endsWith('.json')).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const posted: Posted[] = [];
  for (const file of files) {
    const body = JSON.parse(fs.readFileSync(path.join(SAMPLES, file), 'utf8')) as Record<string, unknown>;
    body['secret'] = demo.secret;
    const res = await fetch(`${demo.url}/webhook/tradingview`, { method: 'POST', headers: { 'content-type': 'text/plain; charset=utf-8' }, body: JSON.stringify(body) });
    const answer = (await res.json()) as { signalId?: string };
    posted.push({ file, status: res.status, signalId: answer.signalId });
    console.log(`POST ${file} → ${res.status} ${JSON.stringify(answer)}`);
    await waitUntilQuiet(demo, posted);
  }
  return posted;
}

/** Waits until every signal is handled and no proposal is still moving on its own. */
async function waitUntilQuiet(demo: Demo, posted: Posted[]): Promise<void> {
  await waitFor('the alerts to be handled', 30_000, async () => {
    for (const s of posted) {
      if (!s.signalId) continue;
      const sig = await api<{ status: string }>(demo, `/api/signals/${s.signalId}`);
      if (sig.status === 'received') return undefined;
    }
    const { proposals } = await api<{ proposals: Array<{ state: string }> }>(demo, '/api/proposals');
    return proposals.some((p) => MOVING.has(p.state)) ? undefined : true;
  });
}

/** Prints what became of each alert; returns the proposals that wait for a person, oldest first. */
async function report(demo: Demo, posted: Posted[]): Promise<string[]> {
  console.log('\nWhat became of each alert:');
  const waiting: string[] = [];
  for (const s of posted) {
    if (!s.signalId) continue;
    const sig = await api<{ status: string; proposalId?: string; reason?: string }>(demo, `/api/signals/${s.signalId}`);
    if (!sig.proposalId) {
      console.log(`- ${s.file}: ${sig.status}${sig.reason ? ` (${sig.reason})` : ''}`);
      continue;
    }
    const p = await api<ProposalAnswer>(demo, `/api/proposals/${sig.proposalId}`);
    if (p.state === 'awaiting-approval') waiting.push(p.id);
    console.log(`- ${s.file}: proposal ${p.id} ${p.side.toUpperCase()} ${p.symbol} ${Math.round(p.notional)} KRW, confidence ${Math.round(p.confidence * 100) / 100}, state ${p.state}`);
    for (const r of p.reasons.slice(0, 6)) console.log(`    • ${r.message}`);
    console.log(`    ${p.explanation}`);
  }
  const book = await api<{ cash: number; equity: number; positions: Array<{ symbol: string; exactQuantity: string; avgPrice: number }> }>(demo, '/api/portfolio');
  const held = book.positions.map((p) => `${p.exactQuantity} ${p.symbol} at ${p.avgPrice}`).join(', ') || 'nothing';
  console.log(`\nPortfolio: cash ${book.cash} KRW, equity ${book.equity} KRW, holding ${held}.`);
  return waiting;
}

/**
 * The commands to try while the service runs, in the README walk-through's style: approve the
 * first proposal that waits, reject the second if there is one, then look at the outcome and the
 * portfolio.
 */
function tryItCommands(url: string, token: string, waiting: readonly string[]): string[] {
  const json = `-H "$H" -H 'content-type: application/json'`;
  const lines = [`export API=${url} TOKEN=${token}`, 'H="Authorization: Bearer $TOKEN"', 'curl -s "$API/api/proposals?state=awaiting-approval" -H "$H"'];
  const [approve, reject] = waiting;
  if (approve) lines.push(`curl -s -X POST $API/api/proposals/${approve}/approve ${json} -d '{"by":"you"}'`);
  if (reject) lines.push(`curl -s -X POST $API/api/proposals/${reject}/reject ${json} -d '{"by":"you","reason":"not now"}'`);
  if (approve) lines.push(`curl -s $API/api/proposals/${approve} -H "$H"`);
  lines.push('curl -s $API/api/portfolio -H "$H"');
  return lines;
}

function printTryIt(demo: Demo, waiting: readonly string[]): void {
  console.log('\nTry it from another terminal while the demo runs:');
  for (const line of tryItCommands(demo.url, demo.token, waiting)) console.log(`  ${line}`);
  console.log('');
  console.log(`Operator console: ${demo.url}/ (paste the token ${demo.token}).`);
  console.log(`Proposals wait ${APPROVAL_TIMEOUT_SECONDS / 60} minutes for a person (APPROVAL_TIMEOUT_SECONDS), then time out.`);
  console.log(`The service runs until you press Ctrl-C; then it stops and ${demo.dir} is deleted.`);
}

async function main(): Promise<void> {
  const demo = await startDemoService();
  let stopping = false;
  const stop = async (code: number): Promise<never> => {
    stopping = true;
    if (demo.child.exitCode === null && demo.child.signalCode === null) demo.child.kill('SIGTERM');
    await demo.exited;
    fs.rmSync(demo.dir, { recursive: true, force: true });
    process.exit(code);
  };
  process.once('SIGINT', () => void stop(0));
  process.once('SIGTERM', () => void stop(0));
  void demo.exited.then((code) => {
    if (stopping) return;
    console.error(`\nThe service stopped by itself (exit code ${code}); the demo ends.`);
    void stop(1);
  });
  try {
    await waitFor('the service to be ready', 60_000, async () => ((await fetch(`${demo.url}/readyz`)).status === 200 ? true : undefined));
    console.log(`chatops-trading demo: service on ${demo.url} (paper, sample candles, data in ${demo.dir})\n`);
    const posted = await postAlerts(demo);
    printTryIt(demo, await report(demo, posted));
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    await stop(1);
  }
}

void main();
