/**
 * Public market data through ccxt (no keys): the last price with its time and 24 h volume, and
 * recent candles. The only file that speaks to ccxt for market data; ccxt's errors and the
 * venue's error bodies are translated here, into these codes:
 *
 * - `market_data_timeout` (TransientError): no answer within MARKET_DATA_TIMEOUT_MS.
 * - `market_data_rate_limited` (TransientError): HTTP 429/418, ccxt's RateLimitExceeded or
 *   DDoSProtection, or an Upbit body named `too_many_requests`.
 * - `market_data_error` (TransientError): anything else that went wrong on the way.
 * - `no_market_data` (TransientError): the venue answered without a last price.
 * - `unknown_symbol` (NotFoundError): the venue lists no such market. Not transient on purpose:
 *   asking again will not help, so retry wrappers that retry TransientError must not retry it.
 * - `corrupt_market_data` (InvariantError): a NaN, zero or negative price or volume.
 *
 * The market list is loaded once and shared; a failed load is retried by the next call (ccxt
 * itself would keep returning the failed load forever). Quotes are cached for `cacheMs`.
 */
import ccxt from 'ccxt';
import type { Exchange, OHLCV, Ticker } from 'ccxt';
import { AppError, ConfigError, InvariantError, NotFoundError, TransientError } from '../errors';
import type { Candle, MarketData, MarketQuote } from '../context/market-snapshot';

export interface CcxtMarketOptions {
  /** A ccxt exchange id (MARKET_DATA_EXCHANGE), e.g. `upbit`. */
  exchange: string;
  /** MARKET_DATA_TIMEOUT_MS: the bound on one quote() or candles() call, market loading included. */
  timeoutMs: number;
  /**
   * Overrides the REST root (Upbit: UPBIT_API_URL), for local test servers. It replaces
   * `urls.api.public` and `.private`, which is how Upbit's ccxt class is laid out.
   */
  apiUrl?: string;
  /** How long a quote is answered from memory, ms; default 2000. */
  cacheMs?: number;
  /** Timeframe of candles(), a ccxt timeframe such as `1h` (Upbit: 1m…4h, 1d); default `1h`. */
  timeframe?: string;
  /** An unknown symbol reloads the market list (new listings) at most this often, ms; default 5 min. */
  marketsRefreshMs?: number;
  now?: () => number;
}

/** A quote with the venue's 24 h volume where it reports one. */
export interface ExchangeQuote extends MarketQuote {
  /** Quote-currency turnover of the last 24 hours (Upbit: acc_trade_price_24h). */
  quoteVolume24h?: number;
}

/** Candles one request may ask for, by exchange (Upbit documents 200). */
const MAX_CANDLES_PER_REQUEST: Record<string, number> = { upbit: 200 };

/**
 * The venue's own last-price field in the raw ticker, by exchange. ccxt's safeTicker invents a
 * last price (open + change) when the venue sends none, so where the field is known the price
 * is read from it instead.
 */
const RAW_LAST_PRICE_FIELD: Record<string, string> = { upbit: 'trade_price' };

/** Venue error names (from the body) that mean "slow down". */
const RATE_LIMIT_NAMES = new Set(['too_many_requests']);

