/**
 * A read-only view of a `LogStore` folder (checkpoint + write-ahead log), for tools and tests
 * that look at what a running, stopped or killed service has on disk (`npm run ledger`). Never
 * writes, never takes the DATA_DIR lock: a live process may own the folder. A torn or unsynced
 * last record is ignored, as restore would cut it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { InvariantError } from '../errors';

/**
 * The map a `LogStore` in `dir` would restore now (an empty map when the folder does not exist).
 * Throws `InvariantError corrupt_store` when `checkpoint.json` exists but is not a checkpoint:
 * reading on without it would show a map the service itself refuses to start from.
 */
export function readLogStore(dir: string): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (!fs.existsSync(dir)) return out;
  let first = 1;
  const doc = readCheckpoint(path.join(dir, 'checkpoint.json'));
  if (doc) {
    first = doc.segment;
    for (const [k, v] of Object.entries(doc.entries)) out.set(k, v);
  }
  const segments = fs.readdirSync(dir).map((n) => /^wal-(\d{8})\.log$/.exec(n)).filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1])).filter((n) => n >= first).sort((a, b) => a - b);
  for (const n of segments) {
    let buf: Buffer;
    try {
      buf = fs.readFileSync(path.join(dir, `wal-${String(n).padStart(8, '0')}.log`));
    } catch {
      continue; // removed by a checkpoint meanwhile
    }
    for (const line of buf.toString().split('\n')) {
      if (line.length < 10) continue;
      const body = line.slice(9);
      if (crc32(Buffer.from(body)).toString(16).padStart(8, '0') !== line.slice(0, 8)) break;
      for (const c of (JSON.parse(body) as { c: Array<{ k: string; v?: unknown; d?: 1 }> }).c) {
        if (c.d === 1) out.delete(c.k);
        else out.set(c.k, c.v);
      }
    }
  }
  return out;
}

/** The checkpoint document, or undefined when there is none yet. */
function readCheckpoint(file: string): { segment: number; entries: Record<string, unknown> } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    // None yet. A checkpoint being replaced is never missing: the rename is atomic.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let doc: { segment?: unknown; entries?: unknown };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch (err) {
    throw new InvariantError('corrupt_store', `${file} is not valid JSON (${(err as Error).message})`, { file });
  }
  if (!Number.isInteger(doc?.segment) || typeof doc.entries !== 'object' || doc.entries === null) {
    throw new InvariantError('corrupt_store', `${file} is not a store checkpoint (no segment or entries)`, { file });
  }
  return { segment: doc.segment as number, entries: doc.entries as Record<string, unknown> };
}
