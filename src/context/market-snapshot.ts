/**
 * Market data: the last price and recent candles of a symbol, from the exchange's public API
 * (through ccxt) or from a replay file for offline runs and tests. A quote always says where
 * and when it came from, so a stale price is never used silently.
 */
import fs from 'node:fs';
import { z } from 'zod';
import { ConfigError, TransientError } from '../errors';

export interface Candle {
  time: string;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
}

export interface MarketQuote {
  symbol: string;
  price: number;
  /** Time of the price (ticker or candle time), ISO 8601. */
  at: string;
  source: 'exchange' | 'replay';
  /** Base-currency volume of the last 24 hours, when the source knows it. */
  volume24h?: number;
}

/**
 * How old a quote is at `now` (ms). A replay file's last candle is the current price whatever its
 * recorded time, so a replay quote is always 0 old; an unreadable time is infinitely old.
 */
export function quoteAgeMs(quote: MarketQuote, now: number): number {
  if (quote.source === 'replay') return 0;
  const at = Date.parse(quote.at);
  return Number.isNaN(at) ? Number.POSITIVE_INFINITY : Math.max(0, now - at);
}

/** The market data port. */
export interface MarketData {
  readonly source: 'exchange' | 'replay';
  /** The current price; throws TransientError when it cannot be had in time. */
  quote(symbol: string): Promise<MarketQuote>;
  /** Up to `limit` most recent candles, oldest first. */
  candles(symbol: string, limit: number): Promise<Candle[]>;
}

const candleLine = z.object({
  symbol: z.string().min(1),
  time: z.string().refine((t) => !Number.isNaN(Date.parse(t)), 'must be an ISO 8601 time'),
  open: z.number().positive(),
  high: z.number().positive(),
  low: z.number().positive(),
  close: z.number().positive(),
  volume: z.number().nonnegative(),
});

/** Candles from MARKET_DATA_REPLAY_FILE; a symbol's last candle is its current price. */
export class ReplayMarketData implements MarketData {
  readonly source = 'replay' as const;

  private constructor(private readonly bySymbol: Map<string, Candle[]>) {}

  /** Reads and validates the file; `normalise` maps its symbols to canonical form. */
  static load(file: string, normalise: (raw: string) => string | undefined): ReplayMarketData {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`MARKET_DATA_REPLAY_FILE ${file} cannot be read: ${(err as Error).message}`, [
        { variable: 'MARKET_DATA_REPLAY_FILE', message: `cannot be read: ${(err as NodeJS.ErrnoException).code ?? 'error'}` },
      ]);
    }
    const bySymbol = new Map<string, Candle[]>();
    text.split(/\r?\n/).forEach((line, index) => {
      if (line.trim() === '') return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        throw replayError(file, index, 'is not JSON');
      }
      const r = candleLine.safeParse(parsed);
      if (!r.success) {
        const issue = r.error.issues[0]!;
        throw replayError(file, index, `field ${issue.path.join('.')} ${issue.message}`);
      }
      const symbol = normalise(r.data.symbol);
      if (!symbol) throw replayError(file, index, `symbol "${r.data.symbol}" is not a recognised form`);
      const { symbol: _s, ...candle } = r.data;
      const list = bySymbol.get(symbol) ?? [];
      list.push({ ...candle, time: new Date(candle.time).toISOString() });
      bySymbol.set(symbol, list);
    });
    for (const list of bySymbol.values()) list.sort((a, b) => a.time.localeCompare(b.time));
    return new ReplayMarketData(bySymbol);
  }

  symbols(): string[] {
    return [...this.bySymbol.keys()].sort();
  }

  async quote(symbol: string): Promise<MarketQuote> {
    const list = this.bySymbol.get(symbol);
    const last = list?.[list.length - 1];
    if (!last) throw new TransientError('no_market_data', `the replay file has no candles for ${symbol}`, { symbol });
    // 24h volume: the candles that start within the 24 hours before the last one ends.
    const since = Date.parse(last.time) - 24 * 3_600_000;
    const volume24h = list!.filter((c) => Date.parse(c.time) > since).reduce((sum, c) => sum + c.volume, 0);
    return { symbol, price: last.close, at: last.time, source: 'replay', volume24h };
  }

  async candles(symbol: string, limit: number): Promise<Candle[]> {
    const list = this.bySymbol.get(symbol) ?? [];
    return list.slice(Math.max(0, list.length - limit));
  }
}

function replayError(file: string, index: number, what: string): ConfigError {
  return new ConfigError(`MARKET_DATA_REPLAY_FILE ${file} line ${index + 1}: ${what}`, [
    { variable: 'MARKET_DATA_REPLAY_FILE', message: `line ${index + 1}: ${what}` },
  ]);
}
