import { expect } from 'chai';
import { buildContext } from '../../src/context/builder';
import type { Candle, MarketData, MarketQuote } from '../../src/context/market-snapshot';
import type { PortfolioSource } from '../../src/context/portfolio-snapshot';
import { RecordedMarket, observationOf, signalContextRecord } from '../../src/context/recorded-market';
import { TransientError } from '../../src/errors';
import type { PortfolioView, Signal } from '../../src/proposal/types';
import { outcome } from '../support/outcome';

const T0 = Date.parse('2026-03-02T09:00:00.000Z');
const signal: Signal = { id: 'sig-1', receivedAt: new Date(T0).toISOString(), source: 'api', symbol: 'BTC/KRW', action: 'buy' };
const book: PortfolioSource = {
  snapshot: (): PortfolioView => ({ cash: 1, equity: 1, dayStartEquity: 1, dailyPnl: 0, realizedPnl: 0, consecutiveLosses: 0, tradingDay: '2026-03-02', positions: [], dust: [] }),
  mark: async () => undefined,
};

/** A market that answers (or fails) as told: the "original run". */
function market(quote: MarketQuote | Error, candles: Candle[] | Error): MarketData {
  return {
    source: 'exchange',
    quote: async () => { if (quote instanceof Error) throw quote; return quote; },
    candles: async (_s, limit) => { if (candles instanceof Error) throw candles; return candles.slice(-limit); },
  };
}

/** Records a context as the loop does, through JSON as the journal holds it, and builds it again from the record. */
async function roundTrip(original: MarketData, candleCount: number) {
  const first = await buildContext(signal, { market: original, portfolio: book, now: () => T0, candleCount });
  const record = JSON.parse(JSON.stringify(signalContextRecord(signal.id, first))) as Record<string, unknown>;
  const seen = observationOf(record);
  if (!seen.ok || !seen.value) throw new Error(`no observation in ${JSON.stringify(record)}`);
  const replayed = new RecordedMarket();
  replayed.set(signal.symbol, seen.value);
  const again = await buildContext(signal, { market: replayed, portfolio: book, now: () => Date.parse(String(record['observedAt'])), candleCount });
  return { first, again, record };
}

describe('RecordedMarket and the signal.context record', () => {
  it('gives the rules exactly what the original market gave them, awkward numbers included', async () => {
    const candles: Candle[] = [
      { time: '2026-03-02T08:58:00.000Z', open: 0.1 + 0.2, high: 1e15, low: 1e-8, close: 123_456_789.123_456_78, volume: 0 },
      { time: '2026-03-02T08:59:00.000Z', open: 2 / 3, high: 5e-324, low: Number.MAX_SAFE_INTEGER, close: 0.000_123_456_789, volume: 1234.5 },
    ];
    const quote: MarketQuote = { symbol: 'BTC/KRW', price: 0.1 + 0.7, at: '2026-03-02T08:59:59.123Z', source: 'exchange', volume24h: 98_765.432_1 };
    const { first, again, record } = await roundTrip(market(quote, candles), 2);
    expect(again.market).to.deep.equal(first.market);
    expect(again.candles).to.deep.equal(first.candles);
    expect(again.now).to.equal(first.now);
    expect(record['candles']).to.deep.equal(candles.map((c) => [c.time, c.open, c.high, c.low, c.close, c.volume]));
  });

  it('records only the candles the rules asked for', async () => {
    const candles = Array.from({ length: 50 }, (_, i): Candle => ({ time: new Date(T0 - (50 - i) * 60_000).toISOString(), open: i + 1, high: i + 1, low: i + 1, close: i + 1, volume: 1 }));
    const { record, again } = await roundTrip(market({ symbol: 'BTC/KRW', price: 50, at: new Date(T0).toISOString(), source: 'replay' }, candles), 21);
    expect(record['candles']).to.have.length(21);
    expect(again.candles.map((c) => c.close)).to.deep.equal(candles.slice(-21).map((c) => c.close));
  });

  it('replays a failed quote and failed candles as the same failures', async () => {
    const { first, again, record } = await roundTrip(market(new TransientError('exchange_timeout', 'upbit did not answer within 3000 ms'), new Error('candles: 502 Bad Gateway')), 21);
    expect(record).to.include({ quoteError: first.marketError, candlesError: first.candlesError });
    expect(again.market).to.equal(null);
    expect(again.marketError).to.equal(first.marketError);
    expect(again.candlesError).to.equal(first.candlesError);
  });

  it('has no market data for a symbol nothing was recorded for', async () => {
    const m = new RecordedMarket();
    const q = await outcome(m.quote('ETH/KRW'));
    expect(q.ok).to.equal(false);
    expect((q as { error: TransientError }).error.code).to.equal('no_market_data');
    expect(await m.candles('ETH/KRW', 10)).to.deep.equal([]);
  });

  it('keeps the candles when a re-check sets only a quote', async () => {
    const m = new RecordedMarket();
    const candle: Candle = { time: '2026-03-02T08:59:00.000Z', open: 1, high: 1, low: 1, close: 1, volume: 1 };
    m.set('BTC/KRW', { quote: { price: 100, at: '2026-03-02T09:00:00.000Z', source: 'exchange' }, candles: [candle] });
    m.set('BTC/KRW', { quote: { price: 101, at: '2026-03-02T09:01:00.000Z', source: 'exchange' } });
    expect((await m.quote('BTC/KRW')).price).to.equal(101);
    expect(await m.candles('BTC/KRW', 5)).to.deep.equal([candle]);
  });

  it('reads a record without market data (an older version) as none, and refuses a malformed one', () => {
    expect(observationOf({ type: 'proposal.recheck', proposalId: 'p-1', note: 'market_data_missing: x' })).to.deep.equal({ ok: true, value: null });
    const bad = observationOf({ type: 'signal.context', quote: { price: 1, at: 'x', source: 'replay' }, candles: [['t', 1, 2, 3, 'four', 5]] });
    expect(bad.ok).to.equal(false);
    expect((bad as { problem: string }).problem).to.match(/^candles\.0\.4: /);
  });
});
