/**
 * The ledger: cash, positions, fees, realised PnL and the loss streak recounted from the
 * journal's opening, fills and book adjustments alone, and compared with a venue's book (the
 * paper venue's, or a live venue's `LiveBook`) to the smallest unit. It is an
 * independent implementation of the average-cost rules on purpose (nothing here comes from
 * `src/portfolio/`): a bug in the book's arithmetic must show as a difference, not be repeated.
 * Everything but `readJournalRecords` is pure: plain data in, plain data out, no throws for a
 * bad line (each becomes a warning or an error in the result).
 */
import fs from 'node:fs';
import path from 'node:path';
import Decimal from 'decimal.js';
import { Dec, toDec } from '../amounts';

/** Decimal places kept from the division a partial sell makes (the book's rule, half-even). */
const DIVISION_SCALE = 20;

/** One journal line: where it is, and its parsed record or why it could not be read. */
export type JournalLine =
  | { where: string; record: unknown }
  | { where: string; unreadable: string; torn: boolean };

/** The book as recounted from the journal. Amounts are decimal text in the quote currency. */
export interface Recount {
  /** Cash the account opened with, and where it came from (null: neither journal nor caller had it). */
  initialCash: string | null;
  initialCashFrom: 'account.opened' | 'option' | null;
  quoteCurrency: string | null;
  cash: string;
  feesPaid: string;
  realizedPnl: string;
  consecutiveLosses: number;
  positions: Record<string, { quantity: string; costBasis: string }>;
  /** Fills counted (each part of an order's fill once: its partial fills, then what they left of its final fill). */
  fills: number;
  /** Book adjustments counted (`book.adjusted`: deposits, withdrawals, transfers, outside trades; each record id once). */
  adjustments: number;
  /** Worth a look, not a failure: inexact (number) amounts, a torn last line, fills at other venues. */
  warnings: string[];
  /** The recount cannot be trusted: unreadable lines, malformed fills, a sell of more than is held. */
  errors: string[];
}

/** One field where the journal and the book disagree (null: absent on that side). */
export interface Difference {
  field: string;
  journal: string | null;
  book: string | null;
}

export interface RecountOptions {
  /** Cash to start from when the journal has no `account.opened` record (older DATA_DIRs). */
  initialCash?: string | number;
  /** Venue whose fills and adjustments are counted (default `paper`): the book compared is that venue's. */
  venue?: string;
  /** The service's other venues: their records are counted in their own books, so leaving them out here is no warning. */
  countedElsewhere?: readonly string[];
}

type AdjustmentKind = 'deposit' | 'withdrawal' | 'transfer_in' | 'transfer_out' | 'outside_trade';
const ADJUSTMENT_KINDS: readonly string[] = ['deposit', 'withdrawal', 'transfer_in', 'transfer_out', 'outside_trade'];

/** One adjustment of a `book.adjusted` record, checked. */
interface Adjustment {
  kind: AdjustmentKind;
  symbol: string | undefined;
  quantityDelta: Dec | undefined;
  cashDelta: Dec | undefined;
  value: Dec;
}

/** A `book.adjusted` record read from the journal: one reconcile's adjustments. */
interface AdjustedEntry {
  where: string;
  /** Place in the journal (lines read so far). */
  index: number;
  venue: string;
  id: string;
  /** Fills the book had booked when it adjusted (places the record among fills in booking order). */
  afterFills: number | undefined;
  adjustments: Adjustment[];
}

/** A fill record read from the journal. */
interface FillEntry {
  where: string;
  /** Place in the journal (lines read so far). */
  index: number;
  kind: 'order.filled' | 'order.reconciled' | 'order.partially_filled';
  clientOrderId: string;
  /** A partial fill's cumulative filled quantity (`order.filledQuantity`): what identifies the part. */
  filledUpTo: Dec | undefined;
  venue: string | undefined;
  symbol: string;
  side: 'buy' | 'sell';
  quantity: Dec;
  price: Dec;
  fee: Dec;
  /** The venue's booking order (`order.fillSequence`), when it numbers fills. */
  sequence: number | undefined;
}

interface Opening {
  where: string;
  openedAt: string | undefined;
  cash: Dec;
  quoteCurrency: string | null;
  /** Holdings the account opened with (a live account's; none for the paper account). */
  positions: Map<string, { quantity: Dec; costBasis: Dec }>;
}

