/**
 * A local Upbit REST server for tests: the documented quotation (public) endpoints, answered in
 * Upbit's own shapes, as ccxt's `upbit` class calls them.
 *
 *   GET /v1/market/all                 loadMarkets        [{market, korean_name, english_name}]
 *   GET /v1/ticker?markets=A,B         fetchTicker(s)     [{market, trade_price, trade_timestamp, acc_trade_volume_24h, …}]
 *   GET /v1/candles/minutes/{unit}     fetchOHLCV 1m…4h   newest first, at most 200, `to` exclusive
 *   GET /v1/candles/days               fetchOHLCV 1d      newest first, with prev_closing_price, change_*
 *
 * Errors use Upbit's body `{"error":{"name":…,"message":…}}`: an unknown market is a 404
 * `Code not found`, a missing parameter a 400, a rate limit a 429 `too_many_requests`. Every
 * answer carries a `Remaining-Req` header as Upbit's does.
 *
 * Test controls: `listMarket`/`delistMarket`, `setTicker`, `setCandles`, `slowNext` (delay the
 * next N requests), `failNext` (answer the next N with a status and an Upbit error body, or a
 * raw body), and `requests` (the log, with `status` once answered and `aborted` when the client
 * hung up first).
 *
 * Extending: the routes are a table. `fake.route('POST', '/v1/orders', handler, group)` adds one
 * (`:name` segments become `req.params`; `group` names the `Remaining-Req` group). A handler
 * receives the parsed request (query, raw query string, raw body, parsed JSON, headers, the
 * client's address and a signal that aborts when the client hangs up) and returns
 * `{ status, body }`; `upbitError(status, name, message)` builds an error reply. Faults
 * (`slowNext`, `failNext`) and the log apply to added routes too. The private exchange API
 * (JWT authentication, balances, orders) lives in `fake-upbit-exchange.ts`, which adds its
 * routes to this server.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A request as a route handler sees it. */
export interface FakeRequest {
  method: string;
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  /** The query string as sent, without the `?` (still percent-encoded). */
  rawQuery: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** `body` parsed as JSON, or undefined when it is empty or not JSON. */
  json: unknown;
  /** The client's IP address as the socket reports it (e.g. `127.0.0.1` or `::ffff:127.0.0.1`). */
  remoteAddress: string;
  /** Aborts when the client closes the connection before the answer is sent. */
  signal: AbortSignal;
}

/** What a route handler answers: a status and a JSON-serialisable body (a string is sent as is). */
export interface FakeReply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export type FakeRoute = (req: FakeRequest) => FakeReply | Promise<FakeReply>;

/** One entry of the request log. */
export interface LoggedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The status sent; undefined while the request is waiting (slow) or when it was aborted. */
  status?: number;
  /** The client closed the connection before the answer was sent. */
  aborted: boolean;
}

/** A market's ticker state; anything not set is derived from `price`. */
export interface FakeTicker {
  price: number;
  /** acc_trade_volume_24h (base currency). */
  volume24h: number;
  /** acc_trade_price_24h (quote currency); defaults to volume24h × price. */
  value24h?: number;
  /** Time of the last trade, ms; defaults to the time of the request. */
  tradeTimestamp?: number;
  /** Raw fields merged last into the Upbit row (e.g. `{ trade_price: null }` for a broken answer). */
  raw?: Record<string, unknown>;
}

/** A candle as a test states it; `time` is the candle's start (UTC, ISO 8601). */
export interface FakeCandle {
  time: string;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  /** Raw fields merged last into the Upbit row. */
  raw?: Record<string, unknown>;
}

/** A candle series: minutes of a unit (1, 3, 5, 10, 15, 30, 60, 240) or days. */
export type CandleSeries = number | 'days';

interface Fault {
  remaining: number;
  path?: string;
  delayMs?: number;
  reply?: FakeReply;
}

interface RouteEntry {
  method: string;
  segments: string[];
  handler: FakeRoute;
  group: string;
}

