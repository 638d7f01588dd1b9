import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { FAKE_KIS_MESSAGES, FakeKis, type FakeKisOptions } from '../fakes/fake-kis';
import { KisClient, kisErrorOf, kisTrId, parseKisAccount, type KisClientOptions } from '../../src/integrations/kis';
import { TransientError, VenueAuthError, VenueRejectedError, type AppError } from '../../src/errors';
import type { Logger } from '../../src/logging';
import { rejectionOf } from '../support/rejection';

const PDNO = '005930';
/** Monday 2 March 2026, 10:00 in Seoul. */
const MONDAY_10_KST = Date.parse('2026-03-02T01:00:00Z');


/** A logger that keeps every line it is given. */
function recordingLogger(lines: string[]): Logger {
  const keep = (level: string) => (message: string, meta?: unknown) => {
    lines.push(JSON.stringify({ level, message, meta }));
  };
  const logger = { info: keep('info'), warn: keep('warn'), error: keep('error'), debug: keep('debug'), child: () => logger };
  return logger as unknown as Logger;
}

describe('KisClient', () => {
  let fake: FakeKis;
  let dir: string;
  const clock = { t: MONDAY_10_KST };
  let sleeps: number[];
  const sleep = async (ms: number) => {
    sleeps.push(ms);
    clock.t += ms;
    await new Promise((resolve) => setImmediate(resolve));
  };

  async function start(options: FakeKisOptions = {}): Promise<void> {
    fake = await FakeKis.start({ now: () => clock.t, ...options });
    fake.setPrice(PDNO, 70_000);
    fake.setCash(1_000_000);
  }
  const client = (extra: Partial<KisClientOptions> = {}) => new KisClient({
    apiUrl: fake.url, appKey: fake.appKey, appSecret: fake.appSecret, accountNo: fake.accountNo, paper: fake.paper, dataDir: dir, now: () => clock.t, sleep, timeoutMs: 2000, ...extra,
  });

  beforeEach(() => {
    clock.t = MONDAY_10_KST;
    sleeps = [];
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kis-client-'));
  });
  afterEach(async () => {
    await fake?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('the wire', () => {
    it('sends every required header and the paper transaction id of each call for a paper account', async () => {
      await start({ requestsPerSecond: 0 });
      fake.autoFill(false);
      fake.setHolding(PDNO, 1);
      const c = client();
      const placed = await c.orderCash({ side: 'buy', pdno: PDNO, ordDvsn: '01', quantity: '1', price: '0' });
      await c.orderCash({ side: 'sell', pdno: PDNO, ordDvsn: '01', quantity: '1', price: '0' });
      await c.dailyOrders({ date: '20260302' });
      await c.balance();
      await c.price(PDNO);
      await c.dailyCandles(PDNO, '20260201', '20260302');
      await c.cancelOrder({ orgNo: placed.orgNo, odno: placed.odno, ordDvsn: '01' });
      const api = fake.requests.filter((r) => r.path.startsWith('/uapi'));
      expect(api.map((r) => String(r.headers['tr_id']))).to.deep.equal(['VTTC0012U', 'VTTC0011U', 'VTTC0081R', 'VTTC8434R', 'FHKST01010100', 'FHKST03010100', 'VTTC0013U']);
      for (const r of api) {
        expect(r.headers).to.include({ 'content-type': 'application/json; charset=utf-8', appkey: fake.appKey, appsecret: fake.appSecret, custtype: 'P' });
        expect(r.headers['authorization']).to.match(/^Bearer fake-token-/);
      }
      expect(api[0]!.body).to.deep.equal({ CANO: '50123456', ACNT_PRDT_CD: '01', PDNO, ORD_DVSN: '01', ORD_QTY: '1', ORD_UNPR: '0', EXCG_ID_DVSN_CD: 'KRX' });
      expect(api.filter((r) => r.error !== undefined)).to.deep.equal([]);
    });

    it('uses real transaction ids (TTTC…) for a real account, and the same quotation ids for both', async () => {
      expect(kisTrId('buy', false)).to.equal('TTTC0012U');
      expect(kisTrId('sell', false)).to.equal('TTTC0011U');
      expect(kisTrId('balance', true)).to.equal('VTTC8434R');
      expect(kisTrId('price', true)).to.equal('FHKST01010100');
      expect(kisTrId('dailyCandles', false)).to.equal('FHKST03010100');
      await start({ paper: false, requestsPerSecond: 0 });
      await client().balance();
      expect(fake.requestsTo('/inquire-balance')[0]!.headers['tr_id']).to.equal('TTTC8434R');
    });

    it('pages the day\'s orders with tr_cont N while KIS answers M', async () => {
      await start({ requestsPerSecond: 0 });
      fake.autoFill(false);
      const c = client();
      for (let i = 0; i < 17; i++) await c.orderCash({ side: 'buy', pdno: PDNO, ordDvsn: '00', quantity: '1', price: '60000' });
      const rows = await c.dailyOrders({ date: '20260302', pdno: PDNO });
      expect(rows).to.have.length(17);
      const pages = fake.requestsTo('/inquire-daily-ccld');
      expect(pages.map((r) => r.headers['tr_cont'] ?? '')).to.deep.equal(['', 'N']);
    });
  });

  describe('errors', () => {
    it('translates KIS error answers by code and words', () => {
      expect(kisErrorOf({ status: 500, code: 'EGW00201', message: '초당 거래건수를 초과하였습니다.' }, 'x').code).to.equal('kis_rate_limited');
      expect(kisErrorOf({ status: 403, code: 'EGW00105', message: '유효하지 않은 AppSecret입니다.' }, 'x')).to.be.instanceOf(VenueAuthError);
      expect(kisErrorOf({ status: 200, code: 'APBK0952', message: '주문가능금액을 초과 했습니다' }, 'x').code).to.equal('insufficient_cash');
      expect(kisErrorOf({ status: 502 }, 'x')).to.be.instanceOf(TransientError);
      expect(kisErrorOf({ status: 500, code: 'EGW00001', message: '일시적인 오류가 발생했습니다.' }, 'x')).to.be.instanceOf(TransientError);
      expect(kisErrorOf({ status: 500, code: 'OPSQ0002', message: '없는 서비스 코드 입니다' }, 'x').code).to.equal('wrong_environment');
    });

    it('reads an unknown code on order-cash as an unknown outcome, never a refusal (HTTP 200 or 5xx)', () => {
      const unknown = kisErrorOf({ status: 200, code: 'ZZZZ0001', message: '알 수 없는 오류' }, 'order-cash', { placesOrder: true });
      expect(unknown).to.be.instanceOf(TransientError);
      expect(unknown.code).to.equal('kis_outcome_unknown');
      for (const code of ['APBK1234', 'KIOK0001', '12345678', 'A1']) {
        const e = kisErrorOf({ status: 500, code, message: '처리 중 오류가 발생했습니다.' }, 'order-cash', { placesOrder: true });
        expect(e, code).to.be.instanceOf(TransientError);
      }
      // The same code on a query placed nothing: a refusal.
      expect(kisErrorOf({ status: 200, code: 'ZZZZ0001', message: '알 수 없는 오류' }, 'inquire-price').code).to.equal('kis_refused');
      expect(kisErrorOf({ status: 500, code: 'APBK1234', message: '오류' }, 'inquire-price')).to.be.instanceOf(TransientError);
    });

    it('reads known refusal codes and words on order-cash as refused', () => {
      const cases: Array<[string, string, string]> = [
        ['APBK0952', '처리할 수 없습니다', 'insufficient_cash'],
        ['APBK0400', '', 'insufficient_position'],
        ['40580000', '', 'market_closed'],
        ['APBK0506', '', 'invalid_quantity'],
        ['OPSQ0002', '', 'wrong_environment'],
        ['ZZZZ0002', FAKE_KIS_MESSAGES.insufficientShares, 'insufficient_position'],
        ['ZZZZ0003', FAKE_KIS_MESSAGES.marketClosed, 'market_closed'],
        ['ZZZZ0004', '주문단가를 확인하여 주십시요', 'invalid_price'],
        ['ZZZZ0005', '주문수량을 확인하여 주십시요.', 'invalid_quantity'],
      ];
      for (const [code, message, expected] of cases) {
        const e = kisErrorOf({ status: 200, code, message }, 'order-cash', { placesOrder: true });
        expect(e, code).to.be.instanceOf(VenueRejectedError);
        expect(e.code, code).to.equal(expected);
      }
    });

    it('answers kis_outcome_unknown when KIS answers order-cash with an unknown code, and kis_refused on a query', async () => {
      await start({ requestsPerSecond: 0 });
      const c = client();
      fake.answerNext('order-cash', { status: 200, msgCd: 'ZZZZ0001', msg1: '알 수 없는 오류' }, { placeFirst: true });
      const e = await rejectionOf(c.orderCash({ side: 'buy', pdno: PDNO, ordDvsn: '01', quantity: '1', price: '0' }));
      expect(e).to.be.instanceOf(TransientError);
      expect(e.code).to.equal('kis_outcome_unknown');
      expect(e.message).to.include('ZZZZ0001').and.include('unknown');
      fake.answerNext('inquire-price', { status: 200, msgCd: 'ZZZZ0001', msg1: '알 수 없는 오류' });
      expect((await rejectionOf(c.price(PDNO))).code).to.equal('kis_refused');
    });

    it('never echoes the account number it refuses', () => {
      let err: AppError | undefined;
      try {
        parseKisAccount('7712345601x');
      } catch (e) {
        err = e as AppError;
      }
      expect(err).to.be.instanceOf(VenueAuthError);
      expect(err!.message).to.include('KIS_ACCOUNT_NO');
      expect(err!.message).to.not.include('77123456');
      expect(JSON.stringify(err!.details)).to.not.include('77123456');
      expect(parseKisAccount('50123456-01')).to.deep.equal({ cano: '50123456', productCode: '01' });
    });

    it('keeps the appkey, the appsecret and tokens out of every error and log line', async () => {
      await start({ requestsPerSecond: 0 });
      const lines: string[] = [];
      const logger = recordingLogger(lines);
      const errors: AppError[] = [];
      const c = client({ logger });
      await c.price(PDNO);
      const token = (JSON.parse(fs.readFileSync(path.join(dir, 'kis-token.json'), 'utf8')) as { accessToken: string }).accessToken;
      const echo = `appkey ${fake.appKey} appsecret ${fake.appSecret} token ${token}`;
      fake.answerNext('inquire-price', { status: 200, msgCd: 'ZZZZ0001', msg1: echo });
      errors.push(await rejectionOf(c.price(PDNO)));
      fake.answerNext('order-cash', { status: 500, msgCd: 'APBK1234', msg1: echo });
      errors.push(await rejectionOf(c.orderCash({ side: 'buy', pdno: PDNO, ordDvsn: '01', quantity: '1', price: '0' })));
      fake.answerNext('inquire-balance', { status: 500, msgCd: 'EGW00123', msg1: echo });
      clock.t += 61_000;
      await c.balance(); // the refused token is replaced and the call repeated
      fake.refuseTokens(true);
      clock.t += 61_000;
      errors.push(await rejectionOf(c.price(PDNO)));
      errors.push(await rejectionOf(client({ logger, appSecret: 'wrong-secret-0000000000000000' }).price(PDNO)));
      errors.push(await rejectionOf(client({ logger, apiUrl: 'http://127.0.0.1:9' }).price(PDNO)));
      expect(errors.every((e) => e instanceof Error)).to.equal(true);
      const secrets = [fake.appKey, fake.appSecret, token];
      const seen = [...errors.map((e) => `${e.message} ${JSON.stringify(e.details)}`), ...lines];
      for (const text of seen) for (const secret of secrets) expect(text).to.not.include(secret);
      expect(errors[0]!.message).to.include('[redacted]');
    });
  });

  describe('the throttle', () => {
    it('keeps to requestsPerSecond, and waits a second after EGW00201', async () => {
      await start({ requestsPerSecond: 2 });
      const c = client({ requestsPerSecond: 2 });
      for (let i = 0; i < 6; i++) await c.price(PDNO);
      expect(fake.requests.filter((r) => r.error === 'EGW00201')).to.deep.equal([]);
      expect(sleeps.length).to.be.greaterThan(0);
      clock.t += 5000;
      fake.answerNext('inquire-price', { status: 500, msgCd: 'EGW00201', msg1: FAKE_KIS_MESSAGES.rateLimited });
      const limited = await rejectionOf(c.price(PDNO));
      expect(limited.code).to.equal('kis_rate_limited');
      const before = clock.t;
      await c.price(PDNO);
      const prices = fake.requestsTo('/inquire-price');
      expect(prices[prices.length - 1]!.at - before).to.be.at.least(1000);
    });
  });

  describe('the token', () => {
    it('reuses the cached token across clients on one DATA_DIR and across restarts', async () => {
      await start({ requestsPerSecond: 0 });
      await client().price(PDNO);
      await client().price(PDNO);
      clock.t += 3600_000;
      await client().balance();
      expect(fake.tokensIssued).to.equal(1);
      expect(fs.statSync(path.join(dir, 'kis-token.json')).mode & 0o777).to.equal(0o600);
    });

    it('replaces a refused token once and repeats the call', async () => {
      await start({ requestsPerSecond: 0 });
      const c = client();
      await c.price(PDNO);
      clock.t += 61_000;
      fake.expireTokens();
      expect((await c.price(PDNO)).stck_prpr).to.equal('70000');
      expect(fake.tokensIssued).to.equal(2);
    });

    it('backs off token issuing, doubling, while KIS refuses tokens it has just issued, and answers VenueAuthError meanwhile', async () => {
      await start({ requestsPerSecond: 0 });
      fake.refuseTokens(true);
      const c = client();
      const first = await rejectionOf(c.price(PDNO));
      expect(first).to.be.instanceOf(VenueAuthError);
      expect(fake.tokensIssued).to.equal(1);
      for (let i = 0; i < 30; i++) {
        clock.t += 61_000;
        expect(await rejectionOf(c.price(PDNO))).to.be.instanceOf(VenueAuthError);
      }
      // Issued at 0, 5 and 15 minutes (5, then 10, then 20 minutes apart), not once a minute.
      expect(fake.tokensIssued).to.equal(3);
      const err = await rejectionOf(c.price(PDNO));
      expect(err.code).to.equal('token_refused');
      expect(err.message).to.include('KIS_APP_KEY').and.include('just issued');
      // A restart keeps the back-off.
      const requests = fake.requestsTo('/oauth2/tokenP').length;
      expect(await rejectionOf(client().price(PDNO))).to.be.instanceOf(VenueAuthError);
      expect(fake.requestsTo('/oauth2/tokenP')).to.have.length(requests);
      // Once KIS takes a token, the back-off ends: the next refusal waits 5 minutes again, not 40.
      fake.refuseTokens(false);
      clock.t = (err.details['nextIssueAt'] as number) + 1;
      await c.price(PDNO);
      expect(fake.tokensIssued).to.equal(4);
      fake.refuseTokens(true);
      clock.t += 61_000;
      const again = await rejectionOf(c.price(PDNO));
      expect(fake.tokensIssued).to.equal(5);
      expect(again.code).to.equal('token_refused');
      const next = await rejectionOf(c.price(PDNO));
      expect((next.details['nextIssueAt'] as number) - clock.t).to.equal(300_000);
    });
  });
});
