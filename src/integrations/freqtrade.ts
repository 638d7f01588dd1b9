/**
 * Freqtrade's REST API (`freqtrade/rpc/api_server`): the only module that speaks its wire format.
 * Everything is under `${apiUrl}/api/v1`.
 *
 * Authentication, as `api_auth.py` implements it: `POST /token/login` with HTTP basic
 * `username:password` answers `{access_token, refresh_token}` (HS256 JWTs; Freqtrade gives the
 * access token 15 minutes and the refresh token 30 days); `POST /token/refresh` with
 * `Authorization: Bearer <refresh token>` answers a new `{access_token}`. Private calls carry
 * `Authorization: Bearer <access token>`. When the login route is missing (404/405: an old bot,
 * or a proxy that does not pass it) every call carries HTTP basic instead, which Freqtrade also
 * accepts. An access token is renewed shortly before its `exp`, or when a call is refused with
 * 401: first by the refresh token, then by one login. A refused login is a `VenueAuthError`
 * (`invalid_credentials`): it is never retried, and for `authRetryAfterMs` every private call
 * fails at once with the same error and sends nothing (no storm of logins against the bot).
 * A renewal (refresh or login) that fails otherwise (5xx, a timeout, the bot unreachable) is
 * backed off too: none is tried again for `loginBackoffMs` (default 5 s), doubling after each
 * further failure up to `loginBackoffMaxMs` (default 60 s); meanwhile a call that needs a new
 * token fails at once with `TransientError freqtrade_login_backoff` (one still valid is used).
 * A 401 is answered by FastAPI's auth dependency before any handler runs, so the one retry of a
 * call after a renewed token cannot have done anything twice.
 *
 * Numbers: Freqtrade sends floats as JSON numbers (Python's shortest repr). Answers are read with
 * `parseExactJson`, which keeps every JSON number as its decimal text, so amounts come out exactly
 * as Freqtrade wrote them; amounts we send are written into the JSON body as the exact decimal
 * text we were given (never through a JS number).
 *
 * Errors, translated here once into the product's typed errors, Freqtrade's words in the message:
 * - `{"detail": "..."}` 401 → `VenueAuthError`; 404 → `VenueRejectedError not_found` (`trade/{id}`
 *   answers undefined instead); 422 (`detail` is pydantic's list of `{loc, msg, type}`) →
 *   `VenueRejectedError invalid_request` naming each field;
 * - 502 `{"error": "Error querying /api/v1/...: <RPCException message>"}` is the bot refusing
 *   (`webserver.py` `handle_rpc_exception`): `VenueRejectedError` with a code by the message
 *   (`force_entry_disabled`, `bot_not_running`, `position_open`, …) — except "Error getting
 *   current tickers.", which is a `TransientError`;
 * - 429 (newer bots rate-limit `/trades` and `/status`) → `TransientError freqtrade_rate_limited`;
 * - any other 5xx, a 502 without Freqtrade's body, a timeout or a network failure →
 *   `TransientError`: for `forceenter`/`forceexit` the outcome is unknown.
 * Nothing is ever re-sent from here except the one retry after a 401 described above.
 * The password and the tokens never appear in a message.
 */
import { AppError, TransientError, VenueAuthError, VenueRejectedError } from '../errors';
import { amount, toDec, type Amount } from '../amounts';
import { secretText } from '../redaction';
import type { Logger } from '../logging';

/** A number exactly as Freqtrade wrote it (decimal text; may carry an exponent such as `1e-05`). */
export type WireNumber = string;

/** One order of a trade (`OrderSchema`, `Order.to_json`). */
export interface FreqtradeOrder {
  pair: string;
  order_id: string;
  /** ccxt's status: `open`, `closed`, `canceled`, … */
  status: string | null;
  /** `buy` or `sell` (or `stoploss`). */
  ft_order_side: string;
  /** The entry's `enter_tag`, or the exit's reason (`force_exit` for a force exit). */
  ft_order_tag?: string | null;
  order_type: string;
  amount: WireNumber;
  filled?: WireNumber | null;
  average?: WireNumber | null;
  safe_price?: WireNumber | null;
  cost?: WireNumber | null;
  remaining?: WireNumber | null;
  is_open: boolean;
  order_timestamp?: WireNumber | null;
  order_filled_timestamp?: WireNumber | null;
  /** The fee taken in the base coin, when the exchange took it so (the trade's amount is net of it). */
  ft_fee_base?: WireNumber | null;
}

