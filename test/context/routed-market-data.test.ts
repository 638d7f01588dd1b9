import { expect } from 'chai';
import { RoutedMarketData, UnquotedMarket } from '../../src/context/routed-market-data';
import type { MarketData } from '../../src/context/market-snapshot';
import { isKrxSymbol } from '../../src/symbols';

function source(name: string, asked: string[]): MarketData {
  return {
    source: 'exchange',
    quote: async (symbol) => { asked.push(`${name} quote ${symbol}`); return { symbol, price: 1, at: new Date(0).toISOString(), source: 'exchange' }; },
    candles: async (symbol) => { asked.push(`${name} candles ${symbol}`); return []; },
  };
}

describe('RoutedMarketData', () => {
  it('asks the source that claims a symbol, and the default source for every other', async () => {
    const asked: string[] = [];
    const market = new RoutedMarketData(source('ccxt', asked), [{ claims: isKrxSymbol, data: source('kis', asked) }]);
    await market.quote('005930/KRW');
    await market.quote('BTC/KRW');
    await market.candles('00088K/KRW', 10);
    expect(asked).to.deep.equal(['kis quote 005930/KRW', 'ccxt quote BTC/KRW', 'kis candles 00088K/KRW']);
  });

  it('answers a symbol no configured source quotes as unknown, with the reason, never from the default source', async () => {
    const asked: string[] = [];
    const market = new RoutedMarketData(source('ccxt', asked), [{ claims: isKrxSymbol, data: new UnquotedMarket('KRX stocks are quoted by KIS: set KIS_APP_KEY') }]);
    const err = await market.quote('005930/KRW').then(() => undefined, (e: { code: string; message: string }) => e);
    expect(err?.code).to.equal('unknown_symbol');
    expect(err?.message).to.include('KIS_APP_KEY');
    expect(asked).to.deep.equal([]);
  });
});
