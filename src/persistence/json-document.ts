/**
 * A small lowdb document (runtime state, Telegram records) written durably: each write replaces
 * the file through a synced temp file and rename, and a change is acknowledged only once that
 * write succeeded. Changes made while a write is in flight go into the next one. When a write
 * fails, the document rolls back to what is on disk, so memory never stays ahead of it.
 */
import { Low, type Adapter } from 'lowdb';
import { InvariantError } from '../errors';
import type { StorageIo } from './storage-io';

/** lowdb adapter over the storage port: JSON text, durable replace. */
class DurableJsonAdapter<T> implements Adapter<T> {
  /** The text of the last successful read or write: what is on disk. */
  lastDurable: string | null = null;

  constructor(private readonly io: StorageIo, readonly file: string) {}

  async read(): Promise<T | null> {
    const raw = await this.io.readFile(this.file);
    if (!raw) return null;
    const text = raw.toString();
    try {
      const data = JSON.parse(text) as T;
      this.lastDurable = text;
      return data;
    } catch (err) {
      throw new InvariantError('corrupt_store', `${this.file} is not valid JSON (${(err as Error).message}): restore it from a backup of DATA_DIR, or move it aside to start with defaults`, { file: this.file });
    }
  }

  async write(data: T): Promise<void> {
    const text = JSON.stringify(data);
    await this.io.replaceFile(this.file, Buffer.from(text));
    this.lastDurable = text;
  }
}

export class JsonDocument<T extends object> {
  private scheduled: Promise<void> | null = null;
  private writing: Promise<void> | null = null;
  private writes = 0;
  /** Bumped by each rollback: changes scheduled before it were rolled back with it. */
  private generation = 0;
  private rollbackError: unknown = null;

  private constructor(private readonly db: Low<T>, private readonly adapter: DurableJsonAdapter<T>) {}

  /** Opens (or creates with `initial`) the document at `file`. Corrupt JSON stops start-up naming the file. */
  static async open<T extends object>(io: StorageIo, file: string, initial: T): Promise<JsonDocument<T>> {
    const adapter = new DurableJsonAdapter<T>(io, file);
    const db = new Low<T>(adapter, initial);
    await db.read();
    // A missing file restarts as `initial`: that is what a rollback returns to.
    adapter.lastDurable ??= JSON.stringify(db.data);
    return new JsonDocument(db, adapter);
  }

  get file(): string {
    return this.adapter.file;
  }

  /** The in-memory data: what is on disk plus changes whose write is under way. */
  get data(): T {
    return this.db.data;
  }

  /** Number of physical writes so far (benchmarks). */
  get writeCount(): number {
    return this.writes;
  }

  /**
   * Applies `change` and writes; resolves once it is on disk. If the write fails, the data rolls
   * back to the last durable version and the promise rejects with a `StorageError`.
   */
  update(change: (data: T) => void): Promise<void> {
    change(this.db.data);
    return this.schedule();
  }

  /** Resolves once every change made so far is on disk (rejects if its write failed). */
  flush(): Promise<void> {
    if (this.scheduled) return this.scheduled;
    return this.writing ?? Promise.resolve();
  }

  private schedule(): Promise<void> {
    if (this.scheduled) return this.scheduled;
    const generation = this.generation;
    const slot: { run?: Promise<void> } = {};
    const run = (async () => {
      // Gather the changes of this turn into one write.
      await new Promise((resolve) => setImmediate(resolve));
      while (this.writing) await this.writing.catch(() => undefined);
      // From here on, new changes belong to the next write.
      if (this.scheduled === slot.run) this.scheduled = null;
      if (generation !== this.generation) throw this.rollbackError;
      this.writes += 1;
      const write = this.db.write();
      this.writing = write;
      try {
        await write;
      } catch (err) {
        // Back to what is on disk: every change not yet written is refused with this one.
        this.generation += 1;
        this.rollbackError = err;
        this.db.data = JSON.parse(this.adapter.lastDurable!) as T;
        throw err;
      } finally {
        if (this.writing === write) this.writing = null;
      }
    })();
    slot.run = run;
    this.scheduled = run;
    run.catch(() => undefined);
    return run;
  }
}
