/**
 * The journal → notes function of the vault (docs/vault.md): journal records in, note texts out,
 * one record at a time, with no file access of its own (views of finished proposals come
 * through a port). The same records in the same order give the same notes and the same state,
 * which is what lets the rebuild write the live service's bytes. Realised PnL is the ledger's
 * own arithmetic (`recountJournal`) applied to one position's round trip at a time, so its cost
 * follows the position, not the history.
 */
import { Dec } from '../amounts';
import { describeError } from '../errors';
import type { ProposalView } from '../proposal/view';
import { recordLines, recountJournal } from './ledger';
import type { JournalEntry } from './trade-log';
import { dailyNotePath, dayEntry, proposalNotePath, renderDailyNote, renderProposalNote, type DayEntry, type NoteExtras, type RoundTrip } from './vault-notes';

/** The vault's bookmark: how far into the journal its notes are, and what it must remember. */
export const VAULT_STATE_FILE = '.vault-state.json';
const STATE_VERSION = 1;
/** Fill records counted lately (a repeat after a restart is not booked twice). */
const COUNTED_KEPT = 1000;
/** Days whose journal offsets are kept (records are appended to the day of their time). */
const CURSOR_DAYS = 3;

/** A finished proposal's archived view, found by id and the day its `proposal.finished` was journalled. */
export type ViewSource = (id: string, day: string) => ProposalView | undefined;

export interface VaultLog {
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}

/** One venue's position in one symbol, from flat (or its opening holding) back to flat. */
interface Trip {
  venue: string;
  symbol: string;
  /** What the account opened with (a live account's holding), or null when it started flat. */
  opening: { quantity: string; costBasis: string } | null;
  /** The fill and adjustment records of this trip, as the ledger reads them. */
  records: Array<Record<string, unknown>>;
  realized: string;
  buys: string[];
  sells: string[];
}

/** Everything the fold remembers between records: persisted as the vault's bookmark. */
interface FoldState {
  version: number;
  /** Byte offset up to which each recent day file has been read. */
  cursor: Record<string, number>;
  latestDay: string | null;
  currencies: Record<string, string>;
  trips: Record<string, Trip>;
  /** PnL known for proposals whose notes do not show it yet. */
  extras: Record<string, NoteExtras>;
  /** Settled buys with a note whose position is still open: their day, to add the PnL later. */
  open: Record<string, string>;
  /** Entries of the latest two days (older daily notes are final). */
  days: Record<string, DayEntry[]>;
  counted: string[];
}

function emptyState(): FoldState {
  return { version: STATE_VERSION, cursor: {}, latestDay: null, currencies: {}, trips: {}, extras: {}, open: {}, days: {}, counted: [] };
}

/**
 * The journal → notes function, one record at a time. `apply` takes each record in journal
 * order with the day file it is in and the offset just past it; `takeFiles` returns the notes
 * (path relative to the vault → text) that changed since it was last called.
 */
export class VaultFold {
  private state: FoldState;
  private readonly dirty = new Set<string>();
  private readonly dirtyDays = new Set<string>();
  private readonly outbox = new Map<string, string>();
  /** Views fetched for a finish, kept until its note is written. */
  private readonly views = new Map<string, ProposalView>();
  /** The kept days' entries by proposal id. */
  private readonly entries = new Map<string, { day: string; entry: DayEntry }>();

  constructor(private readonly source: ViewSource, private readonly log: VaultLog, state?: FoldState) {
    this.state = state ?? emptyState();
    for (const [day, list] of Object.entries(this.state.days)) for (const entry of list) this.entries.set(entry.id, { day, entry });
  }

  get cursor(): Readonly<Record<string, number>> {
    return this.state.cursor;
  }

  /** The state as persisted (deterministic: the same records give the same text). */
  serialize(): string {
    return `${JSON.stringify(this.state)}\n`;
  }

