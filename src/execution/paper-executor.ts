/**
 * The paper venue: a full adapter behind the same interface as every real venue. Orders fill
 * at the request's reference price moved by slippage against the trader, pay FEE_RATE, and
 * change a paper portfolio. Orders and the portfolio live in a write-ahead-logged store under
 * `DATA_DIR/paper-venue/` (one record per order, one for the portfolio): each change is one
 * appended record, durable before `submit` answers, so an order that "reached the venue"
 * survives a crash, and one that could not be recorded never happened. Changes run one at a
 * time, each from the state the previous one left on disk.
 */
import { MarkBatch } from '../portfolio/mark-batch';
import path from 'node:path';
import Decimal from 'decimal.js';
import type { OrderReport, OrderRequest, PortfolioView } from '../proposal/types';
import { Dec as D, amount, toDec } from '../amounts';
import { InvariantError } from '../errors';
import {
  applyFill, checkFill, createPaperPortfolio, markPrices, rollOver, viewPortfolio, type PaperPortfolioState,
} from '../portfolio/paper-portfolio';
import { LogStore, type Change, type RestoreReport } from '../persistence/log-store';
import type { StorageIo } from '../persistence/storage-io';
import type { PortfolioSource } from '../context/portfolio-snapshot';
import type { Balances, ExecutionVenue, VenueCapabilities } from './base';

/** Paper quantities have eight decimal places, as most crypto venues' do. */
const QUANTITY_DECIMALS = 8;

/** A paper order: the report plus what will be filled when it comes due. */
interface PaperOrder extends OrderReport {
  plannedQuantity: string;
  plannedPrice: string;
  plannedFee: string;
  /** Epoch ms at which an open order fills. */
  fillAt: number | null;
}

/** The single-document layout of older versions (`DATA_DIR/paper-venue.json`), imported once. */
interface LegacyPaperVenue {
  version: 1;
  portfolio: PaperPortfolioState | null;
  orders: Record<string, PaperOrder>;
  sequence: number;
}

/** The paper account's opening, journalled once as `account.opened` so the ledger knows the starting cash. */
export interface PaperAccountOpening {
  openedAt: string;
  cash: string;
  quoteCurrency: string;
  /** Whether the journal holds its `account.opened` record (written before this turns true). */
  journalled: boolean;
}

type PaperRecord = PaperOrder | PaperPortfolioState | PaperAccountOpening | { sequence: number };
const PORTFOLIO = 'portfolio';
const ACCOUNT = 'account';
const META = 'meta';
const orderKey = (clientOrderId: string) => `order:${clientOrderId}`;
/** How far past the oldest order pruning looks for finished ones (open orders are rare and short-lived). */
const PRUNE_SCAN = 16;

export interface PaperExecutorOptions {
  initialCash: number;
  feeRate: number;
  slippagePct: number;
  /** Delay before an accepted order fills (0: at once). */
  fillDelayMs: number;
  /** Smallest order notional (PAPER_MIN_ORDER_NOTIONAL; 0: none): smaller orders are refused, smaller holdings are dust. */
  minOrderNotional?: number;
  quoteCurrency: string;
  timeZone: string;
  /** Finished orders kept for client-id lookups (the store stays bounded). */
  retainOrders?: number;
  /** Log size that triggers a checkpoint of the venue's store (STORE_CHECKPOINT_MIN_BYTES). */
  checkpointMinBytes?: number;
  now?: () => number;
}

export class PaperExecutor implements ExecutionVenue, PortfolioSource {
  readonly name = 'paper';
  readonly minOrderNotional: number;
  /** Every fill is simulated, so a dry run would be the same as the order: there is none. */
  readonly capabilities: VenueCapabilities = { orderTypes: ['market'], dryRun: false, clientOrderIds: true };
  private readonly now: () => number;
  /** Marks waiting for the next mark write, and that write. */
  private readonly markBatch: MarkBatch;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** The durable portfolio (what the store holds). */
  private portfolio: PaperPortfolioState;
  /** Changes run one after another (each reads what the previous one committed). */
  private queue: Promise<unknown> = Promise.resolve();
  /** Client ids of orders in the order they were placed (pruning takes the oldest finished). */
  private readonly placed: string[] = [];

