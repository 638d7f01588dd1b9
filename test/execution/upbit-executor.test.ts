import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { FakeUpbitExchange, isOnKrwTick, krwTickSize as fakeTickSize, type FakeUpbitExchangeOptions } from '../fakes/fake-upbit-exchange';
import { UpbitClient, parseRemainingReq, upbitErrorOf, type UpbitClientOptions } from '../../src/integrations/upbit';
import { UpbitVenue, upbitIdentifier, type LimitOrderFields, type UpbitVenueOptions } from '../../src/execution/upbit-executor';
import { krwTickSize, roundToKrwTick } from '../../src/execution/krw-ticks';
import { NodeStorageIo } from '../../src/persistence/storage-io';
import { LogStore } from '../../src/persistence/log-store';
import { Dec } from '../../src/amounts';
import { NotFoundError, TransientError, VenueAuthError, VenueRejectedError } from '../../src/errors';
import type { OrderReport, OrderRequest } from '../../src/proposal/types';
import { describeVenueContract } from './venue-contract';
import { ExecutionRouter } from '../../src/execution/router';
import { LiveBook, accountOpenedRecord } from '../../src/portfolio/live-book';
import { compareWithBook, recordLines, recountJournal } from '../../src/journal/ledger';
import { rejectionOf } from '../support/rejection';

const BTC_PRICE = 100_000_000;
const GRACE_MS = 5000;

interface Harness {
  fake: FakeUpbitExchange;
  venue: UpbitVenue;
  dir: string;
  /** The venue's clock (frozen unless advanced), epoch ms. */
  clock: { t: number };
  /** Every wait the client or the venue asked for, ms. */
  sleeps: number[];
  /** Opens another venue on the same DATA_DIR (a restart). */
  reopen: (options?: { client?: Partial<UpbitClientOptions>; venue?: UpbitVenueOptions }) => Promise<UpbitVenue>;
  close: () => Promise<void>;
}