  /** A fold restored from its serialized state; undefined when it is not one this version wrote. */
  static restore(text: string, source: ViewSource, log: VaultLog): VaultFold | undefined {
    let state: FoldState;
    try {
      state = JSON.parse(text) as FoldState;
    } catch {
      return undefined;
    }
    const isMap = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
    const fits = isMap(state) && state.version === STATE_VERSION && (state.latestDay === null || typeof state.latestDay === 'string')
      && [state.cursor, state.currencies, state.trips, state.extras, state.open, state.days].every(isMap) && Array.isArray(state.counted)
      && Object.values(state.cursor).every((n) => Number.isSafeInteger(n) && n >= 0) && Object.values(state.days).every(Array.isArray);
    return fits ? new VaultFold(source, log, state) : undefined;
  }

  apply(record: JournalEntry, day: string, end: number): void {
    this.advance(day, end);
    try {
      switch (record.type) {
        case 'account.opened': return this.opened(record);
        case 'order.filled': case 'order.reconciled': case 'order.partially_filled': return this.filled(record);
        case 'book.adjusted': return this.adjusted(record);
        case 'proposal.finished': return this.finished(record, day);
        default: return undefined;
      }
    } catch (err) {
      // A record the vault cannot read is the vault's problem only: the journal stays the truth.
      this.log.warn('vault: a journal record could not be turned into notes; `npm run vault -- --rebuild` redoes them', { type: record.type, proposalId: record.proposalId, error: describeError(err) });
      return undefined;
    }
  }

  /**
   * Notes that changed since the last call: path relative to the vault → text. With `days`
   * false the daily notes wait (each is a rewrite of the whole day) and stay due.
   */
  takeFiles(days = true): Map<string, string> {
    this.render(days);
    const files = new Map(this.outbox);
    this.outbox.clear();
    return files;
  }

  /** Whether a daily note changed since it was last taken. */
  get daysDue(): boolean {
    return this.dirtyDays.size > 0;
  }

  /** Proposals listed in the days still kept (what one rewrite of the daily notes costs). */
  get keptEntries(): number {
    return this.entries.size;
  }

  private advance(day: string, end: number): void {
    this.state.cursor[day] = end;
    const latest = this.state.latestDay;
    if (latest !== null && day <= latest) return;
    this.state.latestDay = day;
    const keepFrom = addDays(day, -1);
    const pruned = Object.keys(this.state.days).filter((d) => d < keepFrom);
    // What an older day still owes is written before its entries are let go.
    if (pruned.length > 0) this.render();
    for (const d of pruned) {
      for (const e of this.state.days[d]!) this.entries.delete(e.id);
      delete this.state.days[d];
    }
    const cursorFrom = addDays(day, -(CURSOR_DAYS - 1));
    for (const d of Object.keys(this.state.cursor)) if (d < cursorFrom) delete this.state.cursor[d];
  }

  private opened(record: JournalEntry): void {
    const venue = typeof record['venue'] === 'string' ? record['venue'] : 'paper';
    if (typeof record['quoteCurrency'] === 'string' && this.state.currencies[venue] === undefined) this.state.currencies[venue] = record['quoteCurrency'];
    const positions = Array.isArray(record['positions']) ? (record['positions'] as Array<Record<string, unknown>>) : [];
    for (const p of positions) {
      if (typeof p['symbol'] !== 'string' || typeof p['quantity'] !== 'string' || typeof p['costBasis'] !== 'string') continue;
      const key = tripKey(venue, p['symbol']);
      if (this.state.trips[key]) continue;
      this.state.trips[key] = { venue, symbol: p['symbol'], opening: { quantity: p['quantity'], costBasis: p['costBasis'] }, records: [], realized: '0', buys: [], sells: [] };
    }
  }