/** A trade (`TradeSchema`, `Trade.to_json`): one position in one pair, with its orders. */
export interface FreqtradeTrade {
  trade_id: WireNumber;
  pair: string;
  is_open: boolean;
  amount: WireNumber;
  stake_amount: WireNumber;
  open_rate: WireNumber;
  close_rate?: WireNumber | null;
  enter_tag?: string | null;
  exit_reason?: string | null;
  fee_open?: WireNumber | null;
  fee_close?: WireNumber | null;
  open_date: string;
  open_timestamp?: WireNumber | null;
  close_date?: string | null;
  close_timestamp?: WireNumber | null;
  has_open_orders?: boolean;
  /** Filled or open orders only (`select_filled_or_open_orders`). */
  orders: FreqtradeOrder[];
}

/** A page of closed trades (`GET /trades`, ordered by trade id, oldest first). */
export interface FreqtradeTradePage {
  trades: FreqtradeTrade[];
  trades_count: WireNumber;
  offset: WireNumber;
  total_trades: WireNumber;
}

/** One currency of `GET /balance`. */
export interface FreqtradeBalanceRow {
  currency: string;
  free: WireNumber;
  /** Free + used. */
  balance: WireNumber;
  used: WireNumber;
  stake?: string;
  is_position?: boolean;
}

export interface FreqtradeBalances {
  currencies: FreqtradeBalanceRow[];
  stake: string;
}

/** The fields of `GET /show_config` this product reads. */
export interface FreqtradeConfig {
  stake_currency: string;
  dry_run: boolean;
  force_entry_enable: boolean;
  /** `running`, `stopped`, `paused` (newer bots), or empty in webserver mode. */
  state: string;
  trading_mode?: string;
  bot_name?: string;
  version?: string;
  position_adjustment_enable?: boolean;
  max_open_trades?: WireNumber;
}

/** The fields of `POST /forceenter`. Amounts are exact decimal text. */
export interface ForceEnterParams {
  pair: string;
  side: 'long';
  stakeamount: Amount;
  ordertype: 'market' | 'limit';
  /** Limit price (omitted: Freqtrade prices the entry itself). */
  price?: Amount;
  /** Our client order id: Freqtrade keeps it as the trade's `enter_tag` and the order's `ft_order_tag`. */
  entry_tag: string;
}

/** The fields of `POST /forceexit`. */
export interface ForceExitParams {
  tradeid: string;
  ordertype: 'market' | 'limit';
  /** Base amount to exit (omitted: the whole trade). */
  amount?: Amount;
  /** Limit price of a limit exit (Freqtrade 2024.x+; older bots ignore it and price the exit themselves). */
  price?: Amount;
}

export interface FreqtradeClientOptions {
  /** FREQTRADE_API_URL: the bot's API root (`http://host:8080`); `/api/v1` is added here. */
  apiUrl: string;
  /** FREQTRADE_USERNAME / FREQTRADE_PASSWORD (`api_server.username`/`password` of the bot). */
  username: string;
  password: string;
  /** The bound on one request, ms; default 10 000. */
  timeoutMs?: number;
  /** After a refused login, private calls fail at once for this long, ms; default 60 000. */
  authRetryAfterMs?: number;
  /** An access token this close to its `exp` is renewed before use, ms; default 30 000. */
  renewBeforeMs?: number;
  /** After a renewal failed with 5xx or a timeout, none is tried for this long, ms; default 5 000 (doubling). */
  loginBackoffMs?: number;
  /** The longest back-off between failed renewals, ms; default 60 000. */
  loginBackoffMaxMs?: number;
  logger?: Logger;
  now?: () => number;
}