/**
 * Splits day files (given in day order, `name` is what lines are reported by) into lines. An
 * unreadable last line of the last file is marked torn: a crash mid-write, never acknowledged.
 */
export function journalLines(files: ReadonlyArray<{ name: string; text: string }>): JournalLine[] {
  const out: JournalLine[] = [];
  files.forEach((file, fileIndex) => {
    const texts = file.text.split('\n');
    let lastLine = texts.length;
    while (lastLine > 0 && texts[lastLine - 1]!.trim() === '') lastLine -= 1;
    texts.forEach((text, i) => {
      if (text.trim() === '') return;
      const where = `${file.name}:${i + 1}`;
      try {
        out.push({ where, record: JSON.parse(text) as unknown });
      } catch (err) {
        out.push({ where, unreadable: (err as Error).message, torn: fileIndex === files.length - 1 && i === lastLine - 1 });
      }
    });
  });
  return out;
}

/** Records held in memory (a test's), labelled `record 1`, `record 2`, … */
export function recordLines(records: readonly unknown[]): JournalLine[] {
  return records.map((record, i) => ({ where: `record ${i + 1}`, record }));
}

/**
 * Recounts the book from journal lines in the venue's booking order (`order.fillSequence`; journal
 * order for fills of versions that did not number them). `account.opened` gives the initial cash
 * (and a live account's opening holdings); `order.filled` and `order.reconciled` give fills, each
 * client order id counted once (a reconciled record only when no `order.filled` exists for its id:
 * the first record was lost), less the id's `order.partially_filled` parts, which count each once
 * (docs/ledger.md, Partial fills); `book.adjusted` gives adjustments of cash and holdings, each record
 * id once, placed after the fills the book had booked (`afterFills`).
 */
export function recountJournal(lines: Iterable<JournalLine>, options: RecountOptions = {}): Recount {
  const venue = options.venue ?? 'paper';
  const warnings: string[] = [];
  const errors: string[] = [];
  const openings: Opening[] = [];
  const entries: FillEntry[] = [];
  const adjusted: AdjustedEntry[] = [];
  let index = 0;
  for (const line of lines) {
    index += 1;
    if ('unreadable' in line) {
      if (line.torn) warnings.push(`torn last line at ${line.where} ignored (a crash mid-write)`);
      else errors.push(`not valid JSON at ${line.where}: ${line.unreadable}`);
      continue;
    }
    const read = readRecord(line.where, index, line.record);
    if (read.error) errors.push(read.error);
    if (read.inexact) warnings.push(`inexact amount (a number) at ${line.where}`);
    if (read.opening && (read.venue === undefined || read.venue === venue)) openings.push(read.opening);
    if (read.fill) entries.push(read.fill);
    if (read.adjusted) adjusted.push(read.adjusted);
  }
  const start = initialCash(openings, options.initialCash, warnings, errors);
  const book: LedgerBook = { cash: start.cash, feesPaid: new Dec(0), realizedPnl: new Dec(0), consecutiveLosses: 0, positions: new Map() };
  for (const [symbol, p] of openings[0]?.positions ?? []) book.positions.set(symbol, { ...p });
  let fills = 0;
  let adjustments = 0;
  const elsewhere = new Set(options.countedElsewhere ?? []);
  // Records of venues counted elsewhere are dropped silently; any other venue's are a warning.
  const warn = (message: string, otherVenue: string) => { if (!elsewhere.has(otherVenue)) warnings.push(message); };
  for (const event of bookingOrder(countedFills(entries, venue, warn, errors), countedAdjustments(adjusted, venue, warn, errors))) {
    if ('adjustments' in event) {
      for (const a of event.adjustments) {
        const refusal = bookAdjustment(book, a, event);
        if (refusal) errors.push(refusal);
        else adjustments += 1;
      }
      continue;
    }
    const refusal = bookFill(book, event);
    if (refusal) errors.push(refusal);
    else fills += 1;
  }
  const positions: Recount['positions'] = {};
  for (const symbol of [...book.positions.keys()].sort()) {
    const p = book.positions.get(symbol)!;
    positions[symbol] = { quantity: text(p.quantity), costBasis: text(p.costBasis) };
  }
  return {
    initialCash: start.from === null ? null : text(start.cash),
    initialCashFrom: start.from,
    quoteCurrency: openings[0]?.quoteCurrency ?? null,
    cash: text(book.cash),
    feesPaid: text(book.feesPaid),
    realizedPnl: text(book.realizedPnl),
    consecutiveLosses: book.consecutiveLosses,
    positions,
    fills,
    adjustments,
    warnings,
    errors,
  };
}

