/**
 * Upbit's private (exchange) REST API on the same local server as `FakeUpbit`'s public market
 * data, so one ccxt `upbit` instance with `ex.urls.api = { public: url, private: url }` talks to
 * both. It is a protocol peer for the Upbit execution adapter: it authenticates as Upbit does,
 * keeps balances and orders, and refuses what Upbit refuses, in Upbit's shapes.
 *
 *   GET    /v1/accounts             balances: currency, balance, locked, avg_buy_price, unit_currency
 *   GET    /v1/orders/chance        fees, minimums and the two accounts of a market
 *   POST   /v1/orders               create (limit | price = market buy of KRW | market = market sell)
 *   POST   /v1/orders/test          validates exactly like /v1/orders, creates nothing
 *   GET    /v1/order                one order by uuid or identifier, with its trades
 *   DELETE /v1/order                cancel by uuid or identifier
 *   GET    /v1/orders/open|closed   order lists (reconciliation)
 *   GET    /v1/orderbook/instruments   tick size per market (public)
 *
 * Authentication: `Authorization: Bearer <JWT>` (HS256 or HS512) signed with the secret key;
 * payload `access_key`, a fresh `nonce`, and with parameters `query_hash` = SHA-512 hex of the
 * unescaped query string (GET/DELETE) or of the JSON body's fields joined as `k=v&…` (POST),
 * `query_hash_alg: 'SHA512'`. Refusals are 401s named `no_authorization_token`,
 * `jwt_verification`, `invalid_access_key`, `expired_access_key`, `no_authorization_ip`,
 * `nonce_used`, `invalid_query_payload`, `out_of_scope`.
 *
 * Upbit's rules: an identifier is unique forever and burned by any authenticated POST /v1/orders
 * that carries it, refused or not; 5,000 KRW minimum total (`under_min_total_bid|ask`); the KRW
 * price tick table for limit prices (`invalid_price_bid|ask`); balances
 * (`insufficient_funds_bid|ask`) with the 0.05 % fee locked on top of a buy. The answer to a
 * POST is the order as accepted (`state: 'wait'`, nothing executed); fills follow at once. Market
 * orders fill at the ticker price set on the `FakeUpbit` (`setTicker`); a filled market buy ends
 * in `cancel` with `executed_volume` > 0 (the unspent KRW is returned), a filled market sell in
 * `done`. Limit orders fill at their limit price when the ticker reaches it (checked on every
 * private request), or when a test calls `fillOrder`.
 *
 * Test controls: balances (`setBalance`, `deposit`, `withdraw`, `outsideTrade`), faults on the
 * next POST /v1/orders (`failNextOrder`, `holdNextOrder`), a slow venue (`slowVenue`: orders
 * invisible for N lookups, limit orders filling in parts), keys and permissions (`expireKey`,
 * `allowIps`, `setPermissions`), and what happened (`orders()`, `testOrders()`, `privateRequests`).
 */
import crypto from 'node:crypto';
import Decimal from 'decimal.js';
import { FakeUpbit, TOO_MANY_REQUESTS, upbitError, type FakeReply, type FakeRequest } from './fake-upbit';

/** Decimals with room for every product the fake forms, so locks and releases match exactly. */
const D = Decimal.clone({ precision: 64 });

/** Upbit's KRW-market fee, charged on the traded value and locked on top of a buy. */
export const FEE_RATE = new D('0.0005');
/** Upbit's minimum order total in the KRW market, buys and sells alike. */
export const MIN_ORDER_TOTAL_KRW = 5000;

/**
 * Error names the fake answers with. All but `duplicateIdentifier` and `orderNotCancelable` are
 * documented by Upbit; Upbit documents that a reused identifier is refused but not the name, and
 * not what cancelling a finished order answers (both are options).
 */
export const UPBIT_ERRORS = {
  noToken: 'no_authorization_token',
  jwtVerification: 'jwt_verification',
  invalidAccessKey: 'invalid_access_key',
  expiredAccessKey: 'expired_access_key',
  noAuthorizationIp: 'no_authorization_ip',
  nonceUsed: 'nonce_used',
  invalidQueryPayload: 'invalid_query_payload',
  outOfScope: 'out_of_scope',
  validation: 'validation_error',
  createBid: 'create_bid_error',
  createAsk: 'create_ask_error',
  underMinTotalBid: 'under_min_total_bid',
  underMinTotalAsk: 'under_min_total_ask',
  invalidPriceBid: 'invalid_price_bid',
  invalidPriceAsk: 'invalid_price_ask',
  insufficientFundsBid: 'insufficient_funds_bid',
  insufficientFundsAsk: 'insufficient_funds_ask',
  orderNotFound: 'order_not_found',
  duplicateIdentifier: 'duplicate_identifier',
  orderNotCancelable: 'validation_error',
} as const;

/** The KRW market's price tick for `price` (Upbit's table since 2025-07-31 for ≥ 100 KRW). */
export function krwTickSize(price: Decimal.Value): Decimal {
  const p = new D(price);
  const table: [number, string][] = [
    [1_000_000, '1000'], [500_000, '500'], [100_000, '100'], [50_000, '50'], [10_000, '10'], [5_000, '5'],
    [100, '1'], [10, '0.01'], [1, '0.001'], [0.1, '0.0001'], [0.01, '0.00001'], [0.001, '0.000001'], [0.0001, '0.0000001'],
  ];
  for (const [from, tick] of table) if (p.gte(from)) return new D(tick);
  return new D('0.00000001');
}

/** Whether `price` is a multiple of its KRW tick. */
export function isOnKrwTick(price: Decimal.Value): boolean {
  return new D(price).mod(krwTickSize(price)).isZero();
}

