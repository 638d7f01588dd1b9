import { expect } from 'chai';
import { ExecutionRouter } from '../../src/execution/router';
import type { Balances, ExecutionVenue } from '../../src/execution/base';
import { TransientError, VenueRejectedError } from '../../src/errors';
import type { OrderReport, OrderRequest } from '../../src/proposal/types';

/** A hand-written venue whose failures a test scripts. */
class ScriptedVenue implements ExecutionVenue {
  readonly minOrderNotional = 0;
  readonly capabilities = { orderTypes: ['market'] as const, dryRun: false, clientOrderIds: true };
  /** Symbols it trades: every one when not given. */
  constructor(readonly name = 'scripted', private readonly symbols?: RegExp) {}
  orders = new Map<string, OrderReport>();
  submits = 0;
  finds = 0;
  failSubmitAfterPlacing = false;
  rejectSubmit = false;
  transientFinds = 0;
  fillAfterFinds = 0;

  trades(symbol: string): boolean {
    return this.symbols ? this.symbols.test(symbol) : true;
  }

  async submit(req: OrderRequest): Promise<OrderReport> {
    this.submits += 1;
    if (this.rejectSubmit) throw new VenueRejectedError('insufficient_funds', 'not enough cash');
    const report: OrderReport = {
      clientOrderId: req.clientOrderId, venueOrderId: `v${this.submits}`, venue: this.name, symbol: req.symbol, side: req.side,
      status: this.fillAfterFinds > 0 ? 'open' : 'filled', filledQuantity: this.fillAfterFinds > 0 ? '0' : '1', avgPrice: this.fillAfterFinds > 0 ? '0' : req.price,
      fee: '0', submittedAt: 'now', updatedAt: 'now',
    };
    this.orders.set(req.clientOrderId, report);
    if (this.failSubmitAfterPlacing) throw new TransientError('network', 'connection reset after sending');
    return report;
  }

  async findByClientId(id: string): Promise<OrderReport | undefined> {
    this.finds += 1;
    if (this.transientFinds > 0) {
      this.transientFinds -= 1;
      throw new TransientError('network', 'lookup failed');
    }
    const o = this.orders.get(id);
    if (o && o.status === 'open' && this.fillAfterFinds > 0 && --this.fillAfterFinds === 0) Object.assign(o, { status: 'filled', filledQuantity: '1', avgPrice: '100' });
    return o ? { ...o } : undefined;
  }

  async cancel(id: string): Promise<OrderReport | undefined> {
    const o = this.orders.get(id);
    if (o && o.status === 'open') o.status = 'cancelled';
    return o ? { ...o } : undefined;
  }

  async balances(): Promise<Balances> {
    return { quoteCurrency: 'KRW', cash: '0', positions: [] };
  }
}

const request: OrderRequest = { clientOrderId: 'ct-1', symbol: 'BTC/KRW', side: 'buy', intent: 'buy', notional: '100', price: '100' };
const opts = { pollIntervalMs: 1, fillTimeoutMs: 1000, fetchAttempts: 3, sleep: async () => undefined };

