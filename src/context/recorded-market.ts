/**
 * Market data as the journal recorded it, for `npm run replay` (docs/replay.md). The service
 * journals what each decision was made on, exactly as received: a signal's quote and the candles
 * its rules need (`signal.context`), and the quote an approval's re-check saw
 * (`proposal.recheck`). A replay answers from those records, never from the network, so the same
 * file always gives the same decisions.
 */
import { z } from 'zod';
import { TransientError } from '../errors';
import type { QuoteView, SignalContext } from '../proposal/rule-engine';
import type { Candle, MarketData, MarketQuote } from './market-snapshot';

/** A candle in a record: `[time, open, high, low, close, volume]` (a third of an object's size). */
export type CandleRow = [time: string, open: number, high: number, low: number, close: number, volume: number];

/** What the market said at one moment: a quote (or why there was none) and, when asked for, candles. */
export interface MarketObservation {
  quote: QuoteView | { error: string };
  /** Absent: candles were not asked for (an approval's re-check asks for the quote only). */
  candles?: Candle[] | { error: string };
}

/** The fields of a `signal.context` record (the journal adds `at`); a type, so it is a journal entry. */
export type SignalContextRecord = {
  type: 'signal.context';
  signalId: string;
  /** When the market data was in: the context's `now`, from which the proposal's times count. */
  observedAt: string;
  quote?: QuoteView;
  quoteError?: string;
  candles?: CandleRow[];
  candlesError?: string;
};

/**
 * The `signal.context` record of a signal's context: the quote and candles exactly as received
 * (numbers survive JSON unchanged), or the errors the rules saw instead. The portfolio is not
 * recorded: a replay rebuilds it from its own fills.
 */
export function signalContextRecord(signalId: string, ctx: SignalContext): SignalContextRecord {
  return {
    type: 'signal.context', signalId, observedAt: new Date(ctx.now).toISOString(),
    ...(ctx.market ? { quote: ctx.market } : { quoteError: ctx.marketError ?? 'unavailable' }),
    ...(ctx.candlesError === null ? { candles: ctx.candles.map(candleRow) } : { candlesError: ctx.candlesError }),
  };
}

/** The quote fields a record keeps (the symbol is the record's own). */
export function quoteView(quote: MarketQuote): QuoteView {
  return { price: quote.price, at: quote.at, source: quote.source, ...(quote.volume24h !== undefined ? { volume24h: quote.volume24h } : {}) };
}

function candleRow(c: Candle): CandleRow {
  return [c.time, c.open, c.high, c.low, c.close, c.volume];
}

const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const quoteSchema = z.object({
  price: finite.refine((n) => n > 0, 'must be positive'),
  at: z.string(),
  source: z.enum(['exchange', 'replay']),
  volume24h: finite.optional(),
});
const rowSchema = z.tuple([z.string(), finite, finite, finite, finite, finite]);
const observationSchema = z.object({
  quote: quoteSchema.optional(),
  quoteError: z.string().optional(),
  candles: z.array(rowSchema).optional(),
  candlesError: z.string().optional(),
});

/**
 * The observation a `signal.context` or `proposal.recheck` record holds, or the reason it holds
 * none that can be used (a record of an older version without market data gives `null`).
 */
export function observationOf(record: Record<string, unknown>): { ok: true; value: MarketObservation | null } | { ok: false; problem: string } {
  const parsed = observationSchema.safeParse(record);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { ok: false, problem: `${issue.path.join('.')}: ${issue.message}` };
  }
  const r = parsed.data;
  if (r.quote === undefined && r.quoteError === undefined) return { ok: true, value: null };
  const value: MarketObservation = { quote: r.quote ? stripUndefined(r.quote) : { error: r.quoteError! } };
  if (r.candles !== undefined) value.candles = r.candles.map(([time, open, high, low, close, volume]) => ({ time, open, high, low, close, volume }));
  else if (r.candlesError !== undefined) value.candles = { error: r.candlesError };
  return { ok: true, value };
}

function stripUndefined(q: z.output<typeof quoteSchema>): QuoteView {
  return { price: q.price, at: q.at, source: q.source, ...(q.volume24h !== undefined ? { volume24h: q.volume24h } : {}) };
}

/**
 * Market data that says, per symbol, what it was last told to say (`set`). A replay sets it from
 * the records before each question the original run asked, so every answer is the recorded one;
 * a symbol nothing was recorded for has no market data.
 */
export class RecordedMarket implements MarketData {
  readonly source = 'replay' as const;
  private readonly quotes = new Map<string, MarketObservation['quote']>();
  private readonly candleSets = new Map<string, NonNullable<MarketObservation['candles']>>();

  /** From now on `symbol`'s market says what `observation` holds; candles it does not hold stay as they were. */
  set(symbol: string, observation: MarketObservation): void {
    this.quotes.set(symbol, observation.quote);
    if (observation.candles !== undefined) this.candleSets.set(symbol, observation.candles);
  }

  async quote(symbol: string): Promise<MarketQuote> {
    const quote = this.quotes.get(symbol);
    if (!quote) throw new TransientError('no_market_data', `no market data of ${symbol} is recorded`, { symbol });
    if ('error' in quote) throw new TransientError('market_data_unavailable', quote.error, { symbol });
    return { symbol, ...quote };
  }

  async candles(symbol: string, limit: number): Promise<Candle[]> {
    const candles = this.candleSets.get(symbol);
    if (!candles) return [];
    if ('error' in candles) throw new TransientError('market_data_unavailable', candles.error, { symbol });
    return candles.slice(Math.max(0, candles.length - limit));
  }
}