/** Public market data from one ccxt exchange; implements the MarketData port. */
export class CcxtMarketData implements MarketData {
  readonly source = 'exchange' as const;
  private readonly ex: Exchange;
  private readonly now: () => number;
  private readonly cacheMs: number;
  private readonly timeframe: string;
  private readonly marketsRefreshMs: number;
  private readonly quotes = new Map<string, { quote: ExchangeQuote; fetchedAt: number }>();
  private readonly pendingQuotes = new Map<string, Promise<ExchangeQuote>>();
  /** HTTP status of the response each ccxt error came from, recorded by the handleErrors hook. */
  private readonly httpStatus = new WeakMap<object, number>();
  private markets: Promise<void> | undefined;
  private marketsAttemptAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: CcxtMarketOptions) {
    const id = options.exchange;
    const ctor = (ccxt as unknown as Record<string, new (o: object) => Exchange>)[id];
    if (!ccxt.exchanges.includes(id) || typeof ctor !== 'function') {
      throw new ConfigError(`MARKET_DATA_EXCHANGE "${id}" is not a ccxt exchange`, [
        { variable: 'MARKET_DATA_EXCHANGE', message: `"${id}" is not a ccxt exchange id` },
      ]);
    }
    this.now = options.now ?? Date.now;
    this.cacheMs = options.cacheMs ?? 2000;
    this.timeframe = options.timeframe ?? '1h';
    this.marketsRefreshMs = options.marketsRefreshMs ?? 5 * 60_000;
    // ccxt's own timeout aborts the socket; the race in bounded() bounds the whole call.
    this.ex = new ctor({ enableRateLimit: true, timeout: options.timeoutMs });
    // Never setSandboxMode(true) here: on Upbit (ccxt 4.5.84) it silently empties every URL.
    if (options.apiUrl) {
      const root = options.apiUrl.replace(/\/+$/, '');
      this.ex.urls['api'] = { public: root, private: root };
    }
    if (!this.ex.timeframes?.[this.timeframe]) {
      throw new ConfigError(`${id} has no candle timeframe "${this.timeframe}"`, [
        { variable: 'MARKET_DATA_EXCHANGE', message: `${id} offers timeframes ${Object.keys(this.ex.timeframes ?? {}).join(', ')}` },
      ]);
    }
    this.recordHttpStatus();
  }

  /** The last price, its time and the 24 h volume; answered from memory within `cacheMs`. */
  async quote(symbol: string): Promise<ExchangeQuote> {
    const cached = this.quotes.get(symbol);
    if (cached && this.now() - cached.fetchedAt < this.cacheMs) return { ...cached.quote };
    const pending = this.pendingQuotes.get(symbol);
    if (pending) return pending.then((q) => ({ ...q }));
    const fetching = this.bounded(symbol, async () => {
      const ccxtSymbol = await this.resolve(symbol);
      return this.ex.fetchTicker(ccxtSymbol);
    }).then((ticker) => {
      const quote = this.toQuote(symbol, ticker);
      this.quotes.set(symbol, { quote, fetchedAt: this.now() });
      return quote;
    }).finally(() => this.pendingQuotes.delete(symbol));
    this.pendingQuotes.set(symbol, fetching);
    return fetching.then((q) => ({ ...q }));
  }

  /** Up to `limit` most recent candles of `timeframe` (the last one still forming), oldest first. */
  async candles(symbol: string, limit: number): Promise<Candle[]> {
    const max = MAX_CANDLES_PER_REQUEST[this.options.exchange] ?? Number.POSITIVE_INFINITY;
    const count = Math.min(Math.floor(limit), max);
    if (!(count > 0)) return [];
    const rows = await this.bounded(symbol, async () => {
      const ccxtSymbol = await this.resolve(symbol);
      return this.ex.fetchOHLCV(ccxtSymbol, this.timeframe, undefined, count);
    });
    const candles = rows.map((row) => this.toCandle(symbol, row));
    candles.sort((a, b) => a.time.localeCompare(b.time));
    return candles.slice(Math.max(0, candles.length - count));
  }

  /** Loads the market list once; a failed load is forgotten so that the next call tries again. */
  private loadMarkets(): Promise<void> {
    if (!this.markets) {
      this.marketsAttemptAt = this.now();
      const loading: Promise<void> = this.ex.loadMarkets(true).then(
        () => undefined,
        (err: unknown) => {
          if (this.markets === loading) this.markets = undefined;
          throw err;
        },
      );
      this.markets = loading;
    }
    return this.markets;
  }

  /** The ccxt symbol for a canonical `BASE/QUOTE`, reloading the list once for a new listing. */
  private async resolve(symbol: string): Promise<string> {
    await this.loadMarkets();
    let found = this.findMarket(symbol);
    if (!found && this.now() - this.marketsAttemptAt >= this.marketsRefreshMs) {
      const previous = this.markets;
      this.markets = undefined;
      try {
        await this.loadMarkets();
      } catch (err) {
        this.markets ??= previous;
        throw err;
      }
      found = this.findMarket(symbol);
    }
    if (!found) throw this.unknownSymbol(symbol);
    return found;
  }

  /**
   * Finds the market by unified symbol, else by the venue's own base and quote ids: ccxt renames
   * some currencies (on Upbit, TON becomes "Tokamak Network"), which a canonical symbol never matches.
   */
  private findMarket(symbol: string): string | undefined {
    const markets = this.ex.markets ?? {};
    if (markets[symbol]) return symbol;
    const [base, quote] = symbol.split('/');
    const byId = Object.values(markets).filter((m) => String(m?.baseId ?? '').toUpperCase() === base && String(m?.quoteId ?? '').toUpperCase() === quote);
    const spot = byId.find((m) => m.spot) ?? byId[0];
    return spot?.symbol;
  }

  /** Runs one call against the venue, bounded by timeoutMs, with errors translated. */
  private async bounded<T>(symbol: string, fn: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.timeoutError(symbol)), this.options.timeoutMs);
    });
    try {
      // race() also handles a late rejection of fn() after the timeout has won.
      return await Promise.race([fn(), timeout]);
    } catch (err) {
      throw this.translate(err, symbol);
    } finally {
      clearTimeout(timer);
    }
  }

  private toQuote(symbol: string, ticker: Ticker | undefined): ExchangeQuote {
    const exchange = this.options.exchange;
    const rawField = RAW_LAST_PRICE_FIELD[exchange];
    const info = ticker?.info as Record<string, unknown> | undefined;
    const raw = rawField ? info?.[rawField] : (ticker?.last ?? ticker?.close);
    if (raw === undefined || raw === null || raw === '') {
      throw new TransientError('no_market_data', `${exchange} gave no last price for ${symbol}`, { symbol, exchange });
    }
    const price = this.checkNumber(symbol, 'last price', typeof raw === 'string' ? Number(raw) : raw, false);
    // The time of the last trade; when the venue gives none, the time the answer arrived.
    const ts = ticker?.timestamp;
    const at = new Date(typeof ts === 'number' && Number.isFinite(ts) ? ts : this.now()).toISOString();
    const quote: ExchangeQuote = { symbol, price, at, source: 'exchange' };
    if (ticker?.baseVolume !== undefined && ticker.baseVolume !== null) quote.volume24h = this.checkNumber(symbol, '24h volume', ticker.baseVolume, true);
    if (ticker?.quoteVolume !== undefined && ticker.quoteVolume !== null) quote.quoteVolume24h = this.checkNumber(symbol, '24h quote volume', ticker.quoteVolume, true);
    return quote;
  }

  private toCandle(symbol: string, row: OHLCV): Candle {
    const [t, o, h, l, c, v] = row;
    if (typeof t !== 'number' || !Number.isFinite(t)) {
      throw new InvariantError('corrupt_market_data', `${this.options.exchange} gave a candle time ${String(t)} for ${symbol}`, { symbol, exchange: this.options.exchange });
    }
    return {
      time: new Date(t).toISOString(),
      open: this.checkNumber(symbol, 'candle open', o, false),
      high: this.checkNumber(symbol, 'candle high', h, false),
      low: this.checkNumber(symbol, 'candle low', l, false),
      close: this.checkNumber(symbol, 'candle close', c, false),
      volume: this.checkNumber(symbol, 'candle volume', v, true),
    };
  }

  /** A finite positive number (or ≥ 0 where zero is allowed); anything else is corrupt data. */
  private checkNumber(symbol: string, what: string, value: unknown, zeroAllowed: boolean): number {
    if (typeof value === 'number' && Number.isFinite(value) && (zeroAllowed ? value >= 0 : value > 0)) return value;
    throw new InvariantError('corrupt_market_data', `${this.options.exchange} gave ${what} ${String(value)} for ${symbol}`, { symbol, exchange: this.options.exchange, field: what });
  }

  private translate(err: unknown, symbol: string): AppError {
    if (err instanceof AppError) return err;
    const exchange = this.options.exchange;
    const status = typeof err === 'object' && err !== null ? this.httpStatus.get(err) : undefined;
    const cause = err instanceof Error ? err.constructor.name : typeof err;
    const full = err instanceof Error ? err.message : String(err);
    const text = full.slice(0, 200);
    const venue = err instanceof ccxt.ExchangeError ? venueError(full) : undefined;
    const details: Record<string, unknown> = { symbol, exchange, cause, ...(status ? { httpStatus: status } : {}), ...(venue ? { venueError: venue.name } : {}) };
    if (err instanceof ccxt.BadSymbol) return this.unknownSymbol(symbol);
    if (err instanceof ccxt.RequestTimeout) return this.timeoutError(symbol);
    if (err instanceof ccxt.RateLimitExceeded || err instanceof ccxt.DDoSProtection || status === 429 || status === 418 || (venue && RATE_LIMIT_NAMES.has(venue.name))) {
      return new TransientError('market_data_rate_limited', `${exchange} is rate limiting market data for ${symbol}${status ? ` (HTTP ${status})` : ''}: ${venue?.message ?? text}`, details);
    }
    // Upbit's answer for a market code it does not know (e.g. delisted since the list was loaded).
    if (venue && venue.name === '404' && /code not found/i.test(venue.message)) return this.unknownSymbol(symbol);
    const what = venue ? `${venue.name}: ${venue.message}` : `${cause}: ${text}`;
    return new TransientError('market_data_error', `${exchange} market data failed for ${symbol}${status ? ` (HTTP ${status})` : ''}: ${what}`, details);
  }

  private timeoutError(symbol: string): TransientError {
    return new TransientError('market_data_timeout', `${this.options.exchange} did not answer within ${this.options.timeoutMs} ms for ${symbol}`, {
      symbol, exchange: this.options.exchange, timeoutMs: this.options.timeoutMs,
    });
  }

  private unknownSymbol(symbol: string): NotFoundError {
    return new NotFoundError('unknown_symbol', `${this.options.exchange} lists no market ${symbol}`, { symbol, exchange: this.options.exchange });
  }

  /**
   * Wraps the exchange's handleErrors so that every error it throws remembers the HTTP status:
   * Upbit's handleErrors turns any JSON error body (a 429 included) into a plain ExchangeError.
   */
  private recordHttpStatus(): void {
    const ex = this.ex;
    const upstream = ex.handleErrors.bind(ex);
    ex.handleErrors = (...args: Parameters<Exchange['handleErrors']>) => {
      try {
        return upstream(...args);
      } catch (err) {
        if (typeof err === 'object' && err !== null) this.httpStatus.set(err, args[0]);
        throw err;
      }
    };
  }
}

/** `{"error":{"name","message"}}` from a ccxt ExchangeError's message (`<id> <body>`). */
function venueError(message: string): { name: string; message: string } | undefined {
  const start = message.indexOf('{');
  if (start < 0) return undefined;
  try {
    const body = JSON.parse(message.slice(start)) as { error?: { name?: unknown; message?: unknown } };
    if (!body.error || typeof body.error !== 'object') return undefined;
    return { name: String(body.error.name ?? ''), message: String(body.error.message ?? '') };
  } catch {
    return undefined;
  }
}
