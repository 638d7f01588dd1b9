/**
 * A fault-injecting `StorageIo`: the real file system (`NodeStorageIo`) with every write point
 * counted — open (every open is for writing), write, datasync, truncate, replaceFile, remove,
 * mkdir — and any of them made to fail with ENOSPC, EROFS or EIO: the Nth one, or every one from
 * the Nth on until `clear()`. An injected failure is reported to the observer and thrown as a
 * `StorageError`, exactly as `NodeStorageIo` does with a real errno error; points that are not
 * failed on purpose run on `NodeStorageIo` with the same observer (which refuses writes while the
 * observer reports a failure). Reads (readFile, list, size, read) and close are passed through
 * uncounted.
 *
 * Tests can also hold a write point before it runs (`hold`) to control how writes interleave,
 * and watch every point as it starts (`onWritePoint`, e.g. to copy the folder as a crash there
 * would leave it).
 */
import { StorageError, errnoOf } from '../../src/errors';
import { NodeStorageIo, type StorageFile, type StorageIo, type WriteObserver } from '../../src/persistence/storage-io';

export type FaultCode = 'ENOSPC' | 'EROFS' | 'EIO';
export const FAULT_CODES: readonly FaultCode[] = ['ENOSPC', 'EROFS', 'EIO'];

export type WritePointKind = 'open' | 'write' | 'datasync' | 'truncate' | 'replaceFile' | 'remove' | 'mkdir';

/** One write point as it was attempted. */
export interface WritePoint {
  /** 1-based position among every write point this io has seen. */
  n: number;
  kind: WritePointKind;
  file: string;
  /** The injected failure, or null when the point was passed to `NodeStorageIo`. */
  failed: FaultCode | null;
  /** True once the point finished (successfully or not). */
  done: boolean;
}

/**
 * What a failing write point leaves behind: nothing (default); for `write`, the first half of its
 * bytes (`partial`, a short write); or its whole effect although it reports failure (`done`: a
 * datasync or a folder sync that failed after the data reached the file).
 */
export type FaultEffect = 'none' | 'partial' | 'done';

export interface FaultOptions {
  /** Only points this accepts are failed (and count as "the Nth" for a one-shot fault). */
  match?: (point: Pick<WritePoint, 'n' | 'kind' | 'file'>) => boolean;
  effect?: FaultEffect;
}

interface Fault {
  code: FaultCode;
  from: number;
  sticky: boolean;
  match: (point: Pick<WritePoint, 'n' | 'kind' | 'file'>) => boolean;
  effect: FaultEffect;
}

interface Hold {
  match: (point: Pick<WritePoint, 'n' | 'kind' | 'file'>) => boolean;
  reached: (point: WritePoint) => void;
  released: Promise<void>;
}

/** A held write point: `reached` resolves when one arrives; it runs once `release()` is called. */
export interface HeldPoint {
  reached: Promise<WritePoint>;
  release(): void;
}

/** The error node's fs gives for `code` (what NodeStorageIo would catch). */
export function errnoError(code: FaultCode, syscall: string, file: string): NodeJS.ErrnoException {
  const text: Record<FaultCode, string> = { ENOSPC: 'no space left on device', EROFS: 'read-only file system', EIO: 'i/o error' };
  return Object.assign(new Error(`${code}: ${text[code]}, ${syscall} '${file}'`), { code, syscall, path: file });
}

export class FaultyIo implements StorageIo {
  private readonly inner: NodeStorageIo;
  private fault: Fault | null = null;
  private readonly holds: Hold[] = [];
  /** Every write point so far, in the order they started. */
  readonly points: WritePoint[] = [];
  /** Called as each write point starts (before it runs or fails). */
  onWritePoint: ((point: WritePoint) => void) | null = null;

  constructor(private readonly observer: WriteObserver = { writeFailed: () => undefined, lastFailure: null }) {
    this.inner = new NodeStorageIo(observer);
  }

  /** Number of write points so far. */
  get count(): number {
    return this.points.length;
  }

  /** Write points that were failed on purpose. */
  get failures(): WritePoint[] {
    return this.points.filter((p) => p.failed !== null);
  }

  /** Fails the `n`th write point (1-based, counted since this io was made) with `code`, once. */
  failAt(n: number, code: FaultCode, opts: FaultOptions = {}): void {
    this.fault = { code, from: n, sticky: false, match: opts.match ?? (() => true), effect: opts.effect ?? 'none' };
  }

