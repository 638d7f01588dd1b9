/**
 * Public market data through ccxt (no keys). The only file that speaks to ccxt for market
 * data; ccxt errors are translated here into TransientError. Quotes are cached briefly.
 */
import ccxt from 'ccxt';
import type { Exchange } from 'ccxt';
import { ConfigError, TransientError } from '../errors';
import type { Candle, MarketData, MarketQuote } from '../context/market-snapshot';

export interface CcxtMarketOptions {
  exchange: string;
  timeoutMs: number;
  /** Overrides the REST root (Upbit: UPBIT_API_URL), for local test servers. */
  apiUrl?: string;
  cacheMs?: number;
  now?: () => number;
}

export class CcxtMarketData implements MarketData {
  readonly source = 'exchange' as const;
  private readonly ex: Exchange;
  private readonly cache = new Map<string, { quote: MarketQuote; fetchedAt: number }>();
  private readonly now: () => number;

  constructor(private readonly options: CcxtMarketOptions) {
    const ctor = (ccxt as unknown as Record<string, new (o: object) => Exchange>)[options.exchange];
    if (typeof ctor !== 'function') {
      throw new ConfigError(`MARKET_DATA_EXCHANGE "${options.exchange}" is not a ccxt exchange`, [
        { variable: 'MARKET_DATA_EXCHANGE', message: `"${options.exchange}" is not a ccxt exchange id` },
      ]);
    }
    this.ex = new ctor({ enableRateLimit: true, timeout: options.timeoutMs });
    if (options.apiUrl) this.ex.urls['api'] = { public: options.apiUrl, private: options.apiUrl };
    this.now = options.now ?? Date.now;
  }

  async quote(symbol: string): Promise<MarketQuote> {
    const cached = this.cache.get(symbol);
    if (cached && this.now() - cached.fetchedAt < (this.options.cacheMs ?? 2000)) return cached.quote;
    const ticker = await this.call(() => this.ex.fetchTicker(symbol), symbol);
    const price = ticker.last ?? ticker.close;
    if (typeof price !== 'number' || !Number.isFinite(price) || price <= 0) {
      throw new TransientError('no_market_data', `${this.options.exchange} gave no usable price for ${symbol}`, { symbol });
    }
    const at = typeof ticker.timestamp === 'number' ? new Date(ticker.timestamp).toISOString() : new Date(this.now()).toISOString();
    const quote: MarketQuote = { symbol, price, at, source: 'exchange' };
    this.cache.set(symbol, { quote, fetchedAt: this.now() });
    return quote;
  }

  async candles(symbol: string, limit: number): Promise<Candle[]> {
    const rows = await this.call(() => this.ex.fetchOHLCV(symbol, '1h', undefined, limit), symbol);
    return rows.map(([t, o, h, l, c, v]) => ({
      time: new Date(Number(t)).toISOString(), open: Number(o), high: Number(h), low: Number(l), close: Number(c), volume: Number(v ?? 0),
    }));
  }

  private async call<T>(fn: () => Promise<T>, symbol: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TransientError('market_data_timeout', `${this.options.exchange} did not answer within ${this.options.timeoutMs} ms for ${symbol}`, { symbol })), this.options.timeoutMs);
    });
    try {
      return await Promise.race([fn(), timeout]);
    } catch (err) {
      if (err instanceof TransientError) throw err;
      const name = err instanceof Error ? err.constructor.name : 'Error';
      throw new TransientError('market_data_error', `${this.options.exchange} market data failed for ${symbol}: ${name}: ${(err as Error).message ?? String(err)}`.slice(0, 300), { symbol });
    } finally {
      clearTimeout(timer);
    }
  }
}