/** Permission groups of an Upbit API key (the ones these endpoints need). */
export type UpbitPermission = 'view-assets' | 'view-orders' | 'make-orders';

export interface FakeUpbitExchangeOptions {
  /** The key pair the fake accepts (defaults: `fake-access-key` / `fake-secret-key`). */
  accessKey?: string;
  secretKey?: string;
  /** Clock for `created_at` and rate windows (default `Date.now`). */
  now?: () => number;
  /** Name answered for a reused identifier (Upbit does not document it). */
  duplicateIdentifierError?: string;
  /** Whether POST /v1/orders/test burns its identifier too (default false; undocumented). */
  orderTestBurnsIdentifier?: boolean;
  /** Answer 429 when a group's per-second limit is exceeded (default false: only report it). */
  enforceRateLimits?: boolean;
}

/** One private request as the fake saw it. */
export interface ExchangeRequest {
  method: string;
  path: string;
  /** Query parameters (GET/DELETE) or JSON body fields (POST), as strings. */
  params: Record<string, string>;
  /** `ok`, or the Upbit error name authentication refused it with. */
  auth: string;
  accessKey?: string;
  /** The status answered (undefined while held). */
  status?: number;
  /** The Upbit error name of the answer, if it was an error. */
  error?: string;
  /** The client hung up before the answer was sent. */
  aborted: boolean;
}

/** A fault for the next POST /v1/orders. */
export interface OrderFault {
  /** `placed`: the order is created, then the answer fails; `not-placed`: nothing is created. */
  after: 'placed' | 'not-placed';
  status: number;
  /** The error body (default: `too_many_requests` for 429, else `server_error`). */
  error?: { name: string; message: string };
  /** `not-placed` only: burn the identifier anyway (default false). */
  burnIdentifier?: boolean;
}

/** A slow venue: orders placed while it is set are invisible, and limit orders fill in parts. */
export interface SlowVenue {
  /** GET/DELETE /v1/order answer `order_not_found` for this many lookups of each new order. */
  hiddenLookups?: number;
  /** A marketable limit order fills in this many equal parts, one per visible GET /v1/order. */
  fillParts?: number;
}

/** An Upbit order row as GET /v1/order answers it. */
export type UpbitOrderRow = Record<string, unknown> & { uuid: string; state: string; market: string; side: string; ord_type: string };

type Side = 'bid' | 'ask';
type OrdType = 'limit' | 'price' | 'market';
type TimeInForce = 'ioc' | 'fok' | 'post_only';

interface Trade { uuid: string; price: Decimal; volume: Decimal; funds: Decimal; at: number }

interface Order {
  uuid: string;
  identifier?: string;
  market: string;
  side: Side;
  ordType: OrdType;
  price: Decimal | null;
  volume: Decimal | null;
  timeInForce?: TimeInForce;
  state: 'wait' | 'done' | 'cancel';
  createdAt: number;
  executedVolume: Decimal;
  executedFunds: Decimal;
  paidFee: Decimal;
  trades: Trade[];
  hiddenLookups: number;
  fillParts: number;
  source: 'api' | 'outside';
}

interface Account { balance: Decimal; locked: Decimal; avgBuyPrice: Decimal }

interface OrderSpec { market: string; side: Side; ordType: OrdType; price: Decimal | null; volume: Decimal | null; timeInForce?: TimeInForce }

interface Call { req: FakeRequest; params: Record<string, string>; entry: ExchangeRequest }

type Held = 'aborted' | 'released' | 'elapsed';

const KST_OFFSET_MS = 9 * 3600_000;
const ALL_PERMISSIONS: UpbitPermission[] = ['view-assets', 'view-orders', 'make-orders'];
const RATE_LIMITS: Record<string, number> = { default: 30, order: 8, 'order-test': 8 };
const MESSAGES: Record<string, string> = {
  no_authorization_token: '인증 토큰이 없습니다.',
  jwt_verification: 'Jwt 토큰 검증에 실패했습니다.',
  invalid_access_key: '잘못된 엑세스 키입니다.',
  // The message ccxt's upbit class maps (exactly) to AuthenticationError.
  expired_access_key: 'This key has expired.',
  no_authorization_ip: 'This is not a verified IP.',
  nonce_used: '이미 요청한 nonce값이 다시 사용되었습니다.',
  invalid_query_payload: 'JWT 헤더의 페이로드가 올바르지 않습니다.',
  out_of_scope: '권한이 부족합니다.',
  under_min_total_bid: '최소주문금액 이상으로 주문해주세요',
  under_min_total_ask: '최소주문금액 이상으로 주문해주세요',
  invalid_price_bid: '주문가격 단위를 잘못 입력하셨습니다. 확인 후 시도해주세요.',
  invalid_price_ask: '주문가격 단위를 잘못 입력하셨습니다. 확인 후 시도해주세요.',
  create_bid_error: '매수 주문 요청 정보가 올바르지 않습니다.',
  create_ask_error: '매도 주문 요청 정보가 올바르지 않습니다.',
  order_not_found: '주문을 찾지 못했습니다.',
};

function refusal(status: number, name: string, message = MESSAGES[name] ?? name): FakeReply {
  return upbitError(status, name, message);
}

function invalid(field: string): FakeReply {
  return refusal(400, UPBIT_ERRORS.validation, `${field} is missing, ${field} does not have a valid value`);
}

function kst(ms: number, withMillis = false): string {
  return new Date(ms + KST_OFFSET_MS).toISOString().slice(0, withMillis ? 23 : 19) + '+09:00';
}

function str(d: Decimal | null): string | null {
  return d === null ? null : d.toFixed();
}

function decimalParam(value: string | undefined): Decimal | null | 'bad' {
  if (value === undefined || value === '') return null;
  if (!/^\d+(\.\d+)?$/.test(value)) return 'bad';
  const d = new D(value);
  return d.gt(0) ? d : 'bad';
}

