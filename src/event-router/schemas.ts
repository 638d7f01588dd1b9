/**
 * zod schemas of what comes in over HTTP. A failed parse is a list of issues (path + words),
 * rendered by the HTTP edge into `400 {"error":"invalid_payload","issues":[…]}`.
 */
import { z } from 'zod';
import { AMOUNT_MAX, AMOUNT_MIN } from '../amounts';
import { normaliseSymbol } from '../symbols';
import type { ParsedSignal } from '../proposal/types';

export interface FieldIssue {
  path: string;
  message: string;
}

/** A number, or a string holding one (TradingView fills placeholders as text). */
const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

const numeric = z.union([z.number(), z.string().trim().min(1, 'must not be empty')]).transform((v, ctx) => {
  // Plain decimal text only: Number() would also read "0x10" or "0b1" as numbers.
  const n = typeof v === 'number' ? v : DECIMAL.test(v) ? Number(v) : Number.NaN;
  if (!Number.isFinite(n)) {
    ctx.addIssue({ code: 'custom', message: `must be a finite number, got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return n;
});

const positive = numeric.refine((n) => n >= AMOUNT_MIN && n <= AMOUNT_MAX, { message: `must be from ${AMOUNT_MIN} to ${AMOUNT_MAX}` });
const text = (max: number) => z.union([z.string(), z.number()]).transform(String).pipe(z.string().trim().min(1, 'must not be empty').max(max, `must be at most ${max} characters`));

/** Fields of a signal, shared by the webhook and the manual API. */
export const signalFields = z.object({
  symbol: z.string().optional(),
  ticker: z.string().optional(),
  action: z.string({ error: 'is required: buy, sell or exit' }).trim().toLowerCase().pipe(z.enum(['buy', 'sell', 'exit'], { error: 'must be buy, sell or exit' })),
  price: positive.optional(),
  confidence: numeric.refine((n) => n >= 0 && n <= 1, { message: 'must be between 0 and 1' }).optional(),
  size: positive.optional(),
  strategy: text(100).optional(),
  timeframe: text(20).optional(),
  time: text(40).optional(),
  id: text(128).optional(),
});

/** Deepest nesting accepted in a body; deeper ones are refused before anything is stored. */
export const MAX_BODY_DEPTH = 32;

/** Nesting depth of a parsed JSON value, counted without recursion (bodies can be hostile). */
export function jsonDepth(value: unknown, limit = MAX_BODY_DEPTH + 1): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    const depth = d + 1;
    if (depth > max) max = depth;
    if (max >= limit) return max;
    for (const child of Object.values(v as Record<string, unknown>)) stack.push([child, depth]);
  }
  return max;
}

/**
 * Validates and normalises a signal body. With `quoteCurrency`, a symbol quoted in another
 * currency is refused: sizes, cash and PnL are all in QUOTE_CURRENCY.
 */
export function parseSignal(body: unknown, opts: { quoteCurrency?: string } = {}): { ok: true; value: ParsedSignal } | { ok: false; issues: FieldIssue[] } {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return { ok: false, issues: [{ path: '', message: 'the body must be a JSON object' }] };
  }
  if (jsonDepth(body) > MAX_BODY_DEPTH) {
    return { ok: false, issues: [{ path: '', message: `the body is nested more than ${MAX_BODY_DEPTH} levels deep` }] };
  }
  const r = signalFields.safeParse(body);
  const issues: FieldIssue[] = r.success ? [] : r.error.issues.map((i) => ({ path: i.path.join('.') || '', message: i.message }));
  const raw = (body as Record<string, unknown>).symbol ?? (body as Record<string, unknown>).ticker;
  const symbolField = (body as Record<string, unknown>).symbol !== undefined ? 'symbol' : 'ticker';
  let symbol: string | undefined;
  if (raw === undefined) issues.push({ path: 'symbol', message: 'is required (symbol or ticker), e.g. KRW-BTC or BTC/KRW' });
  else if (typeof raw !== 'string') issues.push({ path: symbolField, message: `must be a string, got ${typeof raw}` });
  else {
    symbol = normaliseSymbol(raw);
    if (!symbol) issues.push({ path: symbolField, message: `"${raw.slice(0, 40)}" is not a recognised symbol (use KRW-BTC, BTC/KRW, BTCKRW, UPBIT:BTCKRW, or a KRX code such as 005930)` });
    else if (opts.quoteCurrency && !symbol.endsWith(`/${opts.quoteCurrency}`)) {
      issues.push({ path: symbolField, message: `${symbol} is quoted in ${symbol.split('/')[1]}, but this account trades in ${opts.quoteCurrency} (QUOTE_CURRENCY)` });
      symbol = undefined;
    }
  }
  if (!r.success || !symbol || issues.length > 0) return { ok: false, issues };
  const d = r.data;
  const value: ParsedSignal = { symbol, action: d.action };
  if (d.price !== undefined) value.price = d.price;
  if (d.confidence !== undefined) value.confidence = d.confidence;
  if (d.size !== undefined) value.size = d.size;
  if (d.strategy !== undefined) value.strategy = d.strategy;
  if (d.timeframe !== undefined) value.timeframe = d.timeframe;
  if (d.time !== undefined) value.time = d.time;
  if (d.id !== undefined) value.externalId = d.id;
  return { ok: true, value };
}

/**
 * Who decides, as the caller says: checked against the token's principal at the edge
 * (src/identity.ts: 1–64 visible characters, never `tg:…`; a named token's must be its name).
 */
const by = z.string({ error: 'must be a string' }).optional();

export const approveBody = z.object({
  by,
  sizeFactor: z.number({ error: 'must be a number' }).refine((f) => Number.isFinite(f) && f > 0 && f <= 1, 'must be greater than 0 and at most 1').optional(),
});

export const rejectBody = z.object({
  by,
  reason: z.string().trim().max(500, 'must be at most 500 characters').optional(),
});

export const armBody = z.object({
  by,
  minutes: z.number({ error: 'must be a number of minutes' }).int('must be a whole number').min(1, 'must be at least 1').max(24 * 60, 'must be at most 1440'),
});

export const tradingStateBody = z.object({
  state: z.enum(['active', 'reducing', 'halted'], { error: 'must be active, reducing or halted' }),
  by,
  reason: z.string().trim().min(1, 'must not be empty').max(300, 'must be at most 300 characters').optional(),
});

/** Where a JSON body broke, without quoting it (V8's message can carry a piece of it, a secret included). */
export function malformedJson(err: unknown): string {
  const at = /position (\d+)/.exec(err instanceof Error ? err.message : String(err));
  return at ? `malformed JSON at position ${at[1]}` : 'malformed JSON';
}

/** Runs a zod schema and turns its failure into field issues. */
export function parseWith<T>(schema: z.ZodType<T>, body: unknown): { ok: true; value: T } | { ok: false; issues: FieldIssue[] } {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return { ok: false, issues: [{ path: '', message: 'the body must be a JSON object' }] };
  }
  const r = schema.safeParse(body);
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, issues: r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) };
}
