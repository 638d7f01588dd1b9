import fs from 'node:fs';
import { expect } from 'chai';
import { readJournal, startService, tempDir, type ServiceHandle } from '../support/service-process';
import { approvedSignal, ledger } from '../support/live-service';
import { FakeFreqtrade } from '../fakes/fake-freqtrade';
import { FakeKis } from '../fakes/fake-kis';
import { FakeUpbitExchange } from '../fakes/fake-upbit-exchange';

/**
 * Two live venues at once (`EXECUTION_VENUE=freqtrade,kis`): crypto goes to the Freqtrade bot,
 * KRX stocks to KIS; each venue keeps its own book and the policies see their sum.
 */
describe('live trading on two venues at once (real process, fake Freqtrade bot and fake KIS)', function () {
  this.timeout(120_000);
  let bot: FakeFreqtrade;
  let kis: FakeKis;
  let market: FakeUpbitExchange;
  let svc: ServiceHandle | undefined;
  let dir: string;

  beforeEach(async () => {
    [bot, kis, market] = await Promise.all([FakeFreqtrade.start(), FakeKis.start({ feeRate: '0.00015', sellTaxRate: '0.002' }), FakeUpbitExchange.start()]);
    bot.setBalance('KRW', '1000000');
    kis.setCash('2000000');
    kis.setPrice('005930', 70_000);
    market.market.setTicker('KRW-BTC', { price: 100_000_000, volume24h: 1000 });
    dir = tempDir('live-two-');
  });
  afterEach(async () => {
    await svc?.kill();
    svc = undefined;
    await Promise.all([bot.stop(), kis.stop(), market.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const env = (): Record<string, string> => ({
    TRADING_MODE: 'live', EXECUTION_VENUE: 'freqtrade,kis',
    FREQTRADE_API_URL: bot.url, FREQTRADE_USERNAME: bot.username, FREQTRADE_PASSWORD: bot.password,
    KIS_API_URL: kis.url, KIS_APP_KEY: kis.appKey, KIS_APP_SECRET: kis.appSecret, KIS_ACCOUNT_NO: kis.accountNo, KIS_MARKET_HOURS: 'Mon-Sun 00:00-24:00',
    MARKET_DATA_SOURCE: 'exchange', MARKET_DATA_EXCHANGE: 'upbit', UPBIT_API_URL: market.url, RISK_CHECK_INTERVAL_SECONDS: '5', LIVE_MAX_ORDER_NOTIONAL: '300000',
  });

  it('routes each symbol to its venue, sums the books, and recounts each venue\'s book from the journal', async () => {
    svc = await startService({ dataDir: dir, env: env() });
    expect(readJournal(dir).filter((r) => r['type'] === 'account.opened').map((r) => [r['venue'], r['cash']]).sort()).to.deep.equal([['freqtrade', '1000000'], ['kis', '2000000']]);
    expect((await svc.api('GET', '/api/portfolio')).body.cash).to.equal(3_000_000);
    await svc.api('POST', '/api/arm', { by: 'ops', minutes: 30 });

    const crypto = await approvedSignal(svc, { symbol: 'KRW-BTC', action: 'buy', size: 100_000, confidence: 0.9 });
    const stock = await approvedSignal(svc, { symbol: '005930', action: 'buy', size: 150_000, confidence: 0.9 });
    expect([crypto.state, crypto.order?.venue, stock.state, stock.order?.venue]).to.deep.equal(['settled', 'freqtrade', 'settled', 'kis']);
    expect(bot.trades()).to.have.length(1);
    expect(kis.orders()).to.have.length(1);

    const portfolio = (await svc.api('GET', '/api/portfolio')).body;
    expect(portfolio.positions.map((p: { symbol: string; exactQuantity: string }) => [p.symbol, p.exactQuantity]).sort()).to.deep.equal([['005930/KRW', '2'], ['BTC/KRW', bot.balances()['BTC']!.free]]);
    expect(readJournal(dir).filter((r) => r['type'] === 'book.adjusted'), 'our own fills are no adjustments').to.deep.equal([]);
    expect(await svc.stop()).to.equal(0);
    svc = undefined;
    const recount = ledger(dir, env());
    expect(recount.status, recount.out).to.equal(0);
    expect(recount.out).to.contain('freqtrade: Ledger').and.contain('kis: Ledger');
    expect(recount.out.match(/The book matches the journal\./g)).to.have.length(2);
    expect(recount.out, 'the other venue\'s fills are no warning').not.to.contain('not counted');
  });
});