const MINUTE_UNITS = [1, 3, 5, 10, 15, 30, 60, 240];
const KST_OFFSET_MS = 9 * 3600_000;
/** Upbit answers at most this many candles per request. */
export const MAX_CANDLES = 200;

/** Upbit's error reply. `name` is a string for most errors, a number for some (404, 400). */
export function upbitError(status: number, name: string | number, message: string): FakeReply {
  return { status, body: { error: { name, message } } };
}

/** Upbit's 429 body. */
export const TOO_MANY_REQUESTS = { name: 'too_many_requests', message: 'Too many API requests.' } as const;

export class FakeUpbit {
  /** Every request, in arrival order. */
  readonly requests: LoggedRequest[] = [];
  private readonly routes: RouteEntry[] = [];
  private readonly markets = new Map<string, { korean_name: string; english_name: string }>();
  private readonly tickers = new Map<string, FakeTicker>();
  private readonly candles = new Map<string, FakeCandle[]>();
  private faults: Fault[] = [];
  private readonly pendingTimers = new Set<NodeJS.Timeout>();

  private constructor(private readonly server: http.Server, readonly url: string) {
    this.route('GET', '/v1/market/all', () => this.marketAll(), 'market');
    this.route('GET', '/v1/ticker', (req) => this.ticker(req), 'ticker');
    this.route('GET', '/v1/candles/minutes/:unit', (req) => this.candleReply(req, Number(req.params['unit'])), 'candles');
    this.route('GET', '/v1/candles/days', (req) => this.candleReply(req, 'days'), 'candles');
  }