/** Codes of the transient errors raised here. */
export const FREQTRADE_TRANSIENT = {
  timeout: 'freqtrade_timeout',
  unavailable: 'freqtrade_unavailable',
  serverError: 'freqtrade_server_error',
  tickers: 'freqtrade_tickers_unavailable',
  rateLimited: 'freqtrade_rate_limited',
  loginBackoff: 'freqtrade_login_backoff',
} as const;

/** RPCException messages of Freqtrade (`rpc.py`), by what they mean. */
const REFUSALS: Array<{ match: RegExp; code: string; advice: string }> = [
  { match: /Force_entry not enabled/i, code: 'force_entry_disabled', advice: 'set "force_entry_enable": true in the bot\'s config and reload it' },
  { match: /trader is not running/i, code: 'bot_not_running', advice: 'the bot\'s state is not running: start it (/start)' },
  { match: /Bot is not in the correct state/i, code: 'bot_not_ready', advice: 'the API runs without a trading bot (webserver mode)' },
  { match: /already open/i, code: 'position_open', advice: 'Freqtrade keeps one trade per pair (without position_adjustment_enable)' },
  { match: /Maximum number of trades/i, code: 'max_open_trades', advice: 'the bot\'s max_open_trades is reached' },
  { match: /Symbol does not exist|market is not active|Wrong pair selected/i, code: 'pair_not_tradable', advice: 'the pair is not an active market in the bot\'s stake currency' },
  { match: /Can't go short/i, code: 'short_not_allowed', advice: 'spot markets take long entries only' },
  { match: /Failed to enter position/i, code: 'entry_failed', advice: 'the bot placed no entry order (stake too small for the exchange, or the strategy declined it)' },
  { match: /Remaining amount of .* would be too small/i, code: 'remaining_too_small', advice: 'a partial exit must leave at least the exchange minimum in the trade' },
  { match: /Failed to exit trade/i, code: 'exit_failed', advice: 'the bot could not cancel the trade\'s open order, so it placed no exit' },
  { match: /invalid argument/i, code: 'trade_not_open', advice: 'the trade id is not an open trade' },
  { match: /no active trade/i, code: 'no_active_trade', advice: 'no such trade' },
];

/** The words Freqtrade put in an answer's body, if any (`detail` or `error`). */
function wordsOf(body: unknown): { detail?: unknown; error?: string } {
  if (typeof body !== 'object' || body === null) return {};
  const b = body as { detail?: unknown; error?: unknown };
  return { ...(b.detail !== undefined ? { detail: b.detail } : {}), ...(typeof b.error === 'string' ? { error: b.error } : {}) };
}

/** 422's `detail`: pydantic's list of `{loc, msg}`, as `field: message` text. */
function validationText(detail: unknown): string {
  if (!Array.isArray(detail)) return typeof detail === 'string' ? detail : JSON.stringify(detail);
  return detail.map((d: { loc?: unknown; msg?: unknown }) => {
    const loc = Array.isArray(d?.loc) ? d.loc.filter((p) => p !== 'body').join('.') : '';
    return `${loc || 'request'}: ${typeof d?.msg === 'string' ? d.msg : JSON.stringify(d)}`;
  }).join('; ');
}

/**
 * Translates an error answer of Freqtrade into the product's typed error (pure). `call` names
 * what was asked (`POST /forceenter`).
 */
export function freqtradeErrorOf(status: number, body: unknown, call: string): AppError {
  const { detail, error } = wordsOf(body);
  const details: Record<string, unknown> = { venue: 'freqtrade', call, httpStatus: status };
  if (status === 401) {
    const said = typeof detail === 'string' ? detail : 'Unauthorized';
    return new VenueAuthError('invalid_credentials', `Freqtrade refused the credentials for ${call} ("${said}"): set FREQTRADE_USERNAME and FREQTRADE_PASSWORD to the bot's api_server username and password and restart`, { ...details, venueMessage: said });
  }
  if (status === 502 && error !== undefined) {
    // `Error querying /api/v1/forceenter: Force_entry not enabled.` → the RPCException's words.
    const said = error.replace(/^Error querying [^:]*:\s*/, '');
    if (/Error getting current tickers/i.test(said)) {
      return new TransientError(FREQTRADE_TRANSIENT.tickers, `Freqtrade could not get tickers from its exchange for ${call} ("${said}"); try again`, { ...details, venueMessage: said });
    }
    const refusal = REFUSALS.find((r) => r.match.test(said));
    const code = refusal?.code ?? 'freqtrade_refused';
    return new VenueRejectedError(code, `Freqtrade refused ${call}: "${said}"${refusal ? ` — ${refusal.advice}` : ''}; nothing was placed`, { ...details, venueMessage: said });
  }
  if (status === 429) {
    const said = error ?? (typeof detail === 'string' ? detail : '');
    return new TransientError(FREQTRADE_TRANSIENT.rateLimited, `Freqtrade rate-limited ${call} (HTTP 429${said ? `, "${said}"` : ''}): nothing was done; try again later`, { ...details, ...(said ? { venueMessage: said } : {}) });
  }
  if (status >= 500) {
    const said = error ?? (typeof detail === 'string' ? detail : '');
    return new TransientError(FREQTRADE_TRANSIENT.serverError, `Freqtrade failed with HTTP ${status} on ${call}${said ? ` ("${said}")` : ''}: the outcome is unknown`, details);
  }
  if (status === 422) {
    const said = validationText(detail);
    return new VenueRejectedError('invalid_request', `Freqtrade refused the fields of ${call}: ${said}`, { ...details, venueMessage: said });
  }
  if (status === 404) {
    const said = typeof detail === 'string' ? detail : 'Not Found';
    return new VenueRejectedError('not_found', `Freqtrade answered 404 to ${call}: "${said}"`, { ...details, venueMessage: said });
  }
  const said = error ?? (typeof detail === 'string' ? detail : JSON.stringify(detail ?? ''));
  return new VenueRejectedError('freqtrade_refused', `Freqtrade refused ${call} with HTTP ${status}: "${said}"`, { ...details, venueMessage: said });
}

/**
 * JSON.parse that keeps every number as its decimal text (`0.1` → `"0.1"`), so amounts are never
 * rounded through a JS number. Strings and structure are left to JSON.parse.
 */
export function parseExactJson(text: string): unknown {
  let out = '';
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (j < n && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      const m = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 64));
      if (!m) throw new SyntaxError(`not a JSON number at ${i}`);
      out += `"${m[0]}"`;
      i += m[0].length;
    } else {
      out += c;
      i += 1;
    }
  }
  return JSON.parse(out);
}

