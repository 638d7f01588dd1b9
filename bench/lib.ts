/**
 * Shared pieces of the benchmarks: child-process plumbing (each measured phase runs in a fresh
 * `node --expose-gc --import tsx` process and answers with one JSON line on stdout; a server
 * under load announces itself with a first line and serves until SIGTERM), the real runtime
 * (Orchestrator + WalProposalStore + ProposalArchive + TradeLog, and the product's proposal
 * services with the paper venue) wired as `src/main.ts` wires it, with every sync counted,
 * proposal data builders, and small statistics and formatting helpers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  FINAL_STATES, type Assessment, type ProposalContext, type ProposalDraft, type ProposalState,
} from '../machines/proposal.machine';
import { loadConfig, type Config } from '../src/config';
import { ReplayMarketData } from '../src/context/market-snapshot';
import { normaliseSymbol } from '../src/symbols';
import { PaperExecutor } from '../src/execution/paper-executor';
import { ExecutionRouter } from '../src/execution/router';
import { TradeLog } from '../src/journal/trade-log';
import { ProposalArchive } from '../src/journal/tracker';
import { silentLogger } from '../src/logging';
import type { LogStoreStats } from '../src/persistence/log-store';
import { WalProposalStore, type LiveProposalStore, type PersistedProposal } from '../src/persistence/proposal-store';
import { NodeStorageIo, type StorageFile, type StorageIo } from '../src/persistence/storage-io';
import { ReservationBook } from '../src/portfolio/reservations';
import { dayOfId, newProposalId, newSignalId } from '../src/proposal/ids';
import { Orchestrator, type ProposalServices } from '../src/runtime/orchestrator';
import { createProposalServices } from '../src/runtime/proposal-services';
import { RuntimeState } from '../src/state';

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
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(BENCH_DIR, file), phase, JSON.stringify(args)], {
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
 * and log segments are append-only (truncate to the recorded size), `*.json` files (checkpoints,
 * state) are rewritten (copy back).
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
  // A checkpoint during the run removes the log segments it covers: empty ones come back empty.
  for (const [file, size] of Object.entries(state.sizes)) {
    if (fs.existsSync(file)) continue;
    if (size > 0) throw new Error(`${file} (${size} bytes when prepared) is gone: the prepared DATA_DIR cannot be restored`);
    fs.writeFileSync(file, '');
  }
}

// ---------------------------------------------------------------------------------------------
// Storage with its syncs counted

/** Syncs of one part of DATA_DIR, and the records (lines) written there. */
export interface AreaCount {
  syncs: number;
  records: number;
}

/** Counts syncs, in total and by the folder of the file synced, and records written by folder. */
export class SyncCounter {
  syncs = 0;
  private readonly byDir = new Map<string, AreaCount>();

  count(dir: string, syncs: number, records = 0): void {
    this.syncs += syncs;
    const c = this.byDir.get(dir) ?? { syncs: 0, records: 0 };
    c.syncs += syncs;
    c.records += records;
    this.byDir.set(dir, c);
  }

  /** Counts by part of DATA_DIR: the live store, the journal, the archive, the paper venue, … */
  byArea(dataDir: string): Record<string, AreaCount> {
    const out: Record<string, AreaCount> = {};
    for (const [dir, c] of this.byDir) {
      const rel = path.relative(dataDir, dir).split(path.sep).join('/');
      const area = rel === 'proposals' ? 'live store' : rel.startsWith('journal/proposals') ? 'archive' : rel === 'journal/signals' ? 'signals'
        : rel === 'journal' ? 'journal' : rel === 'paper-venue' ? 'paper venue' : 'other';
      const sum = out[area] ?? { syncs: 0, records: 0 };
      sum.syncs += c.syncs;
      sum.records += c.records;
      out[area] = sum;
    }
    return out;
  }
}

/** Lines in a buffer: records of a JSON-lines file or a log segment. */
function lines(data: Buffer): number {
  let n = 0;
  for (let i = data.indexOf(0x0a); i !== -1; i = data.indexOf(0x0a, i + 1)) n += 1;
  return n;
}

/** A file of `CountingIo`: every fdatasync is counted. */
class CountedFile implements StorageFile {
  constructor(private readonly inner: StorageFile, private readonly counter: SyncCounter) {}

  get path(): string {
    return this.inner.path;
  }

  write(data: Buffer, position: number): Promise<void> {
    this.counter.count(path.dirname(this.inner.path), 0, lines(data));
    return this.inner.write(data, position);
  }

  datasync(): Promise<void> {
    this.counter.count(path.dirname(this.inner.path), 1);
    return this.inner.datasync();
  }

  truncate(size: number): Promise<void> {
    return this.inner.truncate(size);
  }