export class FakeUpbitExchange {
  readonly accessKey: string;
  readonly secretKey: string;
  /** Every private request, in arrival order. */
  readonly privateRequests: ExchangeRequest[] = [];
  private readonly keys = new Map<string, { secret: string; expired: boolean }>();
  private readonly usedNonces = new Set<string>();
  private readonly accounts = new Map<string, Account>();
  private readonly orderList: Order[] = [];
  private readonly testOrderList: UpbitOrderRow[] = [];
  private readonly usedIdentifiers = new Set<string>();
  private readonly orderFaults: ({ kind: 'fail' } & OrderFault | { kind: 'hold'; after: 'placed' | 'not-placed'; maxMs: number })[] = [];
  private readonly releasers = new Set<() => void>();
  private readonly rate = new Map<string, { second: number; count: number }>();
  private permissions = new Set<UpbitPermission>(ALL_PERMISSIONS);
  private ipAllowList: string[] | null = null;
  private slow: Required<SlowVenue> = { hiddenLookups: 0, fillParts: 1 };
  private readonly now: () => number;

  private constructor(readonly market: FakeUpbit, private readonly options: FakeUpbitExchangeOptions) {
    this.accessKey = options.accessKey ?? 'fake-access-key';
    this.secretKey = options.secretKey ?? 'fake-secret-key';
    this.keys.set(this.accessKey, { secret: this.secretKey, expired: false });
    this.now = options.now ?? Date.now;
    this.account('KRW');
    this.addRoutes();
  }

  /** Starts a `FakeUpbit` (KRW-BTC and KRW-ETH listed) with the private API on the same server. */
  static async start(options: FakeUpbitExchangeOptions = {}): Promise<FakeUpbitExchange> {
    return new FakeUpbitExchange(await FakeUpbit.start(), options);
  }

  /** Adds the private API to a running `FakeUpbit`. */
  static attach(market: FakeUpbit, options: FakeUpbitExchangeOptions = {}): FakeUpbitExchange {
    return new FakeUpbitExchange(market, options);
  }

  /** The server's base URL, for `ex.urls.api = { public: url, private: url }`. */
  get url(): string {
    return this.market.url;
  }

  /** Answers every held request, then stops the server. */
  async stop(): Promise<void> {
    this.releaseHeld();
    await this.market.stop();
  }

  // ---- test controls: balances ---------------------------------------------------------------

  /** Sets the free balance of `currency` (locked funds stay as they are). */
  setBalance(currency: string, amount: Decimal.Value, avgBuyPrice?: Decimal.Value): void {
    const acct = this.account(currency);
    acct.balance = new D(amount);
    if (avgBuyPrice !== undefined) acct.avgBuyPrice = new D(avgBuyPrice);
  }

  /** A deposit made outside the service. */
  deposit(currency: string, amount: Decimal.Value): void {
    const acct = this.account(currency);
    acct.balance = acct.balance.plus(amount);
  }

  /** A withdrawal made outside the service; throws when the free balance is short. */
  withdraw(currency: string, amount: Decimal.Value): void {
    const acct = this.account(currency);
    if (acct.balance.lt(amount)) throw new Error(`cannot withdraw ${String(amount)} ${currency}: free balance is ${acct.balance.toFixed()}`);
    acct.balance = acct.balance.minus(amount);
  }

  /**
   * A trade made outside the service (on Upbit's website): a filled limit order at `price`, with
   * fees, that moves the balances and appears in GET /v1/orders/closed but not in `orders()`.
   */
  outsideTrade(trade: { market: string; side: 'buy' | 'sell'; volume: Decimal.Value; price: Decimal.Value }): UpbitOrderRow {
    const spec: OrderSpec = { market: trade.market, side: trade.side === 'buy' ? 'bid' : 'ask', ordType: 'limit', price: new D(trade.price), volume: new D(trade.volume) };
    const order = this.createOrder(spec, undefined, 'outside');
    this.fill(order, order.volume!, order.price!);
    return this.row(order, true);
  }

  /** Balances as the fake holds them, by currency. */
  balances(): Record<string, { balance: string; locked: string; avgBuyPrice: string }> {
    return Object.fromEntries([...this.accounts].map(([c, a]) => [c, { balance: a.balance.toFixed(), locked: a.locked.toFixed(), avgBuyPrice: a.avgBuyPrice.toFixed() }]));
  }

  // ---- test controls: faults and venue behaviour ---------------------------------------------

  /** Fails the next POST /v1/orders with `status`, after placing the order or without placing it. */
  failNextOrder(fault: OrderFault): void {
    this.orderFaults.push({ kind: 'fail', ...fault });
  }

  /**
   * Holds the answer to the next POST /v1/orders until the client hangs up (a client timeout),
   * `releaseHeld()` or `maxMs`. `placed`: the order is created first and the held answer is the
   * normal one; `not-placed`: nothing is created and a late answer is a 504.
   */
  holdNextOrder(hold: { after: 'placed' | 'not-placed'; maxMs?: number }): void {
    this.orderFaults.push({ kind: 'hold', after: hold.after, maxMs: hold.maxMs ?? 60_000 });
  }

  /** How many answers are being held now. */
  get heldCount(): number {
    return this.releasers.size;
  }

  /** Sends every held answer now. */
  releaseHeld(): void {
    for (const release of [...this.releasers]) release();
  }

  /** Makes orders placed from now on late and partial (`null` restores a prompt venue). */
  slowVenue(options: SlowVenue | null): void {
    this.slow = { hiddenLookups: options?.hiddenLookups ?? 0, fillParts: Math.max(1, options?.fillParts ?? 1) };
  }