/** What one parsed line holds for the ledger (nothing for the many types it ignores). */
function readRecord(where: string, index: number, record: unknown): { error?: string; inexact?: boolean; opening?: Opening; venue?: string; fill?: FillEntry; adjusted?: AdjustedEntry } {
  if (!isObject(record)) return { error: `not a journal record (a JSON object) at ${where}` };
  if (record['type'] === 'account.opened') return readOpening(where, record);
  if (record['type'] === 'order.filled' || record['type'] === 'order.reconciled' || record['type'] === 'order.partially_filled') return readFill(where, index, record['type'], record);
  if (record['type'] === 'book.adjusted') return readAdjusted(where, index, record);
  return {};
}

/** An `account.opened` record: cash, and the holdings a live account opened with (each at its cost basis). */
function readOpening(where: string, record: Record<string, unknown>): { error?: string; inexact?: boolean; opening?: Opening; venue?: string } {
  const cash = readAmount(record['cash']);
  if (!cash || cash.value.lt(0)) return { error: `account.opened at ${where}: cash must be a decimal of 0 or more, got ${show(record['cash'])}` };
  const venue = typeof record['venue'] === 'string' ? record['venue'] : undefined;
  const quoteCurrency = typeof record['quoteCurrency'] === 'string' ? record['quoteCurrency'] : null;
  const openedAt = typeof record['openedAt'] === 'string' ? record['openedAt'] : undefined;
  let inexact = cash.number;
  const positions = new Map<string, { quantity: Dec; costBasis: Dec }>();
  const listed = record['positions'] ?? [];
  if (!Array.isArray(listed)) return { error: `account.opened at ${where}: positions must be a list, got ${quote(listed)}` };
  for (const p of listed as unknown[]) {
    const symbol = isObject(p) ? p['symbol'] : undefined;
    const quantity = isObject(p) ? readAmount(p['quantity']) : undefined;
    const costBasis = isObject(p) ? readAmount(p['costBasis']) : undefined;
    if (typeof symbol !== 'string' || symbol.trim() === '' || positions.has(symbol) || !quantity || !quantity.value.gt(0) || !costBasis || costBasis.value.lt(0)) {
      return { error: `account.opened at ${where}: each position needs a symbol (once), a quantity above 0 and a cost basis of 0 or more, got ${quote(p)}` };
    }
    inexact ||= quantity.number || costBasis.number;
    positions.set(symbol, { quantity: quantity.value, costBasis: costBasis.value });
  }
  return { inexact, opening: { where, openedAt, cash: cash.value, quoteCurrency, positions }, ...(venue !== undefined ? { venue } : {}) };
}

/**
 * A `book.adjusted` record, checked: each adjustment's kind with the amounts it needs, signed as
 * its kind says (a deposit adds cash, a transfer out removes coins, an outside trade moves both
 * the opposite ways). A record with a malformed adjustment is not counted at all.
 */
function readAdjusted(where: string, index: number, record: Record<string, unknown>): { error?: string; inexact?: boolean; adjusted?: AdjustedEntry } {
  const bad = (what: string) => ({ error: `book.adjusted at ${where}: ${what}; not counted` });
  const venue = record['venue'];
  const id = record['id'];
  if (typeof venue !== 'string' || venue === '') return bad(`venue must be a non-empty string, got ${quote(venue)}`);
  if (typeof id !== 'string' || id === '') return bad(`id must be a non-empty string, got ${quote(id)}`);
  const afterFills = Number.isSafeInteger(record['afterFills']) ? (record['afterFills'] as number) : undefined;
  if (!Array.isArray(record['adjustments'])) return bad(`adjustments must be a list, got ${quote(record['adjustments'])}`);
  let inexact = false;
  const adjustments: Adjustment[] = [];
  for (const [i, raw] of (record['adjustments'] as unknown[]).entries()) {
    const a = readAdjustment(raw);
    if (typeof a === 'string') return bad(`adjustment ${i + 1}: ${a}`);
    inexact ||= a.inexact;
    adjustments.push(a.adjustment);
  }
  return { inexact, adjusted: { where, index, venue, id, afterFills, adjustments } };
}

