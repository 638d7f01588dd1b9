import { expect } from 'chai';
import { VenueBooks } from '../../src/portfolio/venue-books';
import type { PortfolioSource } from '../../src/context/portfolio-snapshot';
import type { PortfolioView } from '../../src/proposal/types';
import { isKrxSymbol } from '../../src/symbols';

function book(view: Partial<PortfolioView>, marks: Array<Record<string, number>>, fail = false): PortfolioSource {
  const full: PortfolioView = { cash: 0, equity: 0, dayStartEquity: 0, dailyPnl: 0, realizedPnl: 0, consecutiveLosses: 0, tradingDay: '2026-12-02', positions: [], dust: [], ...view };
  return {
    snapshot: () => full,
    mark: async (prices) => {
      marks.push(prices);
      if (fail) throw new Error('disk full');
    },
  };
}

const position = (symbol: string, quantity: string, marketValue: number) => ({ symbol, quantity, avgPrice: 1, marketValue, markPrice: 1, markedAt: null });

describe('VenueBooks (one book over several live venues)', () => {
  it('sums money, lists every venue\'s positions and dust, and counts the loss streaks together', () => {
    const books = new VenueBooks([
      { venue: 'upbit', trades: (s) => !isKrxSymbol(s), book: book({ cash: 100, equity: 300, dayStartEquity: 310, dailyPnl: -10, realizedPnl: 5, consecutiveLosses: 2, positions: [position('BTC/KRW', '0.1', 200)] }, []) },
      { venue: 'kis', trades: isKrxSymbol, book: book({ cash: 1000, equity: 1500, dayStartEquity: 1400, dailyPnl: 100, realizedPnl: -7, consecutiveLosses: 1, positions: [position('005930/KRW', '5', 500)], dust: [{ symbol: '000660/KRW', quantity: '0', marketValue: 0 }] }, []) },
    ]);
    const v = books.snapshot(Date.now());
    expect(v).to.deep.include({ cash: 1100, equity: 1800, dayStartEquity: 1710, dailyPnl: 90, realizedPnl: -2, consecutiveLosses: 3, tradingDay: '2026-12-02' });
    expect(v.positions.map((p) => p.symbol)).to.deep.equal(['BTC/KRW', '005930/KRW']);
    expect(v.dust.map((d) => d.symbol)).to.deep.equal(['000660/KRW']);
  });

  it('marks each symbol in the book of the venue that trades it, and the others still when one book fails', async () => {
    const upbitMarks: Array<Record<string, number>> = [];
    const kisMarks: Array<Record<string, number>> = [];
    const books = new VenueBooks([
      { venue: 'upbit', trades: (s) => !isKrxSymbol(s), book: book({}, upbitMarks, true) },
      { venue: 'kis', trades: isKrxSymbol, book: book({}, kisMarks) },
    ]);
    let failure: unknown;
    await books.mark({ 'BTC/KRW': 1e8, '005930/KRW': 70_000 }).catch((err: unknown) => { failure = err; });
    expect(upbitMarks).to.deep.equal([{ 'BTC/KRW': 1e8 }]);
    expect(kisMarks).to.deep.equal([{ '005930/KRW': 70_000 }]);
    expect((failure as Error).message).to.equal('disk full');
  });
});
