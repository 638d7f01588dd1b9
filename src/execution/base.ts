/**
 * The one interface every venue adapter fills in (paper, Upbit, Freqtrade, KIS). Statuses,
 * sides and errors are mapped inside each adapter, both ways; nothing above this interface
 * speaks a venue's wire format.
 */
import type { Amount, OrderReport, OrderRequest } from '../proposal/types';

/**
 * What a limit order adds to an `OrderRequest`, read by the venues that take limit orders:
 * `orderType: 'limit'` with `limitPrice` (default: the reference `price`). Without them an order
 * is a market order. (Proposals send market orders; the shared request type does not carry these yet.)
 */
export interface LimitOrderFields {
  orderType?: 'market' | 'limit';
  limitPrice?: Amount;
}

/** Cash and every holding at a venue (dust included), exact, in the quote currency and base units. */
export interface Balances {
  quoteCurrency: string;
  cash: Amount;
  positions: Array<{ symbol: string; quantity: Amount }>;
}

/** What a venue can do, as the router and the live rules need to know it. */
export interface VenueCapabilities {
  /** Order types it takes (every venue takes market orders). */
  orderTypes: ReadonlyArray<'market' | 'limit'>;
  /** Whether it validates an order without placing it (used while live trading is disarmed). */
  dryRun: boolean;
  /** Whether our client order id travels with the order, so an order is found by it. */
  clientOrderIds: boolean;
}

/** A venue adapter. */
export interface ExecutionVenue {
  /** Short name recorded on orders and outcomes (`paper`, `upbit`, …). */
  readonly name: string;
  /** The smallest order the venue takes, in the quote currency: a holding worth less is dust. */
  readonly minOrderNotional: number;
  readonly capabilities: VenueCapabilities;
  /**
   * The least time between two look-ups of an open order, ms, for a venue with a small request
   * budget (KIS paper accounts take 2 requests a second); default: the router's interval.
   */
  readonly pollIntervalMs?: number;
  /**
   * Why the venue takes no orders at `now` (epoch ms), e.g. outside its trading session, or
   * undefined when it does. A venue open around the clock leaves it out.
   */
  closedNow?(now: number): string | undefined;
  /** Whether the venue trades this symbol (canonical `BASE/QUOTE`). */
  trades(symbol: string): boolean;
  /**
   * Places an order. Idempotent on `clientOrderId`: a second call with the same id returns the
   * existing order instead of placing another. Never retried blindly by callers. With `dryRun`
   * (only where `capabilities.dryRun`), the venue validates the order and places nothing; the
   * report is final and marked `dryRun`.
   */
  submit(order: OrderRequest, options?: { dryRun?: boolean }): Promise<OrderReport>;
  /** The order with this client id, or undefined if the venue never saw it. Safe to retry. */
  findByClientId(clientOrderId: string): Promise<OrderReport | undefined>;
  /** Cancels an open order; returns its final report (undefined if unknown). */
  cancel(clientOrderId: string): Promise<OrderReport | undefined>;
  /** Cash and holdings. */
  balances(): Promise<Balances>;
  /** Releases timers and connections. */
  close?(): Promise<void>;
}

/** Whether an order will not change any more. */
export function isTerminal(report: OrderReport): boolean {
  return report.status === 'filled' || report.status === 'cancelled' || report.status === 'rejected';
}
