import fs from 'node:fs';
import { expect } from 'chai';
import { readJournal, startService, tempDir, waitFor, type ServiceHandle } from '../support/service-process';
import { approvedSignal, finished, killWhileOrderAnswerHeld, ledger, refusedStart } from '../support/live-service';
import { FakeKis } from '../fakes/fake-kis';

/**
 * Live trading of KRX stocks through KIS end to end: the real service process against the fake
 * KIS Open API (its token rule, appkey/appsecret/tr_id headers, paper tr_ids). Market data for the
 * stocks comes from KIS's quotations too.
 */
describe('live trading on KIS (real process, fake KIS Open API)', function () {
  this.timeout(150_000);
  let kis: FakeKis;
  let svc: ServiceHandle | undefined;
  let dir: string;

  beforeEach(async () => {
    kis = await FakeKis.start({ feeRate: '0.00015', sellTaxRate: '0.002' });
    kis.setCash('10000000');
    kis.setPrice('005930', 70_000);
    kis.setPrice('000660', 200_000);
    dir = tempDir('live-kis-');
  });
  afterEach(async () => {
    await svc?.kill();
    svc = undefined;
    await kis.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const env = (extra: Record<string, string> = {}): Record<string, string> => ({
    TRADING_MODE: 'live', EXECUTION_VENUE: 'kis', KIS_API_URL: kis.url, KIS_APP_KEY: kis.appKey, KIS_APP_SECRET: kis.appSecret, KIS_ACCOUNT_NO: kis.accountNo,
    KIS_MARKET_HOURS: 'Mon-Sun 00:00-24:00', MARKET_DATA_SOURCE: 'exchange', RISK_CHECK_INTERVAL_SECONDS: '5', LIVE_MAX_ORDER_NOTIONAL: '500000', ...extra,
  });
  const orderRequests = () => kis.requestsTo('/trading/order-cash');
  const buy = (size: number, symbol = '005930') => approvedSignal(svc!, { symbol, action: 'buy', size, confidence: 0.9 });

  it('opens the book from the account, prices KRX stocks from KIS, fails while disarmed without sending, then buys and sells whole shares once each', async () => {
    svc = await startService({ dataDir: dir, env: env() });
    expect(readJournal(dir).filter((r) => r['type'] === 'account.opened').map((r) => [r['venue'], r['cash']])).to.deep.equal([['kis', '10000000']]);
    expect((await svc.api('GET', '/api/venues')).body.venues.map((v: { venue: string; dryRun: boolean; clientOrderIds: boolean }) => [v.venue, v.dryRun, v.clientOrderIds])).to.deep.equal([['kis', false, false]]);

    const disarmed = await buy(150_000);
    expect([disarmed.state, disarmed.outcome?.code], JSON.stringify(disarmed.outcome)).to.deep.equal(['failed', 'disarmed']);
    expect(orderRequests(), 'nothing sent while disarmed').to.have.length(0);

    await svc.api('POST', '/api/arm', { by: 'ops', minutes: 30 });
    // 150,000 KRW at 70,000 a share: two whole shares, never a fraction.
    const bought = await buy(150_000);
    expect(bought.state, JSON.stringify(bought.outcome)).to.equal('settled');
    expect(bought.order?.exact?.filledQuantity).to.equal('2');
    expect(orderRequests().map((r) => [r.headers['tr_id'], r.body?.['PDNO'], r.body?.['ORD_QTY'], r.body?.['ORD_DVSN']])).to.deep.equal([['VTTC0012U', '005930', '2', '01']]);
    for (const r of orderRequests()) {
      expect(r.headers['appkey']).to.equal(kis.appKey);
      expect(r.headers['authorization']).to.match(/^Bearer /);
    }
    const positions = (await svc!.api('GET', '/api/portfolio')).body.positions as Array<{ symbol: string; exactQuantity: string }>;
    expect(positions.map((p) => [p.symbol, p.exactQuantity])).to.deep.equal([['005930/KRW', '2']]);

    const sold = await approvedSignal(svc, { symbol: 'KRX:005930', action: 'exit', confidence: 0.9 });
    expect(sold.state, JSON.stringify(sold.outcome)).to.equal('settled');
    expect(orderRequests().map((r) => [r.headers['tr_id'], r.body?.['ORD_QTY']])).to.deep.equal([['VTTC0012U', '2'], ['VTTC0011U', '2']]);
    expect(kis.holding('005930')).to.equal(0);
    expect(readJournal(dir).filter((r) => r['type'] === 'book.adjusted'), 'our own fills are no adjustments').to.deep.equal([]);
    expect(await svc.stop()).to.equal(0);
    svc = undefined;
    const recount = ledger(dir, env());
    expect(recount.status, recount.out).to.equal(0);
    expect(recount.out).to.contain('2 fills counted').and.contain('The book matches the journal.');
  });

  it('holds a liquidation outside the session (KIS_MARKET_HOURS) without sending anything, reporting it as waiting', async () => {
    svc = await startService({ dataDir: dir, env: env() });
    await svc.api('POST', '/api/arm', { by: 'ops', minutes: 30 });
    expect((await buy(150_000)).state).to.equal('settled');
    expect(await svc.stop()).to.equal(0);
    // A session on a day that is not today in Seoul: closed now, whatever the time.
    const seoulDay = new Date(Date.now() + 9 * 3_600_000).getUTCDay();
    const otherDay = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][(seoulDay + 3) % 7]!;
    svc = await startService({ dataDir: dir, env: env({ KIS_MARKET_HOURS: `${otherDay} 09:00-15:30`, RISK_CHECK_INTERVAL_SECONDS: '1' }) });
    const report = await svc.api('POST', '/api/liquidate', { by: 'ops' });
    expect(report.status, JSON.stringify(report.body)).to.equal(200);
    expect(report.body.started).to.deep.equal([]);
    expect(report.body.waiting.map((w: { symbol: string }) => w.symbol)).to.deep.equal(['005930/KRW']);
    expect(report.body.waiting[0].reason).to.include('KIS_MARKET_HOURS').and.include(`${otherDay} 09:00-15:30`);
    // The standing liquidation looks again every round, and still sends nothing while KRX is closed.
    await new Promise((r) => setTimeout(r, 3000));
    expect(orderRequests().filter((r) => r.headers['tr_id'] === 'VTTC0011U'), 'no sell sent').to.have.length(0);
    expect((await svc.api('GET', '/api/proposals?limit=10')).body.proposals.filter((p: { intent: string }) => p.intent === 'liquidate')).to.deep.equal([]);
    expect(kis.holding('005930')).to.equal(2);
  });

  it('liquidates every holding at market while disarmed, with the report', async () => {
    svc = await startService({ dataDir: dir, env: env() });
    await svc.api('POST', '/api/arm', { by: 'ops', minutes: 30 });
    expect((await buy(150_000)).state).to.equal('settled');
    expect((await buy(400_000, '000660')).state).to.equal('settled');
    await svc.api('POST', '/api/disarm', { by: 'ops' });
    const report = await svc.api('POST', '/api/liquidate', { by: 'ops' });
    expect(report.status, JSON.stringify(report.body)).to.equal(200);
    expect(report.body.started.map((x: { symbol: string }) => x.symbol).sort()).to.deep.equal(['000660/KRW', '005930/KRW']);
    await waitFor(async () => ((await svc!.api('GET', '/api/portfolio')).body.positions.length === 0 ? true : undefined), 'every holding to be sold', 30_000);
    expect([kis.holding('005930'), kis.holding('000660')]).to.deep.equal([0, 0]);
    expect(orderRequests().filter((r) => r.headers['tr_id'] === 'VTTC0011U').map((r) => r.body?.['ORD_DVSN'])).to.deep.equal(['01', '01']);
  });

  for (const after of ['placed', 'not-placed'] as const) {
    it(`SIGKILL in executing while the order's answer is lost (${after}): after the restart exactly one order, found by the day's orders, the decision journalled`, async () => {
      const { id } = await killWhileOrderAnswerHeld({
        start: () => startService({ dataDir: dir, env: env() }), track: (s) => { svc = s; }, venue: kis, after,
        signal: { symbol: '005930', action: 'buy', size: 150_000, confidence: 0.9 },
      });
      const done = await finished(svc!, id, 90_000);
      expect(done.state, JSON.stringify(done.outcome)).to.equal('settled');
      expect(kis.orders(), 'exactly one order at KIS').to.have.length(1);
      expect(kis.holding('005930')).to.equal(2);
      const decisions = readJournal(dir).filter((r) => r['type'] === 'venue.decision').map((r) => r['decision']);
      expect(decisions).to.include(after === 'placed' ? 'found' : 'absent');
      const positions = (await svc!.api('GET', '/api/portfolio')).body.positions as Array<{ symbol: string; exactQuantity: string }>;
      expect(positions.map((p) => [p.symbol, p.exactQuantity])).to.deep.equal([['005930/KRW', '2']]);
    });
  }

  it('keeps one token across restarts (KIS alerts the account holder for each one issued)', async () => {
    svc = await startService({ dataDir: dir, env: env() });
    expect(await svc.stop()).to.equal(0);
    svc = await startService({ dataDir: dir, env: env() });
    await svc.api('GET', '/api/portfolio');
    expect(kis.tokensIssued).to.equal(1);
  });

  it('starts no service with an app key KIS refuses: a typed error, nothing secret printed, one token request', async () => {
    const { code, out } = await refusedStart(dir, env({ KIS_APP_SECRET: 'not-the-app-secret-of-this-key' }));
    expect(code).to.be.a('number').and.not.equal(0);
    expect(out).to.match(/KIS_APP_KEY|KIS_APP_SECRET/);
    expect(out).not.to.include('not-the-app-secret-of-this-key');
    expect(kis.requestsTo('/oauth2/tokenP').length, 'token requests').to.equal(1);
    expect(kis.tokensIssued).to.equal(0);
  });
});
