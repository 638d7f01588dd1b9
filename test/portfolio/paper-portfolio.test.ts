import { expect } from 'chai';
import {
  applyFill,
  checkFill,
  createPaperPortfolio,
  markPrices,
  rollOver,
  tradingDayOf,
  viewPortfolio,
  type FillInput,
  type PaperPortfolioState,
} from '../../src/portfolio/paper-portfolio';
import { InvariantError } from '../../src/errors';

const SEOUL = 'Asia/Seoul';
const NEW_YORK = 'America/New_York';
/** 2026-11-26 10:00 in Seoul. */
const T0 = Date.parse('2026-11-26T01:00:00Z');
const NEXT_DAY = Date.parse('2026-11-27T01:00:00Z');

/**
 * Exact rational numbers over BigInt: the test's own arithmetic, independent of decimal.js.
 * Amounts in the module's state are decimal strings, which are rationals with a power-of-ten
 * denominator, so they can be compared with these exactly.
 */
class Q {
  readonly n: bigint;
  readonly d: bigint;

  constructor(n: bigint, d = 1n) {
    if (d === 0n) throw new Error('zero denominator');
    if (d < 0n) {
      n = -n;
      d = -d;
    }
    const g = gcd(n < 0n ? -n : n, d);
    this.n = n / g;
    this.d = d / g;
  }

  /** From plain decimal text such as `-123.0450`. */
  static of(text: string | number | bigint): Q {
    if (typeof text === 'bigint') return new Q(text);
    const s = String(text);
    const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(s);
    if (!m) throw new Error(`not plain decimal text: ${s}`);
    const frac = m[3] ?? '';
    const n = BigInt(m[2]! + frac) * (m[1] === '-' ? -1n : 1n);
    return new Q(n, 10n ** BigInt(frac.length));
  }

  plus(o: Q): Q {
    return new Q(this.n * o.d + o.n * this.d, this.d * o.d);
  }
  minus(o: Q): Q {
    return new Q(this.n * o.d - o.n * this.d, this.d * o.d);
  }
  times(o: Q): Q {
    return new Q(this.n * o.n, this.d * o.d);
  }
  div(o: Q): Q {
    return new Q(this.n * o.d, this.d * o.n);
  }
  isZero(): boolean {
    return this.n === 0n;
  }
  isNegative(): boolean {
    return this.n < 0n;
  }
  abs(): Q {
    return this.n < 0n ? new Q(-this.n, this.d) : this;
  }
  lte(o: Q): boolean {
    return this.n * o.d <= o.n * this.d;
  }
  /** Plain decimal text with `places` decimals; throws unless the value is exactly that. */
  toDecimal(places: number): string {
    const scale = 10n ** BigInt(places);
    if ((this.n * scale) % this.d !== 0n) throw new Error(`${this} has more than ${places} decimals`);
    const units = (this.n * scale) / this.d;
    const sign = units < 0n ? '-' : '';
    const digits = (units < 0n ? -units : units).toString().padStart(places + 1, '0');
    return `${sign}${digits.slice(0, -places)}.${digits.slice(-places)}`;
  }
  eq(o: Q): boolean {
    return this.n === o.n && this.d === o.d;
  }
  toString(): string {
    return this.d === 1n ? `${this.n}` : `${this.n}/${this.d}`;
  }
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a === 0n ? 1n : a;
}

/** Asserts that a decimal string from the state equals an exact rational. */
function expectExact(actual: string | undefined, expected: Q, what: string): void {
  expect(actual, what).to.be.a('string');
  const got = Q.of(actual!);
  expect(got.eq(expected), `${what}: got ${actual} (${got}), expected ${expected}`).to.equal(true);
}

/** The reference ledger: the accounting rules re-implemented with exact rationals. */
interface RefPosition {
  qty: Q;
  cost: Q;
  /** Σ price × qty over the buys of the held lot (for the weighted average price). */
  priceQty: Q;
  boughtQty: Q;
}

class RefLedger {
  cash: Q;
  fees = Q.of(0);
  realized = Q.of(0);
  streak = 0;
  positions = new Map<string, RefPosition>();
  marks = new Map<string, Q>();

  constructor(cash: string) {
    this.cash = Q.of(cash);
  }

