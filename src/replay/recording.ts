/**
 * What `npm run replay` replays, read from its files (docs/replay.md): a journal
 * (`DATA_DIR/journal/YYYY-MM-DD.jsonl`, one day or several) or JSON lines of webhook bodies.
 * Pure: text in, data out; a line that cannot be used is refused with its file and line number.
 */
import { z } from 'zod';
import { InputError } from '../errors';
import { parseSignal } from '../event-router/schemas';
import { webhookDedupeKey } from '../runtime/dedupe-window';
import { LIQUIDATION, proposalIdForSignal } from '../runtime/loop';
import { observationOf, type MarketObservation } from '../context/recorded-market';
import type { ParsedSignal, Signal, SignalSource, TradingState } from '../proposal/types';

/** One signal to replay. */
export interface RecordedSignal {
  /** The id shown: the recorded signal's, or `line-N` for the N-th webhook body. */
  signalId: string;
  /** When the replay receives it (epoch ms): when its market data came in, else when it was received. */
  at: number;
  source: SignalSource;
  signal: ParsedSignal;
  /** Webhook bodies are deduplicated as the webhook does; recorded signals were all accepted once. */
  dedupeKey: string | null;
  /** The market data its rules decided on; absent when none is recorded (the replay falls back). */
  market?: MarketObservation;
  /** The original run's proposal id (recorded signals only): its re-check is found by it. */
  proposalId?: string;
  /** What the original run did with it (recorded signals only). */
  original?: OriginalOutcome;
}

/** What the original run did with a signal, as far as the file shows. */
export interface OriginalOutcome {
  /** `dropped`, the proposal's final state, its last state when it was still live at the file's end, or `received`. */
  state: string;
  /** The drop's or the outcome's code. */
  reason?: string;
  /** The fill's price, exact. */
  fillPrice?: string;
}

/** An operator command that changes what trading may do, replayed at its time. */
export type OperatorCommand =
  | { at: number; kind: 'pause' | 'resume' | 'liquidate'; by: string }
  | { at: number; kind: 'trading_state'; to: TradingState; by: string; reason: string };

export interface Recording {
  kind: 'journal' | 'webhook-bodies';
  /** In the order they are replayed (by time; ties in file order). */
  signals: RecordedSignal[];
  /** The quote each original proposal's approval re-check saw, by the original proposal id. */
  rechecks: Map<string, MarketObservation>;
  /** In time order. */
  commands: OperatorCommand[];
}

/** One input file: its name (for messages) and its text. */
export interface ReplayFile {
  name: string;
  text: string;
}

interface Line {
  where: string;
  value: Record<string, unknown>;
}

/** Where a body without a readable `time` starts when no body before it had one. */
export const BODIES_EPOCH = Date.UTC(2000, 0, 1);

/** Reads the files (all journals, or all webhook bodies) into what the replay runs. */
export function readRecording(files: ReplayFile[], opts: { quoteCurrency: string }): Recording {
  const lines = files.flatMap(readLines);
  if (lines.length === 0) throw new InputError('replay_empty', `${files.map((f) => f.name).join(', ')} holds no records: nothing to replay`);
  const journal = isJournalRecord(lines[0]!.value);
  const stray = lines.find((l) => isJournalRecord(l.value) !== journal);
  if (stray) {
    throw new InputError('replay_mixed', `${stray.where} is ${journal ? 'not a journal record' : 'a journal record'}, but ${lines[0]!.where} is ${journal ? 'one' : 'a webhook body'}: a replay reads journal files or webhook-body files, not both`);
  }
  return journal ? fromJournal(lines) : fromBodies(lines, opts.quoteCurrency);
}

function isJournalRecord(v: Record<string, unknown>): boolean {
  return typeof v['type'] === 'string' && typeof v['at'] === 'string';
}