  size(): Promise<number> {
    return this.inner.size();
  }


  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * The product's file operations (`NodeStorageIo`) with a count of the syncs they make: one per
 * fdatasync, two per atomic replace (the file and its folder), one per new file and per
 * removal (the folder), and of the records appended. Every store, the journal and the paper
 * venue write through it.
 */
export class CountingIo extends SyncCounter implements StorageIo {
  private readonly inner = new NodeStorageIo();

  async open(file: string): Promise<StorageFile> {
    const existed = fs.existsSync(file);
    const opened = await this.inner.open(file);
    if (!existed) this.count(path.dirname(file), 1);
    return new CountedFile(opened, this);
  }

  readFile(file: string): Promise<Buffer | undefined> {
    return this.inner.readFile(file);
  }

  async replaceFile(file: string, data: Buffer | string[]): Promise<void> {
    await this.inner.replaceFile(file, data);
    this.count(path.dirname(file), 2);
  }

  async remove(file: string): Promise<void> {
    await this.inner.remove(file);
    this.count(path.dirname(file), 1);
  }

  list(dir: string): Promise<string[]> {
    return this.inner.list(dir);
  }

  mkdir(dir: string): Promise<void> {
    return this.inner.mkdir(dir);
  }
}

// ---------------------------------------------------------------------------------------------
// The runtime, wired as the composition root wires it

/** The price of every benchmark proposal and of the replay candle the re-check reads. */
export const PRICE = 50_000_000;

/** Environment of the in-process runtime: replay prices, paper venue, room for many buys. */
function benchConfig(dataDir: string): Config {
  const candles = path.join(dataDir, '.candles.jsonl');
  if (!fs.existsSync(candles)) {
    fs.mkdirSync(dataDir, { recursive: true });
    const close = PRICE;
    fs.writeFileSync(candles, `${JSON.stringify({ symbol: 'KRW-BTC', time: new Date().toISOString(), open: close, high: close, low: close, close, volume: 10 })}\n`);
  }
  return loadConfig({
    DATA_DIR: dataDir, MARKET_DATA_SOURCE: 'replay', MARKET_DATA_REPLAY_FILE: candles,
    RISK_MAX_POSITION_PCT: '100', PAPER_INITIAL_CASH: '100000000000', APPROVAL_TIMEOUT_SECONDS: '3600',
  });
}

/** Opens the live store as `src/main.ts` does. */
export async function openStore(io: StorageIo, dataDir: string): Promise<WalProposalStore> {
  return (await WalProposalStore.open(io, dataDir, { checkpointMinBytes: benchConfig(dataDir).store.checkpointMinBytes })).store;
}

/**
 * The live store as the orchestrator sees it, plus a promise per proposal that resolves once
 * its record is removed (archived and gone from the live store: the end of its bookkeeping).
 */
export class ObservedStore implements LiveProposalStore {
  private readonly removals = new Map<string, () => void>();

  constructor(readonly inner: WalProposalStore) {}

  get size(): number {
    return this.inner.size;
  }

  get stats(): LogStoreStats {
    return this.inner.stats;
  }

  get(id: string): PersistedProposal | undefined {
    return this.inner.get(id);
  }

  all(): Iterable<PersistedProposal> {
    return this.inner.all();
  }

  put(record: PersistedProposal): Promise<void> {
    return this.inner.put(record);
  }

  async remove(id: string): Promise<void> {
    await this.inner.remove(id);
    this.removals.get(id)?.();
    this.removals.delete(id);
  }

  /** Resolves once proposal `id` has been removed (call it before the removal can happen). */
  removed(id: string): Promise<void> {
    return new Promise((resolve) => this.removals.set(id, resolve));
  }

