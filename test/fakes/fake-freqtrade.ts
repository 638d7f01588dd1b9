/**
 * A local Freqtrade REST API for tests: a protocol peer for the Freqtrade venue adapter. It
 * answers the documented subset of `freqtrade/rpc/api_server` (API 2.x) in Freqtrade's shapes:
 *
 *   GET    /api/v1/ping                       public: {"status": "pong"}
 *   POST   /api/v1/token/login                HTTP basic → {access_token, refresh_token} (HS256)
 *   POST   /api/v1/token/refresh              Bearer refresh token → {access_token}
 *   GET    /api/v1/show_config                stake_currency, dry_run, force_entry_enable, state, …
 *   GET    /api/v1/whitelist                  {whitelist, length, method}
 *   GET    /api/v1/balance                    {currencies: [{currency, free, balance, used, …}], stake, …}
 *   GET    /api/v1/status                     open trades (`[]` when none)
 *   GET    /api/v1/trades?limit&offset        closed trades by id: {trades, trades_count, offset, total_trades}
 *   GET    /api/v1/trade/{id}                 one trade, open or closed; 404 {"detail":"Trade not found."}
 *   POST   /api/v1/forceenter                 {pair, side, price, ordertype, stakeamount, entry_tag} → the trade
 *   POST   /api/v1/forceexit                  {tradeid, ordertype, amount} → {"result": "Created exit order for trade N."}
 *   DELETE /api/v1/trades/{id}/open-order     cancels a trade's open order → the trade
 *
 * Authentication as `api_auth.py`: a private route takes a Bearer access token (a refused token
 * is a 401 `Could not validate credentials`, with no fall-back to basic) or HTTP basic; nothing
 * → 401 `{"detail":"Unauthorized"}`. A refused login is 401 `Incorrect username or password`.
 * Refusals of the bot (RPCException) are 502 `{"error": "Error querying /api/v1/<path>: <msg>"}`
 * with `rpc.py`'s words; malformed bodies are FastAPI's 422 `{"detail": [{type, loc, msg, input}]}`;
 * unknown routes 404 `{"detail":"Not Found"}`.
 *
 * The bot trades spot, long only, in one stake currency (default KRW): one open trade per pair
 * (more entries join it with `position_adjustment_enable`). Market orders fill at once at the
 * price set with `setPrice`, limit entries when the price reaches them; amounts are rounded down to
 * 8 decimals; the fee (`feeRate`, default 0.0005) is paid in the stake currency on both sides, or,
 * with `feeInBase`, in the base coin on entries (the order's `ft_fee_base`; the trade's amount is
 * what is left after it). A stake below the exchange minimum is raised to it when that is at most
 * 30 % more (Freqtrade's `validate_stake_amount`). A limit exit rests at its `price` until the
 * market reaches it; a force exit first cancels the trade's open exit order (Freqtrade's
 * `__exec_force_exit`). Numbers are sent as JSON numbers, as Freqtrade's floats are.
 *
 * Test controls: `setPrice`, `setBalance`, `setConfig`, `setWhitelist`, `strategyEntry` (a trade
 * the bot's own strategy opened), `strategyTopUp` (a position-adjustment buy of the strategy, tag
 * null), `rateLimit` (429 beyond N requests a minute to a path), `hangNext` (the next request to a
 * path is never answered), `holdNextOrder` / `releaseHeld` (the answer to the next
 * forceenter/forceexit never comes: the connection is dropped when released), `failNext` (answer
 * the next request to a path with a given status and body), `disableLogin`; what happened:
 * `requests`, `requestsTo(path)`, `loginCount`, `refreshCount`, `ordersSeen()`, `trades()`.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Decimal from 'decimal.js';

const D = Decimal.clone({ precision: 64 });
type D = InstanceType<typeof D>;

export interface FakeFreqtradeOptions {
  username?: string;
  password?: string;
  jwtSecret?: string;
  /** Lifetime of an access token, s (Freqtrade: 15 minutes). */
  accessTtlSeconds?: number;
  refreshTtlSeconds?: number;
  stakeCurrency?: string;
  /** Pairs the bot trades (default BTC/KRW, ETH/KRW). */
  whitelist?: string[];
  feeRate?: string;
  /** The exchange's minimum stake, stake currency (default 5000). */
  minStake?: string;
  /** The entry fee is taken in the base coin (`ft_fee_base`), not the stake currency. */
  feeInBase?: boolean;
  /** Clock for token expiry and trade dates (default Date.now). */
  now?: () => number;
}

/** The bot settings a test can change (`setConfig`). */
export interface FakeBotConfig {
  force_entry_enable: boolean;
  state: 'running' | 'stopped' | 'paused';
  dry_run: boolean;
  stake_currency: string;
  position_adjustment_enable: boolean;
  max_open_trades: number;
}

