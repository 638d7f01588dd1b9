/**
 * The file operations the storage engine uses, behind one small port: the product runs on
 * `NodeStorageIo`; tests wrap it to fail any write point with ENOSPC, EROFS or EIO. Every write
 * point reports its outcome to a `StorageHealth`, so one place knows whether DATA_DIR is writable.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { StorageError, errnoOf } from '../errors';

/** An open file that is only ever appended to at known offsets. */
export interface StorageFile {
  readonly path: string;
  /** Writes every byte of `data` at `position` (or throws). */
  write(data: Buffer, position: number): Promise<void>;
  /** fdatasync: what was written is on stable storage when this resolves. */
  datasync(): Promise<void>;
  truncate(size: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

export interface StorageIo {
  /** Opens `file` for reading and writing, creating it (and its folder entry, synced) when missing. */
  open(file: string): Promise<StorageFile>;
  /** The whole file, or undefined when it does not exist. */
  readFile(file: string): Promise<Buffer | undefined>;
  /** Replaces `file` atomically and durably: temp file, fsync, rename, fsync of the folder. */
  replaceFile(file: string, data: Buffer | string[]): Promise<void>;
  /** Removes a file (missing is fine) and syncs the folder. */
  remove(file: string): Promise<void>;
  /** File names in `dir` (empty when it does not exist). */
  list(dir: string): Promise<string[]>;
  mkdir(dir: string): Promise<void>;
}

/** A durable write: one fdatasync (a group commit), or a whole file replaced (temp, fsync, rename, folder fsync). */
export type SyncKind = 'datasync' | 'replace';

/** Where failed writes are reported (see `StorageHealth`), and how long durable ones took. */
export interface WriteObserver {
  writeFailed(error: StorageError): void;
  /** While storage is known to be failing, the failure: writes are refused at once. */
  readonly lastFailure: StorageError | null;
  /** A durable write succeeded after `seconds` (metrics). */
  synced?(kind: SyncKind, seconds: number): void;
}

const NO_OBSERVER: WriteObserver = { writeFailed: () => undefined, lastFailure: null };

/**
 * While storage is failing nothing new is written, not even what might fit: an answer must not
 * depend on which file a request happens to touch. The probe decides when writing resumes.
 */
function refuseWhileFailing(observer: WriteObserver): void {
  if (observer.lastFailure) throw observer.lastFailure;
}

/** Turns a failed write into a `StorageError`, tells the observer, and throws it. */
function failWrite(observer: WriteObserver, err: unknown, file: string): never {
  const error = err instanceof StorageError ? err : new StorageError(errnoOf(err), file);
  observer.writeFailed(error);
  throw error;
}

/**
 * Creates `dir` (and missing parents) so that the folders themselves survive a power loss: each
 * created level's parent is synced. For start-up, where synchronous calls are fine.
 */
export function makeDurableDirSync(dir: string): void {
  const missing: string[] = [];
  for (let d = path.resolve(dir); !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d);
  for (const d of missing) {
    fs.mkdirSync(d, { recursive: true });
    const parent = fs.openSync(path.dirname(d), 'r');
    try {
      fs.fsyncSync(parent);
    } finally {
      fs.closeSync(parent);
    }
  }
}

/**
 * Replaces `file` durably (temp file, fsync, rename, fsync of the folder) with synchronous calls:
 * for start-up and one-time migrations, never for a hot path.
 */
export function replaceFileSync(file: string, text: string, mode = 0o644): void {
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w', mode);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  const dir = fs.openSync(path.dirname(file), 'r');
  try {
    fs.fsyncSync(dir);
  } finally {
    fs.closeSync(dir);
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

class NodeFile implements StorageFile {
  constructor(readonly path: string, private readonly handle: fsp.FileHandle, private readonly observer: WriteObserver) {}

  async write(data: Buffer, position: number): Promise<void> {
    refuseWhileFailing(this.observer);
    try {
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await this.handle.write(data, done, data.length - done, position + done);
        if (bytesWritten === 0) throw Object.assign(new Error('no progress writing'), { code: 'EIO' });
        done += bytesWritten;
      }
    } catch (err) {
      failWrite(this.observer, err, this.path);
    }
  }

  async datasync(): Promise<void> {
    // Timed per sync, not per record: a group commit's one sync covers every record queued with it.
    const started = performance.now();
    try {
      await this.handle.datasync();
    } catch (err) {
      failWrite(this.observer, err, this.path);
    }
    this.observer.synced?.('datasync', (performance.now() - started) / 1000);
  }

  async truncate(size: number): Promise<void> {
    try {
      await this.handle.truncate(size);
    } catch (err) {
      failWrite(this.observer, err, this.path);
    }
  }

  async size(): Promise<number> {
    return (await this.handle.stat()).size;
  }


  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}

/** The real file system. */
export class NodeStorageIo implements StorageIo {
  constructor(private readonly observer: WriteObserver = NO_OBSERVER) {}

  async open(file: string): Promise<StorageFile> {
    refuseWhileFailing(this.observer);
    const existed = fs.existsSync(file);
    let handle: fsp.FileHandle;
    try {
      // Never truncating: two opens of one file (a writer closing, a new one opening) keep its bytes.
      handle = await fsp.open(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
      // A new file's name must survive a power loss too, or its synced records vanish with it.
      if (!existed) await syncDir(path.dirname(file));
    } catch (err) {
      failWrite(this.observer, err, file);
    }
    return new NodeFile(file, handle, this.observer);
  }

  async readFile(file: string): Promise<Buffer | undefined> {
    try {
      return await fsp.readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async replaceFile(file: string, data: Buffer | string[]): Promise<void> {
    refuseWhileFailing(this.observer);
    const tmp = `${file}.tmp`;
    const started = performance.now();
    try {
      const handle = await fsp.open(tmp, 'w');
      try {
        if (Buffer.isBuffer(data)) await handle.writeFile(data);
        else for (const chunk of data) await handle.write(chunk);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fsp.rename(tmp, file);
      await syncDir(path.dirname(file));
    } catch (err) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      failWrite(this.observer, err, file);
    }
    this.observer.synced?.('replace', (performance.now() - started) / 1000);
  }

  async remove(file: string): Promise<void> {
    try {
      await fsp.rm(file, { force: true });
      await syncDir(path.dirname(file));
    } catch (err) {
      failWrite(this.observer, err, file);
    }
  }

  async list(dir: string): Promise<string[]> {
    try {
      return await fsp.readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  async mkdir(dir: string): Promise<void> {
    try {
      makeDurableDirSync(dir);
    } catch (err) {
      failWrite(this.observer, err, dir);
    }
  }
}
