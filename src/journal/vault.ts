/**
 * The vault: markdown notes under `DATA_DIR/vault/` derived from the journal alone, one per
 * finished proposal (`proposals/YYYY-MM-DD/<id>.md`) and one per day (`daily/YYYY-MM-DD.md`),
 * readable in Obsidian (docs/vault.md).
 *
 * The notes are a pure function of journal records (`VaultFold`). The live service feeds it each
 * record once it is durable (`TradeLog.onDurable`), and `npm run vault -- --rebuild` feeds it the
 * day files, so both write the same bytes. Vault writes are derived data, never the truth: they
 * happen off every acknowledgement, a file at a time (temp file and rename), and a failure is
 * logged and retried, never felt by trading.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describeError } from '../errors';
import { dayOfId } from '../proposal/ids';
import type { ProposalView } from '../proposal/view';
import type { Redact } from '../redaction';
import { completeLength, utcDay, type JournalEntry } from './trade-log';
import { addDays, VAULT_STATE_FILE, VaultFold, type ViewSource, type VaultLog } from './vault-fold';

export { VAULT_STATE_FILE, VaultFold, type ViewSource, type VaultLog } from './vault-fold';

// --- Reading the journal -----------------------------------------------------------------------

const DAY_FILE = /^\d{4}-\d{2}-\d{2}\.jsonl$/;

/** Days that have a journal file, oldest first. */
function journalDays(journalDir: string): string[] {
  try {
    return fs.readdirSync(journalDir).filter((f) => DAY_FILE.test(f)).map((f) => f.slice(0, 10)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * Reads whole lines of `file` from `from` (about `chunk` bytes, more when one line is longer) and
 * hands each record with the offset just past it to `onRecord`. Returns where the next read
 * starts (past the last whole line read), or `from` when no whole line was there before `to`. A
 * line that is not JSON (a torn write) is skipped.
 */
function readLines(file: string, from: number, to: number, chunk: number, onRecord: (record: JournalEntry, end: number) => void): number {
  if (from >= to) return from;
  const fd = fs.openSync(file, 'r');
  let buf: Buffer;
  let last: number;
  try {
    for (let size = Math.min(chunk, to - from); ; size = Math.min(size * 2, to - from)) {
      buf = Buffer.alloc(size);
      buf = buf.subarray(0, fs.readSync(fd, buf, 0, size, from));
      last = buf.lastIndexOf(0x0a);
      if (last !== -1) break;
      if (buf.length < size || from + size >= to) return from;
    }
  } finally {
    fs.closeSync(fd);
  }
  for (let pos = 0; pos <= last;) {
    const nl = buf.indexOf(0x0a, pos);
    const line = buf.subarray(pos, nl).toString();
    pos = nl + 1;
    if (line.trim() === '') continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      continue;
    }
    if (record !== null && typeof record === 'object' && !Array.isArray(record)) onRecord(record as JournalEntry, from + pos);
  }
  return from + last + 1;
}

/**
 * Where `line` ends in `file`, looked for in the file's last megabyte (the first record of a
 * day the vault did not follow yet was just written there); the file's length if it is not found.
 */
function endOfLine(file: string, line: string): number {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const start = Math.max(0, size - 1024 * 1024);
    const buf = Buffer.alloc(size - start);
    const n = fs.readSync(fd, buf, 0, buf.length, start);
    const at = buf.subarray(0, n).lastIndexOf(line);
    return at === -1 ? size : start + at + Buffer.byteLength(line);
  } finally {
    fs.closeSync(fd);
  }
}

/** Whether `offset` is the start of a line of `file` that exists (a bookmark the journal still matches). */
function atLineStart(file: string, offset: number): boolean {
  if (offset === 0) return true;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const b = Buffer.alloc(1);
      return fs.readSync(fd, b, 0, 1, offset - 1) === 1 && b[0] === 0x0a;
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
}

/**
 * Finished proposals read from the archive files without writing anything (the rebuild's view
 * source): through the index filed under the id's creation day, else by a look through the day
 * it finished and the day before.
 */
export function archiveReader(journalDir: string): ViewSource {
  const dir = path.join(journalDir, 'proposals');
  const indexes = new Map<string, Map<string, { day: string; offset: number; length: number }>>();
  const indexOf = (created: string) => {
    let byId = indexes.get(created);
    if (!byId) {
      byId = new Map();
      readLines(path.join(dir, 'index', `${created}.jsonl`), 0, Number.MAX_SAFE_INTEGER, 64 * 1024 * 1024, (r) => {
        byId!.set(String(r['id']), { day: String(r['day']), offset: Number(r['offset']), length: Number(r['length']) });
      });
      if (indexes.size >= 8) indexes.delete(indexes.keys().next().value as string);
      indexes.set(created, byId);
    }
    return byId;
  };
  const scan = (day: string, id: string): ProposalView | undefined => {
    let found: ProposalView | undefined;
    readLines(path.join(dir, `${day}.jsonl`), 0, Number.MAX_SAFE_INTEGER, 256 * 1024 * 1024, (r) => {
      const p = r['proposal'] as ProposalView | undefined;
      if (p?.id === id) found ??= p;
    });
    return found;
  };
  return (id, day) => {
    const created = dayOfId(id);
    const entry = created ? safely(() => indexOf(created).get(id)) : undefined;
    if (entry) {
      const view = safely(() => readRecordAt(path.join(dir, `${entry.day}.jsonl`), entry.offset, entry.length));
      if (view?.id === id) return view;
    }
    return safely(() => scan(day, id)) ?? safely(() => scan(addDays(day, -1), id));
  };
}

function readRecordAt(file: string, offset: number, length: number): ProposalView | undefined {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    const n = fs.readSync(fd, buf, 0, length, offset);
    return (JSON.parse(buf.subarray(0, n).toString()) as { proposal?: ProposalView }).proposal;
  } finally {
    fs.closeSync(fd);
  }
}

