/**
 * Market data for KRX stocks from KIS's quotations (`inquire-price` FHKST01010100 for the
 * current price, `inquire-daily-itemchartprice` FHKST03010100 for daily candles), so the rule
 * engine has data for `005930/KRW` as it has for coins. Numbers are fine here (display and
 * indicators); nothing here goes to the venue.
 *
 * The time of a price: `inquire-price` carries none. During the session (`session`) the price is
 * KIS's current price, timed when it was asked for; outside it, the price is the last close, and
 * is timed at the end of the last session, so MARKET_DATA_MAX_AGE_SECONDS treats it as old
 * rather than passing a closing price off as live.
 *
 * Errors: KIS's refusal of an unknown stock is `NotFoundError unknown_symbol`; rate limits,
 * timeouts and the rest stay the client's `TransientError`s; an unreadable price is an
 * `InvariantError corrupt_market_data`.
 */
import { InvariantError, NotFoundError, VenueRejectedError } from '../errors';
import type { Candle, MarketData, MarketQuote } from '../context/market-snapshot';
import { isSessionOpen, type MarketSession } from '../market-session';
import { isKrxSymbol, krxCode } from '../symbols';
import { kstParts, kstToMs, lastSessionClose, type KisClient } from './kis';

export interface KisMarketDataOptions {
  /** The KRX session (KIS_MARKET_HOURS), to time a price. */
  session: MarketSession;
  /** Candles one request may carry (KIS documents 100). */
  maxCandlesPerRequest?: number;
  now?: () => number;
}

const DAY_MS = 86_400_000;

export class KisMarketData implements MarketData {
  readonly source = 'exchange' as const;
  private readonly now: () => number;

  constructor(private readonly client: KisClient, private readonly options: KisMarketDataOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Whether this source knows `symbol` (KRX stocks only). */
  covers(symbol: string): boolean {
    return isKrxSymbol(symbol);
  }

  async quote(symbol: string): Promise<MarketQuote> {
    const pdno = this.pdnoOf(symbol);
    const asked = this.now();
    const row = await this.known(symbol, () => this.client.price(pdno));
    const price = Number(row.stck_prpr);
    if (!Number.isFinite(price) || price <= 0) throw new InvariantError('corrupt_market_data', `KIS sent stck_prpr ${JSON.stringify(row.stck_prpr)} for ${symbol}`, { symbol, field: 'stck_prpr' });
    const at = isSessionOpen(this.options.session, asked) ? asked : lastSessionClose(this.options.session, asked);
    const volume = Number(row.acml_vol);
    return {
      symbol, price, at: new Date(Number.isFinite(at) ? at : 0).toISOString(), source: 'exchange',
      // acml_vol is today's accumulated volume, the nearest KIS gives to 24 hours.
      ...(Number.isFinite(volume) && volume >= 0 ? { volume24h: volume } : {}),
    };
  }

  /** Up to `limit` daily candles, oldest first; each candle's time is its day's open (09:00 KST). */
  async candles(symbol: string, limit: number): Promise<Candle[]> {
    const pdno = this.pdnoOf(symbol);
    const perRequest = this.options.maxCandlesPerRequest ?? 100;
    const out: Candle[] = [];
    let to = this.now();
    for (let page = 0; page < 10 && out.length < limit; page++) {
      // Calendar days holding `perRequest` trading days, with room for weekends and holidays.
      const from = to - Math.ceil(perRequest * 1.5 + 10) * DAY_MS;
      const rows = await this.known(symbol, () => this.client.dailyCandles(pdno, kstParts(from).date, kstParts(to).date));
      const fresh = rows.filter((r) => !out.some((c) => c.time === dayOpen(r.stck_bsop_date)));
      if (fresh.length === 0) break;
      for (const r of fresh) out.push(candleOf(symbol, r));
      const oldest = Math.min(...fresh.map((r) => kstToMs(r.stck_bsop_date)));
      to = oldest - DAY_MS;
    }
    out.sort((a, b) => a.time.localeCompare(b.time));
    return out.slice(Math.max(0, out.length - limit));
  }

  private pdnoOf(symbol: string): string {
    if (!isKrxSymbol(symbol)) throw new NotFoundError('unknown_symbol', `KIS market data covers KRX stocks (005930/KRW), not ${symbol}`, { symbol });
    return krxCode(symbol);
  }

  /** KIS's "no such stock" as `unknown_symbol` (not transient: asking again will not help). */
  private async known<T>(symbol: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (err instanceof VenueRejectedError && (err.code === 'unknown_stock' || err.code === 'kis_refused')) {
        throw new NotFoundError('unknown_symbol', `KIS has no market data for ${symbol}: ${err.message}`, { symbol });
      }
      throw err;
    }
  }
}

function dayOpen(date: string): string {
  return new Date(kstToMs(date, '090000')).toISOString();
}

function candleOf(symbol: string, r: { stck_bsop_date: string; stck_oprc: string; stck_hgpr: string; stck_lwpr: string; stck_clpr: string; acml_vol: string }): Candle {
  const n = (field: string, v: string) => {
    const x = Number(v);
    if (!Number.isFinite(x) || x < 0) throw new InvariantError('corrupt_market_data', `KIS sent ${field} ${JSON.stringify(v)} for ${symbol} on ${r.stck_bsop_date}`, { symbol, field });
    return x;
  };
  if (!Number.isFinite(kstToMs(r.stck_bsop_date))) throw new InvariantError('corrupt_market_data', `KIS sent stck_bsop_date ${JSON.stringify(r.stck_bsop_date)} for ${symbol}`, { symbol, field: 'stck_bsop_date' });
  return { time: dayOpen(r.stck_bsop_date), open: n('stck_oprc', r.stck_oprc), high: n('stck_hgpr', r.stck_hgpr), low: n('stck_lwpr', r.stck_lwpr), close: n('stck_clpr', r.stck_clpr), volume: n('acml_vol', r.acml_vol) };
}