  /** Fails the `n`th write point and every one after it until `clear()`. */
  failFrom(n: number, code: FaultCode, opts: FaultOptions = {}): void {
    this.fault = { code, from: n, sticky: true, match: opts.match ?? (() => true), effect: opts.effect ?? 'none' };
  }

  /** Fails the next write point (that `opts.match` accepts), once. */
  failNext(code: FaultCode, opts: FaultOptions = {}): void {
    this.failAt(this.count + 1, code, opts);
  }

  /** Fails every write point from the next one on until `clear()`. */
  failAll(code: FaultCode, opts: FaultOptions = {}): void {
    this.failFrom(this.count + 1, code, opts);
  }

  /** Storage works again. */
  clear(): void {
    this.fault = null;
  }

  /** Holds the next write point `match` accepts until `release()` (it still counts when it arrives). */
  hold(match: (point: Pick<WritePoint, 'n' | 'kind' | 'file'>) => boolean): HeldPoint {
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let reached!: (point: WritePoint) => void;
    const reachedP = new Promise<WritePoint>((resolve) => {
      reached = resolve;
    });
    this.holds.push({ match, reached, released });
    return { reached: reachedP, release };
  }

  async open(file: string): Promise<StorageFile> {
    const handle = await this.point('open', file, () => this.inner.open(file));
    return new FaultyFile(handle, this);
  }

  readFile(file: string): Promise<Buffer | undefined> {
    return this.inner.readFile(file);
  }

  replaceFile(file: string, data: Buffer | string[]): Promise<void> {
    return this.point('replaceFile', file, () => this.inner.replaceFile(file, data));
  }

  remove(file: string): Promise<void> {
    return this.point('remove', file, () => this.inner.remove(file));
  }

  list(dir: string): Promise<string[]> {
    return this.inner.list(dir);
  }

  mkdir(dir: string): Promise<void> {
    return this.point('mkdir', dir, () => this.inner.mkdir(dir));
  }

  /**
   * Counts one write point, waits while it is held, then runs it or fails it. `partial` is what
   * a short write does before failing (only `write` has one).
   */
  async point<T>(kind: WritePointKind, file: string, run: () => Promise<T>, partial?: () => Promise<unknown>): Promise<T> {
    const point: WritePoint = { n: this.points.length + 1, kind, file, failed: null, done: false };
    this.points.push(point);
    const fault = this.faultFor(point);
    point.failed = fault?.code ?? null;
    this.onWritePoint?.(point);
    const held = this.holds.findIndex((h) => h.match(point));
    if (held !== -1) {
      const [h] = this.holds.splice(held, 1);
      h!.reached(point);
      await h!.released;
    }
    try {
      if (fault === null) return await run();
      if (fault.effect === 'done') {
        // The operation happened; only its report is a failure (an opened file is closed again).
        const result = await run().catch(() => undefined);
        await (result as { close?: () => Promise<void> } | undefined)?.close?.();
      }
      else if (fault.effect === 'partial' && partial) await partial().catch(() => undefined);
      // As NodeStorageIo's failWrite: errno error → StorageError, told to the observer, thrown.
      const error = new StorageError(errnoOf(errnoError(fault.code, kind, file)), file);
      this.observer.writeFailed(error);
      throw error;
    } finally {
      point.done = true;
    }
  }

  private faultFor(point: WritePoint): Fault | null {
    const f = this.fault;
    if (!f || point.n < f.from || !f.match(point)) return null;
    if (!f.sticky) this.fault = null;
    return f;
  }
}

/** An open file whose write points go through `FaultyIo.point`. */
class FaultyFile implements StorageFile {
  constructor(private readonly inner: StorageFile, private readonly io: FaultyIo) {}

  get path(): string {
    return this.inner.path;
  }

  write(data: Buffer, position: number): Promise<void> {
    return this.io.point('write', this.path, () => this.inner.write(data, position), () => this.inner.write(data.subarray(0, Math.floor(data.length / 2)), position));
  }

  datasync(): Promise<void> {
    return this.io.point('datasync', this.path, () => this.inner.datasync());
  }

  truncate(size: number): Promise<void> {
    return this.io.point('truncate', this.path, () => this.inner.truncate(size));
  }

  size(): Promise<number> {
    return this.inner.size();
  }


  close(): Promise<void> {
    return this.inner.close();
  }
}
