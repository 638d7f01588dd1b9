import { expect } from 'chai';
import fc from 'fast-check';
import { Dec } from '../../src/amounts';
import { InvariantError } from '../../src/errors';
import { reconcileBook, type VenueHoldings } from '../../src/portfolio/book-reconcile';
import { applyFill, checkFill, createPaperPortfolio, markPrices, type FillInput, type PaperPortfolioState } from '../../src/portfolio/paper-portfolio';

const SEOUL = 'Asia/Seoul';
/** 2026-11-26 10:00 in Seoul. */
const T0 = Date.parse('2026-11-26T01:00:00Z');
const LATER = T0 + 3_600_000;
const NEXT_DAY = Date.parse('2026-11-27T01:00:00Z');

/** A book with `cash`, after `fills` at T0, with `marks`. */
function book(cash: string, fills: FillInput[] = [], marks: Record<string, string> = {}): PaperPortfolioState {
  let state = createPaperPortfolio(cash, T0, SEOUL);
  for (const f of fills) state = applyFill(state, f, T0, SEOUL).state;
  return markPrices(state, marks, T0);
}

/** The venue holding `cash` and `positions` (symbol → quantity). */
function venue(cash: string, positions: Record<string, string> = {}): VenueHoldings {
  return { quoteCurrency: 'KRW', cash, positions: Object.entries(positions).map(([symbol, quantity]) => ({ symbol, quantity })) };
}

/** equity − dayStartEquity on the book's rule (cash + Σ quantity × (mark, else avg price)), exact. */
function dailyPnl(state: PaperPortfolioState): string {
  let equity = new Dec(state.cash);
  for (const [symbol, p] of Object.entries(state.positions)) equity = equity.plus(new Dec(p.quantity).times(state.marks[symbol] ?? p.avgPrice));
  return equity.minus(state.dayStartEquity).toFixed();
}

/** The fields an adjustment must never move. */
const pnlFields = (s: PaperPortfolioState) => ({ realizedPnl: s.realizedPnl, feesPaid: s.feesPaid, consecutiveLosses: s.consecutiveLosses, fills: s.fills, marks: s.marks });

const buy = (symbol: string, quantity: string, price: string, fee = '0'): FillInput => ({ symbol, side: 'buy', quantity, price, fee });
const sell = (symbol: string, quantity: string, price: string, fee = '0'): FillInput => ({ symbol, side: 'sell', quantity, price, fee });