  /** Fills an open limit order (by uuid or identifier) at its limit price: `volume`, or all that remains. */
  fillOrder(id: string, volume?: Decimal.Value): UpbitOrderRow {
    const order = this.orderList.find((o) => o.uuid === id || o.identifier === id);
    if (!order || order.state !== 'wait' || order.ordType !== 'limit') throw new Error(`no open limit order ${id}`);
    const remaining = order.volume!.minus(order.executedVolume);
    this.fill(order, D.min(remaining, volume ?? remaining), order.price!);
    return this.row(order, true);
  }

  // ---- test controls: keys -------------------------------------------------------------------

  /** Marks an access key expired (`expired_access_key`). */
  expireKey(accessKey = this.accessKey): void {
    const key = this.keys.get(accessKey);
    if (key) key.expired = true;
  }

  /** Accepts private requests only from these addresses (`null`: from anywhere). */
  allowIps(ips: string[] | null): void {
    this.ipAllowList = ips;
  }

  /** The permissions of the key (default: all). */
  setPermissions(permissions: UpbitPermission[]): void {
    this.permissions = new Set(permissions);
  }

  // ---- what happened -------------------------------------------------------------------------

  /** Every order placed through POST /v1/orders (not test orders, not outside trades), oldest first. */
  orders(): UpbitOrderRow[] {
    return this.orderList.filter((o) => o.source === 'api').map((o) => this.row(o, true));
  }

  /** Every answer POST /v1/orders/test gave with 201, oldest first. */
  testOrders(): UpbitOrderRow[] {
    return this.testOrderList.map((r) => ({ ...r }));
  }

  /** Whether an identifier has been burned (used by any authenticated POST /v1/orders). */
  identifierUsed(identifier: string): boolean {
    return this.usedIdentifiers.has(identifier);
  }

  /** The private requests to one path (and method, if given). */
  privateRequestsTo(path: string, method?: string): ExchangeRequest[] {
    return this.privateRequests.filter((r) => r.path === path && (method === undefined || r.method === method));
  }

  // ---- routes --------------------------------------------------------------------------------

  private addRoutes(): void {
    this.privateRoute('GET', '/v1/accounts', 'default', 'view-assets', () => this.accountsReply());
    this.privateRoute('GET', '/v1/orders/chance', 'default', 'view-orders', (c) => this.chanceReply(c));
    this.privateRoute('POST', '/v1/orders', 'order', 'make-orders', (c) => this.placeOrder(c));
    this.privateRoute('POST', '/v1/orders/test', 'order-test', 'make-orders', (c) => this.testOrder(c));
    this.privateRoute('GET', '/v1/order', 'default', 'view-orders', (c) => this.getOrder(c));
    this.privateRoute('DELETE', '/v1/order', 'default', 'make-orders', (c) => this.cancelOrder(c));
    this.privateRoute('GET', '/v1/orders/open', 'default', 'view-orders', (c) => this.listOrders(c, ['wait']));
    this.privateRoute('GET', '/v1/orders/closed', 'default', 'view-orders', (c) => this.listOrders(c, ['done', 'cancel']));
    this.market.route('GET', '/v1/orderbook/instruments', (req) => this.instruments(req), 'orderbook');
  }

  private privateRoute(method: string, path: string, group: string, permission: UpbitPermission, handler: (call: Call) => FakeReply | Promise<FakeReply>): void {
    this.market.route(method, path, async (req) => {
      const params = method === 'POST' ? bodyParams(req.json) : Object.fromEntries(req.query);
      const entry: ExchangeRequest = { method, path, params, auth: 'pending', aborted: false };
      this.privateRequests.push(entry);
      req.signal.addEventListener('abort', () => { entry.aborted = true; }, { once: true });
      this.sweep();
      const refused = this.authenticate(req, entry, permission);
      const remaining = this.countRequest(group);
      let reply: FakeReply;
      if (refused) reply = refused;
      else if (remaining < 0 && this.options.enforceRateLimits) reply = upbitError(429, TOO_MANY_REQUESTS.name, TOO_MANY_REQUESTS.message);
      else reply = await handler({ req, params, entry });
      const sec = reply.status === 429 ? 0 : Math.max(0, remaining);
      reply = { ...reply, headers: { 'Remaining-Req': `group=${group}; min=1800; sec=${sec}`, ...reply.headers } };
      entry.status = reply.status;
      const name = (reply.body as { error?: { name?: unknown } } | undefined)?.error?.name;
      if (name !== undefined) entry.error = String(name);
      return reply;
    }, group);
  }

  /** Counts a request in its group's current second; returns how many remain (negative: over). */
  private countRequest(group: string): number {
    const second = Math.floor(this.now() / 1000);
    const window = this.rate.get(group);
    const current = window && window.second === second ? window : { second, count: 0 };
    current.count += 1;
    this.rate.set(group, current);
    return (RATE_LIMITS[group] ?? 30) - current.count;
  }

  // ---- authentication ------------------------------------------------------------------------

