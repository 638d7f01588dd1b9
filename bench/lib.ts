/**
 * Shared pieces of the benchmarks: child-process plumbing (each measured phase runs in a fresh
 * `node --import tsx` process and answers with one JSON line on stdout; a server under load
 * announces itself with a first line and serves until SIGTERM), the real runtime
 * (Orchestrator + LowdbProposalStore + ProposalArchive + TradeLog) wired as `src/main.ts` wires
 * it, proposal data builders, and small statistics and formatting helpers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  FINAL_STATES, clientOrderIdFor, type Assessment, type ExecutionResult, type ProposalContext, type ProposalDraft, type ProposalState, type Recheck,
} from '../machines/proposal.machine';
import { TradeLog } from '../src/journal/trade-log';
import { ProposalArchive } from '../src/journal/tracker';
import { silentLogger } from '../src/logging';
import { LowdbProposalStore } from '../src/persistence/proposal-store';
import { newProposalId, newSignalId } from '../src/proposal/ids';
import type { Fill, OrderReport } from '../src/proposal/types';
import { Orchestrator, type ProposalServices } from '../src/runtime/orchestrator';

export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;
/** Transitions of one proposal from creation to `settled` (benchmark 2). */
export const TRANSITIONS_PER_PROPOSAL = 4;

// ---------------------------------------------------------------------------------------------
// Child processes

/** A child that takes longer than this is stuck: it is killed and the benchmark stops. */
const CHILD_TIMEOUT_MS = 10 * 60_000;

/** Spawns `bench/<file> <phase> <json args>` in a fresh Node process; JSON lines of its stdout go to `onLine`. */
function spawnBenchChild(file: string, phase: string, args: unknown, onLine: (line: string) => void): { child: ChildProcess; closed: Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> } {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, file), phase, JSON.stringify(args)], {
    cwd: path.dirname(BENCH_DIR),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
  let out = '';
  let pending = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    out += chunk;
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      if (line.startsWith('{')) onLine(line);
    }
  });
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (pending.trim().startsWith('{')) onLine(pending.trim());
      resolve({ code, signal, out });
    });
  });
  return { child, closed };
}

function childFailure(file: string, phase: string, r: { code: number | null; signal: NodeJS.Signals | null; out: string }): Error {
  return new Error(`${file} ${phase} exited with ${r.signal ?? `code ${r.code}`}${r.out.trim() ? `; stdout: ${r.out.trim().slice(-500)}` : ''}`);
}

/** Runs `bench/<file> <phase> <json args>` in a fresh Node process; resolves with its JSON line. */
export async function runChild<T>(file: string, phase: string, args: unknown): Promise<T> {
  let last: string | undefined;
  const { closed } = spawnBenchChild(file, phase, args, (line) => {
    last = line;
  });
  const r = await closed;
  if (r.code !== 0 || last === undefined) throw childFailure(file, phase, r);
  return JSON.parse(last) as T;
}

/** A child that keeps running (a server under load) until `stop`. */
export interface LongChild<R, F> {
  /** The first JSON line the child printed (see `announce`). */
  ready: R;
  pid: number;
  /** SIGTERM; resolves with the child's last JSON line (its phase result). */
  stop(): Promise<F>;
}

/**
 * Starts `bench/<file> <phase>` and resolves once it has announced itself with a first JSON
 * line; the phase keeps running (see `untilTerminated`) until `stop`.
 */
export function startChild<R, F = unknown>(file: string, phase: string, args: unknown): Promise<LongChild<R, F>> {
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    let announced = false;
    const { child, closed } = spawnBenchChild(file, phase, args, (line) => {
      lines.push(line);
      if (announced) return;
      announced = true;
      resolve({
        ready: JSON.parse(line) as R,
        pid: child.pid!,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          const r = await closed;
          const last = lines.length > 1 ? lines.at(-1) : undefined;
          if (r.code !== 0 || last === undefined) throw childFailure(file, phase, r);
          return JSON.parse(last) as F;
        },
      });
    });
    closed.then((r) => {
      if (!announced) reject(childFailure(file, phase, r));
    }, reject);
  });
}