/** One request as the fake saw it (`path` without `/api/v1`). */
export interface FreqtradeRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  body: string;
  /** `bearer`, `basic`, `none`. */
  auth: string;
  status?: number;
  aborted: boolean;
}

interface Order {
  order_id: string;
  side: 'buy' | 'sell';
  tag: string | null;
  type: 'market' | 'limit';
  amount: D;
  filled: D;
  price: D;
  average: D | null;
  /** Fee taken in the base coin (entries with `feeInBase`). */
  feeBase: D | null;
  status: 'open' | 'closed' | 'canceled';
  at: number;
  filledAt: number | null;
}

interface Trade {
  id: number;
  pair: string;
  isOpen: boolean;
  amount: D;
  stake: D;
  openRate: D;
  closeRate: D | null;
  enterTag: string | null;
  exitReason: string | null;
  openAt: number;
  closeAt: number | null;
  orders: Order[];
}

interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

interface Req {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  body: string;
  entry: FreqtradeRequest;
  signal: AbortSignal;
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

/** Freqtrade's `DATETIME_PRINT_FORMAT` (`%Y-%m-%d %H:%M:%S`, UTC). */
const printDate = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');

const num = (d: D | null | undefined) => (d === null || d === undefined ? null : Number(d.toFixed()));

export class FakeFreqtrade {
  readonly username: string;
  readonly password: string;
  readonly requests: FreqtradeRequest[] = [];
  loginCount = 0;
  refreshCount = 0;
  private readonly server: http.Server;
  private secret: string;
  private readonly now: () => number;
  private readonly fee: D;
  private readonly minStake: D;
  private readonly prices = new Map<string, D>();
  private readonly wallet = new Map<string, { free: D; used: D }>();
  private readonly tradeList: Trade[] = [];
  private readonly holds: Array<'placed' | 'not-placed'> = [];
  private readonly held = new Set<() => void>();
  private readonly faults: Array<{ path: string; reply: Reply | 'hang' }> = [];
  private readonly limits = new Map<string, { limit: number; seen: number[] }>();
  private whitelistPairs: string[];
  private loginAvailable = true;
  private orderSeq = 0;
  private tradeSeq = 0;
  private placed = 0;
  private config: FakeBotConfig;

  private constructor(private readonly options: FakeFreqtradeOptions) {
    this.username = options.username ?? 'freqtrader';
    this.password = options.password ?? 'fake-freqtrade-password';
    this.secret = options.jwtSecret ?? 'fake-jwt-secret-key';
    this.now = options.now ?? Date.now;
    this.fee = new D(options.feeRate ?? '0.0005');
    this.minStake = new D(options.minStake ?? '5000');
    this.config = {
      force_entry_enable: true, state: 'running', dry_run: false, stake_currency: options.stakeCurrency ?? 'KRW',
      position_adjustment_enable: false, max_open_trades: 10,
    };
    this.whitelistPairs = options.whitelist ?? ['BTC/KRW', 'ETH/KRW'];
    this.prices.set('BTC/KRW', new D(100_000_000));
    this.prices.set('ETH/KRW', new D(4_000_000));
    this.server = http.createServer((req, res) => { void this.handle(req, res); });
  }

