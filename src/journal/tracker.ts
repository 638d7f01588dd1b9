/**
 * Queryable history: finished proposals and signal statuses are appended to per-day files.
 * Finished proposals are found by id through an index filed under the id's creation day (id →
 * day file, offset, length), so a lookup reads one small index file and one record, never the
 * day files themselves. Start-up reads nothing here; recent records are cached in memory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { replaceFileSync, type StorageIo } from '../persistence/storage-io';
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

interface ArchiveIndexEntry {
  id: string;
  /** Day file the record is in (the day it finished). */
  day: string;
  offset: number;
  length: number;
}

/**
 * Finished proposals: `DATA_DIR/journal/proposals/YYYY-MM-DD.jsonl` (day they finished), and
 * their index `journal/proposals/index/YYYY-MM-DD.jsonl` (day the proposal was created).
 */
export class ProposalArchive {
  private readonly files: DailyJsonl;
  private readonly index: DailyJsonl;
  private readonly recent = new RecentMap<ProposalView>(5000);
  /** Parsed index files of a few creation days. */
  private readonly indexDays = new RecentMap<Map<string, ArchiveIndexEntry>>(8);
  /** Proposals archived by this process, oldest first: the newest end of the archive. */
  private readonly added: ProposalView[] = [];

  constructor(io: StorageIo, journalDir: string, private readonly now: () => number = Date.now) {
    this.files = new DailyJsonl(io, path.join(journalDir, 'proposals'));
    this.index = new DailyJsonl(io, path.join(journalDir, 'proposals', 'index'));
    if (!fs.existsSync(path.join(this.index.dir, '.complete'))) this.buildIndex();
  }

  /** Archives a finished proposal; resolves once the record and its index entry are durable. */
  async add(view: ProposalView, at: string): Promise<void> {
    const receipt = await this.files.append({ at, proposal: view });
    const entry: ArchiveIndexEntry = { id: view.id, day: utcDay(at), offset: receipt.offset, length: receipt.length };
    const created = dayOfId(view.id) ?? utcDay(at);
    await Promise.all([receipt.durable, this.index.write({ at: `${created}T00:00:00.000Z`, ...entry })]);
    this.indexDays.get(created)?.set(view.id, entry);
    this.recent.set(view.id, view);
    this.added.push(view);
    if (this.added.length > 5000) this.added.splice(0, this.added.length - 5000);
  }

  get(id: string): ProposalView | undefined {
    const cached = this.recent.get(id);
    if (cached) return cached;
    const created = dayOfId(id);
    if (!created) return undefined;
    const entry = this.indexOf(created).get(id);
    if (!entry) return undefined;
    const raw = this.files.readAt(entry.day, entry.offset, entry.length);
    if (!raw) return undefined;
    try {
      const p = (JSON.parse(raw.toString()) as { proposal?: ProposalView }).proposal;
      if (p?.id !== id) return undefined;
      this.recent.set(id, p);
      return p;
    } catch {
      return undefined;
    }
  }

  /**
   * Archives `view` unless it already is, for recovery after a crash or a failed write that may
   * have come between the record and its index entry: a record found in the days it may have
   * finished on gets its missing index entry. Resolves true when the record was written now.
   */
  async ensure(view: ProposalView, at: string, days: string[]): Promise<boolean> {
    if (this.get(view.id)) return false;
    for (const day of [...new Set(days)]) {
      const found = this.locate(view.id, day);
      if (!found) continue;
      const created = dayOfId(view.id) ?? day;
      await this.index.write({ at: `${created}T00:00:00.000Z`, ...found });
      this.indexDays.get(created)?.set(view.id, found);
      return false;
    }
    await this.add(view, at);
    return true;
  }

  /** Where the record of `id` is in one day file (a scan: recovery paths only). */
  private locate(id: string, day: string): ArchiveIndexEntry | undefined {
    let text: Buffer;
    try {
      text = fs.readFileSync(this.files.fileFor(day));
    } catch {
      return undefined;
    }
    const needle = Buffer.from(`"id":${JSON.stringify(id)}`);
    for (let pos = 0; pos < text.length;) {
      const nl = text.indexOf(0x0a, pos);
      if (nl === -1) break;
      const line = text.subarray(pos, nl);
      if (line.includes(needle)) {
        try {
          if ((JSON.parse(line.toString()) as { proposal?: { id?: string } }).proposal?.id === id) return { id, day, offset: pos, length: nl + 1 - pos };
        } catch {
          // not a whole record
        }
      }
      pos = nl + 1;
    }
    return undefined;
  }

