/**
 * Reconciling a book with its venue: in live mode the venue is the truth for cash and holdings.
 * `reconcileBook` makes the book's cash and every position's quantity equal the venue's, exactly,
 * and describes each difference as an adjustment (a deposit, a withdrawal, coins moved in or out,
 * a trade made outside this service). Adjustments are never trading PnL. Pure: no I/O, no clock.
 */
import { Dec as D, toDec, type Amount, type Dec } from '../amounts';
import { InvariantError } from '../errors';
import { equityOf, quotient, rollOver, stored, str, type PaperPortfolioState, type PaperPosition } from './paper-portfolio';

/**
 * Cash and every holding at a venue, exact (the shape of `Balances` in `src/execution/base.ts`,
 * which satisfies it: the pure core does not import the execution layer).
 */
export interface VenueHoldings {
  quoteCurrency: string;
  cash: Amount;
  positions: ReadonlyArray<{ symbol: string; quantity: Amount }>;
}

export type BookAdjustmentKind = 'deposit' | 'withdrawal' | 'transfer_in' | 'transfer_out' | 'outside_trade';

/**
 * What a position change was valued at: `mark` (the symbol's last price), `trade_price` (the
 * average price of an outside trade, implied by the cash that moved with it), `avg_price` (the
 * book's average price of the holding: no mark and no trade), `unpriced` (none of those: a new
 * holding recorded at cost basis 0); `cash` for a deposit or withdrawal.
 */
export type ValuedBy = 'cash' | 'mark' | 'trade_price' | 'avg_price' | 'unpriced';

/**
 * One difference between the book and the venue, as applied to the book. Amounts are exact
 * decimal text in the quote currency (quantities in base units). `value` is signed like the
 * change: the cash change for a deposit or withdrawal; for a position, the quantity change at the
 * price it was valued at (an addition's cost basis; `valuedBy` says which price). `cause` is
 * words for operators.
 */
export interface BookAdjustment {
  kind: BookAdjustmentKind;
  symbol?: string;
  quantityDelta?: Amount;
  cashDelta?: Amount;
  value: Amount;
  valuedBy: ValuedBy;
  cause: string;
}


/**
 * Makes the book's cash and positions equal `venue`'s, exactly, and returns the adjustments that
 * did it. An equal book gives no adjustments and the same state object. Otherwise the state is
 * first rolled over to the trading day of `now`.
 *
 * Classification (cash change C = venue cash − book cash; Δq per symbol likewise):
 * - C ≠ 0 and exactly one symbol moved the opposite way (Δq > 0 with C < 0: bought; Δq < 0 with
 *   C > 0: sold): that symbol's change and the whole of C are one `outside_trade`, at the average
 *   price |C| / |Δq|. Every other symbol's change is a transfer.
 * - otherwise C is a `deposit` (C > 0) or a `withdrawal` (C < 0), and each Δq a `transfer_in`
 *   (Δq > 0) or `transfer_out` (Δq < 0). When several symbols moved against the cash, which one
 *   it paid for cannot be told; the cause says so.
 *
 * Valuation of a position change: at the symbol's mark; without one, at the outside trade's
 * price (the cash exactly); without that, at the book's avg price of the holding; a new holding
 * with none of these gets cost basis 0, and the adjustment says so. An addition adds its value
 * to the cost basis (avgPrice recomputed); a removal takes its proportional cost basis away (all
 * of it when the holding goes), the avg price unchanged.
 *
 * Never trading PnL: realizedPnl, feesPaid, consecutiveLosses, fills and marks do not move.
 * `dayStartEquity` moves by exactly the equity the adjustments added or removed (cash change plus
 * the positions' change at the prices equity uses), so daily PnL (equity − dayStartEquity) is
 * the same before and after.
 */