describe('ExecutionRouter', () => {
  it('finds the order instead of resending when the submit failed after reaching the venue', async () => {
    const venue = new ScriptedVenue();
    venue.failSubmitAfterPlacing = true;
    const r = await new ExecutionRouter(venue, opts).execute(request);
    expect(venue.submits).to.equal(1);
    expect(r.order.venueOrderId).to.equal('v1');
    expect(r.fill?.quantity).to.equal('1');
  });

  it('does not look for or resend an order the venue refused', async () => {
    const venue = new ScriptedVenue();
    venue.rejectSubmit = true;
    let error: unknown;
    try {
      await new ExecutionRouter(venue, opts).execute(request);
    } catch (err) {
      error = err;
    }
    expect(error).to.be.instanceOf(VenueRejectedError);
    expect(venue.submits).to.equal(1);
  });

  it('retries lookups that fail transiently, then places the order once', async () => {
    const venue = new ScriptedVenue();
    venue.transientFinds = 2;
    const r = await new ExecutionRouter(venue, opts).execute(request);
    expect(venue.submits).to.equal(1);
    expect(r.placed).to.equal(true);
  });

  it('gives up on a lookup after fetchAttempts without submitting', async () => {
    const venue = new ScriptedVenue();
    venue.transientFinds = 5;
    let error: unknown;
    try {
      await new ExecutionRouter(venue, opts).execute(request);
    } catch (err) {
      error = err;
    }
    expect(error).to.be.instanceOf(TransientError);
    expect(venue.submits).to.equal(0);
  });

  it('reports each failed venue call with its venue, operation and error category (metrics)', async () => {
    const failures: unknown[] = [];
    const venue = new ScriptedVenue('upbit');
    venue.transientFinds = 2;
    venue.rejectSubmit = true;
    const error = await new ExecutionRouter(venue, { ...opts, onVenueError: (f) => failures.push(f) }).execute(request).catch((err: unknown) => err);
    expect(error).to.be.instanceOf(VenueRejectedError);
    expect(failures).to.deep.equal([
      { venue: 'upbit', operation: 'find', category: 'transient' },
      { venue: 'upbit', operation: 'find', category: 'transient' },
      { venue: 'upbit', operation: 'submit', category: 'venue_rejected' },
    ]);
  });

  it('follows an open order until it fills', async () => {
    const venue = new ScriptedVenue();
    venue.fillAfterFinds = 3;
    const r = await new ExecutionRouter(venue, opts).execute(request);
    expect(r.order.status).to.equal('filled');
    expect(r.fill?.price).to.equal('100');
  });

  it('waits at least the venue\'s own poll interval between look-ups of an open order (a venue with a small request budget)', async () => {
    const venue = Object.assign(new ScriptedVenue(), { pollIntervalMs: 1000 });
    venue.fillAfterFinds = 3;
    const slept: number[] = [];
    await new ExecutionRouter(venue, { ...opts, sleep: async (ms: number) => { slept.push(ms); } }).execute(request);
    expect(slept).to.deep.equal([1000, 1000, 1000]);
  });

  it('says why the venue of a symbol takes no orders now, and nothing for a venue open around the clock', () => {
    const krx = Object.assign(new ScriptedVenue('kis', /^\d{6}\/KRW$/), { closedNow: (now: number) => (now > 10 ? 'KRX is closed' : undefined) });
    const router = new ExecutionRouter([new ScriptedVenue('upbit', /^[A-Z]+\/KRW$/), krx], opts);
    expect([router.closedNow('005930/KRW', 20), router.closedNow('005930/KRW', 5), router.closedNow('BTC/KRW', 20)]).to.deep.equal(['KRX is closed', undefined, undefined]);
  });

  it('cancels an order still open after fillTimeoutMs and reports no fill', async () => {
    const venue = new ScriptedVenue();
    venue.fillAfterFinds = 1_000_000;
    let t = 0;
    const r = await new ExecutionRouter(venue, { ...opts, fillTimeoutMs: 50, now: () => (t += 10) }).execute(request);
    expect(r.order.status).to.equal('cancelled');
    expect(r.fill).to.equal(null);
  });

  it('sends each symbol to the venue that trades it, and looks orders up there', async () => {
    const crypto = new ScriptedVenue('crypto', /\/KRW$/);
    const stocks = new ScriptedVenue('stocks', /^\d{6}\/KRW$/);
    const router = new ExecutionRouter([stocks, crypto], opts);
    const share = await router.execute({ ...request, clientOrderId: 'ct-2', symbol: '005930/KRW' });
    const coin = await router.execute({ ...request, clientOrderId: 'ct-3', symbol: 'BTC/KRW' });
    expect([share.order.venue, coin.order.venue]).to.deep.equal(['stocks', 'crypto']);
    expect([stocks.submits, crypto.submits]).to.deep.equal([1, 1]);
    expect((await router.find('BTC/KRW', 'ct-3'))?.venue).to.equal('crypto');
    expect(router.profiles().map((p) => [p.venue, p.dryRun, p.clientOrderIds])).to.deep.equal([['stocks', false, true], ['crypto', false, true]]);
  });

  it('refuses a symbol that no configured venue trades, naming the venues, before any call', async () => {
    const stocks = new ScriptedVenue('kis', /^\d{6}\/KRW$/);
    let error: unknown;
    try {
      await new ExecutionRouter(stocks, opts).execute(request);
    } catch (err) {
      error = err;
    }
    expect(error).to.be.instanceOf(VenueRejectedError);
    expect((error as VenueRejectedError).code).to.equal('no_venue');
    expect((error as Error).message).to.include('no configured venue trades BTC/KRW (EXECUTION_VENUE: kis)');
    expect([stocks.submits, stocks.finds]).to.deep.equal([0, 0]);
  });

  it('refuses a dry run at a venue that has none, as disarmed, sending nothing', async () => {
    const venue = new ScriptedVenue();
    let error: unknown;
    try {
      await new ExecutionRouter(venue, opts).execute(request, { dryRun: true });
    } catch (err) {
      error = err;
    }
    expect((error as VenueRejectedError).code).to.equal('disarmed');
    expect(venue.submits).to.equal(0);
  });

  it('follows an order whose cancel the venue has not finished until it is final, keeping what filled', async () => {
    const venue = new ScriptedVenue();
    venue.fillAfterFinds = 1_000_000;
    // The venue acknowledges the cancel but the order is still open; it ends cancelled with a part filled.
    venue.cancel = async (id: string) => {
      const o = venue.orders.get(id)!;
      setTimeout(() => Object.assign(o, { status: 'cancelled', filledQuantity: '0.4', avgPrice: '100' }), 0);
      return { ...o };
    };
    let t = 0;
    const r = await new ExecutionRouter(venue, { ...opts, sleep: (ms) => new Promise((res) => setTimeout(res, ms)), fillTimeoutMs: 50, now: () => (t += 10) }).execute(request);
    expect(r.order.status).to.equal('cancelled');
    expect(r.fill?.quantity).to.equal('0.4');
  });

  it('calls onProgress with each report whose filled quantity grew before the order is final, and returns the final one', async () => {
    const venue = new ScriptedVenue();
    venue.fillAfterFinds = 1_000_000;
    // Lookups show 0, 0.2, 0.2 (no growth), 0.5, then the order fills at 1.
    const script = [['open', '0'], ['partially_filled', '0.2'], ['partially_filled', '0.2'], ['partially_filled', '0.5'], ['filled', '1']] as const;
    let lookups = 0;
    venue.findByClientId = async (id: string) => {
      const o = venue.orders.get(id);
      if (!o) return undefined;
      const [status, filledQuantity] = script[Math.min(lookups++, script.length - 1)]!;
      Object.assign(o, { status, filledQuantity, avgPrice: filledQuantity === '0' ? '0' : '100' });
      return { ...o };
    };
    const seen: Array<[string, string]> = [];
    const r = await new ExecutionRouter(venue, opts).execute(request, { onProgress: (o) => void seen.push([o.status, o.filledQuantity]) });
    expect(seen).to.deep.equal([['partially_filled', '0.2'], ['partially_filled', '0.5']]);
    expect(r.order.status).to.equal('filled');
    expect(r.fill?.quantity).to.equal('1');
  });

  it('ends the following with the error onProgress throws (the caller decides what an unknown outcome means)', async () => {
    const venue = new ScriptedVenue();
    venue.fillAfterFinds = 1_000_000;
    venue.findByClientId = async (id: string) => {
      const o = venue.orders.get(id);
      if (o) Object.assign(o, { status: 'partially_filled', filledQuantity: '0.3', avgPrice: '100' });
      return o ? { ...o } : undefined;
    };
    const err = await new ExecutionRouter(venue, opts).execute(request, { onProgress: () => Promise.reject(new TransientError('storage', 'disk full')) }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(TransientError);
  });
});
