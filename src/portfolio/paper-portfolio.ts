/**
 * The paper portfolio: cash, positions, realised PnL, fees, the loss streak and the trading
 * day, as pure functions over a JSON-safe state. Amounts are stored as decimal strings and
 * computed in Decimal (precision 40) so thousands of small fills do not drift; they become
 * numbers only in `viewPortfolio`. No clock reads: `now` (epoch ms) is always a parameter.
 */
import Decimal from 'decimal.js';
import { Dec as D, toDec, type Amount, type Dec } from '../amounts';
import { InvariantError } from '../errors';
import type { DustView, PortfolioView, PositionView, Reason, Side } from '../proposal/types';

/**
 * Decimal places kept from a division (average price, the cost basis a partial sell releases).
 * Without it a non-terminating quotient keeps 40 significant digits, and subtracting it from a
 * larger amount rounds again, so realised PnL drifts from the cash it came from (by ~1e-30 over
 * a few hundred fills). With a fixed scale every stored amount has at most ~20 decimals, sums
 * and differences stay exact for amounts below 1e20, and once a position is closed its realised
 * PnL equals its cash flows exactly.
 */
const DIVISION_SCALE = 20;

/** One held position. `costBasis` is the total quote spent, buy fees included, for the held quantity. */
export interface PaperPosition {
  quantity: string;
  avgPrice: string;
  costBasis: string;
}

/**
 * The persisted paper portfolio. `marks` holds the last known price per symbol and `markedAt`
 * when it was taken (epoch ms; absent in states of older versions).
 */
export interface PaperPortfolioState {
  version: 1;
  cash: string;
  positions: Record<string, PaperPosition>;
  realizedPnl: string;
  feesPaid: string;
  consecutiveLosses: number;
  tradingDay: string;
  dayStartEquity: string;
  marks: Record<string, string>;
  markedAt?: Record<string, number>;
  /** Fills booked so far: each fill's place in the book's order (absent in states of older versions). */
  fills?: number;
}

/**
 * What makes a holding tradable: a whole sell of it, at its mark moved by the venue's slippage
 * (as the venue will price the order), worth less than `minOrderNotional` is dust.
 */
export interface ViewOptions {
  minOrderNotional?: number;
  sellSlippagePct?: number;
}

/** One execution to book. Quantity in the base currency; price and fee in the quote currency. */
export interface FillInput {
  symbol: string;
  side: Side;
  quantity: number | string;
  price: number | string;
  fee: number | string;
}

const dayFormatters = new Map<string, Intl.DateTimeFormat>();

/** The calendar day (`YYYY-MM-DD`) of epoch ms `now` in the IANA zone `timeZone`. */
export function tradingDayOf(now: number, timeZone: string): string {
  if (typeof now !== 'number' || !Number.isFinite(now)) {
    throw new InvariantError('invalid_time', `now must be finite epoch milliseconds, got ${String(now)}`, { now });
  }
  const parts = formatterFor(timeZone).formatToParts(now);
  const part = (type: string): string => parts.find((p) => p.type === type)?.value ?? '';
  const year = part('year').padStart(4, '0');
  return `${year}-${part('month')}-${part('day')}`;
}

/** A fresh portfolio holding only cash; the day starts now with that cash as its equity. */
export function createPaperPortfolio(initialCash: number | string, now: number, timeZone: string): PaperPortfolioState {
  const cash = amount('initialCash', initialCash, 'non-negative');
  return {
    version: 1,
    cash: str(cash),
    positions: {},
    realizedPnl: '0',
    feesPaid: '0',
    consecutiveLosses: 0,
    tradingDay: tradingDayOf(now, timeZone),
    dayStartEquity: str(cash),
    marks: {},
    markedAt: {},
  };
}

/**
 * Whether the portfolio can take this fill: `insufficient_cash` when a buy costs more than the
 * cash (quantity × price + fee), or a sell's fee would push cash below zero;
 * `insufficient_position` when a sell is larger than the held quantity. Undefined when it can.
 * Throws `InvariantError` when the fill itself is malformed (NaN, negative, zero quantity).
 */
export function checkFill(state: PaperPortfolioState, fill: FillInput): Reason | undefined {
  const f = parseFill(fill);
  const cash = stored('cash', state.cash);
  const gross = f.quantity.times(f.price);

  if (f.side === 'buy') {
    const cost = gross.plus(f.fee);
    if (cost.gt(cash)) {
      return {
        code: 'insufficient_cash',
        message: `buying ${str(f.quantity)} ${f.symbol} at ${str(f.price)} with fee ${str(f.fee)} costs ${str(cost)}, but cash is ${str(cash)}`,
      };
    }
    return undefined;
  }

  const held = state.positions[f.symbol] ? stored(`positions[${f.symbol}].quantity`, state.positions[f.symbol]!.quantity) : new D(0);
  if (f.quantity.gt(held)) {
    return { code: 'insufficient_position', message: `selling ${str(f.quantity)} ${f.symbol}, but ${str(held)} is held` };
  }
  if (cash.plus(gross).minus(f.fee).lt(0)) {
    return {
      code: 'insufficient_cash',
      message: `selling ${str(f.quantity)} ${f.symbol} at ${str(f.price)} brings ${str(gross)}, fee ${str(f.fee)} exceeds that plus cash ${str(cash)}`,
    };
  }
  return undefined;
}

