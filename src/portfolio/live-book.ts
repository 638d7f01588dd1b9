/**
 * The live book: in live mode the venue is the truth for cash and holdings, and this book
 * follows it. Our own fills are booked from the venue's order reports (once per client order id,
 * with the paper book's arithmetic: realised PnL, fees, the loss streak); every other difference
 * found when the book is reconciled with the venue's balances (at start, after every fill, on the
 * risk clock) is applied as an adjustment (`reconcileBook`), kept until the journal holds it as
 * `book.adjusted`, and never counted as trading PnL. The risk policy, commands and the risk clock
 * read it as a `PortfolioSource`.
 *
 * Durable like the paper venue's book: a write-ahead-logged store under
 * `DATA_DIR/live-book/<venue>/`; each change is one appended record, applied in memory only once
 * it is on disk, and changes run one at a time, each from the state the previous one left.
 *
 * Ordering contract (so that our own fill is never counted twice, nor as an outside trade):
 * 1. Before an order is sent, `expectOrder(clientOrderId, symbol)` registers it as in flight
 *    (durably, so a crash keeps it). While any order is in flight, reconcile holds back the cash
 *    and that order's symbol: differences there wait for a later reconcile, because the venue may
 *    fill the order at any moment and the book only learns of it from the order's report.
 * 2. `bookFill(report)` books what the report filled beyond what was booked for its client id
 *    (the delta; the booked totals are durable, so a repeat books nothing, also after a
 *    restart). A report that is not final (partly filled) keeps the order in flight; a final one
 *    books the rest and ends the flight in the same write.
 * 3. Then `reconcile(() => venue.balances())`: given a function, the balances are fetched inside
 *    the book's queue, after every fill already handed to `bookFill` and before any later one, so
 *    they always include what the book has booked. Balances passed as a value must have been
 *    fetched after the last fill the book booked (at start-up, before trading, that holds).
 * The venue's balances must show a fill once its order report does (Upbit's and the paper
 * venue's do). A fill that reaches the venue's balances first is held back by rule 1; one the
 * book booked first is in the balances fetched after it by rule 3. An order in flight for longer
 * than `inFlightMaxMs` stops holding anything back (a lost order must not freeze the book): if
 * its fill is booked after that, the reconcile before counted it as an outside trade and the one
 * after takes it back out, so the book still ends equal to the venue.
 */
import { MarkBatch } from './mark-batch';
import path from 'node:path';
import { Dec as D, amount, toDec, type Amount } from '../amounts';
import { InvariantError } from '../errors';
// eslint-disable-next-line no-restricted-imports -- this book is durable by design (it replaces the venue's own book in live mode); its rules stay pure in paper-portfolio.ts and book-reconcile.ts
import { LogStore, type Change, type RestoreReport } from '../persistence/log-store';
// eslint-disable-next-line no-restricted-imports -- the storage port only (an interface), as every durable component takes it
import type { StorageIo } from '../persistence/storage-io';
import type { PortfolioSource } from '../context/portfolio-snapshot';
import type { OrderReport, PortfolioView } from '../proposal/types';
import { reconcileBook, type BookAdjustment, type ValuedBy, type VenueHoldings } from './book-reconcile';
import {
  applyFill, checkFill, createPaperPortfolio, markPrices, rollOver, viewPortfolio, type FillInput, type PaperPortfolioState,
} from './paper-portfolio';

export type { BookAdjustment, BookAdjustmentKind, ValuedBy, VenueHoldings } from './book-reconcile';

export interface LiveBookOptions {
  /** The venue whose account this is (`upbit`): its folder, and the `venue` of its journal records. */
  venue: string;
  quoteCurrency: string;
  timeZone: string;
  /** The venue's smallest order: a holding worth less is dust. */
  minOrderNotional: number;
  /** Slippage assumed on a sell when deciding what is dust (as the paper venue's). */
  sellSlippagePct?: number;
  /** How long an order in flight holds back reconciliation of the cash and its symbol (default 15 minutes). */
  inFlightMaxMs?: number;
  /** Booked client ids remembered for idempotency (default 10 000; the store stays bounded). */
  retainFills?: number;
  /** Log size that triggers a checkpoint of the store (STORE_CHECKPOINT_MIN_BYTES). */
  checkpointMinBytes?: number;
  now?: () => number;
}

