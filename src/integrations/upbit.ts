/**
 * Upbit's REST API for trading, over ccxt's `upbit` class: the only module that speaks Upbit's
 * wire format for orders and balances. ccxt signs each request (JWT with a fresh nonce, and
 * `query_hash` = SHA-512 of the exact query) and throttles; the calls here use ccxt's raw
 * endpoints (`privatePostOrders`, `privateGetOrder` …), so every amount stays the exact decimal
 * text Upbit sent, and every amount sent is the exact text given.
 *
 * - The REST root is `UPBIT_API_URL`, set as `urls.api = { public, private }` (never
 *   `setSandboxMode`, which empties every URL of ccxt 4.5.84's upbit class).
 * - Orders are looked up and cancelled by `identifier` with the raw `GET/DELETE /v1/order`, which
 *   is what `fetchOrder(undefined, undefined, { identifier })` sends
 *   (`fetchOrderWithClientOrderId` sends the wrong query for Upbit).
 * - Errors are translated here, once, by the error `name` in Upbit's body (ccxt turns most of them
 *   into a plain ExchangeError), into the product's typed errors:
 *   - refusals of an order (`under_min_total_*`, `invalid_price_*`, `insufficient_funds_*`,
 *     `create_*_error`, `validation_error`, any other named 4xx) → `VenueRejectedError` whose
 *     code and message name the rule (nothing was placed);
 *   - credentials and permissions (`jwt_verification`, `invalid_access_key`, `expired_access_key`,
 *     `no_authorization_ip`, `out_of_scope`, `nonce_used` …) → `VenueAuthError`, never retried:
 *     after one, private calls fail at once for `authRetryAfterMs` without a request (no storm);
 *   - 429 / 418 / `too_many_requests` → `TransientError` `upbit_rate_limited` (Upbit refused it
 *     before doing anything);
 *   - timeouts, network failures and 5xx → `TransientError` (`upbit_timeout`,
 *     `upbit_unavailable`, `upbit_server_error`): for an order, the outcome is unknown.
 * - Rate limits: every answer's `Remaining-Req` (`group=order; min=1800; sec=0`) is read; when
 *   `sec` reaches 0 the group waits for the next second, and after a 429 it backs off (doubling
 *   up to `maxBackoffMs`) before its next request. Nothing is ever re-sent from here: the caller
 *   decides, after looking the order up.
 * - The keys never appear in an error message or a log line.
 */
import ccxt from 'ccxt';
import type { upbit as CcxtUpbit } from 'ccxt';
import { AppError, NotFoundError, TransientError, VenueAuthError, VenueRejectedError } from '../errors';
import { secretText } from '../redaction';
import type { Logger } from '../logging';

/** A row of `GET /v1/accounts` (amounts as Upbit's decimal text). */
export interface UpbitAccount {
  currency: string;
  /** Free balance. */
  balance: string;
  /** Locked in open orders (or withdrawals). */
  locked: string;
  avg_buy_price?: string;
  unit_currency?: string;
}

/** One execution of an order, as `GET /v1/order` lists it. */
export interface UpbitTrade {
  price: string;
  volume: string;
  funds: string;
  created_at?: string;
}

/** An order as Upbit answers it (`POST /v1/orders`, `GET /v1/order` with `trades`). */
export interface UpbitOrder {
  uuid: string;
  side: string;
  ord_type: string;
  price?: string | null;
  state: string;
  market: string;
  created_at: string;
  volume?: string | null;
  remaining_volume?: string | null;
  paid_fee?: string;
  executed_volume?: string;
  executed_funds?: string;
  identifier?: string;
  trades?: UpbitTrade[];
}

/** The fields of `POST /v1/orders` (and `/v1/orders/test`), exact decimal text. */
export interface UpbitOrderParams {
  /** `KRW-BTC`. */
  market: string;
  side: 'bid' | 'ask';
  /** `limit`; `price` = market buy spending `price` KRW; `market` = market sell of `volume`. */
  ord_type: 'limit' | 'price' | 'market';
  price?: string;
  volume?: string;
  identifier: string;
}