  /** Checks the JWT as Upbit does; returns the refusal, or undefined when it passes. */
  private authenticate(req: FakeRequest, entry: ExchangeRequest, permission: UpbitPermission): FakeReply | undefined {
    const fail = (name: string): FakeReply => {
      entry.auth = name;
      return refusal(401, name);
    };
    const header = req.headers.authorization;
    if (typeof header !== 'string' || !header.startsWith('Bearer ')) return fail(UPBIT_ERRORS.noToken);
    const token = parseJwt(header.slice('Bearer '.length).trim());
    if (!token) return fail(UPBIT_ERRORS.jwtVerification);
    const accessKey = token.payload['access_key'];
    const key = typeof accessKey === 'string' ? this.keys.get(accessKey) : undefined;
    if (!key) return fail(UPBIT_ERRORS.invalidAccessKey);
    entry.accessKey = accessKey as string;
    if (!token.verify(key.secret)) return fail(UPBIT_ERRORS.jwtVerification);
    if (key.expired) return fail(UPBIT_ERRORS.expiredAccessKey);
    if (this.ipAllowList && !this.ipAllowList.includes(req.remoteAddress.replace(/^::ffff:/, ''))) return fail(UPBIT_ERRORS.noAuthorizationIp);
    const nonce = token.payload['nonce'];
    if (typeof nonce !== 'string' || nonce === '') return fail(UPBIT_ERRORS.invalidQueryPayload);
    const nonceKey = `${String(accessKey)}|${nonce}`;
    if (this.usedNonces.has(nonceKey)) return fail(UPBIT_ERRORS.nonceUsed);
    this.usedNonces.add(nonceKey);
    if (!queryHashMatches(req, token.payload)) return fail(UPBIT_ERRORS.invalidQueryPayload);
    if (!this.permissions.has(permission)) return fail(UPBIT_ERRORS.outOfScope);
    entry.auth = 'ok';
    return undefined;
  }

  // ---- accounts ------------------------------------------------------------------------------

  private account(currency: string): Account {
    let acct = this.accounts.get(currency);
    if (!acct) {
      acct = { balance: new D(0), locked: new D(0), avgBuyPrice: new D(0) };
      this.accounts.set(currency, acct);
    }
    return acct;
  }

  private accountRow(currency: string): Record<string, unknown> {
    const a = this.account(currency);
    return { currency, balance: a.balance.toFixed(), locked: a.locked.toFixed(), avg_buy_price: a.avgBuyPrice.toFixed(), avg_buy_price_modified: false, unit_currency: 'KRW' };
  }

  private accountsReply(): FakeReply {
    const rows = [...this.accounts]
      .filter(([c, a]) => c === 'KRW' || !a.balance.isZero() || !a.locked.isZero())
      .map(([c]) => this.accountRow(c));
    return { status: 200, body: rows };
  }

  private chanceReply(call: Call): FakeReply {
    const market = call.params['market'];
    if (!market || !this.market.hasMarket(market)) return invalid('market');
    const base = market.split('-')[1]!;
    const fee = FEE_RATE.toFixed();
    return {
      status: 200,
      body: {
        bid_fee: fee, ask_fee: fee, maker_bid_fee: fee, maker_ask_fee: fee,
        market: {
          id: market, name: `${base}/KRW`, order_types: ['limit'], ask_types: ['limit', 'market'], bid_types: ['limit', 'price'], order_sides: ['ask', 'bid'],
          bid: { currency: 'KRW', price_unit: null, min_total: String(MIN_ORDER_TOTAL_KRW) },
          ask: { currency: base, price_unit: null, min_total: String(MIN_ORDER_TOTAL_KRW) },
          max_total: '1000000000', state: 'active',
        },
        bid_account: this.accountRow('KRW'),
        ask_account: this.accountRow(base),
      },
    };
  }

  private instruments(req: FakeRequest): FakeReply {
    const markets = (req.query.get('markets') ?? '').split(',').map((m) => m.trim()).filter(Boolean);
    if (markets.length === 0) return upbitError(400, 400, 'Missing request parameter error. Check the required parameters!');
    if (markets.some((m) => !this.market.hasMarket(m))) return upbitError(404, 404, 'Code not found');
    return {
      status: 200,
      body: markets.map((m) => ({ market: m, quote_currency: 'KRW', tick_size: krwTickSize(this.market.tickerOf(m)?.price ?? 1).toFixed(), supported_levels: ['0'] })),
    };
  }

  // ---- placing orders ------------------------------------------------------------------------

  private async placeOrder(call: Call): Promise<FakeReply> {
    const fault = this.orderFaults.shift();
    const identifier = call.params['identifier'];
    if (fault?.after === 'not-placed') {
      if (fault.kind === 'fail' && fault.burnIdentifier && identifier !== undefined) this.usedIdentifiers.add(identifier);
      if (fault.kind === 'fail') return faultReply(fault);
      await this.hold(call.req.signal, fault.maxMs);
      return { status: 504, body: '<html><body><h1>504 Gateway Time-out</h1></body></html>', headers: { 'Content-Type': 'text/html' } };
    }
    if (identifier !== undefined) {
      if (this.usedIdentifiers.has(identifier)) return this.duplicateIdentifier();
      this.usedIdentifiers.add(identifier);
    }
    const checked = this.checkOrder(call.params);
    if ('refused' in checked) return checked.refused;
    const order = this.createOrder(checked.spec, identifier, 'api');
    const accepted: FakeReply = { status: 201, body: this.row(order, false) };
    this.settleNew(order);
    if (fault?.kind === 'fail') return faultReply(fault);
    if (fault?.kind === 'hold') await this.hold(call.req.signal, fault.maxMs);
    return accepted;
  }

  private testOrder(call: Call): FakeReply {
    const identifier = call.params['identifier'];
    if (identifier !== undefined) {
      if (this.usedIdentifiers.has(identifier)) return this.duplicateIdentifier();
      if (this.options.orderTestBurnsIdentifier) this.usedIdentifiers.add(identifier);
    }
    const checked = this.checkOrder(call.params);
    if ('refused' in checked) return checked.refused;
    const order = this.newOrder(checked.spec, identifier, 'api');
    const row = this.row(order, false);
    this.testOrderList.push(row);
    return { status: 201, body: row };
  }

  private duplicateIdentifier(): FakeReply {
    return refusal(400, this.options.duplicateIdentifierError ?? UPBIT_ERRORS.duplicateIdentifier, '이미 사용된 identifier입니다. 매 요청시 새로운 값을 생성해주세요.');
  }

