/**
 * A durable key → JSON-value map: a write-ahead log plus checkpoints. A commit appends one
 * line (a CRC and the changed keys' whole values) to the active log segment and is applied in
 * memory only once the group-commit sync covering it succeeded, so memory never runs ahead of
 * disk. When the log has grown past the last checkpoint's size, the live map is written as a
 * JSON document (temp file, fsync, rename, fsync of the folder) and older segments are removed:
 * the cost of a commit does not depend on how many keys are stored.
 *
 * Files in `dir`: `checkpoint.json` (`{version, store, segment, entries}`, readable by lowdb)
 * and `wal-NNNNNNNN.log`. Restore = checkpoint + every segment from `segment` on, in order; a
 * torn last record (a crash mid-write) is cut and reported; any other damage stops start-up with
 * a message naming the file.
 */
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { InvariantError } from '../errors';
import { AppendFile } from './append-file';
import type { StorageIo } from './storage-io';

export type Change<V> = { key: string; value: V } | { key: string; remove: true };

export interface RestoreReport {
  /** Entries read from the checkpoint. */
  checkpointEntries: number;
  /** Log records replayed on top of it. */
  replayedRecords: number;
  /** Bytes of a torn last record that were cut, and the file they were in. */
  tornBytes: number;
  tornFile?: string;
  /** Entries imported by `migrate` on the first start after an upgrade. */
  migrated?: number;
}

export interface LogStoreOptions<V> {
  /** Name recorded in the checkpoint (a checkpoint of another store is refused). */
  name: string;
  /** Smallest log size that triggers a checkpoint (default 8 MiB). */
  checkpointMinBytes?: number;
  /** Called when the folder holds no checkpoint and no log: entries to import from an older layout. */
  migrate?: () => Promise<Array<[string, V]> | undefined>;
}

export interface LogStoreStats {
  commits: number;
  syncs: number;
  checkpoints: number;
}

const CHECKPOINT = 'checkpoint.json';
export const SEGMENT = /^wal-(\d{8})\.log$/;
export const segmentName = (n: number) => `wal-${String(n).padStart(8, '0')}.log`;

interface CheckpointFile<V> {
  version: 1;
  store: string;
  segment: number;
  entries: Record<string, V>;
}

/** `crc32hex json\n`: the CRC covers the JSON bytes. */
function encodeRecord(changes: Array<Change<unknown>>): Buffer {
  const json = JSON.stringify({ c: changes.map((c) => ('remove' in c ? { k: c.key, d: 1 } : { k: c.key, v: c.value })) });
  const body = Buffer.from(json);
  return Buffer.concat([Buffer.from(`${crc32(body).toString(16).padStart(8, '0')} `), body, Buffer.from('\n')]);
}

type Decoded = Array<{ k: string; v?: unknown; d?: 1 }>;

function decodeLine(line: Buffer): Decoded | undefined {
  if (line.length < 10 || line[8] !== 0x20) return undefined;
  const body = line.subarray(9);
  if (crc32(body).toString(16).padStart(8, '0') !== line.subarray(0, 8).toString()) return undefined;
  try {
    const parsed = JSON.parse(body.toString()) as { c?: Decoded };
    return Array.isArray(parsed.c) ? parsed.c : undefined;
  } catch {
    return undefined;
  }
}

export class LogStore<V> {
  private readonly map = new Map<string, V>();
  private checkpointing: Promise<void> | null = null;
  /** Commits made while the active segment is being switched: written once it is done. */
  private held: Array<{ record: Buffer; changes: Array<Change<V>>; resolve: () => void; reject: (err: unknown) => void }> | null = null;
  private bytesSinceCheckpoint = 0;
  private lastCheckpointBytes = 0;
  private closed = false;
  private checkpoints = 0;
  private commits = 0;
  private retiredSyncs = 0;

  private constructor(
    private readonly io: StorageIo,
    private readonly dir: string,
    private readonly opts: LogStoreOptions<V>,
    private log: AppendFile,
    private segment: number,
  ) {}