  private indexOf(created: string): Map<string, ArchiveIndexEntry> {
    let byId = this.indexDays.get(created);
    if (!byId) {
      byId = new Map();
      for (const rec of this.index.read(created)) byId.set(String(rec['id']), rec as unknown as ArchiveIndexEntry);
      this.indexDays.set(created, byId);
    }
    return byId;
  }

  /**
   * Archives written before the index existed get one once: every day file is read a single
   * time, on the first start of this version.
   */
  private buildIndex(): void {
    const perDay = new Map<string, string[]>();
    for (const day of this.files.days()) {
      const text = fs.readFileSync(this.files.fileFor(day));
      let pos = 0;
      while (pos < text.length) {
        const nl = text.indexOf(0x0a, pos);
        if (nl === -1) break;
        try {
          const id = (JSON.parse(text.subarray(pos, nl).toString()) as { proposal?: { id?: string } }).proposal?.id;
          const created = id ? dayOfId(id) : undefined;
          if (id && created) {
            const line = JSON.stringify({ at: `${created}T00:00:00.000Z`, id, day, offset: pos, length: nl + 1 - pos });
            const lines = perDay.get(created) ?? [];
            lines.push(line);
            perDay.set(created, lines);
          }
        } catch {
          // a line cut short by a crash
        }
        pos = nl + 1;
      }
    }
    for (const [created, lines] of perDay) replaceFileSync(this.index.fileFor(created), `${lines.join('\n')}\n`);
    replaceFileSync(path.join(this.index.dir, '.complete'), '');
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
      const recs = this.files.read(day).map((r) => r.proposal as ProposalView).filter((p) => p !== undefined).reverse();
      for (const p of recs) {
        if (opts.state && p.state !== opts.state) continue;
        out.push(p);
        if (out.length >= opts.limit) return out;
      }
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([this.files.close(), this.index.close()]);
  }
}

export type SignalStatus = 'received' | 'proposed' | 'dropped' | 'duplicate';

export interface SignalRecord {
  id: string;
  receivedAt: string;
  status: SignalStatus;
  proposalId?: string;
  /** A dropped signal's code. */
  reason?: string;
  /** A dropped signal's reason in words. */
  detail?: string;
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
  private readonly listeners: Array<(record: SignalRecord) => void> = [];

  constructor(io: StorageIo, journalDir: string, private readonly now: () => number = Date.now) {
    this.files = new DailyJsonl(io, path.join(journalDir, 'signals'));
  }

  /** Records a new signal (or a duplicate); resolves once it is durable, and only then is it known. */
  async add(record: SignalRecord): Promise<void> {
    await this.files.write({ at: record.receivedAt, ...record });
    this.recent.set(record.id, record);
    this.tell(record);
  }

  /**
   * Observers of signal records (the console): called with the whole record after each durable
   * add or change, so what they show is what recovery will read.
   */
  onChange(listener: (record: SignalRecord) => void): void {
    this.listeners.push(listener);
  }

  private tell(record: SignalRecord): void {
    for (const l of this.listeners) {
      try {
        l(record);
      } catch {
        // An observer's fault never reaches the writer.
      }
    }
  }

  /** Records a status change; resolves once it is durable. */
  async update(id: string, change: { status: SignalStatus; proposalId?: string; reason?: string; detail?: string }): Promise<void> {
    const at = new Date(this.now()).toISOString();
    await this.files.write({ at, id, ...change });
    const current = this.get(id);
    if (current) {
      const updated = { ...current, ...change };
      this.recent.set(id, updated);
      this.tell(updated);
    }
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

  /**
   * The newest `limit` signals of today and yesterday (UTC), newest first, each with its latest
   * status. Reads two day files: for a view's first look, never on a hot path.
   */
  latest(limit: number): SignalRecord[] {
    // A change filed after midnight whose signal is older than the days read has no receivedAt.
    return [...this.merged(2).values()].filter((r) => typeof r.receivedAt === 'string').sort((a, b) => (a.receivedAt < b.receivedAt ? 1 : a.receivedAt > b.receivedAt ? -1 : 0)).slice(0, limit);
  }

  /** Signals of the last `days` UTC days still `received` (their processing was cut short). */
  unprocessed(days = 2): SignalRecord[] {
    return [...this.merged(days).values()].filter((r) => r.status === 'received' && r.signal);
  }

  /** Every signal of the last `days` UTC days with its changes applied, by id. */
  private merged(days: number): Map<string, SignalRecord> {
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
    return byId;
  }

  close(): Promise<void> {
    return this.files.close();
  }
}