export function reconcileBook(state: PaperPortfolioState, venue: VenueHoldings, now: number, timeZone: string): { state: PaperPortfolioState; adjustments: BookAdjustment[] } {
  const target = readHoldings(venue);
  const cashDelta = target.cash.minus(stored('cash', state.cash));
  const deltas = quantityDeltas(state, target.positions);
  if (cashDelta.isZero() && deltas.size === 0) return { state, adjustments: [] };

  const rolled = rollOver(state, now, timeZone);
  const against = [...deltas].filter(([, dq]) => !cashDelta.isZero() && dq.isNegative() !== cashDelta.isNegative());
  const traded = against.length === 1 ? against[0]![0] : undefined;
  const ccy = venue.quoteCurrency;
  const adjustments: BookAdjustment[] = [];
  if (!cashDelta.isZero() && traded === undefined) {
    const note = against.length > 1 ? ` (${against.map(([s]) => s).join(', ')} moved against it, so which one it paid for cannot be told)` : '';
    adjustments.push(cashAdjustment(cashDelta, ccy, note));
  }

  const positions = { ...rolled.positions };
  for (const [symbol, dq] of deltas) {
    const trade = symbol === traded ? cashDelta : undefined;
    const { position, adjustment } = adjustPosition(rolled, symbol, dq, trade, ccy);
    if (position) positions[symbol] = position;
    else delete positions[symbol];
    adjustments.push(adjustment);
  }

  const next: PaperPortfolioState = { ...rolled, cash: str(target.cash), positions };
  const moved = equityOf(next).minus(equityOf(rolled));
  return { state: { ...next, dayStartEquity: str(stored('dayStartEquity', rolled.dayStartEquity).plus(moved)) }, adjustments };
}

/** A venue's holdings, checked: cash 0 or more, each symbol once, quantities 0 or more (0: not held). */
function readHoldings(venue: VenueHoldings): { cash: Dec; positions: Map<string, Dec> } {
  const cash = toDec('venue cash', venue.cash);
  if (cash.isNegative()) throw new InvariantError('invalid_balances', `venue cash must be 0 or more, got ${String(venue.cash)}`, { cash: venue.cash });
  const positions = new Map<string, Dec>();
  for (const { symbol, quantity } of venue.positions) {
    if (typeof symbol !== 'string' || symbol.trim() === '') {
      throw new InvariantError('invalid_balances', `venue position symbol must be a non-empty string, got ${JSON.stringify(symbol)}`, { symbol });
    }
    if (positions.has(symbol)) throw new InvariantError('invalid_balances', `venue balances list ${symbol} twice`, { symbol });
    const q = toDec(`venue ${symbol} quantity`, quantity);
    if (q.isNegative()) throw new InvariantError('invalid_balances', `venue ${symbol} quantity must be 0 or more, got ${String(quantity)}`, { symbol, quantity });
    positions.set(symbol, q);
  }
  return { cash, positions };
}

/** Each symbol whose quantity differs, venue − book, sorted by symbol. */
function quantityDeltas(state: PaperPortfolioState, venue: Map<string, Dec>): Map<string, Dec> {
  const symbols = [...new Set([...Object.keys(state.positions), ...venue.keys()])].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const out = new Map<string, Dec>();
  for (const symbol of symbols) {
    const held = state.positions[symbol] ? stored(`positions[${symbol}].quantity`, state.positions[symbol]!.quantity) : new D(0);
    const dq = (venue.get(symbol) ?? new D(0)).minus(held);
    if (!dq.isZero()) out.set(symbol, dq);
  }
  return out;
}

function cashAdjustment(cashDelta: Dec, ccy: string, note: string): BookAdjustment {
  const deposit = cashDelta.gt(0);
  return {
    kind: deposit ? 'deposit' : 'withdrawal',
    cashDelta: str(cashDelta),
    value: str(cashDelta),
    valuedBy: 'cash',
    cause: `the venue holds ${str(cashDelta.abs())} ${ccy} ${deposit ? 'more' : 'less'} cash than the book, with no trade of ours to explain it: counted as a ${deposit ? 'deposit' : 'withdrawal'}${note}`,
  };
}

/**
 * The position after changing it by `dq` (undefined when none is left) and the adjustment that
 * describes it. `tradeCash` is the cash that moved with it in an outside trade.
 */