/** Non-empty lines as objects; a journal's torn last line (a crash mid-write, never acknowledged) is left out. */
function readLines(file: ReplayFile): Line[] {
  const out: Line[] = [];
  const texts = file.text.replace(/^\uFEFF/, '').split('\n');
  texts.forEach((text, i) => {
    if (text.trim() === '') return;
    const where = `${file.name} line ${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      if (i === texts.length - 1) return;
      throw new InputError('replay_line', `${where} is not JSON`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new InputError('replay_line', `${where} is not a JSON object`);
    out.push({ where, value: value as Record<string, unknown> });
  });
  return out;
}

const time = z.string().refine((t) => !Number.isNaN(Date.parse(t)), 'must be an ISO 8601 time');
const positive = z.number().refine((n) => Number.isFinite(n) && n > 0, 'must be a positive number');
const signalSchema = z.object({
  id: z.string().min(1),
  receivedAt: time,
  source: z.enum(['tradingview', 'api', 'scan', 'scheduler']),
  symbol: z.string().min(1),
  action: z.enum(['buy', 'sell', 'exit']),
  price: positive.optional(),
  confidence: z.number().min(0).max(1).optional(),
  size: positive.optional(),
  strategy: z.string().optional(),
  timeframe: z.string().optional(),
  time: z.string().optional(),
  externalId: z.string().optional(),
});
const ids = z.object({ signalId: z.string().min(1).optional(), proposalId: z.string().min(1).optional() });

/** The signals of a journal with the market data each was decided on and what became of it. */
function fromJournal(lines: Line[]): Recording {
  const received: Array<{ signal: Signal; where: string }> = [];
  const refused = new Set<string>();
  const contexts = new Map<string, { at: number; market: MarketObservation }>();
  const rechecks = new Map<string, MarketObservation>();
  const dropped = new Map<string, string>();
  const proposed = new Map<string, string>();
  const lastState = new Map<string, string>();
  const finished = new Map<string, { state: string; reason?: string }>();
  const fills = new Map<string, string>();
  const commands: OperatorCommand[] = [];
  for (const { where, value: r } of lines) {
    const { signalId, proposalId } = ids.parse(r);
    const at = Date.parse(String(r['at']));
    if (Number.isNaN(at)) throw new InputError('replay_line', `${where}: at "${String(r['at'])}" is not a time`);
    switch (r['type']) {
      case 'signal.received': {
        const parsed = signalSchema.safeParse(r['signal']);
        if (!parsed.success) throw new InputError('replay_line', `${where}: signal.${issueText(parsed.error)}`);
        received.push({ signal: withoutUndefined(parsed.data), where });
        break;
      }
      case 'signal.refused':
        if (signalId) refused.add(signalId);
        break;
      case 'signal.context': {
        const seen = observationOf(r);
        if (!seen.ok) throw new InputError('replay_line', `${where}: ${seen.problem}`);
        const observedAt = Date.parse(String(r['observedAt']));
        if (signalId && seen.value && !Number.isNaN(observedAt)) contexts.set(signalId, { at: observedAt, market: seen.value });
        break;
      }
      case 'proposal.recheck': {
        const seen = observationOf(r);
        if (!seen.ok) throw new InputError('replay_line', `${where}: ${seen.problem}`);
        // The last re-check decided (an earlier one may have been undone by a failed write).
        if (proposalId && seen.value) rechecks.set(proposalId, seen.value);
        break;
      }
      case 'signal.dropped':
        if (signalId) dropped.set(signalId, String(r['code'] ?? ''));
        break;
      case 'signal.proposed':
        if (signalId && proposalId) proposed.set(signalId, proposalId);
        break;
      case 'proposal.transition':
        if (proposalId && typeof r['to'] === 'string') lastState.set(proposalId, r['to']);
        break;
      case 'proposal.finished': {
        const code = (r['outcome'] as { code?: unknown } | null | undefined)?.code;
        if (proposalId) finished.set(proposalId, { state: String(r['state']), ...(typeof code === 'string' ? { reason: code } : {}) });
        break;
      }
      case 'order.filled': {
        const price = (r['fill'] as { price?: unknown } | null | undefined)?.price;
        if (proposalId && typeof price === 'string') fills.set(proposalId, price);
        break;
      }
      case 'state.changed': {
        const command = commandOf(r, at);
        if (command) commands.push(command);
        break;
      }
      default:
        // Everything else follows from the signals and commands: the replay makes its own.
        break;
    }
  }
  const signals: RecordedSignal[] = [];
  for (const { signal } of received) {
    // Never acknowledged (its record failed): the original run did nothing with it.
    if (refused.has(signal.id)) continue;
    // A liquidation is a consequence (a breaker, an operator's /liquidate), replayed as such.
    if (signal.source === 'scheduler' && signal.strategy?.startsWith(LIQUIDATION)) continue;
    const context = contexts.get(signal.id);
    const proposalId = proposed.get(signal.id) ?? proposalIdForSignal(signal.id);
    const { id, receivedAt, source, ...parsed } = signal;
    const end = finished.get(proposalId);
    const original: OriginalOutcome = dropped.has(signal.id)
      ? { state: 'dropped', reason: dropped.get(signal.id)! }
      : end ?? { state: proposed.has(signal.id) ? (lastState.get(proposalId) ?? 'pending') : 'received' };
    const fillPrice = fills.get(proposalId);
    signals.push({
      signalId: id, at: context?.at ?? Date.parse(receivedAt), source, signal: parsed, dedupeKey: null, proposalId,
      original: fillPrice !== undefined ? { ...original, fillPrice } : original,
      ...(context ? { market: context.market } : {}),
    });
  }
  return { kind: 'journal', signals: byTime(signals), rechecks, commands: byTime(commands) };
}

/** An operator's `state.changed` record as a command; arming (live only) and follow-up records are none. */
function commandOf(r: Record<string, unknown>, at: number): OperatorCommand | undefined {
  const by = typeof r['by'] === 'string' ? r['by'] : 'operator';
  const reason = typeof r['reason'] === 'string' ? r['reason'] : '';
  switch (r['change']) {
    case 'paused': return { at, kind: 'pause', by };
    case 'resumed': return { at, kind: 'resume', by };
    case 'liquidation': return { at, kind: 'liquidate', by };
    case 'breakers_cleared': return { at, kind: 'trading_state', to: 'active', by, reason };
    case 'trading_state': {
      const to = r['to'];
      return to === 'active' || to === 'reducing' || to === 'halted' ? { at, kind: 'trading_state', to, by, reason } : undefined;
    }
    default: return undefined;
  }
}

/**
 * Webhook bodies, as TradingView posts them (the `secret` is not checked). Each body is received
 * at its `time`; one without a readable `time` one second after the body before it.
 */
function fromBodies(lines: Line[], quoteCurrency: string): Recording {
  const signals: RecordedSignal[] = [];
  let previous: number | undefined;
  lines.forEach(({ where, value }, i) => {
    const parsed = parseSignal(value, { quoteCurrency });
    if (!parsed.ok) throw new InputError('replay_line', `${where} is not a webhook body the service accepts: ${parsed.issues.map((x) => `${x.path || 'body'}: ${x.message}`).join('; ')}`, parsed.issues);
    const s = parsed.value;
    const stated = s.time !== undefined ? Date.parse(s.time) : Number.NaN;
    const at = Number.isNaN(stated) ? (previous === undefined ? BODIES_EPOCH : previous + 1000) : stated;
    previous = at;
    signals.push({ signalId: `line-${i + 1}`, at, source: 'tradingview', signal: s, dedupeKey: webhookDedupeKey(s) });
  });
  return { kind: 'webhook-bodies', signals: byTime(signals), rechecks: new Map(), commands: [] };
}

function byTime<T extends { at: number }>(items: T[]): T[] {
  // Array.prototype.sort is stable: ties keep file order.
  return [...items].sort((a, b) => a.at - b.at);
}

function withoutUndefined<T extends object>(v: T): T {
  return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined)) as T;
}

function issueText(error: z.ZodError): string {
  const issue = error.issues[0]!;
  return `${issue.path.join('.') || '(record)'}: ${issue.message}`;
}