const DECIMAL_TEXT = /^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** A JSON body whose `numbers` are written as the given decimal text (validated), the rest by JSON.stringify. */
export function exactJsonBody(fields: Record<string, string | boolean | undefined>, numbers: Record<string, Amount | undefined>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) parts.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
  for (const [k, v] of Object.entries(numbers)) {
    if (v === undefined) continue;
    if (!DECIMAL_TEXT.test(v)) throw new VenueRejectedError('invalid_amount', `${k} must be decimal text, got ${JSON.stringify(v)}; nothing was sent`, { field: k });
    // Plain notation (`.5` and `5.` are not JSON numbers), through Decimal, never a JS number.
    parts.push(`${JSON.stringify(k)}:${amount(toDec(k, v))}`);
  }
  return `{${parts.join(',')}}`;
}

/** The `exp` of a JWT as epoch ms (read, not verified: the bot verifies it), or undefined. */
function jwtExpiry(token: string): number | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof payload.exp === 'number' ? payload.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

interface Tokens {
  access: string;
  accessUntil: number;
  refresh: string;
  refreshUntil: number;
}

interface Answer {
  status: number;
  body: unknown;
}

/** Freqtrade's REST API for one bot. */
export class FreqtradeClient {
  private readonly root: string;
  private readonly now: () => number;
  private readonly scrub: (text: string) => string;
  private readonly timeoutMs: number;
  private tokens: Tokens | undefined;
  /** The bot has no login route: every call carries HTTP basic. */
  private basicOnly = false;
  /** One renewal at a time (concurrent calls share it). */
  private renewing: Promise<void> | undefined;
  /** The last refusal of our credentials, repeated without a request until `until`. */
  private authFailure: { error: VenueAuthError; until: number } | undefined;
  /** The last renewal that failed transiently: no renewal is tried until `until`. */
  private renewFailure: { error: TransientError; until: number; delay: number } | undefined;

