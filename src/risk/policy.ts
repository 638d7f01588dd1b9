/**
 * The risk policy: a pure function from (request, portfolio, limits, trading state) to a
 * decision. A business "no" is data (`block`, `cap`, `liquidate` with reasons), never a throw;
 * only corrupt input (a NaN equity, a negative limit) throws, because trading must stop rather
 * than guess. All arithmetic is in Decimal so a boundary is judged on the exact value.
 */
import Decimal from 'decimal.js';
import { isPositive } from '../amounts';
import { InvariantError } from '../errors';
import type { PortfolioView, Reason, RiskDecision, RiskLimits, RiskRequest, TradingState } from '../proposal/types';

const D = Decimal.clone({ precision: 40 });
type Dec = InstanceType<typeof D>;

/**
 * Codes in the order they decide a request: the first code that fired is the decision's code;
 * every code that fired is listed in `reasons`.
 */
const PRIORITY = [
  'halted',
  'invalid_request',
  'invalid_size',
  'no_position',
  'daily_liquidation',
  'reducing',
  'consecutive_losses',
  'daily_loss_limit',
  'max_open_positions',
  'max_position',
] as const;

type RiskCode = (typeof PRIORITY)[number];

/** Codes whose condition must move the persisted trading state to `reducing`. */
/** Codes that move the trading state to reducing. */
export const BREAKER_CODES: ReadonlySet<string> = new Set(['daily_liquidation', 'consecutive_losses', 'daily_loss_limit']);

interface Fired {
  code: RiskCode;
  message: string;
  /** Only for `max_position`: the capped notional when there is room left (undefined: block). */
  cappedNotional?: Dec;
}

/**
 * Decides whether an order may go out, in full, capped, or not at all.
 *
 * - `halted` blocks everything, exits included, and never sets a breaker (halted is stronger
 *   than reducing).
 * - Exits (side `sell`) are blocked only by `halted`, an invalid size or a missing position;
 *   loss breakers that hold are reported and set `breaker: 'reducing'`, but the exit is allowed.
 * - Entries (side `buy`) are checked in this order: daily liquidation (→ `liquidate`),
 *   `reducing` state, consecutive losses, daily loss limit, open positions, position size (cap
 *   down to the room left, or block when there is none).
 *
 * Throws `InvariantError` only when the portfolio or limits hold non-finite or negative numbers.
 */
export function evaluateRisk(
  request: RiskRequest,
  portfolio: PortfolioView,
  limits: RiskLimits,
  tradingState: TradingState,
): RiskDecision {
  checkLimits(limits);
  checkPortfolio(portfolio);

  const quote = quoteOf(request.symbol);
  const fired: Fired[] = [];
  const isExit = request.side === 'sell';

  if (tradingState === 'halted') {
    fired.push({ code: 'halted', message: 'trading is halted: no order goes out, exits included' });
  }

  if (!sideMatchesIntent(request)) {
    fired.push({ code: 'invalid_request', message: `side ${String(request.side)} does not match intent ${String(request.intent)}` });
  }

  const notionalOk = typeof request.notional === 'number' && Number.isFinite(request.notional) && request.notional > 0;
  if (!notionalOk) {
    fired.push({ code: 'invalid_size', message: `notional ${String(request.notional)} is not a positive finite amount` });
  }

  const held = portfolio.positions.filter((p) => p.symbol === request.symbol && isPositive(p.quantity));
  if (isExit && held.length === 0) {
    fired.push({ code: 'no_position', message: `no open position in ${request.symbol} to sell` });
  }

  fired.push(...lossChecks(portfolio, limits, quote));

  if (!isExit) {
    if (tradingState === 'reducing') {
      fired.push({ code: 'reducing', message: 'trading state is reducing: only exits and liquidations go out' });
    }

    const openCount = portfolio.positions.filter((p) => isPositive(p.quantity)).length;
    if (held.length === 0 && openCount >= limits.maxOpenPositions) {
      fired.push({
        code: 'max_open_positions',
        message: `${openCount} open positions is at or above the maximum of ${limits.maxOpenPositions}; ${request.symbol} is not held`,
      });
    }

    if (notionalOk) {
      const sizeCheck = positionSizeCheck(request, portfolio, limits, held.map((p) => p.marketValue), quote);
      if (sizeCheck) fired.push(sizeCheck);
    }
  }

  return decide(request, fired, tradingState, isExit);
}

/** What the portfolio alone calls for, with no order in view (the risk clock's question). */
export interface PortfolioRiskVerdict {
  /** The trading state must move to `reducing` (a loss breaker holds). */
  breaker: 'reducing' | null;
  /** Set when the daily loss reached the liquidation threshold. */
  liquidate: { code: 'daily_liquidation'; reason: string } | null;
  reasons: Reason[];
}

