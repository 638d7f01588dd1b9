/**
 * The risk clock: every RISK_CHECK_INTERVAL_SECONDS, held positions are marked from market data
 * and the loss breakers run on the portfolio alone, so a falling market trips them without any
 * signal. A standing liquidation is carried on here until nothing is held: what failed is retried.
 */
import type { MarketData } from '../context/market-snapshot';
import { quoteAgeMs } from '../context/market-snapshot';
import type { PortfolioSource } from '../context/portfolio-snapshot';
import { describeError } from '../errors';
import { AMOUNT_MAX, AMOUNT_MIN } from '../amounts';
import type { TradeLog } from '../journal/trade-log';
import type { Logger } from '../logging';
import type { RiskLimits } from '../proposal/types';
import { evaluatePortfolioRisk } from '../risk/policy';
import type { RuntimeState } from '../state';
import type { LiquidationReport } from './loop';
import type { Notice } from '../notifications/notice';

export interface RiskClockDeps {
  market: MarketData;
  portfolio: PortfolioSource;
  state: RuntimeState;
  journal: TradeLog;
  logger: Logger;
  limits: RiskLimits;
  intervalMs: number;
  /** MARKET_DATA_MAX_AGE_SECONDS: an older quote is no mark. */
  maxQuoteAgeSeconds: number;
  /** MARKET_DATA_TIMEOUT_MS: a quote that takes longer is skipped for this round. */
  quoteTimeoutMs: number;
  /** Starts liquidation proposals for every position without one under way (the loop's). */
  liquidate: (by: string, reason: string) => Promise<LiquidationReport>;
  /** Live mode: makes the book match the venues' balances before each round (deposits, outside trades). */
  reconcile?: () => Promise<void>;
  /** Tells the operators when the venue could not be read for several rounds in a row. */
  notify?: (notice: Notice) => void;
  now?: () => number;
}

/** Rounds in a row whose reconcile failed before the operators are told. */
const RECONCILE_ALERT_AFTER = 3;

/** Rounds between two liquidation passes that had to start sells again: doubling, up to this. */
const MAX_RETRY_ROUNDS = 32;

/** What one round did (for the journal, the logs and tests). */
export interface RiskRound {
  marked: string[];
  /** Held symbols without a fresh quote this round (their marks keep their age). */
  unmarked: Array<{ symbol: string; reason: string }>;
  breaker: boolean;
  liquidation: LiquidationReport | null;
  liquidationEnded: boolean;
}

export class RiskClock {
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<RiskRound | null> | null = null;
  private stopped = false;
  private rounds = 0;
  private reconcileFailures = 0;
  /**
   * Retries of the standing liquidation back off: a sell the venue keeps refusing is tried again
   * after 1, 2, 4 … rounds, not every round. Keyed by the order's start, so a new order starts afresh.
   */
  private retry: { order: string; passes: number; nextRound: number } | null = null;

