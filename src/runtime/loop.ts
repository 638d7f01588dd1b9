/**
 * The operating loop's front half: a signal is recorded durably and acknowledged, then (after
 * the answer) joined with market data and the portfolio, turned into a proposal draft by the
 * rule engine, and started as a proposal actor. Also starts liquidations.
 */
import type { ProposalDraft } from '../../machines/proposal.machine';
import { evaluateSignal, requiredCandles, type EngineSettings, type RuleOutcome } from '../proposal/rule-engine';
import { buildContext } from '../context/builder';
import { withExplanation, type Explainer } from '../proposal/ai-summary';
import { dayOfId, newSignalId } from '../proposal/ids';
import type { PositionView, Signal, SignalSource } from '../proposal/types';
import type { MarketData } from '../context/market-snapshot';
import type { PortfolioSource } from '../context/portfolio-snapshot';
import type { DedupeWindow } from '../event-router/dedupe';
import type { ParsedSignal } from '../event-router/schemas';
import type { SignalRegistry } from '../journal/tracker';
import type { TradeLog } from '../journal/trade-log';
import type { Logger } from '../logging';
import type { RuntimeState } from '../state';
import { describeError } from '../errors';
import type { Orchestrator } from './orchestrator';

/** Strategy tag of the signals that liquidations are recorded under. */
const LIQUIDATION = 'liquidation: ';

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
  now?: () => number;
}

/** The proposal id of a signal: derived, so re-processing a signal after a crash finds it. */
export function proposalIdForSignal(signalId: string): string {
  return signalId.replace(/^sig-/, 'p-');
}

export class TradingLoop {
  private readonly now: () => number;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly deps: TradingLoopDeps) {
    this.now = deps.now ?? Date.now;
  }

  /**
   * Records a signal durably and answers at once; processing happens after the answer.
   * `dedupeKey` (when given) makes a repeat inside the window a duplicate.
   */
  async receive(parsed: ParsedSignal, source: SignalSource, dedupeKey: string | null, extra: { raw?: Record<string, unknown> } = {}): Promise<SignalAck> {
    const now = this.now();
    if (dedupeKey) {
      const first = this.deps.dedupe.seen(dedupeKey);
      if (first) {
        this.deps.journal.append({ type: 'signal.duplicate', signalId: first, source, key: dedupeKey });
        return { status: 'duplicate', signalId: first };
      }
    }
    const signal: Signal = { id: newSignalId(now), receivedAt: new Date(now).toISOString(), source, ...parsed };
    this.deps.journal.append({ type: 'signal.received', signalId: signal.id, signal, ...(extra.raw ? { raw: extra.raw } : {}) });
    this.deps.registry.add({ id: signal.id, receivedAt: signal.receivedAt, status: 'received', signal, ...(dedupeKey ? { dedupeKey } : {}) });
    if (dedupeKey) this.deps.dedupe.remember(dedupeKey, signal.id);
    this.track(this.process(signal));
    return { status: 'accepted', signalId: signal.id };
  }

  /** Resolves when every signal received so far has been processed (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** Re-processes signals whose processing a crash cut short. */
  async recover(maxAgeMs: number): Promise<number> {
    let n = 0;
    for (const record of this.deps.registry.unprocessed(2)) {
      const signal = record.signal!;
      const proposalId = proposalIdForSignal(signal.id);
      if (this.deps.orchestrator.has(proposalId)) {
        this.markProposed(signal.id, proposalId);
        continue;
      }
      if (this.now() - Date.parse(signal.receivedAt) > maxAgeMs) {
        this.drop(signal.id, 'expired', `received ${signal.receivedAt}; too old to act on after a restart`);
        continue;
      }
      n += 1;
      this.track(this.process(signal));
    }
    return n;
  }

  /** Starts liquidation proposals for every open position (auto-approved by policy). */
  async liquidateAll(by: string, reason: string): Promise<string[]> {
    const portfolio = this.deps.portfolio.snapshot(this.now());
    const started: string[] = [];
    for (const position of portfolio.positions) {
      const live = this.deps.orchestrator.live().some((p) => p.intent === 'liquidate' && p.symbol === position.symbol);
      if (live || position.quantity <= 0) continue;
      const now = this.now();
      const signalId = newSignalId(now);
      const signal: Signal = { id: signalId, receivedAt: new Date(now).toISOString(), source: 'scheduler', symbol: position.symbol, action: 'exit', strategy: `${LIQUIDATION}${by}: ${reason}` };
      this.deps.journal.append({ type: 'signal.received', signalId, signal, reason });
      this.deps.registry.add({ id: signalId, receivedAt: signal.receivedAt, status: 'received', signal });
      const draft = this.liquidationDraft(signal, position, now);
      await this.deps.orchestrator.start(draft);
      this.markProposed(signalId, draft.id);
      started.push(draft.id);
    }
    return started;
  }

  /** Runs the rules on a signal with current market data; no side effects. */
  async evaluate(signal: Signal): Promise<RuleOutcome> {
    const ctx = await buildContext(signal, {
      market: this.deps.market, portfolio: this.deps.portfolio, now: this.now,
      candleCount: requiredCandles(this.deps.rules.rules),
      ...(this.deps.marketTimeoutMs !== undefined ? { timeoutMs: this.deps.marketTimeoutMs } : {}),
    });
    return evaluateSignal(ctx, this.deps.rules);
  }

  /** A liquidation proposal for one position (auto-approved by the approval policy). */
  private liquidationDraft(signal: Signal, position: PositionView, now: number): ProposalDraft {
    const why = (signal.strategy ?? '').slice(LIQUIDATION.length);
    const price = position.quantity > 0 ? position.marketValue / position.quantity : position.avgPrice;
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
      if (signal.strategy?.startsWith(LIQUIDATION)) {
        // A liquidation cut short by a crash is finished as a liquidation, pause or not.
        const position = this.deps.portfolio.snapshot(this.now()).positions.find((p) => p.symbol === signal.symbol && p.quantity > 0);
        if (!position) return this.drop(signal.id, 'no_position', `nothing of ${signal.symbol} is held any more`);
        const draft = this.liquidationDraft(signal, position, this.now());
        await this.deps.orchestrator.start(draft);
        return this.markProposed(signal.id, draft.id);
      }
      if (this.deps.state.paused) return this.drop(signal.id, 'paused', 'trading is paused');
      if (this.deps.state.tradingState === 'halted') return this.drop(signal.id, 'halted', 'trading is halted (kill switch)');
      const outcome = await this.evaluate(signal);
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
      this.markProposed(signal.id, id);
    } catch (err) {
      this.deps.logger.error('signal processing failed', { signalId: signal.id, error: describeError(err) });
      this.drop(signal.id, 'processing_failed', describeError(err).message);
    }
  }

  private markProposed(signalId: string, proposalId: string): void {
    this.deps.registry.update(signalId, { status: 'proposed', proposalId });
    this.deps.journal.append({ type: 'signal.proposed', signalId, proposalId });
  }

  private drop(signalId: string, code: string, reason: string): void {
    this.deps.registry.update(signalId, { status: 'dropped', reason: code });
    this.deps.journal.append({ type: 'signal.dropped', signalId, code, reason });
    this.deps.logger.info('signal dropped', { signalId, code, reason });
  }
}
