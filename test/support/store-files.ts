/**
 * Read-only views of the storage engine's files (checkpoint + write-ahead log), for tests that
 * look at what a running or killed service has on disk. Never writes: a live process owns the
 * folder. A torn or unsynced last record is ignored, as restore would cut it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import type { OrderReport } from '../../src/proposal/types';

/** The map a `LogStore` in `dir` would restore now (an empty map when the folder does not exist). */
export function readLogStore(dir: string): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (!fs.existsSync(dir)) return out;
  let first = 1;
  try {
    const doc = JSON.parse(fs.readFileSync(path.join(dir, 'checkpoint.json'), 'utf8')) as { segment: number; entries: Record<string, unknown> };
    first = doc.segment;
    for (const [k, v] of Object.entries(doc.entries)) out.set(k, v);
  } catch {
    // no checkpoint yet (or being replaced: the rename is atomic, so it is the old or the new one)
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

/** The state of a proposal's snapshot in the live store on disk (undefined: not there). */
export function persistedState(dataDir: string, proposalId: string): string | undefined {
  const record = readLogStore(path.join(dataDir, 'proposals')).get(proposalId) as { snapshot?: { value?: string } } | undefined;
  return record?.snapshot?.value;
}

/** The paper venue's orders, from its store on disk. */
export function paperVenueOrders(dataDir: string): OrderReport[] {
  return [...readLogStore(path.join(dataDir, 'paper-venue')).entries()].filter(([k]) => k.startsWith('order:')).map(([, v]) => v as OrderReport);
}