  constructor(private readonly deps: RiskClockDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Runs one round now (a standing liquidation goes on at once after a restart), then every interval. */
  start(): void {
    this.stopped = false;
    void this.tick().finally(() => this.schedule());
  }

  /** Stops the clock and waits for a round in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One round now (a round already running is joined, never doubled). */
  tick(): Promise<RiskRound | null> {
    this.running ??= this.round().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.tick().finally(() => this.schedule());
    }, this.deps.intervalMs);
    this.timer.unref();
  }

  private async round(): Promise<RiskRound | null> {
    try {
      return await this.check();
    } catch (err) {
      // Storage down or a corrupt book: the next round tries again; nothing here is acknowledged.
      this.deps.logger.error('risk check failed; the next round tries again', { error: describeError(err) });
      return null;
    }
  }

  private reconcileFailed(err: unknown): void {
    this.reconcileFailures += 1;
    this.deps.logger.error('the book could not be reconciled with the venue; this round judges the last book', { failures: this.reconcileFailures, error: describeError(err) });
    if (this.reconcileFailures !== RECONCILE_ALERT_AFTER) return;
    this.deps.notify?.({
      kind: 'state', severity: 'critical', title: 'The venue cannot be read', fields: [], at: new Date(this.now()).toISOString(),
      lines: [`${RECONCILE_ALERT_AFTER} risk checks in a row could not read the venue's balances: ${describeError(err).message}`, 'Risk is judged on the last book until it answers.'],
    });
  }

  private async check(): Promise<RiskRound> {
    const { portfolio, state, journal, logger } = this.deps;
    // The venue is the truth for what is held: the round judges the reconciled book. A venue
    // that cannot answer leaves the last book to judge; the breakers and liquidations still run.
    if (this.deps.reconcile) {
      try {
        await this.deps.reconcile();
        this.reconcileFailures = 0;
      } catch (err) {
        this.reconcileFailed(err);
      }
    }
    const held = portfolio.snapshot(this.now());
    const symbols = [...held.positions.map((p) => p.symbol), ...held.dust.map((d) => d.symbol)];
    const { marks, takenAt, unmarked } = await this.freshMarks(symbols);
    if (Object.keys(marks).length > 0) await portfolio.mark(marks, takenAt);

    const view = portfolio.snapshot(this.now());
    const verdict = evaluatePortfolioRisk(view, this.deps.limits, state.tradingState, state.breakerWaiver);
    let breaker = false;
    if (verdict.breaker) {
      const reason = verdict.reasons.map((r) => `${r.code}: ${r.message}`).join('; ');
      breaker = await state.setTradingState('reducing', 'risk-clock', reason);
      if (breaker) {
        void journal.append({ type: 'risk.breaker', source: 'risk-clock', code: verdict.reasons[0]?.code, reason, tradingState: 'reducing' });
        logger.warn('risk breaker (risk clock): trading state moved to reducing', { reasons: verdict.reasons });
      }
    }
    if (verdict.liquidate && view.positions.length > 0) await state.orderLiquidation(`risk:${verdict.liquidate.code}`, verdict.liquidate.reason);

    const round = ++this.rounds;
    let liquidation: LiquidationReport | null = null;
    let liquidationEnded = false;
    const order = state.liquidation;
    if (order && state.tradingState !== 'halted') {
      // Dust cannot be sold: a liquidation ends when every position above the venue minimum is gone.
      if (view.positions.length === 0) {
        liquidationEnded = await state.endLiquidation('risk-clock', 'every position is closed');
        if (liquidationEnded) void journal.append({ type: 'liquidation.done', by: order.by, reason: order.reason, since: order.since, dust: view.dust });
        this.retry = null;
      } else if (this.retryDue(order.since, round)) {
        liquidation = await this.deps.liquidate(order.by, order.reason);
        // A pass that only found closed markets is no retry to back off from: the next round looks again.
        if (liquidation.started.length > 0 || liquidation.failed.length > 0) {
          void journal.append({ type: 'liquidation.pass', by: order.by, reason: order.reason, source: 'risk-clock', ...liquidation });
          const passes = this.retry?.order === order.since ? this.retry.passes + 1 : 1;
          this.retry = { order: order.since, passes, nextRound: round + Math.min(2 ** (passes - 1), MAX_RETRY_ROUNDS) };
        }
      }
    }
    return { marked: Object.keys(marks), unmarked, breaker, liquidation, liquidationEnded };
  }

  private retryDue(order: string, round: number): boolean {
    return this.retry === null || this.retry.order !== order || round >= this.retry.nextRound;
  }

  /** Fresh quotes of `symbols`, each on its own: one symbol's failure never stops another's mark. */
  private async freshMarks(symbols: string[]): Promise<{ marks: Record<string, number>; takenAt: Record<string, number>; unmarked: RiskRound['unmarked'] }> {
    const maxAgeMs = this.deps.maxQuoteAgeSeconds * 1000;
    const results = await Promise.allSettled(symbols.map((symbol) => this.quoteWithin(symbol)));
    const marks: Record<string, number> = {};
    const takenAt: Record<string, number> = {};
    const unmarked: RiskRound['unmarked'] = [];
    results.forEach((result, i) => {
      const symbol = symbols[i]!;
      if (result.status === 'rejected') {
        unmarked.push({ symbol, reason: describeError(result.reason).message });
        return;
      }
      const quote = result.value;
      const age = quoteAgeMs(quote, this.now());
      if (!(age <= maxAgeMs)) unmarked.push({ symbol, reason: `the quote is from ${quote.at}, older than MARKET_DATA_MAX_AGE_SECONDS ${this.deps.maxQuoteAgeSeconds}` });
      else if (!(Number.isFinite(quote.price) && quote.price >= AMOUNT_MIN && quote.price <= AMOUNT_MAX)) unmarked.push({ symbol, reason: `the quote's price ${quote.price} is outside ${AMOUNT_MIN} … ${AMOUNT_MAX}` });
      else {
        marks[symbol] = quote.price;
        takenAt[symbol] = this.now() - age;
      }
    });
    if (unmarked.length > 0) this.deps.logger.warn('risk check: some positions could not be marked; their marks keep their age', { unmarked });
    return { marks, takenAt, unmarked };
  }

  private quoteWithin(symbol: string): ReturnType<MarketData['quote']> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no quote within MARKET_DATA_TIMEOUT_MS ${this.deps.quoteTimeoutMs}`)), this.deps.quoteTimeoutMs);
      timer.unref();
      this.deps.market.quote(symbol).then(resolve, reject).finally(() => clearTimeout(timer));
    });
  }
}