/** One adjustment's fields, or why it cannot be counted. */
function readAdjustment(raw: unknown): { adjustment: Adjustment; inexact: boolean } | string {
  if (!isObject(raw)) return `not an object: ${quote(raw)}`;
  const kind = raw['kind'];
  if (typeof kind !== 'string' || !ADJUSTMENT_KINDS.includes(kind)) return `kind must be one of ${ADJUSTMENT_KINDS.join(', ')}, got ${quote(kind)}`;
  const value = readAmount(raw['value']);
  if (!value) return `value must be a decimal, got ${show(raw['value'])}`;
  const cash = raw['cashDelta'] === undefined ? undefined : readAmount(raw['cashDelta']);
  const quantity = raw['quantityDelta'] === undefined ? undefined : readAmount(raw['quantityDelta']);
  const symbol = raw['symbol'];
  const movesCash = kind === 'deposit' || kind === 'withdrawal' || kind === 'outside_trade';
  const movesCoins = kind !== 'deposit' && kind !== 'withdrawal';
  if (movesCash !== (cash !== undefined) || (raw['cashDelta'] !== undefined && !cash) || (cash && cash.value.isZero())) {
    return movesCash ? `${article(kind)} ${kind} needs a cashDelta other than 0, got ${show(raw['cashDelta'])}` : `${article(kind)} ${kind} moves no cash, got cashDelta ${show(raw['cashDelta'])}`;
  }
  if (movesCoins !== (quantity !== undefined) || (raw['quantityDelta'] !== undefined && !quantity) || (quantity && quantity.value.isZero())) {
    return movesCoins ? `${article(kind)} ${kind} needs a quantityDelta other than 0, got ${show(raw['quantityDelta'])}` : `${article(kind)} ${kind} moves no coins, got quantityDelta ${show(raw['quantityDelta'])}`;
  }
  if (movesCoins && (typeof symbol !== 'string' || symbol.trim() === '')) return `${article(kind)} ${kind} needs a symbol, got ${quote(symbol)}`;
  const signs = kind === 'deposit' ? cash!.value.gt(0)
    : kind === 'withdrawal' ? cash!.value.lt(0)
      : kind === 'transfer_in' ? quantity!.value.gt(0)
        : kind === 'transfer_out' ? quantity!.value.lt(0)
          : cash!.value.isNegative() !== quantity!.value.isNegative();
  if (!signs) return `the amounts of ${article(kind)} ${kind} have the wrong sign (cashDelta ${show(raw['cashDelta'])}, quantityDelta ${show(raw['quantityDelta'])})`;
  return {
    adjustment: { kind: kind as AdjustmentKind, symbol: movesCoins ? (symbol as string) : undefined, quantityDelta: quantity?.value, cashDelta: cash?.value, value: value.value },
    inexact: value.number || (cash?.number ?? false) || (quantity?.number ?? false),
  };
}

/** A fill record's fields, checked: amounts from `fill`, symbol, side and venue from `order`. */
function readFill(where: string, index: number, kind: FillEntry['kind'], record: Record<string, unknown>): { error?: string; inexact?: boolean; fill?: FillEntry } {
  const order = isObject(record['order']) ? record['order'] : {};
  const fill = isObject(record['fill']) ? record['fill'] : undefined;
  const bad = (what: string) => ({ error: `${kind} at ${where}: ${what}; not counted` });
  const clientOrderId = record['clientOrderId'] ?? order['clientOrderId'];
  if (typeof clientOrderId !== 'string' || clientOrderId === '') return bad(`no clientOrderId, got ${quote(clientOrderId)}`);
  if (!fill) return bad('no fill');
  const symbol = order['symbol'];
  if (typeof symbol !== 'string' || symbol.trim() === '') return bad(`order.symbol must be a non-empty string, got ${quote(symbol)}`);
  const side = order['side'];
  if (side !== 'buy' && side !== 'sell') return bad(`order.side must be buy or sell, got ${quote(side)}`);
  const quantity = readAmount(fill['quantity']);
  const price = readAmount(fill['price']);
  const fee = readAmount(fill['fee']);
  if (!quantity || !quantity.value.gt(0)) return bad(`fill.quantity must be a decimal above 0, got ${show(fill['quantity'])}`);
  if (!price || !price.value.gt(0)) return bad(`fill.price must be a decimal above 0, got ${show(fill['price'])}`);
  if (!fee || fee.value.lt(0)) return bad(`fill.fee must be a decimal of 0 or more, got ${show(fill['fee'])}`);
  const venue = typeof order['venue'] === 'string' ? order['venue'] : undefined;
  const sequence = Number.isSafeInteger(order['fillSequence']) ? (order['fillSequence'] as number) : undefined;
  let filledUpTo: Dec | undefined;
  if (kind === 'order.partially_filled') {
    const upTo = readAmount(order['filledQuantity']);
    if (!upTo || upTo.value.lt(quantity.value)) return bad(`order.filledQuantity must be a decimal of at least the part's quantity, got ${show(order['filledQuantity'])}`);
    filledUpTo = upTo.value;
  }
  return {
    inexact: quantity.number || price.number || fee.number,
    fill: { where, index, kind, clientOrderId, filledUpTo, venue, symbol, side, quantity: quantity.value, price: price.value, fee: fee.value, sequence },
  };
}

