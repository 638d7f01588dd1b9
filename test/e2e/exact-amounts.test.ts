import fs from 'node:fs';
import { expect } from 'chai';
import { readJournal, startService, tempDir, waitFor, writeCandles, type ServiceHandle } from '../support/service-process';

/**
 * Exact quantities through a real process: a whole-position exit of ~1.2×10⁹ units of a cheap
 * coin sells exactly what is held (a JS number cannot hold that quantity to its last place), and
 * a holding below the venue's minimum order is dust, never a position.
 */
describe('exact amounts end to end (real process)', function () {
  this.timeout(90_000);
  let svc: ServiceHandle | undefined;

  afterEach(async () => {
    await svc?.kill();
    if (svc) fs.rmSync(svc.dataDir, { recursive: true, force: true });
    svc = undefined;
  });

  async function start(prices: Record<string, number>, env: Record<string, string> = {}): Promise<ServiceHandle> {
    const dataDir = tempDir();
    const file = writeCandles(dataDir, prices, '.candles.jsonl');
    return startService({ dataDir, env: { MARKET_DATA_REPLAY_FILE: file, APPROVAL_AUTO_MAX_NOTIONAL: '5000000', WEBHOOK_RATE_LIMIT_PER_MINUTE: '0', ...env } });
  }
  const signal = async (body: Record<string, string>) => {
    const res = await fetch(`${svc!.url}/webhook/tradingview`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ secret: 'test-webhook-secret-0123456789', confidence: '0.9', ...body }),
    });
    expect(res.status).to.equal(202);
    const { signalId } = (await res.json()) as { signalId: string };
    return waitFor(async () => {
      const s = (await svc!.api('GET', `/api/signals/${signalId}`)).body;
      return s.status === 'received' ? undefined : s;
    }, 'the signal to be processed', 20_000);
  };
  const settled = (proposalId: string) => waitFor(async () => {
    const p = (await svc!.api('GET', `/api/proposals/${proposalId}`)).body;
    return ['settled', 'failed', 'rejected', 'timed-out'].includes(p.state) ? p : undefined;
  }, `${proposalId} to finish`, 20_000);

  it('sells exactly the ~1.2×10⁹ units held on a whole exit: nothing left, nothing refused', async () => {
    svc = await start({ 'KRW-PEPE': 0.00123456789 });
    const bought = await signal({ id: 'pepe-buy', ticker: 'UPBIT:PEPEKRW', action: 'buy', size: '1500000' });
    expect(bought.status, JSON.stringify(bought)).to.equal('proposed');
    const buy = await settled(bought.proposalId);
    expect(buy.state, JSON.stringify(buy.outcome)).to.equal('settled');
    const held: string = buy.fill.exact.quantity;
    // The point of the test: this quantity does not survive a trip through a JS number.
    expect(held.replace(/0+$/, '')).not.to.equal(String(Number(held)));
    expect((await svc.api('GET', '/api/portfolio')).body.positions[0].exactQuantity).to.equal(held);

    const exited = await signal({ id: 'pepe-exit', ticker: 'UPBIT:PEPEKRW', action: 'exit' });
    expect(exited.status, JSON.stringify(exited)).to.equal('proposed');
    const exit = await settled(exited.proposalId);
    expect(exit.state, JSON.stringify(exit.outcome)).to.equal('settled');
    expect(exit.exactQuantity).to.equal(held);
    expect(exit.fill.exact.quantity).to.equal(held);
    const after = (await svc.api('GET', '/api/portfolio')).body;
    expect(after.positions).to.deep.equal([]);
    expect(after.dust).to.deep.equal([]);
    const sold = readJournal(svc.dataDir).find((r) => r['type'] === 'order.filled' && r['proposalId'] === exited.proposalId)!;
    expect(sold['fill']['quantity']).to.equal(held);
  });

  it('reports a holding below PAPER_MIN_ORDER_NOTIONAL as dust: not a position, not "already holding", not sellable', async () => {
    svc = await start({ 'KRW-ETH': 5_000_000 }, { PAPER_MIN_ORDER_NOTIONAL: '5000' });
    const bought = await signal({ id: 'eth-buy', ticker: 'UPBIT:ETHKRW', action: 'buy', size: '10000' });
    expect((await settled(bought.proposalId)).state).to.equal('settled');
    const partial = await signal({ id: 'eth-part', ticker: 'UPBIT:ETHKRW', action: 'sell', size: '7000' });
    expect(partial.status, JSON.stringify(partial)).to.equal('proposed');
    expect((await settled(partial.proposalId)).state).to.equal('settled');

    const p = (await svc.api('GET', '/api/portfolio')).body;
    expect(p.positions).to.deep.equal([]);
    expect(p.dust).to.have.length(1);
    expect(p.dust[0].symbol).to.equal('ETH/KRW');
    expect(p.dust[0].marketValue).to.be.below(5000).and.above(0);
    // Dust is valued in equity: cash plus the dust's value is the account.
    expect(p.equity).to.be.closeTo(p.cash + p.dust[0].marketValue, 1e-6);

    const exit = await signal({ id: 'eth-exit', ticker: 'UPBIT:ETHKRW', action: 'exit' });
    expect(exit.status).to.equal('dropped');
    expect(exit.reason).to.equal('no_position');
    const again = await signal({ id: 'eth-again', ticker: 'UPBIT:ETHKRW', action: 'buy', size: '10000' });
    expect(again.status, JSON.stringify(again)).to.equal('proposed');
  });

  it('refuses an order below PAPER_MIN_ORDER_NOTIONAL at the venue, with the rule named', async () => {
    svc = await start({ 'KRW-ETH': 5_000_000 }, { PAPER_MIN_ORDER_NOTIONAL: '5000' });
    const small = await signal({ id: 'eth-small', ticker: 'UPBIT:ETHKRW', action: 'buy', size: '4000' });
    expect(small.status, JSON.stringify(small)).to.equal('proposed');
    const p = await settled(small.proposalId);
    expect(p.state).to.equal('failed');
    expect(JSON.stringify(p.outcome)).to.contain('below_minimum');
    expect((await svc.api('GET', '/api/portfolio')).body.positions).to.deep.equal([]);
  });
});