describe('reconcileBook', () => {
  it('returns the same state and no adjustments when the book equals the venue', () => {
    const state = book('1000', [buy('BTC/KRW', '2', '100', '1')], { 'BTC/KRW': '110' });
    const out = reconcileBook(state, venue('799', { 'BTC/KRW': '2' }), NEXT_DAY, SEOUL);
    expect(out.state).to.equal(state);
    expect(out.adjustments).to.deep.equal([]);
  });

  it('ignores a venue holding of 0 when the book holds none', () => {
    const state = book('1000');
    expect(reconcileBook(state, venue('1000', { 'ETH/KRW': '0' }), LATER, SEOUL).state).to.equal(state);
  });

  it('counts more cash as a deposit that leaves daily PnL, realised PnL, fees and the loss streak alone', () => {
    const state = book('1000', [buy('BTC/KRW', '2', '100', '1'), sell('BTC/KRW', '1', '90', '0.5')], { 'BTC/KRW': '95' });
    const before = dailyPnl(state);
    const { state: after, adjustments } = reconcileBook(state, venue('989', { 'BTC/KRW': '1' }), LATER, SEOUL);
    // Book cash: 1000 − 201 + 89.5 = 888.5; the venue holds 100.5 more.
    expect(adjustments).to.have.length(1);
    expect(adjustments[0]).to.include({ kind: 'deposit', cashDelta: '100.5', value: '100.5', valuedBy: 'cash' });
    expect(adjustments[0]!.symbol).to.equal(undefined);
    expect(adjustments[0]!.cause).to.contain('100.5 KRW more cash').and.contain('deposit');
    expect(after.cash).to.equal('989');
    expect(new Dec(after.dayStartEquity).minus(state.dayStartEquity).toFixed()).to.equal('100.5');
    expect(dailyPnl(after)).to.equal(before);
    expect(pnlFields(after)).to.deep.equal(pnlFields(state));
    expect(after.positions).to.deep.equal(state.positions);
  });

  it('counts less cash as a withdrawal', () => {
    const state = book('1000');
    const { state: after, adjustments } = reconcileBook(state, venue('250.25'), LATER, SEOUL);
    expect(adjustments).to.deep.equal([{
      kind: 'withdrawal', cashDelta: '-749.75', value: '-749.75', valuedBy: 'cash',
      cause: 'the venue holds 749.75 KRW less cash than the book, with no trade of ours to explain it: counted as a withdrawal',
    }]);
    expect(after.dayStartEquity).to.equal('250.25');
    expect(dailyPnl(after)).to.equal('0');
  });

  it('counts more coins with no cash change as a transfer in at the mark, raising the cost basis by that value', () => {
    const state = book('1000', [buy('BTC/KRW', '2', '100', '1')], { 'BTC/KRW': '120' });
    const before = dailyPnl(state);
    const { state: after, adjustments } = reconcileBook(state, venue('799', { 'BTC/KRW': '3' }), LATER, SEOUL);
    expect(adjustments).to.have.length(1);
    expect(adjustments[0]).to.include({ kind: 'transfer_in', symbol: 'BTC/KRW', quantityDelta: '1', value: '120', valuedBy: 'mark' });
    expect(adjustments[0]!.cashDelta).to.equal(undefined);
    expect(adjustments[0]!.cause).to.contain('1 BTC more').and.contain('coins moved in').and.contain('mark 120');
    // cost 201 + 120; avg price (2 × 100 + 120) / 3
    expect(after.positions['BTC/KRW']).to.deep.equal({ quantity: '3', avgPrice: '106.66666666666666666667', costBasis: '321' });
    expect(dailyPnl(after)).to.equal(before);
    expect(pnlFields(after)).to.deep.equal(pnlFields(state));
  });

  it('records coins of a symbol with no mark and no trade at cost basis 0 and says so', () => {
    const state = book('1000');
    const { state: after, adjustments } = reconcileBook(state, venue('1000', { 'XRP/KRW': '50' }), LATER, SEOUL);
    expect(adjustments[0]).to.include({ kind: 'transfer_in', symbol: 'XRP/KRW', quantityDelta: '50', value: '0', valuedBy: 'unpriced' });
    expect(adjustments[0]!.cause).to.contain('cost basis 0');
    expect(after.positions['XRP/KRW']).to.deep.equal({ quantity: '50', avgPrice: '0', costBasis: '0' });
    expect(dailyPnl(after)).to.equal('0');
  });

  it('takes the proportional cost basis away on a transfer out, and the whole basis when none is left', () => {
    const state = book('1000', [buy('ETH/KRW', '3', '10', '1'), buy('BTC/KRW', '1', '100')], { 'ETH/KRW': '12', 'BTC/KRW': '100' });
    const before = dailyPnl(state);
    const { state: after, adjustments } = reconcileBook(state, venue(state.cash, { 'ETH/KRW': '2' }), LATER, SEOUL);
    expect(adjustments.map((a) => [a.kind, a.symbol, a.quantityDelta, a.value, a.valuedBy])).to.deep.equal([
      ['transfer_out', 'BTC/KRW', '-1', '-100', 'mark'],
      ['transfer_out', 'ETH/KRW', '-1', '-12', 'mark'],
    ]);
    expect(after.positions['BTC/KRW']).to.equal(undefined);
    // 31 × 1 / 3 = 10.333…, half-even to 20 places, leaves 20.666…67; the avg price stays.
    expect(after.positions['ETH/KRW']).to.deep.equal({ quantity: '2', avgPrice: '10', costBasis: '20.66666666666666666667' });
    expect(dailyPnl(after)).to.equal(before);
  });

  it('pairs more coins with less cash into one outside trade, valued at the mark, leaving daily PnL alone', () => {
    const state = book('1000', [buy('BTC/KRW', '1', '100')], { 'BTC/KRW': '110' });
    const before = dailyPnl(state);
    // Bought 2 more for 230 outside (115 each), while the mark is 110.
    const { state: after, adjustments } = reconcileBook(state, venue('670', { 'BTC/KRW': '3' }), LATER, SEOUL);
    expect(adjustments).to.have.length(1);
    expect(adjustments[0]).to.include({ kind: 'outside_trade', symbol: 'BTC/KRW', quantityDelta: '2', cashDelta: '-230', value: '220', valuedBy: 'mark' });
    expect(adjustments[0]!.cause).to.contain('bought outside this service at about 115 KRW each').and.contain('mark 110');
    expect(after.positions['BTC/KRW']).to.deep.equal({ quantity: '3', avgPrice: '106.66666666666666666667', costBasis: '320' });
    expect(after.cash).to.equal('670');
    expect(dailyPnl(after)).to.equal(before);
    expect(pnlFields(after)).to.deep.equal(pnlFields(state));
  });

  it('values an outside buy of a symbol with no mark at the cash it cost', () => {
    const state = book('1000');
    const { state: after, adjustments } = reconcileBook(state, venue('900', { 'SOL/KRW': '3' }), LATER, SEOUL);
    expect(adjustments[0]).to.include({ kind: 'outside_trade', quantityDelta: '3', cashDelta: '-100', value: '100', valuedBy: 'trade_price' });
    expect(after.positions['SOL/KRW']).to.deep.equal({ quantity: '3', avgPrice: '33.33333333333333333333', costBasis: '100' });
  });

  it('pairs fewer coins with more cash into an outside sale that realises no PnL', () => {
    const state = book('1000', [buy('BTC/KRW', '4', '100', '2')], { 'BTC/KRW': '150' });
    const before = dailyPnl(state);
    const { state: after, adjustments } = reconcileBook(state, venue('898', { 'BTC/KRW': '3' }), LATER, SEOUL);
    expect(adjustments).to.have.length(1);
    expect(adjustments[0]).to.include({ kind: 'outside_trade', quantityDelta: '-1', cashDelta: '300', value: '-150', valuedBy: 'mark' });
    expect(adjustments[0]!.cause).to.contain('sold outside this service at about 300 KRW each');
    expect(after.positions['BTC/KRW']).to.deep.equal({ quantity: '3', avgPrice: '100', costBasis: '301.5' });
    expect(after.realizedPnl).to.equal('0');
    expect(dailyPnl(after)).to.equal(before);
  });

  it('keeps the cash apart as a deposit or withdrawal when several symbols moved against it', () => {
    const state = book('1000', [], { 'A/KRW': '1', 'B/KRW': '2' });
    const { adjustments } = reconcileBook(state, venue('900', { 'A/KRW': '10', 'B/KRW': '5' }), LATER, SEOUL);
    expect(adjustments.map((a) => a.kind)).to.deep.equal(['withdrawal', 'transfer_in', 'transfer_in']);
    expect(adjustments[0]!.cause).to.contain('A/KRW, B/KRW moved against it');
  });

  it('pairs the cash with the one coin that moved against it and makes the others transfers', () => {
    // Cash −100: A came in (the trade), B went out (moved with the cash's sign: a transfer).
    const both = reconcileBook(book('1000', [buy('B/KRW', '5', '2')], { 'A/KRW': '1', 'B/KRW': '2' }), venue('890', { 'A/KRW': '100', 'B/KRW': '1' }), LATER, SEOUL);
    expect(both.adjustments.map((a) => [a.kind, a.symbol])).to.deep.equal([['outside_trade', 'A/KRW'], ['transfer_out', 'B/KRW']]);
  });

  it('rolls over to the day of now before adjusting, so the new day starts from the equity before the deposit', () => {
    const state = book('1000', [buy('BTC/KRW', '1', '100')], { 'BTC/KRW': '150' });
    const { state: after } = reconcileBook(state, venue('1100', { 'BTC/KRW': '1' }), NEXT_DAY, SEOUL);
    expect(after.tradingDay).to.equal('2026-11-27');
    // Rolled: 900 + 150 = 1050, then the deposit of 200.
    expect(after.dayStartEquity).to.equal('1250');
    expect(dailyPnl(after)).to.equal('0');
  });

  it('stays exact with huge quantities and many decimals', () => {
    const state = book('987654321012.12345678', [buy('DOGE/KRW', '1215000011.05650013', '0.00012345', '0.00000001')], { 'DOGE/KRW': '0.00012347' });
    const before = dailyPnl(state);
    // The same again, bought outside for 150 000.00000001.
    const venueCash = new Dec(state.cash).minus('150000.00000001').toFixed();
    const { state: after, adjustments } = reconcileBook(state, venue(venueCash, { 'DOGE/KRW': '2430000022.11300026' }), LATER, SEOUL);
    expect(after.cash).to.equal(venueCash);
    expect(after.positions['DOGE/KRW']!.quantity).to.equal('2430000022.11300026');
    expect(adjustments).to.have.length(1);
    expect(adjustments[0]).to.include({ kind: 'outside_trade', quantityDelta: '1215000011.05650013', cashDelta: '-150000.00000001' });
    // 1215000011.05650013 × 0.00012347, to the last place
    expect(adjustments[0]!.value).to.equal('150016.0513651460710511');
    expect(after.positions['DOGE/KRW']!.costBasis).to.equal(new Dec(state.positions['DOGE/KRW']!.costBasis).plus('150016.0513651460710511').toFixed());
    expect(dailyPnl(after)).to.equal(before);
  });

  it('refuses balances with negative cash, a negative or unreadable quantity, or a symbol twice', () => {
    const state = book('1000');
    const refused = (v: VenueHoldings) => expect(() => reconcileBook(state, v, LATER, SEOUL)).to.throw(InvariantError);
    refused(venue('-1'));
    refused(venue('1000', { 'A/KRW': '-2' }));
    refused(venue('1000', { 'A/KRW': 'NaN' }));
    refused({ quoteCurrency: 'KRW', cash: '1000', positions: [{ symbol: 'A/KRW', quantity: '1' }, { symbol: 'A/KRW', quantity: '2' }] });
  });

  it('makes the book equal the venue exactly and never moves PnL, fees or the loss streak (property)', () => {
    const symbols = ['A/KRW', 'B/KRW', 'C/KRW'];
    const decimal = (max: bigint, scale: number) => fc.bigInt({ min: 0n, max }).map((n) => new Dec(n.toString()).div(new Dec(10).pow(scale)).toFixed());
    const positive = (max: bigint, scale: number) => fc.bigInt({ min: 1n, max }).map((n) => new Dec(n.toString()).div(new Dec(10).pow(scale)).toFixed());
    const fillArb = fc.record({
      symbol: fc.constantFrom(...symbols), side: fc.constantFrom<'buy' | 'sell'>('buy', 'sell'),
      quantity: positive(10n ** 14n, 8), price: positive(10n ** 10n, 4), fee: decimal(10n ** 6n, 4),
    });
    const arb = fc.record({
      cash: decimal(10n ** 18n, 8),
      fills: fc.array(fillArb, { maxLength: 8 }),
      marked: fc.subarray(symbols),
      marks: fc.tuple(positive(10n ** 12n, 6), positive(10n ** 12n, 6), positive(10n ** 12n, 6)),
      venueCash: fc.option(decimal(10n ** 18n, 8), { nil: undefined }),
      venueQuantities: fc.tuple(...symbols.map(() => fc.option(decimal(10n ** 17n, 8), { nil: undefined }))),
    });
    fc.assert(fc.property(arb, (input) => {
      let state = createPaperPortfolio(input.cash, T0, SEOUL);
      for (const f of input.fills) if (!checkFill(state, f)) state = applyFill(state, f, T0, SEOUL).state;
      state = markPrices(state, Object.fromEntries(input.marked.map((s) => [s, input.marks[symbols.indexOf(s)]!])), T0);
      // undefined: the venue agrees with the book there.
      const target = venue(input.venueCash ?? state.cash, Object.fromEntries(symbols.map((s, i) => [s, input.venueQuantities[i] ?? state.positions[s]?.quantity ?? '0'])));
      const before = dailyPnl(state);
      const { state: after, adjustments } = reconcileBook(state, target, LATER, SEOUL);

      expect(new Dec(after.cash).eq(target.cash)).to.equal(true);
      for (const { symbol, quantity } of target.positions) {
        expect(new Dec(after.positions[symbol]?.quantity ?? '0').eq(quantity), symbol).to.equal(true);
        if (after.positions[symbol]) expect(new Dec(after.positions[symbol]!.costBasis).gte(0), `${symbol} cost basis`).to.equal(true);
      }
      expect(pnlFields(after)).to.deep.equal(pnlFields(state));
      // The adjustments describe exactly the change.
      const cashMoved = adjustments.reduce((sum, a) => sum.plus(a.cashDelta ?? '0'), new Dec(0));
      expect(cashMoved.eq(new Dec(after.cash).minus(state.cash))).to.equal(true);
      if (adjustments.length === 0) expect(after).to.equal(state);
      // Asked for when every symbol has a mark; it holds without marks too (equity uses the avg price).
      expect(dailyPnl(after)).to.equal(before);
    }), { numRuns: 300 });
  });
});