/** The cash the account opened with: the first paper `account.opened`, else the caller's. */
function initialCash(openings: Opening[], given: string | number | undefined, warnings: string[], errors: string[]): { cash: Dec; from: Recount['initialCashFrom'] } {
  const [first, ...more] = openings;
  for (const again of more) {
    // The same opening written twice (a crash between the journal line and the venue's note of it) is one.
    if (first!.openedAt !== undefined && again.openedAt === first!.openedAt && again.cash.eq(first!.cash) && samePositions(again.positions, first!.positions)) continue;
    errors.push(`account.opened again at ${again.where} (first at ${first!.where}): one book cannot be recounted across two accounts`);
  }
  if (first) return { cash: first.cash, from: 'account.opened' };
  const cash = given === undefined ? undefined : readAmount(given);
  if (cash && cash.value.gte(0)) {
    warnings.push(`no account.opened record in the journal: started from the given initial cash ${text(cash.value)}`);
    return { cash: cash.value, from: 'option' };
  }
  errors.push(given === undefined
    ? 'no account.opened record in the journal and no initial cash given: cash is counted from 0'
    : `no account.opened record in the journal, and the given initial cash is not a decimal of 0 or more: ${show(given)}; cash is counted from 0`);
  return { cash: new Dec(0), from: null };
}

/**
 * The fills to book, in journal order: per client order id the first `order.filled`, else the
 * first `order.reconciled`. A repeat that names other amounts is an error (which one is right
 * cannot be told from here); fills at other venues are left out and counted in a warning.
 */
function countedFills(all: FillEntry[], venue: string, warn: (message: string, otherVenue: string) => void, errors: string[]): FillEntry[] {
  const parts = countedParts(all.filter((e) => e.kind === 'order.partially_filled'), errors);
  const entries = all.filter((e) => e.kind !== 'order.partially_filled');
  const chosen = new Map<string, FillEntry>();
  for (const e of entries) {
    const held = chosen.get(e.clientOrderId);
    if (!held || (held.kind === 'order.reconciled' && e.kind === 'order.filled')) chosen.set(e.clientOrderId, e);
  }
  const out: FillEntry[] = [];
  const elsewhere = new Map<string, number>();
  for (const e of entries) {
    const pick = chosen.get(e.clientOrderId)!;
    if (pick !== e) {
      if (!sameFill(pick, e)) errors.push(`${e.kind} at ${e.where} for ${e.clientOrderId} differs from the ${pick.kind} counted at ${pick.where}`);
    } else if (e.venue !== undefined && e.venue !== venue) {
      elsewhere.set(e.venue, (elsewhere.get(e.venue) ?? 0) + 1);
    } else {
      const rest = remainder(e, parts.get(e.clientOrderId) ?? [], errors);
      if (rest) out.push(rest);
    }
  }
  for (const list of parts.values()) {
    for (const p of list) {
      if (p.venue !== undefined && p.venue !== venue) elsewhere.set(p.venue, (elsewhere.get(p.venue) ?? 0) + 1);
      else out.push(p);
    }
  }
  out.sort((a, b) => a.index - b.index);
  for (const [name, n] of elsewhere) warn(`${n} fill${n === 1 ? '' : 's'} at venue ${name} not counted: the book is the ${venue} venue's`, name);
  // Fills are journalled just after they are booked, so two at once may be journalled in either
  // order; the loss streak and partial-sell rounding follow the book's order, which the venue numbers.
  if (out.every((e) => e.sequence !== undefined)) out.sort((a, b) => a.sequence! - b.sequence!);
  return out;
}

