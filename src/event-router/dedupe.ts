/**
 * The dedupe window: a key seen inside DEDUPE_WINDOW_SECONDS is a duplicate of the first
 * signal. Kept in lowdb (bounded by the window), so it survives a restart.
 */
import path from 'node:path';
import { createHash } from 'node:crypto';
import { JsonDocument } from '../persistence/json-document';

interface DedupeFile {
  version: 1;
  entries: Record<string, { signalId: string; at: number }>;
}

export class DedupeWindow {
  private constructor(private readonly doc: JsonDocument<DedupeFile>, private readonly windowMs: number, private readonly now: () => number) {}

  static async open(dataDir: string, windowSeconds: number, now: () => number = Date.now): Promise<DedupeWindow> {
    const doc = await JsonDocument.open<DedupeFile>(path.join(dataDir, 'dedupe.json'), { version: 1, entries: {} });
    return new DedupeWindow(doc, windowSeconds * 1000, now);
  }

  /** The first signal's id when `key` was seen inside the window. */
  seen(key: string): string | undefined {
    const e = this.doc.data.entries[key];
    if (!e || this.now() - e.at >= this.windowMs) return undefined;
    return e.signalId;
  }

  /** Remembers `key`; resolves when that is on disk. */
  remember(key: string, signalId: string): Promise<void> {
    const now = this.now();
    return this.doc.update((d) => {
      d.entries[key] = { signalId, at: now };
      for (const [k, e] of Object.entries(d.entries)) if (now - e.at >= this.windowMs) delete d.entries[k];
    });
  }

  flush(): Promise<void> {
    return this.doc.flush();
  }
}

/** Key of a signal: its own id when it has one, otherwise a hash of the normalised signal. */
export function dedupeKey(scope: string, fields: Record<string, unknown>, externalId?: string): string {
  if (externalId !== undefined) return `${scope}:id:${externalId}`;
  const canonical = JSON.stringify(Object.keys(fields).sort().map((k) => [k, fields[k]]));
  return `${scope}:hash:${createHash('sha256').update(canonical).digest('hex').slice(0, 32)}`;
}