  constructor(private readonly options: FreqtradeClientOptions) {
    this.root = `${options.apiUrl.replace(/\/+$/, '')}/api/v1`;
    this.now = options.now ?? Date.now;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.scrub = secretText([options.password, Buffer.from(`${options.username}:${options.password}`).toString('base64')]);
  }

  /** `GET /ping` (public): whether the API answers. */
  async ping(): Promise<boolean> {
    const body = await this.call<{ status?: unknown }>('GET', '/ping', { auth: false });
    return body.status === 'pong';
  }

  /** `GET /show_config`: the bot's stake currency, dry_run, force_entry_enable and state. */
  showConfig(): Promise<FreqtradeConfig> {
    return this.call('GET', '/show_config');
  }

  /** `GET /whitelist`: the pairs the bot trades now. */
  async whitelist(): Promise<string[]> {
    const body = await this.call<{ whitelist?: unknown }>('GET', '/whitelist');
    return Array.isArray(body.whitelist) ? body.whitelist.filter((p): p is string => typeof p === 'string') : [];
  }

  /** `GET /balance`. */
  balance(): Promise<FreqtradeBalances> {
    return this.call('GET', '/balance');
  }

  /** `GET /status`: the open trades (Freqtrade answers `[]` when there are none). */
  async openTrades(): Promise<FreqtradeTrade[]> {
    const body = await this.call<unknown>('GET', '/status');
    return Array.isArray(body) ? (body as FreqtradeTrade[]) : [];
  }

  /** `GET /trades?limit&offset`: closed trades by trade id, oldest first. */
  closedTrades(limit: number, offset: number): Promise<FreqtradeTradePage> {
    return this.call('GET', `/trades?limit=${limit}&offset=${offset}`);
  }

  /** `GET /trade/{id}` (open or closed), or undefined when Freqtrade has no such trade (404). */
  async trade(tradeId: string): Promise<FreqtradeTrade | undefined> {
    try {
      return await this.call<FreqtradeTrade>('GET', `/trade/${encodeURIComponent(tradeId)}`);
    } catch (err) {
      if (err instanceof VenueRejectedError && err.code === 'not_found') return undefined;
      throw err;
    }
  }

  /** `POST /forceenter`: the trade it opened. Never re-sent from here. */
  async forceEnter(params: ForceEnterParams): Promise<FreqtradeTrade> {
    const body = exactJsonBody({ pair: params.pair, side: params.side, ordertype: params.ordertype, entry_tag: params.entry_tag }, { stakeamount: params.stakeamount, price: params.price });
    const answer = await this.call<Partial<FreqtradeTrade> & { status?: unknown }>('POST', '/forceenter', { body, what: `POST /forceenter (${params.entry_tag})` });
    if (answer.trade_id === undefined) {
      // `{"status": "Error entering long trade for pair X."}`: no trade came back.
      throw new TransientError('freqtrade_no_trade', `Freqtrade answered POST /forceenter (${params.entry_tag}) without a trade: ${JSON.stringify(answer.status ?? answer)}; the outcome is looked up`, { venue: 'freqtrade' });
    }
    return answer as FreqtradeTrade;
  }

  /** `POST /forceexit`: Freqtrade's result text. Never re-sent from here. */
  async forceExit(params: ForceExitParams): Promise<string> {
    const body = exactJsonBody({ tradeid: params.tradeid, ordertype: params.ordertype }, { amount: params.amount, price: params.price });
    const answer = await this.call<{ result?: unknown }>('POST', '/forceexit', { body, what: `POST /forceexit (trade ${params.tradeid})` });
    return typeof answer.result === 'string' ? answer.result : '';
  }