/**
 * Partial fills by client order id, each part once (identified by the cumulative quantity it
 * brought the order to; a repeat with other amounts is an error), smallest first.
 */
function countedParts(entries: FillEntry[], errors: string[]): Map<string, FillEntry[]> {
  const seen = new Map<string, FillEntry>();
  const out = new Map<string, FillEntry[]>();
  for (const e of entries) {
    const key = `${e.clientOrderId}@${text(e.filledUpTo!)}`;
    const held = seen.get(key);
    if (held) {
      if (!sameFill(held, e)) errors.push(`${e.kind} at ${e.where} for ${e.clientOrderId} up to ${text(e.filledUpTo!)} differs from the one counted at ${held.where}`);
      continue;
    }
    seen.set(key, e);
    out.set(e.clientOrderId, [...(out.get(e.clientOrderId) ?? []), e]);
  }
  for (const list of out.values()) list.sort((a, b) => a.filledUpTo!.comparedTo(b.filledUpTo!));
  return out;
}

/**
 * What an order's final fill record adds after its partial fills (the whole record when there
 * were none): quantity and fee minus the parts', notional (quantity × price) minus the parts'
 * summed in order, at price notional / quantity; nothing when the parts hold it all.
 */
function remainder(whole: FillEntry, parts: FillEntry[], errors: string[]): FillEntry | undefined {
  if (parts.length === 0) return whole;
  let quantity = whole.quantity;
  let fee = whole.fee;
  let notional = new Dec(0);
  for (const p of parts) {
    quantity = quantity.minus(p.quantity);
    fee = fee.minus(p.fee);
    notional = notional.plus(p.quantity.times(p.price));
  }
  if (quantity.isZero()) return undefined;
  const rest = whole.quantity.times(whole.price).minus(notional);
  if (quantity.lt(0) || !rest.gt(0) || fee.lt(0)) {
    errors.push(`${whole.kind} at ${whole.where} for ${whole.clientOrderId} is less than its partial fills (${parts.map((p) => p.where).join(', ')}); not counted`);
    return undefined;
  }
  return { ...whole, quantity, fee, price: rest.div(quantity) };
}

function samePositions(a: Opening['positions'], b: Opening['positions']): boolean {
  if (a.size !== b.size) return false;
  for (const [symbol, p] of a) {
    const q = b.get(symbol);
    if (!q || !q.quantity.eq(p.quantity) || !q.costBasis.eq(p.costBasis)) return false;
  }
  return true;
}

/**
 * The adjustment records to book, in journal order: each record id once (the same record written
 * twice by a crash counts once; two different ones under one id are an error). Records of other
 * venues are left out and counted in a warning.
 */
function countedAdjustments(entries: AdjustedEntry[], venue: string, warn: (message: string, otherVenue: string) => void, errors: string[]): AdjustedEntry[] {
  const chosen = new Map<string, AdjustedEntry>();
  const out: AdjustedEntry[] = [];
  const elsewhere = new Map<string, number>();
  for (const e of entries) {
    if (e.venue !== venue) {
      elsewhere.set(e.venue, (elsewhere.get(e.venue) ?? 0) + 1);
      continue;
    }
    const held = chosen.get(e.id);
    if (!held) {
      chosen.set(e.id, e);
      out.push(e);
    } else if (!sameAdjusted(held, e)) {
      errors.push(`book.adjusted at ${e.where} reuses id ${e.id} of the record counted at ${held.where} with other amounts; not counted`);
    }
  }
  for (const [name, n] of elsewhere) warn(`${n} book.adjusted record${n === 1 ? '' : 's'} of venue ${name} not counted: the book is the ${venue} venue's`, name);
  return out;
}

function sameAdjusted(a: AdjustedEntry, b: AdjustedEntry): boolean {
  const same = (x: Dec | undefined, y: Dec | undefined) => (x === undefined ? y === undefined : y !== undefined && x.eq(y));
  return a.afterFills === b.afterFills && a.adjustments.length === b.adjustments.length && a.adjustments.every((x, i) => {
    const y = b.adjustments[i]!;
    return x.kind === y.kind && x.symbol === y.symbol && same(x.quantityDelta, y.quantityDelta) && same(x.cashDelta, y.cashDelta) && x.value.eq(y.value);
  });
}

