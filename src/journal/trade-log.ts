/**
 * Append-only JSON-lines files, one per UTC day, written with group commit: a record's promise
 * resolves once an fdatasync covers it, so whoever acknowledges an effect awaits the record of
 * it. Records are written in the order they were appended. Cost does not grow with history.
 */
import type { Redact } from '../redaction';
import fs from 'node:fs';
import path from 'node:path';
import { AppendFile, type AppendReceipt } from '../persistence/append-file';
import { makeDurableDirSync, type StorageIo } from '../persistence/storage-io';

/** `YYYY-MM-DD` (UTC) of an ISO timestamp or epoch ms. */
export function utcDay(at: string | number): string {
  return new Date(at).toISOString().slice(0, 10);
}

/** One folder of daily JSON-lines files. */
export class DailyJsonl {
  /** Open day files, most recently used last (records of a few days may interleave). */
  private readonly open = new Map<string, Promise<AppendFile>>();
  /** Day files being closed: a day reopened meanwhile waits, so one writer owns a file at a time. */
  private readonly closing = new Map<string, Promise<void>>();
  private closed = false;

  constructor(private readonly io: StorageIo, readonly dir: string) {
    makeDurableDirSync(dir);
  }

  /** Path of the file for `day`. */
  fileFor(day: string): string {
    return path.join(this.dir, `${day}.jsonl`);
  }

  /**
   * Appends one record to the file of its day. The receipt's `durable` resolves once it is
   * synced and rejects with a StorageError if it could not be written.
   */
  append(record: { at: string } & Record<string, unknown>): Promise<AppendReceipt> {
    // After close another process may own the folder: never open a file again.
    if (this.closed) return Promise.reject(new Error(`${this.dir} is closed`));
    const day = utcDay(record.at);
    let file = this.open.get(day);
    if (file) this.open.delete(day);
    else {
      file = this.openDay(day);
      while (this.open.size >= 3) {
        const [oldest, f] = this.open.entries().next().value as [string, Promise<AppendFile>];
        this.open.delete(oldest);
        this.retire(oldest, f);
      }
    }
    this.open.set(day, file);
    const opened = file;
    const line = `${JSON.stringify(record)}\n`;
    const receipt = opened.then((f) => f.append(line), (err: unknown) => {
      // The file could not be opened: the next record tries again.
      if (this.open.get(day) === opened) this.open.delete(day);
      throw err;
    });
    receipt.catch(() => undefined);
    return receipt;
  }

  /** Appends and resolves once the record is durable. */
  async write(record: { at: string } & Record<string, unknown>): Promise<void> {
    await (await this.append(record)).durable;
  }

