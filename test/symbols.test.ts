import { expect } from 'chai';
import { isKrxSymbol, normaliseSymbol, toUpbitMarket } from '../src/symbols';

describe('normaliseSymbol', () => {
  const accepted: Array<[string, string]> = [
    ['KRW-BTC', 'BTC/KRW'],
    ['BTC/KRW', 'BTC/KRW'],
    ['BTCKRW', 'BTC/KRW'],
    ['UPBIT:BTCKRW', 'BTC/KRW'],
    ['btc_krw', 'BTC/KRW'],
    ['  krw-eth  ', 'ETH/KRW'],
    ['upbit:krw-btc', 'BTC/KRW'],
    ['BINANCE:BTCUSDT', 'BTC/USDT'],
    ['BINANCE:BTCUSDT.P', 'BTC/USDT'],
    ['ETHUSDT', 'ETH/USDT'],
    ['USDTKRW', 'USDT/KRW'],
    ['BTCUSD', 'BTC/USD'],
    ['BTCBUSD', 'BTC/BUSD'],
    ['BTC-ETH', 'ETH/BTC'],
    ['ETH-BTC', 'ETH/BTC'],
    ['BTC-USDT', 'BTC/USDT'],
    ['USDT-BTC', 'BTC/USDT'],
    ['XRP-DOGE', 'DOGE/XRP'],
    ['1INCH/KRW', '1INCH/KRW'],
    // KRX stocks: six-character codes, bare or under KRX (and its markets).
    ['005930', '005930/KRW'],
    ['KRX:005930', '005930/KRW'],
    ['kosdaq:035720', '035720/KRW'],
    ['krx:0001a0', '0001A0/KRW'],
    ['00088K', '00088K/KRW'],
    ['005930/KRW', '005930/KRW'],
  ];
  for (const [raw, canonical] of accepted) {
    it(`returns ${canonical} when given ${JSON.stringify(raw)}`, () => {
      expect(normaliseSymbol(raw)).to.equal(canonical);
    });
  }

  const refused = [
    '', '   ', 'BTC', 'KRW', 'B@D', 'BTC/', '/KRW', 'BTC//KRW', 'BTC-KRW-ETH', 'KRW-KRW', 'BTC/BTC',
    'XYZABC', 'BAD PREFIX:BTCKRW', 'A:B:BTCKRW', 'BTC KRW', 'BTC/KRW!', 'ABCDEFGHIJKLMNOP/KRW', 'ÄBC/KRW',
  ];
  for (const raw of refused) {
    it(`returns undefined when given ${JSON.stringify(raw)}`, () => {
      expect(normaliseSymbol(raw)).to.equal(undefined);
    });
  }

  it('accepts an asset of 15 characters when the limit is 15', () => {
    expect(normaliseSymbol('ABCDEFGHIJKLMNO/KRW')).to.equal('ABCDEFGHIJKLMNO/KRW');
  });

  it('is idempotent when given its own output', () => {
    for (const [raw] of accepted) {
      const once = normaliseSymbol(raw)!;
      expect(normaliseSymbol(once), raw).to.equal(once);
    }
  });
});

describe('toUpbitMarket', () => {
  it('writes QUOTE-BASE when given a canonical symbol', () => {
    expect(toUpbitMarket('BTC/KRW')).to.equal('KRW-BTC');
    expect(toUpbitMarket('ETH/BTC')).to.equal('BTC-ETH');
  });

  it('round-trips through normaliseSymbol when given an Upbit market code', () => {
    for (const market of ['KRW-BTC', 'KRW-ETH', 'BTC-ETH', 'USDT-BTC']) {
      expect(toUpbitMarket(normaliseSymbol(market)!)).to.equal(market);
    }
  });
});

describe('isKrxSymbol', () => {
  it('is true for a KRX code quoted in KRW and false for crypto, other quotes and codes under another exchange', () => {
    expect(['005930/KRW', '0001A0/KRW'].map(isKrxSymbol)).to.deep.equal([true, true]);
    expect(['BTC/KRW', '1INCH/KRW', '005930/USD', '00593/KRW'].map(isKrxSymbol)).to.deep.equal([false, false, false, false]);
    expect(normaliseSymbol('UPBIT:005930')).to.equal(undefined);
  });
});
