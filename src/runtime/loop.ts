/**
 * The operating loop's front half: a signal is recorded durably and acknowledged, then (after
 * the answer, in arrival order, with a bounded backlog) joined with market data and the
 * portfolio, turned into a proposal draft by the rule engine, and started as a proposal actor.
 * Every acknowledged signal becomes a proposal or a recorded drop: one whose outcome could not
 * be recorded (storage) is processed again once storage is back, or at the next start. Also
 * starts liquidations.
 */
import type { Redact } from '../redaction';
import type { ProposalDraft } from '../../machines/proposal.machine';
import { evaluateSignal, requiredCandles, type EngineSettings, type RuleOutcome, type SignalContext } from '../proposal/rule-engine';
import { buildContext } from '../context/builder';
import { signalContextRecord } from '../context/recorded-market';
import { withExplanation, type Explainer } from '../proposal/ai-summary';
import { dayOfId, newSignalId } from '../proposal/ids';
import type { ParsedSignal, PositionView, Signal, SignalSource } from '../proposal/types';
import type { MarketData } from '../context/market-snapshot';
import type { PortfolioSource } from '../context/portfolio-snapshot';
import type { DedupeWindow } from './dedupe-window';
import type { SignalRegistry } from '../journal/tracker';
import type { TradeLog } from '../journal/trade-log';
import type { Logger } from '../logging';
import type { RuntimeState } from '../state';
import { OverloadedError, StorageError, describeError } from '../errors';
import { isPositive } from '../amounts';
import type { StorageHealthChange } from '../persistence/storage-health';
import type { Orchestrator } from './orchestrator';

/** Strategy tag of the signals that liquidations are recorded under. */
export const LIQUIDATION = 'liquidation: ';

/** What one liquidation pass did, per symbol. */
export interface LiquidationReport {
  /** Liquidation proposals started now. */
  started: Array<{ symbol: string; proposalId: string }>;
  /** Symbols whose liquidation was already under way. */
  underWay: string[];
  /** Holdings below the venue's minimum order: they cannot be sold and are not positions. */
  dust: Array<{ symbol: string; quantity: string }>;
  /** Symbols whose liquidation could not be started (retried by the risk clock while the liquidation stands). */
  failed: Array<{ symbol: string; error: string }>;
  /** Symbols whose venue takes no orders now (its session is closed): nothing started; the standing liquidation sells them once it opens. */
  waiting: Array<{ symbol: string; reason: string }>;
}

export interface SignalAck {
  status: 'accepted' | 'duplicate';
  signalId: string;
}

export interface TradingLoopDeps {
  orchestrator: Orchestrator;
  registry: SignalRegistry;
  journal: TradeLog;
  dedupe: DedupeWindow;
  market: MarketData;
  portfolio: PortfolioSource;
  state: RuntimeState;
  logger: Logger;
  rules: EngineSettings;
  explainer: Explainer;
  /** Bound on each market-data call while building a proposal. */
  marketTimeoutMs?: number;
  /** Signals acknowledged and not yet processed beyond which new ones answer 503 backlog_full. */
  backlogLimit?: number;
  /** Why the venue of a symbol takes no orders at `now` (a closed session), or undefined: a liquidation waits for it instead of failing. */
  venueClosed?: (symbol: string, now: number) => string | undefined;
  /** Signals processed at once (each waits on market data and the explainer); started in arrival order. */
  concurrency?: number;
  /** Takes configured secrets out of a signal before anything of it is stored or shown. */
  redact?: Redact;
  /** Storage recovery re-processes signals whose outcome could not be recorded. */
  storage?: { readonly ok: boolean; onChange(listener: (change: StorageHealthChange) => void): void };
  now?: () => number;
}

/** The proposal id of a signal: derived, so re-processing a signal after a crash finds it. */
export function proposalIdForSignal(signalId: string): string {
  return signalId.replace(/^sig-/, 'p-');
}

export class TradingLoop {
  private readonly now: () => number;
  private readonly inFlight = new Set<Promise<void>>();
  /** The liquidation pass running now (passes run one after another). */
  private liquidationPass: Promise<unknown> = Promise.resolve();
  /** Acknowledged signals waiting for their turn, oldest first. */
  private readonly backlog: Signal[] = [];
  private running = 0;
  /** Signals whose outcome could not be recorded: processed again once storage is back. */
  private readonly unrecorded = new Map<string, Signal>();
  /** Dedupe keys whose first signal is being recorded: a repeat waits for its outcome. */
  private readonly recording = new Map<string, Promise<string | undefined>>();
  private readonly backlogLimit: number;
  private readonly concurrency: number;