  flush(): Promise<void> {
    return this.inner.flush();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

export interface Runtime {
  io: CountingIo;
  store: ObservedStore;
  archive: ProposalArchive;
  journal: TradeLog;
  orchestrator: Orchestrator;
  /** The paper venue (paper services only). */
  paper: PaperExecutor | undefined;
  /**
   * Stops the orchestrator and closes the journal and the venue. The live store is closed (and
   * checkpointed, as on a clean stop) only with `checkpoint`: measured runs skip that write.
   */
  close(opts?: { checkpoint?: boolean }): Promise<void>;
}

/**
 * `waiting`: every proposal stays in `awaiting-approval` (re-check and execution must not run).
 * `paper`: the product's services (`createProposalServices`) with the paper venue, replay
 * prices and the runtime state, as `src/main.ts` builds them in paper mode.
 */
export type ServicesKind = 'waiting' | 'paper';

/** Opens the live store, archive and journal under `dataDir` and wires the orchestrator. */
export async function openRuntime(dataDir: string, services: ServicesKind): Promise<Runtime> {
  const io = new CountingIo();
  return wireRuntime(dataDir, io, await openStore(io, dataDir), services);
}

/** Builds the archive, journal, services and orchestrator around an opened store. */
export async function wireRuntime(dataDir: string, io: CountingIo, opened: WalProposalStore, services: ServicesKind): Promise<Runtime> {
  const journalDir = path.join(dataDir, 'journal');
  const journal = new TradeLog(io, journalDir);
  const archive = new ProposalArchive(io, journalDir);
  const logger = silentLogger();
  const store = new ObservedStore(opened);
  const config = benchConfig(dataDir);
  const reservations = new ReservationBook();
  let paper: PaperExecutor | undefined;
  let proposalServices: ProposalServices = waitingServices();
  if (services === 'paper') {
    paper = await PaperExecutor.open(io, dataDir, {
      initialCash: config.paper.initialCash, feeRate: config.paper.feeRate, slippagePct: config.paper.slippagePct,
      fillDelayMs: config.paper.fillDelayMs, quoteCurrency: config.trading.quoteCurrency, timeZone: config.trading.timeZone,
      checkpointMinBytes: config.store.checkpointMinBytes,
    });
    const state = await RuntimeState.open(io, dataDir, config.trading.mode);
    proposalServices = createProposalServices({
      riskLimits: config.risk,
      approvalLimits: { mode: config.trading.mode, minConfidence: config.approval.minConfidence, autoMaxNotional: config.approval.autoMaxNotional, twoPersonNotional: config.approval.twoPersonNotional },
      maxPriceDriftPct: config.approval.maxPriceDriftPct,
      // Bench proposals buy one symbol many times over.
      allowAddToPosition: true,
      maxQuoteAgeSeconds: config.marketData.maxAgeSeconds,
      market: ReplayMarketData.load(config.marketData.replayFile, normaliseSymbol),
      portfolio: paper,
      router: new ExecutionRouter(paper, { pollIntervalMs: 200, fillTimeoutMs: 60_000, fetchAttempts: 5 }),
      state, journal, logger, reservations,
      onLiquidate: () => undefined,
    });
  }
  const orchestrator = new Orchestrator({
    store, archive, journal, logger, reservations, recheckWaitMs: config.marketData.timeoutMs, services: proposalServices,
  });
  return {
    io, store, archive, journal, orchestrator, paper,
    async close(opts = {}) {
      await orchestrator.stop();
      await paper?.close();
      if (opts.checkpoint) await store.close();
      await Promise.all([journal.close(), archive.close()]);
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

/** A buy draft created at `now`, deadline `ttlMs` (an hour) later, shaped like the rule engine's drafts. */
export function makeDraft(now: number, ttlMs = HOUR_MS): ProposalDraft {
  return {
    id: newProposalId(now),
    signalId: newSignalId(now),
    symbol: 'BTC/KRW',
    side: 'buy',
    intent: 'buy',
    notional: 100_000,
    quantity: null,
    price: PRICE,
    priceSource: 'signal',
    confidence: 0.82,
    reasons: [
      { code: 'rsi_oversold', message: 'RSI(14) 27.4 below 30 on the 15m chart' },
      { code: 'signal_strategy', message: 'tradingview strategy "mean-reversion" long entry' },
    ],
    explanation: 'Oversold bounce on BTC/KRW: RSI below 30 with volume above its 20-bar average.',
    createdAt: now,
    deadline: now + ttlMs,
  };
}

/**
 * Writes `count` copies of `template` (a proposal awaiting approval as the orchestrator
 * persisted it) with fresh ids straight into the live store, one group commit per batch of
 * records: preloading 100,000 proposals through actors would take minutes.
 */
export async function preloadAwaiting(store: LiveProposalStore, template: PersistedProposal, count: number): Promise<void> {
  const text = JSON.stringify(template);
  const ctx = (template.snapshot as { context: ProposalContext }).context;
  // Ids of the product's shape (`p-YYYYMMDD-<12 hex>`) from a counter: 200,000 random ones cost seconds.
  const day = dayOfId(ctx.id)!.replaceAll('-', '');
  const base = Number.parseInt(randomBytes(4).toString('hex'), 16) * 0x10000;
  const id = (prefix: string, n: number) => `${prefix}-${day}-${(base + n).toString(16).padStart(12, '0')}`;
  const BATCH = 5000;
  for (let i = 0; i < count; i += BATCH) {
    const writes: Array<Promise<void>> = [];
    for (let j = i; j < Math.min(count, i + BATCH); j++) {
      // The client order id derives from the proposal id: it is replaced with it.
      const copy = text.replaceAll(ctx.id, id('p', j)).replaceAll(ctx.signalId, id('sig', j));
      writes.push(store.put(JSON.parse(copy) as PersistedProposal));
    }
    await Promise.all(writes);
  }
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
