import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { InvariantError } from '../../src/errors';
import { NodeStorageIo } from '../../src/persistence/storage-io';
import { PaperExecutor } from '../../src/execution/paper-executor';
import type { Balances } from '../../src/execution/base';
import { LiveBook, accountOpenedRecord, type LiveBookOptions } from '../../src/portfolio/live-book';
import type { OrderReport, OrderRequest, OrderStatus } from '../../src/proposal/types';

const SEOUL = 'Asia/Seoul';
const T0 = Date.parse('2026-11-26T01:00:00Z');

/** A clock the test moves. */
function clock(start = T0) {
  const c = { t: start, now: () => c.t };
  return c;
}

async function openBook(dir: string, now: () => number, extra: Partial<LiveBookOptions> = {}): Promise<LiveBook> {
  return LiveBook.open(new NodeStorageIo(), dir, { venue: 'upbit', quoteCurrency: 'KRW', timeZone: SEOUL, minOrderNotional: 5000, now, ...extra });
}

const balances = (cash: string, positions: Record<string, string> = {}): Balances => ({
  quoteCurrency: 'KRW', cash, positions: Object.entries(positions).map(([symbol, quantity]) => ({ symbol, quantity })),
});

function report(id: string, symbol: string, side: 'buy' | 'sell', quantity: string, price: string, fee: string, status: OrderStatus = 'filled'): OrderReport {
  const at = new Date(T0).toISOString();
  return { clientOrderId: id, venueOrderId: `v-${id}`, venue: 'upbit', symbol, side, status, filledQuantity: quantity, avgPrice: price, fee, submittedAt: at, updatedAt: at };
}