/**
 * The live account's opening: what the venue held at the first reconcile of a fresh book (not
 * adjustments: the account starts there). Journalled once as `account.opened`.
 */
export interface LiveAccountOpening {
  venue: string;
  openedAt: string;
  cash: Amount;
  quoteCurrency: string;
  /** Holdings at the opening, each at cost basis quantity × mark, or 0 without a mark (`valuedBy`). */
  positions: Array<{ symbol: string; quantity: Amount; avgPrice: Amount; costBasis: Amount; valuedBy: ValuedBy }>;
  /** Whether the journal holds its `account.opened` record (written before this turns true). */
  journalled: boolean;
}

/**
 * One reconcile's adjustments as the journal records them. `id` is unique per venue (a record
 * written twice by a crash between the journal and the book's note of it counts once);
 * `afterFills` is the number of fills the book had booked (the ledger puts it between fills).
 */
export interface BookAdjustedRecord {
  type: 'book.adjusted';
  venue: string;
  id: string;
  at: string;
  afterFills: number;
  adjustments: BookAdjustment[];
}

/** What a reconcile did. */
export interface BookReconciliation {
  /** The account's opening, when this was the fresh book's first reconcile (journal it; see `unjournalledOpening`). */
  opening: LiveAccountOpening | null;
  adjustments: BookAdjustment[];
  /** The journal record of `adjustments` (null when none): append it, then call `adjustmentsJournalled`. */
  record: BookAdjustedRecord | null;
  /** What was held back because orders were in flight (null: nothing); the cash is held back with them. */
  heldBack: { orders: string[]; symbols: string[] } | null;
}

/** The part of an order's fill that one `bookFill` booked (exact decimals). */
export interface FillDelta {
  quantity: Amount;
  /** (filled × average now − notional booked before) / quantity: the part's own price. */
  price: Amount;
  fee: Amount;
}

/** What `bookFill` did. */
export interface BookedFill {
  /** Whether this call booked a fill (false: nothing new filled, nothing filled, or booked before). */
  booked: boolean;
  /** What this call booked (null when nothing). */
  fill: FillDelta | null;
  /** Realised PnL of a booked sell (null for a buy and when nothing was booked). */
  realizedPnl: Amount | null;
  /** The fill's place in the book's order (also for a repeat); journal it as `order.fillSequence`. */
  fillSequence: number | null;
  /**
   * Adjustments the fill needed first: the book held less cash or fewer coins than the venue
   * spent (a deposit not yet reconciled). Journal it before the fill; null when none.
   */
  record: BookAdjustedRecord | null;
}

interface BookedFillRecord {
  sequence: number;
  at: string;
}

/** What was booked so far for an order still in flight (its partial fills). */
interface BookedPart {
  /** Filled quantity booked (the venue's cumulative filledQuantity when it was booked). */
  quantity: Amount;
  /** Σ quantity × price of the parts booked, as the book computed them. */
  notional: Amount;
  /** Cumulative fee booked. */
  fee: Amount;
  /** The last part's place in the book's order. */
  sequence: number;
  /** Each part booked, oldest first (to journal again one whose line a crash lost). */
  parts?: BookedPartLine[];
}

/** One partial fill the book booked for an order still in flight: what its journal line holds. */
export interface BookedPartLine {
  /** The order's cumulative filled quantity after this part. */
  filledQuantity: Amount;
  fill: FillDelta;
  fillSequence: number;
}

interface InFlight {
  symbol: string;
  since: number;
}