/**
 * Books one fill and returns a new state (the input is not changed) and the realised PnL of a
 * sell (null for a buy). Rolls over to the trading day of `now` first. Throws `InvariantError`
 * on a malformed fill or state and when cash or the position would not cover the fill.
 */
export function applyFill(
  state: PaperPortfolioState,
  fill: FillInput,
  now: number,
  timeZone: string,
): { state: PaperPortfolioState; realizedPnl: Amount | null } {
  const rolled = rollOver(state, now, timeZone);
  const f = parseFill(fill);
  const refusal = checkFill(rolled, fill);
  if (refusal) {
    throw new InvariantError(refusal.code, refusal.message, { symbol: f.symbol, side: f.side, quantity: str(f.quantity), price: str(f.price), fee: str(f.fee) });
  }

  const cash = stored('cash', rolled.cash);
  const feesPaid = stored('feesPaid', rolled.feesPaid);
  const gross = f.quantity.times(f.price);
  const positions = { ...rolled.positions };
  const marks = { ...rolled.marks, [f.symbol]: str(f.price) };
  const markedAt = { ...rolled.markedAt, [f.symbol]: now };
  const base = { ...rolled, positions, marks, markedAt, feesPaid: str(feesPaid.plus(f.fee)), fills: (rolled.fills ?? 0) + 1 };

  if (f.side === 'buy') {
    const existing = positions[f.symbol];
    const heldQty = existing ? stored(`positions[${f.symbol}].quantity`, existing.quantity) : new D(0);
    const heldAvg = existing ? stored(`positions[${f.symbol}].avgPrice`, existing.avgPrice) : new D(0);
    const heldCost = existing ? stored(`positions[${f.symbol}].costBasis`, existing.costBasis) : new D(0);
    const quantity = heldQty.plus(f.quantity);
    positions[f.symbol] = {
      quantity: str(quantity),
      avgPrice: str(quotient(heldAvg.times(heldQty).plus(gross), quantity)),
      costBasis: str(heldCost.plus(gross).plus(f.fee)),
    };
    return { state: { ...base, cash: str(cash.minus(gross).minus(f.fee)) }, realizedPnl: null };
  }

  // checkFill guarantees a position of at least f.quantity exists.
  const existing = positions[f.symbol]!;
  const heldQty = stored(`positions[${f.symbol}].quantity`, existing.quantity);
  const heldCost = stored(`positions[${f.symbol}].costBasis`, existing.costBasis);
  const remaining = heldQty.minus(f.quantity);
  // Multiply before dividing; a full exit takes the whole cost basis so nothing is left over.
  const costSold = remaining.isZero() ? heldCost : quotient(heldCost.times(f.quantity), heldQty);
  const realized = gross.minus(f.fee).minus(costSold);

  if (remaining.isZero()) {
    delete positions[f.symbol];
  } else {
    positions[f.symbol] = { ...existing, quantity: str(remaining), costBasis: str(heldCost.minus(costSold)) };
  }

  return {
    state: {
      ...base,
      cash: str(cash.plus(gross).minus(f.fee)),
      realizedPnl: str(stored('realizedPnl', rolled.realizedPnl).plus(realized)),
      consecutiveLosses: realized.lt(0) ? rolled.consecutiveLosses + 1 : 0,
    },
    realizedPnl: str(realized),
  };
}

/**
 * Records the latest prices, each taken at `takenAt[symbol]` (the quote's time; `now` when not
 * given, never later than `now`). A price older than the mark held (a fill's, say) does not
 * replace it; symbols not mentioned keep their last mark.
 */
export function markPrices(state: PaperPortfolioState, marks: Record<string, number | string>, now: number, takenAt: Record<string, number> = {}): PaperPortfolioState {
  const next = { ...state.marks };
  const markedAt = { ...state.markedAt };
  for (const [symbol, price] of Object.entries(marks)) {
    const at = Math.min(takenAt[symbol] ?? now, now);
    const held = markedAt[symbol];
    if (held !== undefined && held > at) continue;
    next[symbol] = str(amount(`mark ${symbol}`, price, 'positive'));
    markedAt[symbol] = at;
  }
  return { ...state, marks: next, markedAt };
}

/**
 * Moves the state to the trading day of `now`: on a new day, `dayStartEquity` becomes the
 * equity at the current marks. The same state is returned when the day has not changed, or when
 * `now` falls on an earlier day (a clock step back must not reopen a finished day).
 */
export function rollOver(state: PaperPortfolioState, now: number, timeZone: string): PaperPortfolioState {
  const day = tradingDayOf(now, timeZone);
  if (day <= state.tradingDay) return state;
  return { ...state, tradingDay: day, dayStartEquity: str(equityOf(state)) };
}

/**
 * The portfolio as the risk policy sees it, rolled over to `now`, with positions sorted by
 * symbol. Quantities stay exact; a holding worth less than `minOrderNotional` is dust: valued in
 * equity, listed apart, never a position.
 */