  private constructor(
    private readonly store: LogStore<PaperRecord>,
    private readonly options: PaperExecutorOptions,
    /** What opening the store found (a torn last record cut, a legacy file imported). */
    readonly restoreReport: RestoreReport,
  ) {
    this.now = options.now ?? Date.now;
    this.markBatch = new MarkBatch(this.now);
    this.minOrderNotional = options.minOrderNotional ?? 0;
    this.portfolio = (store.get(PORTFOLIO) as PaperPortfolioState | undefined) ?? createPaperPortfolio(options.initialCash, this.now(), options.timeZone);
    for (const [key, value] of store.entries()) {
      if (!key.startsWith('order:')) continue;
      const order = value as PaperOrder;
      this.placed.push(order.clientOrderId);
      if (order.status === 'open') this.armFill(order);
    }
  }

  /** Opens the paper venue's store under `DATA_DIR/paper-venue/` (importing `paper-venue.json` of older versions). */
  static async open(io: StorageIo, dataDir: string, options: PaperExecutorOptions): Promise<PaperExecutor> {
    const legacyFile = path.join(dataDir, 'paper-venue.json');
    const { store, report } = await LogStore.open<PaperRecord>(io, path.join(dataDir, 'paper-venue'), {
      name: 'paper-venue',
      ...(options.checkpointMinBytes !== undefined ? { checkpointMinBytes: options.checkpointMinBytes } : {}),
      migrate: async () => {
        const raw = await io.readFile(legacyFile);
        if (!raw || raw.length === 0) return undefined;
        let legacy: LegacyPaperVenue;
        try {
          legacy = JSON.parse(raw.toString()) as LegacyPaperVenue;
        } catch (err) {
          throw new InvariantError('corrupt_store', `${legacyFile} is not valid JSON (${(err as Error).message}): restore it from a backup of DATA_DIR, or move it aside to start a fresh paper account`, { file: legacyFile });
        }
        const entries: Array<[string, PaperRecord]> = [[META, { sequence: legacy.sequence ?? 0 }]];
        if (legacy.portfolio) entries.push([PORTFOLIO, legacy.portfolio]);
        for (const order of Object.values(legacy.orders ?? {})) entries.push([orderKey(order.clientOrderId), order]);
        return entries;
      },
    });
    // Imported into the store's checkpoint (now or at an earlier, interrupted start).
    await io.remove(legacyFile);
    const venue = new PaperExecutor(store, options, report);
    // A new account is written whole before anything uses it: its opening cash and the portfolio.
    if (store.get(PORTFOLIO) === undefined) {
      const opening: PaperAccountOpening = { openedAt: new Date(venue.now()).toISOString(), cash: amount(options.initialCash), quoteCurrency: options.quoteCurrency, journalled: false };
      await store.commit([{ key: PORTFOLIO, value: venue.portfolio }, { key: ACCOUNT, value: opening }]);
    }
    return venue;
  }

  /**
   * The account's opening while the journal does not hold it yet (null otherwise, and for
   * accounts opened by versions that did not record it: the ledger then starts from PAPER_INITIAL_CASH).
   */
  get unjournalledOpening(): PaperAccountOpening | null {
    const opening = this.store.get(ACCOUNT) as PaperAccountOpening | undefined;
    return opening && !opening.journalled ? opening : null;
  }

  /** Records that the journal holds the opening (call after its `account.opened` line is durable). */
  async openingJournalled(): Promise<void> {
    const opening = this.unjournalledOpening;
    if (!opening) return;
    await this.serial(() => this.store.commit([{ key: ACCOUNT, value: { ...opening, journalled: true } }]));
  }

  /** Orders the venue holds (finished ones are kept up to `retainOrders`). */
  get orderCount(): number {
    return this.placed.length;
  }

  private order(clientOrderId: string): PaperOrder | undefined {
    return this.store.get(orderKey(clientOrderId)) as PaperOrder | undefined;
  }

  private get sequence(): number {
    return (this.store.get(META) as { sequence: number } | undefined)?.sequence ?? 0;
  }