type LiveRecord = PaperPortfolioState | LiveAccountOpening | BookAdjustedRecord | BookedFillRecord | BookedPart | InFlight | { adjustments: number };
const PORTFOLIO = 'portfolio';
const ACCOUNT = 'account';
const META = 'meta';
const fillKey = (id: string) => `fill:${id}`;
const flightKey = (id: string) => `flight:${id}`;
const partKey = (id: string) => `part:${id}`;
const adjustedKey = (id: string) => `adjusted:${id}`;
const DEFAULT_IN_FLIGHT_MS = 15 * 60_000;

export class LiveBook implements PortfolioSource {
  private readonly now: () => number;
  /** Marks waiting for the next mark write, and that write. */
  private readonly markBatch: MarkBatch;
  /** The durable book (what the store holds, or a fresh empty one before the opening). */
  private portfolio: PaperPortfolioState;
  private queue: Promise<unknown> = Promise.resolve();
  /** Booked client ids, oldest first (pruning takes the oldest). */
  private readonly booked: string[];

  private constructor(
    private readonly store: LogStore<LiveRecord>,
    private readonly options: LiveBookOptions,
    /** What opening the store found (a torn last record cut). */
    readonly restoreReport: RestoreReport,
  ) {
    this.now = options.now ?? Date.now;
    this.markBatch = new MarkBatch(this.now);
    this.portfolio = (store.get(PORTFOLIO) as PaperPortfolioState | undefined) ?? createPaperPortfolio(0, this.now(), options.timeZone);
    const fills = [...store.entries()].filter(([key]) => key.startsWith('fill:')) as Array<[string, BookedFillRecord]>;
    this.booked = fills.sort((a, b) => a[1].sequence - b[1].sequence).map(([key]) => key.slice('fill:'.length));
  }