function safely<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

// --- The live vault ----------------------------------------------------------------------------

export interface VaultOptions {
  /** `DATA_DIR/vault`. */
  dir: string;
  /** `DATA_DIR/journal`. */
  journalDir: string;
  /** The journal whose durable records the vault follows. */
  journal: { onDurable(listener: (entry: JournalEntry) => void): () => void };
  /** The archive's view of a finished proposal (the live service: `ProposalArchive.get`). */
  views: (id: string) => ProposalView | undefined;
  log: VaultLog;
  /** Takes configured secrets out of what is written (the views are redacted already; this is a second net). */
  redact?: Redact;
  /** How often changed notes, the daily notes and the bookmark are written (default 1 s). */
  flushIntervalMs?: number;
}

/** Bytes of the journal read per step while catching up, between which the event loop runs. */
const CATCH_UP_CHUNK = 1024 * 1024;

/**
 * The vault as the service keeps it: it follows the journal's durable records and writes the
 * notes they change, at most once per interval, after the records were acknowledged. On start it
 * reads the journal from its bookmark to where it ends (records written while the service was
 * down or before the bookmark was saved), in the background; with no usable bookmark that is the
 * whole journal, once.
 */
export class Vault {
  private readonly fold: VaultFold;
  private readonly queue: JournalEntry[] = [];
  /** Where each day file's durable records end (the offset of the next one). */
  private readonly ends = new Map<string, number>();
  private readonly unsubscribe: () => void;
  private readonly caughtUp: Promise<void>;
  private catchingUp = true;
  private stopping = false;
  private cutShort = false;
  private draining = false;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private changed = false;
  /** Files whose write failed, written again with the next flush (a newer text wins). */
  private readonly retry = new Map<string, string>();
  private failing = false;
  /** When the daily notes and the bookmark were last written; whether notes were written since. */
  private fullAt = 0;
  private unbookmarked = false;
  private misplaced = false;
  private readonly madeDirs = new Set<string>();

  private constructor(private readonly opts: VaultOptions, fold: VaultFold, plan: Array<{ day: string; from: number; to: number }>) {
    this.fold = fold;
    for (const p of plan) this.ends.set(p.day, p.to);
    for (const [day, end] of Object.entries(fold.cursor)) if (!this.ends.has(day)) this.ends.set(day, end);
    this.unsubscribe = opts.journal.onDurable((entry) => this.onRecord(entry));
    this.caughtUp = this.catchUp(plan).catch((err: unknown) => {
      opts.log.error('vault: could not read the journal to catch up; notes may be missing until `npm run vault -- --rebuild`', { error: describeError(err) });
    }).finally(() => {
      this.catchingUp = false;
      // What arrived meanwhile comes after what was on disk.
      this.drain();
    });
  }

  /**
   * Opens the vault and starts following `journal`. Call it before anything is appended to the
   * journal in this process: what is on disk is caught up from the bookmark, what comes after
   * arrives through the journal's durable records.
   */
  static open(opts: VaultOptions): Vault {
    const redact = opts.redact ?? (<T>(v: T) => v);
    const source: ViewSource = (id) => {
      const view = opts.views(id);
      return view === undefined ? undefined : redact(view);
    };
    let fold: VaultFold | undefined;
    let plan: Array<{ day: string; from: number; to: number }> = [];
    try {
      fs.mkdirSync(opts.dir, { recursive: true });
      fold = readBookmark(opts, source);
      const cursor = fold?.cursor ?? {};
      const known = Object.keys(cursor).sort();
      plan = journalDays(opts.journalDir)
        .filter((day) => known.length === 0 || day >= known[0]!)
        .map((day) => ({ day, from: cursor[day] ?? 0, to: completeLength(path.join(opts.journalDir, `${day}.jsonl`)) }));
    } catch (err) {
      // The vault never stops the service: it follows what comes, and a rebuild fills the gap.
      opts.log.error('vault: could not read its bookmark or the journal; notes of earlier records are missing until `npm run vault -- --rebuild`', { error: describeError(err) });
    }
    return new Vault(opts, fold ?? new VaultFold(source, opts.log), plan);
  }

