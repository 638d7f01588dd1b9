import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { compareWithBook, journalLines, recordLines, recountJournal } from '../../src/journal/ledger';
import { NodeStorageIo } from '../../src/persistence/storage-io';
import { PaperExecutor } from '../../src/execution/paper-executor';
import { LiveBook, accountOpenedRecord } from '../../src/portfolio/live-book';
import { Dec } from '../../src/amounts';
import type { OrderReport, OrderRequest } from '../../src/proposal/types';

const ROOT = path.resolve(import.meta.dirname, '../..');

const opened = (cash: string | number = '1000') => ({ type: 'account.opened', at: '2026-11-26T00:00:00.000Z', venue: 'paper', cash, quoteCurrency: 'KRW' });

/** A journalled fill (`order.filled` unless told), amounts as given. */
function fill(id: string, symbol: string, side: 'buy' | 'sell', quantity: string | number, price: string | number, fee: string | number, type = 'order.filled', venue = 'paper') {
  return {
    type, at: '2026-11-26T01:00:00.000Z', proposalId: `p-${id}`, clientOrderId: id,
    order: { clientOrderId: id, venueOrderId: `v-${id}`, venue, symbol, side, status: 'filled', filledQuantity: quantity, avgPrice: price, fee },
    fill: { quantity, price, fee, notional: '0', at: '2026-11-26T01:00:00.000Z' },
  };
}

const recount = (records: unknown[], options = {}) => recountJournal(recordLines(records), options);

