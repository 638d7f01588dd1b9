/**
 * Market data from more than one source: each symbol is asked of the first route that claims
 * it (KRX stocks of KIS's quotation API), every other symbol of the default source (the crypto
 * exchange through ccxt, or a replay file).
 */
import { NotFoundError } from '../errors';
import type { Candle, MarketData, MarketQuote } from './market-snapshot';

export interface MarketRoute {
  /** Whether this source answers for the symbol (canonical `BASE/QUOTE`). */
  claims: (symbol: string) => boolean;
  data: MarketData;
}

export class RoutedMarketData implements MarketData {
  constructor(private readonly fallback: MarketData, private readonly routes: readonly MarketRoute[]) {}

  get source(): MarketData['source'] {
    return this.fallback.source;
  }

  quote(symbol: string): Promise<MarketQuote> {
    return this.sourceOf(symbol).quote(symbol);
  }

  candles(symbol: string, limit: number): Promise<Candle[]> {
    return this.sourceOf(symbol).candles(symbol, limit);
  }

  private sourceOf(symbol: string): MarketData {
    return this.routes.find((r) => r.claims(symbol))?.data ?? this.fallback;
  }
}

/** A market no configured source quotes: every symbol routed here is unknown, with the reason. */
export class UnquotedMarket implements MarketData {
  readonly source = 'exchange' as const;

  constructor(private readonly why: string) {}

  quote(symbol: string): Promise<MarketQuote> {
    return Promise.reject(new NotFoundError('unknown_symbol', `no market data for ${symbol}: ${this.why}`, { symbol }));
  }

  candles(symbol: string): Promise<Candle[]> {
    return this.quote(symbol).then(() => []);
  }
}