  /** Opens (or creates) the store in `dir` and restores it. */
  static async open<V>(io: StorageIo, dir: string, opts: LogStoreOptions<V>): Promise<{ store: LogStore<V>; report: RestoreReport }> {
    await io.mkdir(dir);
    const names = await io.list(dir);
    for (const n of names) if (n.endsWith('.tmp')) await io.remove(path.join(dir, n));
    const report: RestoreReport = { checkpointEntries: 0, replayedRecords: 0, tornBytes: 0 };
    const entries = new Map<string, V>();
    const checkpointFile = path.join(dir, CHECKPOINT);
    let first = 1;
    const raw = await io.readFile(checkpointFile);
    if (raw) {
      const doc = parseCheckpoint<V>(raw, checkpointFile, opts.name);
      first = doc.segment;
      for (const [k, v] of Object.entries(doc.entries)) entries.set(k, v);
      report.checkpointEntries = entries.size;
    }
    const segments = names.map((n) => SEGMENT.exec(n)).filter((m): m is RegExpExecArray => m !== null).map((m) => Number(m[1])).sort((a, b) => a - b);
    // Segments before the checkpoint's are already in it (a crash right after a checkpoint).
    for (const n of segments.filter((s) => s < first)) await io.remove(path.join(dir, segmentName(n)));
    const live = segments.filter((s) => s >= first);
    let validLength: number | undefined;
    const buffers = await Promise.all(live.map(async (n) => (await io.readFile(path.join(dir, segmentName(n)))) ?? Buffer.alloc(0)));
    for (const [i, n] of live.entries()) {
      const file = path.join(dir, segmentName(n));
      const buf = buffers[i]!;
      const replay = replaySegment(buf, entries);
      report.replayedRecords += replay.records;
      if (replay.validLength < buf.length) {
        // Only the last record written can be torn: later segments, if any, must be empty.
        const laterWritten = buffers.slice(i + 1).some((b) => b.length > 0);
        if (laterWritten || !replay.tornAtEnd) {
          throw new InvariantError('corrupt_store', `${file} is damaged at byte ${replay.validLength} (not a torn last record): restore DATA_DIR from a backup, or move ${dir} aside to start without its contents`, { file, offset: replay.validLength });
        }
        report.tornBytes = buf.length - replay.validLength;
        report.tornFile = file;
        validLength = replay.validLength;
        // Empty segments after it (a switch cut short): appends go on in the torn one.
        for (const later of live.splice(i + 1)) await io.remove(path.join(dir, segmentName(later)));
        break;
      }
    }
    if (!raw && live.length === 0 && opts.migrate) {
      const imported = await opts.migrate();
      if (imported) {
        for (const [k, v] of imported) entries.set(k, v);
        report.migrated = imported.length;
        await writeCheckpoint(io, checkpointFile, opts.name, 1, [...entries]);
      }
    }
    const segment = live.length > 0 ? live[live.length - 1]! : first;
    const log = await AppendFile.open(io, path.join(dir, segmentName(segment)), validLength !== undefined ? { validLength } : {});
    const store = new LogStore<V>(io, dir, opts, log, segment);
    for (const [k, v] of entries) store.map.set(k, v);
    store.bytesSinceCheckpoint = log.size;
    // The next checkpoint waits until the log outgrows the one just read, as in a running process.
    store.lastCheckpointBytes = raw?.length ?? 0;
    return { store, report };
  }

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    return this.map.get(key);
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  /** Committed entries in insertion order. Values are shared: never mutate them. */
  entries(): IterableIterator<[string, V]> {
    return this.map.entries();
  }

  values(): IterableIterator<V> {
    return this.map.values();
  }

  get stats(): LogStoreStats {
    return { commits: this.commits, syncs: this.retiredSyncs + this.log.stats.syncs, checkpoints: this.checkpoints };
  }

  /**
   * Writes `changes` as one atomic record; resolves once it is synced and applied in memory.
   * Rejects with a `StorageError` (nothing applied) when the write fails.
   */
  commit(changes: Array<Change<V>>): Promise<void> {
    if (changes.length === 0) return Promise.resolve();
    const record = encodeRecord(changes);
    if (this.held) {
      // A segment switch is under way: nothing is written until the old segment is done.
      return new Promise<void>((resolve, reject) => this.held!.push({ record, changes, resolve, reject }));
    }
    return this.append(record, changes);
  }

  private append(record: Buffer, changes: Array<Change<V>>): Promise<void> {
    const receipt = this.log.append(record, () => {
      for (const c of changes) {
        if ('remove' in c) this.map.delete(c.key);
        else this.map.set(c.key, c.value);
      }
      this.commits += 1;
      this.bytesSinceCheckpoint += record.length;
      if (!this.closed && this.checkpointing === null && this.bytesSinceCheckpoint > Math.max(this.opts.checkpointMinBytes ?? 8 * 1024 * 1024, this.lastCheckpointBytes)) {
        void this.checkpoint().catch(() => undefined); // retried at the next trigger; health has the failure
      }
    });
    return receipt.durable;
  }

  put(key: string, value: V): Promise<void> {
    return this.commit([{ key, value }]);
  }

  remove(key: string): Promise<void> {
    return this.commit([{ key, remove: true }]);
  }

  /** Resolves once every commit made so far is synced (or refused). */
  flush(): Promise<void> {
    return this.log.drain();
  }

  /**
   * Writes the live map as the checkpoint and drops the log segments it covers. New commits go
   * to a fresh segment meanwhile; records are whole values, so replaying that segment on top of
   * a checkpoint that already holds some of them gives the same map.
   */
  checkpoint(): Promise<void> {
    if (this.checkpointing) return this.checkpointing;
    this.checkpointing = this.runCheckpoint().finally(() => {
      this.checkpointing = null;
    });
    return this.checkpointing;
  }

