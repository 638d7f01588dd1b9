import { expect } from 'chai';
import { FakeFreqtrade } from '../fakes/fake-freqtrade';
import { FreqtradeClient, freqtradeErrorOf, type FreqtradeClientOptions } from '../../src/integrations/freqtrade';
import { TransientError, VenueAuthError, VenueRejectedError } from '../../src/errors';
import { rejectionOf } from '../support/rejection';


describe('freqtradeErrorOf', () => {
  it('reads a 401 {detail} as VenueAuthError naming the variables to set, without the password', () => {
    const err = freqtradeErrorOf(401, { detail: 'Incorrect username or password' }, 'POST /token/login');
    expect(err).to.be.instanceOf(VenueAuthError);
    expect(err.code).to.equal('invalid_credentials');
    expect(err.message).to.include('Incorrect username or password').and.to.include('FREQTRADE_PASSWORD');
  });

  it('reads a 404 {detail} as not_found and a 422 detail list as invalid_request naming each field', () => {
    expect(freqtradeErrorOf(404, { detail: 'Trade not found.' }, 'GET /trade/9')).to.include({ code: 'not_found' }).and.be.instanceOf(VenueRejectedError);
    const invalid = freqtradeErrorOf(422, { detail: [{ loc: ['body', 'stakeamount'], msg: 'Input should be a valid number' }, { loc: ['body', 'pair'], msg: 'Field required' }] }, 'POST /forceenter');
    expect(invalid).to.include({ code: 'invalid_request' });
    expect(invalid.message).to.include('stakeamount: Input should be a valid number; pair: Field required');
  });

  it('reads a 502 {error} as the bot refusing with a code by its words, but "current tickers" and a 502 without the body as transient', () => {
    const cases: Array<[string, string]> = [
      ['Force_entry not enabled.', 'force_entry_disabled'],
      ['trader is not running', 'bot_not_running'],
      ['position for BTC/KRW already open - id: 1', 'position_open'],
      ['Maximum number of trades is reached.', 'max_open_trades'],
      ['Failed to enter position for BTC/KRW.', 'entry_failed'],
      ['Remaining amount of 100 would be too small.', 'remaining_too_small'],
      ['invalid argument', 'trade_not_open'],
      ['something new', 'freqtrade_refused'],
    ];
    for (const [said, code] of cases) {
      const err = freqtradeErrorOf(502, { error: `Error querying /api/v1/forceenter: ${said}` }, 'POST /forceenter');
      expect(err, said).to.be.instanceOf(VenueRejectedError);
      expect(err.code, said).to.equal(code);
      expect(err.message).to.include(said);
    }
    expect(freqtradeErrorOf(502, { error: 'Error querying /api/v1/balance: Error getting current tickers.' }, 'GET /balance')).to.be.instanceOf(TransientError);
    expect(freqtradeErrorOf(502, '<html>Bad Gateway</html>', 'GET /status')).to.be.instanceOf(TransientError);
    expect(freqtradeErrorOf(503, { detail: 'x' }, 'GET /status')).to.include({ code: 'freqtrade_server_error' });
  });

  it('reads a 429 as transient (rate-limited), never as a refusal', () => {
    const err = freqtradeErrorOf(429, { error: 'Rate limit exceeded: 10 per 1 minute' }, 'GET /trades');
    expect(err).to.be.instanceOf(TransientError);
    expect(err.code).to.equal('freqtrade_rate_limited');
    expect(err.message).to.include('10 per 1 minute');
  });
});