async function harness(options: { client?: Partial<UpbitClientOptions>; venue?: UpbitVenueOptions; fake?: FakeUpbitExchangeOptions; realClock?: boolean } = {}): Promise<Harness> {
  const fake = await FakeUpbitExchange.start(options.fake);
  fake.market.setTicker('KRW-BTC', { price: BTC_PRICE, volume24h: 1000 });
  fake.market.setTicker('KRW-ETH', { price: 4_000_000, volume24h: 1000 });
  fake.setBalance('KRW', 10_000_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'upbit-venue-'));
  const clock = { t: Date.now() };
  const now = options.realClock ? Date.now : () => clock.t;
  const sleeps: number[] = [];
  // Waits are recorded and cut short: the tests assert that the venue backed off, not how long.
  const sleep = async (ms: number): Promise<void> => {
    sleeps.push(ms);
    await new Promise((resolve) => setImmediate(resolve));
  };
  const open: Harness['reopen'] = async (extra = {}) => {
    const client = new UpbitClient({ apiUrl: fake.url, accessKey: fake.accessKey, secretKey: fake.secretKey, timeoutMs: 3000, now, sleep, ...options.client, ...extra.client });
    return UpbitVenue.open(new NodeStorageIo(), dir, client, { now, sleep, unknownOutcomeGraceMs: GRACE_MS, ...options.venue, ...extra.venue });
  };
  const opened: UpbitVenue[] = [];
  const reopen: Harness['reopen'] = async (extra) => {
    const venue = await open(extra);
    opened.push(venue);
    return venue;
  };
  const venue = await reopen();
  return {
    fake, venue, dir, clock, sleeps, reopen,
    close: async () => {
      for (const v of opened) await v.close().catch(() => undefined);
      await fake.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

let seq = 0;
const nextId = () => `ct-p-20261126-up${(++seq).toString(16).padStart(10, '0')}`;

function buy(notional: string, extra: Partial<OrderRequest> & LimitOrderFields = {}): OrderRequest & LimitOrderFields {
  return { clientOrderId: nextId(), symbol: 'BTC/KRW', side: 'buy', intent: 'buy', notional, price: String(BTC_PRICE), ...extra };
}

function sell(quantity: string, extra: Partial<OrderRequest> & LimitOrderFields = {}): OrderRequest & LimitOrderFields {
  return { clientOrderId: nextId(), symbol: 'BTC/KRW', side: 'sell', intent: 'sell', notional: '0', quantity, price: String(BTC_PRICE), ...extra };
}


/** Looks the order up until it is final (at most `tries` look-ups). */
async function settle(venue: UpbitVenue, id: string, tries = 20): Promise<OrderReport> {
  for (let i = 0; i < tries; i++) {
    const r = await venue.findByClientId(id);
    if (r && (r.status === 'filled' || r.status === 'cancelled' || r.status === 'rejected')) return r;
  }
  throw new Error(`order ${id} did not reach a final status in ${tries} look-ups`);
}

const posts = (fake: FakeUpbitExchange) => fake.privateRequestsTo('/v1/orders', 'POST');

describeVenueContract('upbit', async () => {
  const h = await harness({ realClock: true });
  return { venue: h.venue, symbol: 'BTC/KRW', price: BTC_PRICE, ordersSeen: () => h.fake.orders().length, close: h.close };
});

describeVenueContract('upbit (a late and partial venue: orders hidden from the first 2 look-ups)', async () => {
  const h = await harness({ realClock: true });
  h.fake.slowVenue({ hiddenLookups: 2, fillParts: 3 });
  return { venue: h.venue, symbol: 'BTC/KRW', price: BTC_PRICE, ordersSeen: () => h.fake.orders().length, close: h.close };
});

describe('UpbitVenue', () => {
  let h: Harness;
  afterEach(async () => {
    await h?.close();
  });

  describe('orders', () => {
    it('sends a market buy as ord_type=price with the KRW to spend (whole KRW, rounded down) and reports the fill exactly', async () => {
      h = await harness();
      const req = buy('10000.7');
      const placed = await h.venue.submit(req);

      expect(posts(h.fake).map((r) => r.params)).to.deep.equal([{ market: 'KRW-BTC', side: 'bid', ord_type: 'price', price: '10000', identifier: upbitIdentifier(req.clientOrderId, 1) }]);
      expect(placed).to.include({ clientOrderId: req.clientOrderId, venue: 'upbit', symbol: 'BTC/KRW', side: 'buy', status: 'open', filledQuantity: '0' });
      // A filled market buy ends in state `cancel`: judged by executed_volume, it is filled.
      const filled = await settle(h.venue, req.clientOrderId);
      expect(h.fake.orders()[0]).to.include({ state: 'cancel', executed_volume: '0.0001' });
      expect(filled).to.include({ status: 'filled', filledQuantity: '0.0001', avgPrice: '100000000', fee: '5', venueOrderId: placed.venueOrderId });
    });

    it('sends a market sell as ord_type=market with the exact volume and no price', async () => {
      h = await harness();
      h.fake.setBalance('BTC', '0.12345678');
      const req = sell('0.12345678');
      await h.venue.submit(req);

      expect(posts(h.fake).map((r) => r.params)).to.deep.equal([{ market: 'KRW-BTC', side: 'ask', ord_type: 'market', volume: '0.12345678', identifier: upbitIdentifier(req.clientOrderId, 1) }]);
      const sold = await settle(h.venue, req.clientOrderId);
      expect(sold).to.include({ status: 'filled', filledQuantity: '0.12345678', avgPrice: '100000000', fee: '6172.839' });
      expect((await h.venue.balances()).positions).to.deep.equal([]);
    });

    it('puts a limit price on the KRW tick in the trader\'s favour (a buy down, a sell up), and cancels a resting order', async () => {
      h = await harness();
      h.fake.setBalance('ETH', '1');
      const bid = buy('100000', { orderType: 'limit', limitPrice: '99999500' });
      const ask = sell('0.01', { symbol: 'ETH/KRW', orderType: 'limit', limitPrice: '4500250', price: '4000000' });
      const resting = await h.venue.submit(bid);
      await h.venue.submit(ask);

      const [bidPost, askPost] = posts(h.fake);
      expect(bidPost!.params).to.include({ ord_type: 'limit', price: '99999000', volume: '0.00100001' });
      expect(askPost!.params).to.include({ ord_type: 'limit', price: '4501000', volume: '0.01' });
      expect(posts(h.fake).map((r) => r.status)).to.deep.equal([201, 201]);
      expect(resting.status).to.equal('open');
      // Cash counts what open orders lock; a position counts the coins locked in a sell.
      const balances = await h.venue.balances();
      expect(balances.cash).to.equal('10000000');
      expect(balances.positions).to.deep.equal([{ symbol: 'ETH/KRW', quantity: '1' }]);

      const cancelled = await h.venue.cancel(bid.clientOrderId);
      expect(cancelled).to.include({ status: 'cancelled', filledQuantity: '0' });
      expect(h.fake.balances()['KRW']).to.include({ balance: '10000000', locked: '0' });
    });

    it('trades only the KRW markets Upbit lists, loaded once at start', async () => {
      h = await harness();
      expect(h.venue.trades('BTC/KRW')).to.equal(true);
      expect(h.venue.trades('XRP/KRW')).to.equal(false);
      expect(h.venue.trades('BTC/USDT')).to.equal(false);
      const err = await rejectionOf(h.venue.submit(buy('10000', { symbol: 'XRP/KRW' })));
      expect(err).to.be.instanceOf(VenueRejectedError);
      expect(err.code).to.equal('not_traded');
      expect(h.fake.market.requestsTo('/v1/market/all')).to.have.length(1);
    });
  });

  describe('refusals before sending', () => {
    it('refuses a buy under 5,000 KRW and a sell worth less at the reference price (named as dust), with no request at all', async () => {
      h = await harness();
      h.fake.setBalance('BTC', '1');
      const small = await rejectionOf(h.venue.submit(buy('4999')));
      const dust = await rejectionOf(h.venue.submit(sell('0.00004')));

      expect(small).to.be.instanceOf(VenueRejectedError);
      expect(small.code).to.equal('below_minimum');
      expect(small.message).to.contain('5000 KRW').and.contain('4999');
      expect(dust.code).to.equal('below_minimum');
      expect(dust.message).to.contain('0.00004').and.contain('dust');
      expect(h.fake.privateRequests).to.deep.equal([]);
    });

    it('refuses a limit order that the tick rounding takes under the minimum, with no request at all', async () => {
      h = await harness();
      const err = await rejectionOf(h.venue.submit(buy('5000', { orderType: 'limit', limitPrice: '99999999' })));
      // 5000 / 99,999,000 → 0.00005000 BTC at 99,999,000 = 4999.95 KRW.
      expect(err.code).to.equal('below_minimum');
      expect(err.message).to.contain('99999000');
      expect(h.fake.privateRequests).to.deep.equal([]);
    });

    it('refuses a buy the free KRW cannot pay with the 0.05 % fee locked on top, and sends no order', async () => {
      h = await harness();
      h.fake.setBalance('KRW', 10_004);
      const err = await rejectionOf(h.venue.submit(buy('10000')));

      expect(err).to.be.instanceOf(VenueRejectedError);
      expect(err.code).to.equal('insufficient_cash');
      expect(err.message).to.contain('10005').and.contain('10004').and.contain('fee');
      expect(posts(h.fake)).to.deep.equal([]);

      h.fake.deposit('KRW', 1);
      expect((await h.venue.submit(buy('10000'))).status).to.equal('open');
    });

    // LIVE_MAX_ORDER_NOTIONAL is a live rule (test/runtime/live-rules.test.ts, the live e2e test):
    // it spares liquidations, which the venue cannot tell apart.
    it('refuses a sell of more than is free, and sends no order', async () => {
      h = await harness();
      h.fake.setBalance('BTC', '0.001');
      const short = await rejectionOf(h.venue.submit(sell('0.002')));

      expect(short.code).to.equal('insufficient_position');
      expect(short.message).to.contain('0.002').and.contain('0.001');
      expect(posts(h.fake)).to.deep.equal([]);
    });
  });

  describe('lost answers and retries', () => {
    it('finds the order when the answer timed out after Upbit placed it: exactly one order, never sent again', async () => {
      h = await harness({ client: { timeoutMs: 300 } });
      h.fake.holdNextOrder({ after: 'placed' });
      const req = buy('10000');
      const err = await rejectionOf(h.venue.submit(req));

      expect(err).to.be.instanceOf(TransientError);
      expect(err.code).to.equal('upbit_timeout');
      const found = await h.venue.findByClientId(req.clientOrderId);
      expect(found).to.include({ status: 'filled', filledQuantity: '0.0001' });
      const again = await h.venue.submit(req);
      expect(again.venueOrderId).to.equal(found!.venueOrderId);
      expect(h.fake.orders()).to.have.length(1);
      expect(posts(h.fake)).to.have.length(1);
    });

    it('sends a fresh identifier (-2) only once Upbit does not show a lost attempt after the grace: exactly one order', async () => {
      h = await harness();
      h.fake.failNextOrder({ after: 'not-placed', status: 500 });
      const req = buy('10000');
      const err = await rejectionOf(h.venue.submit(req));
      expect(err.code).to.equal('upbit_server_error');

      // Within the grace the outcome is unknown: no answer "never seen", no second order.
      const unknown = await rejectionOf(h.venue.findByClientId(req.clientOrderId));
      expect(unknown).to.be.instanceOf(TransientError);
      expect(unknown.code).to.equal('order_outcome_unknown');
      expect((await rejectionOf(h.venue.submit(req))).code).to.equal('order_outcome_unknown');
      expect(posts(h.fake)).to.have.length(1);

      h.clock.t += GRACE_MS;
      expect(await h.venue.findByClientId(req.clientOrderId)).to.equal(undefined);
      const placed = await h.venue.submit(req);
      expect(placed.status).to.equal('open');
      expect(posts(h.fake).map((r) => r.params['identifier'])).to.deep.equal([upbitIdentifier(req.clientOrderId, 1), upbitIdentifier(req.clientOrderId, 2)]);
      expect(h.fake.orders().map((o) => o['identifier'])).to.deep.equal([upbitIdentifier(req.clientOrderId, 2)]);
      expect((await settle(h.venue, req.clientOrderId)).status).to.equal('filled');
    });

    it('after a timeout where nothing was placed, recovers with one order under -2', async () => {
      h = await harness({ client: { timeoutMs: 300 } });
      h.fake.holdNextOrder({ after: 'not-placed' });
      const req = buy('10000');
      expect((await rejectionOf(h.venue.submit(req))).code).to.equal('upbit_timeout');

      h.clock.t += GRACE_MS;
      await h.venue.submit(req);
      expect(h.fake.orders().map((o) => o['identifier'])).to.deep.equal([upbitIdentifier(req.clientOrderId, 2)]);
    });

    it('backs off after a 429, looks the attempt up, then sends -2: one order', async () => {
      h = await harness();
      h.fake.failNextOrder({ after: 'not-placed', status: 429 });
      const req = buy('10000');
      const placed = await h.venue.submit(req);

      expect(placed.status).to.equal('open');
      const id1 = upbitIdentifier(req.clientOrderId, 1);
      const id2 = upbitIdentifier(req.clientOrderId, 2);
      const trail = h.fake.privateRequests.filter((r) => r.path !== '/v1/accounts').map((r) => `${r.method} ${r.path} ${r.params['identifier']} ${r.status}`);
      expect(trail).to.deep.equal([`GET /v1/order ${id1} 404`, `POST /v1/orders ${id1} 429`, `GET /v1/order ${id1} 404`, `POST /v1/orders ${id2} 201`]);
      expect(Math.max(...h.sleeps)).to.be.at.least(1000);
      expect(h.fake.orders()).to.have.length(1);
    });

    it('gives up after rateLimitedAttempts 429s in a row with a TransientError, each back-off longer than the last', async () => {
      h = await harness({ venue: { rateLimitedAttempts: 3 } });
      for (let i = 0; i < 3; i++) h.fake.failNextOrder({ after: 'not-placed', status: 429 });
      const req = buy('10000');
      const err = await rejectionOf(h.venue.submit(req));

      expect(err).to.be.instanceOf(TransientError);
      expect(err.code).to.equal('upbit_rate_limited');
      expect(posts(h.fake)).to.have.length(3);
      expect(h.sleeps).to.include.members([1000, 2000]);
      // The next submit (after the caller's own back-off) looks -3 up and goes on with -4.
      h.clock.t += 10_000;
      await h.venue.submit(req);
      expect(h.fake.orders().map((o) => o['identifier'])).to.deep.equal([upbitIdentifier(req.clientOrderId, 4)]);
    });

    it('continues the attempt numbering after a restart on the same DATA_DIR', async () => {
      h = await harness();
      h.fake.failNextOrder({ after: 'not-placed', status: 502 });
      const req = buy('10000');
      await rejectionOf(h.venue.submit(req));
      await h.venue.close();

      const restarted = await h.reopen();
      expect((await rejectionOf(restarted.findByClientId(req.clientOrderId))).code).to.equal('order_outcome_unknown');
      h.clock.t += GRACE_MS;
      await restarted.submit(req);
      expect(posts(h.fake).map((r) => r.params['identifier'])).to.deep.equal([upbitIdentifier(req.clientOrderId, 1), upbitIdentifier(req.clientOrderId, 2)]);
      expect(h.fake.orders()).to.have.length(1);
    });

    it('finds an order whose answer was lost before a restart, and does not send another', async () => {
      h = await harness({ client: { timeoutMs: 300 } });
      h.fake.holdNextOrder({ after: 'placed' });
      const req = buy('10000');
      await rejectionOf(h.venue.submit(req));
      await h.venue.close();

      const restarted = await h.reopen();
      const again = await restarted.submit(req);
      expect(again).to.include({ status: 'filled', filledQuantity: '0.0001' });
      expect(h.fake.orders()).to.have.length(1);
      expect(posts(h.fake)).to.have.length(1);
    });

    it('skips an identifier Upbit says was used (a store restored from an older backup): looked up, then -2', async () => {
      h = await harness();
      h.fake.failNextOrder({ after: 'not-placed', status: 500, burnIdentifier: true });
      const req = buy('10000');
      await rejectionOf(h.venue.submit(req));
      await h.venue.close();
      fs.rmSync(path.join(h.dir, 'upbit-orders'), { recursive: true, force: true });

      const restored = await h.reopen();
      const placed = await restored.submit(req);
      expect(placed.status).to.equal('open');
      const id1 = upbitIdentifier(req.clientOrderId, 1);
      expect(posts(h.fake).map((r) => `${r.params['identifier']} ${r.status} ${r.error ?? ''}`.trim())).to.deep.equal([
        `${id1} 500 server_error`, `${id1} 400 duplicate_identifier`, `${upbitIdentifier(req.clientOrderId, 2)} 201`,
      ]);
      expect(h.fake.orders()).to.have.length(1);
    });

    it('forgets finished orders after retainMs, and still finds one by its first identifier', async () => {
      h = await harness({ venue: { retainMs: 60_000 } });
      const old = buy('10000');
      await h.venue.submit(old);
      await settle(h.venue, old.clientOrderId);
      h.clock.t += 120_000;
      await h.venue.submit(buy('10000'));
      await h.venue.close();

      const { store } = await LogStore.open(new NodeStorageIo(), path.join(h.dir, 'upbit-orders'), { name: 'upbit-orders' });
      const keys = [...store.entries()].map(([k]) => k);
      await store.close();
      expect(keys).to.have.length(1);
      expect(keys).to.not.include(`order:${old.clientOrderId}`);

      const restarted = await h.reopen();
      expect(await restarted.findByClientId(old.clientOrderId)).to.include({ status: 'filled' });
      await restarted.submit(old);
      expect(h.fake.orders()).to.have.length(2);
    });
  });

  describe('credentials', () => {
    it('answers wrong keys with a VenueAuthError that says what to do, after one request, and names no key', async () => {
      h = await harness({ client: { secretKey: 'not-the-secret-key-0123456789' } });
      const req = buy('10000');
      const err = await rejectionOf(h.venue.submit(req));

      expect(err).to.be.instanceOf(VenueAuthError);
      expect(err.category).to.equal('venue_auth');
      expect(err.code).to.equal('invalid_keys');
      expect(err.message).to.contain('UPBIT_SECRET_KEY').and.contain('jwt_verification');
      const again = await rejectionOf(h.venue.findByClientId(req.clientOrderId));
      expect(again).to.be.instanceOf(VenueAuthError);
      expect(h.fake.privateRequests).to.have.length(1);
      const text = JSON.stringify({ message: err.message, details: err.details });
      expect(text).to.not.contain('not-the-secret-key').and.not.contain(h.fake.accessKey);
    });

    it('tells the operator to add the server to the IP allow list, and to enable the order permission', async () => {
      h = await harness();
      h.fake.allowIps(['10.20.30.40']);
      const ip = await rejectionOf(h.venue.balances());
      expect(ip).to.be.instanceOf(VenueAuthError);
      expect(ip.code).to.equal('ip_not_allowed');
      expect(ip.message).to.contain('allowed IP list');
      await h.close();

      h = await harness();
      h.fake.setPermissions(['view-assets', 'view-orders']);
      const req = buy('10000');
      const scope = await rejectionOf(h.venue.submit(req));
      expect(scope.code).to.equal('permission_missing');
      expect(scope.message).to.contain('Make orders');
      expect(posts(h.fake)).to.have.length(1);
      // The attempt was refused: nothing can be at Upbit, and nothing is looked up for it.
      h.fake.setPermissions(['view-assets', 'view-orders', 'make-orders']);
      h.clock.t += 120_000;
      expect(await h.venue.findByClientId(req.clientOrderId)).to.equal(undefined);
    });

    it('without keys runs dry only: a dry run checks the rules here, a real order is refused naming the variables', async () => {
      h = await harness({ client: { accessKey: '', secretKey: '' } });
      const dry = await h.venue.submit(buy('10000'), { dryRun: true });
      expect(dry).to.include({ dryRun: true, status: 'filled', filledQuantity: '0' });
      const real = await rejectionOf(h.venue.submit(buy('10000')));
      expect(real).to.be.instanceOf(VenueAuthError);
      expect(real.code).to.equal('keys_missing');
      expect(real.message).to.contain('UPBIT_ACCESS_KEY').and.contain('UPBIT_SECRET_KEY');
      expect(h.fake.privateRequests).to.deep.equal([]);
    });
  });

  describe('dry runs', () => {
    it('validates at POST /v1/orders/test, places nothing, and reports a final dry run with nothing filled', async () => {
      h = await harness();
      const req = buy('20000');
      const dry = await h.venue.submit(req, { dryRun: true });

      expect(dry).to.include({ clientOrderId: req.clientOrderId, venue: 'upbit', dryRun: true, status: 'filled', filledQuantity: '0', avgPrice: '0', fee: '0' });
      expect(h.fake.privateRequestsTo('/v1/orders/test', 'POST').map((r) => r.params)).to.deep.equal([{ market: 'KRW-BTC', side: 'bid', ord_type: 'price', price: '20000', identifier: upbitIdentifier(req.clientOrderId, 1) }]);
      expect(posts(h.fake)).to.deep.equal([]);
      expect(h.fake.orders()).to.deep.equal([]);
      expect(h.fake.testOrders()).to.have.length(1);
      expect(await h.venue.findByClientId(req.clientOrderId)).to.equal(undefined);
    });

    it('refuses a dry run by the same rules as an order', async () => {
      h = await harness();
      h.fake.setBalance('KRW', 10_000);
      expect((await rejectionOf(h.venue.submit(buy('4000'), { dryRun: true }))).code).to.equal('below_minimum');
      expect((await rejectionOf(h.venue.submit(buy('10000'), { dryRun: true }))).code).to.equal('insufficient_cash');
      expect(h.fake.privateRequestsTo('/v1/orders/test')).to.deep.equal([]);
    });
  });

  describe('a late and partial venue', () => {
    it('reports the answered order while Upbit does not show it yet, then its fill', async () => {
      h = await harness();
      h.fake.slowVenue({ hiddenLookups: 2 });
      const req = buy('10000');
      const placed = await h.venue.submit(req);

      const hidden = [await h.venue.findByClientId(req.clientOrderId), await h.venue.findByClientId(req.clientOrderId)];
      expect(hidden.map((r) => r?.status)).to.deep.equal(['open', 'open']);
      expect(hidden.map((r) => r?.venueOrderId)).to.deep.equal([placed.venueOrderId, placed.venueOrderId]);
      expect(await h.venue.findByClientId(req.clientOrderId)).to.include({ status: 'filled', filledQuantity: '0.0001' });
      expect(h.fake.orders()).to.have.length(1);
    });

    it('answers order_outcome_unknown, never undefined, while an order whose answer was lost is hidden', async () => {
      h = await harness({ client: { timeoutMs: 300 } });
      h.fake.slowVenue({ hiddenLookups: 3 });
      h.fake.holdNextOrder({ after: 'placed' });
      const req = buy('10000');
      await rejectionOf(h.venue.submit(req));

      for (let i = 0; i < 3; i++) expect((await rejectionOf(h.venue.findByClientId(req.clientOrderId))).code).to.equal('order_outcome_unknown');
      expect(await h.venue.findByClientId(req.clientOrderId)).to.include({ status: 'filled' });
      expect(h.fake.orders()).to.have.length(1);
      expect(posts(h.fake)).to.have.length(1);
    });

    it('reports a limit order filling in parts, each part exact, until it is filled', async () => {
      h = await harness();
      h.fake.slowVenue({ fillParts: 3 });
      const req = buy('300000', { orderType: 'limit', limitPrice: String(BTC_PRICE) });
      await h.venue.submit(req);

      const seen: Array<[string, string, string]> = [];
      for (let i = 0; i < 3; i++) {
        const r = (await h.venue.findByClientId(req.clientOrderId))!;
        seen.push([r.status, r.filledQuantity, r.fee]);
      }
      expect(seen).to.deep.equal([['partially_filled', '0.001', '50'], ['partially_filled', '0.002', '100'], ['filled', '0.003', '150']]);
    });

    it('cancels the rest of a partly filled limit order and reports it cancelled with what filled', async () => {
      h = await harness();
      h.fake.slowVenue({ fillParts: 4 });
      const req = buy('400000', { orderType: 'limit', limitPrice: String(BTC_PRICE) });
      await h.venue.submit(req);
      expect(await h.venue.findByClientId(req.clientOrderId)).to.include({ status: 'partially_filled', filledQuantity: '0.001' });

      // Each visible look-up fills one more part at the fake (the cancel's own look-up too).
      const cancelled = (await h.venue.cancel(req.clientOrderId))!;
      const [order] = h.fake.orders();
      expect(order).to.include({ state: 'cancel' });
      expect(cancelled).to.include({ status: 'cancelled', filledQuantity: order!['executed_volume'], fee: order!['paid_fee'], avgPrice: '100000000' });
      expect(Number(cancelled.filledQuantity)).to.be.within(0.001, 0.003);
      expect(h.fake.balances()['KRW']!.locked).to.equal('0');
      expect(await h.venue.cancel(req.clientOrderId)).to.deep.equal(cancelled);
    });

    it('books a limit order\'s parts as they come through the router, cancels the rest after fillTimeoutMs, and the journal recounts equal to the book and the venue', async () => {
      h = await harness();
      h.fake.slowVenue({ fillParts: 4 });
      const book = await LiveBook.open(new NodeStorageIo(), path.join(h.dir, 'book'), { venue: 'upbit', quoteCurrency: 'KRW', timeZone: 'Asia/Seoul', minOrderNotional: 5000, now: () => h.clock.t });
      try {
        const journal: unknown[] = [];
        const opening = await book.reconcile(await h.venue.balances());
        journal.push(accountOpenedRecord(opening.opening!));
        const req = buy('400000', { orderType: 'limit', limitPrice: String(BTC_PRICE) });
        await book.expectOrder(req.clientOrderId, req.symbol);
        let t = 0;
        const router = new ExecutionRouter(h.venue, { pollIntervalMs: 1, fillTimeoutMs: 25, fetchAttempts: 3, sleep: async () => undefined, now: () => (t += 10) });
        const parts: string[] = [];
        const routed = await router.execute(req, {
          onProgress: async (order) => {
            const out = await book.bookFill(order);
            if (!out.fill) return;
            parts.push(out.fill.quantity);
            expect(Object.keys(book.inFlight)).to.deep.equal([req.clientOrderId]);
            journal.push({ type: 'order.partially_filled', clientOrderId: req.clientOrderId, order: { ...order, fillSequence: out.fillSequence }, fill: out.fill });
          },
        });
        // Two lookups saw a part each; the cancel's own lookup filled a third, and the rest was cancelled.
        expect(parts).to.deep.equal(['0.001', '0.001']);
        expect(routed.order).to.include({ status: 'cancelled', filledQuantity: '0.003', fee: '150' });
        const final = await book.bookFill(routed.order);
        expect(final).to.deep.include({ booked: true, fill: { quantity: '0.001', price: '100000000', fee: '50' }, fillSequence: 3 });
        journal.push({ type: 'order.filled', clientOrderId: req.clientOrderId, order: { ...routed.order, fillSequence: final.fillSequence }, fill: routed.fill });
        expect(book.inFlight).to.deep.equal({});

        const recount = recountJournal(recordLines(journal), { venue: 'upbit' });
        expect(recount.errors).to.deep.equal([]);
        expect(compareWithBook(recount, book.state)).to.deep.equal([]);
        // The venue's balances show exactly what was booked: nothing to adjust.
        expect((await book.reconcile(await h.venue.balances())).adjustments).to.deep.equal([]);
        expect(book.state.positions['BTC/KRW']).to.include({ quantity: '0.003' });
      } finally {
        await book.close();
      }
    });
  });

  describe('the KRW tick table', () => {
    it('agrees with the fake Upbit\'s table in every band, and rounds a buy down and a sell up onto it', () => {
      for (const p of ['150000000', '1500000', '700000', '200000', '60000', '20000', '7000', '2000', '500', '50', '5', '0.5', '0.05', '0.005', '0.0005', '0.00005']) {
        expect(krwTickSize(new Dec(p)).toFixed(), `tick at ${p}`).to.equal(fakeTickSize(p).toFixed());
      }
      for (const p of ['99999500', '999999', '99995', '4999.5', '12.345', '0.123456']) {
        for (const side of ['buy', 'sell'] as const) {
          const r = roundToKrwTick(new Dec(p), side);
          expect(isOnKrwTick(r.toFixed()), `${side} ${p} → ${r.toFixed()}`).to.equal(true);
          expect(side === 'buy' ? r.lte(p) : r.gte(p), `${side} ${p} → ${r.toFixed()}`).to.equal(true);
        }
      }
      expect(roundToKrwTick(new Dec('999999'), 'sell').toFixed()).to.equal('1000000');
      expect(roundToKrwTick(new Dec('99999500'), 'buy').toFixed()).to.equal('99999000');
    });
  });

  describe('Upbit error names', () => {
    it('maps order refusals to VenueRejectedError codes that name the rule', () => {
      const cases: Array<[string, string]> = [
        ['under_min_total_bid', 'below_minimum'], ['under_min_total_ask', 'below_minimum'], ['invalid_price_bid', 'invalid_tick'], ['invalid_price_ask', 'invalid_tick'],
        ['insufficient_funds_bid', 'insufficient_cash'], ['insufficient_funds_ask', 'insufficient_position'], ['create_bid_error', 'invalid_order'],
        ['create_ask_error', 'invalid_order'], ['validation_error', 'invalid_order'], ['duplicate_identifier', 'duplicate_identifier'],
      ];
      for (const [name, code] of cases) {
        const err = upbitErrorOf({ status: 400, name, message: 'm' }, 'POST /v1/orders');
        expect(err, name).to.be.instanceOf(VenueRejectedError);
        expect(err.code, name).to.equal(code);
        expect(err.message, name).to.contain(name);
      }
    });

    it('maps credential refusals to VenueAuthError, 429 and 5xx to TransientError, order_not_found to NotFoundError', () => {
      for (const name of ['jwt_verification', 'invalid_access_key', 'expired_access_key', 'no_authorization_ip', 'out_of_scope', 'nonce_used']) {
        expect(upbitErrorOf({ status: 401, name }, 'GET /v1/accounts'), name).to.be.instanceOf(VenueAuthError);
      }
      expect(upbitErrorOf({ status: 429, name: 'too_many_requests' }, 'x').code).to.equal('upbit_rate_limited');
      expect(upbitErrorOf({ status: 503, name: 'server_error' }, 'x')).to.be.instanceOf(TransientError);
      expect(upbitErrorOf({ status: 404, name: 'order_not_found' }, 'x')).to.be.instanceOf(NotFoundError);
      expect(parseRemainingReq('group=order; min=1800; sec=0')).to.deep.equal({ group: 'order', sec: 0 });
    });
  });
});