function adjustPosition(state: PaperPortfolioState, symbol: string, dq: Dec, tradeCash: Dec | undefined, ccy: string): { position: PaperPosition | undefined; adjustment: BookAdjustment } {
  const held = state.positions[symbol];
  const heldQty = held ? stored(`positions[${symbol}].quantity`, held.quantity) : new D(0);
  const heldAvg = held ? stored(`positions[${symbol}].avgPrice`, held.avgPrice) : new D(0);
  const heldCost = held ? stored(`positions[${symbol}].costBasis`, held.costBasis) : new D(0);
  const markText = state.marks[symbol];
  const priced: { valuedBy: ValuedBy; value: Dec; price: Dec } = markText !== undefined
    ? { valuedBy: 'mark', price: stored(`marks[${symbol}]`, markText), value: dq.times(stored(`marks[${symbol}]`, markText)) }
    : tradeCash !== undefined
      ? { valuedBy: 'trade_price', price: quotient(tradeCash.abs(), dq.abs()), value: tradeCash.negated() }
      : held
        ? { valuedBy: 'avg_price', price: heldAvg, value: dq.times(heldAvg) }
        : { valuedBy: 'unpriced', price: new D(0), value: new D(0) };

  let position: PaperPosition | undefined;
  if (dq.gt(0)) {
    const quantity = heldQty.plus(dq);
    position = { quantity: str(quantity), avgPrice: str(quotient(heldAvg.times(heldQty).plus(priced.value), quantity)), costBasis: str(heldCost.plus(priced.value)) };
  } else {
    const remaining = heldQty.plus(dq);
    // Multiply before dividing; a whole removal takes the whole cost basis (fill rule).
    const costOut = remaining.isZero() ? heldCost : quotient(heldCost.times(dq.abs()), heldQty);
    position = remaining.isZero() ? undefined : { quantity: str(remaining), avgPrice: held!.avgPrice, costBasis: str(heldCost.minus(costOut)) };
  }

  const kind: BookAdjustmentKind = tradeCash !== undefined ? 'outside_trade' : dq.gt(0) ? 'transfer_in' : 'transfer_out';
  return {
    position,
    adjustment: {
      kind, symbol, quantityDelta: str(dq),
      ...(tradeCash !== undefined ? { cashDelta: str(tradeCash) } : {}),
      value: str(priced.value), valuedBy: priced.valuedBy,
      cause: causeOf(kind, symbol, dq, tradeCash, priced, ccy),
    },
  };
}

function causeOf(kind: BookAdjustmentKind, symbol: string, dq: Dec, tradeCash: Dec | undefined, priced: { valuedBy: ValuedBy; value: Dec; price: Dec }, ccy: string): string {
  const more = dq.gt(0);
  const base = symbol.split('/')[0] ?? symbol;
  const what = `the venue holds ${str(dq.abs())} ${base} ${more ? 'more' : 'less'} than the book (${symbol})`;
  const at = priced.valuedBy === 'mark' ? `valued at the mark ${str(priced.price)} ${ccy}`
    : priced.valuedBy === 'trade_price' ? `valued at the trade's price (no mark)`
      : priced.valuedBy === 'avg_price' ? `valued at the book's avg price ${str(priced.price)} ${ccy} (no mark)`
        : 'with no mark and no trade price: recorded at cost basis 0, so a later sell counts its whole proceeds as PnL';
  const worth = priced.valuedBy === 'unpriced' ? '' : ` = ${str(priced.value.abs())} ${ccy}`;
  if (kind === 'outside_trade') {
    const cash = tradeCash!;
    const price = quotient(cash.abs(), dq.abs());
    return `${what} and ${str(cash.abs())} ${ccy} ${cash.gt(0) ? 'more' : 'less'} cash: ${more ? 'bought' : 'sold'} outside this service at about ${str(price)} ${ccy} each, ${at}${worth}; not trading PnL`;
  }
  return `${what}, with no cash moving against it: coins moved ${more ? 'in' : 'out'}, ${at}${worth}; not trading PnL`;
}
