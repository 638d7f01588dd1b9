import { expect } from 'chai';
import { LiveAccounts } from '../../src/runtime/live-accounts';
import type { LiveAccount } from '../../src/runtime/live-account';
import type { OrderReport } from '../../src/proposal/types';
import { isKrxSymbol } from '../../src/symbols';

/** A live account that records what it was asked. */
function account(name: string, calls: string[], failReconcile = false): LiveAccount {
  return {
    start: async () => { calls.push(`${name} start`); },
    orderStarted: async (id: string, symbol: string) => { calls.push(`${name} started ${id} ${symbol}`); },
    orderAbandoned: async (id: string) => { calls.push(`${name} abandoned ${id}`); },
    bookPart: async (o: OrderReport) => { calls.push(`${name} part ${o.clientOrderId}`); return null; },
    partsBooked: (id: string) => (name === 'kis' && id === 'k1' ? [{ filledQuantity: '1', fill: { quantity: '1', price: '70000', fee: '0', notional: '70000', at: '' }, fillSequence: 1 }] : []),
    bookFill: async (o: OrderReport) => { calls.push(`${name} fill ${o.clientOrderId}`); return 3; },
    reconcile: async (cause: string) => {
      calls.push(`${name} reconcile ${cause}`);
      if (failReconcile) throw new Error(`${name} unreachable`);
    },
  } as unknown as LiveAccount;
}

const report = (clientOrderId: string, venue: string) => ({ clientOrderId, venue } as OrderReport);

describe('LiveAccounts (the live hooks over several venues)', () => {
  it('sends each order to the account of the venue that trades its symbol, and each report to its venue\'s account', async () => {
    const calls: string[] = [];
    const accounts = new LiveAccounts([
      { venue: 'upbit', trades: (s) => !isKrxSymbol(s), account: account('upbit', calls) },
      { venue: 'kis', trades: isKrxSymbol, account: account('kis', calls) },
    ]);
    await accounts.orderStarted('k1', '005930/KRW');
    await accounts.orderStarted('u1', 'BTC/KRW');
    await accounts.bookPart(report('k1', 'kis'));
    expect(await accounts.bookFill(report('u1', 'upbit'))).to.equal(3);
    expect(accounts.partsBooked('k1')).to.have.length(1);
    expect(calls).to.deep.equal(['kis started k1 005930/KRW', 'upbit started u1 BTC/KRW', 'kis part k1', 'upbit fill u1']);
    await accounts.bookFill(report('x', 'binance')).then(() => expect.fail('a report of an unknown venue was booked'), (err: Error) => expect(err.message).to.include('binance'));
  });

  it('reconciles every account even when one cannot be read, then reports the failure', async () => {
    const calls: string[] = [];
    const accounts = new LiveAccounts([
      { venue: 'upbit', trades: () => false, account: account('upbit', calls, true) },
      { venue: 'kis', trades: isKrxSymbol, account: account('kis', calls) },
    ]);
    let failure: Error | undefined;
    await accounts.reconcile('risk-clock').catch((err: Error) => { failure = err; });
    expect(calls).to.deep.equal(['upbit reconcile risk-clock', 'kis reconcile risk-clock']);
    expect(failure?.message).to.equal('upbit unreachable');
  });
});