export function viewPortfolio(state: PaperPortfolioState, now: number, timeZone: string, options: ViewOptions = {}): PortfolioView {
  const rolled = rollOver(state, now, timeZone);
  const cash = stored('cash', rolled.cash);
  const symbols = Object.keys(rolled.positions).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let equity = cash;
  const positions: PositionView[] = [];
  const dust: DustView[] = [];
  const minimum = new D(options.minOrderNotional ?? 0);
  const sellFactor = new D(1).minus(new D(options.sellSlippagePct ?? 0).div(100));
  for (const symbol of symbols) {
    const { quantity, avgPrice, mark, marketValue } = valued(rolled, symbol);
    equity = equity.plus(marketValue);
    if (!quantity.gt(0)) continue;
    if (marketValue.times(sellFactor).lt(minimum)) {
      dust.push({ symbol, quantity: str(quantity), marketValue: marketValue.toNumber() });
      continue;
    }
    positions.push({
      symbol, quantity: str(quantity), avgPrice: avgPrice.toNumber(), marketValue: marketValue.toNumber(),
      markPrice: mark.toNumber(), markedAt: rolled.marks[symbol] === undefined ? null : rolled.markedAt?.[symbol] ?? null,
    });
  }
  const dayStartEquity = stored('dayStartEquity', rolled.dayStartEquity);
  return {
    cash: cash.toNumber(),
    equity: equity.toNumber(),
    dayStartEquity: dayStartEquity.toNumber(),
    dailyPnl: equity.minus(dayStartEquity).toNumber(),
    realizedPnl: stored('realizedPnl', rolled.realizedPnl).toNumber(),
    consecutiveLosses: rolled.consecutiveLosses,
    tradingDay: rolled.tradingDay,
    positions,
    dust,
  };
}

/** cash + Σ quantity × mark (avgPrice when a symbol has no mark). */
export function equityOf(state: PaperPortfolioState): Dec {
  let equity = stored('cash', state.cash);
  for (const symbol of Object.keys(state.positions)) equity = equity.plus(valued(state, symbol).marketValue);
  return equity;
}

function valued(state: PaperPortfolioState, symbol: string): { quantity: Dec; avgPrice: Dec; mark: Dec; marketValue: Dec } {
  const position = state.positions[symbol]!;
  const quantity = stored(`positions[${symbol}].quantity`, position.quantity);
  const avgPrice = stored(`positions[${symbol}].avgPrice`, position.avgPrice);
  const markText = state.marks[symbol];
  const mark = markText === undefined ? avgPrice : stored(`marks[${symbol}]`, markText);
  return { quantity, avgPrice, mark, marketValue: quantity.times(mark) };
}

interface ParsedFill {
  symbol: string;
  side: Side;
  quantity: Dec;
  price: Dec;
  fee: Dec;
}

function parseFill(fill: FillInput): ParsedFill {
  if (typeof fill.symbol !== 'string' || fill.symbol.trim() === '') {
    throw new InvariantError('invalid_fill', `fill symbol must be a non-empty string, got ${JSON.stringify(fill.symbol)}`, { symbol: fill.symbol });
  }
  if (fill.side !== 'buy' && fill.side !== 'sell') {
    throw new InvariantError('invalid_fill', `fill side must be buy or sell, got ${JSON.stringify(fill.side)}`, { side: fill.side });
  }
  return {
    symbol: fill.symbol,
    side: fill.side,
    quantity: amount('fill quantity', fill.quantity, 'positive'),
    price: amount('fill price', fill.price, 'positive'),
    fee: amount('fill fee', fill.fee, 'non-negative'),
  };
}

/** Parses an input amount; NaN, infinities, junk strings and out-of-range values throw. */
function amount(field: string, value: unknown, range: 'positive' | 'non-negative'): Dec {
  const d = toDec(field, value);
  if (range === 'positive' ? !d.gt(0) : d.lt(0)) {
    throw new InvariantError('invalid_amount', `${field} must be ${range === 'positive' ? 'above 0' : '0 or more'}, got ${String(value)}`, { field, value });
  }
  return d;
}

/** Parses an amount read from the state; a corrupt state throws. */
export function stored(field: string, value: unknown): Dec {
  return toDec(`state ${field}`, value);
}

/** a / b rounded half-even to DIVISION_SCALE decimal places (the book's one rounding rule). */
export function quotient(a: Dec, b: Dec): Dec {
  return a.div(b).toDecimalPlaces(DIVISION_SCALE, Decimal.ROUND_HALF_EVEN);
}

/** Normal notation, unrounded: `1e-8` is stored as `0.00000001`. */
export function str(d: Dec): string {
  return d.toFixed();
}

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = dayFormatters.get(timeZone);
  if (!formatter) {
    try {
      formatter = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
    } catch {
      throw new InvariantError('invalid_time_zone', `time zone must be an IANA zone name, got ${JSON.stringify(timeZone)}`, { timeZone });
    }
    dayFormatters.set(timeZone, formatter);
  }
  return formatter;
}
