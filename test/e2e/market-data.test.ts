import fs from 'node:fs';
import { expect } from 'chai';
import { FakeUpbit } from '../fakes/fake-upbit';
import { readJournal, startService, waitFor, type ServiceHandle } from '../support/service-process';

/**
 * The service on exchange market data (ccxt → a local Upbit): when the exchange is slow or
 * failing, the webhook answer is unaffected, and the proposal is made at the signal's price and
 * marked (MARKET_DATA_ON_FAILURE=mark) or dropped with a reason (drop).
 */
describe('exchange market data failures (real process, local Upbit)', function () {
  this.timeout(90_000);
  let upbit: FakeUpbit;
  let svc: ServiceHandle | undefined;

  beforeEach(async () => {
    upbit = await FakeUpbit.start();
    upbit.setTicker('KRW-BTC', { price: 100_000_000, volume24h: 1234.5 });
  });
  afterEach(async () => {
    await svc?.kill();
    if (svc) fs.rmSync(svc.dataDir, { recursive: true, force: true });
    svc = undefined;
    await upbit.stop();
  });

  const env = (onFailure: 'mark' | 'drop') => ({
    MARKET_DATA_SOURCE: 'exchange', MARKET_DATA_EXCHANGE: 'upbit', UPBIT_API_URL: upbit.url,
    MARKET_DATA_TIMEOUT_MS: '1500', MARKET_DATA_ON_FAILURE: onFailure, WEBHOOK_RATE_LIMIT_PER_MINUTE: '0',
  });
  const alert = { secret: 'test-webhook-secret-0123456789', ticker: 'UPBIT:BTCKRW', action: 'buy', price: '99000000', size: '50000', confidence: '0.9' };
  const post = async (body: Record<string, unknown>) => {
    const res = await fetch(`${svc!.url}/webhook/tradingview`, { method: 'POST', headers: { 'content-type': 'text/plain; charset=utf-8' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as { signalId: string } };
  };
  const outcome = (signalId: string) => waitFor(async () => {
    const s = (await svc!.api('GET', `/api/signals/${signalId}`)).body;
    return s.status === 'received' ? undefined : s;
  }, 'the signal to be processed', 20_000);

  it('uses the exchange price when the exchange answers', async () => {
    svc = await startService({ env: env('mark') });
    const res = await post({ ...alert, id: 'ok-1' });
    expect(res.status).to.equal(202);
    const s = await outcome(res.body.signalId);
    const p = (await svc.api('GET', `/api/proposals/${s.proposalId}`)).body;
    expect(p.price).to.equal(100_000_000);
    expect(p.priceSource).to.equal('market');
    expect(upbit.requestsTo('/v1/ticker').length).to.be.greaterThan(0);
  });

  it('marks the proposal when the exchange times out (mark), and the webhook still answers 202 at once', async () => {
    svc = await startService({ env: env('mark') });
    upbit.slowNext(50, 2_000);
    const res = await post({ ...alert, id: 'slow-1' });
    expect(res.status).to.equal(202);
    const s = await outcome(res.body.signalId);
    expect(s.status).to.equal('proposed');
    const p = (await svc.api('GET', `/api/proposals/${s.proposalId}`)).body;
    expect(p.priceSource).to.equal('signal');
    expect(p.price).to.equal(99_000_000);
    expect(p.reasons.map((r: { code: string }) => r.code)).to.include('market_data_missing');
    // The webhook answered before the market data was even asked for.
    const journal = readJournal(svc.dataDir);
    const received = journal.find((r) => r['type'] === 'signal.received' && r['signalId'] === res.body.signalId)!;
    const proposed = journal.find((r) => r['type'] === 'proposal.created' && r['signalId'] === res.body.signalId)!;
    expect(Date.parse(proposed['at'])).to.be.at.least(Date.parse(received['at']));
  });

  it('drops the signal with a reason when the exchange fails (drop)', async () => {
    svc = await startService({ env: env('drop') });
    upbit.failNext(50, 500, { error: { name: 'server_error', message: 'boom' } });
    const res = await post({ ...alert, id: 'fail-1' });
    expect(res.status).to.equal(202);
    const s = await outcome(res.body.signalId);
    expect(s.status).to.equal('dropped');
    expect(s.reason).to.equal('market_data_unavailable');
    expect((await svc.api('GET', '/api/proposals')).body.proposals).to.deep.equal([]);
  });
});