  /** Validates an order request in Upbit's order: form, tick, minimum, then funds. */
  private checkOrder(p: Record<string, string>): { spec: OrderSpec } | { refused: FakeReply } {
    const formed = this.formOrder(p);
    if ('refused' in formed) return formed;
    const { spec } = formed;
    const side = spec.side;
    if (spec.ordType === 'limit' && !isOnKrwTick(spec.price!)) {
      return { refused: refusal(400, side === 'bid' ? UPBIT_ERRORS.invalidPriceBid : UPBIT_ERRORS.invalidPriceAsk) };
    }
    if (this.orderTotal(spec).lt(MIN_ORDER_TOTAL_KRW)) {
      return { refused: refusal(400, side === 'bid' ? UPBIT_ERRORS.underMinTotalBid : UPBIT_ERRORS.underMinTotalAsk) };
    }
    const currency = side === 'bid' ? 'KRW' : spec.market.split('-')[1]!;
    if (this.account(currency).balance.lt(lockFor(spec, spec.volume))) {
      const name = side === 'bid' ? UPBIT_ERRORS.insufficientFundsBid : UPBIT_ERRORS.insufficientFundsAsk;
      return { refused: refusal(400, name, `주문가능한 금액(${currency})이 부족합니다.`) };
    }
    return { spec };
  }

  /** The parameters' form: market, side, ord_type and the price/volume each type takes. */
  private formOrder(p: Record<string, string>): { spec: OrderSpec } | { refused: FakeReply } {
    const market = p['market'];
    if (!market || !market.startsWith('KRW-') || !this.market.hasMarket(market)) return { refused: invalid('market') };
    const side = p['side'];
    if (side !== 'bid' && side !== 'ask') return { refused: invalid('side') };
    const ordType = p['ord_type'];
    if (ordType !== 'limit' && ordType !== 'price' && ordType !== 'market') return { refused: invalid('ord_type') };
    const price = decimalParam(p['price']);
    const volume = decimalParam(p['volume']);
    if (price === 'bad') return { refused: invalid('price') };
    if (volume === 'bad') return { refused: invalid('volume') };
    const wrong = side === 'bid' ? UPBIT_ERRORS.createBid : UPBIT_ERRORS.createAsk;
    if (ordType === 'limit' && (price === null || volume === null)) return { refused: invalid(price === null ? 'price' : 'volume') };
    if (ordType === 'price' && (side !== 'bid' || volume !== null)) return { refused: refusal(400, wrong) };
    if (ordType === 'price' && price === null) return { refused: invalid('price') };
    if (ordType === 'market' && (side !== 'ask' || price !== null)) return { refused: refusal(400, wrong) };
    if (ordType === 'market' && volume === null) return { refused: invalid('volume') };
    const tif = p['time_in_force'];
    if (tif !== undefined && (ordType !== 'limit' || (tif !== 'ioc' && tif !== 'fok' && tif !== 'post_only'))) return { refused: invalid('time_in_force') };
    return { spec: { market, side, ordType, price, volume, ...(tif ? { timeInForce: tif } : {}) } };
  }

  /** The KRW value an order request is worth, for the minimum-total rule. */
  private orderTotal(spec: OrderSpec): Decimal {
    if (spec.ordType === 'price') return spec.price!;
    if (spec.ordType === 'limit') return spec.price!.times(spec.volume!);
    return spec.volume!.times(this.tickerPrice(spec.market));
  }

  private tickerPrice(market: string): Decimal {
    const ticker = this.market.tickerOf(market);
    if (!ticker) throw new Error(`no ticker set for ${market}: call setTicker before trading it`);
    return new D(ticker.price);
  }

  private newOrder(spec: OrderSpec, identifier: string | undefined, source: Order['source']): Order {
    return {
      uuid: crypto.randomUUID(), ...(identifier !== undefined ? { identifier } : {}), ...spec,
      state: 'wait', createdAt: this.now(), executedVolume: new D(0), executedFunds: new D(0), paidFee: new D(0),
      trades: [], hiddenLookups: source === 'api' ? this.slow.hiddenLookups : 0, fillParts: source === 'api' ? this.slow.fillParts : 1, source,
    };
  }

  /** Creates an order and locks what it needs. */
  private createOrder(spec: OrderSpec, identifier: string | undefined, source: Order['source']): Order {
    const order = this.newOrder(spec, identifier, source);
    this.orderList.push(order);
    const acct = this.account(lockCurrency(order));
    const lock = lockedOf(order);
    acct.balance = acct.balance.minus(lock);
    acct.locked = acct.locked.plus(lock);
    return order;
  }

  // ---- fills ---------------------------------------------------------------------------------

  /** What happens right after a new order is accepted. */
  private settleNew(order: Order): void {
    if (order.ordType === 'price') {
      const price = this.tickerPrice(order.market);
      this.fill(order, order.price!.div(price).toDecimalPlaces(8, D.ROUND_DOWN), price);
      return;
    }
    if (order.ordType === 'market') {
      this.fill(order, order.volume!, this.tickerPrice(order.market));
      return;
    }
    const marketable = this.marketable(order);
    if (order.timeInForce === 'post_only' && marketable) this.cancel(order);
    else if (order.timeInForce === 'ioc' || order.timeInForce === 'fok') {
      if (marketable) this.fill(order, order.volume!, order.price!);
      else this.cancel(order);
    } else if (order.fillParts <= 1 && marketable) this.fill(order, order.volume!, order.price!);
  }