  /** Resolves once every record made durable so far is in the notes on disk (tests, shutdown). */
  async flush(): Promise<void> {
    await this.caughtUp;
    this.drain();
    await this.flushNow(true);
  }

  /** Stops following the journal and writes what is left. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.unsubscribe();
    // A catch-up still running stops at its next step: the bookmark says where, and the next
    // start goes on from there (the records that came meanwhile are in the journal's files).
    this.stopping = true;
    await this.flush();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private async catchUp(plan: Array<{ day: string; from: number; to: number }>): Promise<void> {
    for (const { day, from, to } of plan) {
      const file = path.join(this.opts.journalDir, `${day}.jsonl`);
      for (let at = from; at < to;) {
        // The service's own work runs between steps (and start-up is not held up by the first).
        await new Promise((resolve) => setImmediate(resolve));
        if (this.stopping) {
          this.cutShort = true;
          return;
        }
        const next = readLines(file, at, to, CATCH_UP_CHUNK, (record, end) => this.fold.apply(record, day, end));
        if (next === at) break;
        at = next;
        this.changed = true;
        this.schedule();
      }
    }
  }

  /** Called synchronously as each record becomes durable: only queues it (the writer awaits this call). */
  private onRecord(entry: JournalEntry): void {
    if (this.closed) return;
    this.queue.push(entry);
    if (!this.catchingUp && !this.draining) {
      this.draining = true;
      setImmediate(() => {
        this.draining = false;
        this.drain();
      });
    }
  }

  private drain(): void {
    if (this.catchingUp) return;
    // Records after a catch-up that was cut short would land out of order: the next start reads them.
    if (this.cutShort) this.queue.length = 0;
    for (const entry of this.queue.splice(0)) {
      try {
        this.applyLive(entry);
      } catch (err) {
        this.opts.log.warn('vault: a journal record could not be followed', { type: entry.type, error: describeError(err) });
      }
    }
    this.changed = true;
    this.schedule();
  }

  /** Applies a live record at its place in its day file. */
  private applyLive(entry: JournalEntry): void {
    const day = utcDay(entry.at);
    // The journal wrote `JSON.stringify(entry)` and a newline: that is where the next record starts.
    // A day not followed yet (a new one, or an older day a late record went to) is looked up.
    const line = `${JSON.stringify(entry)}\n`;
    const known = this.ends.get(day);
    const end = known === undefined ? (safely(() => endOfLine(path.join(this.opts.journalDir, `${day}.jsonl`), line)) ?? 0) : known + Buffer.byteLength(line);
    this.ends.set(day, end);
    this.fold.apply(entry, day, end);
  }