describe('LiveBook', () => {
  let dir: string;
  const open: LiveBook[] = [];
  const track = (book: LiveBook) => {
    open.push(book);
    return book;
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'live-book-'));
  });

  afterEach(async () => {
    for (const book of open.splice(0)) await book.close().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('opens the account from the first reconcile, records it for the journal, and keeps it across a reopen', async () => {
    const c = clock();
    const book = track(await openBook(dir, c.now));
    expect(book.opened).to.equal(false);
    expect(book.snapshot(c.t).cash).to.equal(0);
    await book.mark({ 'BTC/KRW': 100_000_000 });
    const out = await book.reconcile(balances('1000000', { 'BTC/KRW': '0.01', 'XRP/KRW': '30' }));
    expect(out.adjustments).to.deep.equal([]);
    expect(out.record).to.equal(null);
    expect(out.opening).to.deep.include({ venue: 'upbit', cash: '1000000', quoteCurrency: 'KRW', journalled: false });
    expect(out.opening!.positions).to.deep.equal([
      { symbol: 'BTC/KRW', quantity: '0.01', avgPrice: '100000000', costBasis: '1000000', valuedBy: 'mark' },
      { symbol: 'XRP/KRW', quantity: '30', avgPrice: '0', costBasis: '0', valuedBy: 'unpriced' },
    ]);
    expect(accountOpenedRecord(out.opening!)).to.deep.equal({
      type: 'account.opened', venue: 'upbit', openedAt: new Date(T0).toISOString(), cash: '1000000', quoteCurrency: 'KRW',
      positions: [{ symbol: 'BTC/KRW', quantity: '0.01', costBasis: '1000000' }, { symbol: 'XRP/KRW', quantity: '30', costBasis: '0' }],
    });
    const view = book.snapshot(c.t);
    expect(view).to.include({ cash: 1_000_000, equity: 2_000_000, dayStartEquity: 2_000_000, dailyPnl: 0, realizedPnl: 0 });
    expect(book.unjournalledOpening).to.not.equal(null);
    await book.close();

    const again = track(await openBook(dir, c.now));
    expect(again.opened).to.equal(true);
    expect(again.state).to.deep.equal(book.state);
    expect(again.unjournalledOpening?.cash).to.equal('1000000');
    await again.openingJournalled();
    await again.close();
    const third = track(await openBook(dir, c.now));
    expect(third.unjournalledOpening).to.equal(null);
    // A later reconcile with equal balances opens nothing again and adjusts nothing.
    const same = await third.reconcile(balances('1000000', { 'BTC/KRW': '0.01', 'XRP/KRW': '30' }));
    expect(same).to.deep.equal({ opening: null, adjustments: [], record: null, heldBack: null });
  });

  it('books a fill once per client order id, also after a reopen', async () => {
    const c = clock();
    const book = track(await openBook(dir, c.now));
    await book.reconcile(balances('1000000'));
    const fill = report('ct-1', 'BTC/KRW', 'buy', '0.002', '100000000', '100');
    const first = await book.bookFill(fill);
    expect(first).to.deep.equal({ booked: true, fill: { quantity: '0.002', price: '100000000', fee: '100' }, realizedPnl: null, fillSequence: 1, record: null });
    const repeat = await book.bookFill(fill);
    expect(repeat).to.deep.equal({ booked: false, fill: null, realizedPnl: null, fillSequence: 1, record: null });
    expect(book.state.cash).to.equal('799900');
    await book.close();

    const again = track(await openBook(dir, c.now));
    expect((await again.bookFill(fill)).booked).to.equal(false);
    expect(again.state.cash).to.equal('799900');
    const exit = await again.bookFill(report('ct-2', 'BTC/KRW', 'sell', '0.002', '90000000', '90'));
    // 180 000 − 90 − 200 100
    expect(exit).to.deep.include({ booked: true, realizedPnl: '-20190', fillSequence: 2 });
    expect(again.state).to.include({ cash: '979810', realizedPnl: '-20190', feesPaid: '190', consecutiveLosses: 1 });
    expect(again.state.positions).to.deep.equal({});
  });

  it('books nothing for a report that filled nothing (open, or final), and for a dry run', async () => {
    const c = clock();
    const book = track(await openBook(dir, c.now));
    await book.reconcile(balances('1000000'));
    const open = await book.bookFill(report('ct-p', 'BTC/KRW', 'buy', '0', '0', '0', 'open'));
    expect(open.booked).to.equal(false);
    expect(Object.keys(book.inFlight)).to.deep.equal(['ct-p']);
    expect((await book.bookFill(report('ct-p', 'BTC/KRW', 'buy', '0.002', '100000000', '100', 'cancelled'))).booked).to.equal(true);
    expect(book.inFlight).to.deep.equal({});
    expect((await book.bookFill(report('ct-r', 'BTC/KRW', 'buy', '0', '0', '0', 'rejected'))).booked).to.equal(false);
    expect((await book.bookFill({ ...report('ct-d', 'BTC/KRW', 'buy', '0.1', '100000000', '0'), dryRun: true })).booked).to.equal(false);
    expect(book.state.cash).to.equal('799900');
  });

  it('books each partial fill as its delta, once, keeps the order in flight, and books the rest from the final report', async () => {
    const c = clock();
    const book = track(await openBook(dir, c.now));
    await book.reconcile(balances('1000000'));
    const first = await book.bookFill(report('ct-p', 'BTC/KRW', 'buy', '0.001', '100000000', '50', 'partially_filled'));
    expect(first).to.deep.include({ booked: true, fill: { quantity: '0.001', price: '100000000', fee: '50' }, fillSequence: 1 });
    expect(Object.keys(book.inFlight)).to.deep.equal(['ct-p']);
    // The same report again books nothing.
    expect(await book.bookFill(report('ct-p', 'BTC/KRW', 'buy', '0.001', '100000000', '50', 'partially_filled'))).to.deep.include({ booked: false, fill: null, fillSequence: 1 });
    // Average 100 100 000 over 0.003: the second part cost 300.3 − 100 = 200.3 KRW for 0.002, at 100 150 000.
    const second = await book.bookFill(report('ct-p', 'BTC/KRW', 'buy', '0.003', '100100000', '150.15', 'partially_filled'));
    expect(second).to.deep.include({ booked: true, fill: { quantity: '0.002', price: '100150000', fee: '100.15' }, fillSequence: 2 });
    expect(book.state.positions['BTC/KRW']).to.include({ quantity: '0.003', costBasis: '300450.15' });
    expect(Object.keys(book.inFlight)).to.deep.equal(['ct-p']);
    // The final report (cancelled with the rest unfilled: 0.004 at 100 125 000) books 0.001 at 100 200 000.
    const last = await book.bookFill(report('ct-p', 'BTC/KRW', 'buy', '0.004', '100125000', '200.25', 'cancelled'));
    expect(last).to.deep.include({ booked: true, fill: { quantity: '0.001', price: '100200000', fee: '50.1' }, fillSequence: 3 });
    expect(book.inFlight).to.deep.equal({});
    expect(book.state).to.include({ cash: '599299.75', feesPaid: '200.25', fills: 3 });
    expect(book.state.positions['BTC/KRW']).to.include({ quantity: '0.004', costBasis: '400700.25' });
    // A repeat of the final report books nothing, and names the last part's place.
    expect(await book.bookFill(report('ct-p', 'BTC/KRW', 'buy', '0.004', '100125000', '200.25', 'cancelled'))).to.deep.include({ booked: false, fillSequence: 3 });
  });

  it('books only what was not booked before a restart mid-way, and ends the flight when the parts held it all', async () => {
    const c = clock();
    const book = track(await openBook(dir, c.now));
    await book.reconcile(balances('1000000', { 'XRP/KRW': '100' }));
    await book.bookFill(report('ct-s', 'XRP/KRW', 'sell', '30', '1000', '15', 'partially_filled'));
    await book.close();
    const again = track(await openBook(dir, c.now));
    expect(Object.keys(again.inFlight)).to.deep.equal(['ct-s']);
    // The parts booked stay known until the final report (to journal again a line a crash lost).
    expect(again.partsOf('ct-s')).to.deep.equal([{ filledQuantity: '30', fill: { quantity: '30', price: '1000', fee: '15' }, fillSequence: 1 }]);
    expect((await again.bookFill(report('ct-s', 'XRP/KRW', 'sell', '30', '1000', '15', 'partially_filled'))).booked).to.equal(false);
    const more = await again.bookFill(report('ct-s', 'XRP/KRW', 'sell', '100', '1000', '50', 'partially_filled'));
    expect(more).to.deep.include({ booked: true, fill: { quantity: '70', price: '1000', fee: '35' }, fillSequence: 2 });
    const final = await again.bookFill(report('ct-s', 'XRP/KRW', 'sell', '100', '1000', '50', 'filled'));
    expect(final).to.deep.include({ booked: false, fill: null, fillSequence: 2 });
    expect(again.partsOf('ct-s')).to.deep.equal([]);
    expect(again.inFlight).to.deep.equal({});
    expect(again.state).to.include({ cash: '1099950', fills: 2 });
    expect(again.state.positions).to.deep.equal({});
    await again.close();
    const third = track(await openBook(dir, c.now));
    expect((await third.bookFill(report('ct-s', 'XRP/KRW', 'sell', '100', '1000', '50', 'filled'))).booked).to.equal(false);
    expect(third.state.cash).to.equal('1099950');
  });

  it('refuses a report that filled less than was booked, as a broken invariant', async () => {
    const c = clock();
    const book = track(await openBook(dir, c.now));
    await book.reconcile(balances('1000000'));
    await book.bookFill(report('ct-p', 'BTC/KRW', 'buy', '0.002', '100000000', '100', 'partially_filled'));
    const err = await book.bookFill(report('ct-p', 'BTC/KRW', 'buy', '0.001', '100000000', '50', 'filled')).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(InvariantError).and.include({ code: 'fill_shrank' });
  });

  it('finds no difference when reconciled after its own fills, against a venue that books them', async () => {
    const c = clock();
    const paper = await PaperExecutor.open(new NodeStorageIo(), path.join(dir, 'venue'), {
      initialCash: 10_000_000, feeRate: 0.0005, slippagePct: 0.1, fillDelayMs: 0, quoteCurrency: 'KRW', timeZone: SEOUL, now: c.now,
    });
    const book = track(await openBook(dir, c.now, { venue: 'paper', minOrderNotional: 0, sellSlippagePct: 0.1 }));
    try {
      expect((await book.reconcile(() => paper.balances())).opening?.cash).to.equal('10000000');
      const orders: OrderRequest[] = [
        { clientOrderId: 'ct-a', symbol: 'BTC/KRW', side: 'buy', intent: 'buy', notional: '333333', price: '123456789' },
        { clientOrderId: 'ct-b', symbol: 'ETH/KRW', side: 'buy', intent: 'buy', notional: '100000', price: '4444444' },
        { clientOrderId: 'ct-c', symbol: 'BTC/KRW', side: 'sell', intent: 'sell', notional: '0', quantity: '0.001', price: '120000000' },
      ];
      for (const order of orders) {
        c.t += 60_000;
        await book.expectOrder(order.clientOrderId, order.symbol);
        const filled = await paper.submit(order);
        expect((await book.bookFill(filled)).booked).to.equal(true);
        const out = await book.reconcile(() => paper.balances());
        expect(out.adjustments, order.clientOrderId).to.deep.equal([]);
        expect(out.heldBack).to.equal(null);
      }
      // The same book as the venue's own: cash, positions at cost, marks, PnL, the day's start.
      expect(book.snapshot(c.t)).to.deep.equal(paper.snapshot(c.t));
    } finally {
      await paper.close();
    }
  });

  it('journals a deposit and an outside trade as adjustments, not PnL, until the journal holds them', async () => {
    const c = clock();
    const book = track(await openBook(dir, c.now));
    await book.mark({ 'BTC/KRW': '100000000' });
    await book.reconcile(balances('1000000', { 'BTC/KRW': '0.01' }));
    const pnl = book.snapshot(c.t).dailyPnl;

    c.t += 60_000;
    const deposit = await book.reconcile(balances('1500000', { 'BTC/KRW': '0.01' }));
    expect(deposit.adjustments.map((a) => [a.kind, a.cashDelta])).to.deep.equal([['deposit', '500000']]);
    expect(deposit.record).to.deep.include({ type: 'book.adjusted', venue: 'upbit', id: 'upbit-adjustment-1', afterFills: 0 });
    c.t += 60_000;
    const trade = await book.reconcile(balances('500000', { 'BTC/KRW': '0.02' }));
    expect(trade.adjustments.map((a) => [a.kind, a.symbol, a.quantityDelta, a.cashDelta, a.value])).to.deep.equal([['outside_trade', 'BTC/KRW', '0.01', '-1000000', '1000000']]);
    expect(trade.record!.id).to.equal('upbit-adjustment-2');

    const view = book.snapshot(c.t);
    expect(view.dailyPnl).to.equal(pnl);
    expect(view).to.include({ realizedPnl: 0, consecutiveLosses: 0, cash: 500_000 });
    expect(book.state.feesPaid).to.equal('0');
    expect(book.unjournalledAdjustments.map((r) => r.id)).to.deep.equal(['upbit-adjustment-1', 'upbit-adjustment-2']);
    await book.close();

    const again = track(await openBook(dir, c.now));
    expect(again.unjournalledAdjustments).to.deep.equal([deposit.record, trade.record]);
    await again.adjustmentsJournalled(['upbit-adjustment-1']);
    expect(again.unjournalledAdjustments.map((r) => r.id)).to.deep.equal(['upbit-adjustment-2']);
    c.t += 60_000;
    const withdrawal = await again.reconcile(balances('400000', { 'BTC/KRW': '0.02' }));
    expect(withdrawal.record!.id).to.equal('upbit-adjustment-3');
  });

  it('holds the cash and the symbol back while an order is in flight, and lets go after inFlightMaxMs', async () => {
    const c = clock();
    const book = track(await openBook(dir, c.now, { inFlightMaxMs: 600_000 }));
    await book.reconcile(balances('1000000', { 'ETH/KRW': '1' }));
    await book.expectOrder('ct-x', 'BTC/KRW');
    await book.close();
    const again = track(await openBook(dir, c.now, { inFlightMaxMs: 600_000 }));
    expect(again.inFlight).to.deep.equal({ 'ct-x': { symbol: 'BTC/KRW', since: T0 } });

    // The venue filled it (and an ETH transfer came in) before the book saw the report.
    c.t += 1000;
    const held = await again.reconcile(balances('799900', { 'BTC/KRW': '0.002', 'ETH/KRW': '2' }));
    expect(held.heldBack).to.deep.equal({ orders: ['ct-x'], symbols: ['BTC/KRW'] });
    expect(held.adjustments.map((a) => [a.kind, a.symbol])).to.deep.equal([['transfer_in', 'ETH/KRW']]);
    expect(again.state.cash).to.equal('1000000');

    await again.bookFill(report('ct-x', 'BTC/KRW', 'buy', '0.002', '100000000', '100'));
    const after = await again.reconcile(balances('799900', { 'BTC/KRW': '0.002', 'ETH/KRW': '2' }));
    expect(after).to.deep.equal({ opening: null, adjustments: [], record: null, heldBack: null });

    // A lost order stops holding anything back once inFlightMaxMs has passed.
    await again.expectOrder('ct-lost', 'XRP/KRW');
    c.t += 600_000;
    const freed = await again.reconcile(balances('900000', { 'BTC/KRW': '0.002', 'ETH/KRW': '2' }));
    expect(freed.heldBack).to.equal(null);
    expect(freed.adjustments.map((a) => a.kind)).to.deep.equal(['deposit']);
    expect(again.inFlight).to.deep.equal({});
  });

  it('adjusts in what a fill needed when the book held less than the venue spent', async () => {
    const c = clock();
    const book = track(await openBook(dir, c.now));
    await book.reconcile(balances('1000'));
    const buy = await book.bookFill(report('ct-big', 'BTC/KRW', 'buy', '0.002', '100000000', '100'));
    expect(buy.booked).to.equal(true);
    expect(buy.record!.afterFills).to.equal(0);
    expect(buy.record!.adjustments.map((a) => [a.kind, a.cashDelta])).to.deep.equal([['deposit', '199100']]);
    expect(buy.record!.adjustments[0]!.cause).to.contain('order ct-big');
    const sell = await book.bookFill(report('ct-more', 'BTC/KRW', 'sell', '0.003', '100000000', '0'));
    expect(sell.record!.adjustments.map((a) => [a.kind, a.quantityDelta, a.valuedBy])).to.deep.equal([['transfer_in', '0.001', 'mark']]);
    expect(book.state).to.include({ cash: '300000', realizedPnl: '-100' });
    expect(book.state.positions).to.deep.equal({});
  });

  it('refuses a report of another venue, a fill before the opening, and balances in another currency', async () => {
    const c = clock();
    const book = track(await openBook(dir, c.now));
    const fill = report('ct-1', 'BTC/KRW', 'buy', '0.001', '100000000', '0');
    let error: unknown;
    await book.bookFill(fill).catch((e: unknown) => { error = e; });
    expect(error).to.be.instanceOf(InvariantError).and.to.have.property('code', 'book_not_opened');
    await book.bookFill({ ...fill, venue: 'paper' }).catch((e: unknown) => { error = e; });
    expect(error).to.have.property('code', 'wrong_venue');
    await book.reconcile({ quoteCurrency: 'USDT', cash: '1', positions: [] }).catch((e: unknown) => { error = e; });
    expect(error).to.have.property('code', 'wrong_quote_currency');
    expect(book.opened).to.equal(false);
  });

  it('keeps marks and the day they were taken on across a reopen', async () => {
    const c = clock();
    const book = track(await openBook(dir, c.now));
    await book.reconcile(balances('1000', { 'BTC/KRW': '1' }));
    await book.mark({ 'BTC/KRW': 2000 }, { 'BTC/KRW': T0 - 1000 });
    await book.close();
    const again = track(await openBook(dir, c.now));
    expect(again.state.marks).to.deep.equal({ 'BTC/KRW': '2000' });
    expect(again.snapshot(c.t).equity).to.equal(3000);
  });
});