  /** Starts on 127.0.0.1 at a free port, with KRW-BTC and KRW-ETH listed. */
  static async start(): Promise<FakeUpbit> {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const fake = new FakeUpbit(server, `http://127.0.0.1:${port}`);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => void fake.handle(req, res));
    fake.listMarket('KRW-BTC', '비트코인', 'Bitcoin');
    fake.listMarket('KRW-ETH', '이더리움', 'Ethereum');
    return fake;
  }

  /** Adds a route; later routes win over earlier ones for the same method and path. */
  route(method: string, pattern: string, handler: FakeRoute, group = 'default'): void {
    this.routes.unshift({ method: method.toUpperCase(), segments: pattern.split('/').filter(Boolean), handler, group });
  }

  listMarket(market: string, koreanName = market, englishName = market): void {
    this.markets.set(market, { korean_name: koreanName, english_name: englishName });
  }

  /** Removes a market from /v1/market/all and makes its ticker and candles answer 404. */
  delistMarket(market: string): void {
    this.markets.delete(market);
  }

  setTicker(market: string, ticker: FakeTicker): void {
    this.tickers.set(market, ticker);
  }

  /** The ticker state set for `market`, if any (the private exchange fake fills orders at its price). */
  tickerOf(market: string): FakeTicker | undefined {
    return this.tickers.get(market);
  }

  /** Whether `market` is listed. */
  hasMarket(market: string): boolean {
    return this.markets.has(market);
  }

  /** Sets a series, oldest first (as a test writes it); the server answers newest first. */
  setCandles(market: string, series: CandleSeries, candles: FakeCandle[]): void {
    this.candles.set(candleKey(market, series), [...candles].sort((a, b) => Date.parse(a.time) - Date.parse(b.time)));
  }

  /** Delays the next `count` requests (to `path`, if given) by `delayMs` before answering. */
  slowNext(count: number, delayMs: number, path?: string): void {
    this.faults.push({ remaining: count, delayMs, ...(path ? { path } : {}) });
  }

  /**
   * Answers the next `count` requests (to `path`, if given) with `status` and an Upbit error
   * body (`error`), or with `raw` sent as is (e.g. an HTML 500 page).
   */
  failNext(count: number, status: number, options: { error?: { name: string | number; message: string }; raw?: string; path?: string } = {}): void {
    const error = options.error ?? (status === 429 ? TOO_MANY_REQUESTS : { name: 'server_error', message: 'Internal Server Error' });
    const reply: FakeReply = options.raw !== undefined ? { status, body: options.raw, headers: { 'Content-Type': 'text/html' } } : upbitError(status, error.name, error.message);
    this.faults.push({ remaining: count, reply, ...(options.path ? { path: options.path } : {}) });
  }

  /** The logged requests to one path (no query string). */
  requestsTo(path: string): LoggedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  /** Forgets faults and the log; markets, tickers and candles stay. */
  reset(): void {
    this.faults = [];
    this.requests.length = 0;
  }

  async stop(): Promise<void> {
    for (const t of this.pendingTimers) clearTimeout(t);
    this.pendingTimers.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const entry: LoggedRequest = {
      method: req.method ?? 'GET', path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, body, aborted: false,
    };
    this.requests.push(entry);
    const hangUp = new AbortController();
    res.on('close', () => {
      if (res.writableFinished) return;
      entry.aborted = true;
      hangUp.abort();
    });

    const fault = this.takeFault(url.pathname);
    if (fault?.delayMs) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.pendingTimers.delete(timer);
          resolve();
        }, fault.delayMs);
        this.pendingTimers.add(timer);
      });
      if (res.destroyed) return;
    }

    const match = this.match(entry.method, url.pathname);
    let reply: FakeReply;
    if (fault?.reply) reply = fault.reply;
    else if (!match) reply = upbitError(404, 404, 'Not Found');
    else {
      let json: unknown;
      try {
        json = body === '' ? undefined : JSON.parse(body);
      } catch {
        json = undefined;
      }
      try {
        reply = await match.route.handler({
          method: entry.method, path: url.pathname, params: match.params, query: url.searchParams, rawQuery: url.search.slice(1),
          headers: req.headers, body, json, remoteAddress: req.socket.remoteAddress ?? '', signal: hangUp.signal,
        });
      } catch (err) {
        reply = upbitError(500, 'server_error', `fake handler failed: ${(err as Error).message}`);
      }
    }
    if (res.destroyed) return;
    const text = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body);
    res.writeHead(reply.status, {
      'Content-Type': 'application/json; charset=utf-8',
      'Remaining-Req': `group=${match?.route.group ?? 'default'}; min=1800; sec=29`,
      ...reply.headers,
    });
    res.end(text);
    entry.status = reply.status;
  }

  private takeFault(path: string): Fault | undefined {
    const index = this.faults.findIndex((f) => f.remaining > 0 && (f.path === undefined || f.path === path));
    if (index < 0) return undefined;
    const fault = this.faults[index]!;
    fault.remaining -= 1;
    if (fault.remaining === 0) this.faults.splice(index, 1);
    return fault;
  }

  private match(method: string, path: string): { route: RouteEntry; params: Record<string, string> } | undefined {
    const parts = path.split('/').filter(Boolean);
    for (const route of this.routes) {
      if (route.method !== method || route.segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      const ok = route.segments.every((seg, i) => {
        if (seg.startsWith(':')) {
          params[seg.slice(1)] = decodeURIComponent(parts[i]!);
          return true;
        }
        return seg === parts[i];
      });
      if (ok) return { route, params };
    }
    return undefined;
  }

  private marketAll(): FakeReply {
    return { status: 200, body: [...this.markets].map(([market, names]) => ({ market, ...names })) };
  }

  private ticker(req: FakeRequest): FakeReply {
    const markets = (req.query.get('markets') ?? '').split(',').map((m) => m.trim()).filter(Boolean);
    if (markets.length === 0) return missingParameter();
    // A single unknown code is Upbit's 404 `Code not found`; a mixed list is treated the same here.
    if (markets.some((m) => !this.markets.has(m))) return codeNotFound();
    const now = Date.now();
    return { status: 200, body: markets.map((m) => tickerRow(m, this.tickers.get(m) ?? { price: 1, volume24h: 0 }, now)) };
  }

  private candleReply(req: FakeRequest, series: CandleSeries): FakeReply {
    if (series !== 'days' && !MINUTE_UNITS.includes(series)) return upbitError(400, 'validation_error', `unit ${String(series)} is not supported`);
    const market = req.query.get('market');
    if (!market) return missingParameter();
    if (!this.markets.has(market)) return codeNotFound();
    const count = Math.min(Number(req.query.get('count') ?? 1) || 1, MAX_CANDLES);
    const to = req.query.get('to');
    const toMs = to ? Date.parse(/Z|[+-]\d\d:?\d\d$/.test(to) ? to : `${to}Z`) : Infinity;
    const list = (this.candles.get(candleKey(market, series)) ?? []).filter((c) => Date.parse(c.time) < toMs);
    const newestFirst = list.slice(Math.max(0, list.length - count)).reverse();
    return {
      status: 200,
      body: newestFirst.map((c, i) => candleRow(market, series, c, newestFirst[i + 1])),
    };
  }
}

