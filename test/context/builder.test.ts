import { expect } from 'chai';
import { buildContext } from '../../src/context/builder';
import type { Candle, MarketData, MarketQuote } from '../../src/context/market-snapshot';
import type { PortfolioSource } from '../../src/context/portfolio-snapshot';
import { TransientError } from '../../src/errors';
import type { PortfolioView, Signal } from '../../src/proposal/types';

const T0 = Date.parse('2026-03-02T09:00:00.000Z');

const signal: Signal = { id: 'sig-1', receivedAt: new Date(T0).toISOString(), source: 'api', symbol: 'BTC/KRW', action: 'buy' };

const candle = (close: number): Candle => ({ time: new Date(T0).toISOString(), open: close, high: close, low: close, close, volume: 1 });

type Behaviour<T> = { kind: 'value'; value: T } | { kind: 'reject'; error: unknown } | { kind: 'throw'; error: unknown } | { kind: 'hang' };

/** A hand-written MarketData whose quote and candles calls each do what the test says. */
class FakeMarket implements MarketData {
  readonly source = 'exchange' as const;
  readonly calls: string[] = [];
  readonly started: string[] = [];
  constructor(private readonly q: Behaviour<MarketQuote>, private readonly c: Behaviour<Candle[]>) {}

  quote(symbol: string): Promise<MarketQuote> {
    this.calls.push(`quote ${symbol}`);
    return this.run(this.q, 'quote');
  }

  candles(symbol: string, limit: number): Promise<Candle[]> {
    this.calls.push(`candles ${symbol} ${limit}`);
    return this.run(this.c, 'candles');
  }

  private run<T>(b: Behaviour<T>, name: string): Promise<T> {
    this.started.push(name);
    switch (b.kind) {
      case 'value': return Promise.resolve(b.value);
      case 'reject': return Promise.reject(b.error);
      case 'throw': throw b.error;
      case 'hang': return new Promise<T>(() => undefined);
    }
  }
}

class FakePortfolio implements PortfolioSource {
  readonly snapshots: number[] = [];
  snapshot(now: number): PortfolioView {
    this.snapshots.push(now);
    return { cash: 1, equity: 1, dayStartEquity: 1, dailyPnl: 0, realizedPnl: 0, consecutiveLosses: 0, tradingDay: '2026-03-02', positions: [], dust: [] };
  }
  async mark(): Promise<void> {}
}

const QUOTE: MarketQuote = { symbol: 'BTC/KRW', price: 100_000_000, at: new Date(T0 - 1_000).toISOString(), source: 'exchange' };
const CANDLES = [candle(1), candle(2)];

describe('buildContext', () => {
  it('joins the quote, candles and portfolio when the market answers', async () => {
    const market = new FakeMarket({ kind: 'value', value: QUOTE }, { kind: 'value', value: CANDLES });
    const portfolio = new FakePortfolio();
    const ctx = await buildContext(signal, { market, portfolio, now: () => T0, candleCount: 21 });
    expect(ctx).to.deep.equal({
      signal,
      market: { price: 100_000_000, at: QUOTE.at, source: 'exchange' },
      marketError: null,
      candles: CANDLES,
      candlesError: null,
      portfolio: portfolio.snapshot(T0),
      now: T0,
    });
    expect(market.calls).to.deep.equal(['quote BTC/KRW', 'candles BTC/KRW 21']);
  });

  it('asks for quote and candles in parallel, before either answers', async () => {
    const market = new FakeMarket({ kind: 'hang' }, { kind: 'hang' });
    const pending = buildContext(signal, { market, portfolio: new FakePortfolio(), now: () => T0, candleCount: 5, timeoutMs: 20 });
    await Promise.resolve();
    await Promise.resolve();
    expect(market.started).to.deep.equal(['quote', 'candles']);
    await pending;
  });

  it('captures a market timeout as marketError and still returns the context', async () => {
    const timeout = new TransientError('market_data_timeout', 'upbit did not answer within 3000 ms for BTC/KRW', { symbol: 'BTC/KRW' });
    const market = new FakeMarket({ kind: 'reject', error: timeout }, { kind: 'value', value: CANDLES });
    const ctx = await buildContext(signal, { market, portfolio: new FakePortfolio(), now: () => T0, candleCount: 21 });
    expect(ctx.market).to.equal(null);
    expect(ctx.marketError).to.equal('upbit did not answer within 3000 ms for BTC/KRW');
    expect(ctx.candles).to.deep.equal(CANDLES);
  });

  it('captures an exchange error on candles as candlesError while keeping the quote', async () => {
    const market = new FakeMarket({ kind: 'value', value: QUOTE }, { kind: 'reject', error: new TransientError('market_data_error', 'upbit market data failed for BTC/KRW: ExchangeError: 500') });
    const ctx = await buildContext(signal, { market, portfolio: new FakePortfolio(), now: () => T0, candleCount: 21 });
    expect(ctx.market?.price).to.equal(100_000_000);
    expect(ctx.candles).to.deep.equal([]);
    expect(ctx.candlesError).to.equal('upbit market data failed for BTC/KRW: ExchangeError: 500');
  });

  it('captures a synchronous throw from the market as data', async () => {
    const market = new FakeMarket({ kind: 'throw', error: new Error('boom') }, { kind: 'throw', error: 'not an Error' });
    const ctx = await buildContext(signal, { market, portfolio: new FakePortfolio(), now: () => T0, candleCount: 21 });
    expect(ctx.marketError).to.equal('boom');
    expect(ctx.candlesError).to.equal('not an Error');
  });

  it('gives up on a market call that hangs past timeoutMs', async () => {
    const market = new FakeMarket({ kind: 'hang' }, { kind: 'value', value: CANDLES });
    const ctx = await buildContext(signal, { market, portfolio: new FakePortfolio(), now: () => T0, candleCount: 21, timeoutMs: 20 });
    expect(ctx.market).to.equal(null);
    expect(ctx.marketError).to.equal('market data: no quote for BTC/KRW within 20 ms');
    expect(ctx.candles).to.deep.equal(CANDLES);
  });

  it('fetches no candles when candleCount is 0', async () => {
    const market = new FakeMarket({ kind: 'value', value: QUOTE }, { kind: 'value', value: CANDLES });
    const ctx = await buildContext(signal, { market, portfolio: new FakePortfolio(), now: () => T0, candleCount: 0 });
    expect(market.calls).to.deep.equal(['quote BTC/KRW']);
    expect(ctx.candles).to.deep.equal([]);
    expect(ctx.candlesError).to.equal(null);
  });

  it('snapshots the portfolio at the time the market data arrived', async () => {
    let t = T0;
    const market = new FakeMarket({ kind: 'value', value: QUOTE }, { kind: 'value', value: CANDLES });
    const portfolio = new FakePortfolio();
    const pending = buildContext(signal, { market, portfolio, now: () => t, candleCount: 2 });
    t = T0 + 250;
    const ctx = await pending;
    expect(ctx.now).to.equal(T0 + 250);
    expect(portfolio.snapshots).to.deep.equal([T0 + 250]);
  });
});