  /** `DELETE /trades/{id}/open-order`: cancels the trade's open order; the trade as it is after. */
  cancelOpenOrder(tradeId: string): Promise<FreqtradeTrade> {
    return this.call('DELETE', `/trades/${encodeURIComponent(tradeId)}/open-order`);
  }

  // ---- transport ---------------------------------------------------------------------------

  /** One call: authorises it, sends it, and translates whatever went wrong. */
  private async call<T>(method: string, path: string, opts: { body?: string; auth?: boolean; what?: string } = {}): Promise<T> {
    const what = opts.what ?? `${method} ${path.split('?')[0]}`;
    const auth = opts.auth !== false;
    let authorization = auth ? await this.authorization(what, false) : undefined;
    let answer = await this.send(method, path, opts.body, authorization, what);
    if (answer.status === 401 && auth && !this.basicOnly) {
      // The token was refused (expired early, or the bot restarted with another jwt_secret_key):
      // renewed once, and the call repeated once (a 401 is answered before any handler runs).
      authorization = await this.authorization(what, true);
      answer = await this.send(method, path, opts.body, authorization, what);
    }
    if (answer.status >= 200 && answer.status < 300) return answer.body as T;
    const error = freqtradeErrorOf(answer.status, answer.body, what);
    if (error instanceof VenueAuthError) this.refused(error);
    throw error;
  }