  fill(f: { symbol: string; side: 'buy' | 'sell'; qty: string; price: string; fee: string }): Q | null {
    const qty = Q.of(f.qty);
    const price = Q.of(f.price);
    const fee = Q.of(f.fee);
    const gross = qty.times(price);
    this.fees = this.fees.plus(fee);
    this.marks.set(f.symbol, price);
    const p = this.positions.get(f.symbol);
    if (f.side === 'buy') {
      this.cash = this.cash.minus(gross).minus(fee);
      const next: RefPosition = p
        ? { qty: p.qty.plus(qty), cost: p.cost.plus(gross).plus(fee), priceQty: p.priceQty.plus(gross), boughtQty: p.boughtQty.plus(qty) }
        : { qty, cost: gross.plus(fee), priceQty: gross, boughtQty: qty };
      this.positions.set(f.symbol, next);
      return null;
    }
    if (!p) throw new Error('reference: selling an unknown position');
    const costSold = p.cost.times(qty).div(p.qty);
    const realized = gross.minus(fee).minus(costSold);
    this.cash = this.cash.plus(gross).minus(fee);
    this.realized = this.realized.plus(realized);
    this.streak = realized.isNegative() ? this.streak + 1 : 0;
    const left = p.qty.minus(qty);
    if (left.isZero()) this.positions.delete(f.symbol);
    else this.positions.set(f.symbol, { ...p, qty: left, cost: p.cost.minus(costSold) });
    return realized;
  }

  equity(): Q {
    let e = this.cash;
    for (const [symbol, p] of this.positions) e = e.plus(p.qty.times(this.marks.get(symbol)!));
    return e;
  }
}