/**
 * What an operator accepted when clearing a breaker (setting the trading state back to active):
 * the trading day, its PnL and the loss streak at that moment.
 */
export interface BreakerWaiver {
  tradingDay: string;
  dailyPnl: number;
  consecutiveLosses: number;
}

/**
 * The breaker codes an operator's clearing still covers: a daily breaker for the rest of that
 * trading day until the loss grows by another full threshold (its own % of day-start equity),
 * the loss streak until another losing trade. Anything worse trips the breaker again.
 */
export function waivedBreakers(portfolio: PortfolioView, limits: RiskLimits, waiver: BreakerWaiver | null): Set<string> {
  const waived = new Set<string>();
  if (!waiver) return waived;
  if (portfolio.consecutiveLosses <= waiver.consecutiveLosses) waived.add('consecutive_losses');
  if (waiver.tradingDay === portfolio.tradingDay) {
    const accepted = new D(waiver.dailyPnl).neg();
    const loss = new D(portfolio.dailyPnl).neg();
    const step = (pct: number) => new D(portfolio.dayStartEquity).times(pct).div(100);
    if (loss.lt(accepted.plus(step(limits.dailyLossLimitPct)))) waived.add('daily_loss_limit');
    if (loss.lt(accepted.plus(step(limits.dailyLiquidatePct)))) waived.add('daily_liquidation');
  }
  return waived;
}

/**
 * The loss breakers judged on the portfolio alone: daily liquidation, consecutive losses and the
 * daily loss limit, as an entry would be judged at this moment, less what an operator's clearing
 * still covers. Halted is stronger than any breaker.
 */
export function evaluatePortfolioRisk(portfolio: PortfolioView, limits: RiskLimits, tradingState: TradingState, waiver: BreakerWaiver | null = null): PortfolioRiskVerdict {
  checkLimits(limits);
  checkPortfolio(portfolio);
  const waived = waivedBreakers(portfolio, limits, waiver);
  const fired = lossChecks(portfolio, limits, quoteOf(portfolio.positions[0]?.symbol ?? '')).filter((f) => !waived.has(f.code));
  const reasons = fired.map(({ code, message }) => ({ code, message }));
  const liquidation = fired.find((f) => f.code === 'daily_liquidation');
  return {
    breaker: tradingState !== 'halted' && fired.length > 0 ? 'reducing' : null,
    liquidate: liquidation ? { code: 'daily_liquidation', reason: liquidation.message } : null,
    reasons,
  };
}

/** One short line for logs and cards, e.g. `cap 2000000 (max_position)`. */
export function describeRisk(decision: RiskDecision): string {
  switch (decision.kind) {
    case 'allow': {
      const extra = decision.breaker ? ` (breaker: ${decision.reasons.map((r) => r.code).join(', ')})` : '';
      return `allow ${decision.notional}${extra}`;
    }
    case 'cap':
      return `cap to ${decision.notional} (${decision.code}): ${decision.reason}`;
    case 'block':
      return `block (${decision.code}): ${decision.reason}`;
    case 'liquidate':
      return `liquidate (${decision.code}): ${decision.reason}`;
  }
}

function decide(request: RiskRequest, fired: Fired[], tradingState: TradingState, isExit: boolean): RiskDecision {
  const sorted = [...fired].sort((a, b) => PRIORITY.indexOf(a.code) - PRIORITY.indexOf(b.code));
  const reasons: Reason[] = sorted.map(({ code, message }) => ({ code, message }));
  // A halted state must never be turned into `reducing` by a breaker.
  const breakerFired = tradingState !== 'halted' && sorted.some((f) => BREAKER_CODES.has(f.code));
  const breaker = breakerFired ? ({ breaker: 'reducing' } as const) : {};

  const first = sorted[0];
  if (!first) return { kind: 'allow', notional: request.notional, reasons };

  if (isExit) {
    // Only these stop an exit; loss breakers are reported but let it through.
    if (first.code === 'halted' || first.code === 'invalid_request' || first.code === 'invalid_size' || first.code === 'no_position') {
      return { kind: 'block', code: first.code, reason: first.message, reasons, ...breaker };
    }
    return { kind: 'allow', notional: request.notional, reasons, ...breaker };
  }

  if (first.code === 'daily_liquidation') {
    return { kind: 'liquidate', code: first.code, reason: first.message, reasons, breaker: 'reducing' };
  }
  if (first.code === 'max_position' && first.cappedNotional !== undefined) {
    return { kind: 'cap', code: first.code, reason: first.message, notional: first.cappedNotional.toNumber(), reasons, ...breaker };
  }
  return { kind: 'block', code: first.code, reason: first.message, reasons, ...breaker };
}