  constructor(private readonly deps: TradingLoopDeps) {
    this.now = deps.now ?? Date.now;
    this.backlogLimit = deps.backlogLimit ?? 1000;
    this.concurrency = deps.concurrency ?? 4;
    deps.storage?.onChange((change) => {
      if (change.kind === 'recovered') this.retryUnrecorded();
    });
  }

  private retryUnrecorded(): void {
    const again = [...this.unrecorded.values()];
    this.unrecorded.clear();
    for (const signal of again) this.enqueue(signal);
  }

  /** Signals acknowledged and not yet started. */
  get backlogSize(): number {
    return this.backlog.length;
  }

  /**
   * Records a signal durably and answers; processing happens after the answer. `dedupeKey`
   * (when given) makes a repeat inside the window a duplicate. Rejects with OverloadedError when
   * the backlog is full and with StorageError when the signal could not be recorded: either
   * way nothing was acknowledged and nothing will happen.
   */
  async receive(given: ParsedSignal, source: SignalSource, givenKey: string | null, extra: { raw?: Record<string, unknown> } = {}): Promise<SignalAck> {
    // A secret in any field (an alert template that carries the webhook secret in `strategy` or
    // `id`) is never stored: the signal, its raw body and its dedupe key are kept redacted.
    // Redaction is deterministic, so the same id still finds its duplicate.
    const redact = this.deps.redact ?? (<T>(v: T) => v);
    const parsed = redact(given);
    const dedupeKey = givenKey === null ? null : redact(givenKey);
    const raw = extra.raw === undefined ? undefined : redact(extra.raw);
    if (dedupeKey) {
      const first = this.deps.dedupe.seen(dedupeKey) ?? (await this.recording.get(dedupeKey));
      if (first) {
        void this.deps.journal.append({ type: 'signal.duplicate', signalId: first, source, key: dedupeKey });
        return { status: 'duplicate', signalId: first };
      }
    }
    if (this.backlog.length >= this.backlogLimit) {
      throw new OverloadedError('backlog_full', `${this.backlog.length} signals are waiting to be processed; nothing was recorded — retry later`, 5);
    }
    const now = this.now();
    const signal: Signal = { id: newSignalId(now), receivedAt: new Date(now).toISOString(), source, ...parsed };
    const recorded = this.record(signal, dedupeKey, raw);
    if (dedupeKey) {
      const outcome = recorded.then(() => signal.id, () => undefined);
      this.recording.set(dedupeKey, outcome);
      void outcome.then(() => this.recording.delete(dedupeKey));
    }
    await recorded;
    if (dedupeKey) this.deps.dedupe.remember(dedupeKey, signal.id);
    this.enqueue(signal);
    return { status: 'accepted', signalId: signal.id };
  }

  /**
   * The signal's registry record is what recovery reads, so it decides: the journal line is
   * written beside it, and if the record failed a `signal.refused` line says so.
   */
  private async record(signal: Signal, dedupeKey: string | null, raw: Record<string, unknown> | undefined): Promise<void> {
    const line = this.deps.journal.append({ type: 'signal.received', signalId: signal.id, signal, ...(raw ? { raw } : {}) });
    const registered = this.deps.registry.add({ id: signal.id, receivedAt: signal.receivedAt, status: 'received', signal, ...(dedupeKey ? { dedupeKey } : {}) });
    const [journalled, kept] = await Promise.allSettled([line, registered]);
    if (kept.status === 'rejected') {
      if (journalled.status === 'fulfilled') void this.deps.journal.append({ type: 'signal.refused', signalId: signal.id, error: describeError(kept.reason) });
      throw kept.reason;
    }
  }

  /** Resolves when every signal received so far has been processed (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0 || this.backlog.length > 0) {
      if (this.inFlight.size === 0) this.pump();
      await Promise.allSettled([...this.inFlight]);
    }
  }

  private enqueue(signal: Signal): void {
    this.backlog.push(signal);
    this.pump();
  }

  /** Starts backlog signals in arrival order while fewer than `concurrency` run. */
  private pump(): void {
    while (this.running < this.concurrency && this.backlog.length > 0) {
      const signal = this.backlog.shift()!;
      this.running += 1;
      this.track(this.process(signal).finally(() => {
        this.running -= 1;
        this.pump();
      }));
    }
  }