/**
 * Fills and adjustment records in the book's order: when every fill is numbered by the venue
 * (`fillSequence`) and every adjustment record says how many fills came before it
 * (`afterFills`), by those numbers (an adjustment after the fills it follows, records at one
 * place in journal order); otherwise all in journal order. The order matters for the cost basis
 * a removal takes and for a sell of coins that came in by an adjustment.
 */
function bookingOrder(fills: FillEntry[], adjusted: AdjustedEntry[]): Array<FillEntry | AdjustedEntry> {
  if (adjusted.length === 0) return fills;
  const numbered = fills.every((f) => f.sequence !== undefined) && adjusted.every((a) => a.afterFills !== undefined);
  if (numbered) {
    const key = (e: FillEntry | AdjustedEntry) => ('adjustments' in e ? e.afterFills! + 0.5 : e.sequence!);
    return [...fills, ...adjusted].sort((a, b) => key(a) - key(b) || a.index - b.index);
  }
  // Each record goes before the first fill (in the fills' order) that the journal holds after it.
  const out: Array<FillEntry | AdjustedEntry> = [];
  let next = 0;
  for (const fill of fills) {
    while (next < adjusted.length && adjusted[next]!.index < fill.index) out.push(adjusted[next++]!);
    out.push(fill);
  }
  return [...out, ...adjusted.slice(next)];
}

/**
 * Books one adjustment, in place: cash moves by its cashDelta; coins added come at cost basis
 * `value`, coins removed take their share of the cost basis (basis × removed / held, half-even to
 * 20 places; all of it when none is left). Never PnL, fees or the loss streak. Returns an error
 * (and books nothing) for a removal of more than is held.
 */
function bookAdjustment(book: LedgerBook, a: Adjustment, record: AdjustedEntry): string | undefined {
  if (a.quantityDelta !== undefined) {
    const symbol = a.symbol!;
    const held = book.positions.get(symbol);
    const heldQuantity = held?.quantity ?? new Dec(0);
    if (a.quantityDelta.gt(0)) {
      book.positions.set(symbol, { quantity: heldQuantity.plus(a.quantityDelta), costBasis: (held?.costBasis ?? new Dec(0)).plus(a.value) });
    } else {
      const removed = a.quantityDelta.negated();
      if (!held || removed.gt(heldQuantity)) {
        return `book.adjusted at ${record.where} (${record.id}): ${article(a.kind)} ${a.kind} removes ${text(removed)} ${symbol}, but the journal holds ${text(heldQuantity)}; not counted`;
      }
      const remaining = heldQuantity.minus(removed);
      if (remaining.isZero()) book.positions.delete(symbol);
      else {
        const costOut = held.costBasis.times(removed).div(heldQuantity).toDecimalPlaces(DIVISION_SCALE, Decimal.ROUND_HALF_EVEN);
        book.positions.set(symbol, { quantity: remaining, costBasis: held.costBasis.minus(costOut) });
      }
    }
  }
  if (a.cashDelta !== undefined) book.cash = book.cash.plus(a.cashDelta);
  return undefined;
}

function sameFill(a: FillEntry, b: FillEntry): boolean {
  return a.symbol === b.symbol && a.side === b.side && a.quantity.eq(b.quantity) && a.price.eq(b.price) && a.fee.eq(b.fee);
}

interface LedgerBook {
  cash: Dec;
  feesPaid: Dec;
  realizedPnl: Dec;
  consecutiveLosses: number;
  positions: Map<string, { quantity: Dec; costBasis: Dec }>;
}

/**
 * Books one fill on the average-cost rules, in place; returns an error (and books nothing) for
 * a sell of more than is held. Additions and subtractions run in the book's order so that a
 * result past 40 significant digits rounds the same way.
 */
