import crypto from 'node:crypto';
import { expect } from 'chai';
import ccxt from 'ccxt';
import type { upbit as Upbit } from 'ccxt';
import { FakeUpbitExchange, isOnKrwTick, krwTickSize } from './fake-upbit-exchange';
import { rejectionOf } from '../support/rejection';


/** Waits for `condition`, at most `ms`. */
async function waitFor(condition: () => boolean, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > until) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A JWT as Upbit's docs build it (HS512 here, to show the fake is not tied to ccxt's HS256). */
function upbitJwt(accessKey: string, secret: string, hashed: string | undefined, nonce: string = crypto.randomUUID()): string {
  const payload: Record<string, string> = { access_key: accessKey, nonce };
  if (hashed !== undefined) {
    payload['query_hash'] = crypto.createHash('sha512').update(hashed).digest('hex');
    payload['query_hash_alg'] = 'SHA512';
  }
  const enc = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const unsigned = `${enc({ alg: 'HS512', typ: 'JWT' })}.${enc(payload)}`;
  return `${unsigned}.${crypto.createHmac('sha512', secret).update(unsigned).digest('base64url')}`;
}

/** The `Remaining-Req` header of ccxt's last answer. */
function remainingReq(c: { last_response_headers?: Record<string, string> }): string | undefined {
  const headers = c.last_response_headers ?? {};
  return headers['Remaining-Req'] ?? headers['remaining-req'];
}

const BTC_PRICE = 100_000_000;