  /** Runs `change` after every change before it. */
  private serial<T>(change: () => Promise<T>): Promise<T> {
    const run = this.queue.then(change, change);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Paper trading simulates any symbol that market data prices. */
  trades(): boolean {
    return true;
  }

  submit(request: OrderRequest): Promise<OrderReport> {
    return this.serial(() => this.place(request));
  }

  private async place(request: OrderRequest): Promise<OrderReport> {
    const existing = this.order(request.clientOrderId);
    if (existing) return this.report(existing);
    validateRequest(request);
    const now = this.now();
    const at = new Date(now).toISOString();
    const slip = new D(this.options.slippagePct).div(100);
    const price = new D(request.price).mul(request.side === 'buy' ? slip.plus(1) : new D(1).minus(slip));
    const quantity = request.side === 'buy'
      ? toDec('notional', request.notional).div(price).toDecimalPlaces(QUANTITY_DECIMALS, Decimal.ROUND_DOWN)
      : toDec('quantity', request.quantity ?? '0').toDecimalPlaces(QUANTITY_DECIMALS, Decimal.ROUND_DOWN);
    const fee = quantity.mul(price).mul(this.options.feeRate);
    const sequence = this.sequence + 1;
    let order: PaperOrder = {
      clientOrderId: request.clientOrderId,
      venueOrderId: `paper-${sequence}`,
      venue: this.name,
      symbol: request.symbol,
      side: request.side,
      status: 'open',
      filledQuantity: '0',
      avgPrice: '0',
      fee: '0',
      submittedAt: at,
      updatedAt: at,
      plannedQuantity: amount(quantity),
      plannedPrice: amount(price),
      plannedFee: amount(fee),
      fillAt: now + this.options.fillDelayMs,
    };
    const refusal = quantity.lte(0)
      ? { code: request.side === 'sell' ? 'no_position' : 'size_too_small', message: request.side === 'sell' ? `nothing of ${request.symbol} to sell` : `order size rounds to zero at price ${amount(price)}` }
      : quantity.mul(price).lt(this.minOrderNotional)
        ? { code: 'below_minimum', message: `the order is worth ${amount(quantity.mul(price))}, below the venue's minimum of ${this.minOrderNotional} ${this.options.quoteCurrency}` }
        : checkFill(this.portfolio, { symbol: request.symbol, side: request.side, quantity: amount(quantity), price: amount(price), fee: amount(fee) });
    let portfolio = this.portfolio;
    if (refusal) {
      order = { ...order, status: 'rejected', rejectReason: `${refusal.code}: ${refusal.message}`, fillAt: null };
    } else if (this.options.fillDelayMs === 0) {
      ({ order, portfolio } = this.fill(order, portfolio, now));
    }
    const changes: Array<Change<PaperRecord>> = [
      { key: orderKey(order.clientOrderId), value: order },
      { key: META, value: { sequence } },
      { key: PORTFOLIO, value: portfolio },
      ...this.prunable().map((id) => ({ key: orderKey(id), remove: true as const })),
    ];
    await this.store.commit(changes);
    this.portfolio = portfolio;
    this.placed.push(order.clientOrderId);
    const pruned = new Set(changes.filter((c) => 'remove' in c).map((c) => c.key.slice('order:'.length)));
    if (pruned.size > 0) {
      // Pruned orders are among the oldest: only the head of the list is looked at.
      let last = -1;
      for (let i = 0, seen = 0; i < this.placed.length && seen < pruned.size; i++) {
        if (pruned.has(this.placed[i]!)) {
          last = i;
          seen += 1;
        }
      }
      this.placed.unshift(...this.placed.splice(0, last + 1).filter((id) => !pruned.has(id)));
    }
    if (order.status === 'open') this.armFill(order);
    return this.report(order);
  }

  async findByClientId(clientOrderId: string): Promise<OrderReport | undefined> {
    const order = this.order(clientOrderId);
    if (!order) return undefined;
    if (order.status === 'open' && order.fillAt !== null && order.fillAt <= this.now()) return this.serial(() => this.fillDue(clientOrderId));
    return this.report(order);
  }

  /** Fills an open order that has come due (from the state the previous change left). */
  private async fillDue(clientOrderId: string): Promise<OrderReport | undefined> {
    const current = this.order(clientOrderId);
    if (!current) return undefined;
    if (current.status !== 'open' || current.fillAt === null || current.fillAt > this.now()) return this.report(current);
    const { order, portfolio } = this.fill(current, this.portfolio, this.now());
    await this.store.commit([{ key: orderKey(clientOrderId), value: order }, { key: PORTFOLIO, value: portfolio }]);
    this.portfolio = portfolio;
    return this.report(order);
  }

  cancel(clientOrderId: string): Promise<OrderReport | undefined> {
    return this.serial(async () => {
      const current = this.order(clientOrderId);
      if (!current) return undefined;
      if (current.status !== 'open') return this.report(current);
      const order: PaperOrder = { ...current, status: 'cancelled', fillAt: null, updatedAt: new Date(this.now()).toISOString() };
      await this.store.commit([{ key: orderKey(clientOrderId), value: order }]);
      this.clearTimer(clientOrderId);
      return this.report(order);
    });
  }

  async balances(): Promise<Balances> {
    return {
      quoteCurrency: this.options.quoteCurrency,
      cash: this.portfolio.cash,
      positions: Object.entries(this.portfolio.positions).map(([symbol, p]) => ({ symbol, quantity: p.quantity })),
    };
  }

  snapshot(now: number): PortfolioView {
    return viewPortfolio(this.portfolio, now, this.options.timeZone, { minOrderNotional: this.minOrderNotional, sellSlippagePct: this.options.slippagePct });
  }

  /**
   * Records prices (and the trading-day rollover they may bring) durably: one appended record,
   * so a restart finds the same marks and the same day-start equity, and no risk decision changes.
   */
  mark(prices: Record<string, number | string>, takenAt: Record<string, number> = {}): Promise<void> {
    return this.markBatch.add(prices, takenAt, (work) => this.serial(work), async (marks, times) => {
      const at = this.now();
      const next = markPrices(rollOver(this.portfolio, at, this.options.timeZone), marks, at, times);
      await this.store.commit([{ key: PORTFOLIO, value: next }]);
      this.portfolio = next;
    });
  }

  async close(): Promise<void> {
    for (const id of [...this.timers.keys()]) this.clearTimer(id);
    await this.queue;
    await this.store.close();
  }

  /** The order and portfolio after filling `order` now (nothing is changed in place). */
  private fill(order: PaperOrder, portfolio: PaperPortfolioState, now: number): { order: PaperOrder; portfolio: PaperPortfolioState } {
    const planned = { symbol: order.symbol, side: order.side, quantity: order.plannedQuantity, price: order.plannedPrice, fee: order.plannedFee };
    const updatedAt = new Date(now).toISOString();
    // A delayed order may no longer be payable (cash or position used by another fill meanwhile):
    // the venue rejects it, as a real one would; that is a business "no", not corrupt data.
    const refusal = checkFill(portfolio, planned);
    if (refusal) {
      return { order: { ...order, status: 'rejected', rejectReason: `${refusal.code}: ${refusal.message}`, fillAt: null, updatedAt }, portfolio };
    }
    const result = applyFill(portfolio, planned, now, this.options.timeZone);
    return {
      order: {
        ...order, status: 'filled', filledQuantity: order.plannedQuantity, avgPrice: order.plannedPrice,
        fee: order.plannedFee, fillAt: null, updatedAt,
        ...(result.state.fills !== undefined ? { fillSequence: result.state.fills } : {}),
      },
      portfolio: result.state,
    };
  }

  private armFill(order: PaperOrder): void {
    if (order.fillAt === null || this.timers.has(order.clientOrderId)) return;
    const timer = setTimeout(() => {
      this.timers.delete(order.clientOrderId);
      // A fill that could not be recorded is tried again at the next look-up.
      void this.findByClientId(order.clientOrderId).catch(() => undefined);
    }, Math.max(0, order.fillAt - this.now()));
    timer.unref();
    this.timers.set(order.clientOrderId, timer);
  }

  private clearTimer(clientOrderId: string): void {
    const t = this.timers.get(clientOrderId);
    if (t) clearTimeout(t);
    this.timers.delete(clientOrderId);
  }

  /**
   * The oldest finished orders beyond `retainOrders` (the store stays bounded by what is live):
   * a look at the oldest few, not at every order.
   */
  private prunable(): string[] {
    const excess = this.placed.length + 1 - (this.options.retainOrders ?? 5000);
    const out: string[] = [];
    for (let i = 0; i < this.placed.length && out.length < excess && i < excess + PRUNE_SCAN; i++) {
      const id = this.placed[i]!;
      if (this.order(id)?.status !== 'open') out.push(id);
    }
    return out;
  }

  private report(order: PaperOrder): OrderReport {
    const { plannedQuantity: _q, plannedPrice: _p, plannedFee: _f, fillAt: _a, ...report } = order;
    return { ...report };
  }
}

function validateRequest(request: OrderRequest): void {
  const check = (field: string, value: unknown, ok: (d: D) => boolean) => {
    let valid: boolean;
    try {
      valid = ok(toDec(field, value));
    } catch {
      valid = false;
    }
    if (!valid) throw new InvariantError('invalid_order', `invalid order ${field}: ${String(value)}`, { field });
  };
  check('price', request.price, (d) => d.gt(0));
  if (request.side === 'buy') check('notional', request.notional, (d) => d.gt(0));
  // Zero is a size the account cannot trade (refused as such); unreadable or negative is corrupt.
  if (request.side === 'sell') check('quantity', request.quantity, (d) => d.gte(0));
}
