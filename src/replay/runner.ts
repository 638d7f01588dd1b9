/**
 * `npm run replay`'s engine (docs/replay.md): the product's own core — trading loop, orchestrator
 * with the proposal machine, proposal services with the configured risk and approval policy, the
 * paper venue and its portfolio — assembled in a temporary DATA_DIR and fed the recorded signals
 * in simulated time. Time comes from the records (a clock this run moves, never the wall clock);
 * market data from the records (never the network); deadlines pass when simulated time passes
 * them. The same recording and approval mode always give the same result.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { secretValues, type Config } from '../config';
import { ConflictError, InvariantError } from '../errors';
import { createLogger, type Logger } from '../logging';
import { secretScrubber } from '../redaction';
import { NodeStorageIo } from '../persistence/storage-io';
import { WalProposalStore } from '../persistence/proposal-store';
import { TradeLog } from '../journal/trade-log';
import { ProposalArchive, SignalRegistry } from '../journal/tracker';
import { RuntimeState } from '../state';
import { ReplayMarketData } from '../context/market-snapshot';
import { RecordedMarket, quoteView, type MarketObservation } from '../context/recorded-market';
import { normaliseSymbol } from '../symbols';
import { PaperExecutor } from '../execution/paper-executor';
import { ExecutionRouter } from '../execution/router';
import { ReservationBook } from '../portfolio/reservations';
import { Orchestrator, type ProposalChange, type ProposalServices } from '../runtime/orchestrator';
import { createProposalServices } from '../runtime/proposal-services';
import { TradingLoop, proposalIdForSignal } from '../runtime/loop';
import { DedupeWindow } from '../runtime/dedupe-window';
import { Commands, type PortfolioReport } from '../runtime/commands';
import { createExplainer } from '../proposal/ai-summary';
import { requiredCandles } from '../proposal/rule-engine';
import type { Rules } from '../proposal/rules-config';
import type { ProposalView } from '../proposal/view';
import { displayNumber } from '../amounts';
import { FINAL_STATES, type ProposalState } from '../../machines/proposal.machine';
import type { OperatorCommand, OriginalOutcome, RecordedSignal, Recording } from './recording';

/** How proposals that need a person are answered: by nobody (they time out), all approved, all rejected. */
export type ApproveMode = 'policy' | 'all' | 'none';
export const APPROVE_MODES: readonly ApproveMode[] = ['policy', 'all', 'none'];

/** The principal of the replay's answers (`replay-2`, `replay-3` … where the two-person rule wants more). */
export const REPLAY_PRINCIPAL = 'replay';
const MAX_APPROVERS = 5;

export interface ReplayOptions {
  /** The configuration as the service loads it; its DATA_DIR is neither read nor written. */
  config: Config;
  rules: Rules;
  recording: Recording;
  approve: ApproveMode;
  /** Real milliseconds the core may stay busy without any proposal moving before the run is given up as stalled. */
  stallMs?: number;
}

/** One signal's fate in the replay. */
export interface ReplayedProposal {
  /** The recorded signal's id (`line-N` for a webhook body, `liquidation-N` for a liquidation the replay made). */
  signalId: string;
  symbol: string;
  side: 'buy' | 'sell';
  /** The proposal's final state; `dropped` (no proposal) or `duplicate` (a repeat inside the dedupe window). */
  state: string;
  /** The proposal's notional in the quote currency; null without a proposal. */
  notional: number | null;
  /** The drop's or the outcome's code. */
  reason?: string;
  /** The same in words. */
  detail?: string;
  /** Who decided the outcome (a principal, the venue, `approval-deadline` …). */
  decidedBy?: string;
  /** The principals whose approvals counted (`replay`, `replay-2` … with `--approve all`). */
  approvedBy?: string[];
  fill?: { price: number; quantity: number; fee: number; exact: { price: string; quantity: string; fee: string } };
  /** The original run's proposal id. */
  proposalId?: string;
  /** What the original run did with the signal (journal replays). */
  original?: OriginalOutcome;
}

export interface ReplayResult {
  kind: Recording['kind'];
  approve: ApproveMode;
  /** Simulated time of the first record and at the end (after the last deadline). */
  from: string | null;
  to: string | null;
  proposals: ReplayedProposal[];
  portfolio: PortfolioReport;
}