function bookFill(book: LedgerBook, f: FillEntry): string | undefined {
  const gross = f.quantity.times(f.price);
  const held = book.positions.get(f.symbol);
  if (f.side === 'buy') {
    book.cash = book.cash.minus(gross).minus(f.fee);
    book.feesPaid = book.feesPaid.plus(f.fee);
    book.positions.set(f.symbol, {
      quantity: (held?.quantity ?? new Dec(0)).plus(f.quantity),
      costBasis: (held?.costBasis ?? new Dec(0)).plus(gross).plus(f.fee),
    });
    return undefined;
  }
  const heldQuantity = held?.quantity ?? new Dec(0);
  if (!held || f.quantity.gt(heldQuantity)) {
    return `${f.kind} at ${f.where}: sells ${text(f.quantity)} ${f.symbol} for ${f.clientOrderId}, but the journal holds ${text(heldQuantity)}; not counted`;
  }
  const remaining = heldQuantity.minus(f.quantity);
  // A whole exit releases the whole cost basis, so nothing is left over from rounding.
  const costSold = remaining.isZero()
    ? held.costBasis
    : held.costBasis.times(f.quantity).div(heldQuantity).toDecimalPlaces(DIVISION_SCALE, Decimal.ROUND_HALF_EVEN);
  const realized = gross.minus(f.fee).minus(costSold);
  book.cash = book.cash.plus(gross).minus(f.fee);
  book.feesPaid = book.feesPaid.plus(f.fee);
  book.realizedPnl = book.realizedPnl.plus(realized);
  book.consecutiveLosses = realized.lt(0) ? book.consecutiveLosses + 1 : 0;
  if (remaining.isZero()) book.positions.delete(f.symbol);
  else book.positions.set(f.symbol, { quantity: remaining, costBasis: held.costBasis.minus(costSold) });
  return undefined;
}

/**
 * Every field where the recount and the book (a paper portfolio state as stored: the paper
 * venue's, or a `LiveBook`'s `state`) differ, by
 * exact decimal equality: cash, feesPaid, realizedPnl, consecutiveLosses, and each symbol's
 * quantity and costBasis on either side. Empty when they match.
 */
export function compareWithBook(recount: Recount, book: unknown): Difference[] {
  const b = isObject(book) ? book : {};
  const out: Difference[] = [];
  const field = (name: string, journal: string | null, stored: unknown) => {
    if (!sameAmount(journal, stored)) out.push({ field: name, journal, book: stored === undefined ? null : show(stored) });
  };
  field('cash', recount.cash, b['cash']);
  field('feesPaid', recount.feesPaid, b['feesPaid']);
  field('realizedPnl', recount.realizedPnl, b['realizedPnl']);
  field('consecutiveLosses', String(recount.consecutiveLosses), b['consecutiveLosses']);
  const stored = isObject(b['positions']) ? b['positions'] : {};
  const symbols = [...new Set([...Object.keys(recount.positions), ...Object.keys(stored)])].sort();
  for (const symbol of symbols) {
    const mine = recount.positions[symbol];
    const theirs = isObject(stored[symbol]) ? stored[symbol] : undefined;
    field(`positions[${symbol}].quantity`, mine?.quantity ?? null, theirs?.['quantity']);
    field(`positions[${symbol}].costBasis`, mine?.costBasis ?? null, theirs?.['costBasis']);
  }
  return out;
}

/** Equal as decimals; absent equals absent; anything unreadable equals nothing. */
function sameAmount(journal: string | null, stored: unknown): boolean {
  if (journal === null || stored === undefined) return journal === null && stored === undefined;
  const theirs = readAmount(stored);
  return theirs !== undefined && theirs.value.eq(new Dec(journal));
}

/** A finite amount from decimal text or a JS number (`number`: it was one, so maybe inexact). */
function readAmount(value: unknown): { value: Dec; number: boolean } | undefined {
  if (typeof value !== 'number' && typeof value !== 'string') return undefined;
  try {
    return { value: toDec('amount', value), number: typeof value === 'number' };
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** "a" or "an" before a word, for messages. */
function article(word: string): string {
  return /^[aeiou]/i.test(word) ? 'an' : 'a';
}

/** Normal notation, unrounded. */
function text(d: Dec): string {
  return d.toFixed();
}

/** An amount as received (text unquoted). */
function show(value: unknown): string {
  return typeof value === 'string' ? value : quote(value);
}

/** A value as received, quoted, so an empty or padded string shows. */
function quote(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

/**
 * Reads the journal's day files (`journalDir/YYYY-MM-DD.jsonl`, oldest first; the subfolders of
 * proposals and signals are not read) into lines named by their path. Sync reads: a CLI's and a
 * test's tool, never on the service's hot path.
 */
export function readJournalRecords(journalDir: string): JournalLine[] {
  const names = fs.readdirSync(journalDir).filter((n) => /^\d{4}-\d{2}-\d{2}\.jsonl$/.test(n)).sort();
  return journalLines(names.map((n) => ({ name: path.join(journalDir, n), text: fs.readFileSync(path.join(journalDir, n), 'utf8') })));
}