describe('FakeUpbitExchange (driven by ccxt upbit)', () => {
  let venue: FakeUpbitExchange;
  let ex: Upbit;

  function client(overrides: { apiKey?: string; secret?: string; timeout?: number } = {}): Upbit {
    const c = new ccxt.upbit({ apiKey: venue.accessKey, secret: venue.secretKey, timeout: 3000, ...overrides });
    c.urls['api'] = { public: venue.url, private: venue.url };
    return c;
  }

  beforeEach(async () => {
    venue = await FakeUpbitExchange.start();
    venue.market.setTicker('KRW-BTC', { price: BTC_PRICE, volume24h: 1000 });
    venue.market.setTicker('KRW-ETH', { price: 4_000_000, volume24h: 1000 });
    venue.setBalance('KRW', 1_000_000);
    ex = client();
  });

  afterEach(async () => {
    await venue.stop();
  });

  describe('authentication', () => {
    it('answers fetchBalance with the balances when the JWT is right', async () => {
      venue.setBalance('BTC', '0.5', 90_000_000);
      const balance = await ex.fetchBalance();

      expect(balance['KRW']).to.include({ free: 1_000_000, used: 0 });
      expect(balance['BTC']).to.include({ free: 0.5, used: 0 });
      const info = balance.info as Record<string, string>[];
      expect(info.find((r) => r['currency'] === 'BTC')).to.deep.include({ avg_buy_price: '90000000', unit_currency: 'KRW' });
      expect(venue.privateRequestsTo('/v1/accounts')[0]).to.include({ auth: 'ok', status: 200 });
    });

    it('refuses with jwt_verification (AuthenticationError) when the secret is wrong', async () => {
      const err = await rejectionOf<Error>(client({ secret: 'not-the-secret' }).fetchBalance());

      expect(err).to.be.instanceOf(ccxt.AuthenticationError);
      expect(err.message).to.contain('jwt_verification');
      expect(venue.privateRequests[0]).to.include({ auth: 'jwt_verification', status: 401 });
    });

    it('refuses with invalid_access_key (AuthenticationError) when the access key is unknown', async () => {
      const err = await rejectionOf<Error>(client({ apiKey: 'someone-else' }).fetchBalance());

      expect(err).to.be.instanceOf(ccxt.AuthenticationError);
      expect(err.message).to.contain('invalid_access_key');
    });

    it('refuses with nonce_used when a nonce comes a second time', async () => {
      ex.uuid = () => 'the-same-nonce';
      await ex.fetchBalance();
      const err = await rejectionOf<Error>(ex.fetchBalance());

      expect(err).to.be.instanceOf(ccxt.ExchangeError);
      expect(err.message).to.contain('nonce_used');
      expect(venue.privateRequests.map((r) => r.auth)).to.deep.equal(['ok', 'nonce_used']);
    });

    it('refuses with no_authorization_ip when the caller is not on the allow list', async () => {
      venue.allowIps(['10.20.30.40']);
      const err = await rejectionOf<Error>(ex.fetchBalance());
      expect(err.message).to.contain('no_authorization_ip');

      venue.allowIps(['127.0.0.1']);
      await ex.fetchBalance();
    });

    it('refuses with expired_access_key and out_of_scope when the key is expired or lacks the permission', async () => {
      venue.setPermissions(['view-assets', 'view-orders']);
      const scope = await rejectionOf<Error>(ex.createOrder('BTC/KRW', 'market', 'sell', 0.001));
      expect(scope).to.be.instanceOf(ccxt.PermissionDenied);
      expect(scope.message).to.contain('out_of_scope');

      venue.expireKey();
      const expired = await rejectionOf<Error>(ex.fetchBalance());
      expect(expired).to.be.instanceOf(ccxt.AuthenticationError);
      expect(expired.message).to.contain('expired_access_key');
    });

    it('checks query_hash against the exact query: a changed query is invalid_query_payload, no token is no_authorization_token', async () => {
      const jwt = upbitJwt(venue.accessKey, venue.secretKey, 'market=KRW-BTC');
      const tampered = await fetch(`${venue.url}/v1/orders/chance?market=KRW-ETH`, { headers: { Authorization: `Bearer ${jwt}` } });
      expect(tampered.status).to.equal(401);
      expect(await tampered.json()).to.have.nested.property('error.name', 'invalid_query_payload');

      const good = await fetch(`${venue.url}/v1/orders/chance?market=KRW-ETH`, { headers: { Authorization: `Bearer ${upbitJwt(venue.accessKey, venue.secretKey, 'market=KRW-ETH')}` } });
      expect(good.status).to.equal(200);
      expect(await good.json()).to.nested.include({ 'market.id': 'KRW-ETH', 'market.bid.min_total': '5000', bid_fee: '0.0005' });

      const missingHash = await fetch(`${venue.url}/v1/order?uuid=x`, { headers: { Authorization: `Bearer ${upbitJwt(venue.accessKey, venue.secretKey, undefined)}` } });
      expect(await missingHash.json()).to.have.nested.property('error.name', 'invalid_query_payload');

      const none = await fetch(`${venue.url}/v1/accounts`);
      expect(none.status).to.equal(401);
      expect(await none.json()).to.have.nested.property('error.name', 'no_authorization_token');
    });

    it('hashes the unescaped query, so identifiers with spaces and non-ASCII pass', async () => {
      const identifier = 'proposal 7/ä-1';
      await ex.createOrder('BTC/KRW', 'market', 'sell', 0.0001, undefined, { clientOrderId: identifier }).catch(() => undefined);
      const err = await rejectionOf<Error>(ex.fetchOrder(undefined as unknown as string, undefined, { identifier }));

      expect(err).to.be.instanceOf(ccxt.OrderNotFound);
      expect(venue.privateRequestsTo('/v1/orders')[0]).to.include({ auth: 'ok', error: 'insufficient_funds_ask' });
      expect(venue.privateRequestsTo('/v1/order')[0]).to.include({ auth: 'ok', status: 404 });
      expect(venue.privateRequestsTo('/v1/order')[0]!.params).to.deep.equal({ identifier });
    });

    it('puts Remaining-Req with the route group on every answer', async () => {
      venue.setBalance('BTC', '0.01');
      await ex.fetchBalance();
      expect(remainingReq(ex)).to.match(/^group=default; min=\d+; sec=\d+$/);
      await ex.createOrder('BTC/KRW', 'market', 'sell', 0.001);
      expect(remainingReq(ex)).to.match(/^group=order; min=\d+; sec=\d+$/);
    });
  });

  describe('orders', () => {
    it('places a market buy from the cost param as ord_type=price, and it ends cancel with executed_volume and paid_fee', async () => {
      const placed = await ex.createOrder('BTC/KRW', 'market', 'buy', 0, undefined, { cost: 10_000, clientOrderId: 'p1-1' });

      const post = venue.privateRequestsTo('/v1/orders', 'POST')[0]!;
      expect(post.params).to.deep.equal({ market: 'KRW-BTC', side: 'bid', ord_type: 'price', price: '10000', identifier: 'p1-1' });
      expect(placed).to.include({ clientOrderId: 'p1-1', status: 'open', type: 'market', side: 'buy', cost: 10_000 });
      expect(placed.info).to.include({ state: 'wait', executed_volume: '0', reserved_fee: '5', locked: '10005' });

      const order = await ex.fetchOrder(undefined as unknown as string, undefined, { identifier: 'p1-1' });
      expect(order).to.include({ id: placed.id, status: 'canceled', filled: 0.0001, cost: 10_000 });
      // ccxt 4.5.84 leaves Upbit's fee cost a string (from paid_fee), unlike the other numbers.
      expect(order.fee).to.deep.equal({ currency: 'KRW', cost: '5' });
      expect(order.info).to.include({ state: 'cancel', executed_volume: '0.0001', paid_fee: '5', locked: '0' });
      expect(order.trades).to.have.length(1);
      expect(order.trades[0]).to.include({ price: BTC_PRICE, amount: 0.0001, cost: 10_000 });
      expect(venue.balances()['KRW']).to.deep.equal({ balance: '989995', locked: '0', avgBuyPrice: '0' });
      expect(venue.balances()['BTC']).to.include({ balance: '0.0001', avgBuyPrice: '100000000' });
    });

    it('places a market buy from amount × price (createMarketBuyOrderRequiresPrice) and returns the unspent KRW', async () => {
      venue.market.setTicker('KRW-BTC', { price: 95_123_000, volume24h: 1 });
      await ex.createOrder('BTC/KRW', 'market', 'buy', 0.0002, 50_000_000, { clientOrderId: 'p2-1' });

      expect(venue.privateRequestsTo('/v1/orders', 'POST')[0]!.params).to.include({ ord_type: 'price', price: '10000' });
      const [order] = venue.orders();
      // 10000 / 95,123,000 = 0.000105127… → 0.00010512 BTC for 9999.32976 KRW, fee 4.99966488.
      expect(order).to.include({ state: 'cancel', executed_volume: '0.00010512', executed_funds: '9999.32976', paid_fee: '4.99966488' });
      expect(venue.balances()['KRW']!.balance).to.equal('989995.67057512');
    });

    it('places a market sell as ord_type=market with volume, and it ends done with the proceeds less the fee', async () => {
      venue.setBalance('BTC', '0.001');
      const placed = await ex.createOrder('BTC/KRW', 'market', 'sell', 0.0006, undefined, { clientOrderId: 's1-1' });

      expect(venue.privateRequestsTo('/v1/orders', 'POST')[0]!.params).to.deep.equal({ market: 'KRW-BTC', side: 'ask', ord_type: 'market', volume: '0.0006', identifier: 's1-1' });
      const order = await ex.fetchOrder(placed.id!);
      expect(order).to.include({ status: 'closed', filled: 0.0006, cost: 60_000, remaining: 0 });
      expect(order.fee).to.deep.equal({ currency: 'KRW', cost: '30' });
      expect(venue.balances()['KRW']!.balance).to.equal('1059970');
      expect(venue.balances()['BTC']).to.include({ balance: '0.0004', locked: '0' });
    });

    it('rests a limit buy on the tick with the fee locked on top, and cancelOrder returns the funds', async () => {
      const placed = await ex.createOrder('BTC/KRW', 'limit', 'buy', 0.001, 99_000_000, { clientOrderId: 'l1-1' });

      expect(placed.info).to.include({ state: 'wait', price: '99000000', volume: '0.001', locked: '99049.5' });
      const balance = await ex.fetchBalance();
      expect(balance['KRW']).to.include({ free: 900_950.5, used: 99_049.5 });
      expect(await ex.fetchOpenOrders('BTC/KRW')).to.have.length(1);

      const canceled = await ex.cancelOrder(placed.id!);
      expect(canceled.info).to.include({ uuid: placed.id, state: 'wait' });
      expect((await ex.fetchOrder(placed.id!)).status).to.equal('canceled');
      expect(venue.balances()['KRW']).to.include({ balance: '1000000', locked: '0' });
    });

    it('fills a resting limit order at its price once the ticker reaches it', async () => {
      const placed = await ex.createOrder('BTC/KRW', 'limit', 'buy', 0.001, 99_000_000);
      venue.market.setTicker('KRW-BTC', { price: 98_500_000, volume24h: 1 });

      const order = await ex.fetchOrder(placed.id!);
      expect(order).to.include({ status: 'closed', filled: 0.001, average: 99_000_000 });
      expect(order.info).to.include({ paid_fee: '49.5', remaining_fee: '0', locked: '0' });
      expect(venue.balances()['KRW']).to.include({ balance: '900950.5', locked: '0' });
    });

    it('cancels by identifier and refuses to cancel a finished order', async () => {
      venue.setBalance('BTC', '0.001');
      await ex.createOrder('BTC/KRW', 'limit', 'sell', 0.001, 101_000_000, { clientOrderId: 'l2-1' });
      expect(venue.balances()['BTC']).to.include({ balance: '0', locked: '0.001' });

      await ex.cancelOrder(undefined as unknown as string, undefined, { identifier: 'l2-1' });
      expect(venue.balances()['BTC']).to.include({ balance: '0.001', locked: '0' });
      const again = await rejectionOf<Error>(ex.cancelOrder(undefined as unknown as string, undefined, { identifier: 'l2-1' }));
      expect(again.message).to.contain('validation_error');
    });

    it('validates a dry run at POST /v1/orders/test exactly like an order and creates nothing', async () => {
      const dry = await ex.createOrder('BTC/KRW', 'market', 'buy', 0, undefined, { cost: 20_000, clientOrderId: 'd1-1', test: true });

      expect(venue.privateRequestsTo('/v1/orders/test', 'POST')).to.have.length(1);
      expect(dry.id!).to.match(/^[0-9a-f-]{36}$/);
      expect(dry.info).to.include({ ord_type: 'price', price: '20000', identifier: 'd1-1' });
      expect(venue.orders()).to.have.length(0);
      expect(venue.testOrders()).to.have.length(1);
      expect(venue.balances()['KRW']).to.include({ balance: '1000000', locked: '0' });
      expect(await rejectionOf<Error>(ex.fetchOrder(dry.id!))).to.be.instanceOf(ccxt.OrderNotFound);

      const tooSmall = await rejectionOf<Error>(ex.createOrder('BTC/KRW', 'market', 'buy', 0, undefined, { cost: 4_000, test: true }));
      expect(tooSmall.message).to.contain('under_min_total_bid');
    });

    it('answers fees and minimums at /v1/orders/chance (fetchTradingFee)', async () => {
      const fee = await ex.fetchTradingFee('BTC/KRW');
      expect(fee).to.include({ maker: 0.0005, taker: 0.0005 });
      expect(fee.info).to.nested.include({ 'market.bid.min_total': '5000', 'bid_account.currency': 'KRW' });
    });
  });

  describe('refusals', () => {
    it('refuses a buy and a sell under 5,000 KRW with under_min_total_bid / under_min_total_ask', async () => {
      venue.setBalance('BTC', '1');
      const buy = await rejectionOf<Error>(ex.createOrder('BTC/KRW', 'market', 'buy', 0, undefined, { cost: 4_999 }));
      const sell = await rejectionOf<Error>(ex.createOrder('BTC/KRW', 'market', 'sell', 0.00004));
      const limitSell = await rejectionOf<Error>(ex.createOrder('BTC/KRW', 'limit', 'sell', 0.00004, 120_000_000));

      expect(buy.message).to.contain('under_min_total_bid');
      expect(sell.message).to.contain('under_min_total_ask');
      expect(limitSell.message).to.contain('under_min_total_ask');
      expect(venue.orders()).to.have.length(0);
    });

    it('refuses a limit price off the KRW tick with invalid_price_bid / invalid_price_ask', async () => {
      venue.setBalance('ETH', '1');
      const bid = await rejectionOf<Error>(ex.createOrder('BTC/KRW', 'limit', 'buy', 0.001, 99_999_500));
      const ask = await rejectionOf<Error>(ex.createOrder('ETH/KRW', 'limit', 'sell', 0.01, 4_000_250));

      expect(bid.message).to.contain('invalid_price_bid');
      expect(ask.message).to.contain('invalid_price_ask');
      await ex.createOrder('ETH/KRW', 'limit', 'sell', 0.01, 4_501_000);
    });

    it('refuses what the balance cannot pay, fee included, with insufficient_funds_bid / insufficient_funds_ask', async () => {
      venue.setBalance('KRW', 10_004);
      const buy = await rejectionOf<Error>(ex.createOrder('BTC/KRW', 'market', 'buy', 0, undefined, { cost: 10_000 }));
      const sell = await rejectionOf<Error>(ex.createOrder('BTC/KRW', 'market', 'sell', 0.001));

      expect(buy).to.be.instanceOf(ccxt.InsufficientFunds);
      expect(buy.message).to.contain('insufficient_funds_bid');
      expect(sell.message).to.contain('insufficient_funds_ask');
      venue.deposit('KRW', 1);
      await ex.createOrder('BTC/KRW', 'market', 'buy', 0, undefined, { cost: 10_000 });
    });

    it('burns an identifier even when its order was refused: the next request with it is duplicate_identifier', async () => {
      const first = await rejectionOf<Error>(ex.createOrder('BTC/KRW', 'market', 'buy', 0, undefined, { cost: 1_000, clientOrderId: 'x-1' }));
      const second = await rejectionOf<Error>(ex.createOrder('BTC/KRW', 'market', 'buy', 0, undefined, { cost: 10_000, clientOrderId: 'x-1' }));

      expect(first.message).to.contain('under_min_total_bid');
      expect(second.message).to.contain('duplicate_identifier');
      expect(venue.identifierUsed('x-1')).to.equal(true);
      expect(venue.orders()).to.have.length(0);
      expect(await rejectionOf<Error>(ex.fetchOrder(undefined as unknown as string, undefined, { identifier: 'x-1' }))).to.be.instanceOf(ccxt.OrderNotFound);
    });

    it('refuses a price on a market sell and a volume on a market buy with create_ask_error / create_bid_error', async () => {
      const jwtFor = (body: string): string => upbitJwt(venue.accessKey, venue.secretKey, body);
      const post = async (body: Record<string, string>): Promise<unknown> => {
        const hashed = Object.entries(body).map(([k, v]) => `${k}=${v}`).join('&');
        const res = await fetch(`${venue.url}/v1/orders`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${jwtFor(hashed)}` }, body: JSON.stringify(body) });
        return res.json();
      };
      venue.setBalance('BTC', '1');

      expect(await post({ market: 'KRW-BTC', side: 'ask', ord_type: 'market', volume: '0.1', price: '100' })).to.have.nested.property('error.name', 'create_ask_error');
      expect(await post({ market: 'KRW-BTC', side: 'bid', ord_type: 'price', volume: '0.1', price: '10000' })).to.have.nested.property('error.name', 'create_bid_error');
      expect(await post({ market: 'KRW-BTC', side: 'buy', ord_type: 'limit', volume: '0.1', price: '10000' })).to.nested.include({ 'error.name': 'validation_error', 'error.message': 'side is missing, side does not have a valid value' });
    });
  });

  describe('faults', () => {
    it('places the order and answers 500 when failNextOrder is after: placed', async () => {
      venue.failNextOrder({ status: 500, after: 'placed' });
      const err = await rejectionOf<Error>(ex.createOrder('BTC/KRW', 'market', 'buy', 0, undefined, { cost: 10_000, clientOrderId: 'f1-1' }));

      expect(err).to.be.instanceOf(ccxt.ExchangeError);
      expect(venue.orders()).to.have.length(1);
      expect((await ex.fetchOrder(undefined as unknown as string, undefined, { identifier: 'f1-1' })).status).to.equal('canceled');
    });

    it('answers a 429 with a JSON body and sec=0 and places nothing when failNextOrder is after: not-placed', async () => {
      venue.failNextOrder({ status: 429, after: 'not-placed' });
      const err = await rejectionOf<Error>(ex.createOrder('BTC/KRW', 'market', 'buy', 0, undefined, { cost: 10_000, clientOrderId: 'f2-1' }));

      expect(err.message).to.contain('too_many_requests');
      expect(remainingReq(ex)).to.equal('group=order; min=1800; sec=0');
      expect(venue.orders()).to.have.length(0);
      expect(venue.identifierUsed('f2-1')).to.equal(false);
    });

    it('places the order and never answers when holdNextOrder is after: placed (a client timeout)', async () => {
      venue.holdNextOrder({ after: 'placed' });
      const slow = client({ timeout: 300 });
      const err = await rejectionOf<Error>(slow.createOrder('BTC/KRW', 'market', 'buy', 0, undefined, { cost: 10_000, clientOrderId: 'h1-1' }));

      expect(err).to.be.instanceOf(ccxt.RequestTimeout);
      await waitFor(() => venue.privateRequestsTo('/v1/orders')[0]?.aborted === true);
      expect(venue.heldCount).to.equal(0);
      expect(venue.orders()).to.have.length(1);
      expect((await ex.fetchOrder(undefined as unknown as string, undefined, { identifier: 'h1-1' })).filled).to.equal(0.0001);
    });

    it('places nothing and never answers when holdNextOrder is after: not-placed', async () => {
      venue.holdNextOrder({ after: 'not-placed' });
      const err = await rejectionOf<Error>(client({ timeout: 300 }).createOrder('BTC/KRW', 'market', 'buy', 0, undefined, { cost: 10_000, clientOrderId: 'h2-1' }));

      expect(err).to.be.instanceOf(ccxt.RequestTimeout);
      expect(venue.orders()).to.have.length(0);
      expect(await rejectionOf<Error>(ex.fetchOrder(undefined as unknown as string, undefined, { identifier: 'h2-1' }))).to.be.instanceOf(ccxt.OrderNotFound);
    });

    it('sends a held answer late when released', async () => {
      venue.holdNextOrder({ after: 'placed' });
      const pending = ex.createOrder('BTC/KRW', 'market', 'buy', 0, undefined, { cost: 10_000 });
      await waitFor(() => venue.heldCount === 1);
      venue.releaseHeld();

      expect((await pending).status).to.equal('open');
    });
  });

  describe('a late and partial venue', () => {
    it('hides a new order from N lookups, then fills a limit order one part per lookup', async () => {
      venue.slowVenue({ hiddenLookups: 2, fillParts: 3 });
      const placed = await ex.createOrder('BTC/KRW', 'limit', 'buy', 0.003, 100_000_000, { clientOrderId: 'lp-1' });
      const look = (): Promise<{ status?: string; filled?: number }> => ex.fetchOrder(undefined as unknown as string, undefined, { identifier: 'lp-1' });

      expect(await rejectionOf<Error>(look())).to.be.instanceOf(ccxt.OrderNotFound);
      expect(await rejectionOf<Error>(look())).to.be.instanceOf(ccxt.OrderNotFound);
      expect(await look()).to.include({ status: 'open', filled: 0.001 });
      expect(await look()).to.include({ status: 'open', filled: 0.002 });
      expect(await look()).to.include({ status: 'closed', filled: 0.003 });
      expect(placed.info).to.include({ state: 'wait', executed_volume: '0' });
      expect(venue.balances()['KRW']).to.include({ balance: '699850', locked: '0' });
    });

    it('cancels the rest of a partly filled limit order and keeps what filled', async () => {
      venue.slowVenue({ fillParts: 4 });
      const placed = await ex.createOrder('BTC/KRW', 'limit', 'buy', 0.004, 100_000_000);
      await ex.fetchOrder(placed.id!);
      await ex.cancelOrder(placed.id!);

      const order = await ex.fetchOrder(placed.id!);
      expect(order).to.include({ status: 'canceled', filled: 0.001, remaining: 0.003 });
      expect(venue.balances()['KRW']).to.include({ balance: '899950', locked: '0' });
      expect(venue.balances()['BTC']).to.include({ balance: '0.001' });
    });
  });

  describe('outside changes', () => {
    it('shows a deposit and an outside trade in the balances and the closed orders, not in orders()', async () => {
      venue.deposit('KRW', 50_000);
      venue.outsideTrade({ market: 'KRW-BTC', side: 'buy', volume: '0.001', price: 100_000_000 });

      const balance = await ex.fetchBalance();
      expect(balance['KRW']!.free).to.equal(949_950);
      expect(balance['BTC']!.free).to.equal(0.001);
      expect(venue.orders()).to.have.length(0);
      const closed = await ex.fetchClosedOrders('BTC/KRW');
      expect(closed).to.have.length(1);
      expect(closed[0]).to.include({ status: 'closed', side: 'buy' });
    });
  });

  describe('the KRW tick table', () => {
    it('has the tick for each price band', () => {
      const ticks = [[150_000_000, '1000'], [1_500_000, '1000'], [700_000, '500'], [200_000, '100'], [60_000, '50'], [20_000, '10'], [7_000, '5'], [2_000, '1'], [500, '1'], [50, '0.01']] as const;
      for (const [price, tick] of ticks) expect(krwTickSize(price).toFixed(), `tick at ${price}`).to.equal(tick);
      expect(isOnKrwTick(99_999_000)).to.equal(true);
      expect(isOnKrwTick(99_999_500)).to.equal(false);
    });
  });
});