function candleKey(market: string, series: CandleSeries): string {
  return `${market}|${series}`;
}

function missingParameter(): FakeReply {
  return upbitError(400, 400, 'Missing request parameter error. Check the required parameters!');
}

function codeNotFound(): FakeReply {
  return upbitError(404, 404, 'Code not found');
}

/** `yyyy-MM-ddTHH:mm:ss`, Upbit's zone-less candle time. */
function upbitDateTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19);
}

function tickerRow(market: string, t: FakeTicker, now: number): Record<string, unknown> {
  const at = t.tradeTimestamp ?? now;
  const iso = new Date(at).toISOString();
  const kst = new Date(at + KST_OFFSET_MS).toISOString();
  const prev = t.price;
  return {
    market,
    trade_date: iso.slice(0, 10).replaceAll('-', ''),
    trade_time: iso.slice(11, 19).replaceAll(':', ''),
    trade_date_kst: kst.slice(0, 10).replaceAll('-', ''),
    trade_time_kst: kst.slice(11, 19).replaceAll(':', ''),
    trade_timestamp: at,
    opening_price: prev,
    high_price: t.price,
    low_price: t.price,
    trade_price: t.price,
    prev_closing_price: prev,
    change: 'EVEN',
    change_price: 0,
    change_rate: 0,
    signed_change_price: 0,
    signed_change_rate: 0,
    trade_volume: 0.001,
    acc_trade_price: t.value24h ?? t.volume24h * t.price,
    acc_trade_price_24h: t.value24h ?? t.volume24h * t.price,
    acc_trade_volume: t.volume24h,
    acc_trade_volume_24h: t.volume24h,
    highest_52_week_price: t.price,
    highest_52_week_date: iso.slice(0, 10),
    lowest_52_week_price: t.price,
    lowest_52_week_date: iso.slice(0, 10),
    timestamp: now,
    ...t.raw,
  };
}

function candleRow(market: string, series: CandleSeries, c: FakeCandle, previous: FakeCandle | undefined): Record<string, unknown> {
  const start = Date.parse(c.time);
  const periodMs = series === 'days' ? 86_400_000 : series * 60_000;
  const row: Record<string, unknown> = {
    market,
    candle_date_time_utc: upbitDateTime(start),
    candle_date_time_kst: upbitDateTime(start + KST_OFFSET_MS),
    opening_price: c.open,
    high_price: c.high,
    low_price: c.low,
    trade_price: c.close,
    timestamp: start + periodMs - 1,
    candle_acc_trade_price: c.volume * c.close,
    candle_acc_trade_volume: c.volume,
  };
  if (series === 'days') {
    const prevClose = previous?.close ?? c.open;
    row['prev_closing_price'] = prevClose;
    row['change_price'] = c.close - prevClose;
    row['change_rate'] = prevClose === 0 ? 0 : (c.close - prevClose) / prevClose;
  } else {
    row['unit'] = series;
  }
  return { ...row, ...c.raw };
}