  private schedule(): void {
    if (this.timer || this.closed || !this.changed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flushNow();
    }, this.opts.flushIntervalMs ?? 1000);
    this.timer.unref();
  }

  /**
   * Writes the changed notes, and at a full flush the daily notes and then the bookmark that says
   * they are all written. One flush at a time. `bookmark` forces a full flush with the bookmark
   * (shutdown, tests); otherwise the bookmark is written only when notes were: records that change
   * no note (most of them) only move it, and a restart reads them again at little cost.
   */
  private flushNow(bookmark = false): Promise<void> {
    this.flushing = this.flushing.then(() => this.writeChanges(bookmark)).catch((err: unknown) => {
      this.opts.log.error('vault: could not write its notes; retried with the next change', { error: describeError(err) });
    });
    return this.flushing;
  }

  /** Writes the changed notes, then the bookmark that says they are written (only when every note was). */
  private async writeChanges(bookmark: boolean): Promise<void> {
    this.changed = false;
    // A daily note is rewritten whole, so the bigger the day the longer between rewrites (1 ms per
    // proposal listed): its cost per second stays flat however busy the day. The bookmark, which
    // holds those days' entries, goes with it.
    const interval = this.opts.flushIntervalMs ?? 1000;
    const full = bookmark || Date.now() - this.fullAt >= Math.max(interval, this.fold.keptEntries);
    const files = this.fold.takeFiles(full);
    if (!full && (this.fold.daysDue || this.unbookmarked || files.size > 0)) {
      // Come back for the daily notes and the bookmark.
      this.changed = true;
      this.schedule();
    }
    if (files.size === 0 && this.retry.size === 0 && !(full && (bookmark || this.unbookmarked))) return;
    const state = full ? this.fold.serialize() : null;
    const cursor = { ...this.fold.cursor };
    for (const [file, text] of files) this.retry.set(file, text);
    let failed = 0;
    for (const [file, text] of [...this.retry]) {
      try {
        await this.write(file, text);
        if (this.retry.get(file) === text) this.retry.delete(file);
      } catch (err) {
        failed += 1;
        if (!this.failing) this.opts.log.error('vault: a note could not be written; retried with the next change (trading is not affected)', { file, error: describeError(err) });
        this.failing = true;
      }
    }
    if (failed > 0) {
      this.changed = true;
      this.schedule();
      return;
    }
    this.unbookmarked = true;
    if (state === null) return;
    // Live offsets are counted from what the journal serialized; a bookmark off a line start (a
    // record changed after it was written) is not kept: the next start reads from the last good one.
    if (!Object.entries(cursor).every(([day, offset]) => atLineStart(path.join(this.opts.journalDir, `${day}.jsonl`), offset))) {
      if (!this.misplaced) this.opts.log.error('vault: its place in the journal does not fall on a record; the bookmark is kept where it was (the notes are right)');
      this.misplaced = true;
      return;
    }
    try {
      await this.write(VAULT_STATE_FILE, state);
      this.fullAt = Date.now();
      this.unbookmarked = false;
      if (this.failing) this.opts.log.warn('vault: notes are written again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.opts.log.error('vault: its bookmark could not be written; retried with the next change', { error: describeError(err) });
      this.failing = true;
      this.changed = true;
      this.schedule();
    }
  }

  /** One file replaced whole: a temp file beside it, then a rename (a reader never sees half a note). */
  private async write(rel: string, text: string): Promise<void> {
    const file = path.join(this.opts.dir, rel);
    const dir = path.dirname(file);
    if (!this.madeDirs.has(dir)) {
      await fsp.mkdir(dir, { recursive: true });
      this.madeDirs.add(dir);
    }
    const tmp = path.join(dir, `.${path.basename(file)}.tmp`);
    try {
      await fsp.writeFile(tmp, text);
    } catch (err) {
      // The folder may have been removed (a vault deleted to be rebuilt): make it again next time.
      this.madeDirs.delete(dir);
      throw err;
    }
    await fsp.rename(tmp, file);
  }
}

/** The fold the bookmark holds, if it is this version's and the journal still matches it. */
function readBookmark(opts: VaultOptions, source: ViewSource): VaultFold | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join(opts.dir, VAULT_STATE_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const fold = VaultFold.restore(text, source, opts.log);
  // A bookmark the journal no longer matches (a journal restored from an older backup) starts over.
  if (fold && !Object.entries(fold.cursor).every(([day, offset]) => atLineStart(path.join(opts.journalDir, `${day}.jsonl`), offset))) {
    opts.log.warn('vault: its bookmark does not match the journal; the notes are made again from the whole journal');
    return undefined;
  }
  if (!fold) opts.log.warn('vault: no bookmark of this version; the notes are made again from the whole journal');
  return fold;
}

// --- The rebuild -------------------------------------------------------------------------------

export interface RebuildReport {
  notes: number;
  days: number;
  records: number;
}

/**
 * Makes the whole vault again in `outDir` (which should be empty) from the journal's day files
 * and the archive of finished proposals alone: the same notes, byte for byte, as the live
 * service writes, and the bookmark with which a service goes on from there. Reads synchronously
 * (a command-line tool's work, never the service's).
 */
export function rebuildVault(opts: { journalDir: string; outDir: string; log: VaultLog; redact?: Redact }): RebuildReport {
  const redact = opts.redact ?? (<T>(v: T) => v);
  const archive = archiveReader(opts.journalDir);
  const fold = new VaultFold((id, day) => {
    const view = archive(id, day);
    return view === undefined ? undefined : redact(view);
  }, opts.log);
  const written = new Set<string>();
  const write = (files: Map<string, string>) => {
    for (const [rel, text] of files) {
      const file = path.join(opts.outDir, rel);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, text);
      written.add(rel);
    }
  };
  let records = 0;
  for (const day of journalDays(opts.journalDir)) {
    const file = path.join(opts.journalDir, `${day}.jsonl`);
    const to = completeLength(file);
    for (let at = 0; at < to;) {
      const next = readLines(file, at, to, 16 * CATCH_UP_CHUNK, (record, end) => {
        records += 1;
        fold.apply(record, day, end);
      });
      if (next === at) break;
      at = next;
    }
    write(fold.takeFiles());
  }
  write(fold.takeFiles());
  fs.mkdirSync(opts.outDir, { recursive: true });
  fs.writeFileSync(path.join(opts.outDir, VAULT_STATE_FILE), fold.serialize());
  const all = [...written];
  return { notes: all.filter((f) => f.startsWith('proposals/')).length, days: all.filter((f) => f.startsWith('daily/')).length, records };
}
