/**
 * The execution router: each symbol goes to the configured venue that trades it (one venue, or
 * several in live mode); reconcile by client order id first, place the order only if the venue
 * has never seen it, then follow it to a final status. Lookups are retried with backoff;
 * submissions never are (a failed submit is reconciled by looking the client id up).
 */
import type { Fill, OrderReport, OrderRequest } from '../proposal/types';
import { AppError, InvariantError, TransientError, VenueRejectedError } from '../errors';
import { amount, toDec } from '../amounts';
import { isTerminal, type ExecutionVenue, type VenueCapabilities } from './base';

export interface RouterOptions {
  /** How often an open order is looked up. */
  pollIntervalMs: number;
  /** How long an open order is followed before it is cancelled. */
  fillTimeoutMs: number;
  /** Attempts for one lookup before giving up. */
  fetchAttempts: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  /** Each failed venue call (every attempt), with the error's category: for metrics. */
  onVenueError?: (failure: VenueCallFailure) => void;
}

/** A venue call that failed: which venue, which call, and the error's category (`unknown` for an untyped error). */
export interface VenueCallFailure {
  venue: string;
  operation: 'find' | 'submit' | 'cancel';
  category: string;
}

/** What `execute` tells its caller along the way. */
export interface ExecuteHooks {
  /** Just before a new order is placed. */
  beforeSubmit?: () => void | Promise<void>;
  /** The venue's first answer to a new order. */
  onPlaced?: (order: OrderReport) => void;
  /** The order filled more and is not final yet (awaited; a throw ends the following, as a lookup's would). */
  onProgress?: (order: OrderReport) => void | Promise<void>;
  dryRun?: boolean;
}

export interface RoutedOrder {
  order: OrderReport;
  fill: Fill | null;
  /** Whether this call placed the order (false: it was found at the venue). */
  placed: boolean;
  /** Whether the order was already final when it was found (a previous run may have recorded its fill). */
  foundFinal: boolean;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A venue as the operator sees it: its name, its smallest order, and what it can do. */
export interface VenueProfile extends VenueCapabilities {
  venue: string;
  minOrderNotional: number;
}

export class ExecutionRouter {
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;
  private readonly venues: readonly ExecutionVenue[];

  constructor(venues: ExecutionVenue | readonly ExecutionVenue[], private readonly options: RouterOptions) {
    this.venues = Array.isArray(venues) ? venues : [venues as ExecutionVenue];
    if (this.venues.length === 0) throw new InvariantError('no_venue', 'the execution router needs at least one venue');
    this.sleep = options.sleep ?? defaultSleep;
    this.now = options.now ?? Date.now;
  }

  /** The venue that trades `symbol`; a symbol no configured venue trades is refused, naming them. */
  venueFor(symbol: string): ExecutionVenue {
    const venue = this.venues.find((v) => v.trades(symbol));
    if (!venue) {
      const names = this.venues.map((v) => v.name).join(', ');
      throw new VenueRejectedError('no_venue', `no configured venue trades ${symbol} (EXECUTION_VENUE: ${names}); nothing was sent`, { symbol, venues: names });
    }
    return venue;
  }

  /** The name of the venue that trades `symbol`, or undefined when none does. */
  venueNameFor(symbol: string): string | undefined {
    return this.venues.find((v) => v.trades(symbol))?.name;
  }

  /** Every configured venue with its capabilities. */
  profiles(): VenueProfile[] {
    return this.venues.map((v) => ({ venue: v.name, minOrderNotional: v.minOrderNotional, ...v.capabilities }));
  }

  /** Why the venue of `symbol` takes no orders at `now` (its session is closed), or undefined. */
  closedNow(symbol: string, now: number): string | undefined {
    const venue = this.venues.find((v) => v.trades(symbol));
    return venue?.closedNow?.(now);
  }

