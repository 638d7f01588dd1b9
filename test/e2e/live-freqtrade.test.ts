import fs from 'node:fs';
import { expect } from 'chai';
import { readJournal, startService, tempDir, waitFor, type ServiceHandle } from '../support/service-process';
import { approvedSignal, finished, killWhileOrderAnswerHeld, ledger, refusedStart } from '../support/live-service';
import { FakeFreqtrade } from '../fakes/fake-freqtrade';
import { FakeUpbitExchange } from '../fakes/fake-upbit-exchange';

/**
 * Live trading through a Freqtrade bot end to end: the real service process against the fake
 * Freqtrade REST API (JWT login, Freqtrade's error shapes). Crypto market data comes from the fake
 * Upbit exchange's public API, at the same prices the bot trades at.
 */
describe('live trading through Freqtrade (real process, fake Freqtrade bot)', function () {
  this.timeout(200_000);
  let bot: FakeFreqtrade;
  let market: FakeUpbitExchange;
  let svc: ServiceHandle | undefined;
  let dir: string;

  beforeEach(async () => {
    bot = await FakeFreqtrade.start();
    bot.setBalance('KRW', '1000000');
    market = await FakeUpbitExchange.start();
    market.market.setTicker('KRW-BTC', { price: 100_000_000, volume24h: 1000 });
    market.market.setTicker('KRW-ETH', { price: 4_000_000, volume24h: 1000 });
    dir = tempDir('live-freqtrade-');
  });
  afterEach(async () => {
    await svc?.kill();
    svc = undefined;
    await Promise.all([bot.stop(), market.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const env = (): Record<string, string> => ({
    TRADING_MODE: 'live', EXECUTION_VENUE: 'freqtrade', FREQTRADE_API_URL: bot.url, FREQTRADE_USERNAME: bot.username, FREQTRADE_PASSWORD: bot.password,
    MARKET_DATA_SOURCE: 'exchange', MARKET_DATA_EXCHANGE: 'upbit', UPBIT_API_URL: market.url, RISK_CHECK_INTERVAL_SECONDS: '1', LIVE_MAX_ORDER_NOTIONAL: '150000',
  });
  const entries = () => bot.requestsTo('/forceenter', 'POST').map((r) => JSON.parse(r.body) as Record<string, unknown>);
  const exits = () => bot.requestsTo('/forceexit', 'POST').map((r) => JSON.parse(r.body) as Record<string, unknown>);
  const buy = (size: number, symbol = 'BTC/KRW') => approvedSignal(svc!, { symbol, action: 'buy', size, confidence: 0.9 });
  const heldBtc = () => bot.balances()['BTC']?.free ?? '0';

  it('opens the book from the bot\'s wallet, fails an approval while disarmed without sending, then enters and exits exactly once', async () => {
    svc = await startService({ dataDir: dir, env: env() });
    expect(readJournal(dir).filter((r) => r['type'] === 'account.opened').map((r) => [r['venue'], r['cash']])).to.deep.equal([['freqtrade', '1000000']]);
    expect((await svc.api('GET', '/api/venues')).body.venues).to.deep.equal([
      { venue: 'freqtrade', minOrderNotional: 5000, orderTypes: ['market', 'limit'], dryRun: false, clientOrderIds: false },
    ]);

    // Freqtrade has no per-order dry run: disarmed, an approved entry fails `disarmed` and nothing leaves.
    const disarmed = await buy(100_000);
    expect([disarmed.state, disarmed.outcome?.code], JSON.stringify(disarmed.outcome)).to.deep.equal(['failed', 'disarmed']);
    expect(entries(), 'nothing sent while disarmed').to.have.length(0);

    await svc.api('POST', '/api/arm', { by: 'ops', minutes: 30 });
    const entered = await buy(100_000);
    expect(entered.state, JSON.stringify(entered.outcome)).to.equal('settled');
    expect(entered.order?.simulatedByVenue).to.equal(undefined);
    expect(entries()).to.have.length(1);
    // Our client order id travels as the entry tag: the only handle Freqtrade keeps.
    expect(entries()[0]).to.deep.include({ pair: 'BTC/KRW', side: 'long', ordertype: 'market', entry_tag: `ct-${entered.id}` });
    const positions = (await svc!.api('GET', '/api/portfolio')).body.positions as Array<{ symbol: string; exactQuantity: string }>;
    expect(positions.map((p) => [p.symbol, p.exactQuantity])).to.deep.equal([['BTC/KRW', heldBtc()]]);

    const exit = await approvedSignal(svc, { symbol: 'BTC/KRW', action: 'exit', confidence: 0.9 });
    expect(exit.state, JSON.stringify(exit.outcome)).to.equal('settled');
    // The whole position: the whole trade is exited (no amount), so no rounding dust is left at the bot.
    expect(exits()).to.deep.equal([{ tradeid: '1', ordertype: 'market' }]);
    expect(bot.trades().map((t) => t['is_open'])).to.deep.equal([false]);
    expect((await svc.api('GET', '/api/portfolio')).body.positions).to.deep.equal([]);
    expect(readJournal(dir).filter((r) => r['type'] === 'book.adjusted'), 'our own fills are no adjustments').to.deep.equal([]);
    expect(await svc.stop()).to.equal(0);
    svc = undefined;
    const recount = ledger(dir, env());
    expect(recount.status, recount.out).to.equal(0);
    expect(recount.out).to.contain('2 fills counted').and.contain('The book matches the journal.');
  });

  it('says on every fill that a bot in its own dry_run only simulated it', async () => {
    bot.setConfig({ dry_run: true });
    svc = await startService({ dataDir: dir, env: env() });
    await svc.api('POST', '/api/arm', { by: 'ops', minutes: 30 });
    const entered = await buy(100_000);
    expect(entered.state).to.equal('settled');
    expect(entered.order?.simulatedByVenue).to.equal(true);
    const filled = readJournal(dir).find((r) => r['type'] === 'order.filled');
    expect(filled?.['order']?.['simulatedByVenue'], JSON.stringify(filled)).to.equal(true);
  });

  it('liquidates every open trade at market while disarmed, with the report', async () => {
    svc = await startService({ dataDir: dir, env: env() });
    await svc.api('POST', '/api/arm', { by: 'ops', minutes: 30 });
    expect((await buy(100_000)).state).to.equal('settled');
    expect((await buy(100_000, 'ETH/KRW')).state).to.equal('settled');
    await svc.api('POST', '/api/disarm', { by: 'ops' });
    const report = await svc.api('POST', '/api/liquidate', { by: 'ops' });
    expect(report.status, JSON.stringify(report.body)).to.equal(200);
    expect(report.body.started.map((x: { symbol: string }) => x.symbol).sort()).to.deep.equal(['BTC/KRW', 'ETH/KRW']);
    await waitFor(async () => ((await svc!.api('GET', '/api/portfolio')).body.positions.length === 0 ? true : undefined), 'every position to be sold', 30_000);
    expect(bot.trades().map((t) => t['is_open'])).to.deep.equal([false, false]);
    expect(exits().map((b) => b['ordertype'])).to.deep.equal(['market', 'market']);
  });

  for (const after of ['placed', 'not-placed'] as const) {
    it(`SIGKILL in executing while the entry's answer is lost (${after}): after the restart exactly one trade, the proposal settled`, async () => {
      const { id } = await killWhileOrderAnswerHeld({
        start: () => startService({ dataDir: dir, env: env() }), track: (s) => { svc = s; }, venue: bot, after,
        signal: { symbol: 'BTC/KRW', action: 'buy', size: 100_000, confidence: 0.9 },
      });
      // Freqtrade is given 90 s to show an entry whose answer was lost before it is sent again.
      const done = await finished(svc!, id, 150_000);
      expect(done.state, JSON.stringify(done.outcome)).to.equal('settled');
      expect(bot.trades(), 'exactly one trade at the bot').to.have.length(1);
      expect(bot.trades()[0]!['enter_tag']).to.equal(`ct-${id}`);
      const positions = (await svc!.api('GET', '/api/portfolio')).body.positions as Array<{ symbol: string; exactQuantity: string }>;
      expect(positions.map((p) => [p.symbol, p.exactQuantity])).to.deep.equal([['BTC/KRW', heldBtc()]]);
    });
  }

  it('starts no service with a password the bot refuses: a typed error, the password never printed, no storm of logins', async () => {
    const { code, out } = await refusedStart(dir, { ...env(), FREQTRADE_PASSWORD: 'not-the-bot-password' });
    expect(code).to.be.a('number').and.not.equal(0);
    expect(out).to.include('Freqtrade refused the credentials').and.include('FREQTRADE_PASSWORD');
    expect(out).not.to.include('not-the-bot-password');
    expect(bot.loginCount, 'logins tried').to.be.at.most(1);
  });

  it('refuses to start when the bot\'s stake currency is not QUOTE_CURRENCY, naming both', async () => {
    bot.setConfig({ stake_currency: 'USDT' });
    const { code, out } = await refusedStart(dir, env());
    expect(code).to.not.equal(0);
    expect(out).to.include('USDT').and.include('KRW');
    expect(entries()).to.have.length(0);
  });
});