describe('recountJournal', () => {
  it('books buys and a whole sell on average cost when the journal holds them', () => {
    const r = recount([
      opened('1000'),
      fill('a', 'BTC/KRW', 'buy', '2', '100', '1'),
      fill('b', 'BTC/KRW', 'buy', '1', '130', '0.5'),
      fill('c', 'BTC/KRW', 'sell', '3', '90', '0.25'),
    ]);
    expect(r.errors).to.deep.equal([]);
    expect(r.fills).to.equal(3);
    // 1000 − 201 − 130.5 + 270 − 0.25
    expect(r.cash).to.equal('938.25');
    expect(r.feesPaid).to.equal('1.75');
    // 270 − 0.25 − 331.5: the whole cost basis leaves with the whole position
    expect(r.realizedPnl).to.equal('-61.75');
    expect(r.consecutiveLosses).to.equal(1);
    expect(r.positions).to.deep.equal({});
  });

  it('rounds the cost a partial sell releases half-even to 20 places when the quotient does not end', () => {
    const r = recount([opened('100'), fill('a', 'X/KRW', 'buy', '3', '10', '1'), fill('b', 'X/KRW', 'sell', '1', '10', '0')]);
    expect(r.positions['X/KRW']).to.deep.equal({ quantity: '2', costBasis: '20.66666666666666666667' });
    expect(r.realizedPnl).to.equal('-0.33333333333333333333');
    expect(r.consecutiveLosses).to.equal(1);
  });

  it('rounds a tie at the 21st place to the even neighbour, down and up', () => {
    // cost 1e-20 over 2 units: selling 1 releases 0.5e-20 → 0; cost 3e-20 over 2: 1.5e-20 → 2e-20.
    const r = recount([
      opened('100'),
      fill('a', 'X/KRW', 'buy', '2', '0.000000000000000000005', '0'),
      fill('b', 'X/KRW', 'sell', '1', '1', '0'),
      fill('c', 'Y/KRW', 'buy', '2', '0.000000000000000000015', '0'),
      fill('d', 'Y/KRW', 'sell', '1', '1', '0'),
    ]);
    expect(r.positions['X/KRW']!.costBasis).to.equal('0.00000000000000000001');
    expect(r.positions['Y/KRW']!.costBasis).to.equal('0.00000000000000000001');
    expect(r.realizedPnl).to.equal('1.99999999999999999998');
    expect(r.consecutiveLosses).to.equal(0);
  });

  it('resets the loss streak at a sell that does not lose', () => {
    const r = recount([
      opened('1000'), fill('a', 'X/KRW', 'buy', '4', '10', '0'),
      fill('b', 'X/KRW', 'sell', '1', '9', '0'), fill('c', 'X/KRW', 'sell', '1', '9', '0'), fill('d', 'X/KRW', 'sell', '1', '10', '0'),
    ]);
    expect(r.consecutiveLosses).to.equal(0);
    const losing = recount([opened('1000'), fill('a', 'X/KRW', 'buy', '4', '10', '0'), fill('b', 'X/KRW', 'sell', '1', '9', '0'), fill('c', 'X/KRW', 'sell', '1', '9', '0')]);
    expect(losing.consecutiveLosses).to.equal(2);
  });

  it('counts an order once when both order.filled and order.reconciled name it, in either order', () => {
    for (const records of [
      [opened(), fill('a', 'X/KRW', 'buy', '1', '10', '1'), fill('a', 'X/KRW', 'buy', '1', '10', '1', 'order.reconciled')],
      [opened(), fill('a', 'X/KRW', 'buy', '1', '10', '1', 'order.reconciled'), fill('a', 'X/KRW', 'buy', '1', '10', '1')],
    ]) {
      const r = recount(records);
      expect(r.errors).to.deep.equal([]);
      expect(r.fills).to.equal(1);
      expect(r.cash).to.equal('989');
    }
  });

  it('counts an order.reconciled when no order.filled exists for its client id (the first record was lost)', () => {
    const r = recount([opened(), fill('a', 'X/KRW', 'buy', '1', '10', '1', 'order.reconciled'), fill('a', 'X/KRW', 'buy', '1', '10', '1', 'order.reconciled')]);
    expect(r.fills).to.equal(1);
    expect(r.positions['X/KRW']).to.deep.equal({ quantity: '1', costBasis: '11' });
  });

  it('reports a repeat of an order that names other amounts as an error', () => {
    const r = recount([opened(), fill('a', 'X/KRW', 'buy', '1', '10', '1'), fill('a', 'X/KRW', 'buy', '1', '10', '2', 'order.reconciled')]);
    expect(r.fills).to.equal(1);
    expect(r.errors).to.have.length(1);
    expect(r.errors[0]).to.contain('record 3').and.contain('differs from the order.filled counted at record 2');
  });

  it('refuses a sell of more than is held, as an error, and books nothing of it', () => {
    const r = recount([opened(), fill('a', 'X/KRW', 'buy', '1', '10', '0'), fill('b', 'X/KRW', 'sell', '1.00000001', '10', '0'), fill('c', 'Y/KRW', 'sell', '1', '10', '0')]);
    expect(r.errors).to.have.length(2);
    expect(r.errors[0]).to.contain('record 3').and.contain('sells 1.00000001 X/KRW').and.contain('holds 1');
    expect(r.errors[1]).to.contain('record 4').and.contain('holds 0');
    expect(r.positions).to.deep.equal({ 'X/KRW': { quantity: '1', costBasis: '10' } });
    expect(r.cash).to.equal('990');
    expect(r.fills).to.equal(1);
  });

  it('accepts amounts written as numbers and lists each such line as inexact', () => {
    const r = recount([opened(1000), fill('a', 'X/KRW', 'buy', 0.5, '10', '0'), fill('b', 'X/KRW', 'buy', '0.5', '10', '0')]);
    expect(r.errors).to.deep.equal([]);
    expect(r.warnings).to.deep.equal(['inexact amount (a number) at record 1', 'inexact amount (a number) at record 2']);
    expect(r.positions['X/KRW']!.quantity).to.equal('1');
  });

  it('reports a malformed fill as an error naming the field and the value, and skips it', () => {
    const r = recount([opened(), fill('a', 'X/KRW', 'buy', '0x10', '10', '0'), fill('b', 'X/KRW', 'buy', '1', '-1', '0'), { type: 'order.filled', clientOrderId: 'c', order: { symbol: 'X/KRW', side: 'short' }, fill: {} }]);
    expect(r.fills).to.equal(0);
    expect(r.errors).to.deep.equal([
      'order.filled at record 2: fill.quantity must be a decimal above 0, got 0x10; not counted',
      'order.filled at record 3: fill.price must be a decimal above 0, got -1; not counted',
      'order.filled at record 4: order.side must be buy or sell, got "short"; not counted',
    ]);
  });

  it('ignores every other record type', () => {
    const r = recount([opened(), { type: 'order.intent', clientOrderId: 'a', request: { side: 'buy', notional: '5' } }, { type: 'service.started', at: 'x' }]);
    expect(r).to.include({ fills: 0, cash: '1000' });
    expect(r.errors).to.deep.equal([]);
  });

  it('takes the initial cash from account.opened first, else from the caller with a warning, else reports an error', () => {
    expect(recount([opened('5')], { initialCash: 9 })).to.include({ initialCash: '5', initialCashFrom: 'account.opened', cash: '5' });
    const fallback = recount([fill('a', 'X/KRW', 'buy', '1', '1', '0')], { initialCash: 10_000_000 });
    expect(fallback).to.include({ initialCash: '10000000', initialCashFrom: 'option', cash: '9999999' });
    expect(fallback.warnings[0]).to.contain('no account.opened record');
    const none = recount([]);
    expect(none.initialCashFrom).to.equal(null);
    expect(none.errors[0]).to.contain('no initial cash given');
    expect(recount([opened('5'), opened('6')]).errors[0]).to.contain('account.opened again at record 2');
  });

  it('counts the same opening written twice (a crash before the venue noted it) once, and two different openings as an error', () => {
    const at = (cash: string, openedAt: string) => ({ ...opened(cash), openedAt });
    const twice = recount([at('5', '2026-11-26T00:00:00.000Z'), at('5', '2026-11-26T00:00:00.000Z')]);
    expect(twice.errors).to.deep.equal([]);
    expect(twice.cash).to.equal('5');
    expect(recount([at('5', '2026-11-26T00:00:00.000Z'), at('5', '2026-11-27T00:00:00.000Z')]).errors[0]).to.contain('account.opened again');
  });

  it('books fills in the venue\'s booking order when it numbers them, whatever order the journal wrote them in', () => {
    const numbered = (f: ReturnType<typeof fill>, n: number) => ({ ...f, order: { ...f.order, fillSequence: n } });
    // Booked: buy 2, sell 1 at a loss, sell 1 at a profit → streak 0. Journalled with the sells swapped.
    const records = [opened('1000'), numbered(fill('a', 'X/KRW', 'buy', '2', '100', '0'), 1), numbered(fill('c', 'X/KRW', 'sell', '1', '120', '0'), 3), numbered(fill('b', 'X/KRW', 'sell', '1', '90', '0'), 2)];
    expect(recount(records).consecutiveLosses).to.equal(0);
    // Without numbers the journal's order is all there is: the loss comes last.
    expect(recount(records.map((r) => ('order' in r ? fill(r.clientOrderId, 'X/KRW', r.order.side as 'buy' | 'sell', r.fill.quantity, r.fill.price, r.fill.fee) : r))).consecutiveLosses).to.equal(1);
  });

  it('leaves out fills at another venue and says how many', () => {
    const r = recount([opened(), fill('a', 'X/KRW', 'buy', '1', '10', '0', 'order.filled', 'upbit'), fill('b', 'X/KRW', 'buy', '1', '10', '0')]);
    expect(r.fills).to.equal(1);
    expect(r.warnings).to.deep.equal(['1 fill at venue upbit not counted: the book is the paper venue\'s']);
  });
});