  /** Starts the fake on 127.0.0.1 at a free port. */
  static async start(options: FakeFreqtradeOptions = {}): Promise<FakeFreqtrade> {
    const fake = new FakeFreqtrade(options);
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  /** The API root (`http://127.0.0.1:port`), as FREQTRADE_API_URL. */
  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.releaseHeld();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- test controls -----------------------------------------------------------------------

  setPrice(pair: string, price: Decimal.Value): void {
    this.prices.set(pair, new D(price));
    for (const t of this.tradeList) for (const o of t.orders) if (o.status === 'open') this.tryFill(t, o);
  }

  /** Sets the free balance of a currency. */
  setBalance(currency: string, amount: Decimal.Value): void {
    this.account(currency).free = new D(amount);
  }

  /** Balances as the fake holds them. */
  balances(): Record<string, { free: string; used: string }> {
    return Object.fromEntries([...this.wallet].map(([c, a]) => [c, { free: a.free.toFixed(), used: a.used.toFixed() }]));
  }

  setConfig(patch: Partial<FakeBotConfig>): void {
    this.config = { ...this.config, ...patch };
  }

  setWhitelist(pairs: string[]): void {
    this.whitelistPairs = [...pairs];
  }

  /** The bot restarted with another `jwt_secret_key`: every token issued so far is refused. */
  rotateJwtSecret(secret = crypto.randomBytes(16).toString('hex')): void {
    this.secret = secret;
  }

  /** The login route answers 404 from now on (an API that only takes HTTP basic). */
  disableLogin(): void {
    this.loginAvailable = false;
  }

  /** A trade the bot's own strategy opened (market entry at the current price). */
  strategyEntry(pair: string, stake: Decimal.Value, tag = 'strategy_signal'): number {
    const trade = this.enter(pair, new D(stake), 'market', null, tag, undefined);
    return trade.id;
  }

  /**
   * The next forceenter/forceexit is not answered: with `placed` it is carried out first, with
   * `not-placed` not at all. The connection is dropped without an answer at `releaseHeld()` (or
   * when the client gives up).
   */
  holdNextOrder(hold: { after: 'placed' | 'not-placed' }): void {
    this.holds.push(hold.after);
  }

  get heldCount(): number {
    return this.held.size;
  }

  /** Drops the connections of every held answer. */
  releaseHeld(): void {
    for (const release of [...this.held]) release();
  }

  /** Answers the next request to `path` (without `/api/v1`) with `status` and `body`, doing nothing else. */
  failNext(path: string, status: number, body: unknown): void {
    this.faults.push({ path, reply: { status, body } });
  }

  /** Answers 429 to requests to `path` beyond `limit` in any minute (newer Freqtrade limits `/trades` and `/status`). */
  rateLimit(path: string, limit: number): void {
    this.limits.set(path, { limit, seen: [] });
  }

  /** The next request to `path` is never answered (its connection is dropped at `releaseHeld`/`stop`). */
  hangNext(path: string): void {
    this.faults.push({ path, reply: 'hang' });
  }

  /** A position-adjustment buy of the strategy on an open trade (its `ft_order_tag` is null). */
  strategyTopUp(tradeId: number, stake: Decimal.Value): void {
    const trade = this.tradeList.find((t) => t.id === tradeId && t.isOpen);
    if (!trade) throw new Error(`no open trade ${tradeId}`);
    this.enter(trade.pair, new D(stake), 'market', null, null, trade);
  }

  /** The requests to one path (without `/api/v1`), e.g. `/forceenter`. */
  requestsTo(path: string, method?: string): FreqtradeRequest[] {
    return this.requests.filter((r) => r.path === path && (method === undefined || r.method === method));
  }

  /** How many orders the bot placed (entries and exits; the strategy's own included). */
  ordersSeen(): number {
    return this.placed;
  }

  /** Every trade, as `/trade/{id}` shows it. */
  trades(): Array<Record<string, unknown>> {
    return this.tradeList.map((t) => this.tradeJson(t));
  }

  // ---- HTTP --------------------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? '/', 'http://fake');
    const path = url.pathname.replace(/^\/api\/v1/, '');
    const authHeader = req.headers.authorization ?? '';
    const entry: FreqtradeRequest = {
      method: req.method ?? 'GET', path, query: Object.fromEntries(url.searchParams), body: Buffer.concat(chunks).toString('utf8'),
      auth: authHeader.startsWith('Bearer ') ? 'bearer' : authHeader.startsWith('Basic ') ? 'basic' : 'none', aborted: false,
    };
    this.requests.push(entry);
    const controller = new AbortController();
    res.on('close', () => {
      if (!res.writableEnded) {
        entry.aborted = true;
        controller.abort();
      }
    });
    const reply = await this.route({ method: entry.method, path, query: url.searchParams, headers: req.headers, body: entry.body, entry, signal: controller.signal });
    if (reply === 'dropped' || controller.signal.aborted) {
      res.destroy();
      return;
    }
    entry.status = reply.status;
    res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
    res.end(JSON.stringify(reply.body));
  }