export interface UpbitClientOptions {
  /** UPBIT_API_URL: the REST root (tests point it at a local server). */
  apiUrl: string;
  /** UPBIT_ACCESS_KEY / UPBIT_SECRET_KEY; empty: private calls fail with `keys_missing`. */
  accessKey: string;
  secretKey: string;
  /** The bound on one request (ccxt aborts the socket), ms; default 10 000. */
  timeoutMs?: number;
  /** First back-off after a 429, ms (doubles while 429s continue); default 1000. */
  rateLimitBackoffMs?: number;
  /** Longest back-off (also the wait after a 418 block), ms; default 30 000. */
  maxBackoffMs?: number;
  /** After an authentication refusal, private calls fail at once for this long, ms; default 60 000. */
  authRetryAfterMs?: number;
  logger?: Logger;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** Codes of the transient errors raised here (for callers that must tell them apart). */
export const UPBIT_TRANSIENT = {
  rateLimited: 'upbit_rate_limited',
  timeout: 'upbit_timeout',
  unavailable: 'upbit_unavailable',
  serverError: 'upbit_server_error',
  unexpected: 'upbit_error',
} as const;

/** What Upbit answered with an error (from the body, when it had one). */
export interface UpbitErrorAnswer {
  status?: number;
  name?: string;
  message?: string;
}

/** Credentials and permissions: the code and what the operator must do, by Upbit's error name. */
const AUTH_ERRORS: Record<string, { code: string; advice: string }> = {
  jwt_verification: { code: 'invalid_keys', advice: 'Upbit could not verify the request signature: UPBIT_SECRET_KEY does not belong to UPBIT_ACCESS_KEY. Copy both keys again from Upbit\'s Open API management page and restart' },
  invalid_access_key: { code: 'invalid_keys', advice: 'Upbit does not know UPBIT_ACCESS_KEY (deleted or mistyped): set a valid key pair and restart' },
  expired_access_key: { code: 'expired_key', advice: 'the Upbit API key has expired: issue a new key pair at Upbit, set UPBIT_ACCESS_KEY and UPBIT_SECRET_KEY, and restart' },
  no_authorization_ip: { code: 'ip_not_allowed', advice: 'Upbit refused this server\'s IP address: add the server\'s public IP address to the key\'s allowed IP list in Upbit\'s Open API management' },
  out_of_scope: { code: 'permission_missing', advice: 'the Upbit API key lacks a permission this call needs: enable "View assets", "View orders" and "Make orders" for the key in Upbit\'s Open API management' },
  nonce_used: { code: 'nonce_reused', advice: 'Upbit refused a nonce it had seen before: another program may be replaying requests made with this key; make sure only this service uses UPBIT_ACCESS_KEY' },
  no_authorization_token: { code: 'signature_rejected', advice: 'Upbit received the request without its authorization token: a signing fault in the service; nothing was retried' },
  invalid_query_payload: { code: 'signature_rejected', advice: 'Upbit found the signed query hash different from the request: a signing fault in the service; nothing was retried' },
  thirdparty_agreement_required: { code: 'agreement_required', advice: 'Upbit requires the account holder to accept the third-party information agreement at upbit.com before the API may be used' },
};

/** Order refusals: our code and the rule, by the start of Upbit's error name. */
const REFUSALS: Array<{ prefix: string; code: string; rule: string }> = [
  { prefix: 'under_min_total', code: 'below_minimum', rule: 'an Upbit KRW order must be worth at least 5,000 KRW, buys and sells alike' },
  { prefix: 'invalid_price', code: 'invalid_tick', rule: 'a limit price must be a multiple of the KRW price tick of its band' },
  { prefix: 'insufficient_funds_bid', code: 'insufficient_cash', rule: 'the free KRW must cover the order plus the 0.05 % fee Upbit locks on top of a buy' },
  { prefix: 'insufficient_funds_ask', code: 'insufficient_position', rule: 'a sell cannot exceed the free balance of the coin (what open orders lock is not free)' },
  { prefix: 'insufficient_funds', code: 'insufficient_cash', rule: 'the free balance must cover the order' },
  { prefix: 'create_bid_error', code: 'invalid_order', rule: 'a buy\'s fields were refused (a market buy takes a KRW price and no volume)' },
  { prefix: 'create_ask_error', code: 'invalid_order', rule: 'a sell\'s fields were refused (a market sell takes a volume and no price)' },
  { prefix: 'validation_error', code: 'invalid_order', rule: 'a field of the request was refused' },
  { prefix: 'duplicate', code: 'duplicate_identifier', rule: 'an order identifier can be used once only, even by a refused order' },
  { prefix: 'market_offline', code: 'market_closed', rule: 'the market does not take orders now' },
];

/** Translates an Upbit error answer into the product's typed error (pure). `call` names what was asked. */
export function upbitErrorOf(answer: UpbitErrorAnswer, call: string): AppError {
  const name = answer.name ?? '';
  const status = answer.status;
  const venueMessage = answer.message ?? '';
  const details: Record<string, unknown> = { venue: 'upbit', call, ...(status !== undefined ? { httpStatus: status } : {}), ...(name ? { venueError: name } : {}), ...(venueMessage ? { venueMessage } : {}) };
  const auth = AUTH_ERRORS[name];
  if (auth) return new VenueAuthError(auth.code, `${auth.advice} (Upbit answered ${name} to ${call})`, details);
  if (status === 429 || status === 418 || name === 'too_many_requests') {
    return new TransientError(UPBIT_TRANSIENT.rateLimited, `Upbit is rate limiting (${status ?? name}) ${call}: the service backs off before its next request; nothing was placed by this request`, details);
  }
  if (name === 'order_not_found') return new NotFoundError('order_not_found', `Upbit has no such order (${call})`, details);
  if (status !== undefined && status >= 500) {
    return new TransientError(UPBIT_TRANSIENT.serverError, `Upbit failed with HTTP ${status}${name ? ` ${name}` : ''} on ${call}: the outcome is unknown`, details);
  }
  const refusal = REFUSALS.find((r) => name.startsWith(r.prefix));
  if (refusal) return new VenueRejectedError(refusal.code, `Upbit refused ${call} (${name}): ${refusal.rule}${venueMessage ? ` — "${venueMessage}"` : ''}`, details);
  if (status !== undefined && status >= 400) {
    return new VenueRejectedError('upbit_refused', `Upbit refused ${call} with HTTP ${status}${name ? ` ${name}` : ''}${venueMessage ? `: "${venueMessage}"` : ''}`, details);
  }
  return new TransientError(UPBIT_TRANSIENT.unexpected, `Upbit answered ${call} unexpectedly${name ? ` (${name})` : ''}: the outcome is unknown`, details);
}

/** `group=order; min=1800; sec=0` → its group and `sec`. */
export function parseRemainingReq(header: string | undefined): { group: string; sec: number } | undefined {
  if (!header) return undefined;
  const group = /group=([^;\s]+)/.exec(header)?.[1];
  const sec = /sec=(\d+)/.exec(header)?.[1];
  if (!group || sec === undefined) return undefined;
  return { group, sec: Number(sec) };
}

/** The rate-limit group of a request, for answers that carry no `Remaining-Req`. */
function groupOf(method: string, url: string): string {
  const path = url.replace(/^[a-z]+:\/\/[^/]+/i, '').split('?')[0] ?? '';
  if (method === 'POST' && path.endsWith('/orders/test')) return 'order-test';
  if (method === 'POST' && path.endsWith('/orders')) return 'order';
  if (path.endsWith('/market/all')) return 'market';
  return 'default';
}

function header(headers: unknown, name: string): string | undefined {
  if (typeof headers !== 'object' || headers === null) return undefined;
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return typeof v === 'string' ? v : undefined;
  return undefined;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Upbit's trading API for one key pair. */
export class UpbitClient {
  /** Whether both keys were given (without them only public calls work). */
  readonly hasKeys: boolean;
  private readonly ex: CcxtUpbit;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly scrub: (text: string) => string;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly authRetryAfterMs: number;
  private backoffMs: number;
  /** Per rate-limit group: no request before this time (epoch ms). */
  private readonly resumeAt = new Map<string, number>();
  /** Upbit's error answer behind each ccxt error (recorded by the handleErrors hook). */
  private readonly answers = new WeakMap<object, UpbitErrorAnswer>();
  /** The last authentication refusal, repeated without a request until `until`. */
  private authFailure: { error: VenueAuthError; until: number } | undefined;

  constructor(private readonly options: UpbitClientOptions) {
    this.hasKeys = options.accessKey !== '' && options.secretKey !== '';
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? defaultSleep;
    this.scrub = secretText([options.accessKey, options.secretKey]);
    this.initialBackoffMs = options.rateLimitBackoffMs ?? 1000;
    this.maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.authRetryAfterMs = options.authRetryAfterMs ?? 60_000;
    this.backoffMs = this.initialBackoffMs;
    this.ex = new ccxt.upbit({ apiKey: options.accessKey, secret: options.secretKey, timeout: options.timeoutMs ?? 10_000, enableRateLimit: true });
    // Never setSandboxMode(true): on Upbit (ccxt 4.5.84) it silently empties every URL.
    const root = options.apiUrl.replace(/\/+$/, '');
    this.ex.urls['api'] = { public: root, private: root };
    this.hookAnswers();
  }

  /** Every KRW market Upbit lists, as canonical `BASE/KRW` (public; no keys needed). */
  async krwMarkets(): Promise<string[]> {
    const rows = await this.call<Array<{ market?: unknown }>>('GET /v1/market/all', 'market', false, () => this.ex.publicGetMarketAll());
    return rows.map((r) => String(r.market ?? '')).filter((m) => /^KRW-[A-Z0-9]+$/.test(m)).map((m) => `${m.slice(4)}/KRW`);
  }

  /** Balances of every currency (`GET /v1/accounts`). */
  accounts(): Promise<UpbitAccount[]> {
    return this.call('GET /v1/accounts', 'default', true, () => this.ex.privateGetAccounts());
  }

  /** Places an order (`POST /v1/orders`). Never re-sent from here. */
  placeOrder(params: UpbitOrderParams): Promise<UpbitOrder> {
    return this.call(`POST /v1/orders (${params.identifier})`, 'order', true, () => this.ex.privatePostOrders({ ...params }));
  }

  /** Validates an order as `POST /v1/orders` would, and places nothing (`POST /v1/orders/test`). */
  testOrder(params: UpbitOrderParams): Promise<UpbitOrder> {
    return this.call(`POST /v1/orders/test (${params.identifier})`, 'order-test', true, () => this.ex.privatePostOrdersTest({ ...params }));
  }

  /** The order with this identifier and its trades (`GET /v1/order`), or undefined when Upbit has none. */
  orderByIdentifier(identifier: string): Promise<UpbitOrder | undefined> {
    return this.orNotFound(this.call(`GET /v1/order (${identifier})`, 'default', true, () => this.ex.privateGetOrder({ identifier })));
  }

  /** Cancels an open order by identifier (`DELETE /v1/order`); undefined when Upbit has none. */
  cancelByIdentifier(identifier: string): Promise<UpbitOrder | undefined> {
    return this.orNotFound(this.call(`DELETE /v1/order (${identifier})`, 'default', true, () => this.ex.privateDeleteOrder({ identifier })));
  }

  private async orNotFound<T>(request: Promise<T>): Promise<T | undefined> {
    try {
      return await request;
    } catch (err) {
      if (err instanceof NotFoundError && err.code === 'order_not_found') return undefined;
      throw err;
    }
  }

  /** One request: waits out its group's back-off, then translates whatever went wrong. */
  private async call<T>(what: string, group: string, isPrivate: boolean, request: () => Promise<unknown>): Promise<T> {
    if (isPrivate) this.checkCredentials(what);
    const wait = (this.resumeAt.get(group) ?? 0) - this.now();
    if (wait > 0) {
      this.options.logger?.warn('Upbit rate limit: waiting before the next request', { component: 'upbit', group, waitMs: wait });
      await this.sleep(wait);
    }
    try {
      return (await request()) as T;
    } catch (err) {
      const error = this.translate(err, what);
      if (error instanceof VenueAuthError) this.authFailure = { error, until: this.now() + this.authRetryAfterMs };
      throw error;
    }
  }

  private checkCredentials(what: string): void {
    if (!this.hasKeys) {
      throw new VenueAuthError('keys_missing', `UPBIT_ACCESS_KEY and UPBIT_SECRET_KEY are not both set, so ${what} cannot be asked: set both (an Upbit Open API key with "View assets", "View orders" and "Make orders") and restart`, { venue: 'upbit', call: what });
    }
    const failure = this.authFailure;
    if (failure && this.now() < failure.until) throw failure.error;
  }

  private translate(err: unknown, what: string): unknown {
    if (err instanceof AppError) return err;
    if (!(err instanceof ccxt.BaseError)) return err;
    const answer = this.answers.get(err);
    const text = this.scrub(err.message).slice(0, 300);
    const details = { venue: 'upbit', call: what, cause: err.constructor.name };
    if (err instanceof ccxt.RequestTimeout) {
      return new TransientError(UPBIT_TRANSIENT.timeout, `Upbit did not answer ${what} within ${this.options.timeoutMs ?? 10_000} ms: the outcome is unknown`, details);
    }
    if (answer && (answer.name || answer.status !== undefined)) {
      return upbitErrorOf({ ...answer, ...(answer.message !== undefined ? { message: this.scrub(answer.message) } : {}) }, what);
    }
    if (err instanceof ccxt.RateLimitExceeded || err instanceof ccxt.DDoSProtection) {
      return new TransientError(UPBIT_TRANSIENT.rateLimited, `Upbit is rate limiting ${what}: ${text}`, details);
    }
    if (err instanceof ccxt.NetworkError) {
      return new TransientError(UPBIT_TRANSIENT.unavailable, `Upbit could not be reached for ${what} (${err.constructor.name}): the outcome is unknown — ${text}`, details);
    }
    return new TransientError(UPBIT_TRANSIENT.unexpected, `Upbit answered ${what} unexpectedly (${err.constructor.name}): the outcome is unknown — ${text}`, details);
  }

  /**
   * Wraps ccxt's handleErrors, which sees every answer: reads `Remaining-Req` and 429s for the
   * back-off, and remembers Upbit's error body behind each error ccxt throws.
   */
  private hookAnswers(): void {
    const ex = this.ex;
    const upstream = ex.handleErrors.bind(ex);
    ex.handleErrors = (...args: Parameters<CcxtUpbit['handleErrors']>) => {
      const [status, , url, method, headers, , response] = args;
      this.observe(status, String(method), String(url), headers);
      try {
        return upstream(...args);
      } catch (err) {
        const error = (response as { error?: { name?: unknown; message?: unknown } } | undefined)?.error;
        if (typeof err === 'object' && err !== null) {
          this.answers.set(err, {
            status,
            ...(error?.name !== undefined && error.name !== null ? { name: String(error.name) } : {}),
            ...(error?.message !== undefined && error.message !== null ? { message: String(error.message) } : {}),
          });
        }
        throw err;
      }
    };
  }

  private observe(status: number, method: string, url: string, headers: unknown): void {
    const remaining = parseRemainingReq(header(headers, 'remaining-req'));
    const group = remaining?.group ?? groupOf(method, url);
    const now = this.now();
    const holdUntil = (until: number) => this.resumeAt.set(group, Math.max(this.resumeAt.get(group) ?? 0, until));
    if (status === 429 || status === 418) {
      // 418: Upbit blocks a client that kept going after 429s; wait the longest.
      holdUntil(now + (status === 418 ? this.maxBackoffMs : this.backoffMs));
      this.options.logger?.warn('Upbit answered a rate limit; backing off', { component: 'upbit', group, status, backoffMs: this.backoffMs });
      this.backoffMs = Math.min(this.backoffMs * 2, this.maxBackoffMs);
      return;
    }
    if (status < 400) this.backoffMs = this.initialBackoffMs;
    // The group's budget for this second is spent: wait for the next second.
    if (remaining && remaining.sec <= 0) holdUntil(now + 1000 - (now % 1000));
  }
}