  /** Checkpoints (so the next start reads one file) and closes. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.checkpointing?.catch(() => undefined);
    await this.checkpoint().catch(() => undefined); // the log still holds everything
    this.closed = true;
    await this.log.close();
  }

  private async runCheckpoint(): Promise<void> {
    await this.switchSegment();
    const captured = [...this.map];
    const bytes = await writeCheckpoint(this.io, path.join(this.dir, CHECKPOINT), this.opts.name, this.segment, captured);
    this.lastCheckpointBytes = bytes;
    this.checkpoints += 1;
    for (const n of await this.io.list(this.dir)) {
      const m = SEGMENT.exec(n);
      if (m && Number(m[1]) < this.segment) await this.io.remove(path.join(this.dir, n));
    }
  }

  /**
   * Moves appends to a new segment. Commits made meanwhile are held back until the old segment
   * has written (or refused) everything queued and holds nothing refused: write order, the order
   * in which commits apply in memory, and replay order stay one order.
   */
  private async switchSegment(): Promise<void> {
    this.held = [];
    let next: AppendFile | undefined;
    try {
      await this.log.drain();
      await this.log.cut();
      next = await AppendFile.open(this.io, path.join(this.dir, segmentName(this.segment + 1)));
    } finally {
      const held = this.held;
      this.held = null;
      if (next) {
        const old = this.log;
        this.log = next;
        this.segment += 1;
        this.bytesSinceCheckpoint = 0;
        await old.close();
        this.retiredSyncs += old.stats.syncs;
      }
      for (const h of held) this.append(h.record, h.changes).then(h.resolve, h.reject);
    }
  }
}

/** A checkpoint document, checked; `name` undefined accepts the checkpoint of any store. */
export function parseCheckpoint<V>(raw: Buffer, file: string, name: string | undefined): CheckpointFile<V> {
  let doc: CheckpointFile<V>;
  try {
    doc = JSON.parse(raw.toString()) as CheckpointFile<V>;
  } catch (err) {
    throw new InvariantError('corrupt_store', `${file} is not valid JSON (${(err as Error).message}): restore it from a backup of DATA_DIR, or move the folder aside to start without its contents`, { file });
  }
  if (doc?.version !== 1 || (name !== undefined && doc.store !== name) || !Number.isInteger(doc.segment) || typeof doc.entries !== 'object' || doc.entries === null) {
    throw new InvariantError('corrupt_store', `${file} is not a checkpoint of the ${name ?? 'a'} store (version 1): restore it from a backup of DATA_DIR`, { file });
  }
  return doc;
}

/** Applies the complete, intact records of one segment; reports where the intact part ends. */
export function replaySegment<V>(buf: Buffer, into: Map<string, V>): { records: number; validLength: number; tornAtEnd: boolean } {
  let pos = 0;
  let records = 0;
  while (pos < buf.length) {
    const nl = buf.indexOf(0x0a, pos);
    if (nl === -1) return { records, validLength: pos, tornAtEnd: true };
    const changes = decodeLine(buf.subarray(pos, nl));
    // A bad line is a torn write only when nothing intact follows it.
    if (!changes) return { records, validLength: pos, tornAtEnd: !hasIntactLineAfter(buf, nl + 1) };
    for (const c of changes) {
      if (c.d === 1) into.delete(c.k);
      else into.set(c.k, c.v as V);
    }
    records += 1;
    pos = nl + 1;
  }
  return { records, validLength: pos, tornAtEnd: true };
}

function hasIntactLineAfter(buf: Buffer, from: number): boolean {
  let pos = from;
  while (pos < buf.length) {
    const nl = buf.indexOf(0x0a, pos);
    if (nl === -1) return false;
    if (decodeLine(buf.subarray(pos, nl))) return true;
    pos = nl + 1;
  }
  return false;
}

/** Writes a checkpoint document in chunks, yielding between them so the event loop keeps serving. */
async function writeCheckpoint<V>(io: StorageIo, file: string, name: string, segment: number, entries: Array<[string, V]>): Promise<number> {
  const chunks: string[] = [`{"version":1,"store":${JSON.stringify(name)},"segment":${segment},"entries":{`];
  let bytes = chunks[0]!.length;
  const CHUNK = 500;
  for (let i = 0; i < entries.length; i += CHUNK) {
    const part = entries.slice(i, i + CHUNK).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',');
    const text = i === 0 ? part : `,${part}`;
    chunks.push(text);
    bytes += text.length;
    if (i + CHUNK < entries.length) await new Promise((resolve) => setImmediate(resolve));
  }
  chunks.push('}}\n');
  await io.replaceFile(file, chunks);
  return bytes + 3;
}
