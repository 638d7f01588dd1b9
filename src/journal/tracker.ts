/**
 * Queryable history without a growing index: finished proposals and signal statuses are
 * appended to per-day files, and ids carry their creation day, so a lookup reads one or two
 * day files. Start-up reads nothing here; recent records are cached in memory.
 */
import path from 'node:path';
import type { ProposalView } from '../proposal/view';
import { dayOfId } from '../proposal/ids';
import type { Signal } from '../proposal/types';
import { DailyJsonl, utcDay } from './trade-log';

/** A bounded most-recently-used map. */
class RecentMap<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly limit: number) {}
  get(key: string): V | undefined {
    return this.map.get(key);
  }
  set(key: string, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.limit) this.map.delete(this.map.keys().next().value as string);
  }
}

function addDays(day: string, n: number): string {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

/** Finished proposals: `DATA_DIR/journal/proposals/YYYY-MM-DD.jsonl` (day they finished). */
export class ProposalArchive {
  private readonly files: DailyJsonl;
  private readonly recent = new RecentMap<ProposalView>(5000);
  /** Proposals archived by this process, oldest first: the newest end of the archive. */
  private readonly added: ProposalView[] = [];

  constructor(journalDir: string, private readonly now: () => number = Date.now) {
    this.files = new DailyJsonl(path.join(journalDir, 'proposals'));
  }

  add(view: ProposalView, at: string): void {
    this.files.append({ at, proposal: view });
    this.recent.set(view.id, view);
    this.added.push(view);
    if (this.added.length > 5000) this.added.splice(0, this.added.length - 5000);
  }

  get(id: string): ProposalView | undefined {
    const cached = this.recent.get(id);
    if (cached) return cached;
    const first = dayOfId(id);
    if (!first) return undefined;
    const today = utcDay(this.now());
    // A proposal finishes within its approval window (at most 7 days) plus its execution: scan
    // its creation day and the nine after it, never years of files for an unknown id.
    for (let day = first, n = 0; day <= today && n < 10; day = addDays(day, 1), n++) {
      for (const rec of this.files.read(day)) {
        const p = rec.proposal as ProposalView | undefined;
        if (p?.id === id) {
          this.recent.set(id, p);
          return p;
        }
      }
    }
    return undefined;
  }

  /** Newest first, reading day files backwards (the last 31 days at most) until `limit` are found. */
  list(opts: { state?: string; limit: number }): ProposalView[] {
    const out: ProposalView[] = [];
    // What this process archived is the newest part: enough of it answers without reading files.
    for (let i = this.added.length - 1; i >= 0 && out.length < opts.limit; i--) {
      const p = this.added[i]!;
      if (!opts.state || p.state === opts.state) out.push(p);
    }
    if (out.length >= opts.limit) return out;
    out.length = 0;
    for (const day of this.files.days().reverse().slice(0, 31)) {
      const recs = this.files.read(day).map((r) => r.proposal as ProposalView).reverse();
      for (const p of recs) {
        if (opts.state && p.state !== opts.state) continue;
        out.push(p);
        if (out.length >= opts.limit) return out;
      }
    }
    return out;
  }

  close(): void {
    this.files.close();
  }
}

export type SignalStatus = 'received' | 'proposed' | 'dropped' | 'duplicate';

export interface SignalRecord {
  id: string;
  receivedAt: string;
  status: SignalStatus;
  proposalId?: string;
  reason?: string;
  /** For a duplicate: the first signal's id. */
  duplicateOf?: string;
  /** The dedupe key the signal was remembered under (rebuilds the window after a restart). */
  dedupeKey?: string;
  signal?: Signal;
}

/** Signal statuses: `DATA_DIR/journal/signals/YYYY-MM-DD.jsonl`, one line per change. */
export class SignalRegistry {
  private readonly files: DailyJsonl;
  private readonly recent = new RecentMap<SignalRecord>(20000);

  constructor(journalDir: string, private readonly now: () => number = Date.now) {
    this.files = new DailyJsonl(path.join(journalDir, 'signals'));
  }

  /** Records a new signal (or a duplicate) durably. */
  add(record: SignalRecord): void {
    this.files.append({ at: record.receivedAt, ...record });
    this.recent.set(record.id, record);
  }

  /** Records a status change durably. */
  update(id: string, change: { status: SignalStatus; proposalId?: string; reason?: string }): void {
    const at = new Date(this.now()).toISOString();
    this.files.append({ at, id, ...change });
    const current = this.get(id);
    if (current) this.recent.set(id, { ...current, ...change });
  }

  get(id: string): SignalRecord | undefined {
    const cached = this.recent.get(id);
    if (cached) return cached;
    const first = dayOfId(id);
    if (!first) return undefined;
    const today = utcDay(this.now());
    let found: SignalRecord | undefined;
    for (let day = first, n = 0; day <= today && n < 3; day = addDays(day, 1), n++) {
      for (const rec of this.files.read(day)) {
        if (rec.id !== id) continue;
        const { at: _at, ...rest } = rec;
        found = found ? { ...found, ...(rest as Partial<SignalRecord>) } : (rest as unknown as SignalRecord);
      }
    }
    if (found) this.recent.set(id, found);
    return found;
  }

  /** Dedupe keys of the signals received since `since` (epoch ms), oldest first. */
  keyedSince(since: number): Array<{ key: string; signalId: string; at: number }> {
    const out: Array<{ key: string; signalId: string; at: number }> = [];
    const today = utcDay(this.now());
    for (let day = utcDay(Math.min(since, this.now())); day <= today; day = addDays(day, 1)) {
      for (const rec of this.files.read(day)) {
        const key = rec['dedupeKey'];
        const at = Date.parse(String(rec['receivedAt'] ?? rec['at']));
        if (typeof key === 'string' && at >= since) out.push({ key, signalId: String(rec['id']), at });
      }
    }
    return out.sort((a, b) => a.at - b.at);
  }

  /** Signals of the last `days` UTC days still `received` (their processing was cut short). */
  unprocessed(days = 2): SignalRecord[] {
    const today = utcDay(this.now());
    const byId = new Map<string, SignalRecord>();
    for (let i = days - 1; i >= 0; i--) {
      for (const rec of this.files.read(addDays(today, -i))) {
        const { at: _at, ...rest } = rec;
        const id = rest.id as string;
        const prev = byId.get(id);
        byId.set(id, prev ? { ...prev, ...(rest as Partial<SignalRecord>) } : (rest as unknown as SignalRecord));
      }
    }
    return [...byId.values()].filter((r) => r.status === 'received' && r.signal);
  }

  close(): void {
    this.files.close();
  }
}