describe('FreqtradeClient', () => {
  let fake: FakeFreqtrade;
  let clock: { t: number };
  beforeEach(async () => {
    clock = { t: Date.now() };
    fake = await FakeFreqtrade.start({ accessTtlSeconds: 120, now: () => clock.t });
  });
  afterEach(async () => { await fake.stop(); });

  const client = (extra: Partial<FreqtradeClientOptions> = {}) => new FreqtradeClient({ apiUrl: fake.url, username: fake.username, password: fake.password, timeoutMs: 300, now: () => clock.t, ...extra });

  it('logs in once, then refreshes the access token before it expires, never sending the password again', async () => {
    const c = client();
    await c.showConfig();
    await c.whitelist();
    expect(fake.loginCount).to.equal(1);
    clock.t += 100_000;
    await c.showConfig();
    expect(fake.refreshCount).to.equal(1);
    expect(fake.loginCount).to.equal(1);
    expect(fake.requests.filter((r) => r.path !== '/token/login').every((r) => r.auth === 'bearer')).to.equal(true);
  });

  it('answers 429 as TransientError freqtrade_rate_limited', async () => {
    fake.rateLimit('/status', 1);
    const c = client();
    await c.openTrades();
    const err = await rejectionOf(c.openTrades());
    expect(err).to.be.instanceOf(TransientError);
    expect(err.code).to.equal('freqtrade_rate_limited');
  });

  it('answers a timeout as TransientError freqtrade_timeout (the outcome unknown)', async () => {
    const c = client();
    await c.showConfig();
    fake.hangNext('/forceexit');
    const err = await rejectionOf(c.forceExit({ tradeid: '1', ordertype: 'market' }));
    expect(err).to.be.instanceOf(TransientError);
    expect(err.code).to.equal('freqtrade_timeout');
    expect(err.message).to.include('outcome is unknown');
  });

  it('sends a limit exit\'s price as exact decimal text', async () => {
    const c = client();
    fake.setBalance('KRW', 1_000_000);
    await c.forceEnter({ pair: 'BTC/KRW', side: 'long', stakeamount: '100000', ordertype: 'market', entry_tag: 't' });
    await c.forceExit({ tradeid: '1', ordertype: 'limit', price: '110000000.5' });
    expect(fake.requestsTo('/forceexit')[0]!.body).to.equal('{"tradeid":"1","ordertype":"limit","price":110000000.5}');
  });

  it('backs logins off after one fails with 5xx or a timeout: 5 s, doubling, at most 60 s, answering TransientError meanwhile', async () => {
    const c = client({ loginBackoffMs: 5_000, loginBackoffMaxMs: 12_000 });
    fake.failNext('/token/login', 503, { detail: 'Service Unavailable' });
    expect((await rejectionOf(c.showConfig())).code).to.equal('freqtrade_server_error');
    for (let i = 0; i < 5; i++) expect((await rejectionOf(c.showConfig())).code).to.equal('freqtrade_login_backoff');
    expect(fake.requestsTo('/token/login')).to.have.length(1);
    clock.t += 5_000;
    fake.hangNext('/token/login');
    expect((await rejectionOf(c.showConfig())).code).to.equal('freqtrade_timeout');
    clock.t += 9_999;
    expect((await rejectionOf(c.showConfig())).code).to.equal('freqtrade_login_backoff');
    expect(fake.requestsTo('/token/login')).to.have.length(2);
    clock.t += 1;
    expect((await c.showConfig()).stake_currency).to.equal('KRW');
    expect(fake.requestsTo('/token/login')).to.have.length(3);
    expect(fake.requestsTo('/show_config')).to.have.length(1);
  });

  it('keeps using a still valid access token while a failed refresh is backed off', async () => {
    const c = client();
    await c.showConfig();
    clock.t += 100_000;
    fake.failNext('/token/refresh', 500, { detail: 'boom' });
    expect((await c.showConfig()).stake_currency).to.equal('KRW');
    expect((await c.showConfig()).stake_currency).to.equal('KRW');
    expect(fake.requestsTo('/token/refresh')).to.have.length(1);
  });

  it('refuses wrong credentials once with VenueAuthError, and sends nothing more during the back-off', async () => {
    const c = client({ password: 'wrong-password' });
    const errors = [await rejectionOf(c.balance()), await rejectionOf(c.balance())];
    expect(errors.every((e) => e instanceof VenueAuthError)).to.equal(true);
    expect(errors[0]!.message).not.to.include('wrong-password');
    expect(fake.requests).to.have.length(1);
  });
});