  private async send(method: string, path: string, body: string | undefined, authorization: string | undefined, what: string): Promise<Answer> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    try {
      const headers: Record<string, string> = { accept: 'application/json' };
      if (authorization) headers['authorization'] = authorization;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${this.root}${path}`, { method, headers, ...(body !== undefined ? { body } : {}), signal: controller.signal });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text === '' ? undefined : parseExactJson(text);
      } catch {
        // Not JSON (a proxy's HTML page): kept as text; the status decides.
      }
      if (res.ok && typeof parsed === 'string') {
        throw new TransientError(FREQTRADE_TRANSIENT.serverError, `Freqtrade answered ${what} with HTTP ${res.status} but no JSON: the outcome is unknown`, { venue: 'freqtrade', call: what });
      }
      return { status: res.status, body: parsed };
    } catch (err) {
      if (err instanceof AppError) throw err;
      if (controller.signal.aborted) {
        throw new TransientError(FREQTRADE_TRANSIENT.timeout, `Freqtrade did not answer ${what} within ${this.timeoutMs} ms: the outcome is unknown`, { venue: 'freqtrade', call: what });
      }
      const cause = (err as { cause?: { code?: unknown } }).cause?.code;
      throw new TransientError(FREQTRADE_TRANSIENT.unavailable, `Freqtrade could not be reached for ${what}${typeof cause === 'string' ? ` (${cause})` : ''}: the outcome is unknown — ${this.scrub(err instanceof Error ? err.message : String(err))}`, { venue: 'freqtrade', call: what });
    } finally {
      clearTimeout(timer);
    }
  }

  private basic(): string {
    return `Basic ${Buffer.from(`${this.options.username}:${this.options.password}`).toString('base64')}`;
  }

  /** The Authorization header for a private call; `stale`: the current access token was refused. */
  private async authorization(what: string, stale: boolean): Promise<string> {
    const failure = this.authFailure;
    if (failure && this.now() < failure.until) throw failure.error;
    if (this.basicOnly) return this.basic();
    const margin = this.options.renewBeforeMs ?? 30_000;
    if (stale || !this.tokens || this.tokens.accessUntil - this.now() <= margin) {
      const current = this.tokens;
      const usable = !stale && current !== undefined && current.accessUntil > this.now();
      const backoff = this.renewFailure;
      if (backoff && this.now() < backoff.until) {
        if (usable) return `Bearer ${current.access}`;
        throw new TransientError(FREQTRADE_TRANSIENT.loginBackoff, `Freqtrade could not renew the API token (${backoff.error.message}); no login is tried before ${new Date(backoff.until).toISOString()}, so ${what} was not sent`, { venue: 'freqtrade', call: what, until: backoff.until });
      }
      this.renewing ??= this.renew(what, stale ? current : undefined).then(
        () => { this.renewFailure = undefined; },
        (err: unknown) => { if (err instanceof TransientError) this.backOff(err); throw err; },
      ).finally(() => { this.renewing = undefined; });
      try {
        await this.renewing;
      } catch (err) {
        if (usable && err instanceof TransientError) return `Bearer ${current.access}`;
        throw err;
      }
    }
    if (this.basicOnly) return this.basic();
    if (!this.tokens) throw new VenueAuthError('invalid_credentials', `Freqtrade gave no token for ${what}`, { venue: 'freqtrade', call: what });
    return `Bearer ${this.tokens.access}`;
  }

  /** Refresh (while the refresh token lasts), else one login. `refused`: the tokens the bot refused. */
  private async renew(what: string, refused: Tokens | undefined): Promise<void> {
    // Another call renewed meanwhile: its tokens are used.
    if (refused && this.tokens !== refused) return;
    const t = this.tokens;
    if (t && t.refreshUntil > this.now()) {
      const answer = await this.send('POST', '/token/refresh', undefined, `Bearer ${t.refresh}`, `POST /token/refresh (for ${what})`);
      const access = (answer.body as { access_token?: unknown } | undefined)?.access_token;
      if (answer.status === 200 && typeof access === 'string') {
        this.tokens = { ...t, access, accessUntil: jwtExpiry(access) ?? this.now() + 15 * 60_000 };
        return;
      }
      if (answer.status !== 401) throw freqtradeErrorOf(answer.status, answer.body, 'POST /token/refresh');
      this.options.logger?.info('Freqtrade refused the refresh token; logging in again', { component: 'freqtrade' });
    }
    this.tokens = undefined;
    await this.login(what);
  }

  private async login(what: string): Promise<void> {
    const answer = await this.send('POST', '/token/login', undefined, this.basic(), `POST /token/login (for ${what})`);
    if (answer.status === 404 || answer.status === 405) {
      this.options.logger?.warn('Freqtrade has no /token/login; using HTTP basic auth on every call', { component: 'freqtrade' });
      this.basicOnly = true;
      return;
    }
    const body = answer.body as { access_token?: unknown; refresh_token?: unknown } | undefined;
    if (answer.status === 200 && typeof body?.access_token === 'string' && typeof body.refresh_token === 'string') {
      const now = this.now();
      this.tokens = {
        access: body.access_token, accessUntil: jwtExpiry(body.access_token) ?? now + 15 * 60_000,
        refresh: body.refresh_token, refreshUntil: jwtExpiry(body.refresh_token) ?? now + 30 * 24 * 3600_000,
      };
      return;
    }
    const error = freqtradeErrorOf(answer.status, answer.body, 'POST /token/login');
    if (error instanceof VenueAuthError) this.refused(error);
    throw error;
  }

  /** Remembers a renewal that failed transiently: the next is tried after a doubling back-off. */
  private backOff(error: TransientError): void {
    const first = this.options.loginBackoffMs ?? 5_000;
    const delay = this.renewFailure ? Math.min(this.renewFailure.delay * 2, this.options.loginBackoffMaxMs ?? 60_000) : first;
    this.renewFailure = { error, until: this.now() + delay, delay };
    this.options.logger?.warn('Freqtrade token renewal failed; backing off', { component: 'freqtrade', code: error.code, retryAfterMs: delay });
  }

  /** Remembers a refusal of our credentials: private calls fail at once until the back-off ends. */
  private refused(error: VenueAuthError): void {
    this.tokens = undefined;
    this.authFailure = { error, until: this.now() + (this.options.authRetryAfterMs ?? 60_000) };
    this.options.logger?.error('Freqtrade refused the credentials; no request is sent until the back-off ends', { component: 'freqtrade', code: error.code, retryAfterMs: this.options.authRetryAfterMs ?? 60_000 });
  }
}
