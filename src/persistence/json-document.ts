/**
 * One lowdb-backed JSON document with coalesced writes: changes are applied in memory at once;
 * a write starts on the next turn of the event loop when none is in flight, and every change
 * made while a write is in flight goes into the one after it (temp file + rename, by lowdb).
 * Callers that need durability await `flush()`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Low } from 'lowdb';
import { DataFile } from 'lowdb/node';
import { InvariantError } from '../errors';

export class JsonDocument<T extends object> {
  readonly file: string;
  private readonly db: Low<T>;
  private scheduled: Promise<void> | null = null;
  private writing: Promise<void> | null = null;
  private writes = 0;

  private constructor(file: string, db: Low<T>) {
    this.file = file;
    this.db = db;
  }

  /** Opens (or creates with `initial`) the document at `file`. Corrupt JSON stops start-up. */
  static async open<T extends object>(file: string, initial: T): Promise<JsonDocument<T>> {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const adapter = new DataFile<T>(file, { parse: JSON.parse, stringify: (data) => JSON.stringify(data) });
    const db = new Low<T>(adapter, initial);
    try {
      await db.read();
    } catch (err) {
      throw new InvariantError('corrupt_store', `cannot read ${file}: ${(err as Error).message}`, { file });
    }
    return new JsonDocument(file, db);
  }

  /** The in-memory data (the source of truth between writes). */
  get data(): T {
    return this.db.data;
  }

  /** Number of physical writes so far (benchmarks). */
  get writeCount(): number {
    return this.writes;
  }

  /** Applies `change` in memory and schedules a write; resolves once it is on disk. */
  update(change: (data: T) => void): Promise<void> {
    change(this.db.data);
    return this.schedule();
  }

  /** Resolves once every change made so far is on disk. */
  flush(): Promise<void> {
    if (this.scheduled) return this.scheduled;
    return this.writing ?? Promise.resolve();
  }

  private schedule(): Promise<void> {
    if (this.scheduled) return this.scheduled;
    this.scheduled = (async () => {
      // Gather the changes of this turn into one write.
      await new Promise((resolve) => setImmediate(resolve));
      while (this.writing) await this.writing.catch(() => undefined);
      // From here on, new changes belong to the next write.
      this.scheduled = null;
      this.writes += 1;
      const write = this.db.write();
      this.writing = write;
      try {
        await write;
      } finally {
        if (this.writing === write) this.writing = null;
      }
    })();
    return this.scheduled;
  }
}