  private filled(record: JournalEntry): void {
    const order = (record['order'] ?? {}) as Record<string, unknown>;
    const fill = (record['fill'] ?? {}) as Record<string, unknown>;
    const clientOrderId = record.clientOrderId ?? order['clientOrderId'];
    const symbol = order['symbol'];
    const side = order['side'];
    if (typeof clientOrderId !== 'string' || typeof symbol !== 'string' || (side !== 'buy' && side !== 'sell')) return;
    const venue = typeof order['venue'] === 'string' ? order['venue'] : 'paper';
    const key = record.type === 'order.partially_filled' ? `part:${clientOrderId}@${String(order['filledQuantity'])}` : `fill:${clientOrderId}`;
    if (this.state.counted.includes(key)) return;
    // An order whose partial fills closed the position: its final record only repeats them.
    if (record.type !== 'order.partially_filled' && !this.state.trips[tripKey(venue, symbol)] && this.state.counted.some((k) => k.startsWith(`part:${clientOrderId}@`))) return;
    const slim: Record<string, unknown> = {
      type: record.type, clientOrderId,
      order: { symbol, side, venue, ...(order['filledQuantity'] !== undefined ? { filledQuantity: order['filledQuantity'] } : {}), ...(order['fillSequence'] !== undefined ? { fillSequence: order['fillSequence'] } : {}) },
      fill: { quantity: fill['quantity'], price: fill['price'], fee: fill['fee'] },
    };
    const result = this.book(venue, symbol, slim, record.at);
    if (!result) return;
    this.state.counted.push(key);
    if (this.state.counted.length > COUNTED_KEPT) this.state.counted.splice(0, this.state.counted.length - COUNTED_KEPT);
    const id = record.proposalId;
    if (id === undefined) return;
    const trip = result.trip;
    if (side === 'buy') {
      if (!trip.buys.includes(id)) trip.buys.push(id);
    } else {
      if (!trip.sells.includes(id)) trip.sells.push(id);
      const extras = this.extrasOf(id);
      extras.realized = new Dec(extras.realized ?? 0).plus(result.realized).toFixed();
      this.dirty.add(id);
    }
    if (result.closed) this.close(trip, record.at);
  }

  /** A reconcile's adjustments, each symbol's part booked in that symbol's round trip. */
  private adjusted(record: JournalEntry): void {
    const venue = record['venue'];
    const adjustments = record['adjustments'];
    if (typeof venue !== 'string' || !Array.isArray(adjustments)) return;
    const symbols = [...new Set((adjustments as Array<Record<string, unknown>>).map((a) => a['symbol']).filter((s): s is string => typeof s === 'string'))].sort();
    for (const symbol of symbols) {
      const own = (adjustments as Array<Record<string, unknown>>).filter((a) => a['symbol'] === symbol);
      const slim = { type: 'book.adjusted', venue, id: record['id'], afterFills: record['afterFills'], adjustments: own };
      const result = this.book(venue, symbol, slim, record.at);
      if (result?.closed) this.close(result.trip, record.at);
    }
  }

  /**
   * Books one record in its position's round trip with the ledger's arithmetic: the trip's
   * records are recounted with it, and the realised PnL it added is the difference. A record the
   * ledger refuses (a sell of more than the journal shows held) is left out and reported.
   */
  private book(venue: string, symbol: string, slim: Record<string, unknown>, at: string): { trip: Trip; realized: string; closed: boolean } | undefined {
    const key = tripKey(venue, symbol);
    const trip = this.state.trips[key] ?? { venue, symbol, opening: null, records: [], realized: '0', buys: [], sells: [] };
    const opening = { type: 'account.opened', venue, cash: '0', positions: trip.opening ? [{ symbol, ...trip.opening }] : [] };
    const recount = recountJournal(recordLines([opening, ...trip.records, slim]), { venue });
    if (recount.errors.length > 0) {
      this.log.warn('vault: a fill or adjustment does not fit the position the journal shows; its PnL is left out of the notes', { venue, symbol, at, error: recount.errors[0] });
      return undefined;
    }
    const realized = new Dec(recount.realizedPnl).minus(trip.realized).toFixed();
    trip.records.push(slim);
    trip.realized = recount.realizedPnl;
    const closed = recount.positions[symbol] === undefined;
    if (closed) delete this.state.trips[key];
    else this.state.trips[key] = trip;
    return { trip, realized, closed };
  }