  private marketable(order: Order): boolean {
    if (order.ordType !== 'limit' || order.state !== 'wait') return false;
    const ticker = this.market.tickerOf(order.market);
    if (!ticker) return false;
    return order.side === 'bid' ? order.price!.gte(ticker.price) : order.price!.lte(ticker.price);
  }

  /** Fills resting limit orders the ticker has reached (partial-fill orders move only on lookups). */
  private sweep(): void {
    for (const order of this.orderList) {
      if (order.fillParts <= 1 && this.marketable(order)) this.fill(order, order.volume!.minus(order.executedVolume), order.price!);
    }
  }

  /** One visible lookup of a partial-fill order: the next part fills when the ticker allows. */
  private advanceParts(order: Order): void {
    if (order.fillParts <= 1 || !this.marketable(order)) return;
    const remaining = order.volume!.minus(order.executedVolume);
    const part = order.volume!.div(order.fillParts).toDecimalPlaces(8, D.ROUND_DOWN);
    this.fill(order, part.isZero() || part.gt(remaining) || order.trades.length >= order.fillParts - 1 ? remaining : part, order.price!);
  }

  /** Executes `volume` at `price`: moves balances and the lock, records the trade and the fee. */
  private fill(order: Order, volume: Decimal, price: Decimal): void {
    if (volume.lte(0)) return;
    const before = lockedOf(order);
    const funds = volume.times(price);
    const fee = funds.times(FEE_RATE);
    order.executedVolume = order.executedVolume.plus(volume);
    order.executedFunds = order.executedFunds.plus(funds);
    order.paidFee = order.paidFee.plus(fee);
    order.trades.push({ uuid: crypto.randomUUID(), price, volume, funds, at: this.now() });
    if (order.ordType === 'price') order.state = 'cancel';
    else if (order.executedVolume.gte(order.volume!)) order.state = 'done';
    const release = before.minus(lockedOf(order));
    const [quoteCcy, baseCcy] = order.market.split('-') as [string, string];
    const quote = this.account(quoteCcy);
    const base = this.account(baseCcy);
    if (order.side === 'bid') {
      quote.locked = quote.locked.minus(release);
      quote.balance = quote.balance.plus(release).minus(funds).minus(fee);
      const held = base.balance.plus(base.locked);
      base.avgBuyPrice = held.times(base.avgBuyPrice).plus(funds).div(held.plus(volume)).toDecimalPlaces(8);
      base.balance = base.balance.plus(volume);
    } else {
      base.locked = base.locked.minus(release);
      quote.balance = quote.balance.plus(funds).minus(fee);
      if (base.balance.plus(base.locked).isZero()) base.avgBuyPrice = new D(0);
    }
  }

  private cancel(order: Order): void {
    const release = lockedOf(order);
    order.state = 'cancel';
    const acct = this.account(lockCurrency(order));
    acct.locked = acct.locked.minus(release);
    acct.balance = acct.balance.plus(release);
  }

  // ---- order lookups and cancels -------------------------------------------------------------

  /** Finds an order by `uuid` (wins) or `identifier`; a hidden one costs a lookup and is not found. */
  private lookUp(params: Record<string, string>): Order | FakeReply {
    const uuid = params['uuid'];
    const identifier = params['identifier'];
    if (!uuid && !identifier) return refusal(400, UPBIT_ERRORS.validation, 'uuid 또는 identifier 중 하나는 반드시 포함해야 합니다.');
    const order = this.orderList.find((o) => (uuid ? o.uuid === uuid : o.identifier === identifier));
    if (!order) return refusal(404, UPBIT_ERRORS.orderNotFound);
    if (order.hiddenLookups > 0) {
      order.hiddenLookups -= 1;
      return refusal(404, UPBIT_ERRORS.orderNotFound);
    }
    return order;
  }

  private getOrder(call: Call): FakeReply {
    const found = this.lookUp(call.params);
    if (!('uuid' in found)) return found;
    this.advanceParts(found);
    return { status: 200, body: this.row(found, true) };
  }

  private cancelOrder(call: Call): FakeReply {
    const found = this.lookUp(call.params);
    if (!('uuid' in found)) return found;
    if (found.state !== 'wait') return refusal(400, UPBIT_ERRORS.orderNotCancelable, '이미 체결되었거나 취소된 주문입니다.');
    const accepted = this.row(found, false);
    this.cancel(found);
    return { status: 200, body: accepted };
  }

  private listOrders(call: Call, states: string[]): FakeReply {
    const q = call.req.query;
    const asked = [...q.getAll('states[]'), ...q.getAll('state')];
    if (asked.some((s) => !states.includes(s) && !(s === 'watch' && states.includes('wait')))) return invalid('state');
    const wanted = asked.length > 0 ? asked : states;
    const market = q.get('market');
    const start = timeParam(q.get('start_time'));
    const end = timeParam(q.get('end_time'));
    const limit = Math.min(Number(q.get('limit') ?? 100) || 100, 1000);
    const rows = this.orderList
      .filter((o) => o.hiddenLookups === 0 && wanted.includes(o.state) && (!market || o.market === market))
      .filter((o) => (start === undefined || o.createdAt >= start) && (end === undefined || o.createdAt <= end))
      .sort((a, b) => (q.get('order_by') === 'asc' ? a.createdAt - b.createdAt : b.createdAt - a.createdAt))
      .slice(0, limit)
      .map((o) => this.row(o, false));
    return { status: 200, body: rows };
  }