/** The replay's clock: read by every part of the core, moved only forward, only by the run. */
export class SimulatedClock {
  constructor(private t: number) {}

  readonly now = (): number => this.t;

  advanceTo(t: number): void {
    if (t > this.t) this.t = t;
  }
}

/** Runs a recording through the core in a temporary DATA_DIR, which is deleted afterwards. */
export async function runReplay(opts: ReplayOptions): Promise<ReplayResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatops-replay-'));
  try {
    const run = await ReplayRun.open(dir, opts);
    try {
      return await run.play();
    } finally {
      await run.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

type Step = { at: number; signal: RecordedSignal } | { at: number; command: OperatorCommand };

interface Received {
  step: RecordedSignal;
  replayId: string;
  duplicate: boolean;
}

/** The assembled core and the state of one run. */
class ReplayRun {
  private readonly received: Received[] = [];
  /** Proposals moving on their own (pending, approved, executing). */
  private readonly moving = new Set<string>();
  /** Proposals waiting for a person, with their deadlines (epoch ms). */
  private readonly awaiting = new Map<string, number>();
  private readonly answered = new Set<string>();
  /** Liquidations made by the replay (a breaker, an operator's command), in the order they started. */
  private readonly liquidations: string[] = [];
  private readonly drops = new Map<string, string>();
  private changeWaiters: Array<() => void> = [];
  private fallbackFile: ReplayMarketData | undefined;

  private constructor(
    private readonly opts: ReplayOptions,
    private readonly clock: SimulatedClock,
    private readonly core: Core,
    /** Breakers' liquidation requests (the core's hook adds them), started between steps. */
    private readonly liquidationRequests: Array<{ by: string; reason: string }>,
    /** Replay proposal id → the original run's, for its recorded re-check (the core's hook reads it). */
    private readonly originalIds: Map<string, string>,
  ) {
    core.orchestrator.onChange((change) => this.track(change));
    core.journal.onDurable((r) => {
      if (r.type === 'signal.dropped' && r.signalId) this.drops.set(r.signalId, String(r['reason'] ?? ''));
    });
  }

  static async open(dir: string, opts: ReplayOptions): Promise<ReplayRun> {
    const first = [...opts.recording.signals, ...opts.recording.commands].reduce((min, step) => Math.min(min, step.at), Number.POSITIVE_INFINITY);
    const clock = new SimulatedClock(Number.isFinite(first) ? first : 0);
    const requests: Array<{ by: string; reason: string }> = [];
    const originalIds = new Map<string, string>();
    const core = await assembleCore(dir, opts, clock, {
      onLiquidate: (code, reason) => requests.push({ by: `risk:${code}`, reason }),
      recheckOf: (id) => {
        const original = originalIds.get(id);
        return original === undefined ? undefined : opts.recording.rechecks.get(original);
      },
    });
    return new ReplayRun(opts, clock, core, requests, originalIds);
  }

  async play(): Promise<ReplayResult> {
    const { recording } = this.opts;
    const first = this.clock.now();
    const steps: Step[] = [...recording.signals.map((signal) => ({ at: signal.at, signal })), ...recording.commands.map((command) => ({ at: command.at, command }))];
    steps.sort((a, b) => a.at - b.at);
    for (const step of steps) {
      await this.advanceTo(step.at);
      if ('signal' in step) await this.receive(step.signal);
      else await this.command(step.command);
      await this.settle();
      await this.answerWaiting();
    }
    // Every proposal still waiting for a person reaches its deadline.
    await this.advanceTo(Number.POSITIVE_INFINITY);
    return {
      kind: recording.kind, approve: this.opts.approve,
      from: steps.length > 0 ? new Date(first).toISOString() : null,
      to: steps.length > 0 ? new Date(this.clock.now()).toISOString() : null,
      proposals: [...this.received.map((r) => this.outcomeOf(r)), ...this.liquidations.map((id, i) => this.liquidationOf(id, i))],
      portfolio: this.core.commands.portfolio(),
    };
  }

  close(): Promise<void> {
    return this.core.close();
  }

  /** Moves simulated time to `t`, letting every deadline on the way pass in order. */
  private async advanceTo(t: number): Promise<void> {
    for (;;) {
      let due = Number.POSITIVE_INFINITY;
      for (const deadline of this.awaiting.values()) due = Math.min(due, deadline);
      if (!Number.isFinite(due) || due > t) break;
      this.clock.advanceTo(due);
      this.core.orchestrator.clockMoved();
      await this.settle();
    }
    if (Number.isFinite(t)) {
      this.clock.advanceTo(t);
      this.core.orchestrator.clockMoved();
    }
  }

  private async receive(step: RecordedSignal): Promise<void> {
    const { loop, market } = this.core;
    market.set(step.signal.symbol, step.market ?? await this.fallback(step));
    const ack = await loop.receive(step.signal, step.source, step.dedupeKey);
    this.received.push({ step, replayId: ack.signalId, duplicate: ack.status === 'duplicate' });
    if (ack.status === 'accepted' && step.proposalId !== undefined) this.originalIds.set(proposalIdForSignal(ack.signalId), step.proposalId);
  }

  /**
   * Market data for a signal that has none recorded (webhook bodies, journals of older versions):
   * MARKET_DATA_REPLAY_FILE's candles when it is set (its last candle is the price, as for the
   * service), else the signal's own price as the market price.
   */
  private async fallback(step: RecordedSignal): Promise<MarketObservation> {
    const { config, rules } = this.opts;
    const { symbol } = step.signal;
    if (config.marketData.replayFile !== '') {
      this.fallbackFile ??= ReplayMarketData.load(path.resolve(config.marketData.replayFile), normaliseSymbol);
      const file = this.fallbackFile;
      const quote = await file.quote(symbol).then((q) => quoteView(q), (err: Error) => ({ error: err.message }));
      return { quote, candles: await file.candles(symbol, requiredCandles(rules)) };
    }
    if (step.signal.price !== undefined) {
      return { quote: { price: step.signal.price, at: new Date(step.at).toISOString(), source: 'replay' }, candles: [] };
    }
    return { quote: { error: `no market data is recorded for ${symbol}, MARKET_DATA_REPLAY_FILE is not set, and the signal has no price` }, candles: [] };
  }

  /** An operator's command, through the same command core as the API and Telegram. */
  private async command(c: OperatorCommand): Promise<void> {
    const { commands } = this.core;
    switch (c.kind) {
      case 'pause': await commands.pause(c.by); break;
      case 'resume': await commands.resume(c.by); break;
      case 'liquidate': await commands.liquidate(c.by); break;
      case 'trading_state': await commands.setTradingState(c.to, c.by, c.reason); break;
    }
  }

  /** `--approve all|none`: every proposal waiting for a person is answered at once. */
  private async answerWaiting(): Promise<void> {
    if (this.opts.approve === 'policy') return;
    const { orchestrator } = this.core;
    for (const id of [...this.awaiting.keys()]) {
      if (this.answered.has(id)) continue;
      this.answered.add(id);
      try {
        if (this.opts.approve === 'none') {
          await orchestrator.reject(id, REPLAY_PRINCIPAL, 'replay --approve none');
          await this.settle();
          continue;
        }
        // The two-person rule counts distinct principals: the replay answers as many as it needs.
        for (let n = 1; n <= MAX_APPROVERS && this.awaiting.has(id); n++) {
          await orchestrator.approve(id, n === 1 ? REPLAY_PRINCIPAL : `${REPLAY_PRINCIPAL}-${n}`);
          await this.settle();
        }
      } catch (err) {
        // Cancelled meanwhile (a halt): nothing to answer.
        if (!(err instanceof ConflictError)) throw err;
      }
    }
  }

  /**
   * Waits until nothing moves: every signal processed, every breaker's liquidation started, and
   * every proposal final or waiting for a person before its deadline.
   */
  private async settle(): Promise<void> {
    for (;;) {
      await this.core.loop.idle();
      const request = this.liquidationRequests.shift();
      if (request) {
        await this.core.state.orderLiquidation(request.by, request.reason);
        const report = await this.core.loop.liquidateAll(request.by, request.reason);
        void this.core.journal.append({ type: 'liquidation.pass', by: request.by, reason: request.reason, ...report });
        continue;
      }
      const busy = this.busy();
      if (busy === undefined) return;
      await this.nextChange(busy);
    }
  }

  private busy(): string | undefined {
    for (const id of this.moving) return id;
    const now = this.clock.now();
    for (const [id, deadline] of this.awaiting) if (deadline <= now) return id;
    return undefined;
  }

  private nextChange(busy: string): Promise<void> {
    const stallMs = this.opts.stallMs ?? 60_000;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const state = this.core.orchestrator.view(busy)?.state ?? 'unknown';
        reject(new InvariantError('replay_stalled', `the replay stalled: proposal ${busy} stayed ${state} for ${stallMs} ms without moving`, { proposalId: busy, state }));
      }, stallMs);
      this.changeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private track(change: ProposalChange): void {
    const { view, to } = change;
    this.moving.delete(view.id);
    this.awaiting.delete(view.id);
    if (to === 'awaiting-approval') this.awaiting.set(view.id, Date.parse(view.deadline));
    else if (!FINAL_STATES.includes(to)) this.moving.add(view.id);
    if (change.from === null && view.intent === 'liquidate') this.liquidations.push(view.id);
    const waiters = this.changeWaiters;
    this.changeWaiters = [];
    for (const w of waiters) w();
  }

  private outcomeOf(r: Received): ReplayedProposal {
    const { step } = r;
    const base = {
      signalId: step.signalId, symbol: step.signal.symbol, side: step.signal.action === 'buy' ? 'buy' as const : 'sell' as const,
      ...(step.proposalId !== undefined ? { proposalId: step.proposalId } : {}),
    };
    const tail = step.original ? { original: step.original } : {};
    if (r.duplicate) return { ...base, state: 'duplicate', notional: null, reason: 'duplicate', detail: 'a repeat of an earlier body inside DEDUPE_WINDOW_SECONDS', ...tail };
    const record = this.core.registry.get(r.replayId);
    if (record?.status === 'dropped') {
      const detail = this.drops.get(r.replayId);
      return { ...base, state: 'dropped', notional: null, ...(record.reason !== undefined ? { reason: record.reason } : {}), ...(detail !== undefined ? { detail } : {}), ...tail };
    }
    const view = record?.proposalId !== undefined ? this.core.orchestrator.view(record.proposalId) : undefined;
    if (!view) return { ...base, state: record?.status ?? 'received', notional: null, ...tail };
    return { ...base, ...proposalFacts(view), ...tail };
  }

  private liquidationOf(id: string, index: number): ReplayedProposal {
    const view = this.core.orchestrator.view(id)!;
    return { signalId: `liquidation-${index + 1}`, symbol: view.symbol, side: view.side, ...proposalFacts(view) };
  }
}

function proposalFacts(view: ProposalView): Pick<ReplayedProposal, 'state' | 'notional' | 'reason' | 'detail' | 'decidedBy' | 'approvedBy' | 'fill'> {
  const out: ReturnType<typeof proposalFacts> = { state: view.state as ProposalState, notional: view.notional };
  if (view.approvals.length > 0) out.approvedBy = view.approvals.map((a) => a.by);
  if (view.outcome) {
    out.reason = view.outcome.code;
    out.detail = view.outcome.reason;
    out.decidedBy = view.outcome.by;
  }
  if (view.fill) {
    const { price, quantity, fee } = view.fill;
    out.fill = { price: displayNumber(price), quantity: displayNumber(quantity), fee: displayNumber(fee), exact: { price, quantity, fee } };
  }
  return out;
}

/** The core parts a run drives. */
interface Core {
  orchestrator: Orchestrator;
  loop: TradingLoop;
  commands: Commands;
  registry: SignalRegistry;
  journal: TradeLog;
  state: RuntimeState;
  market: RecordedMarket;
  close(): Promise<void>;
}

interface CoreHooks {
  /** A breaker asks for every position to be sold (the run starts it between steps). */
  onLiquidate: (code: string, reason: string) => void;
  /** The quote the original run's re-check of this (replay) proposal saw, if it is recorded. */
  recheckOf: (proposalId: string) => MarketObservation | undefined;
}

/**
 * The service's core as src/main.ts assembles it, with the paper venue, the recorded market and
 * the simulated clock; no HTTP, Telegram, scheduler, risk clock or LLM (the explanation is the
 * template: it decides nothing).
 */
async function assembleCore(dir: string, opts: ReplayOptions, clock: SimulatedClock, hooks: CoreHooks): Promise<Core> {
  const { config, rules } = opts;
  const now = clock.now;
  const io = new NodeStorageIo();
  const redact = secretScrubber(secretValues(config));
  const logger = createLogger({ level: config.logLevel, dataDir: dir, secrets: secretValues(config), console: false });
  const journalDir = path.join(dir, 'journal');
  const journal = new TradeLog(io, journalDir, redact);
  const archive = new ProposalArchive(io, journalDir, now);
  const registry = new SignalRegistry(io, journalDir, now);
  const checkpointMinBytes = config.store.checkpointMinBytes;
  const { store } = await WalProposalStore.open(io, dir, { checkpointMinBytes });
  const state = await RuntimeState.open(io, dir, 'paper', now);
  // Fills at once: a fill delay is a wall-clock wait, and simulated time does not pass by itself.
  const paper = await PaperExecutor.open(io, dir, {
    initialCash: config.paper.initialCash, feeRate: config.paper.feeRate, slippagePct: config.paper.slippagePct, fillDelayMs: 0,
    minOrderNotional: config.paper.minOrderNotional, quoteCurrency: config.trading.quoteCurrency, timeZone: config.trading.timeZone, checkpointMinBytes, now,
  });
  const router = new ExecutionRouter([paper], { pollIntervalMs: 200, fillTimeoutMs: 60_000, fetchAttempts: 5, now });
  const reservations = new ReservationBook();
  const market = new RecordedMarket();
  const services = createProposalServices({
    riskLimits: config.risk,
    approvalLimits: { mode: config.trading.mode, minConfidence: config.approval.minConfidence, autoMaxNotional: config.approval.autoMaxNotional, twoPersonNotional: config.approval.twoPersonNotional },
    maxPriceDriftPct: config.approval.maxPriceDriftPct, allowAddToPosition: rules.allowAddToPosition, maxQuoteAgeSeconds: config.marketData.maxAgeSeconds,
    market, portfolio: paper, router, state, journal, logger, reservations, onLiquidate: hooks.onLiquidate, now,
  });
  const orchestrator = new Orchestrator({
    store, archive, journal, logger, reservations, recheckWaitMs: config.marketData.timeoutMs, services: withRecordedRechecks(services, market, hooks.recheckOf), now,
  });
  const loop = new TradingLoop({
    orchestrator, registry, journal, dedupe: new DedupeWindow(config.webhook.dedupeWindowSeconds * 1000, now), market, portfolio: paper, state, logger,
    rules: { rules, quoteCurrency: config.trading.quoteCurrency, approvalTimeoutSeconds: config.approval.timeoutSeconds, onMarketFailure: config.marketData.onFailure },
    explainer: createExplainer({ llm: { ...config.llm, baseUrl: '' }, quoteCurrency: config.trading.quoteCurrency, logger }),
    redact, now, concurrency: 1,
  });
  const commands = new Commands({
    orchestrator, loop, state, portfolio: paper, journal, quoteCurrency: config.trading.quoteCurrency, markMaxAgeSeconds: config.marketData.maxAgeSeconds, redact, now,
  });
  await orchestrator.restore();
  const close = async () => {
    await loop.idle();
    await orchestrator.stop();
    await paper.close();
    await state.flush().catch(() => undefined);
    await store.close();
    await Promise.all([journal.close(), archive.close(), registry.close()]);
    await endLogger(logger);
  };
  return { orchestrator, loop, commands, registry, journal, state, market, close };
}

/**
 * The services, with each re-check told the quote the original re-check of the same proposal saw
 * (it asks the market once, for the proposal's symbol, and nothing else runs meanwhile).
 */
function withRecordedRechecks(services: ProposalServices, market: RecordedMarket, recheckOf: CoreHooks['recheckOf']): ProposalServices {
  return {
    assess: (ctx) => services.assess(ctx),
    recheck: (ctx) => {
      const seen = recheckOf(ctx.id);
      if (seen) market.set(ctx.symbol, seen);
      return services.recheck(ctx);
    },
    execute: (ctx) => services.execute(ctx),
  };
}

function endLogger(logger: Logger): Promise<void> {
  return new Promise<void>((resolve) => {
    logger.on('finish', () => resolve());
    logger.end();
    setTimeout(resolve, 500).unref();
  });
}
