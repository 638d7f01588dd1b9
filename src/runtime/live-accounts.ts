/**
 * Several live accounts behind the one set of hooks the proposal services call: an order goes
 * to the account of the venue that trades its symbol (and reports come back by venue name);
 * reconciles run on every account, each on its own.
 */
import type { OrderReport } from '../proposal/types';
import { InvariantError } from '../errors';
import type { LiveAccount } from './live-account';
import type { LiveAccountHooks } from './proposal-services';

export interface VenueAccount {
  venue: string;
  account: LiveAccount;
  trades: (symbol: string) => boolean;
}

export class LiveAccounts implements LiveAccountHooks {
  constructor(private readonly accounts: readonly VenueAccount[]) {}

  async start(): Promise<void> {
    for (const a of this.accounts) await a.account.start();
  }

  async orderStarted(clientOrderId: string, symbol: string): Promise<void> {
    const a = this.accounts.find((x) => x.trades(symbol));
    if (!a) throw new InvariantError('no_venue', `no live venue trades ${symbol}`, { symbol });
    return a.account.orderStarted(clientOrderId, symbol);
  }

  async orderAbandoned(clientOrderId: string): Promise<void> {
    // Only the book that expected the order holds it; forgetting is a no-op on the others.
    for (const a of this.accounts) await a.account.orderAbandoned(clientOrderId);
  }

  async bookPart(order: OrderReport): ReturnType<LiveAccount['bookPart']> {
    return this.of(order).bookPart(order);
  }

  partsBooked(clientOrderId: string): ReturnType<LiveAccount['partsBooked']> {
    return this.accounts.flatMap((a) => a.account.partsBooked(clientOrderId));
  }

  async bookFill(order: OrderReport): Promise<number | null> {
    return this.of(order).bookFill(order);
  }

  /** Reconciles every account, even when one fails; then throws the first failure. */
  async reconcile(cause: 'start' | 'fill' | 'risk-clock'): Promise<void> {
    const results = await Promise.allSettled(this.accounts.map((a) => a.account.reconcile(cause)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  private of(order: OrderReport): LiveAccount {
    const a = this.accounts.find((x) => x.venue === order.venue);
    if (!a) throw new InvariantError('no_venue', `a report of ${order.venue}, which is not a live venue of this service`, { venue: order.venue });
    return a.account;
  }
}
