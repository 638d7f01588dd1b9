/**
 * What the venue adapters share about their durable order records (`DATA_DIR/<venue>-orders/`):
 * a finished order is remembered for a while (a late look-up still finds it), then dropped in the
 * same commit as a newer record.
 */
import type { Change } from '../persistence/log-store';

/** How long a finished order is remembered by default: three days. */
export const DEFAULT_RETAIN_MS = 3 * 24 * 3600_000;

/** Removals of the records of orders that ended more than `retainMs` before `now`, `except`'s kept. */
export function expiredRecords<R extends { clientOrderId: string; finalAt?: number }>(entries: Iterable<[string, R]>, except: string, now: number, retainMs: number): Array<Change<R>> {
  const out: Array<Change<R>> = [];
  for (const [key, record] of entries) {
    if (record.clientOrderId !== except && record.finalAt !== undefined && now - record.finalAt > retainMs) out.push({ key, remove: true });
  }
  return out;
}