  /** Re-processes signals whose processing a crash cut short. */
  async recover(maxAgeMs: number): Promise<number> {
    let n = 0;
    for (const record of this.deps.registry.unprocessed(2)) {
      const signal = record.signal!;
      if (!this.deps.orchestrator.has(proposalIdForSignal(signal.id)) && this.now() - Date.parse(signal.receivedAt) > maxAgeMs) {
        await this.drop(signal.id, 'expired', `received ${signal.receivedAt}; too old to act on after a restart`).catch(() => this.unrecorded.set(signal.id, signal));
        continue;
      }
      n += 1;
      this.enqueue(signal);
    }
    return n;
  }

  /**
   * Starts a liquidation proposal (auto-approved by policy) for every open position that has none
   * under way. Each symbol is on its own: one that fails (storage, a corrupt record) is reported
   * and the others go on.
   */
  liquidateAll(by: string, reason: string): Promise<LiquidationReport> {
    // One pass at a time: a symbol counts as being liquidated only once its proposal has started,
    // so two passes side by side (the risk clock, a breaker, an operator) would both sell it.
    const pass = this.liquidationPass.then(() => this.liquidationPassNow(by, reason));
    this.liquidationPass = pass.catch(() => undefined);
    return pass;
  }

  private async liquidationPassNow(by: string, reason: string): Promise<LiquidationReport> {
    const portfolio = this.deps.portfolio.snapshot(this.now());
    const report: LiquidationReport = { started: [], underWay: [], dust: portfolio.dust.map((d) => ({ symbol: d.symbol, quantity: d.quantity })), failed: [], waiting: [] };
    for (const position of portfolio.positions) {
      if (!isPositive(position.quantity)) continue;
      if (this.deps.orchestrator.liquidating(position.symbol)) {
        report.underWay.push(position.symbol);
        continue;
      }
      // A sell its venue would refuse before sending (KRX at night) starts no proposal; the
      // standing liquidation comes back every risk check and sells it once the market opens.
      const closed = this.deps.venueClosed?.(position.symbol, this.now());
      if (closed !== undefined) {
        report.waiting.push({ symbol: position.symbol, reason: closed });
        continue;
      }
      try {
        const now = this.now();
        const signalId = newSignalId(now);
        const signal: Signal = { id: signalId, receivedAt: new Date(now).toISOString(), source: 'scheduler', symbol: position.symbol, action: 'exit', strategy: `${LIQUIDATION}${by}: ${reason}` };
        await this.record(signal, null, undefined);
        const draft = this.liquidationDraft(signal, position, now);
        await this.deps.orchestrator.start(draft);
        await this.markProposed(signalId, draft.id);
        report.started.push({ symbol: position.symbol, proposalId: draft.id });
      } catch (err) {
        report.failed.push({ symbol: position.symbol, error: describeError(err).message });
        this.deps.logger.error('liquidation of one symbol could not start; the others go on', { symbol: position.symbol, error: describeError(err) });
      }
    }
    return report;
  }

  /** Runs the rules on a signal with current market data; no side effects. */
  async evaluate(signal: Signal): Promise<RuleOutcome> {
    return evaluateSignal(await this.context(signal), this.deps.rules);
  }

  /** The signal with current market data (only the candles the rules need) and the portfolio. */
  private context(signal: Signal): Promise<SignalContext> {
    return buildContext(signal, {
      market: this.deps.market, portfolio: this.deps.portfolio, now: this.now,
      candleCount: requiredCandles(this.deps.rules.rules),
      ...(this.deps.marketTimeoutMs !== undefined ? { timeoutMs: this.deps.marketTimeoutMs } : {}),
    });
  }

  /** A liquidation proposal for one position (auto-approved by the approval policy). */
  private liquidationDraft(signal: Signal, position: PositionView, now: number): ProposalDraft {
    const why = (signal.strategy ?? '').slice(LIQUIDATION.length);
    // The reference price only; the order sells exactly what is held, re-priced at approval.
    const price = position.markPrice;
    return {
      id: proposalIdForSignal(signal.id), signalId: signal.id, symbol: position.symbol, side: 'sell', intent: 'liquidate',
      notional: position.marketValue, quantity: position.quantity, price, priceSource: 'market', confidence: 1,
      reasons: [{ code: 'liquidation', message: why }],
      explanation: `Liquidate the whole ${position.symbol} position (${position.quantity}): ${why}.`,
      createdAt: now, deadline: now + this.deps.rules.approvalTimeoutSeconds * 1000,
    };
  }

