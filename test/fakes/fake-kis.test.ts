import { expect } from 'chai';
import { FakeKis } from './fake-kis';

describe('FakeKis', () => {
  let fake: FakeKis;
  const clock = { t: Date.parse('2026-03-02T01:00:00Z') };
  afterEach(async () => {
    await fake?.stop();
  });

  const issue = (appkey = fake.appKey, appsecret = fake.appSecret) => fetch(`${fake.url}/oauth2/tokenP`, {
    method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify({ grant_type: 'client_credentials', appkey, appsecret }),
  });

  async function token(): Promise<string> {
    const res = await issue();
    expect(res.status).to.equal(200);
    return ((await res.json()) as { access_token: string }).access_token;
  }

  const headers = (tok: string, trId: string, extra: Record<string, string> = {}) => ({
    'content-type': 'application/json; charset=utf-8', authorization: `Bearer ${tok}`, appkey: fake.appKey, appsecret: fake.appSecret, tr_id: trId, custtype: 'P', ...extra,
  });
  const priceUrl = () => `${fake.url}/uapi/domestic-stock/v1/quotations/inquire-price?FID_COND_MRKT_DIV_CODE=J&FID_INPUT_ISCD=005930`;
  const order = (tok: string, trId: string) => fetch(`${fake.url}/uapi/domestic-stock/v1/trading/order-cash`, {
    method: 'POST', headers: headers(tok, trId),
    body: JSON.stringify({ CANO: '50123456', ACNT_PRDT_CD: '01', PDNO: '005930', ORD_DVSN: '01', ORD_QTY: '2', ORD_UNPR: '0' }),
  });

  describe('tokens', () => {
    it('issues one token a minute per appkey and answers EGW00133 inside the minute', async () => {
      fake = await FakeKis.start({ now: () => clock.t });
      const first = await issue();
      expect(first.status).to.equal(200);
      const body = (await first.json()) as Record<string, unknown>;
      expect(body['expires_in']).to.equal(86400);
      expect(body['access_token_token_expired']).to.match(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
      const second = await issue();
      expect(second.status).to.equal(403);
      expect(((await second.json()) as Record<string, unknown>)['error_code']).to.equal('EGW00133');
      clock.t += 60_000;
      expect((await issue()).status).to.equal(200);
      expect(fake.tokensIssued).to.equal(2);
    });

    it('refuses a wrong appkey or appsecret with EGW00103 / EGW00105 and issues nothing', async () => {
      fake = await FakeKis.start({ now: () => clock.t });
      const a = await issue('wrong-key');
      expect(a.status).to.equal(403);
      expect(((await a.json()) as Record<string, unknown>)['error_code']).to.equal('EGW00103');
      const b = await issue(fake.appKey, 'wrong-secret');
      expect(((await b.json()) as Record<string, unknown>)['error_code']).to.equal('EGW00105');
      expect(fake.tokensIssued).to.equal(0);
    });
  });

  describe('headers', () => {
    it('answers a request carrying every required header', async () => {
      fake = await FakeKis.start({ now: () => clock.t });
      fake.setPrice('005930', 70_000);
      const res = await fetch(priceUrl(), { headers: headers(await token(), 'FHKST01010100') });
      const body = (await res.json()) as { rt_cd: string; output: { stck_prpr: string } };
      expect(body.rt_cd).to.equal('0');
      expect(body.output.stck_prpr).to.equal('70000');
    });

    for (const missing of ['appkey', 'appsecret', 'authorization', 'tr_id']) {
      it(`refuses a request without ${missing}`, async () => {
        fake = await FakeKis.start({ now: () => clock.t });
        fake.setPrice('005930', 70_000);
        const h: Record<string, string> = headers(await token(), 'FHKST01010100');
        delete h[missing];
        const res = await fetch(priceUrl(), { headers: h });
        const body = (await res.json()) as { rt_cd: string; msg_cd: string };
        expect(body.rt_cd).to.equal('1');
        expect(body.msg_cd).to.match(/^EGW001|^EGW0000|^OPSQ/);
      });
    }

    it('refuses an expired token with EGW00123', async () => {
      fake = await FakeKis.start({ now: () => clock.t });
      fake.setPrice('005930', 70_000);
      const tok = await token();
      fake.expireTokens();
      const body = (await (await fetch(priceUrl(), { headers: headers(tok, 'FHKST01010100') })).json()) as { msg_cd: string };
      expect(body.msg_cd).to.equal('EGW00123');
    });
  });

  describe('tr_ids', () => {
    it('a paper account takes VTTC0012U and refuses TTTC0012U', async () => {
      fake = await FakeKis.start({ now: () => clock.t, paper: true });
      fake.setPrice('005930', 1000);
      fake.setCash(1_000_000);
      const tok = await token();
      const real = (await (await order(tok, 'TTTC0012U')).json()) as { rt_cd: string; msg_cd: string };
      expect(real).to.include({ rt_cd: '1', msg_cd: 'OPSQ0002' });
      expect(fake.ordersSeen()).to.equal(0);
      const paper = (await (await order(tok, 'VTTC0012U')).json()) as { rt_cd: string; output: { ODNO: string } };
      expect(paper.rt_cd).to.equal('0');
      expect(paper.output.ODNO).to.match(/^\d{10}$/);
      expect(fake.holding('005930')).to.equal(2);
    });

    it('a real account takes TTTC0012U and refuses VTTC0012U', async () => {
      fake = await FakeKis.start({ now: () => clock.t, paper: false });
      fake.setPrice('005930', 1000);
      fake.setCash(1_000_000);
      const tok = await token();
      expect(((await (await order(tok, 'VTTC0012U')).json()) as { msg_cd: string }).msg_cd).to.equal('OPSQ0002');
      expect(((await (await order(tok, 'TTTC0012U')).json()) as { rt_cd: string }).rt_cd).to.equal('0');
      expect(fake.ordersSeen()).to.equal(1);
    });
  });

  describe('controls', () => {
    it('answers the next call to a path with a given error, placing the order first when asked', async () => {
      fake = await FakeKis.start({ now: () => clock.t, requestsPerSecond: 0 });
      fake.setPrice('005930', 1000);
      fake.setCash(1_000_000);
      const tok = await token();
      fake.answerNext('order-cash', { status: 500, msgCd: 'APBK1234', msg1: '처리 중 오류' }, { placeFirst: true });
      const res = await order(tok, 'VTTC0012U');
      expect(res.status).to.equal(500);
      expect(await res.json()).to.include({ rt_cd: '1', msg_cd: 'APBK1234' });
      expect(fake.ordersSeen()).to.equal(1);
      fake.answerNext('order-cash', { status: 200, msgCd: 'APBK9999', msg1: '오류' });
      expect(((await (await order(tok, 'VTTC0012U')).json()) as { msg_cd: string }).msg_cd).to.equal('APBK9999');
      expect(fake.ordersSeen()).to.equal(1);
      expect(((await (await order(tok, 'VTTC0012U')).json()) as { rt_cd: string }).rt_cd).to.equal('0');
    });

    it('answers a held order late, with its order number, when asked to; or renumbers the next answer', async () => {
      fake = await FakeKis.start({ now: () => clock.t, requestsPerSecond: 0 });
      fake.setPrice('005930', 1000);
      fake.setCash(1_000_000);
      const tok = await token();
      fake.holdNextOrder({ after: 'placed', answer: true });
      const pending = order(tok, 'VTTC0012U');
      while (fake.heldCount === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      fake.releaseNextHeld();
      const body = (await (await pending).json()) as { output: { ODNO: string } };
      expect(body.output.ODNO).to.equal(fake.orders()[0]!.odno);
      fake.renumberNextAnswer('0000000001');
      expect(((await (await order(tok, 'VTTC0012U')).json()) as { output: { ODNO: string } }).output.ODNO).to.equal('0000000001');
      expect(fake.ordersSeen()).to.equal(2);
    });

    it('refuses every token, even one just issued, while refuseTokens is on', async () => {
      fake = await FakeKis.start({ now: () => clock.t });
      fake.setPrice('005930', 70_000);
      fake.refuseTokens(true);
      const tok = await token();
      expect(((await (await fetch(priceUrl(), { headers: headers(tok, 'FHKST01010100') })).json()) as { msg_cd: string }).msg_cd).to.equal('EGW00121');
      fake.refuseTokens(false);
      expect(((await (await fetch(priceUrl(), { headers: headers(tok, 'FHKST01010100') })).json()) as { rt_cd: string }).rt_cd).to.equal('0');
    });
  });

  it('answers EGW00201 beyond its requests per second', async () => {
    fake = await FakeKis.start({ now: () => clock.t, requestsPerSecond: 2 });
    fake.setPrice('005930', 1000);
    const tok = await token();
    const codes: string[] = [];
    for (let i = 0; i < 3; i++) codes.push(((await (await fetch(priceUrl(), { headers: headers(tok, 'FHKST01010100') })).json()) as { msg_cd: string }).msg_cd);
    expect(codes.slice(0, 2)).to.not.include('EGW00201');
    expect(codes[2]).to.equal('EGW00201');
    clock.t += 1000;
    expect(((await (await fetch(priceUrl(), { headers: headers(tok, 'FHKST01010100') })).json()) as { rt_cd: string }).rt_cd).to.equal('0');
  });
});
