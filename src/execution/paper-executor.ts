/**
 * The paper venue: a full adapter behind the same interface as every real venue. Orders fill
 * at the request's reference price moved by slippage against the trader, pay FEE_RATE, and
 * change a paper portfolio. Orders and the portfolio live in one lowdb document, written before
 * `submit` answers, so an order that "reached the venue" survives a crash.
 */
import Decimal from 'decimal.js';
import type { OrderReport, OrderRequest, PortfolioView } from '../proposal/types';
import { InvariantError } from '../errors';
import {
  applyFill, checkFill, createPaperPortfolio, markPrices, rollOver, viewPortfolio, type PaperPortfolioState,
} from '../portfolio/paper-portfolio';
import type { JsonDocument } from '../persistence/json-document';
import type { PortfolioSource } from '../context/portfolio-snapshot';
import type { Balances, ExecutionVenue } from './base';

const D = Decimal.clone({ precision: 40 });

/** A paper order: the report plus what will be filled when it comes due. */
interface PaperOrder extends OrderReport {
  plannedQuantity: string;
  plannedPrice: string;
  plannedFee: string;
  /** Epoch ms at which an open order fills. */
  fillAt: number | null;
}

export interface PaperVenueState {
  version: 1;
  portfolio: PaperPortfolioState | null;
  orders: Record<string, PaperOrder>;
  sequence: number;
}

export interface PaperExecutorOptions {
  initialCash: number;
  feeRate: number;
  slippagePct: number;
  /** Delay before an accepted order fills (0: at once). */
  fillDelayMs: number;
  quoteCurrency: string;
  timeZone: string;
  /** Finished orders kept for client-id lookups (the store stays bounded). */
  retainOrders?: number;
  now?: () => number;
}

export const EMPTY_PAPER_VENUE: PaperVenueState = { version: 1, portfolio: null, orders: {}, sequence: 0 };

