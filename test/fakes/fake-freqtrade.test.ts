import { expect } from 'chai';
import { FakeFreqtrade } from './fake-freqtrade';

describe('FakeFreqtrade', () => {
  let fake: FakeFreqtrade;
  let clock: { t: number };
  beforeEach(async () => {
    clock = { t: Date.now() };
    fake = await FakeFreqtrade.start({ accessTtlSeconds: 60, now: () => clock.t });
    fake.setBalance('KRW', 1_000_000);
  });
  afterEach(async () => { await fake.stop(); });

  const api = (path: string, init: RequestInit = {}) => fetch(`${fake.url}/api/v1${path}`, init);
  const basic = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const login = async () => (await (await api('/token/login', { method: 'POST', headers: basic(fake.username, fake.password) })).json()) as { access_token: string; refresh_token: string };
  const post = (path: string, token: string, body: unknown) => api(path, { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });

  it('answers ping without credentials and refuses a private route without them as Freqtrade does', async () => {
    expect(await (await api('/ping')).json()).to.deep.equal({ status: 'pong' });
    const res = await api('/status');
    expect(res.status).to.equal(401);
    expect(await res.json()).to.deep.equal({ detail: 'Unauthorized' });
  });

  it('logs in with HTTP basic and serves private routes with the access token, or with basic itself', async () => {
    const tokens = await login();
    expect(tokens.access_token.split('.')).to.have.length(3);
    expect(fake.loginCount).to.equal(1);
    expect((await api('/show_config', { headers: bearer(tokens.access_token) })).status).to.equal(200);
    const viaBasic = await api('/show_config', { headers: basic(fake.username, fake.password) });
    expect(((await viaBasic.json()) as { stake_currency: string }).stake_currency).to.equal('KRW');
  });

  it('refuses a wrong password at login with Freqtrade\'s words', async () => {
    const res = await api('/token/login', { method: 'POST', headers: basic(fake.username, 'wrong') });
    expect(res.status).to.equal(401);
    expect(await res.json()).to.deep.equal({ detail: 'Incorrect username or password' });
  });

  it('expires the access token, refuses it, and a refresh token gives a new one', async () => {
    const tokens = await login();
    clock.t += 61_000;
    const refused = await api('/status', { headers: bearer(tokens.access_token) });
    expect(refused.status).to.equal(401);
    expect(await refused.json()).to.deep.equal({ detail: 'Could not validate credentials' });
    // A refresh token is no access token, and an access token no refresh token.
    expect((await api('/status', { headers: bearer(tokens.refresh_token) })).status).to.equal(401);
    expect((await api('/token/refresh', { method: 'POST', headers: bearer(tokens.access_token) })).status).to.equal(401);
    const fresh = (await (await api('/token/refresh', { method: 'POST', headers: bearer(tokens.refresh_token) })).json()) as { access_token: string };
    expect((await api('/status', { headers: bearer(fresh.access_token) })).status).to.equal(200);
    expect(fake.refreshCount).to.equal(2);
  });

  it('answers 422 with pydantic\'s detail list, 404 with a detail text and 502 with Freqtrade\'s error text', async () => {
    const { access_token: token } = await login();
    const bad = await post('/forceenter', token, { stakeamount: 'lots' });
    expect(bad.status).to.equal(422);
    const detail = ((await bad.json()) as { detail: Array<{ loc: string[]; msg: string }> }).detail;
    expect(detail.map((d) => d.loc.join('.'))).to.deep.equal(['body.pair', 'body.stakeamount']);
    const missing = await api('/trade/42', { headers: bearer(token) });
    expect(missing.status).to.equal(404);
    expect(await missing.json()).to.deep.equal({ detail: 'Trade not found.' });
    fake.setConfig({ force_entry_enable: false });
    const refused = await post('/forceenter', token, { pair: 'BTC/KRW', stakeamount: 10000 });
    expect(refused.status).to.equal(502);
    expect(await refused.json()).to.deep.equal({ error: 'Error querying /api/v1/forceenter: Force_entry not enabled.' });
    expect((await api('/nowhere', { headers: bearer(token) })).status).to.equal(404);
  });

  it('enters at market with the fee in the stake currency, and a force exit closes the trade', async () => {
    const { access_token: token } = await login();
    const res = await post('/forceenter', token, { pair: 'BTC/KRW', side: 'long', stakeamount: 50000, ordertype: 'market', entry_tag: 'my-id' });
    const trade = (await res.json()) as { trade_id: number; enter_tag: string; amount: number; orders: Array<{ ft_order_tag: string; filled: number; status: string }> };
    expect(trade.enter_tag).to.equal('my-id');
    expect(trade.amount).to.equal(0.0005);
    expect(trade.orders[0]).to.include({ ft_order_tag: 'my-id', filled: 0.0005, status: 'closed' });
    expect(fake.balances()['KRW']?.free).to.equal('949975');
    const exit = await post('/forceexit', token, { tradeid: trade.trade_id, ordertype: 'market' });
    expect(await exit.json()).to.deep.equal({ result: `Created exit order for trade ${trade.trade_id}.` });
    const closed = (await (await api('/trades', { headers: bearer(token) })).json()) as { trades: Array<{ is_open: boolean; exit_reason: string }>; total_trades: number };
    expect(closed.total_trades).to.equal(1);
    expect(closed.trades[0]).to.include({ is_open: false, exit_reason: 'force_exit' });
    expect(fake.ordersSeen()).to.equal(2);
  });

  it('holds an answer and drops the connection when released, with the entry placed or not', async () => {
    const { access_token: token } = await login();
    fake.holdNextOrder({ after: 'placed' });
    const pending = post('/forceenter', token, { pair: 'BTC/KRW', stakeamount: 50000, entry_tag: 'held' }).then(() => 'answered', () => 'dropped');
    for (let i = 0; i < 100 && fake.heldCount === 0; i++) await new Promise((r) => setTimeout(r, 5));
    fake.releaseHeld();
    expect(await pending).to.equal('dropped');
    expect(fake.trades()).to.have.length(1);
    fake.holdNextOrder({ after: 'not-placed' });
    const second = post('/forceenter', token, { pair: 'ETH/KRW', stakeamount: 50000 }).then(() => 'answered', () => 'dropped');
    for (let i = 0; i < 100 && fake.heldCount === 0; i++) await new Promise((r) => setTimeout(r, 5));
    fake.releaseHeld();
    expect(await second).to.equal('dropped');
    expect(fake.trades()).to.have.length(1);
  });
  it('answers 429 beyond a path\'s rate limit per minute, and serves it again a minute later', async () => {
    const { access_token: token } = await login();
    fake.rateLimit('/trades', 2);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await api('/trades', { headers: bearer(token) })).status);
    expect(statuses).to.deep.equal([200, 200, 429]);
    const limited = await api('/trades', { headers: bearer(token) });
    expect(await limited.json()).to.deep.equal({ error: 'Rate limit exceeded: 2 per 1 minute' });
    expect((await api('/status', { headers: bearer(token) })).status).to.equal(200);
    clock.t += 60_000;
    expect((await api('/trades', { headers: bearer((await login()).access_token) })).status).to.equal(200);
  });

  it('rests a limit exit at its price, and a second force exit cancels it before placing its own', async () => {
    const { access_token: token } = await login();
    const trade = (await (await post('/forceenter', token, { pair: 'BTC/KRW', stakeamount: 100000, entry_tag: 'e' })).json()) as { trade_id: number };
    await post('/forceexit', token, { tradeid: trade.trade_id, ordertype: 'limit', price: 110000000 });
    const resting = fake.trades()[0]!['orders'] as Array<{ order_id: string; ft_order_side: string; status: string; price: number }>;
    expect(resting.filter((o) => o.ft_order_side === 'sell')).to.deep.include.members([{ ...resting[1]!, status: 'open', price: 110000000 }]);
    await post('/forceexit', token, { tradeid: trade.trade_id, ordertype: 'market' });
    const after = fake.trades()[0]!;
    const sells = (after['orders'] as Array<{ ft_order_side: string; status: string }>).filter((o) => o.ft_order_side === 'sell');
    // The cancelled exit filled nothing, so Freqtrade no longer lists it.
    expect(sells.map((o) => o.status)).to.deep.equal(['closed']);
    expect(after['is_open']).to.equal(false);
  });

  it('raises a stake below the exchange minimum by up to 30 %, and refuses one further below', async () => {
    await fake.stop();
    fake = await FakeFreqtrade.start({ minStake: '60000', now: () => clock.t });
    fake.setBalance('KRW', 1_000_000);
    const { access_token: token } = await login();
    const raised = (await (await post('/forceenter', token, { pair: 'BTC/KRW', stakeamount: 50000, entry_tag: 'r' })).json()) as { stake_amount: number };
    expect(raised.stake_amount).to.equal(60000);
    expect((await post('/forceenter', token, { pair: 'ETH/KRW', stakeamount: 40000, entry_tag: 's' })).status).to.equal(502);
  });

  it('takes the entry fee in the base coin with feeInBase (ft_fee_base), and adds the strategy\'s top-up buys untagged', async () => {
    await fake.stop();
    fake = await FakeFreqtrade.start({ feeInBase: true, now: () => clock.t });
    fake.setBalance('KRW', 1_000_000);
    const { access_token: token } = await login();
    const trade = (await (await post('/forceenter', token, { pair: 'BTC/KRW', stakeamount: 100000, entry_tag: 'b' })).json()) as { trade_id: number; amount: number; orders: Array<{ filled: number; ft_fee_base: number }> };
    expect(trade.orders[0]).to.include({ filled: 0.001, ft_fee_base: 0.0000005 });
    expect(trade.amount).to.equal(0.0009995);
    expect(fake.balances()['KRW']?.free).to.equal('900000');
    expect(fake.balances()['BTC']?.free).to.equal('0.0009995');
    fake.strategyTopUp(trade.trade_id, 50000);
    const orders = fake.trades()[0]!['orders'] as Array<{ ft_order_side: string; ft_order_tag: string | null }>;
    expect(orders.map((o) => o.ft_order_tag)).to.deep.equal(['b', null]);
  });
});
