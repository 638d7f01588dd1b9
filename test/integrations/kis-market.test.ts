import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { FakeKis } from '../fakes/fake-kis';
import { KisClient } from '../../src/integrations/kis';
import { KisMarketData } from '../../src/integrations/kis-market';
import { parseMarketSession, type MarketSession } from '../../src/market-session';
import { NotFoundError } from '../../src/errors';
import { rejectionOf } from '../support/rejection';

const PDNO = '005930';
const SYMBOL = '005930/KRW';
/** Monday 2 March 2026, 10:00 in Seoul. */
const MONDAY_10_KST = Date.parse('2026-03-02T01:00:00Z');
const KRX = parseMarketSession('09:00-15:30', 'Asia/Seoul') as MarketSession;


describe('KisMarketData', () => {
  let fake: FakeKis;
  let dir: string;
  const clock = { t: MONDAY_10_KST };
  beforeEach(async () => {
    clock.t = MONDAY_10_KST;
    fake = await FakeKis.start({ now: () => clock.t, requestsPerSecond: 0 });
    fake.setPrice(PDNO, 71_500);
    fake.setCandles(PDNO, ['20260224', '20260225', '20260226', '20260227', '20260302'].map((date, i) => ({ date, open: 70_000 + i, high: 72_000 + i, low: 69_000 + i, close: 71_000 + i, volume: 1000 + i })));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kis-market-'));
  });
  afterEach(async () => {
    await fake.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const market = () => new KisMarketData(new KisClient({ apiUrl: fake.url, appKey: fake.appKey, appSecret: fake.appSecret, accountNo: fake.accountNo, paper: true, dataDir: dir, now: () => clock.t, sleep: async (ms) => { clock.t += ms; } }), { session: KRX, now: () => clock.t });

  it('quotes the current price, timed when asked during the session', async () => {
    expect(await market().quote(SYMBOL)).to.deep.equal({ symbol: SYMBOL, price: 71_500, at: new Date(MONDAY_10_KST).toISOString(), source: 'exchange', volume24h: 1000 });
    expect(fake.requestsTo('/inquire-price')[0]!.query).to.include({ FID_COND_MRKT_DIV_CODE: 'J', FID_INPUT_ISCD: PDNO });
  });

  it('times a quote at the close from the session\'s last minute on, and outside the session at the last close', async () => {
    clock.t = Date.parse('2026-03-02T06:29:00Z'); // 15:29 in Seoul: live
    expect((await market().quote(SYMBOL)).at).to.equal('2026-03-02T06:29:00.000Z');
    clock.t = Date.parse('2026-03-02T06:45:00Z'); // 15:45: closed today
    expect((await market().quote(SYMBOL)).at).to.equal('2026-03-02T06:30:00.000Z');
    clock.t = Date.parse('2026-03-07T03:00:00Z'); // Saturday noon in Seoul
    expect((await market().quote(SYMBOL)).at).to.equal('2026-03-06T06:30:00.000Z'); // Friday 15:30 KST
  });

  it('answers daily candles oldest first, at most `limit`, each at its day\'s 09:00 KST', async () => {
    const candles = await market().candles(SYMBOL, 3);
    expect(candles.map((c) => c.time)).to.deep.equal(['2026-02-26T00:00:00.000Z', '2026-02-27T00:00:00.000Z', '2026-03-02T00:00:00.000Z']);
    expect(candles[2]).to.include({ open: 70_004, high: 72_004, low: 69_004, close: 71_004, volume: 1004 });
    expect((await market().candles(SYMBOL, 50)).map((c) => c.close)).to.deep.equal([71_000, 71_001, 71_002, 71_003, 71_004]);
  });

  it('answers an unknown stock or a non-KRX symbol as unknown_symbol', async () => {
    const m = market();
    const a = await rejectionOf(m.quote('123450/KRW'));
    expect(a).to.be.instanceOf(NotFoundError);
    expect(a.code).to.equal('unknown_symbol');
    expect((await rejectionOf(m.candles('123450/KRW', 5))).code).to.equal('unknown_symbol');
    expect((await rejectionOf(m.quote('BTC/KRW'))).code).to.equal('unknown_symbol');
    expect(m.covers('BTC/KRW')).to.equal(false);
    expect(m.covers(SYMBOL)).to.equal(true);
  });
});
