/**
 * Joins a signal with what the rule engine needs to decide on it: the current quote and recent
 * candles (fetched in parallel) and the portfolio. A market failure is captured as data
 * (`marketError`, `candlesError`) for the engine to judge: this never throws for one.
 */
import { describeError } from '../errors';
import type { SignalContext } from '../proposal/rule-engine';
import type { Signal } from '../proposal/types';
import type { MarketData } from './market-snapshot';
import type { PortfolioSource } from './portfolio-snapshot';

export interface ContextDeps {
  market: MarketData;
  portfolio: PortfolioSource;
  now: () => number;
  /** How many recent candles to fetch (`requiredCandles(rules)`); 0 fetches none. */
  candleCount: number;
  /**
   * Optional bound on each market call. The adapters have their own timeouts; this guards
   * against one that hangs, so a signal is never held up indefinitely.
   */
  timeoutMs?: number;
}

/** Fetches the quote and candles of `signal.symbol` in parallel and snapshots the portfolio. */
export async function buildContext(signal: Signal, deps: ContextDeps): Promise<SignalContext> {
  const { symbol } = signal;
  const [quote, candles] = await Promise.all([
    settle(() => deps.market.quote(symbol), deps.timeoutMs, `quote for ${symbol}`),
    deps.candleCount > 0
      ? settle(() => deps.market.candles(symbol, deps.candleCount), deps.timeoutMs, `candles for ${symbol}`)
      : Promise.resolve({ ok: true as const, value: [] }),
  ]);
  const now = deps.now();
  return {
    signal,
    market: quote.ok
      ? { price: quote.value.price, at: quote.value.at, source: quote.value.source, ...(quote.value.volume24h !== undefined ? { volume24h: quote.value.volume24h } : {}) }
      : null,
    marketError: quote.ok ? null : quote.error,
    candles: candles.ok ? candles.value : [],
    candlesError: candles.ok ? null : candles.error,
    portfolio: deps.portfolio.snapshot(now),
    now,
  };
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: string };

async function settle<T>(fn: () => Promise<T>, timeoutMs: number | undefined, what: string): Promise<Settled<T>> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const call = Promise.resolve().then(fn);
    if (timeoutMs === undefined) return { ok: true, value: await call };
    call.catch(() => undefined); // may settle after the bound; nobody needs it then
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`market data: no ${what} within ${timeoutMs} ms`)), timeoutMs);
    });
    return { ok: true, value: await Promise.race([call, bound]) };
  } catch (err) {
    return { ok: false, error: describeError(err).message };
  } finally {
    clearTimeout(timer);
  }
}