  /** A position back to flat: each buy of the trip, and the sell that closed it, learn the round trip's PnL. */
  private close(trip: Trip, at: string): void {
    const roundTrip: RoundTrip = { realized: trip.realized, closedAt: at, buys: [...trip.buys], sells: [...trip.sells] };
    const closer = trip.sells.at(-1);
    for (const id of closer === undefined ? trip.buys : [...trip.buys, closer]) {
      this.extrasOf(id).roundTrip = roundTrip;
      this.dirty.add(id);
    }
  }

  private finished(record: JournalEntry, day: string): void {
    const id = record.proposalId;
    if (id === undefined) return;
    const view = this.source(id, day);
    if (!view) {
      this.log.warn('vault: a finished proposal is not in the archive; it gets no note', { proposalId: id, day });
      return;
    }
    this.views.set(id, view);
    if (!this.entries.has(id)) {
      const entry = dayEntry(view, this.extrasFor(id, view));
      (this.state.days[day] ??= []).push(entry);
      this.entries.set(id, { day, entry });
    }
    this.dirtyDays.add(day);
    if (view.side === 'buy' && view.fill && this.state.extras[id]?.roundTrip === undefined) this.state.open[id] = day;
    this.dirty.add(id);
  }

  /** Renders what changed into the outbox, and forgets what no note will need again. */
  private render(days = true): void {
    for (const id of this.dirty) {
      try {
        this.renderNote(id);
      } catch (err) {
        this.log.warn('vault: a proposal note could not be made; `npm run vault -- --rebuild` tries again', { proposalId: id, error: describeError(err) });
      }
    }
    this.dirty.clear();
    if (!days) return;
    for (const day of this.dirtyDays) {
      const entries = this.state.days[day];
      try {
        if (entries) this.outbox.set(dailyNotePath(day), renderDailyNote(day, entries, this.currency()));
      } catch (err) {
        this.log.warn('vault: a daily note could not be made', { day, error: describeError(err) });
      }
    }
    this.dirtyDays.clear();
  }

  private renderNote(id: string): void {
    const day = this.state.open[id] ?? this.entries.get(id)?.day;
    if (day === undefined) return; // not finished yet: its note comes with its finish
    const view = this.views.get(id) ?? this.source(id, day);
    this.views.delete(id);
    if (!view) {
      this.log.warn('vault: a finished proposal is not in the archive; its note is not updated', { proposalId: id, day });
      return;
    }
    const extras = this.extrasFor(id, view);
    this.outbox.set(proposalNotePath(day, id), renderProposalNote(view, extras, day));
    const entry = this.entries.get(id);
    if (entry && entry.entry.realized !== (extras.realized ?? null)) {
      entry.entry.realized = extras.realized ?? null;
      this.dirtyDays.add(entry.day);
    }
    // A sell's PnL is whole once its note shows it; a buy's once its position closed.
    if (view.side === 'sell' || extras.roundTrip !== undefined) {
      delete this.state.extras[id];
      delete this.state.open[id];
    }
  }

  private extrasOf(id: string): NoteExtras {
    const held = this.state.extras[id];
    if (held) return held;
    const made: NoteExtras = {};
    this.state.extras[id] = made;
    return made;
  }

  private extrasFor(id: string, view: ProposalView): NoteExtras {
    const currency = this.state.currencies[view.order?.venue ?? 'paper'];
    return { ...(currency !== undefined ? { quoteCurrency: currency } : {}), ...this.state.extras[id] };
  }

  /** The accounts' currency when every account the journal opened uses the same one. */
  private currency(): string | undefined {
    const all = new Set(Object.values(this.state.currencies));
    return all.size === 1 ? [...all][0] : undefined;
  }
}

function tripKey(venue: string, symbol: string): string {
  return JSON.stringify([venue, symbol]);
}

/** `day` moved by `n` days (`YYYY-MM-DD`, UTC). */
export function addDays(day: string, n: number): string {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}