/** Loss breakers, shared by entries and exits. A day with no loss never trips them. */
function lossChecks(portfolio: PortfolioView, limits: RiskLimits, quote: string): Fired[] {
  const fired: Fired[] = [];
  const loss = new D(portfolio.dailyPnl).neg();
  const dayStart = new D(portfolio.dayStartEquity);
  const liquidateAt = dayStart.times(limits.dailyLiquidatePct).div(100);
  const limitAt = dayStart.times(limits.dailyLossLimitPct).div(100);

  if (loss.gt(0) && loss.gte(liquidateAt)) {
    fired.push({
      code: 'daily_liquidation',
      message: `daily loss ${fmt(loss, quote)} is at or above ${limits.dailyLiquidatePct}% of day-start equity ${fmt(dayStart, quote)}: liquidate`,
    });
  }
  if (portfolio.consecutiveLosses >= limits.maxConsecutiveLosses) {
    fired.push({
      code: 'consecutive_losses',
      message: `${portfolio.consecutiveLosses} consecutive losing trades is at or above the maximum of ${limits.maxConsecutiveLosses}`,
    });
  }
  if (loss.gt(0) && loss.gte(limitAt)) {
    fired.push({
      code: 'daily_loss_limit',
      message: `daily loss ${fmt(loss, quote)} is at or above ${limits.dailyLossLimitPct}% of day-start equity ${fmt(dayStart, quote)}`,
    });
  }
  return fired;
}

/** Position size after the order against `maxPositionPct` of equity; exactly at the limit is allowed. */
function positionSizeCheck(
  request: RiskRequest,
  portfolio: PortfolioView,
  limits: RiskLimits,
  heldValues: number[],
  quote: string,
): Fired | undefined {
  const current = heldValues.reduce((sum, v) => sum.plus(v), new D(0));
  const equity = new D(portfolio.equity);
  const limit = equity.times(limits.maxPositionPct).div(100);
  const notional = new D(request.notional);
  const after = current.plus(notional);
  if (after.lte(limit)) return undefined;

  const room = limit.minus(current);
  const base = `${request.symbol} would be ${fmt(after, quote)} (held ${fmt(current, quote)} + ${fmt(notional, quote)}), above ${limits.maxPositionPct}% of equity ${fmt(equity, quote)} = ${fmt(limit, quote)}`;
  if (room.lte(0)) {
    return { code: 'max_position', message: `${base}; no room left` };
  }
  // room < notional here (after > limit), so a cap only ever shrinks the order.
  return { code: 'max_position', message: `${base}; capped to ${fmt(room, quote)}`, cappedNotional: room };
}

function sideMatchesIntent(request: RiskRequest): boolean {
  if (request.side === 'buy') return request.intent === 'buy';
  if (request.side === 'sell') return request.intent === 'sell' || request.intent === 'liquidate';
  return false;
}

function checkLimits(limits: RiskLimits): void {
  for (const key of ['maxConsecutiveLosses', 'dailyLossLimitPct', 'dailyLiquidatePct', 'maxPositionPct', 'maxOpenPositions'] as const) {
    const value = limits[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new InvariantError('invalid_risk_limits', `risk limit ${key} must be a non-negative finite number, got ${String(value)}`, { key, value });
    }
  }
}

function checkPortfolio(portfolio: PortfolioView): void {
  const finite = (field: string, value: unknown): void => {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new InvariantError('invalid_portfolio', `portfolio ${field} must be a finite number, got ${String(value)}`, { field, value });
    }
  };
  finite('equity', portfolio.equity);
  finite('dayStartEquity', portfolio.dayStartEquity);
  finite('dailyPnl', portfolio.dailyPnl);
  finite('consecutiveLosses', portfolio.consecutiveLosses);
  for (const p of portfolio.positions) {
    finite(`positions[${p.symbol}].marketValue`, p.marketValue);
    let quantity: Decimal;
    try {
      quantity = new D(p.quantity);
    } catch {
      quantity = new D(NaN);
    }
    if (!quantity.isFinite()) {
      throw new InvariantError('invalid_portfolio', `portfolio positions[${p.symbol}].quantity must be a finite decimal, got ${String(p.quantity)}`, { field: 'quantity', value: p.quantity });
    }
    if (quantity.lt(0) || p.marketValue < 0) {
      throw new InvariantError('invalid_portfolio', `position ${p.symbol} has a negative quantity ${p.quantity} or value ${p.marketValue}`, {
        symbol: p.symbol,
        quantity: p.quantity,
        marketValue: p.marketValue,
      });
    }
  }
}

/** `BTC/KRW` → `KRW`; empty when the symbol has no quote part. */
function quoteOf(symbol: string): string {
  const slash = typeof symbol === 'string' ? symbol.lastIndexOf('/') : -1;
  return slash >= 0 ? symbol.slice(slash + 1) : '';
}

function fmt(value: Dec, quote: string): string {
  return quote ? `${value.toFixed()} ${quote}` : value.toFixed();
}