  private async route(req: Req): Promise<Reply | 'dropped'> {
    const { method, path } = req;
    const faultAt = this.faults.findIndex((f) => f.path === path);
    if (faultAt >= 0) {
      const reply = this.faults.splice(faultAt, 1)[0]!.reply;
      return reply === 'hang' ? this.hang(req) : reply;
    }
    const limit = this.limits.get(path);
    if (limit) {
      const t = this.now();
      limit.seen = limit.seen.filter((at) => t - at < 60_000);
      if (limit.seen.length >= limit.limit) return { status: 429, body: { error: `Rate limit exceeded: ${limit.limit} per 1 minute` } };
      limit.seen.push(t);
    }
    if (method === 'GET' && path === '/ping') return { status: 200, body: { status: 'pong' } };
    if (method === 'POST' && path === '/token/login') return this.login(req);
    if (method === 'POST' && path === '/token/refresh') return this.refresh(req);
    const routes: Array<[string, RegExp, (m: RegExpExecArray) => Reply | Promise<Reply | 'dropped'>]> = [
      ['GET', /^\/show_config$/, () => ({ status: 200, body: this.showConfig() })],
      ['GET', /^\/whitelist$/, () => ({ status: 200, body: { whitelist: this.whitelistPairs, length: this.whitelistPairs.length, method: ['StaticPairList'] } })],
      ['GET', /^\/balance$/, () => ({ status: 200, body: this.balanceJson() })],
      ['GET', /^\/status$/, () => ({ status: 200, body: this.tradeList.filter((t) => t.isOpen).map((t) => this.tradeJson(t, true)) })],
      ['GET', /^\/trades$/, () => this.closedTrades(req)],
      ['GET', /^\/trade\/([^/]+)$/, (m) => this.oneTrade(m[1]!)],
      ['POST', /^\/forceenter$/, () => this.forceEnter(req)],
      ['POST', /^\/forceexit$/, () => this.forceExit(req)],
      ['DELETE', /^\/trades\/([^/]+)\/open-order$/, (m) => this.cancelOpenOrder(m[1]!)],
    ];
    for (const [m, pattern, handler] of routes) {
      const match = pattern.exec(path);
      if (!match) continue;
      if (m !== method) return { status: 405, body: { detail: 'Method Not Allowed' } };
      const refused = this.authenticate(req);
      if (refused) return refused;
      return handler(match);
    }
    return notFound();
  }

  // ---- authentication (api_auth.py) --------------------------------------------------------

  private sign(type: 'access' | 'refresh'): string {
    const iat = Math.floor(this.now() / 1000);
    const ttl = type === 'access' ? this.options.accessTtlSeconds ?? 15 * 60 : this.options.refreshTtlSeconds ?? 30 * 24 * 3600;
    const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
    const payload = b64url(JSON.stringify({ identity: { u: this.username }, exp: iat + ttl, iat, type }));
    const sig = crypto.createHmac('sha256', this.secret).update(`${head}.${payload}`).digest('base64url');
    return `${head}.${payload}.${sig}`;
  }

