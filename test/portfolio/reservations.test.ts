import { expect } from 'chai';
import fc from 'fast-check';
import { ReservationBook, type Reservation } from '../../src/portfolio/reservations';
import type { PortfolioView } from '../../src/proposal/types';

const view = (over: Partial<PortfolioView> = {}): PortfolioView => ({
  cash: 1_000_000, equity: 1_500_000, dayStartEquity: 1_500_000, dailyPnl: 0, realizedPnl: 0, consecutiveLosses: 0, tradingDay: '2026-11-26',
  positions: [{ symbol: 'AAA/KRW', quantity: '5000', avgPrice: 100, marketValue: 500_000, markPrice: 100, markedAt: null }], dust: [], ...over,
});

/** A position of the reference, in plain numbers. */
interface RefPosition { symbol: string; quantity: number; marketValue: number }

/** The same result reservation by reservation (what the book must equal, whatever their number), in numbers. */
function oneByOne(v: PortfolioView, reservations: Reservation[]): { cash: number; positions: RefPosition[] } {
  const positions: RefPosition[] = v.positions.map((p) => ({ symbol: p.symbol, quantity: Number(p.quantity), marketValue: p.marketValue }));
  let cash = v.cash;
  for (const r of reservations) {
    const held = positions.find((p) => p.symbol === r.symbol);
    const quantity = r.notional / r.price;
    if (r.side === 'buy') {
      cash -= r.notional;
      if (held) {
        held.quantity += quantity;
        held.marketValue += r.notional;
      } else positions.push({ symbol: r.symbol, quantity, marketValue: r.notional });
    } else if (held) {
      cash += r.notional;
      held.quantity = Math.max(0, held.quantity - quantity);
      held.marketValue = Math.max(0, held.marketValue - r.notional);
    }
  }
  return { cash, positions: positions.filter((p) => p.quantity > 0).sort((a, b) => a.symbol.localeCompare(b.symbol)) };
}

describe('ReservationBook', () => {
  it('applies every reservation but the asking proposal\'s own', () => {
    const book = new ReservationBook();
    for (const id of ['a', 'b']) book.admit(id);
    book.reserve('a', { symbol: 'BBB/KRW', side: 'buy', notional: 200_000, price: 50 });
    book.reserve('b', { symbol: 'AAA/KRW', side: 'sell', notional: 100_000, price: 100 });
    const forA = book.applyTo(view(), 'a');
    expect(forA.cash).to.equal(1_100_000);
    expect(forA.positions.map((p) => [p.symbol, p.quantity])).to.deep.equal([['AAA/KRW', '4000']]);
    const forC = book.applyTo(view(), 'c');
    expect(forC.cash).to.equal(900_000);
    expect(forC.positions.map((p) => [p.symbol, p.quantity])).to.deep.equal([['AAA/KRW', '4000'], ['BBB/KRW', '4000']]);
  });

  it('reserves nothing for a proposal that is not live, and gives everything back on close', () => {
    const book = new ReservationBook();
    expect(book.reserve('x', { symbol: 'BBB/KRW', side: 'buy', notional: 1, price: 1 })).to.equal(false);
    book.admit('x');
    expect(book.reserve('x', { symbol: 'BBB/KRW', side: 'buy', notional: 1, price: 1 })).to.equal(true);
    book.close('x');
    expect(book.size).to.equal(0);
    expect(book.reserve('x', { symbol: 'BBB/KRW', side: 'buy', notional: 1, price: 1 })).to.equal(false);
    expect(book.applyTo(view(), 'y')).to.deep.equal(view());
  });

  it('equals applying the live reservations one by one, after any sequence of reserves and releases', () => {
    const reservation = fc.record({
      symbol: fc.constantFrom('AAA/KRW', 'BBB/KRW', 'CCC/KRW'),
      side: fc.constantFrom<'buy' | 'sell'>('buy', 'buy', 'sell'),
      notional: fc.integer({ min: 1, max: 50_000 }),
      price: fc.constantFrom(50, 100, 250),
    });
    const step = fc.oneof(fc.record({ op: fc.constant('reserve' as const), id: fc.integer({ min: 0, max: 9 }), r: reservation }), fc.record({ op: fc.constant('release' as const), id: fc.integer({ min: 0, max: 9 }) }));
    fc.assert(fc.property(fc.array(step, { maxLength: 40 }), fc.integer({ min: 0, max: 10 }), (steps, asking) => {
      const book = new ReservationBook();
      const held = new Map<string, Reservation>();
      for (let i = 0; i < 10; i++) book.admit(String(i));
      for (const s of steps) {
        if (s.op === 'reserve') {
          book.reserve(String(s.id), s.r);
          if (!held.has(String(s.id))) held.set(String(s.id), s.r);
        } else {
          book.release(String(s.id));
          held.delete(String(s.id));
        }
      }
      const others = [...held.entries()].filter(([id]) => id !== String(asking)).map(([, r]) => r);
      const got = book.applyTo(view(), String(asking));
      const want = oneByOne(view(), others.sort((a, b) => Number(b.side === 'buy') - Number(a.side === 'buy')));
      expect(got.cash).to.be.closeTo(want.cash, 1e-6);
      expect(got.positions.map((p) => p.symbol)).to.deep.equal(want.positions.map((p) => p.symbol));
      got.positions.forEach((p, i) => expect(Number(p.quantity)).to.be.closeTo(want.positions[i]!.quantity, 1e-6));
    }), { numRuns: 300 });
  });
});