/** In a child started with `startChild`: prints the JSON line that `startChild` resolves with. */
export function announce(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** In a child started with `startChild`: resolves when the parent asks it to stop. */
export function untilTerminated(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
}

/** Entry point of a child: runs the phase named in argv and prints its result as one JSON line. */
export function childMain(phases: Record<string, (args: any) => Promise<unknown>>): void {
  const [phase = '', json = '{}'] = process.argv.slice(2);
  const run = phases[phase];
  if (!run) {
    process.stderr.write(`unknown phase "${phase}"; expected one of ${Object.keys(phases).join(', ')}\n`);
    process.exit(2);
  }
  run(JSON.parse(json)).then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
    },
    (err: unknown) => {
      process.stderr.write(`${phase} failed: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Temporary folders and DATA_DIR resets

export function makeTempRoot(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'chatops-bench-'));
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

function listFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));
}

/** What a prepared DATA_DIR looks like: append-only files by size, rewritten files by content. */
export interface DirState {
  sizes: Record<string, number>;
  copies: Record<string, string>;
}

/**
 * Records a prepared DATA_DIR so that `restoreDirState` can undo a measured run: journal files
 * are append-only (truncate to the recorded size), `*.json` files are rewritten (copy back).
 */
export function captureDirState(dataDir: string, copyDir: string): DirState {
  const state: DirState = { sizes: {}, copies: {} };
  fs.mkdirSync(copyDir, { recursive: true });
  for (const file of listFiles(dataDir)) {
    if (file.endsWith('.json')) {
      const copy = path.join(copyDir, path.relative(dataDir, file).replaceAll(path.sep, '__'));
      fs.copyFileSync(file, copy);
      state.copies[file] = copy;
    } else {
      state.sizes[file] = fs.statSync(file).size;
    }
  }
  return state;
}

export function restoreDirState(dataDir: string, state: DirState): void {
  for (const file of listFiles(dataDir)) {
    const size = state.sizes[file];
    if (size !== undefined) {
      if (fs.statSync(file).size !== size) fs.truncateSync(file, size);
    } else if (state.copies[file] === undefined) {
      fs.rmSync(file);
    }
  }
  for (const [file, copy] of Object.entries(state.copies)) fs.copyFileSync(copy, file);
}

export function dirBytes(dir: string): number {
  return listFiles(dir).reduce((sum, f) => sum + fs.statSync(f).size, 0);
}

// ---------------------------------------------------------------------------------------------
// The runtime, wired as the composition root wires it

export interface Runtime {
  store: LowdbProposalStore;
  archive: ProposalArchive;
  journal: TradeLog;
  orchestrator: Orchestrator;
  close(): Promise<void>;
}

type ServicesFactory = (rt: Omit<Runtime, 'close'>) => ProposalServices;

/** Opens the live store, archive and journal under `dataDir` and provides `services`. */
export async function openRuntime(dataDir: string, services: ServicesFactory): Promise<Runtime> {
  return wireRuntime(dataDir, await LowdbProposalStore.open(dataDir), services);
}

/** Builds the archive, journal and orchestrator around an opened store. */
export function wireRuntime(dataDir: string, store: LowdbProposalStore, services: ServicesFactory): Runtime {
  const journalDir = path.join(dataDir, 'journal');
  const journal = new TradeLog(journalDir);
  const archive = new ProposalArchive(journalDir);
  const orchestrator = new Orchestrator({ store, archive, journal, logger: silentLogger() });
  const parts = { store, archive, journal, orchestrator };
  orchestrator.provide(services(parts));
  return {
    ...parts,
    async close() {
      await orchestrator.stop();
      journal.close();
      archive.close();
    },
  };
}

/** Assessment that lets the order through and asks one person to approve it. */
export function waitingAssessment(ctx: ProposalContext, at: number): Assessment {
  return {
    at,
    risk: { kind: 'allow', notional: ctx.notional, reasons: [] },
    approval: { approvers: 1, allowPartial: true, reasons: [] },
  };
}

/** Services that leave every proposal in `awaiting-approval`; re-check and execution must not run. */
export function waitingServices(): ProposalServices {
  return {
    assess: async (ctx) => waitingAssessment(ctx, Date.now()),
    recheck: async () => {
      throw new Error('benchmark: recheck must not be called');
    },
    execute: async () => {
      throw new Error('benchmark: execute must not be called');
    },
  };
}

/**
 * Services that approve and fill at once, shaped like the paper path of
 * `createProposalServices`: the re-check passes, and execution persists the `executing` snapshot
 * (`persistNow`), journals intent, submission and fill, then reports a complete fill.
 */
export function fillingServices(rt: Omit<Runtime, 'close'>): ProposalServices {
  return {
    assess: async (ctx) => waitingAssessment(ctx, Date.now()),
    recheck: async (ctx) => ({ at: Date.now(), ok: true, price: ctx.price, driftPct: 0 }) satisfies Recheck,
    execute: async (ctx) => {
      await new Promise((resolve) => setImmediate(resolve));
      await rt.orchestrator.persistNow(ctx.id);
      const { order, fill } = paperFill(ctx, Date.now());
      rt.journal.append({ type: 'order.intent', proposalId: ctx.id, clientOrderId: ctx.clientOrderId, request: { clientOrderId: ctx.clientOrderId, symbol: ctx.symbol, side: ctx.side, intent: ctx.intent, notional: ctx.notional, price: ctx.price } });
      rt.journal.append({ type: 'order.submitted', proposalId: ctx.id, clientOrderId: ctx.clientOrderId, order: { ...order, status: 'open', filledQuantity: 0, avgPrice: 0, fee: 0 } });
      rt.journal.append({ type: 'order.filled', proposalId: ctx.id, clientOrderId: ctx.clientOrderId, order, fill });
      const result: ExecutionResult = { at: Date.now(), order, fill };
      return result;
    },
  };
}

/** Tracks proposal states through `onChange` so a caller can wait for one. */
export class StateWatcher {
  private readonly waiting = new Map<string, { state: ProposalState; resolve: () => void; reject: (err: Error) => void }>();

  constructor(private readonly orchestrator: Orchestrator) {
    orchestrator.onChange((change) => {
      const w = this.waiting.get(change.view.id);
      if (!w) return;
      if (w.state === change.to) {
        this.waiting.delete(change.view.id);
        w.resolve();
      } else if (FINAL_STATES.includes(change.to)) {
        this.waiting.delete(change.view.id);
        w.reject(new Error(`proposal ${change.view.id} ended ${change.to} (${change.view.outcome?.reason ?? 'no reason'}), expected ${w.state}`));
      }
    });
  }

  /** Resolves once proposal `id` is in `state` (at once if it is already); rejects if it ends elsewhere. */
  until(id: string, state: ProposalState): Promise<void> {
    const current = this.orchestrator.view(id)?.state;
    if (current === state) return Promise.resolve();
    if (current && FINAL_STATES.includes(current)) return Promise.reject(new Error(`proposal ${id} ended ${current}, expected ${state}`));
    return new Promise((resolve, reject) => this.waiting.set(id, { state, resolve, reject }));
  }
}

// ---------------------------------------------------------------------------------------------
// Proposal data

/** A buy draft created at `now`, deadline an hour later, shaped like the rule engine's drafts. */
export function makeDraft(now: number): ProposalDraft {
  return {
    id: newProposalId(now),
    signalId: newSignalId(now),
    symbol: 'BTC/KRW',
    side: 'buy',
    intent: 'buy',
    notional: 100_000,
    quantity: null,
    price: 50_000_000,
    priceSource: 'signal',
    confidence: 0.82,
    reasons: [
      { code: 'rsi_oversold', message: 'RSI(14) 27.4 below 30 on the 15m chart' },
      { code: 'signal_strategy', message: 'tradingview strategy "mean-reversion" long entry' },
    ],
    explanation: 'Oversold bounce on BTC/KRW: RSI below 30 with volume above its 20-bar average.',
    createdAt: now,
    deadline: now + HOUR_MS,
  };
}

/** A complete paper fill of the proposal's notional at its price. */
export function paperFill(ctx: Pick<ProposalContext, 'clientOrderId' | 'symbol' | 'side' | 'notional' | 'price'>, at: number): { order: OrderReport; fill: Fill } {
  const quantity = ctx.notional / ctx.price;
  const fee = ctx.notional * 0.0005;
  const iso = new Date(at).toISOString();
  return {
    order: {
      clientOrderId: ctx.clientOrderId, venueOrderId: `paper-${ctx.clientOrderId}`, venue: 'paper', symbol: ctx.symbol, side: ctx.side,
      status: 'filled', filledQuantity: quantity, avgPrice: ctx.price, fee, submittedAt: iso, updatedAt: iso,
    },
    fill: { quantity, price: ctx.price, fee, notional: ctx.notional, at: iso },
  };
}

/** The context of a proposal that went pending → awaiting-approval → approved → executing → settled. */
export function settledContext(draft: ProposalDraft, stepMs: number): ProposalContext {
  const t = (n: number) => draft.createdAt + n * stepMs;
  const clientOrderId = clientOrderIdFor(draft.id);
  const { order, fill } = paperFill({ ...draft, clientOrderId }, t(4));
  return {
    ...draft,
    requestedNotional: draft.notional,
    risk: { kind: 'allow', notional: draft.notional, reasons: [] },
    approval: { approvers: 1, allowPartial: true, reasons: [] },
    approvals: [{ by: 'telegram:10001', at: t(2), sizeFactor: 1 }],
    sizeFactor: 1,
    clientOrderId,
    recheck: { price: draft.price, driftPct: 0, at: t(3) },
    order,
    fill,
    history: [
      { state: 'pending', at: t(0) },
      { state: 'awaiting-approval', at: t(1) },
      { state: 'approved', at: t(2), by: 'telegram:10001' },
      { state: 'executing', at: t(3) },
      { state: 'settled', at: t(4), by: 'paper' },
    ],
    outcome: { state: 'settled', at: t(4), by: 'paper', code: 'filled', reason: `filled ${fill.quantity} at ${fill.price}` },
  };
}

// ---------------------------------------------------------------------------------------------
// Statistics and formatting

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile (`p` in 0–100) of ascending `sorted` values; NaN when there are none. */
function rank(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** p50, p90, p99 and max of `values`. */
export interface Spread {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export function spread(values: number[]): Spread {
  const s = Float64Array.from(values).sort();
  const sorted = Array.from(s);
  return { n: sorted.length, p50: rank(sorted, 50), p90: rank(sorted, 90), p99: rank(sorted, 99), max: sorted.length > 0 ? sorted.at(-1)! : Number.NaN };
}

export const mb = (bytes: number): number => bytes / (1024 * 1024);

export function fmt(value: number, digits = 0): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Renders rows as a left-aligned text table with a header line. */
export function table(header: string[], rows: string[][], indent = '  '): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => indent + cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Whether the event loop got a turn: used while waiting for many actors. */
export const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