function expectMatches(state: PaperPortfolioState, ref: RefLedger, step: string): void {
  expectExact(state.cash, ref.cash, `${step} cash`);
  expectExact(state.feesPaid, ref.fees, `${step} feesPaid`);
  expectExact(state.realizedPnl, ref.realized, `${step} realizedPnl`);
  expect(state.consecutiveLosses, `${step} consecutiveLosses`).to.equal(ref.streak);
  expect(Object.keys(state.positions).sort(), `${step} symbols`).to.deep.equal([...ref.positions.keys()].sort());
  for (const [symbol, p] of ref.positions) {
    const got = state.positions[symbol]!;
    expectExact(got.quantity, p.qty, `${step} ${symbol} quantity`);
    expectExact(got.costBasis, p.cost, `${step} ${symbol} costBasis`);
    expectExact(got.avgPrice, p.priceQty.div(p.boughtQty), `${step} ${symbol} avgPrice`);
  }
  for (const [symbol, price] of ref.marks) expectExact(state.marks[symbol], price, `${step} mark ${symbol}`);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function buy(symbol: string, quantity: number | string, price: number | string, fee: number | string = 0): FillInput {
  return { symbol, side: 'buy', quantity, price, fee };
}

function sell(symbol: string, quantity: number | string, price: number | string, fee: number | string = 0): FillInput {
  return { symbol, side: 'sell', quantity, price, fee };
}

describe('paper-portfolio', () => {
  describe('tradingDayOf', () => {
    it('is still 2026-11-26 in Seoul when it is 14:59:59 UTC', () => {
      expect(tradingDayOf(Date.parse('2026-11-26T14:59:59Z'), SEOUL)).to.equal('2026-11-26');
    });

    it('is 2026-11-27 in Seoul when it is 15:00:00 UTC', () => {
      expect(tradingDayOf(Date.parse('2026-11-26T15:00:00Z'), SEOUL)).to.equal('2026-11-27');
    });

    it('turns at 05:00 UTC in New York before daylight saving starts', () => {
      expect(tradingDayOf(Date.parse('2026-03-08T04:59:59Z'), NEW_YORK)).to.equal('2026-03-07');
      expect(tradingDayOf(Date.parse('2026-03-08T05:00:00Z'), NEW_YORK)).to.equal('2026-03-08');
    });

    it('turns at 04:00 UTC in New York after daylight saving starts', () => {
      expect(tradingDayOf(Date.parse('2026-03-09T03:59:59Z'), NEW_YORK)).to.equal('2026-03-08');
      expect(tradingDayOf(Date.parse('2026-03-09T04:00:00Z'), NEW_YORK)).to.equal('2026-03-09');
    });

    it('turns at 05:00 UTC again in New York after daylight saving ends', () => {
      expect(tradingDayOf(Date.parse('2026-11-02T04:59:59Z'), NEW_YORK)).to.equal('2026-11-01');
      expect(tradingDayOf(Date.parse('2026-11-02T05:00:00Z'), NEW_YORK)).to.equal('2026-11-02');
    });

    it('throws InvariantError when the time zone is not an IANA name', () => {
      expect(() => tradingDayOf(T0, 'Mars/Olympus')).to.throw(InvariantError, /Mars\/Olympus/);
    });

    it('throws InvariantError when now is NaN', () => {
      expect(() => tradingDayOf(Number.NaN, SEOUL)).to.throw(InvariantError);
    });
  });

  describe('createPaperPortfolio', () => {
    it('starts with only cash, the day of now, and that cash as day-start equity', () => {
      const s = createPaperPortfolio(10_000_000, Date.parse('2026-11-26T15:30:00Z'), SEOUL);
      expect(s).to.deep.equal({
        version: 1,
        cash: '10000000',
        positions: {},
        realizedPnl: '0',
        feesPaid: '0',
        consecutiveLosses: 0,
        tradingDay: '2026-11-27',
        dayStartEquity: '10000000',
        marks: {},
        markedAt: {},
      });
    });

    it('throws InvariantError when the initial cash is negative or NaN', () => {
      expect(() => createPaperPortfolio(-1, T0, SEOUL)).to.throw(InvariantError);
      expect(() => createPaperPortfolio(Number.NaN, T0, SEOUL)).to.throw(InvariantError);
    });
  });

  describe('applyFill', () => {
    it('matches an exact reference ledger over buys and partial sells of several symbols with fees', () => {
      const fills = [
        { symbol: 'BTC/KRW', side: 'buy', qty: '0.01', price: '90000000', fee: '450' },
        { symbol: 'ETH/KRW', side: 'buy', qty: '0.5', price: '4000000', fee: '1000' },
        { symbol: 'BTC/KRW', side: 'buy', qty: '0.005', price: '96000000', fee: '240' },
        { symbol: 'BTC/KRW', side: 'sell', qty: '0.006', price: '95000000', fee: '285' }, // win
        { symbol: 'ETH/KRW', side: 'sell', qty: '0.2', price: '3800000', fee: '380' }, // loss
        { symbol: 'XRP/KRW', side: 'buy', qty: '1000', price: '800', fee: '400' },
        { symbol: 'BTC/KRW', side: 'sell', qty: '0.009', price: '91000000', fee: '409.5' }, // loss, closes BTC
        { symbol: 'XRP/KRW', side: 'sell', qty: '300', price: '790', fee: '118.5' }, // loss
        { symbol: 'ETH/KRW', side: 'sell', qty: '0.3', price: '4100000', fee: '615' }, // win, closes ETH
        { symbol: 'BTC/KRW', side: 'buy', qty: '0.00000001', price: '93000000', fee: '0' },
      ] as const;
      const ref = new RefLedger('10000000');
      let state = createPaperPortfolio('10000000', T0, SEOUL);
      fills.forEach((f, i) => {
        const out = applyFill(state, { symbol: f.symbol, side: f.side, quantity: f.qty, price: f.price, fee: f.fee }, T0, SEOUL);
        const expected = ref.fill(f);
        state = out.state;
        const step = `fill ${i + 1}`;
        if (expected === null) expect(out.realizedPnl, step).to.equal(null);
        else expectExact(out.realizedPnl ?? undefined, expected, `${step} realizedPnl of the fill`);
        expectMatches(state, ref, step);
        const view = viewPortfolio(state, T0, SEOUL);
        const eq = ref.equity();
        expect(view.equity, `${step} equity`).to.equal(Number(eq.n) / Number(eq.d));
      });
      // Anchors computed by hand from the same fills.
      expect(state.realizedPnl).to.equal('-7618'); // 17439 − 40780 − 9823.5 − 3238.5 + 28785
      expect(state.consecutiveLosses).to.equal(0);
      expect(state.positions['BTC/KRW']).to.deep.equal({ quantity: '0.00000001', avgPrice: '93000000', costBasis: '0.93' });
    });

    it('matches the reference ledger when a sell takes a third of a position and a later sell the rest', () => {
      const fills = [
        { symbol: 'SOL/KRW', side: 'buy', qty: '3', price: '100001', fee: '7' },
        { symbol: 'SOL/KRW', side: 'sell', qty: '1', price: '100500', fee: '5' },
        { symbol: 'SOL/KRW', side: 'sell', qty: '2', price: '99000', fee: '9' },
      ] as const;
      const ref = new RefLedger('1000000');
      let state = createPaperPortfolio(1_000_000, T0, SEOUL);
      const out = fills.map((f) => {
        const r = applyFill(state, { symbol: f.symbol, side: f.side, quantity: f.qty, price: f.price, fee: f.fee }, T0, SEOUL);
        state = r.state;
        ref.fill(f);
        return state;
      });
      // The third of 300010 is 100003.333…: kept to 20 decimals, half-even.
      expect(out[1]!.positions['SOL/KRW']!.costBasis).to.equal('200006.66666666666666666667');
      expect(out[1]!.realizedPnl).to.equal('491.66666666666666666667'); // 100500 − 5 − 100003.33…
      // A full exit releases the whole remaining cost basis, so the totals come out exact.
      expectMatches(state, ref, 'after full exit');
      expect(state.positions).to.deep.equal({});
    });

    it('books realised PnL equal to the cash it moved once every position is closed, over 300 uneven fills', () => {
      // Deterministic pseudo-random fills with large KRW amounts and thirds that do not terminate.
      let seed = 7;
      const next = (mod: number): number => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return seed % mod;
      };
      const initial = '100000000000';
      let state = createPaperPortfolio(initial, T0, SEOUL);
      const ref = new RefLedger(initial);
      const book = (f: { symbol: string; side: 'buy' | 'sell'; qty: string; price: string; fee: string }): void => {
        state = applyFill(state, { symbol: f.symbol, side: f.side, quantity: f.qty, price: f.price, fee: f.fee }, T0, SEOUL).state;
        ref.fill(f);
      };
      for (let round = 0; round < 200; round++) {
        const symbol = `S${round % 3}/KRW`;
        book({ symbol, side: 'buy', qty: `${next(3)}.${String(next(999) + 1).padStart(3, '0')}`, price: `${next(90_000_000) + 7}`, fee: `${next(1000)}.${next(10)}` });
        if (round % 2 === 1) {
          const third = ref.positions.get(symbol)!.qty.div(Q.of(3));
          const qty = (third.n * 10n ** 8n) / third.d; // floor to 8 decimals, in the test's own integers
          book({ symbol, side: 'sell', qty: new Q(qty, 10n ** 8n).toDecimal(8), price: `${next(90_000_000) + 3}`, fee: `${next(100)}` });
          // Between exits the released cost basis is rounded to 20 decimals, never more.
          const got = Q.of(state.positions[symbol]!.costBasis);
          const diff = got.minus(ref.positions.get(symbol)!.cost);
          expect(diff.abs().lte(new Q(1n, 10n ** 20n)), `round ${round} cost basis off by ${diff}`).to.equal(true);
        }
      }
      for (const [symbol, p] of [...ref.positions]) book({ symbol, side: 'sell', qty: p.qty.toDecimal(8), price: '12345678', fee: '1' });

      expect(state.positions).to.deep.equal({});
      expectExact(state.cash, ref.cash, 'cash');
      expectExact(state.feesPaid, ref.fees, 'feesPaid');
      expectExact(state.realizedPnl, ref.realized, 'realizedPnl');
      expectExact(state.realizedPnl, Q.of(state.cash).minus(Q.of(initial)), 'realizedPnl against the cash change');
    });

    it('keeps exact amounts after 1,000 small buys and 1,000 small sells', () => {
      let state = createPaperPortfolio('1000', T0, SEOUL);
      for (let i = 0; i < 1000; i++) state = applyFill(state, buy('DOGE/KRW', 0.1, 0.2, 0.1), T0, SEOUL).state;
      expect(state.cash).to.equal('880'); // 1000 − 1000 × (0.1 × 0.2 + 0.1)
      expect(state.positions['DOGE/KRW']).to.deep.equal({ quantity: '100', avgPrice: '0.2', costBasis: '120' });
      for (let i = 0; i < 1000; i++) state = applyFill(state, sell('DOGE/KRW', 0.1, 0.3, 0.01), T0, SEOUL).state;
      expect(state.cash).to.equal('900'); // 880 + 1000 × (0.1 × 0.3 − 0.01)
      expect(state.positions).to.deep.equal({});
      expect(state.feesPaid).to.equal('110');
      expect(state.realizedPnl).to.equal('-100'); // 1000 × 0.02 − 120
      const view = viewPortfolio(state, T0, SEOUL);
      expect(view.equity).to.equal(900);
      expect(view.positions).to.deep.equal([]);
    });

    it('lists a holding whose whole sell at the venue\'s price (mark less slippage) is below the minimum as dust, not a position', () => {
      let state = createPaperPortfolio('100000', T0, SEOUL);
      state = applyFill(state, buy('ETH/KRW', '0.001004', '5000000'), T0, SEOUL).state; // worth 5,020 at the mark
      state = applyFill(state, buy('BTC/KRW', '0.0001', '100000000'), T0, SEOUL).state; // worth 10,000
      const plain = viewPortfolio(state, T0, SEOUL, { minOrderNotional: 5000 });
      expect(plain.positions.map((p) => p.symbol)).to.deep.equal(['BTC/KRW', 'ETH/KRW']);
      // With 1 % slippage the venue would price the sell at 4,969.8: below 5,000, so it is dust.
      const slipped = viewPortfolio(state, T0, SEOUL, { minOrderNotional: 5000, sellSlippagePct: 1 });
      expect(slipped.positions.map((p) => p.symbol)).to.deep.equal(['BTC/KRW']);
      expect(slipped.dust).to.deep.equal([{ symbol: 'ETH/KRW', quantity: '0.001004', marketValue: 5020 }]);
      // Dust is still worth what it is worth.
      expect(slipped.equity).to.equal(plain.equity);
    });

    it('counts consecutive losses, resets on a win or break-even, and ignores buys', () => {
      let s = createPaperPortfolio(10_000, T0, SEOUL);
      const step = (f: FillInput): void => {
        s = applyFill(s, f, T0, SEOUL).state;
      };
      step(buy('A/KRW', 10, 100));
      step(sell('A/KRW', 1, 90));
      expect(s.consecutiveLosses).to.equal(1);
      step(buy('A/KRW', 1, 100)); // a buy does not reset
      expect(s.consecutiveLosses).to.equal(1);
      step(sell('A/KRW', 1, 99));
      expect(s.consecutiveLosses).to.equal(2);
      step(sell('A/KRW', 1, 100, 1)); // loss only because of the fee
      expect(s.consecutiveLosses).to.equal(3);
      step(sell('A/KRW', 1, 100)); // break-even resets
      expect(s.consecutiveLosses).to.equal(0);
      step(sell('A/KRW', 1, 50));
      expect(s.consecutiveLosses).to.equal(1);
      step(sell('A/KRW', 1, 150)); // a win resets
      expect(s.consecutiveLosses).to.equal(0);
    });

    it('keeps the loss streak across a day rollover', () => {
      let s = createPaperPortfolio(10_000, T0, SEOUL);
      s = applyFill(s, buy('A/KRW', 10, 100), T0, SEOUL).state;
      s = applyFill(s, sell('A/KRW', 1, 90), T0, SEOUL).state;
      s = applyFill(s, sell('A/KRW', 1, 90), NEXT_DAY, SEOUL).state;
      expect(s.tradingDay).to.equal('2026-11-27');
      expect(s.consecutiveLosses).to.equal(2);
    });

    it('returns the realised PnL of a sell and null for a buy', () => {
      const s = applyFill(createPaperPortfolio(10_000, T0, SEOUL), buy('A/KRW', 2, 100, 2), T0, SEOUL);
      expect(s.realizedPnl).to.equal(null);
      const out = applyFill(s.state, sell('A/KRW', 1, 110, 1), T0, SEOUL);
      expect(out.realizedPnl).to.equal('8'); // 110 − 1 − 202 / 2
    });

    it('does not change the state it was given', () => {
      const start = deepFreeze(applyFill(createPaperPortfolio(10_000, T0, SEOUL), buy('A/KRW', 2, 100), T0, SEOUL).state);
      const before = JSON.stringify(start);
      applyFill(start, buy('A/KRW', 1, 100), NEXT_DAY, SEOUL);
      applyFill(start, sell('A/KRW', 2, 100), NEXT_DAY, SEOUL);
      expect(JSON.stringify(start)).to.equal(before);
    });

    it('rolls over before booking so the day starts at the equity before the fill', () => {
      let s = createPaperPortfolio(10_000, T0, SEOUL);
      s = applyFill(s, buy('A/KRW', 10, 100), T0, SEOUL).state; // cash 9000, 10 @ mark 100
      // Next day the first fill is at 150 (fee 5): equity before it is 10,000; after it 10,495.
      s = applyFill(s, buy('A/KRW', 1, 150, 5), NEXT_DAY, SEOUL).state;
      expect(s.tradingDay).to.equal('2026-11-27');
      expect(s.dayStartEquity).to.equal('10000');
      expect(viewPortfolio(s, NEXT_DAY, SEOUL).dailyPnl).to.equal(495);
    });

    it('stores amounts as plain decimal text that survives JSON', () => {
      const s = applyFill(createPaperPortfolio(1, T0, SEOUL), buy('BTC/KRW', 1e-8, 1e7, 1e-7), T0, SEOUL).state;
      expect(s.positions['BTC/KRW']!.quantity).to.equal('0.00000001');
      expect(s.feesPaid).to.equal('0.0000001');
      expect(s.cash).to.equal('0.8999999');
      expect(JSON.parse(JSON.stringify(s))).to.deep.equal(s);
    });

    describe('invariants', () => {
      const base = applyFill(createPaperPortfolio(1000, T0, SEOUL), buy('A/KRW', 5, 100), T0, SEOUL).state;
      const bad: Array<[string, FillInput]> = [
        ['a NaN quantity', buy('A/KRW', Number.NaN, 1)],
        ['a NaN price', buy('A/KRW', 1, Number.NaN)],
        ['a NaN fee', buy('A/KRW', 1, 1, Number.NaN)],
        ['an infinite price', buy('A/KRW', 1, Number.POSITIVE_INFINITY)],
        ['a negative quantity', sell('A/KRW', -1, 100)],
        ['a zero quantity', buy('A/KRW', 0, 100)],
        ['a negative price', buy('A/KRW', 1, -100)],
        ['a zero price', buy('A/KRW', 1, 0)],
        ['a negative fee', buy('A/KRW', 1, 100, -1)],
        ['a non-numeric quantity string', buy('A/KRW', 'abc', 100)],
        ['a hexadecimal quantity string', buy('A/KRW', '0x10', 1)],
        ['the string NaN as a price', buy('A/KRW', 1, 'NaN')],
        ['an empty symbol', buy('', 1, 1)],
        ['an unknown side', { symbol: 'A/KRW', side: 'short' as never, quantity: 1, price: 1, fee: 0 }],
      ];
      for (const [what, fill] of bad) {
        it(`throws InvariantError when the fill has ${what}`, () => {
          expect(() => applyFill(base, fill, T0, SEOUL)).to.throw(InvariantError);
        });
      }

      it('throws insufficient_cash when a buy costs more than the cash', () => {
        // cash is 500: 5 × 99 + 5 = 500 fits; 5 × 99 + 5.01 does not.
        expect(() => applyFill(base, buy('B/KRW', 5, 99, 5), T0, SEOUL)).to.not.throw();
        expect(() => applyFill(base, buy('B/KRW', 5, 99, 5.01), T0, SEOUL))
          .to.throw(InvariantError)
          .with.property('code', 'insufficient_cash');
      });

      it('throws insufficient_position when a sell is larger than the held quantity', () => {
        expect(() => applyFill(base, sell('A/KRW', 5, 100), T0, SEOUL)).to.not.throw();
        expect(() => applyFill(base, sell('A/KRW', '5.00000001', 100), T0, SEOUL))
          .to.throw(InvariantError)
          .with.property('code', 'insufficient_position');
      });

      it('throws insufficient_position when selling a symbol that is not held', () => {
        expect(() => applyFill(base, sell('Z/KRW', 1, 100), T0, SEOUL))
          .to.throw(InvariantError)
          .with.property('code', 'insufficient_position');
      });

      it('throws InvariantError when the stored cash is corrupt', () => {
        expect(() => applyFill({ ...base, cash: 'NaN' }, buy('A/KRW', 1, 1), T0, SEOUL)).to.throw(InvariantError, /cash/);
      });
    });
  });

  describe('checkFill', () => {
    const base = applyFill(createPaperPortfolio(1000, T0, SEOUL), buy('A/KRW', 5, 100), T0, SEOUL).state;

    it('returns undefined when a buy costs exactly the cash', () => {
      expect(checkFill(base, buy('B/KRW', 5, 99, 5))).to.equal(undefined);
    });

    it('returns insufficient_cash with the amounts when a buy costs more than the cash', () => {
      const r = checkFill(base, buy('B/KRW', 5, 100, 1));
      expect(r?.code).to.equal('insufficient_cash');
      expect(r?.message).to.contain('501').and.contain('500');
    });

    it('returns insufficient_position when a sell exceeds the held quantity', () => {
      expect(checkFill(base, sell('A/KRW', 6, 100))?.code).to.equal('insufficient_position');
    });

    it('returns insufficient_cash when a sell fee exceeds the proceeds plus cash', () => {
      expect(checkFill(base, sell('A/KRW', 1, 1, 502))?.code).to.equal('insufficient_cash');
      expect(checkFill(base, sell('A/KRW', 1, 1, 501))).to.equal(undefined);
    });

    it('throws InvariantError when the fill is malformed', () => {
      expect(() => checkFill(base, buy('A/KRW', Number.NaN, 1))).to.throw(InvariantError);
    });
  });

  describe('markPrices', () => {
    it('updates the given marks and keeps the others', () => {
      let s = createPaperPortfolio(1000, T0, SEOUL);
      s = applyFill(s, buy('A/KRW', 1, 100), T0, SEOUL).state;
      s = applyFill(s, buy('B/KRW', 1, 200), T0, SEOUL).state;
      const marked = markPrices(s, { 'A/KRW': 0.3 }, T0 + 1_000);
      expect(marked.marks).to.deep.equal({ 'A/KRW': '0.3', 'B/KRW': '200' });
      expect(marked.markedAt).to.deep.equal({ 'A/KRW': T0 + 1_000, 'B/KRW': T0 });
      expect(s.marks['A/KRW']).to.equal('100');
      expect(s.markedAt?.['A/KRW']).to.equal(T0);
    });

    it('throws InvariantError when a mark is NaN, zero or negative', () => {
      const s = createPaperPortfolio(1000, T0, SEOUL);
      for (const price of [Number.NaN, 0, -1]) expect(() => markPrices(s, { 'A/KRW': price }, T0)).to.throw(InvariantError);
    });
  });

  describe('rollOver', () => {
    it('sets the day-start equity from the current marks on a new Seoul day', () => {
      let s = createPaperPortfolio(1000, T0, SEOUL);
      s = applyFill(s, buy('A/KRW', 2, 100, 1), T0, SEOUL).state; // cash 799
      s = markPrices(s, { 'A/KRW': 150 }, T0);
      const rolled = rollOver(s, Date.parse('2026-11-26T15:00:00Z'), SEOUL);
      expect(rolled.tradingDay).to.equal('2026-11-27');
      expect(rolled.dayStartEquity).to.equal('1099'); // 799 + 2 × 150
    });

    it('leaves the state alone one second before Seoul midnight', () => {
      const s = markPrices(applyFill(createPaperPortfolio(1000, T0, SEOUL), buy('A/KRW', 2, 100), T0, SEOUL).state, { 'A/KRW': 150 }, T0);
      const same = rollOver(s, Date.parse('2026-11-26T14:59:59Z'), SEOUL);
      expect(same.tradingDay).to.equal('2026-11-26');
      expect(same.dayStartEquity).to.equal('1000');
    });

    it('uses the average price for a position with no mark', () => {
      const s: PaperPortfolioState = {
        ...createPaperPortfolio(100, T0, SEOUL),
        positions: { 'A/KRW': { quantity: '3', avgPrice: '10', costBasis: '30' } },
      };
      expect(rollOver(s, NEXT_DAY, SEOUL).dayStartEquity).to.equal('130');
    });

    it('rolls over at New York midnight across the start of daylight saving', () => {
      const sat = Date.parse('2026-03-07T17:00:00Z'); // Saturday noon EST
      let s = createPaperPortfolio(1000, sat, NEW_YORK);
      s = applyFill(s, buy('A/KRW', 1, 100), sat, NEW_YORK).state;
      s = markPrices(s, { 'A/KRW': 120 }, sat);
      const midnight = Date.parse('2026-03-08T05:00:00Z'); // 00:00 EST Sunday
      const sunday = rollOver(s, midnight, NEW_YORK);
      expect(sunday.tradingDay).to.equal('2026-03-08');
      expect(sunday.dayStartEquity).to.equal('1020');
      const marked = markPrices(sunday, { 'A/KRW': 90 }, midnight);
      // 23:59:59 EDT Sunday is 03:59:59 UTC Monday: still Sunday, no rollover.
      expect(rollOver(marked, Date.parse('2026-03-09T03:59:59Z'), NEW_YORK).dayStartEquity).to.equal('1020');
      const monday = rollOver(marked, Date.parse('2026-03-09T04:00:00Z'), NEW_YORK);
      expect(monday.tradingDay).to.equal('2026-03-09');
      expect(monday.dayStartEquity).to.equal('990');
    });

    it('does not move back to an earlier day when the clock steps back', () => {
      const s = createPaperPortfolio(1000, NEXT_DAY, SEOUL);
      expect(rollOver(s, T0, SEOUL)).to.equal(s);
    });
  });

  describe('viewPortfolio', () => {
    it('gives numbers, sorted positions, market values at the marks and the daily PnL', () => {
      let s = createPaperPortfolio(10_000, T0, SEOUL);
      s = applyFill(s, buy('ZRX/KRW', 10, 50, 1), T0, SEOUL).state;
      s = applyFill(s, buy('ADA/KRW', 4, 250, 1), T0, SEOUL).state;
      s = markPrices(s, { 'ZRX/KRW': 40, 'ADA/KRW': 260 }, T0);
      const v = viewPortfolio(s, T0, SEOUL);
      expect(v).to.deep.equal({
        cash: 8498,
        equity: 9938, // 8498 + 400 + 1040
        dayStartEquity: 10_000,
        dailyPnl: -62,
        realizedPnl: 0,
        consecutiveLosses: 0,
        tradingDay: '2026-11-26',
        positions: [
          { symbol: 'ADA/KRW', quantity: '4', avgPrice: 250, marketValue: 1040, markPrice: 260, markedAt: T0 },
          { symbol: 'ZRX/KRW', quantity: '10', avgPrice: 50, marketValue: 400, markPrice: 40, markedAt: T0 },
        ],
        dust: [],
      });
    });

    it('values a position with no mark at its average price', () => {
      const s: PaperPortfolioState = {
        ...createPaperPortfolio(100, T0, SEOUL),
        positions: { 'A/KRW': { quantity: '3', avgPrice: '10', costBasis: '30' } },
      };
      const position = viewPortfolio(s, T0, SEOUL).positions[0]!;
      expect(position.marketValue).to.equal(30);
      expect(position).to.include({ markPrice: 10, markedAt: null });
    });

    it('is rolled over to now with a zero daily PnL at the start of a new day', () => {
      let s = createPaperPortfolio(1000, T0, SEOUL);
      s = applyFill(s, buy('A/KRW', 2, 100), T0, SEOUL).state;
      s = markPrices(s, { 'A/KRW': 80 }, T0);
      expect(viewPortfolio(s, T0, SEOUL).dailyPnl).to.equal(-40);
      const v = viewPortfolio(s, NEXT_DAY, SEOUL);
      expect(v.tradingDay).to.equal('2026-11-27');
      expect(v.dayStartEquity).to.equal(960);
      expect(v.dailyPnl).to.equal(0);
    });
  });
});