  /** The order in Upbit's shape; `withTrades` as GET /v1/order answers it. */
  private row(o: Order, withTrades: boolean): UpbitOrderRow {
    const remaining = o.volume === null ? null : o.volume.minus(o.executedVolume);
    const row: UpbitOrderRow = {
      uuid: o.uuid, side: o.side, ord_type: o.ordType, price: str(o.price), state: o.state, market: o.market,
      created_at: kst(o.createdAt), volume: str(o.volume), remaining_volume: str(remaining),
      reserved_fee: reservedFee(o).toFixed(), remaining_fee: remainingFee(o).toFixed(), paid_fee: o.paidFee.toFixed(),
      locked: lockedOf(o).toFixed(), executed_volume: o.executedVolume.toFixed(), executed_funds: o.executedFunds.toFixed(),
      prevented_volume: '0', prevented_locked: '0', trades_count: o.trades.length,
      ...(o.identifier !== undefined ? { identifier: o.identifier } : {}),
      ...(o.timeInForce ? { time_in_force: o.timeInForce } : {}),
    };
    if (withTrades) {
      row['trades'] = o.trades.map((t) => ({
        market: o.market, uuid: t.uuid, price: t.price.toFixed(), volume: t.volume.toFixed(), funds: t.funds.toFixed(),
        trend: o.side === 'bid' ? 'up' : 'down', created_at: kst(t.at, true), side: o.side,
      }));
    }
    return row;
  }

  /** Waits until the client hangs up, `releaseHeld()` or `maxMs`. */
  private hold(signal: AbortSignal, maxMs: number): Promise<Held> {
    return new Promise((resolve) => {
      if (signal.aborted) {
        resolve('aborted');
        return;
      }
      const done = (how: Held): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.releasers.delete(release);
        resolve(how);
      };
      const onAbort = (): void => done('aborted');
      const release = (): void => done('released');
      const timer = setTimeout(() => done('elapsed'), maxMs);
      signal.addEventListener('abort', onAbort, { once: true });
      this.releasers.add(release);
    });
  }
}

// ---- order arithmetic ------------------------------------------------------------------------

function lockCurrency(o: { side: Side; market: string }): string {
  return o.side === 'bid' ? 'KRW' : o.market.split('-')[1]!;
}

/** What an order (or an order request, with its unfilled `volume`) keeps locked. */
function lockFor(o: { side: Side; ordType: OrdType; price: Decimal | null }, remainingVolume: Decimal | null): Decimal {
  if (o.side === 'ask') return remainingVolume!;
  const value = o.ordType === 'price' ? o.price! : o.price!.times(remainingVolume!);
  return value.times(FEE_RATE.plus(1));
}

function lockedOf(o: Order): Decimal {
  if (o.state !== 'wait') return new D(0);
  return lockFor(o, o.volume === null ? null : o.volume.minus(o.executedVolume));
}

function reservedFee(o: Order): Decimal {
  if (o.side === 'ask') return new D(0);
  return (o.ordType === 'price' ? o.price! : o.price!.times(o.volume!)).times(FEE_RATE);
}

function remainingFee(o: Order): Decimal {
  if (o.side === 'ask' || o.state !== 'wait') return new D(0);
  return o.ordType === 'price' ? o.price!.times(FEE_RATE) : o.price!.times(o.volume!.minus(o.executedVolume)).times(FEE_RATE);
}

function faultReply(fault: OrderFault): FakeReply {
  const error = fault.error ?? (fault.status === 429 ? TOO_MANY_REQUESTS : { name: 'server_error', message: 'Internal Server Error' });
  return upbitError(fault.status, error.name, error.message);
}

function timeParam(value: string | null): number | undefined {
  if (!value) return undefined;
  return /^\d+$/.test(value) ? Number(value) : Date.parse(value);
}

// ---- JWT -----------------------------------------------------------------------------------

/** A JSON body's fields as strings, in the order sent. */
function bodyParams(json: unknown): Record<string, string> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(json)) if (v !== null && v !== undefined) out[k] = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return out;
}

/**
 * The string Upbit hashes: the unescaped query string of a GET/DELETE, or a POST body's fields
 * as `k=v&…` (arrays as `k[]=v`), in the order they were sent.
 */
function hashSource(req: FakeRequest): string | undefined {
  if (req.method !== 'POST') {
    try {
      return decodeURIComponent(req.rawQuery);
    } catch {
      return undefined;
    }
  }
  if (typeof req.json !== 'object' || req.json === null) return '';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(req.json)) {
    if (v === null || v === undefined) continue;
    if (Array.isArray(v)) for (const item of v) parts.push(`${k}[]=${String(item)}`);
    else parts.push(`${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
  }
  return parts.join('&');
}

function queryHashMatches(req: FakeRequest, payload: Record<string, unknown>): boolean {
  const source = hashSource(req);
  if (source === undefined) return false;
  const hash = payload['query_hash'];
  if (hash === undefined) return source === '';
  const alg = payload['query_hash_alg'] ?? 'SHA512';
  if (alg !== 'SHA512' || typeof hash !== 'string') return false;
  return hash === crypto.createHash('sha512').update(source, 'utf8').digest('hex');
}

/** Splits and decodes a JWT; `verify` checks its HMAC signature with a secret. */
function parseJwt(token: string): { payload: Record<string, unknown>; verify(secret: string): boolean } | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  const [head, body, signature] = parts as [string, string, string];
  let header: unknown;
  let payload: unknown;
  try {
    header = JSON.parse(Buffer.from(head, 'base64url').toString('utf8'));
    payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  const alg = (header as { alg?: unknown } | null)?.alg;
  const hmac = alg === 'HS256' ? 'sha256' : alg === 'HS512' ? 'sha512' : undefined;
  if (!hmac || typeof payload !== 'object' || payload === null) return undefined;
  return {
    payload: payload as Record<string, unknown>,
    verify(secret: string): boolean {
      const expected = crypto.createHmac(hmac, secret).update(`${head}.${body}`).digest();
      const given = Buffer.from(signature, 'base64url');
      return given.length === expected.length && crypto.timingSafeEqual(given, expected);
    },
  };
}
