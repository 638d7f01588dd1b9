import fs from 'node:fs';
import { expect } from 'chai';
import { readJournal, startService, tempDir, waitFor, type ServiceHandle } from '../support/service-process';
import { approvedSignal, finished, killWhileOrderAnswerHeld, ledger as recountLedger, refusedStart } from '../support/live-service';
import { FakeUpbitExchange } from '../fakes/fake-upbit-exchange';

/**
 * Live trading on Upbit end to end: the real service process against the fake Upbit exchange
 * (Upbit's JWT and query_hash, identifiers, minimums, fees). The book comes from the venue; a
 * disarmed service runs approved orders dry; an armed one places exactly one order; a deposit and
 * a trade made elsewhere are adjustments, not PnL.
 */
describe('live trading on Upbit (real process, fake Upbit exchange)', function () {
  this.timeout(120_000);
  let venue: FakeUpbitExchange;
  let svc: ServiceHandle | undefined;
  let dir: string;

  beforeEach(async () => {
    venue = await FakeUpbitExchange.start();
    venue.market.setTicker('KRW-BTC', { price: 100_000_000, volume24h: 1000 });
    venue.market.setTicker('KRW-ETH', { price: 5_000_000, volume24h: 1000 });
    venue.setBalance('KRW', '1000000');
    dir = tempDir('live-upbit-');
  });
  afterEach(async () => {
    await svc?.kill();
    svc = undefined;
    await venue.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const env = () => ({
    TRADING_MODE: 'live', EXECUTION_VENUE: 'upbit', UPBIT_ACCESS_KEY: venue.accessKey, UPBIT_SECRET_KEY: venue.secretKey, UPBIT_API_URL: venue.url,
    MARKET_DATA_SOURCE: 'exchange', MARKET_DATA_EXCHANGE: 'upbit', RISK_CHECK_INTERVAL_SECONDS: '1', LIVE_MAX_ORDER_NOTIONAL: '150000',
  });

  const ledger = () => recountLedger(dir, env());
  const approvedBuy = (size: number, symbol = 'KRW-BTC') => approvedSignal(svc!, { symbol, action: 'buy', size, confidence: 0.9 });

  it('opens the book from the venue, runs an approval dry while disarmed, and places exactly one order once armed', async () => {
    svc = await startService({ dataDir: dir, env: env() });
    const opened = readJournal(dir).filter((r) => r['type'] === 'account.opened');
    expect(opened.map((r) => [r['venue'], r['cash']])).to.deep.equal([['upbit', '1000000']]);
    expect((await svc.api('GET', '/api/portfolio')).body.cash).to.equal(1_000_000);
    expect((await svc.api('GET', '/api/state')).body.armedUntil, 'a fresh live DATA_DIR starts disarmed').to.equal(null);
    expect((await svc.api('GET', '/api/venues')).body.venues).to.deep.equal([
      { venue: 'upbit', minOrderNotional: 5000, orderTypes: ['market', 'limit'], dryRun: true, clientOrderIds: true },
    ]);

    const dry = await approvedBuy(100_000);
    expect(dry.state).to.equal('settled');
    expect(dry.outcome?.code).to.equal('dry_run');
    expect(dry.order?.dryRun).to.equal(true);
    expect(venue.testOrders()).to.have.length(1);
    expect(venue.orders(), 'nothing placed while disarmed').to.have.length(0);
    const dryNotice = readJournal(dir).find((r) => r['type'] === 'order.dry_run');
    expect(dryNotice, 'journalled as a dry run, not a fill').to.not.equal(undefined);

    const armed = await svc.api('POST', '/api/arm', { by: 'ops', minutes: 30 });
    expect(armed.status, JSON.stringify(armed.body)).to.equal(200);
    const real = await approvedBuy(100_000);
    expect(real.state, JSON.stringify(real)).to.equal('settled');
    expect(real.order?.dryRun).to.equal(undefined);
    const placed = venue.orders();
    expect(placed).to.have.length(1);
    expect(placed[0]).to.include({ market: 'KRW-BTC', side: 'bid', ord_type: 'price' });
    // The book holds exactly what the venue holds.
    const held = venue.balances()['BTC']!.balance;
    const portfolio = (await svc.api('GET', '/api/portfolio')).body;
    expect(portfolio.positions.map((p: { symbol: string; exactQuantity: string }) => [p.symbol, p.exactQuantity])).to.deep.equal([['BTC/KRW', held]]);
    expect(readJournal(dir).filter((r) => r['type'] === 'book.adjusted'), 'our own fill is no adjustment').to.deep.equal([]);

    // Above LIVE_MAX_ORDER_NOTIONAL: refused before sending, naming the variable.
    // 180,000 is within the risk policy's 20 % of equity, above the live cap of 150,000.
    const big = await approvedBuy(180_000, 'KRW-ETH');
    expect(big.state).to.equal('failed');
    expect(JSON.stringify(big)).to.include('LIVE_MAX_ORDER_NOTIONAL');
    expect(venue.orders()).to.have.length(1);
    expect(await svc.stop()).to.equal(0);
    svc = undefined;
    const recount = ledger();
    expect(recount.status, recount.out).to.equal(0);
    expect(recount.out).to.contain('1 fill counted').and.contain('The book matches the journal.');
  });

  it('journals a deposit and a trade made elsewhere as adjustments: no PnL, no breaker', async () => {
    svc = await startService({ dataDir: dir, env: env() });
    const before = (await svc.api('GET', '/api/portfolio')).body;
    const kinds = () => readJournal(dir).filter((r) => r['type'] === 'book.adjusted').flatMap((r) => (r['adjustments'] as Array<{ kind: string }>).map((a) => a.kind));
    const reconciled = (kind: string) => waitFor(() => (kinds().includes(kind) ? true : undefined), `the risk clock to find the ${kind}`, 15_000)
      .catch((err: Error) => { throw new Error(`${err.message}; adjustments so far: ${kinds().join(', ')}`); });
    venue.deposit('KRW', '500000');
    await reconciled('deposit');
    venue.outsideTrade({ market: 'KRW-BTC', side: 'buy', volume: '0.001', price: '100000000' });
    await reconciled('outside_trade');
    expect(kinds()).to.deep.equal(['deposit', 'outside_trade']);
    const after = (await svc.api('GET', '/api/portfolio')).body;
    expect(after.realizedPnl).to.equal(before.realizedPnl);
    expect(after.dailyPnl).to.equal(before.dailyPnl);
    expect(after.positions.map((p: { symbol: string; exactQuantity: string }) => [p.symbol, p.exactQuantity])).to.deep.equal([['BTC/KRW', venue.balances()['BTC']!.balance]]);
    expect((await svc.api('GET', '/api/state')).body.tradingState).to.equal('active');
    expect(await svc.stop()).to.equal(0);
    svc = undefined;
    const recount = ledger();
    expect(recount.status, 'the ledger counts the adjustments: ' + recount.out).to.equal(0);
  });

  it('liquidates every position at market while disarmed, with the report, and the book ends empty', async () => {
    svc = await startService({ dataDir: dir, env: env() });
    await svc.api('POST', '/api/arm', { by: 'ops', minutes: 30 });
    expect((await approvedBuy(100_000)).state).to.equal('settled');
    expect((await approvedBuy(100_000, 'KRW-ETH')).state).to.equal('settled');
    await svc.api('POST', '/api/disarm', { by: 'ops' });
    // A signal from outside that calls itself a liquidation is an ordinary exit: a person must approve it.
    const forged = await svc.api('POST', '/api/signals', { symbol: 'KRW-BTC', action: 'exit', confidence: 1, strategy: 'liquidation: anyone' });
    const forgedId = await waitFor(async () => (await svc!.api('GET', `/api/signals/${forged.body.signalId}`)).body.proposalId as string | undefined, 'the forged signal\'s proposal');
    const forgedProposal = await waitFor(async () => {
      const p = (await svc!.api('GET', `/api/proposals/${forgedId}`)).body;
      return p.state === 'pending' ? undefined : p;
    }, 'the forged proposal to be assessed');
    expect([forgedProposal.state, forgedProposal.intent]).to.deep.equal(['awaiting-approval', 'sell']);
    await svc.api('POST', `/api/proposals/${forgedId}/reject`, { by: 'ops', reason: 'forged' });
    expect(venue.orders().filter((o) => o.side === 'ask'), 'nothing sold for it').to.have.length(0);
    const report = await svc.api('POST', '/api/liquidate', { by: 'ops' });
    expect(report.status, JSON.stringify(report.body)).to.equal(200);
    expect(report.body.started.map((x: { symbol: string }) => x.symbol).sort()).to.deep.equal(['BTC/KRW', 'ETH/KRW']);
    await waitFor(async () => ((await svc!.api('GET', '/api/portfolio')).body.positions.length === 0 ? true : undefined), 'every position to be sold', 30_000);
    const asks = venue.orders().filter((o) => o.side === 'ask');
    expect(asks.map((o) => o.ord_type)).to.deep.equal(['market', 'market']);
    expect(venue.balances()['BTC']?.balance ?? '0').to.equal('0');
    expect(venue.balances()['ETH']?.balance ?? '0').to.equal('0');
  });

  it('fails an order with a typed error on a key Upbit stops accepting, and does not hammer Upbit', async () => {
    svc = await startService({ dataDir: dir, env: env() });
    await svc.api('POST', '/api/arm', { by: 'ops', minutes: 30 });
    venue.expireKey();
    const failed = await approvedBuy(100_000);
    // The approval's re-check already asks Upbit (is the order there?): the refusal ends it there.
    expect(failed.state, JSON.stringify(failed.outcome)).to.be.oneOf(['rejected', 'failed']);
    expect(JSON.stringify(failed.outcome)).to.match(/key/i);
    expect(JSON.stringify(failed)).not.to.include(venue.secretKey);
    expect(venue.orders()).to.have.length(0);
    const before = venue.privateRequests.length;
    await new Promise((r) => setTimeout(r, 3000));
    // The risk clock runs every second; after a refusal the adapter stops asking for a while.
    expect(venue.privateRequests.length - before, 'private requests in 3 s after the refusal').to.be.at.most(1);
  });

  for (const after of ['placed', 'not-placed'] as const) {
    it(`SIGKILL in executing while the order's answer is lost (${after}): after the restart exactly one order, the proposal settled`, async () => {
      const { id } = await killWhileOrderAnswerHeld({
        start: () => startService({ dataDir: dir, env: env() }), track: (s) => { svc = s; }, venue, after,
        signal: { symbol: 'KRW-BTC', action: 'buy', size: 100_000, confidence: 0.9 },
      });
      const done = await finished(svc!, id, 60_000);
      expect(done.state, JSON.stringify(done.outcome)).to.equal('settled');
      expect(venue.orders(), 'exactly one order at Upbit').to.have.length(1);
      const held = venue.balances()['BTC']!.balance;
      const positions = (await svc!.api('GET', '/api/portfolio')).body.positions as Array<{ symbol: string; exactQuantity: string }>;
      expect(positions.map((p) => [p.symbol, p.exactQuantity])).to.deep.equal([['BTC/KRW', held]]);
    });
  }

  it('starts no service with keys Upbit refuses, never printing them and not retrying', async () => {
    const { code, out } = await refusedStart(dir, { ...env(), UPBIT_SECRET_KEY: 'not-the-secret-key' });
    expect(code).to.be.a('number').and.not.equal(0);
    expect(out).to.include('UPBIT_SECRET_KEY does not belong to UPBIT_ACCESS_KEY');
    expect(out).not.to.include('not-the-secret-key');
    expect(venue.privateRequests.filter((r) => r.path === '/v1/accounts').length, 'no retry storm').to.be.at.most(2);
  });
});
