/**
 * A read-only view of a `LogStore` folder (checkpoint + write-ahead log), for tools and tests
 * that look at what a running, stopped or killed service has on disk (`npm run ledger`). Never
 * writes, never takes the DATA_DIR lock: a live process may own the folder. It decodes with the
 * store's own functions, so a torn or unsynced last record is left out as restore would cut it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SEGMENT, parseCheckpoint, replaySegment, segmentName } from './log-store';

/**
 * The map a `LogStore` in `dir` would restore now (an empty map when the folder does not exist).
 * Throws `InvariantError corrupt_store` when `checkpoint.json` exists but is not a checkpoint:
 * reading on without it would show a map the service itself refuses to start from.
 */
export function readLogStore(dir: string): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (!fs.existsSync(dir)) return out;
  let first = 1;
  const file = path.join(dir, 'checkpoint.json');
  const raw = readIfThere(file);
  if (raw) {
    const doc = parseCheckpoint<unknown>(raw, file, undefined);
    first = doc.segment;
    for (const [k, v] of Object.entries(doc.entries)) out.set(k, v);
  }
  const segments = fs.readdirSync(dir).map((n) => SEGMENT.exec(n)).filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1])).filter((n) => n >= first).sort((a, b) => a - b);
  for (const n of segments) {
    // A segment a checkpoint removed meanwhile has nothing the checkpoint lacks.
    const buf = readIfThere(path.join(dir, segmentName(n)));
    if (buf) replaySegment(buf, out);
  }
  return out;
}

/** A file's bytes, or undefined when it does not exist. A checkpoint being replaced is never missing: the rename is atomic. */
function readIfThere(file: string): Buffer | undefined {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