  /** The user of a valid token of `type`, or undefined. */
  private verify(token: string, type: 'access' | 'refresh'): string | undefined {
    const [head, payload, sig] = token.split('.');
    if (!head || !payload || !sig) return undefined;
    const want = crypto.createHmac('sha256', this.secret).update(`${head}.${payload}`).digest();
    const got = Buffer.from(sig, 'base64url');
    if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) return undefined;
    try {
      const p = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: number; type?: string; identity?: { u?: string } };
      if (typeof p.exp !== 'number' || p.exp * 1000 <= this.now()) return undefined;
      if (p.type !== type) return undefined;
      return p.identity?.u;
    } catch {
      return undefined;
    }
  }

  private basicUser(req: Req): { user: string; pass: string } | undefined {
    const h = req.headers.authorization ?? '';
    if (!h.startsWith('Basic ')) return undefined;
    const text = Buffer.from(h.slice(6), 'base64').toString('utf8');
    const at = text.indexOf(':');
    return at < 0 ? undefined : { user: text.slice(0, at), pass: text.slice(at + 1) };
  }

  private credentialsOk(c: { user: string; pass: string }): boolean {
    const eq = (a: string, b: string) => a.length === b.length && crypto.timingSafeEqual(Buffer.from(a), Buffer.from(b));
    return eq(c.user, this.username) && eq(c.pass, this.password);
  }

  private bearer(req: Req): string | undefined {
    const h = req.headers.authorization ?? '';
    return h.startsWith('Bearer ') ? h.slice(7).trim() : undefined;
  }

  /** `http_basic_or_jwt_token`: a token if there is one (no fall-back), else basic. */
  private authenticate(req: Req): Reply | undefined {
    const token = this.bearer(req);
    if (token !== undefined) {
      return this.verify(token, 'access') ? undefined : { status: 401, body: { detail: 'Could not validate credentials' }, headers: { 'www-authenticate': 'Bearer' } };
    }
    const basic = this.basicUser(req);
    if (basic && this.credentialsOk(basic)) return undefined;
    return { status: 401, body: { detail: 'Unauthorized' } };
  }

  private login(req: Req): Reply {
    if (!this.loginAvailable) return notFound();
    this.loginCount += 1;
    const basic = this.basicUser(req);
    if (!basic) return { status: 401, body: { detail: 'Not authenticated' }, headers: { 'www-authenticate': 'Basic' } };
    if (!this.credentialsOk(basic)) return { status: 401, body: { detail: 'Incorrect username or password' } };
    return { status: 200, body: { access_token: this.sign('access'), refresh_token: this.sign('refresh') } };
  }

  private refresh(req: Req): Reply {
    if (!this.loginAvailable) return notFound();
    this.refreshCount += 1;
    const token = this.bearer(req);
    if (!token || !this.verify(token, 'refresh')) return { status: 401, body: { detail: 'Could not validate credentials' }, headers: { 'www-authenticate': 'Bearer' } };
    return { status: 200, body: { access_token: this.sign('access') } };
  }

  // ---- info --------------------------------------------------------------------------------

  private showConfig(): Record<string, unknown> {
    const c = this.config;
    return {
      version: '2024.10-fake', strategy_version: null, api_version: 2.4, dry_run: c.dry_run, trading_mode: 'spot', short_allowed: false,
      stake_currency: c.stake_currency, stake_currency_decimals: 8, stake_amount: 'unlimited', available_capital: null,
      max_open_trades: c.max_open_trades, minimal_roi: {}, stoploss: -0.99, stoploss_on_exchange: false, timeframe: '5m', timeframe_ms: 300000,
      timeframe_min: 5, exchange: 'upbit', strategy: 'FakeStrategy', force_entry_enable: c.force_entry_enable, exit_pricing: {}, entry_pricing: {},
      bot_name: 'fake-bot', state: c.state, runmode: c.dry_run ? 'dry_run' : 'live', position_adjustment_enable: c.position_adjustment_enable,
      max_entry_position_adjustment: -1,
    };
  }

  private account(currency: string): { free: D; used: D } {
    let a = this.wallet.get(currency);
    if (!a) {
      a = { free: new D(0), used: new D(0) };
      this.wallet.set(currency, a);
    }
    return a;
  }

  private balanceJson(): Record<string, unknown> {
    const stake = this.config.stake_currency;
    const currencies = [...this.wallet].filter(([, a]) => !a.free.plus(a.used).isZero()).map(([currency, a]) => {
      const total = a.free.plus(a.used);
      const price = currency === stake ? new D(1) : this.prices.get(`${currency}/${stake}`) ?? new D(0);
      return {
        currency, free: num(a.free), balance: num(total), used: num(a.used), bot_owned: num(currency === stake ? a.free : total),
        est_stake: num(total.times(price)), est_stake_bot: num(total.times(price)), stake, side: 'long', position: 0, is_bot_managed: true, is_position: false,
      };
    });
    return { currencies, total: 0, total_bot: 0, symbol: 'USD', value: 0, value_bot: 0, stake, note: '', starting_capital: 0, starting_capital_ratio: 0, starting_capital_pct: 0, starting_capital_fiat: 0, starting_capital_fiat_ratio: 0, starting_capital_fiat_pct: 0 };
  }

  private orderJson(t: Trade, o: Order): Record<string, unknown> {
    return {
      pair: t.pair, order_id: o.order_id, status: o.status, remaining: num(o.amount.minus(o.filled)), amount: num(o.amount), safe_price: num(o.average ?? o.price),
      cost: num(o.filled.times(o.average ?? o.price)), filled: num(o.filled), ft_order_side: o.side, order_type: o.type, is_open: o.status === 'open',
      order_timestamp: o.at, order_filled_timestamp: o.filledAt, ft_fee_base: num(o.feeBase), ft_order_tag: o.tag, average: num(o.average ?? new D(0)), price: num(o.price),
      order_date: printDate(o.at), ft_is_entry: o.side === 'buy',
    };
  }

  private tradeJson(t: Trade, open = false): Record<string, unknown> {
    const [base, quote] = t.pair.split('/');
    const json: Record<string, unknown> = {
      trade_id: t.id, pair: t.pair, base_currency: base, quote_currency: quote, is_open: t.isOpen, is_short: false, exchange: 'upbit',
      amount: num(t.amount), amount_requested: num(t.amount), stake_amount: num(t.stake), max_stake_amount: num(t.stake), strategy: 'FakeStrategy',
      enter_tag: t.enterTag, timeframe: 5, fee_open: num(this.fee), fee_open_cost: null, fee_open_currency: quote, fee_close: num(this.fee),
      fee_close_cost: null, fee_close_currency: quote, open_date: printDate(t.openAt), open_timestamp: t.openAt, open_fill_date: printDate(t.openAt),
      open_fill_timestamp: t.openAt, open_rate: num(t.openRate), open_rate_requested: num(t.openRate), open_trade_value: num(t.stake),
      close_date: t.closeAt === null ? null : printDate(t.closeAt), close_timestamp: t.closeAt, close_rate: num(t.closeRate), exit_reason: t.exitReason,
      realized_profit: 0, has_open_orders: t.orders.some((o) => o.status === 'open'), leverage: 1, trading_mode: 'spot',
      orders: t.orders.filter((o) => o.status === 'open' || o.filled.gt(0)).map((o) => this.orderJson(t, o)),
    };
    if (open) json['current_rate'] = num(this.prices.get(t.pair) ?? t.openRate);
    if (open) json['total_profit_abs'] = 0;
    return json;
  }

  private closedTrades(req: Req): Reply {
    const limit = Number(req.query.get('limit') ?? '500');
    const offset = Number(req.query.get('offset') ?? '0');
    const closed = this.tradeList.filter((t) => !t.isOpen).sort((a, b) => a.id - b.id);
    const page = (limit ? closed.slice(offset, offset + limit) : closed).map((t) => this.tradeJson(t));
    return { status: 200, body: { trades: page, trades_count: page.length, offset, total_trades: closed.length } };
  }

  private oneTrade(id: string): Reply {
    if (!/^-?\d+$/.test(id)) return unprocessable([{ type: 'int_parsing', loc: ['path', 'tradeid'], msg: 'Input should be a valid integer, unable to parse string as an integer', input: id }]);
    const t = this.tradeList.find((x) => x.id === Number(id));
    return t ? { status: 200, body: this.tradeJson(t, t.isOpen) } : { status: 404, body: { detail: 'Trade not found.' } };
  }

  // ---- trading -----------------------------------------------------------------------------

  private async maybeHold(req: Req, work: () => Reply): Promise<Reply | 'dropped'> {
    const hold = this.holds.shift();
    if (hold === undefined) return work();
    if (hold === 'placed') work();
    return this.hang(req);
  }

  /** Never answers: the connection is dropped at `releaseHeld` (or when the client gives up). */
  private async hang(req: Req): Promise<'dropped'> {
    await new Promise<void>((resolve) => {
      const release = () => { this.held.delete(release); resolve(); };
      this.held.add(release);
      req.signal.addEventListener('abort', release, { once: true });
    });
    return 'dropped';
  }

  private forceEnter(req: Req): Promise<Reply | 'dropped'> {
    const body = parseBody(req.body);
    if ('invalid' in body) return Promise.resolve(body.invalid);
    const p = body.value;
    const issues: unknown[] = [];
    if (typeof p['pair'] !== 'string') issues.push({ type: 'missing', loc: ['body', 'pair'], msg: 'Field required', input: p });
    for (const field of ['price', 'stakeamount', 'leverage']) {
      if (p[field] !== undefined && p[field] !== null && typeof p[field] !== 'number') issues.push({ type: 'float_parsing', loc: ['body', field], msg: 'Input should be a valid number, unable to parse string as a number', input: p[field] });
    }
    if (p['side'] !== undefined && p['side'] !== 'long' && p['side'] !== 'short') issues.push({ type: 'enum', loc: ['body', 'side'], msg: "Input should be 'long' or 'short'", input: p['side'] });
    if (p['ordertype'] !== undefined && p['ordertype'] !== null && !['market', 'limit'].includes(String(p['ordertype']))) {
      issues.push({ type: 'enum', loc: ['body', 'ordertype'], msg: "Input should be 'limit' or 'market'", input: p['ordertype'] });
    }
    if (issues.length > 0) return Promise.resolve(unprocessable(issues));
    const refuse = (msg: string): Reply => rpcError('/api/v1/forceenter', msg);
    const c = this.config;
    const pair = p['pair'] as string;
    if (!c.force_entry_enable) return Promise.resolve(refuse('Force_entry not enabled.'));
    if (c.state !== 'running') return Promise.resolve(refuse('trader is not running'));
    if (p['side'] === 'short') return Promise.resolve(refuse("Can't go short on Spot markets."));
    if (!this.prices.has(pair)) return Promise.resolve(refuse('Symbol does not exist or market is not active.'));
    if (pair.split('/')[1] !== c.stake_currency) return Promise.resolve(refuse(`Wrong pair selected. Only pairs with stake-currency ${c.stake_currency} allowed.`));
    const existing = this.tradeList.find((t) => t.isOpen && t.pair === pair);
    if (existing && !c.position_adjustment_enable) return Promise.resolve(refuse(`position for ${pair} already open - id: ${existing.id}`));
    if (!existing && this.tradeList.filter((t) => t.isOpen).length >= c.max_open_trades) return Promise.resolve(refuse('Maximum number of trades is reached.'));
    const stake = new D(typeof p['stakeamount'] === 'number' ? p['stakeamount'] : this.account(c.stake_currency).free.div(this.fee.plus(1)).toFixed(0, Decimal.ROUND_DOWN));
    const free = this.account(c.stake_currency).free;
    // Freqtrade lowers the stake to what is available, then refuses an entry below the minimum.
    let usable = D.min(stake, free.div(this.fee.plus(1)).toDecimalPlaces(8, Decimal.ROUND_DOWN));
    // `validate_stake_amount`: a stake below the exchange minimum is raised to it if that is at most 30 % more.
    if (usable.lt(this.minStake) && this.minStake.lte(usable.times('1.3')) && this.minStake.lte(free.div(this.fee.plus(1)))) usable = this.minStake;
    if (usable.lt(this.minStake)) return Promise.resolve(refuse(`Failed to enter position for ${pair}.`));
    const type = (p['ordertype'] ?? 'market') as 'market' | 'limit';
    const price = typeof p['price'] === 'number' ? new D(p['price']) : undefined;
    const tag = typeof p['entry_tag'] === 'string' && p['entry_tag'] !== '' ? p['entry_tag'] : 'force_entry';
    return this.maybeHold(req, () => ({ status: 200, body: this.tradeJson(this.enter(pair, usable, type, price ?? null, tag, existing), true) }));
  }

  private enter(pair: string, stake: D, type: 'market' | 'limit', price: D | null, tag: string | null, existing: Trade | undefined): Trade {
    const rate = price ?? this.prices.get(pair)!;
    const amount = stake.div(rate).toDecimalPlaces(8, Decimal.ROUND_DOWN);
    const now = this.now();
    const order: Order = { order_id: `ft-${++this.orderSeq}`, side: 'buy', tag, type, amount, filled: new D(0), price: rate, average: null, feeBase: null, status: 'open', at: now, filledAt: null };
    const trade: Trade = existing ?? {
      id: ++this.tradeSeq, pair, isOpen: true, amount: new D(0), stake: new D(0), openRate: rate, closeRate: null, enterTag: tag, exitReason: null, openAt: now, closeAt: null, orders: [],
    };
    if (!existing) this.tradeList.push(trade);
    trade.orders.push(order);
    this.placed += 1;
    const quote = this.account(pair.split('/')[1]!);
    const lock = amount.times(rate).times(this.fee.plus(1));
    quote.free = quote.free.minus(lock);
    quote.used = quote.used.plus(lock);
    this.tryFill(trade, order);
    return trade;
  }

  /** Fills an open order when the market allows: market orders at once, limits at their price. */
  private tryFill(t: Trade, o: Order): void {
    const market = this.prices.get(t.pair)!;
    if (o.type === 'limit' && (o.side === 'buy' ? market.gt(o.price) : market.lt(o.price))) return;
    const fillPrice = o.type === 'market' ? market : o.price;
    const [base, quote] = t.pair.split('/') as [string, string];
    const cost = o.amount.times(fillPrice);
    const inBase = o.side === 'buy' && this.options.feeInBase === true;
    const fee = inBase ? new D(0) : cost.times(this.fee);
    const got = inBase ? o.amount.minus(o.amount.times(this.fee).toDecimalPlaces(8, Decimal.ROUND_UP)) : o.amount;
    if (inBase) o.feeBase = o.amount.minus(got);
    o.filled = o.amount;
    o.average = fillPrice;
    o.status = 'closed';
    o.filledAt = this.now();
    if (o.side === 'buy') {
      const q = this.account(quote);
      const lock = o.amount.times(o.price).times(this.fee.plus(1));
      q.used = q.used.minus(lock);
      q.free = q.free.plus(lock).minus(cost).minus(fee);
      this.account(base).free = this.account(base).free.plus(got);
      const stakeBefore = t.stake;
      t.stake = t.stake.plus(cost);
      t.openRate = t.amount.isZero() ? fillPrice : stakeBefore.plus(cost).div(t.amount.plus(got));
      t.amount = t.amount.plus(got);
    } else {
      this.account(base).free = this.account(base).free.minus(o.amount);
      this.account(quote).free = this.account(quote).free.plus(cost).minus(fee);
      const rest = t.amount.minus(o.amount);
      if (rest.isZero()) {
        t.isOpen = false;
        t.closeRate = fillPrice;
        t.closeAt = this.now();
        t.exitReason = o.tag;
      } else {
        t.stake = t.stake.times(rest).div(t.amount);
        t.amount = rest;
      }
    }
  }

  private forceExit(req: Req): Promise<Reply | 'dropped'> {
    const body = parseBody(req.body);
    if ('invalid' in body) return Promise.resolve(body.invalid);
    const p = body.value;
    const issues: unknown[] = [];
    if (typeof p['tradeid'] !== 'string' && typeof p['tradeid'] !== 'number') issues.push({ type: 'missing', loc: ['body', 'tradeid'], msg: 'Field required', input: p });
    if (p['amount'] !== undefined && p['amount'] !== null && typeof p['amount'] !== 'number') issues.push({ type: 'float_parsing', loc: ['body', 'amount'], msg: 'Input should be a valid number, unable to parse string as a number', input: p['amount'] });
    if (p['price'] !== undefined && p['price'] !== null && typeof p['price'] !== 'number') issues.push({ type: 'float_parsing', loc: ['body', 'price'], msg: 'Input should be a valid number, unable to parse string as a number', input: p['price'] });
    if (issues.length > 0) return Promise.resolve(unprocessable(issues));
    const refuse = (msg: string): Reply => rpcError('/api/v1/forceexit', msg);
    if (this.config.state !== 'running') return Promise.resolve(refuse('trader is not running'));
    const id = String(p['tradeid']);
    const type = (p['ordertype'] ?? 'market') as 'market' | 'limit';
    const limitPrice = type === 'limit' && typeof p['price'] === 'number' ? new D(p['price']) : undefined;
    if (id === 'all') {
      return this.maybeHold(req, () => {
        for (const t of this.tradeList.filter((x) => x.isOpen)) this.exit(t, type, undefined, undefined);
        return { status: 200, body: { result: 'Created exit orders for all open trades.' } };
      });
    }
    const trade = this.tradeList.find((t) => String(t.id) === id && t.isOpen);
    if (!trade) return Promise.resolve(refuse('invalid argument'));
    let amount: D | undefined;
    if (typeof p['amount'] === 'number' && p['amount'] > 0 && new D(p['amount']).lt(trade.amount)) {
      amount = new D(p['amount']);
      const rate = this.prices.get(trade.pair)!;
      const remaining = trade.amount.minus(amount).times(rate);
      if (remaining.lt(this.minStake)) return Promise.resolve(refuse(`Remaining amount of ${remaining.toNumber()} would be too small.`));
    }
    return this.maybeHold(req, () => {
      this.exit(trade, type, amount, limitPrice);
      return { status: 200, body: { result: `Created exit order for trade ${id}.` } };
    });
  }

  private exit(trade: Trade, type: 'market' | 'limit', amount: D | undefined, limitPrice: D | undefined): void {
    // The trade's open exit order is cancelled first, so the new one is placed anew.
    for (const o of trade.orders) if (o.side === 'sell' && o.status === 'open') o.status = 'canceled';
    const price = limitPrice ?? this.prices.get(trade.pair)!;
    const order: Order = { order_id: `ft-${++this.orderSeq}`, side: 'sell', tag: 'force_exit', type, amount: amount ?? trade.amount, filled: new D(0), price, average: null, feeBase: null, status: 'open', at: this.now(), filledAt: null };
    trade.orders.push(order);
    this.placed += 1;
    this.tryFill(trade, order);
  }

  private cancelOpenOrder(id: string): Reply {
    const trade = this.tradeList.find((t) => String(t.id) === id);
    if (!trade || !trade.isOpen) return rpcError(`/api/v1/trades/${id}/open-order`, 'invalid argument');
    const open = trade.orders.find((o) => o.status === 'open');
    if (!open) return rpcError(`/api/v1/trades/${id}/open-order`, `No open order for trade_id ${id}`);
    open.status = 'canceled';
    if (open.side === 'buy') {
      const q = this.account(trade.pair.split('/')[1]!);
      const lock = open.amount.times(open.price).times(this.fee.plus(1));
      q.used = q.used.minus(lock);
      q.free = q.free.plus(lock);
      if (trade.amount.isZero()) {
        // Freqtrade deletes a trade whose only entry was cancelled unfilled.
        this.tradeList.splice(this.tradeList.indexOf(trade), 1);
        return rpcError(`/api/v1/trades/${id}/open-order`, 'no active trade');
      }
    }
    return { status: 200, body: this.tradeJson(trade, true) };
  }
}

function notFound(): Reply {
  return { status: 404, body: { detail: 'Not Found' } };
}

function unprocessable(detail: unknown[]): Reply {
  return { status: 422, body: { detail } };
}

/** `webserver.py` `handle_rpc_exception`. */
function rpcError(path: string, message: string): Reply {
  return { status: 502, body: { error: `Error querying ${path}: ${message}` } };
}

function parseBody(text: string): { value: Record<string, unknown> } | { invalid: Reply } {
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return { value: value as Record<string, unknown> };
    return { invalid: unprocessable([{ type: 'model_attributes_type', loc: ['body'], msg: 'Input should be a valid dictionary or object to extract fields from', input: value }]) };
  } catch {
    return { invalid: unprocessable([{ type: 'json_invalid', loc: ['body', 0], msg: 'JSON decode error', input: {}, ctx: { error: 'Expecting value' } }]) };
  }
}
