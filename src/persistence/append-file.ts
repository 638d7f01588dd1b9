/**
 * An append-only file with group commit: records appended while a write is in flight are
 * written together and covered by one fdatasync, and each record's promise resolves only once
 * that sync succeeded. A failed write rejects its batch and everything queued behind it, and
 * the bytes it may have left past the last synced record are cut before the next write, so the
 * file never holds a record that was refused.
 */
import type { StorageFile, StorageIo } from './storage-io';

/** Where an appended record lands, and when it is durable. */
export interface AppendReceipt {
  offset: number;
  length: number;
  durable: Promise<void>;
}

type Entry =
  | { kind: 'record'; data: Buffer; onDurable: (() => void) | undefined; resolve: () => void; reject: (err: unknown) => void }
  | { kind: 'step'; run: () => Promise<void> };

export interface AppendFileStats {
  records: number;
  syncs: number;
}

export class AppendFile {
  private queue: Entry[] = [];
  private writing = false;
  private closed = false;
  /** Bytes past `durableEnd` may be left by a failed write: cut them before the next one. */
  private dirty = false;
  /** End of the synced records. */
  private durableEnd: number;
  /** End including queued records (offsets of new records). */
  private end: number;
  readonly stats: AppendFileStats = { records: 0, syncs: 0 };

  private constructor(private readonly file: StorageFile, size: number) {
    this.durableEnd = size;
    this.end = size;
  }

  /**
   * Opens `file` for appending. With `validLength`, anything after it (a torn record found by the
   * caller) is cut and synced first.
   */
  static async open(io: StorageIo, path: string, opts: { validLength?: number } = {}): Promise<AppendFile> {
    const file = await io.open(path);
    let size = await file.size();
    if (opts.validLength !== undefined && opts.validLength < size) {
      await file.truncate(opts.validLength);
      await file.datasync();
      size = opts.validLength;
    }
    return new AppendFile(file, size);
  }

  get path(): string {
    return this.file.path;
  }

  /** Bytes synced so far. */
  get size(): number {
    return this.durableEnd;
  }

  /**
   * Queues `data`; `onDurable` runs synchronously right after the sync that covers it, in append
   * order, before any later step (the place to apply the change in memory).
   */
  append(data: Buffer | string, onDurable?: () => void): AppendReceipt {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    const offset = this.end;
    this.end += buf.length;
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const durable = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Callers that only log a failure (or learn of it through StorageHealth) need not await.
    durable.catch(() => undefined);
    if (this.closed) {
      reject(new Error(`${this.file.path} is closed`));
      return { offset, length: buf.length, durable };
    }
    this.queue.push({ kind: 'record', data: buf, onDurable, resolve, reject });
    this.kick();
    return { offset, length: buf.length, durable };
  }

  /** Runs `fn` between two batches: nothing is written while it runs. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ kind: 'step', run: () => fn().then(resolve, reject) });
      this.kick();
    });
  }

  /** Resolves once everything queued so far has been written (or refused). */
  drain(): Promise<void> {
    return this.exclusive(async () => undefined);
  }

  /** Cuts what a refused write left (if anything); rejects if the file cannot be cut now. */
  cut(): Promise<void> {
    return this.exclusive(() => this.cutNow());
  }

  /** Writes what is queued, cuts what a refused write left (best effort), and closes. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.drain();
    await this.cut().catch(() => undefined);
    this.closed = true;
    await this.file.close();
  }

  private async cutNow(): Promise<void> {
    if (!this.dirty) return;
    await this.file.truncate(this.durableEnd);
    await this.file.datasync();
    this.dirty = false;
  }

  private kick(): void {
    if (this.writing) return;
    this.writing = true;
    // Gather what this turn of the event loop appends into one write and one sync.
    setImmediate(() => void this.run());
  }

  private async run(): Promise<void> {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (head.kind === 'step') {
        this.queue.shift();
        await head.run();
        continue;
      }
      const batch: Array<Extract<Entry, { kind: 'record' }>> = [];
      while (this.queue.length > 0 && this.queue[0]!.kind === 'record') batch.push(this.queue.shift() as Extract<Entry, { kind: 'record' }>);
      await this.writeBatch(batch);
    }
    this.writing = false;
  }

  private async writeBatch(batch: Array<Extract<Entry, { kind: 'record' }>>): Promise<void> {
    const buf = batch.length === 1 ? batch[0]!.data : Buffer.concat(batch.map((e) => e.data));
    try {
      await this.cutNow();
      await this.file.write(buf, this.durableEnd);
      await this.file.datasync();
    } catch (err) {
      // Cut what the failed write may have left at once, so a crash now cannot revive it.
      this.dirty = true;
      await this.cutNow().catch(() => undefined);
      // Records queued behind a refused one may build on it: refuse them too.
      const behind = this.queue.filter((e): e is Extract<Entry, { kind: 'record' }> => e.kind === 'record');
      this.queue = this.queue.filter((e) => e.kind === 'step');
      this.end = this.durableEnd;
      for (const e of [...batch, ...behind]) e.reject(err);
      return;
    }
    this.durableEnd += buf.length;
    this.stats.records += batch.length;
    this.stats.syncs += 1;
    for (const e of batch) e.onDurable?.();
    for (const e of batch) e.resolve();
  }
}