  /** Looks an order of `symbol` up at its venue, retrying transient failures with backoff. */
  async find(symbol: string, clientOrderId: string): Promise<OrderReport | undefined> {
    const venue = this.venueFor(symbol);
    let delay = 100;
    for (let attempt = 1; ; attempt++) {
      try {
        return await venue.findByClientId(clientOrderId);
      } catch (err) {
        this.failed(venue, 'find', err);
        if (!(err instanceof TransientError) || attempt >= this.options.fetchAttempts) throw err;
        await this.sleep(delay);
        delay = Math.min(delay * 2, 2000);
      }
    }
  }

  /**
   * Executes `request` exactly once: finds an existing order first, places one only if there is
   * none, and follows it until it is final (cancelling it after `fillTimeoutMs`).
   * `beforeSubmit` runs just before a new order is placed (the journal's order intent).
   * `onProgress` is awaited whenever the followed order's filled quantity grew and it is not
   * final yet (a partial fill; the first report counts as growth from nothing), so partial fills
   * can be booked as they come; the final report is the result. With `dryRun` the venue only
   * validates the order (where it can: otherwise it is refused).
   */
  async execute(request: OrderRequest, hooks: ExecuteHooks = {}): Promise<RoutedOrder> {
    const venue = this.venueFor(request.symbol);
    if (hooks.dryRun && !venue.capabilities.dryRun) throw new VenueRejectedError('disarmed', `live trading is disarmed and ${venue.name} has no dry run; nothing was sent`);
    let order = await this.find(request.symbol, request.clientOrderId);
    const foundFinal = order !== undefined && isTerminal(order);
    let placed = false;
    if (!order) {
      await hooks.beforeSubmit?.();
      try {
        order = await venue.submit(request, hooks.dryRun ? { dryRun: true } : {});
        placed = true;
      } catch (err) {
        this.failed(venue, 'submit', err);
        // A refusal or a broken invariant means nothing was placed.
        if (err instanceof VenueRejectedError || err instanceof InvariantError) throw err;
        // The request may or may not have reached the venue: look, never resend.
        const found = await this.find(request.symbol, request.clientOrderId).catch(() => undefined);
        if (!found) throw err;
        order = found;
      }
      hooks.onPlaced?.(order);
    }
    const started = this.now();
    let cancelAsked = false;
    let filled = toDec('filledQuantity', '0');
    const progress = async (report: OrderReport) => {
      if (isTerminal(report) || report.dryRun) return;
      const now = toDec('filledQuantity', report.filledQuantity);
      if (!now.gt(filled)) return;
      filled = now;
      await hooks.onProgress?.(report);
    };
    await progress(order);
    while (!isTerminal(order)) {
      if (!cancelAsked && this.now() - started >= this.options.fillTimeoutMs) {
        // A venue may cancel asynchronously (and fill some before it does): follow the order
        // until it is final, never declaring an outcome the venue has not given.
        cancelAsked = true;
        order = (await venue.cancel(request.clientOrderId).catch((err: unknown) => {
          this.failed(venue, 'cancel', err);
          throw err;
        })) ?? order;
        await progress(order);
        continue;
      }
      await this.sleep(Math.max(this.options.pollIntervalMs, venue.pollIntervalMs ?? 0));
      order = (await this.find(request.symbol, request.clientOrderId)) ?? order;
      await progress(order);
    }
    return { order, fill: fillOf(order), placed, foundFinal };
  }

  private failed(venue: ExecutionVenue, operation: VenueCallFailure['operation'], err: unknown): void {
    try {
      this.options.onVenueError?.({ venue: venue.name, operation, category: err instanceof AppError ? err.category : 'unknown' });
    } catch {
      // an observer's fault never changes what the venue call did
    }
  }
}

/** The fill an order report describes, or null when nothing filled. */
export function fillOf(order: OrderReport): Fill | null {
  const quantity = toDec('filledQuantity', order.filledQuantity);
  if (!quantity.gt(0)) return null;
  const price = toDec('avgPrice', order.avgPrice);
  return {
    quantity: amount(quantity),
    price: amount(price),
    fee: amount(toDec('fee', order.fee)),
    notional: amount(quantity.times(price)),
    at: order.updatedAt,
  };
}