export class PaperExecutor implements ExecutionVenue, PortfolioSource {
  readonly name = 'paper';
  private readonly now: () => number;
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly doc: JsonDocument<PaperVenueState>, private readonly options: PaperExecutorOptions) {
    this.now = options.now ?? Date.now;
    if (!doc.data.portfolio) {
      doc.data.portfolio = createPaperPortfolio(options.initialCash, this.now(), options.timeZone);
      // Written with the first order at the latest; a failure here shows up there.
      doc.update(() => undefined).catch(() => undefined);
    }
    for (const order of Object.values(doc.data.orders)) {
      if (order.status === 'open') this.armFill(order);
    }
  }

  private get portfolio(): PaperPortfolioState {
    const p = this.doc.data.portfolio;
    if (!p) throw new InvariantError('paper_portfolio_missing', 'the paper portfolio was not initialised');
    return p;
  }

  async submit(request: OrderRequest): Promise<OrderReport> {
    const existing = this.doc.data.orders[request.clientOrderId];
    if (existing) return this.report(existing);
    validateRequest(request);
    const now = this.now();
    const at = new Date(now).toISOString();
    const slip = new D(this.options.slippagePct).div(100);
    const price = new D(request.price).mul(request.side === 'buy' ? slip.plus(1) : new D(1).minus(slip));
    const quantity = request.side === 'buy'
      ? new D(request.notional).div(price).toDecimalPlaces(8, Decimal.ROUND_DOWN)
      : new D(request.quantity ?? 0).toDecimalPlaces(8, Decimal.ROUND_DOWN);
    const fee = quantity.mul(price).mul(this.options.feeRate);
    this.doc.data.sequence += 1;
    const order: PaperOrder = {
      clientOrderId: request.clientOrderId,
      venueOrderId: `paper-${this.doc.data.sequence}`,
      venue: this.name,
      symbol: request.symbol,
      side: request.side,
      status: 'open',
      filledQuantity: 0,
      avgPrice: 0,
      fee: 0,
      submittedAt: at,
      updatedAt: at,
      plannedQuantity: quantity.toString(),
      plannedPrice: price.toString(),
      plannedFee: fee.toString(),
      fillAt: now + this.options.fillDelayMs,
    };
    const refusal = quantity.lte(0)
      ? { code: request.side === 'sell' ? 'no_position' : 'size_too_small', message: request.side === 'sell' ? `nothing of ${request.symbol} to sell` : `order size rounds to zero at price ${price.toString()}` }
      : checkFill(this.portfolio, { symbol: request.symbol, side: request.side, quantity: quantity.toString(), price: price.toString(), fee: fee.toString() });
    if (refusal) {
      order.status = 'rejected';
      order.rejectReason = `${refusal.code}: ${refusal.message}`;
      order.fillAt = null;
    } else if (this.options.fillDelayMs === 0) {
      this.fill(order, now);
    }
    this.doc.data.orders[order.clientOrderId] = order;
    this.prune();
    await this.doc.update(() => undefined);
    if (order.status === 'open') this.armFill(order);
    return this.report(order);
  }

  async findByClientId(clientOrderId: string): Promise<OrderReport | undefined> {
    const order = this.doc.data.orders[clientOrderId];
    if (!order) return undefined;
    if (order.status === 'open' && order.fillAt !== null && order.fillAt <= this.now()) {
      this.fill(order, this.now());
      await this.doc.update(() => undefined);
    }
    return this.report(order);
  }

  async cancel(clientOrderId: string): Promise<OrderReport | undefined> {
    const order = this.doc.data.orders[clientOrderId];
    if (!order) return undefined;
    if (order.status === 'open') {
      order.status = 'cancelled';
      order.fillAt = null;
      order.updatedAt = new Date(this.now()).toISOString();
      this.clearTimer(clientOrderId);
      await this.doc.update(() => undefined);
    }
    return this.report(order);
  }

  async balances(): Promise<Balances> {
    const view = viewPortfolio(this.portfolio, this.now(), this.options.timeZone);
    return {
      quoteCurrency: this.options.quoteCurrency,
      cash: view.cash,
      positions: view.positions.map((p) => ({ symbol: p.symbol, quantity: p.quantity })),
    };
  }

  snapshot(now: number): PortfolioView {
    return viewPortfolio(this.portfolio, now, this.options.timeZone);
  }

  /**
   * Records prices in memory only: they reach the file with the next order or fill. A mark can
   * be taken again, so it is not worth rewriting every order on each assessment.
   */
  async mark(prices: Record<string, number>): Promise<void> {
    const rolled = rollOver(this.portfolio, this.now(), this.options.timeZone);
    this.doc.data.portfolio = markPrices(rolled, prices);
  }

  async close(): Promise<void> {
    for (const id of [...this.timers.keys()]) this.clearTimer(id);
    await this.doc.flush();
  }

  private fill(order: PaperOrder, now: number): void {
    const planned = { symbol: order.symbol, side: order.side, quantity: order.plannedQuantity, price: order.plannedPrice, fee: order.plannedFee };
    // A delayed order may no longer be payable (cash or position used by another fill meanwhile):
    // the venue rejects it, as a real one would; that is a business "no", not corrupt data.
    const refusal = checkFill(this.portfolio, planned);
    if (refusal) {
      order.status = 'rejected';
      order.rejectReason = `${refusal.code}: ${refusal.message}`;
      order.fillAt = null;
      order.updatedAt = new Date(now).toISOString();
      this.clearTimer(order.clientOrderId);
      return;
    }
    const result = applyFill(this.portfolio, planned, now, this.options.timeZone);
    this.doc.data.portfolio = result.state;
    order.status = 'filled';
    order.filledQuantity = Number(order.plannedQuantity);
    order.avgPrice = Number(order.plannedPrice);
    order.fee = Number(order.plannedFee);
    order.fillAt = null;
    order.updatedAt = new Date(now).toISOString();
    this.clearTimer(order.clientOrderId);
  }

  private armFill(order: PaperOrder): void {
    if (order.fillAt === null || this.timers.has(order.clientOrderId)) return;
    const timer = setTimeout(() => {
      this.timers.delete(order.clientOrderId);
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

  /** Keeps the newest finished orders only: the store is bounded by what is live. */
  private prune(): void {
    const limit = this.options.retainOrders ?? 5000;
    const ids = Object.keys(this.doc.data.orders);
    if (ids.length <= limit) return;
    const finished = ids
      .map((id) => this.doc.data.orders[id]!)
      .filter((o) => o.status !== 'open')
      .sort((a, b) => a.updatedAt.localeCompare(b.updatedAt));
    for (const o of finished.slice(0, ids.length - limit)) delete this.doc.data.orders[o.clientOrderId];
  }

  private report(order: PaperOrder): OrderReport {
    const { plannedQuantity: _q, plannedPrice: _p, plannedFee: _f, fillAt: _a, ...report } = order;
    return { ...report };
  }
}

function validateRequest(request: OrderRequest): void {
  const bad = (field: string, value: unknown) => {
    throw new InvariantError('invalid_order', `invalid order ${field}: ${String(value)}`, { field });
  };
  if (!(Number.isFinite(request.price) && request.price > 0)) bad('price', request.price);
  if (request.side === 'buy' && !(Number.isFinite(request.notional) && request.notional > 0)) bad('notional', request.notional);
  // Zero is a size the account cannot trade (checked as a refusal by the caller); NaN or negative is corrupt.
  if (request.side === 'sell' && !(typeof request.quantity === 'number' && Number.isFinite(request.quantity) && request.quantity >= 0)) bad('quantity', request.quantity);
}
