import { expect } from 'chai';
import { CcxtMarketData, type CcxtMarketOptions } from '../../src/integrations/ccxt-market';
import { ConfigError, InvariantError, NotFoundError, TransientError } from '../../src/errors';
import { FakeUpbit, type FakeCandle } from '../fakes/fake-upbit';

const T0 = Date.parse('2026-03-02T09:00:00Z');
const BTC_TRADE_AT = Date.parse('2026-03-02T08:59:58.123Z');

/** Hourly candles from 00:00 UTC on 2026-03-02, each one unit higher than the last. */
function hourly(n: number, first = 100): FakeCandle[] {
  return Array.from({ length: n }, (_, i) => ({
    time: new Date(Date.parse('2026-03-02T00:00:00Z') + i * 3600_000).toISOString(),
    open: first + i, high: first + i + 2, low: first + i - 1, close: first + i + 1, volume: 10 + i,
  }));
}

/** The rejection of `p`; fails the test when `p` fulfils. */
async function rejectionOf(p: Promise<unknown>): Promise<Error & { code?: string; details?: Record<string, unknown> }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a rejection, got a value');
}

/** Waits for `condition`, at most `ms`. */
async function waitFor(condition: () => boolean, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > until) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('CcxtMarketData (upbit)', () => {
  let fake: FakeUpbit;
  let clock: number;

  function market(overrides: Partial<CcxtMarketOptions> = {}): CcxtMarketData {
    return new CcxtMarketData({ exchange: 'upbit', timeoutMs: 3000, apiUrl: fake.url, cacheMs: 2000, now: () => clock, ...overrides });
  }

  beforeEach(async () => {
    clock = T0;
    fake = await FakeUpbit.start();
    fake.setTicker('KRW-BTC', { price: 95_123_000, volume24h: 1834.25, value24h: 174_000_000_000, tradeTimestamp: BTC_TRADE_AT });
    fake.setTicker('KRW-ETH', { price: 4_321_000, volume24h: 20_000 });
    fake.setCandles('KRW-BTC', 60, hourly(6));
  });

  afterEach(async () => {
    await fake.stop();
  });

  describe('quote', () => {
    it('returns the ticker last price, trade time and 24h volumes when Upbit answers', async () => {
      const quote = await market().quote('BTC/KRW');

      expect(quote).to.deep.equal({
        symbol: 'BTC/KRW', price: 95_123_000, at: '2026-03-02T08:59:58.123Z', source: 'exchange',
        volume24h: 1834.25, quoteVolume24h: 174_000_000_000,
      });
      const tickers = fake.requestsTo('/v1/ticker');
      expect(tickers).to.have.length(1);
      expect(tickers[0]!.query).to.deep.equal({ markets: 'KRW-BTC' });
    });

    it('loads the market list once for many calls', async () => {
      const md = market({ cacheMs: 0 });
      await md.quote('BTC/KRW');
      await md.quote('ETH/KRW');
      await md.candles('BTC/KRW', 2);

      expect(fake.requestsTo('/v1/market/all')).to.have.length(1);
      expect(fake.requestsTo('/v1/ticker')).to.have.length(2);
    });

    it('loads the market list again on the next call when loading it failed', async () => {
      const md = market();
      fake.failNext(1, 500, { path: '/v1/market/all' });

      const err = await rejectionOf(md.quote('BTC/KRW'));
      expect(err).to.be.instanceOf(TransientError);
      expect(err.code).to.equal('market_data_error');

      const quote = await md.quote('BTC/KRW');
      expect(quote.price).to.equal(95_123_000);
      expect(fake.requestsTo('/v1/market/all').map((r) => r.status)).to.deep.equal([500, 200]);
    });

    it('answers from its cache within cacheMs and asks Upbit again after it', async () => {
      const md = market({ cacheMs: 2000 });
      expect((await md.quote('BTC/KRW')).price).to.equal(95_123_000);
      fake.setTicker('KRW-BTC', { price: 96_000_000, volume24h: 1900 });

      clock += 1999;
      expect((await md.quote('BTC/KRW')).price).to.equal(95_123_000);
      expect(fake.requestsTo('/v1/ticker')).to.have.length(1);

      clock += 1;
      expect((await md.quote('BTC/KRW')).price).to.equal(96_000_000);
      expect(fake.requestsTo('/v1/ticker')).to.have.length(2);
    });

    it('shares one request between concurrent calls for the same symbol', async () => {
      const md = market();
      const [a, b] = await Promise.all([md.quote('BTC/KRW'), md.quote('BTC/KRW')]);

      expect(a.price).to.equal(95_123_000);
      expect(b.price).to.equal(95_123_000);
      expect(fake.requestsTo('/v1/ticker')).to.have.length(1);
    });

    it('finds a market whose currency ccxt renames (TON) by the venue ids', async () => {
      fake.listMarket('KRW-TON', '톤', 'TON');
      fake.setTicker('KRW-TON', { price: 3_150, volume24h: 5 });

      const quote = await market().quote('TON/KRW');

      expect(quote.price).to.equal(3_150);
      expect(fake.requestsTo('/v1/ticker')[0]!.query['markets']).to.equal('KRW-TON');
    });

    it('says no_market_data when the ticker has no last price', async () => {
      fake.setTicker('KRW-BTC', { price: 1, volume24h: 0, raw: { trade_price: null } });

      const err = await rejectionOf(market().quote('BTC/KRW'));

      expect(err).to.be.instanceOf(TransientError);
      expect(err.code).to.equal('no_market_data');
    });

    it('refuses a zero price as corrupt data rather than the price ccxt derives from open and change', async () => {
      fake.setTicker('KRW-BTC', { price: 95_000_000, volume24h: 0, raw: { trade_price: 0 } });

      const err = await rejectionOf(market().quote('BTC/KRW'));

      expect(err).to.be.instanceOf(InvariantError);
      expect(err.code).to.equal('corrupt_market_data');
    });

    it('refuses a negative price as corrupt data', async () => {
      fake.setTicker('KRW-BTC', { price: 1, volume24h: 0, raw: { trade_price: -5 } });

      const err = await rejectionOf(market().quote('BTC/KRW'));

      expect(err).to.be.instanceOf(InvariantError);
      expect(err.code).to.equal('corrupt_market_data');
      expect(err.message).to.contain('-5');
    });
  });

  describe('candles', () => {
    it('returns the most recent hourly candles oldest first from /v1/candles/minutes/60', async () => {
      const candles = await market().candles('BTC/KRW', 3);

      expect(candles).to.deep.equal([
        { time: '2026-03-02T03:00:00.000Z', open: 103, high: 105, low: 102, close: 104, volume: 13 },
        { time: '2026-03-02T04:00:00.000Z', open: 104, high: 106, low: 103, close: 105, volume: 14 },
        { time: '2026-03-02T05:00:00.000Z', open: 105, high: 107, low: 104, close: 106, volume: 15 },
      ]);
      const calls = fake.requestsTo('/v1/candles/minutes/60');
      expect(calls).to.have.length(1);
      expect(calls[0]!.query).to.deep.equal({ market: 'KRW-BTC', count: '3' });
    });

    it('asks /v1/candles/days for a daily timeframe', async () => {
      fake.setCandles('KRW-BTC', 'days', [
        { time: '2026-03-01T00:00:00Z', open: 90, high: 99, low: 88, close: 95, volume: 1000 },
        { time: '2026-03-02T00:00:00Z', open: 95, high: 101, low: 94, close: 100, volume: 800 },
      ]);

      const candles = await market({ timeframe: '1d' }).candles('BTC/KRW', 5);

      expect(candles.map((c) => [c.time, c.close])).to.deep.equal([['2026-03-01T00:00:00.000Z', 95], ['2026-03-02T00:00:00.000Z', 100]]);
      expect(fake.requestsTo('/v1/candles/days')).to.have.length(1);
    });

    it('asks for at most 200 candles, Upbit\'s limit per request', async () => {
      fake.setCandles('KRW-BTC', 60, hourly(250));

      const candles = await market().candles('BTC/KRW', 500);

      expect(candles).to.have.length(200);
      expect(fake.requestsTo('/v1/candles/minutes/60')[0]!.query['count']).to.equal('200');
      expect(candles.at(-1)!.time).to.equal(new Date(Date.parse('2026-03-02T00:00:00Z') + 249 * 3600_000).toISOString());
    });

    it('refuses a candle with a zero close as corrupt data', async () => {
      const bad = hourly(2);
      bad[1] = { ...bad[1]!, raw: { trade_price: 0 } };
      fake.setCandles('KRW-BTC', 60, bad);

      const err = await rejectionOf(market().candles('BTC/KRW', 2));

      expect(err).to.be.instanceOf(InvariantError);
      expect(err.code).to.equal('corrupt_market_data');
    });
  });

  describe('timeout', () => {
    it('gives up with market_data_timeout when Upbit is slower than the timeout, and hangs up', async () => {
      const md = market({ timeoutMs: 400 });
      await md.quote('ETH/KRW'); // markets loaded
      fake.slowNext(1, 10_000, '/v1/ticker');

      const err = await rejectionOf(md.quote('BTC/KRW'));

      expect(err).to.be.instanceOf(TransientError);
      expect(err.code).to.equal('market_data_timeout');
      expect(err.details).to.include({ symbol: 'BTC/KRW', timeoutMs: 400 });
      // The slow request was never answered: the client stopped waiting and closed the socket.
      await waitFor(() => fake.requestsTo('/v1/ticker')[1]?.aborted === true);
      expect(fake.requestsTo('/v1/ticker')[1]!.status).to.equal(undefined);
    });

    it('bounds the whole call, not only each request, when every request is a little slow', async () => {
      // Each answer comes well within the timeout; the market list and the ticker together do not.
      fake.slowNext(2, 450);

      const err = await rejectionOf(market({ timeoutMs: 600 }).quote('BTC/KRW'));

      expect(err).to.be.instanceOf(TransientError);
      expect(err.code).to.equal('market_data_timeout');
      expect(fake.requestsTo('/v1/market/all')[0]!.status).to.equal(200);
    });

    it('bounds the market list load too, and loads it on the next call', async () => {
      const md = market({ timeoutMs: 400 });
      fake.slowNext(1, 10_000, '/v1/market/all');

      const err = await rejectionOf(md.candles('BTC/KRW', 2));
      expect(err.code).to.equal('market_data_timeout');
      // A call made while the given-up load is still in flight joins it; once ccxt has hung up
      // (its own timeout), the load has failed and the next call starts a new one.
      await waitFor(() => fake.requestsTo('/v1/market/all')[0]?.aborted === true);

      expect(await md.candles('BTC/KRW', 2)).to.have.length(2);
      expect(fake.requestsTo('/v1/market/all').map((r) => r.status)).to.deep.equal([undefined, 200]);
    });
  });

  describe('errors', () => {
    it('maps a 500 with Upbit\'s error body to market_data_error', async () => {
      const md = market();
      fake.failNext(1, 500, { path: '/v1/ticker', error: { name: 'server_error', message: 'Internal Server Error' } });

      const err = await rejectionOf(md.quote('BTC/KRW'));

      expect(err).to.be.instanceOf(TransientError);
      expect(err.code).to.equal('market_data_error');
      expect(err.details).to.include({ httpStatus: 500, venueError: 'server_error' });
    });

    it('maps a 500 with an HTML page to market_data_error', async () => {
      fake.failNext(1, 500, { path: '/v1/candles/minutes/60', raw: '<html><body>Internal Server Error</body></html>' });

      const err = await rejectionOf(market().candles('BTC/KRW', 2));

      expect(err).to.be.instanceOf(TransientError);
      expect(err.code).to.equal('market_data_error');
    });

    it('maps a 429 with Upbit\'s too_many_requests body (a plain ExchangeError in ccxt) to market_data_rate_limited', async () => {
      fake.failNext(1, 429, { path: '/v1/ticker' });

      const err = await rejectionOf(market().quote('BTC/KRW'));

      expect(err).to.be.instanceOf(TransientError);
      expect(err.code).to.equal('market_data_rate_limited');
      expect(err.details).to.include({ httpStatus: 429, venueError: 'too_many_requests', cause: 'ExchangeError' });
    });

    it('maps a 429 without a JSON body to market_data_rate_limited', async () => {
      fake.failNext(1, 429, { path: '/v1/ticker', raw: 'Too Many Requests' });

      const err = await rejectionOf(market().quote('BTC/KRW'));

      expect(err.code).to.equal('market_data_rate_limited');
    });

    it('maps a 418 (Upbit\'s temporary block) with an unfamiliar error name to market_data_rate_limited', async () => {
      fake.failNext(1, 418, { path: '/v1/ticker', error: { name: 'blocked', message: 'blocked for 60 seconds' } });

      const err = await rejectionOf(market().quote('BTC/KRW'));

      expect(err.code).to.equal('market_data_rate_limited');
      expect(err.details).to.include({ httpStatus: 418 });
    });

    it('serves again after an error without caching it', async () => {
      const md = market();
      fake.failNext(1, 500, { path: '/v1/ticker' });
      await rejectionOf(md.quote('BTC/KRW'));

      expect((await md.quote('BTC/KRW')).price).to.equal(95_123_000);
    });
  });

  describe('unknown symbol', () => {
    it('rejects a market Upbit does not list with NotFoundError unknown_symbol, not a transient error', async () => {
      const err = await rejectionOf(market().quote('NOPE/KRW'));

      expect(err).to.be.instanceOf(NotFoundError);
      expect(err).not.to.be.instanceOf(TransientError);
      expect(err.code).to.equal('unknown_symbol');
      expect(err.message).to.contain('NOPE/KRW');
      expect(fake.requestsTo('/v1/ticker')).to.have.length(0);
    });

    it('finds a market listed after the list was loaded once marketsRefreshMs has passed', async () => {
      const md = market({ marketsRefreshMs: 60_000 });
      await md.quote('BTC/KRW');
      fake.listMarket('KRW-SOL', '솔라나', 'Solana');
      fake.setTicker('KRW-SOL', { price: 210_000, volume24h: 9 });

      clock += 59_999;
      expect((await rejectionOf(md.quote('SOL/KRW'))).code).to.equal('unknown_symbol');
      expect(fake.requestsTo('/v1/market/all')).to.have.length(1);

      clock += 1;
      expect((await md.quote('SOL/KRW')).price).to.equal(210_000);
      expect(fake.requestsTo('/v1/market/all')).to.have.length(2);
    });

    it('maps Upbit\'s 404 "Code not found" for a market delisted since loading to unknown_symbol', async () => {
      const md = market({ cacheMs: 0 });
      await md.quote('ETH/KRW');
      fake.delistMarket('KRW-BTC');

      const err = await rejectionOf(md.quote('BTC/KRW'));

      expect(err).to.be.instanceOf(NotFoundError);
      expect(err.code).to.equal('unknown_symbol');
      expect(fake.requestsTo('/v1/ticker').at(-1)!.status).to.equal(404);
    });
  });

  describe('construction', () => {
    it('refuses an exchange id ccxt does not know with ConfigError', () => {
      expect(() => new CcxtMarketData({ exchange: 'nosuchexchange', timeoutMs: 1000 })).to.throw(ConfigError, 'nosuchexchange');
    });

    it('refuses a timeframe the exchange does not offer with ConfigError', () => {
      expect(() => new CcxtMarketData({ exchange: 'upbit', timeoutMs: 1000, timeframe: '2h' })).to.throw(ConfigError, '2h');
    });
  });
});