  /** Opens (or creates) the book of `options.venue` under `DATA_DIR/live-book/<venue>/`. */
  static async open(io: StorageIo, dataDir: string, options: LiveBookOptions): Promise<LiveBook> {
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(options.venue)) {
      throw new InvariantError('invalid_venue', `the live book's venue must be a lower-case name, got ${JSON.stringify(options.venue)}`, { venue: options.venue });
    }
    const { store, report } = await LogStore.open<LiveRecord>(io, path.join(dataDir, 'live-book', options.venue), {
      name: `live-book-${options.venue}`,
      ...(options.checkpointMinBytes !== undefined ? { checkpointMinBytes: options.checkpointMinBytes } : {}),
    });
    return new LiveBook(store, options, report);
  }

  get venue(): string {
    return this.options.venue;
  }

  /** Whether the book has been opened from the venue's balances (its first reconcile). */
  get opened(): boolean {
    return this.store.has(ACCOUNT);
  }

  /** The durable book as stored (for the ledger check and tests). */
  get state(): PaperPortfolioState {
    return this.portfolio;
  }

  /** Orders registered as in flight, by client id. */
  get inFlight(): Record<string, { symbol: string; since: number }> {
    return Object.fromEntries(this.flights().map(([id, f]) => [id, { ...f }]));
  }

  /** The account's opening while the journal does not hold it yet (null otherwise, and before the opening). */
  get unjournalledOpening(): LiveAccountOpening | null {
    const opening = this.store.get(ACCOUNT) as LiveAccountOpening | undefined;
    return opening && !opening.journalled ? opening : null;
  }

  /** Records that the journal holds the opening (call after its `account.opened` line is durable). */
  openingJournalled(): Promise<void> {
    return this.serial(async () => {
      const opening = this.unjournalledOpening;
      if (opening) await this.store.commit([{ key: ACCOUNT, value: { ...opening, journalled: true } }]);
    });
  }

  /** Adjustment records not yet in the journal, oldest first (after a crash: journal them at start). */
  get unjournalledAdjustments(): BookAdjustedRecord[] {
    return ([...this.store.entries()].filter(([key]) => key.startsWith('adjusted:')).map(([, v]) => v) as BookAdjustedRecord[])
      .sort((a, b) => a.afterFills - b.afterFills || seq(a.id) - seq(b.id));
  }

  /** Records that the journal holds these adjustment records (call after their lines are durable). */
  adjustmentsJournalled(ids: readonly string[]): Promise<void> {
    return this.serial(() => this.store.commit(ids.filter((id) => this.store.has(adjustedKey(id))).map((id) => ({ key: adjustedKey(id), remove: true as const }))));
  }

  snapshot(now: number): PortfolioView {
    return viewPortfolio(this.portfolio, now, this.options.timeZone, {
      minOrderNotional: this.options.minOrderNotional,
      ...(this.options.sellSlippagePct !== undefined ? { sellSlippagePct: this.options.sellSlippagePct } : {}),
    });
  }

  /**
   * Records prices (and the trading-day rollover they may bring) durably. Marks given while one
   * write waits in line share it; a bad price fails its caller only.
   */
  mark(prices: Record<string, number | string>, takenAt: Record<string, number> = {}): Promise<void> {
    return this.markBatch.add(prices, takenAt, (work) => this.serial(work), async (marks, times) => {
      const at = this.now();
      const next = markPrices(rollOver(this.portfolio, at, this.options.timeZone), marks, at, times);
      await this.store.commit([{ key: PORTFOLIO, value: next }]);
      this.portfolio = next;
    });
  }

  /** Registers an order as in flight, durably, before it is sent (ordering contract, rule 1). */
  expectOrder(clientOrderId: string, symbol: string): Promise<void> {
    return this.serial(async () => {
      if (this.store.has(flightKey(clientOrderId)) || this.store.has(fillKey(clientOrderId))) return;
      await this.store.commit([{ key: flightKey(clientOrderId), value: { symbol, since: this.now() } }]);
    });
  }

  /** The partial fills booked for an order not final yet, oldest first (none once its final report is booked). */
  partsOf(clientOrderId: string): BookedPartLine[] {
    const part = this.store.get(partKey(clientOrderId)) as BookedPart | undefined;
    return (part?.parts ?? []).map((p) => ({ ...p, fill: { ...p.fill } }));
  }

  /** Ends an order's flight without a fill (it was refused before reaching the venue, or is known never to fill). */
  forgetOrder(clientOrderId: string): Promise<void> {
    return this.serial(async () => {
      if (this.store.has(flightKey(clientOrderId))) await this.store.commit([{ key: flightKey(clientOrderId), remove: true }]);
    });
  }

  /**
   * Books the fill of one of our orders from the venue's report: what it filled beyond what was
   * booked for its client id, each part once (a repeat, also after a restart, books nothing). A
   * partly filled report books its delta and keeps the order in flight (the journal's
   * `order.partially_filled` holds that delta); the final report books the rest and ends the
   * flight (its `order.filled` holds the whole fill; the ledger takes the parts out of it). The
   * delta's price is (filledQuantity × avgPrice − notional booked) / delta quantity, exact to the
   * book's precision, so the parts add up to the venue's totals. A dry run books nothing.
   */
  bookFill(report: OrderReport): Promise<BookedFill> {
    if (report.venue !== this.options.venue) {
      return Promise.reject(new InvariantError('wrong_venue', `the ${this.options.venue} book was given a report of venue ${report.venue} (order ${report.clientOrderId})`, { venue: report.venue, clientOrderId: report.clientOrderId }));
    }
    return this.serial(() => this.book(report));
  }

  private async book(report: OrderReport): Promise<BookedFill> {
    const id = report.clientOrderId;
    const none = { booked: false, fill: null, realizedPnl: null, fillSequence: null, record: null };
    const done = this.store.get(fillKey(id)) as BookedFillRecord | undefined;
    if (done) return { ...none, fillSequence: done.sequence };
    const final = report.status === 'filled' || report.status === 'cancelled' || report.status === 'rejected';
    const part = this.store.get(partKey(id)) as BookedPart | undefined;
    const filled = toDec('filledQuantity', report.filledQuantity);
    if (report.dryRun || (final && !filled.gt(0) && !part)) {
      if (this.store.has(flightKey(id))) await this.store.commit([{ key: flightKey(id), remove: true }]);
      return none;
    }
    const bookedQuantity = part ? toDec('booked quantity', part.quantity) : new D(0);
    const flight = this.store.has(flightKey(id)) ? [] : [{ key: flightKey(id), value: { symbol: report.symbol, since: this.now() } }];
    if (!final && !filled.gt(bookedQuantity)) {
      if (flight.length > 0) await this.store.commit(flight);
      return { ...none, fillSequence: part?.sequence ?? null };
    }
    if (!this.opened) {
      throw new InvariantError('book_not_opened', `order ${id} filled before the ${this.options.venue} book was opened: reconcile it with the venue's balances first`, { clientOrderId: id });
    }
    const now = this.now();
    if (filled.lt(bookedQuantity)) {
      throw new InvariantError('fill_shrank', `order ${id} reports ${report.filledQuantity} filled, less than the ${part!.quantity} already booked`, { clientOrderId: id });
    }
    if (!filled.gt(bookedQuantity)) {
      // Final, and the parts booked it all: end the flight under the last part's place.
      const sequence = part!.sequence;
      await this.store.commit([
        { key: fillKey(id), value: { sequence, at: new Date(now).toISOString() } },
        { key: partKey(id), remove: true },
        ...(flight.length === 0 ? [{ key: flightKey(id), remove: true as const }] : []),
        ...this.prunable().map((old) => ({ key: fillKey(old), remove: true as const })),
      ]);
      this.remember(id);
      return { ...none, fillSequence: sequence };
    }
    const delta = this.delta(report, part);
    const fill: FillInput = { symbol: report.symbol, side: report.side, ...delta };
    const covered = this.cover(this.portfolio, fill, id, now);
    const result = applyFill(covered.state, fill, now, this.options.timeZone);
    const sequence = result.state.fills ?? 0;
    const changes: Array<Change<LiveRecord>> = [...covered.changes, { key: PORTFOLIO, value: result.state }];
    if (final) {
      changes.push(
        { key: fillKey(id), value: { sequence, at: new Date(now).toISOString() } },
        ...(part ? [{ key: partKey(id), remove: true as const }] : []),
        ...(flight.length === 0 ? [{ key: flightKey(id), remove: true as const }] : []),
        ...this.prunable().map((old) => ({ key: fillKey(old), remove: true as const })),
      );
    } else {
      const notional = (part ? toDec('booked notional', part.notional) : new D(0)).plus(toDec('quantity', delta.quantity).times(toDec('price', delta.price)));
      const parts = [...(part?.parts ?? []), { filledQuantity: report.filledQuantity, fill: delta, fillSequence: sequence }];
      changes.push({ key: partKey(id), value: { quantity: report.filledQuantity, notional: amount(notional), fee: report.fee, sequence, parts } }, ...flight);
    }
    await this.store.commit(changes);
    this.portfolio = result.state;
    if (final) this.remember(id);
    return { booked: true, fill: delta, realizedPnl: result.realizedPnl, fillSequence: sequence, record: covered.record };
  }

  /** What `report` filled beyond `part` (the whole report when nothing was booked before). */
  private delta(report: OrderReport, part: BookedPart | undefined): FillDelta {
    if (!part) return { quantity: report.filledQuantity, price: report.avgPrice, fee: report.fee };
    const id = report.clientOrderId;
    const quantity = toDec('filledQuantity', report.filledQuantity).minus(toDec('booked quantity', part.quantity));
    const notional = toDec('filledQuantity', report.filledQuantity).times(toDec('avgPrice', report.avgPrice)).minus(toDec('booked notional', part.notional));
    const fee = toDec('fee', report.fee).minus(toDec('booked fee', part.fee));
    if (!notional.gt(0) || fee.lt(0)) {
      throw new InvariantError('fill_shrank', `order ${id} reports ${report.filledQuantity} at ${report.avgPrice} with fee ${report.fee}, which leaves no positive notional or fee for the part after the ${part.quantity} booked`, { clientOrderId: id });
    }
    return { quantity: amount(quantity), price: amount(notional.div(quantity)), fee: amount(fee) };
  }

  /** Notes a client id as booked for good (after its final write), pruning as that write did. */
  private remember(id: string): void {
    const pruned = this.booked.length + 1 - (this.options.retainFills ?? 10_000);
    if (pruned > 0) this.booked.splice(0, pruned);
    this.booked.push(id);
  }

  /**
   * The book able to take `fill`: when it holds less cash or fewer coins than the venue spent, the
   * venue held more than the book knew (a deposit not yet reconciled), so the shortfall is
   * adjusted in first, with a cause naming the order.
   */
  private cover(state: PaperPortfolioState, fill: FillInput, clientOrderId: string, now: number): { state: PaperPortfolioState; record: BookAdjustedRecord | null; changes: Array<Change<LiveRecord>> } {
    const rolled = rollOver(state, now, this.options.timeZone);
    if (!checkFill(rolled, fill)) return { state: rolled, record: null, changes: [] };
    const quantity = toDec('fill quantity', fill.quantity);
    const gross = quantity.times(toDec('fill price', fill.price));
    const fee = toDec('fill fee', fill.fee);
    const needCash = fill.side === 'buy' ? gross.plus(fee) : D.max(fee.minus(gross), 0);
    const cash = D.max(toDec('cash', rolled.cash), needCash);
    const positions = Object.entries(rolled.positions).map(([symbol, p]) => ({ symbol, quantity: p.quantity }));
    if (fill.side === 'sell') {
      const held = positions.find((p) => p.symbol === fill.symbol);
      if (held) held.quantity = amount(D.max(toDec('held', held.quantity), quantity));
      else positions.push({ symbol: fill.symbol, quantity: amount(quantity) });
    }
    const { state: next, adjustments } = reconcileBook(rolled, { quoteCurrency: this.options.quoteCurrency, cash: amount(cash), positions }, now, this.options.timeZone);
    const explained = adjustments.map((a) => ({ ...a, cause: `booking our ${fill.side} ${fill.quantity} ${fill.symbol} (order ${clientOrderId}) needed more than the book held: ${a.cause}` }));
    const record = this.adjustedRecord(explained, next, now);
    return { state: next, record, changes: [...this.recordChanges(record)] };
  }

  /**
   * Makes the book equal the venue's balances (see the ordering contract above). The first
   * reconcile of a fresh book opens the account from them instead: an opening, not adjustments.
   * Given a function, the balances are fetched inside the book's queue.
   */
  reconcile(balances: VenueHoldings | (() => Promise<VenueHoldings>)): Promise<BookReconciliation> {
    return this.serial(async () => {
      const venue = typeof balances === 'function' ? await balances() : balances;
      if (venue.quoteCurrency !== this.options.quoteCurrency) {
        throw new InvariantError('wrong_quote_currency', `the ${this.options.venue} book counts in ${this.options.quoteCurrency}, but the venue's balances are in ${venue.quoteCurrency}`, { quoteCurrency: venue.quoteCurrency });
      }
      return this.opened ? this.adjust(venue) : this.openAccount(venue);
    });
  }

  private async openAccount(venue: VenueHoldings): Promise<BookReconciliation> {
    const now = this.now();
    const { state, adjustments } = reconcileBook(this.portfolio, venue, now, this.options.timeZone);
    const valuedBy = new Map(adjustments.map((a) => [a.symbol, a.valuedBy]));
    const opening: LiveAccountOpening = {
      venue: this.options.venue, openedAt: new Date(now).toISOString(), cash: state.cash, quoteCurrency: this.options.quoteCurrency,
      positions: Object.entries(state.positions).sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([symbol, p]) => ({ symbol, quantity: p.quantity, avgPrice: p.avgPrice, costBasis: p.costBasis, valuedBy: valuedBy.get(symbol) ?? 'unpriced' })),
      journalled: false,
    };
    await this.store.commit([{ key: PORTFOLIO, value: state }, { key: ACCOUNT, value: opening }]);
    this.portfolio = state;
    return { opening, adjustments: [], record: null, heldBack: null };
  }

  private async adjust(venue: VenueHoldings): Promise<BookReconciliation> {
    const now = this.now();
    const limit = this.options.inFlightMaxMs ?? DEFAULT_IN_FLIGHT_MS;
    const flights = this.flights();
    const active = flights.filter(([, f]) => now - f.since < limit);
    const expired = flights.filter(([, f]) => now - f.since >= limit).map(([id]) => id);
    const symbols = [...new Set(active.map(([, f]) => f.symbol))].sort();
    const target = active.length === 0 ? venue : this.holdBack(venue, symbols);
    const { state, adjustments } = reconcileBook(this.portfolio, target, now, this.options.timeZone);
    const record = this.adjustedRecord(adjustments, state, now);
    const changes: Array<Change<LiveRecord>> = [
      ...(record ? [{ key: PORTFOLIO, value: state }, ...this.recordChanges(record)] : []),
      ...expired.map((id) => ({ key: flightKey(id), remove: true as const })),
    ];
    await this.store.commit(changes);
    this.portfolio = state;
    return { opening: null, adjustments, record, heldBack: active.length === 0 ? null : { orders: active.map(([id]) => id), symbols } };
  }

  /** The venue's balances with the cash and `symbols` replaced by the book's (they wait for the orders in flight). */
  private holdBack(venue: VenueHoldings, symbols: string[]): VenueHoldings {
    const held = new Set(symbols);
    const positions = venue.positions.filter((p) => !held.has(p.symbol));
    for (const symbol of symbols) {
      const mine = this.portfolio.positions[symbol];
      if (mine) positions.push({ symbol, quantity: mine.quantity });
    }
    return { quoteCurrency: venue.quoteCurrency, cash: this.portfolio.cash, positions };
  }

  private adjustedRecord(adjustments: BookAdjustment[], state: PaperPortfolioState, now: number): BookAdjustedRecord | null {
    if (adjustments.length === 0) return null;
    const n = this.adjustmentCount + 1;
    return { type: 'book.adjusted', venue: this.options.venue, id: `${this.options.venue}-adjustment-${n}`, at: new Date(now).toISOString(), afterFills: state.fills ?? 0, adjustments };
  }

  private recordChanges(record: BookAdjustedRecord | null): Array<Change<LiveRecord>> {
    if (!record) return [];
    return [{ key: adjustedKey(record.id), value: record }, { key: META, value: { adjustments: seq(record.id) } }];
  }

  private get adjustmentCount(): number {
    return (this.store.get(META) as { adjustments: number } | undefined)?.adjustments ?? 0;
  }

  private flights(): Array<[string, InFlight]> {
    return ([...this.store.entries()].filter(([key]) => key.startsWith('flight:')) as Array<[string, InFlight]>)
      .map(([key, f]) => [key.slice('flight:'.length), f]);
  }

  /** The oldest booked ids beyond `retainFills` (one per new fill in the steady state). */
  private prunable(): string[] {
    const excess = this.booked.length + 1 - (this.options.retainFills ?? 10_000);
    return excess > 0 ? this.booked.slice(0, excess) : [];
  }

  /** Runs `change` after every change before it. */
  private serial<T>(change: () => Promise<T>): Promise<T> {
    const run = this.queue.then(change, change);
    this.queue = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    await this.queue;
    await this.store.close();
  }
}

/**
 * The journal record of the account's opening (`account.opened`), as the ledger reads it: the
 * opening cash and holdings with their cost basis.
 */
export function accountOpenedRecord(opening: LiveAccountOpening): Record<string, unknown> & { type: 'account.opened' } {
  return {
    type: 'account.opened', venue: opening.venue, openedAt: opening.openedAt, cash: opening.cash, quoteCurrency: opening.quoteCurrency,
    positions: opening.positions.map(({ symbol, quantity, costBasis }) => ({ symbol, quantity, costBasis })),
  };
}

/** The number at the end of an adjustment record's id. */
function seq(id: string): number {
  return Number(id.slice(id.lastIndexOf('-') + 1));
}