  /** Reads `length` bytes at `offset` of a day file (records found through an index). */
  readAt(day: string, offset: number, length: number): Buffer | undefined {
    let fd: number;
    try {
      fd = fs.openSync(this.fileFor(day), 'r');
    } catch {
      return undefined;
    }
    try {
      const buf = Buffer.alloc(length);
      const n = fs.readSync(fd, buf, 0, length, offset);
      return buf.subarray(0, n);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Days that have a file, oldest first. */
  days(): string[] {
    return fs
      .readdirSync(this.dir)
      .filter((f) => /^\d{4}-\d{2}-\d{2}\.jsonl$/.test(f))
      .map((f) => f.slice(0, 10))
      .sort();
  }

  /** Every record of one day; a torn last line (crash mid-write) is skipped. */
  read(day: string): Array<Record<string, unknown>> {
    let text: string;
    try {
      text = fs.readFileSync(this.fileFor(day), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: Array<Record<string, unknown>> = [];
    for (const line of text.split('\n')) {
      if (line === '') continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a line cut short by a crash
      }
    }
    return out;
  }

  /** Writes what is queued and closes the files. */
  async close(): Promise<void> {
    this.closed = true;
    for (const [day, f] of this.open) this.retire(day, f);
    this.open.clear();
    await Promise.all(this.closing.values());
  }

  private retire(day: string, file: Promise<AppendFile>): void {
    const closed = file.then((f) => f.close(), () => undefined).finally(() => {
      if (this.closing.get(day) === closed) this.closing.delete(day);
    });
    this.closing.set(day, closed);
  }

  /** Opens a day file; a torn last line (a crash mid-write, never acknowledged) is cut first. */
  private async openDay(day: string): Promise<AppendFile> {
    await this.closing.get(day);
    const file = this.fileFor(day);
    return AppendFile.open(this.io, file, { validLength: completeLength(file) });
  }
}

/** Length of a file up to and including its last newline (what a torn last line leaves intact). */
export function completeLength(file: string): number {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return 0;
  }
  try {
    const size = fs.fstatSync(fd).size;
    const chunk = Buffer.alloc(64 * 1024);
    for (let end = size; end > 0;) {
      const start = Math.max(0, end - chunk.length);
      const n = fs.readSync(fd, chunk, 0, end - start, start);
      const nl = chunk.subarray(0, n).lastIndexOf(0x0a);
      if (nl !== -1) return start + nl + 1;
      end = start;
    }
    return 0;
  } finally {
    fs.closeSync(fd);
  }
}

/** Kinds of journal records (INTERFACES.md: every signal, transition, approval, order and fill). */
export type JournalType =
  | 'signal.received'
  | 'signal.duplicate'
  | 'signal.dropped'
  | 'signal.proposed'
  | 'signal.context'
  | 'proposal.created'
  | 'proposal.explained'
  | 'proposal.transition'
  | 'proposal.finished'
  | 'approval.given'
  | 'approval.ignored'
  | 'approval.refused'
  | 'order.intent'
  | 'order.submitted'
  | 'order.partially_filled'
  | 'order.filled'
  | 'order.reconciled'
  | 'order.dry_run'
  | 'order.unknown'
  | 'proposal.recheck'
  | 'order.failed'
  | 'risk.breaker'
  | 'state.changed'
  | 'card.sent'
  | 'card.undelivered'
  | 'card.mended'
  | 'card.adopted'
  | 'card.skipped'
  | 'telegram.unauthorized'
  | 'telegram.command'
  | 'daily.summary'
  | 'service.started'
  | 'service.stopped'
  | 'signal.refused'
  | 'proposal.reverted'
  | 'storage.unavailable'
  | 'storage.recovered'
  | 'account.opened'
  | 'book.adjusted'
  | 'liquidation.pass'
  | 'liquidation.done';

/** A journal record: a type, a time and the ids it concerns. */
export interface JournalEntry {
  type: JournalType;
  at: string;
  signalId?: string;
  proposalId?: string;
  clientOrderId?: string;
  [key: string]: unknown;
}

/** Called with each record once it is durable, in the order the records were appended. */
export type JournalListener = (entry: JournalEntry) => void;

/** The trade log: `DATA_DIR/journal/YYYY-MM-DD.jsonl`. */
export class TradeLog {
  private readonly files: DailyJsonl;
  private readonly listeners: JournalListener[] = [];

  /** `redact` takes every configured secret out of each record before it is written. */
  constructor(io: StorageIo, journalDir: string, private readonly redact: Redact = (v) => v) {
    this.files = new DailyJsonl(io, journalDir);
  }

  /**
   * Appends a record; resolves once it is synced (rejects with a StorageError if it could not be
   * written). Records that acknowledge nothing may be left un-awaited: a failure reaches
   * StorageHealth either way.
   */
  append(entry: Omit<JournalEntry, 'at'> & { at?: string }): Promise<void> {
    const record = this.redact({ ...entry, at: entry.at ?? new Date().toISOString() }) as JournalEntry;
    const written = this.files.write(record);
    written.then(() => this.tell(record), () => undefined);
    return written;
  }

  /**
   * Observers of what the journal holds (metrics, the console's live stream, the vault): they see
   * a record only once it is durable, so nothing they show can be undone by a restart. A listener
   * that throws is cut off from that record only.
   */
  onDurable(listener: JournalListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  private tell(record: JournalEntry): void {
    for (const listener of this.listeners) {
      try {
        listener(record);
      } catch {
        // An observer's fault never reaches the writer that awaited this record.
      }
    }
  }

  /**
   * Whether a record of `type` naming `clientOrderId` exists in the given days' files. Used only
   * on recovery paths (an order found already final after a restart), so reading a day is fine.
   */
  hasOrderRecord(type: JournalType, clientOrderId: string, days: string[]): boolean {
    const needle = `"clientOrderId":${JSON.stringify(clientOrderId)}`;
    return [...new Set(days)].some((day) => this.files.read(day).some((r) => r['type'] === type && JSON.stringify(r).includes(needle)));
  }

  /** Records of one day (tests, audits). */
  read(day: string): JournalEntry[] {
    return this.files.read(day) as JournalEntry[];
  }

  close(): Promise<void> {
    return this.files.close();
  }
}