  private track(p: Promise<void>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  private async process(signal: Signal): Promise<void> {
    try {
      await this.decide(signal);
    } catch (err) {
      // The outcome could not be recorded: the registry still says `received`.
      this.unrecorded.set(signal.id, signal);
      // Storage may already be back (its probe won the race with this failure): go on now.
      if (this.deps.storage?.ok) setImmediate(() => this.retryUnrecorded());
      this.deps.logger.error('signal outcome not recorded; processed again when storage is back', { signalId: signal.id, error: describeError(err) });
    }
  }

  /** Makes a proposal of the signal or drops it with a reason; rejects only if that could not be recorded. */
  private async decide(signal: Signal): Promise<void> {
    // Made before a crash or a storage failure cut the bookkeeping short: only record it.
    const existing = proposalIdForSignal(signal.id);
    if (this.deps.orchestrator.has(existing)) return this.markProposed(signal.id, existing);
    try {
      // Only the service's own liquidation passes (source `scheduler`) make liquidations: a
      // signal from outside naming itself one is an ordinary signal (a person, arming, limits).
      if (signal.source === 'scheduler' && signal.strategy?.startsWith(LIQUIDATION)) {
        // A liquidation cut short by a crash is finished as a liquidation, pause or not.
        const position = this.deps.portfolio.snapshot(this.now()).positions.find((p) => p.symbol === signal.symbol && isPositive(p.quantity));
        if (!position) return this.drop(signal.id, 'no_position', `nothing of ${signal.symbol} is held any more`);
        // A later pass may have started its own sell of the symbol meanwhile: never two.
        if (this.deps.orchestrator.liquidating(signal.symbol)) return this.drop(signal.id, 'liquidation_under_way', `${signal.symbol} is already being liquidated`);
        const draft = this.liquidationDraft(signal, position, this.now());
        await this.deps.orchestrator.start(draft);
        return await this.markProposed(signal.id, draft.id);
      }
      if (this.deps.state.paused) return this.drop(signal.id, 'paused', 'trading is paused');
      if (this.deps.state.tradingState === 'halted') return this.drop(signal.id, 'halted', 'trading is halted (kill switch)');
      const ctx = await this.context(signal);
      // The market data the rules decide on, as received, so a replay decides on it again
      // (docs/replay.md). It acknowledges nothing: not awaited; the outcome's record follows it.
      void this.deps.journal.append(signalContextRecord(signal.id, ctx));
      const outcome = evaluateSignal(ctx, this.deps.rules);
      if (outcome.kind === 'none') return this.drop(signal.id, outcome.code, outcome.reason);
      const id = proposalIdForSignal(signal.id);
      if (!dayOfId(id)) throw new Error(`derived proposal id ${id} is malformed`);
      // The explainer is bounded by LLM_TIMEOUT_MS and falls back to the template on any failure.
      const explanation = await this.deps.explainer.explain(outcome.draft);
      if (explanation.source === 'llm' || explanation.error) {
        this.deps.journal.append({
          type: 'proposal.explained', signalId: signal.id, proposalId: id, source: explanation.source, model: explanation.model,
          promptVersion: explanation.promptVersion, ...(explanation.error ? { error: explanation.error } : {}),
        });
      }
      await this.deps.orchestrator.start({ ...withExplanation(outcome.draft, explanation), id });
      return await this.markProposed(signal.id, id);
    } catch (err) {
      if (err instanceof StorageError) throw err;
      this.deps.logger.error('signal processing failed', { signalId: signal.id, error: describeError(err) });
      return this.drop(signal.id, 'processing_failed', describeError(err).message);
    }
  }

  private async markProposed(signalId: string, proposalId: string): Promise<void> {
    const line = this.deps.journal.append({ type: 'signal.proposed', signalId, proposalId });
    await this.deps.registry.update(signalId, { status: 'proposed', proposalId });
    await Promise.allSettled([line]);
  }

  private async drop(signalId: string, code: string, reason: string): Promise<void> {
    const line = this.deps.journal.append({ type: 'signal.dropped', signalId, code, reason });
    const redact = this.deps.redact ?? (<T>(v: T) => v);
    await this.deps.registry.update(signalId, { status: 'dropped', reason: code, detail: redact(reason) });
    await Promise.allSettled([line]);
    this.deps.logger.info('signal dropped', { signalId, code, reason });
  }
}
