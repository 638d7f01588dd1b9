/**
 * The dedupe window: a key seen inside DEDUPE_WINDOW_SECONDS is a duplicate of the first
 * signal. Held in memory (insertion order is time order, so expiry trims from the front) and
 * rebuilt at start-up from the signal registry, whose records carry their dedupe key and are
 * written before the 2xx: the answer never waits for a second write, and the window survives a
 * restart.
 */
import { createHash } from 'node:crypto';
import type { SignalRegistry } from '../journal/tracker';
import type { ParsedSignal } from '../proposal/types';

export class DedupeWindow {
  private readonly entries = new Map<string, { signalId: string; at: number }>();

  constructor(private readonly windowMs: number, private readonly now: () => number = Date.now) {}

  /** A window rebuilt from the registry's records of the last `windowSeconds`. */
  static restore(registry: SignalRegistry, windowSeconds: number, now: () => number = Date.now): DedupeWindow {
    const window = new DedupeWindow(windowSeconds * 1000, now);
    const since = now() - windowSeconds * 1000;
    for (const r of registry.keyedSince(since)) window.entries.set(r.key, { signalId: r.signalId, at: r.at });
    window.expire();
    return window;
  }

  /** The first signal's id when `key` was seen inside the window. */
  seen(key: string): string | undefined {
    const e = this.entries.get(key);
    if (!e || this.now() - e.at >= this.windowMs) return undefined;
    return e.signalId;
  }

  /** Remembers `key` (the registry record holding it is the durable copy). */
  remember(key: string, signalId: string): void {
    this.entries.delete(key);
    this.entries.set(key, { signalId, at: this.now() });
    this.expire();
  }

  private expire(): void {
    const now = this.now();
    for (const [k, e] of this.entries) {
      if (now - e.at < this.windowMs) break;
      this.entries.delete(k);
    }
  }
}

/** Key of a signal: its own id when it has one, otherwise a hash of the normalised signal. */
export function dedupeKey(scope: string, fields: Record<string, unknown>, externalId?: string): string {
  if (externalId !== undefined) return `${scope}:id:${externalId}`;
  const canonical = JSON.stringify(Object.keys(fields).sort().map((k) => [k, fields[k]]));
  return `${scope}:hash:${createHash('sha256').update(canonical).digest('hex').slice(0, 32)}`;
}

/**
 * The dedupe key of a TradingView alert (POST /webhook/tradingview, and replays of its bodies):
 * its `id`, else the normalised signal, so the same alert sent twice is one signal.
 */
export function webhookDedupeKey(s: ParsedSignal): string {
  return dedupeKey('tradingview', {
    symbol: s.symbol, action: s.action, price: s.price ?? null, size: s.size ?? null, confidence: s.confidence ?? null,
    strategy: s.strategy ?? null, timeframe: s.timeframe ?? null, time: s.time ?? null,
  }, s.externalId);
}