describe('recountJournal with book adjustments', () => {
  const liveOpened = (cash: string, positions: Array<{ symbol: string; quantity: string; costBasis: string }> = []) => ({
    type: 'account.opened', at: '2026-11-26T00:00:00.000Z', venue: 'upbit', openedAt: '2026-11-26T00:00:00.000Z', cash, quoteCurrency: 'KRW', positions,
  });
  const live = (f: ReturnType<typeof fill>, n?: number) => ({ ...f, order: { ...f.order, venue: 'upbit', ...(n !== undefined ? { fillSequence: n } : {}) } });
  const adjusted = (id: string, adjustments: unknown[], afterFills?: number, venue = 'upbit') => ({
    type: 'book.adjusted', at: '2026-11-26T02:00:00.000Z', venue, id, ...(afterFills !== undefined ? { afterFills } : {}), adjustments,
  });
  const deposit = (cash: string) => ({ kind: 'deposit', cashDelta: cash, value: cash, valuedBy: 'cash', cause: 'a deposit' });
  const transfer = (symbol: string, quantity: string, value: string) => ({ kind: quantity.startsWith('-') ? 'transfer_out' : 'transfer_in', symbol, quantityDelta: quantity, value, valuedBy: 'mark', cause: 'coins moved' });
  const trade = (symbol: string, quantity: string, cash: string, value: string) => ({ kind: 'outside_trade', symbol, quantityDelta: quantity, cashDelta: cash, value, valuedBy: 'mark', cause: 'an outside trade' });
  const upbit = (records: unknown[]) => recount(records, { venue: 'upbit' });

  it('starts from the holdings a live account opened with', () => {
    const r = upbit([liveOpened('1000', [{ symbol: 'X/KRW', quantity: '2', costBasis: '20' }]), live(fill('a', 'X/KRW', 'sell', '1', '15', '0'))]);
    expect(r.errors).to.deep.equal([]);
    expect(r).to.include({ initialCash: '1000', cash: '1015', realizedPnl: '5' });
    expect(r.positions).to.deep.equal({ 'X/KRW': { quantity: '1', costBasis: '10' } });
  });

  it('counts deposits, transfers and outside trades into cash and holdings, never into PnL, fees or the loss streak', () => {
    const r = upbit([
      liveOpened('1000'),
      live(fill('a', 'X/KRW', 'buy', '3', '10', '1')),
      live(fill('b', 'X/KRW', 'sell', '1', '5', '0')),
      adjusted('upbit-adjustment-1', [deposit('500'), transfer('Y/KRW', '4', '40')]),
      adjusted('upbit-adjustment-2', [trade('X/KRW', '-1', '30', '-6'), trade('Z/KRW', '2', '-20', '22')]),
    ]);
    expect(r.errors).to.deep.equal([]);
    // 1000 − 31 + 5 + 500 + 30 − 20
    expect(r).to.include({ fills: 2, adjustments: 4, cash: '1484', feesPaid: '1', consecutiveLosses: 1 });
    expect(r.realizedPnl).to.equal('-5.33333333333333333333');
    // X: 2 left at 20.666…67; the outside sale of 1 takes half of it, 10.333…335 half-even to 10.333…34.
    expect(r.positions).to.deep.equal({
      'X/KRW': { quantity: '1', costBasis: '10.33333333333333333333' },
      'Y/KRW': { quantity: '4', costBasis: '40' },
      'Z/KRW': { quantity: '2', costBasis: '22' },
    });
  });

  it('counts a record written twice once, and names one id with other amounts as an error', () => {
    const twice = upbit([liveOpened('0'), adjusted('upbit-adjustment-1', [deposit('5')], 0), adjusted('upbit-adjustment-1', [deposit('5')], 0)]);
    expect(twice).to.include({ cash: '5', adjustments: 1 });
    expect(twice.errors).to.deep.equal([]);
    const other = upbit([liveOpened('0'), adjusted('upbit-adjustment-1', [deposit('5')]), adjusted('upbit-adjustment-1', [deposit('6')])]);
    expect(other.cash).to.equal('5');
    expect(other.errors).to.deep.equal(['book.adjusted at record 3 reuses id upbit-adjustment-1 of the record counted at record 2 with other amounts; not counted']);
  });

  it('leaves out adjustments of another venue and says how many', () => {
    const r = upbit([liveOpened('0'), adjusted('paper-adjustment-1', [deposit('5')], 0, 'paper'), adjusted('upbit-adjustment-1', [deposit('7')])]);
    expect(r.cash).to.equal('7');
    expect(r.warnings).to.deep.equal(['1 book.adjusted record of venue paper not counted: the book is the upbit venue\'s']);
  });

  it('leaves out the fills and adjustments of the service\'s other venues without a warning (each is counted in its own book)', () => {
    const records = [
      liveOpened('0'), adjusted('kis-adjustment-1', [deposit('5')], 0, 'kis'), adjusted('upbit-adjustment-1', [deposit('7')]),
      fill('k', '005930/KRW', 'buy', '1', '70000', '0', 'order.filled', 'kis'), fill('b', 'BTC/KRW', 'buy', '1', '7', '0', 'order.filled', 'binance'),
    ];
    const r = recount(records, { venue: 'upbit', countedElsewhere: ['kis'] });
    expect([r.cash, r.fills]).to.deep.equal(['7', 0]);
    expect(r.warnings, 'a venue the service does not list is still named').to.deep.equal(['1 fill at venue binance not counted: the book is the upbit venue\'s']);
  });

  it('refuses a malformed record whole, naming the adjustment and the field', () => {
    const r = upbit([
      liveOpened('100'),
      adjusted('a-1', [deposit('5'), { kind: 'deposit', cashDelta: '-5', value: '-5' }]),
      adjusted('a-2', [{ kind: 'gift', value: '1' }]),
      adjusted('a-3', [{ kind: 'transfer_in', symbol: 'X/KRW', quantityDelta: '1', cashDelta: '3', value: '1' }]),
      adjusted('a-4', [{ kind: 'outside_trade', symbol: 'X/KRW', quantityDelta: '1', cashDelta: '3', value: '1' }]),
      adjusted('a-5', [transfer('X/KRW', 'lots', '1')]),
      { type: 'book.adjusted', id: 'a-6', adjustments: [] },
    ]);
    expect(r.cash).to.equal('100');
    expect(r.adjustments).to.equal(0);
    expect(r.errors).to.deep.equal([
      'book.adjusted at record 2: adjustment 2: the amounts of a deposit have the wrong sign (cashDelta -5, quantityDelta undefined); not counted',
      'book.adjusted at record 3: adjustment 1: kind must be one of deposit, withdrawal, transfer_in, transfer_out, outside_trade, got "gift"; not counted',
      'book.adjusted at record 4: adjustment 1: a transfer_in moves no cash, got cashDelta 3; not counted',
      'book.adjusted at record 5: adjustment 1: the amounts of an outside_trade have the wrong sign (cashDelta 3, quantityDelta 1); not counted',
      'book.adjusted at record 6: adjustment 1: a transfer_in needs a quantityDelta other than 0, got lots; not counted',
      'book.adjusted at record 7: venue must be a non-empty string, got undefined; not counted',
    ]);
  });

  it('refuses a removal of more than is held, as an error, and books nothing of that adjustment', () => {
    const r = upbit([liveOpened('100'), live(fill('a', 'X/KRW', 'buy', '1', '10', '0')), adjusted('a-1', [trade('X/KRW', '-2', '30', '-20'), deposit('1')])]);
    expect(r.errors).to.deep.equal(['book.adjusted at record 3 (a-1): an outside_trade removes 2 X/KRW, but the journal holds 1; not counted']);
    expect(r).to.include({ cash: '91', adjustments: 1 });
  });

  it('puts adjustments among fills by afterFills when fills are numbered, else by their place in the journal', () => {
    // Booked: buy 1, coins in (1 more at 30), sell 2. Journalled with the adjustment last.
    const records = [
      liveOpened('100'),
      live(fill('a', 'X/KRW', 'buy', '1', '10', '0'), 1),
      live(fill('b', 'X/KRW', 'sell', '2', '25', '0'), 2),
      adjusted('a-1', [transfer('X/KRW', '1', '30')], 1),
    ];
    const numbered = upbit(records);
    expect(numbered.errors).to.deep.equal([]);
    expect(numbered).to.include({ realizedPnl: '10', cash: '140' });
    // Without afterFills the journal's order is all there is: the sell comes before the coins.
    const unnumbered = upbit(records.map((r) => ('afterFills' in r ? { ...r, afterFills: undefined } : r)));
    expect(unnumbered.errors[0]).to.contain('sells 2 X/KRW').and.contain('holds 1');
  });

  it('recounts what a LiveBook booked, adjusted and opened with, to the smallest unit', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ledger-live-'));
    const clock = { t: Date.parse('2026-11-26T01:00:00Z') };
    const book = await LiveBook.open(new NodeStorageIo(), dir, { venue: 'upbit', quoteCurrency: 'KRW', timeZone: 'Asia/Seoul', minOrderNotional: 5000, now: () => clock.t });
    const journal: unknown[] = [];
    const at = () => new Date(clock.t).toISOString();
    const venueReport = (id: string, symbol: string, side: 'buy' | 'sell', quantity: string, price: string, fee: string): OrderReport => ({
      clientOrderId: id, venueOrderId: `v-${id}`, venue: 'upbit', symbol, side, status: 'filled', filledQuantity: quantity, avgPrice: price, fee, submittedAt: at(), updatedAt: at(),
    });
    const booked = async (report: OrderReport) => {
      const out = await book.bookFill(report);
      if (out.record) journal.push(out.record);
      journal.push({ type: 'order.filled', at: at(), clientOrderId: report.clientOrderId, order: { ...report, fillSequence: out.fillSequence }, fill: { quantity: report.filledQuantity, price: report.avgPrice, fee: report.fee } });
    };
    const reconciled = async (cash: string, positions: Record<string, string>) => {
      const out = await book.reconcile({ quoteCurrency: 'KRW', cash, positions: Object.entries(positions).map(([symbol, quantity]) => ({ symbol, quantity })) });
      if (out.opening) journal.push(accountOpenedRecord(out.opening));
      if (out.record) journal.push(out.record);
      return out;
    };
    try {
      await book.mark({ 'BTC/KRW': '123456789', 'DOGE/KRW': '0.00012347' });
      await reconciled('1000000000', { 'BTC/KRW': '0.5', 'XRP/KRW': '1215000011.05650013' });
      clock.t += 60_000;
      await booked(venueReport('a', 'BTC/KRW', 'buy', '0.00270001', '123000000', '166.05'));
      await booked(venueReport('b', 'DOGE/KRW', 'buy', '1215000011.05650013', '0.00012345', '74.99'));
      clock.t += 60_000;
      const held = (symbol: string) => book.state.positions[symbol]!.quantity;
      // a deposit; then an outside sale of BTC while XRP moved in; then half the XRP moved out
      const deposit = await reconciled(new Dec(book.state.cash).plus('250000.5').toFixed(), { 'BTC/KRW': held('BTC/KRW'), 'DOGE/KRW': held('DOGE/KRW'), 'XRP/KRW': held('XRP/KRW') });
      expect(deposit.adjustments.map((a) => a.kind)).to.deep.equal(['deposit']);
      clock.t += 60_000;
      const sale = await reconciled(new Dec(book.state.cash).plus('20000000').toFixed(), { 'BTC/KRW': new Dec(held('BTC/KRW')).minus('0.16').toFixed(), 'DOGE/KRW': held('DOGE/KRW'), 'XRP/KRW': '2430000022.11300026' });
      expect(sale.adjustments.map((a) => [a.kind, a.symbol])).to.deep.equal([['outside_trade', 'BTC/KRW'], ['transfer_in', 'XRP/KRW']]);
      const out = await reconciled(book.state.cash, { 'BTC/KRW': held('BTC/KRW'), 'DOGE/KRW': held('DOGE/KRW'), 'XRP/KRW': '607500005.52825007' });
      expect(out.adjustments.map((a) => a.kind)).to.deep.equal(['transfer_out']);
      clock.t += 60_000;
      await booked(venueReport('c', 'BTC/KRW', 'sell', '0.2', '130000000', '13000'));
      // a sell of more DOGE than the book holds: the book adjusts the shortfall in first
      await booked(venueReport('d', 'DOGE/KRW', 'sell', '1215000012', '0.00013', '7.9'));

      const r = recountJournal(recordLines(journal), { venue: 'upbit' });
      expect(r.errors).to.deep.equal([]);
      expect(r.warnings).to.deep.equal([]);
      expect(r).to.include({ fills: 4, initialCashFrom: 'account.opened' });
      expect(r.adjustments).to.equal(5);
      expect(compareWithBook(r, book.state)).to.deep.equal([]);
      // Journalled in another order (adjustment records at the end), the booking numbers still place them.
      const shuffled = [...journal.filter((x) => (x as { type: string }).type !== 'book.adjusted'), ...journal.filter((x) => (x as { type: string }).type === 'book.adjusted')];
      expect(compareWithBook(recountJournal(recordLines(shuffled), { venue: 'upbit' }), book.state)).to.deep.equal([]);
    } finally {
      await book.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('recounts partial fills and what they left of the final fill equal to the LiveBook that booked them', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ledger-parts-'));
    const clock = { t: Date.parse('2026-11-26T01:00:00Z') };
    const book = await LiveBook.open(new NodeStorageIo(), dir, { venue: 'upbit', quoteCurrency: 'KRW', timeZone: 'Asia/Seoul', minOrderNotional: 5000, now: () => clock.t });
    const journal: unknown[] = [];
    const at = () => new Date(clock.t).toISOString();
    const venueReport = (id: string, side: 'buy' | 'sell', status: OrderReport['status'], quantity: string, price: string, fee: string): OrderReport => ({
      clientOrderId: id, venueOrderId: `v-${id}`, venue: 'upbit', symbol: 'BTC/KRW', side, status, filledQuantity: quantity, avgPrice: price, fee, submittedAt: at(), updatedAt: at(),
    });
    // As the proposal services journal: a part after it is booked, the final record with the whole fill.
    const part = async (report: OrderReport) => {
      const out = await book.bookFill(report);
      if (out.record) journal.push(out.record);
      if (out.fill) journal.push({ type: 'order.partially_filled', at: at(), clientOrderId: report.clientOrderId, order: { ...report, fillSequence: out.fillSequence }, fill: out.fill });
    };
    const final = async (report: OrderReport) => {
      const out = await book.bookFill(report);
      if (out.record) journal.push(out.record);
      journal.push({ type: 'order.filled', at: at(), clientOrderId: report.clientOrderId, order: { ...report, fillSequence: out.fillSequence }, fill: { quantity: report.filledQuantity, price: report.avgPrice, fee: report.fee } });
    };
    const check = () => {
      const r = recountJournal(recordLines(journal), { venue: 'upbit' });
      expect(r.errors).to.deep.equal([]);
      expect(compareWithBook(r, book.state)).to.deep.equal([]);
      return r;
    };
    try {
      const opening = await book.reconcile({ quoteCurrency: 'KRW', cash: '10000000', positions: [] });
      journal.push(accountOpenedRecord(opening.opening!));
      await part(venueReport('a', 'buy', 'partially_filled', '0.001', '123456000', '61.728'));
      // The second part's price does not divide exactly: (0.007 × 123456789.12345678901 − 123456) / 0.006.
      await part(venueReport('a', 'buy', 'partially_filled', '0.007', '123456789.12345678901', '432.1'));
      await part(venueReport('a', 'buy', 'partially_filled', '0.007', '123456789.12345678901', '432.1'));
      // In flight: the parts alone recount equal to the book.
      expect(check().fills).to.equal(2);
      await final(venueReport('a', 'buy', 'cancelled', '0.01', '123400000.5', '617.0000025'));
      await part(venueReport('b', 'sell', 'partially_filled', '0.0035', '130000000', '227.5'));
      clock.t += 60_000;
      await final(venueReport('b', 'sell', 'filled', '0.004', '130100000', '260.2'));
      // A part journalled twice (a retry) counts once.
      journal.push(journal.find((x) => (x as { type: string }).type === 'order.partially_filled'));
      const r = check();
      expect(r.fills).to.equal(5);
      expect(r.positions['BTC/KRW']!.quantity).to.equal('0.006');
      // A final record whose fill is less than its parts is an error, not a negative fill.
      const broken = recountJournal(recordLines([...journal.slice(0, 3), { ...journal[3] as object, fill: { quantity: '0.005', price: '1', fee: '0' } }]), { venue: 'upbit' });
      expect(broken.errors[0]).to.contain('less than its partial fills');
    } finally {
      await book.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('journalLines', () => {
  const text = (...lines: unknown[]) => lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n');

  it('ignores a torn last line of the newest file with a warning when a crash cut it short', () => {
    const lines = journalLines([
      { name: 'd1.jsonl', text: `${text(opened())}\n` },
      { name: 'd2.jsonl', text: `${text(fill('a', 'X/KRW', 'buy', '1', '10', '0'))}\n{"type":"order.fil` },
    ]);
    const r = recountJournal(lines);
    expect(r.errors).to.deep.equal([]);
    expect(r.warnings).to.deep.equal(['torn last line at d2.jsonl:2 ignored (a crash mid-write)']);
    expect(r.fills).to.equal(1);
  });

  it('reports an unreadable line anywhere else as an error naming file and line', () => {
    const lines = journalLines([
      { name: 'd1.jsonl', text: `${text(opened(), '{"broken')}\n\n` },
      { name: 'd2.jsonl', text: `{oops\n${text(fill('a', 'X/KRW', 'buy', '1', '10', '0'))}\n` },
    ]);
    const r = recountJournal(lines);
    expect(r.errors).to.have.length(2);
    expect(r.errors[0]).to.match(/^not valid JSON at d1\.jsonl:2: /);
    expect(r.errors[1]).to.match(/^not valid JSON at d2\.jsonl:1: /);
    expect(r.fills).to.equal(1);
  });
});

describe('compareWithBook', () => {
  const r = recount([opened('1000'), fill('a', 'X/KRW', 'buy', '3', '10', '1'), fill('b', 'X/KRW', 'sell', '1', '10', '0')]);
  const book = () => ({
    version: 1, cash: r.cash, realizedPnl: r.realizedPnl, feesPaid: r.feesPaid, consecutiveLosses: r.consecutiveLosses, tradingDay: '2026-11-26', dayStartEquity: '1000', marks: {},
    positions: { 'X/KRW': { quantity: '2', avgPrice: '10', costBasis: '20.66666666666666666667' } },
  });

  it('finds no difference when the book holds the same amounts, written in another notation', () => {
    expect(compareWithBook(r, book())).to.deep.equal([]);
    expect(compareWithBook(r, { ...book(), cash: '979.000', feesPaid: '1e0' })).to.deep.equal([]);
  });

  it('names each field that differs, to the smallest unit', () => {
    const b = book();
    b.positions['X/KRW']!.costBasis = '20.66666666666666666666';
    expect(compareWithBook(r, { ...b, feesPaid: '1.00000000000000000001', consecutiveLosses: 0 })).to.deep.equal([
      { field: 'feesPaid', journal: '1', book: '1.00000000000000000001' },
      { field: 'consecutiveLosses', journal: '1', book: '0' },
      { field: 'positions[X/KRW].costBasis', journal: '20.66666666666666666667', book: '20.66666666666666666666' },
    ]);
  });

  it('names a symbol held on one side only, and a field the book lacks or cannot be read', () => {
    const b = { ...book(), realizedPnl: 'NaN', positions: { 'Y/KRW': { quantity: '1', costBasis: '5' } } } as Record<string, unknown>;
    delete b['cash'];
    expect(compareWithBook(r, b)).to.deep.equal([
      { field: 'cash', journal: '979', book: null },
      { field: 'realizedPnl', journal: r.realizedPnl, book: 'NaN' },
      { field: 'positions[X/KRW].quantity', journal: '2', book: null },
      { field: 'positions[X/KRW].costBasis', journal: '20.66666666666666666667', book: null },
      { field: 'positions[Y/KRW].quantity', journal: null, book: '1' },
      { field: 'positions[Y/KRW].costBasis', journal: null, book: '5' },
    ]);
  });
});

describe('npm run ledger', function () {
  this.timeout(60_000);
  let dataDir: string;

  /** Runs the CLI as the operator would, in a folder without a .env. */
  function ledger(args: string[], env: Record<string, string> = {}) {
    const result = spawnSync(process.execPath, ['--import', pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href, path.join(ROOT, 'scripts/ledger.ts'), ...args], {
      cwd: path.dirname(dataDir), env: { PATH: process.env['PATH'] ?? '', ...env }, encoding: 'utf8',
    });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  /** Request amounts as decimal text (the numbers chosen below have an exact shortest form). */
  const amountOf = (n: number): OrderRequest['price'] => String(n);

  function journalFill(report: OrderReport, at: string) {
    return {
      type: 'order.filled', at, proposalId: `p-${report.clientOrderId}`, clientOrderId: report.clientOrderId, order: report,
      fill: { quantity: report.filledQuantity, price: report.avgPrice, fee: report.fee, notional: '0', at: report.updatedAt },
    };
  }

  function writeDay(day: string, records: unknown[]) {
    const dir = path.join(dataDir, 'journal');
    fs.mkdirSync(dir, { recursive: true });
    fs.appendFileSync(path.join(dir, `${day}.jsonl`), records.map((x) => `${JSON.stringify(x)}\n`).join(''));
  }

  beforeEach(async () => {
    dataDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ledger-')), 'data');
    const venue = await PaperExecutor.open(new NodeStorageIo(), dataDir, {
      initialCash: 10_000_000, feeRate: 0.0005, slippagePct: 0, fillDelayMs: 0, quoteCurrency: 'KRW', timeZone: 'Asia/Seoul',
    });
    const submit = (id: string, symbol: string, side: 'buy' | 'sell', size: number, price: number) => venue.submit({
      clientOrderId: id, symbol, side, intent: side, price: amountOf(price),
      ...(side === 'buy' ? { notional: amountOf(size) } : { notional: amountOf(0), quantity: amountOf(size) }),
    });
    const fills: OrderReport[] = [];
    for (const [id, symbol, side, size, price] of [
      ['ct-1', 'BTC/KRW', 'buy', 1_000_000, 50_000_000],
      ['ct-2', 'ETH/KRW', 'buy', 1_000_000, 3_000_000], // 0.33333333 ETH: a partial sell's cost does not end
      ['ct-3', 'BTC/KRW', 'sell', 0.01, 60_000_000],
      ['ct-4', 'ETH/KRW', 'sell', 0.1, 3_300_000],
      ['ct-5', 'BTC/KRW', 'sell', 0.01, 40_000_000],
    ] as const) {
      const report = await submit(id, symbol, side, size, price);
      expect(report.status, `${id}: ${report.rejectReason ?? ''}`).to.equal('filled');
      fills.push(report);
    }
    await venue.close();
    // The day files are read in day order: the sells of the second day need the first day's buys.
    writeDay('2026-11-26', [opened('10000000'), journalFill(fills[0]!, '2026-11-26T10:00:00.000Z'), journalFill(fills[1]!, '2026-11-26T11:00:00.000Z')]);
    writeDay('2026-11-27', [
      { type: 'service.started', at: '2026-11-27T00:00:00.000Z', pid: 1 },
      journalFill(fills[2]!, '2026-11-27T10:00:00.000Z'), journalFill(fills[3]!, '2026-11-27T11:00:00.000Z'),
      journalFill(fills[3]!, '2026-11-27T12:00:00.000Z'), // found again after a restart
      journalFill(fills[4]!, '2026-11-27T13:00:00.000Z'),
    ]);
  });

  afterEach(() => fs.rmSync(path.dirname(dataDir), { recursive: true, force: true }));

  it('exits 0 and says the book matches when the journal holds what the paper venue booked', () => {
    const out = ledger(['--data-dir', dataDir]);
    expect(out.status, out.stderr + out.stdout).to.equal(0);
    expect(out.stdout).to.contain('5 fills counted').and.contain('The book matches the journal.').and.contain('ETH/KRW 0.23333333');
    expect(out.stdout).to.contain('losses in a row 1').and.not.contain('Warnings');
  });

  it('exits 1 naming the fields when one journal amount was changed', () => {
    const file = path.join(dataDir, 'journal', '2026-11-27.jsonl');
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    const sell = JSON.parse(lines[1]!) as { fill: { fee: string } };
    expect(sell.fill.fee).to.equal('300');
    sell.fill.fee = '300.00000001';
    lines[1] = JSON.stringify(sell);
    fs.writeFileSync(file, lines.join('\n'));
    const out = ledger([`--data-dir=${dataDir}`]);
    expect(out.status, out.stderr + out.stdout).to.equal(1);
    expect(out.stdout).to.contain('feesPaid: journal').and.contain('cash: journal').and.contain('realizedPnl: journal');
    expect(out.stdout).not.to.contain('positions[');
  });

  it('starts from PAPER_INITIAL_CASH and says so when the journal has no account.opened record', () => {
    const file = path.join(dataDir, 'journal', '2026-11-26.jsonl');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').split('\n').slice(1).join('\n'));
    const out = ledger([], { DATA_DIR: dataDir, PAPER_INITIAL_CASH: '10000000' });
    expect(out.status, out.stderr + out.stdout).to.equal(0);
    expect(out.stdout).to.contain('(PAPER_INITIAL_CASH: the journal has no account.opened record)');
    const wrong = ledger([], { DATA_DIR: dataDir, PAPER_INITIAL_CASH: '9000000' });
    expect(wrong.status).to.equal(1);
    expect(wrong.stdout).to.match(/cash: journal \S+, book \S+/);
  });

  it('exits 2 with a clear message when DATA_DIR has no paper book or no journal', () => {
    fs.rmSync(path.join(dataDir, 'journal'), { recursive: true });
    const noJournal = ledger(['--data-dir', dataDir]);
    expect(noJournal.status).to.equal(2);
    expect(noJournal.stderr).to.contain('has no journal');
    fs.rmSync(path.join(dataDir, 'paper-venue'), { recursive: true });
    const noBook = ledger(['--data-dir', dataDir]);
    expect(noBook.status).to.equal(2);
    expect(noBook.stderr).to.contain('has no paper book');
    expect(ledger(['--nonsense']).status).to.equal(2);
  });
});
