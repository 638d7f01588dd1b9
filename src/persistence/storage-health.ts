/**
 * Whether DATA_DIR can be written. Every write point reports its failures here (see
 * `NodeStorageIo`): the first one turns the service unavailable (`/readyz` 503, an alert). Only a
 * probe brings it back: every `probeIntervalMs` it writes and syncs `PROBE_BYTES` (more than any
 * one record), so a disk that has a few bytes free again after a failed write was cut does not
 * flap between ready and not.
 */
import path from 'node:path';
import type { StorageError } from '../errors';
import { NodeStorageIo, type SyncKind, type WriteObserver } from './storage-io';

/** Size of the probe write: room for a burst of records, not just one small file. */
export const PROBE_BYTES = 256 * 1024;

export type StorageHealthChange =
  | { kind: 'unavailable'; cause: string; file: string; at: string }
  | { kind: 'recovered'; downSeconds: number; since: string; cause: string; file: string; at: string };

export class StorageHealth implements WriteObserver {
  private failure: StorageError | null = null;
  private failedAt = 0;
  private probeTimer: NodeJS.Timeout | null = null;
  private readonly listeners: Array<(change: StorageHealthChange) => void> = [];
  private readonly syncListeners: Array<(kind: SyncKind, seconds: number) => void> = [];

  private readonly probeWrite: () => Promise<void>;
  private readonly probeIntervalMs: number;
  private readonly now: () => number;

  /** `probe` defaults to a small fsync'd file `DATA_DIR/.storage-probe` written past any observer. */
  constructor(dataDir: string, opts: { probe?: () => Promise<void>; probeIntervalMs?: number; now?: () => number } = {}) {
    const probeFile = path.join(dataDir, '.storage-probe');
    this.probeWrite = opts.probe ?? (async () => {
      const io = new NodeStorageIo();
      await io.replaceFile(probeFile, Buffer.alloc(PROBE_BYTES));
      await io.remove(probeFile);
    });
    this.probeIntervalMs = opts.probeIntervalMs ?? 1000;
    this.now = opts.now ?? Date.now;
  }

  /** True while every recent write succeeded. */
  get ok(): boolean {
    return this.failure === null;
  }

  /** The failure that made storage unavailable, if it is. */
  get lastFailure(): StorageError | null {
    return this.failure;
  }

  onChange(listener: (change: StorageHealthChange) => void): void {
    this.listeners.push(listener);
  }

  /** Listens to every durable write that succeeded, with how long it took (metrics). */
  onSync(listener: (kind: SyncKind, seconds: number) => void): void {
    this.syncListeners.push(listener);
  }

  synced(kind: SyncKind, seconds: number): void {
    for (const l of this.syncListeners) {
      try {
        l(kind, seconds);
      } catch {
        // the write succeeded: an observer's fault must not turn it into a failure
      }
    }
  }

  writeFailed(error: StorageError): void {
    if (this.failure) return;
    this.failure = error;
    this.failedAt = this.now();
    this.emit({ kind: 'unavailable', cause: error.errno, file: error.file, at: new Date(this.failedAt).toISOString() });
    this.scheduleProbe();
  }

  private recovered(): void {
    const failure = this.failure;
    if (!failure) return;
    this.failure = null;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = null;
    this.emit({
      kind: 'recovered', downSeconds: Math.round((this.now() - this.failedAt) / 1000), since: new Date(this.failedAt).toISOString(),
      cause: failure.errno, file: failure.file, at: new Date(this.now()).toISOString(),
    });
  }

  /** Stops probing (shutdown). */
  close(): void {
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = null;
  }

  private scheduleProbe(): void {
    if (this.probeTimer) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = null;
      void this.probe();
    }, this.probeIntervalMs);
    this.probeTimer.unref();
  }

  /** A small durable write: when it succeeds, storage is back. */
  private async probe(): Promise<void> {
    if (!this.failure) return;
    try {
      await this.probeWrite();
      this.recovered();
    } catch {
      this.scheduleProbe();
    }
  }

  private emit(change: StorageHealthChange): void {
    for (const l of this.listeners) {
      try {
        l(change);
      } catch {
        // a listener's failure must not hide the storage state from the others
      }
    }
  }
}
