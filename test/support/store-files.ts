/**
 * Read-only views of the storage engine's files (checkpoint + write-ahead log), for tests that
 * look at what a running or killed service has on disk. Never writes: a live process owns the
 * folder. The reader itself lives in `src/persistence/store-reader.ts` (`npm run ledger` uses it).
 */
import path from 'node:path';
import type { OrderReport } from '../../src/proposal/types';
import { readLogStore } from '../../src/persistence/store-reader';

export { readLogStore };

/** The state of a proposal's snapshot in the live store on disk (undefined: not there). */
export function persistedState(dataDir: string, proposalId: string): string | undefined {
  const record = readLogStore(path.join(dataDir, 'proposals')).get(proposalId) as { snapshot?: { value?: string } } | undefined;
  return record?.snapshot?.value;
}

/** The paper venue's orders, from its store on disk. */
export function paperVenueOrders(dataDir: string): OrderReport[] {
  return [...readLogStore(path.join(dataDir, 'paper-venue')).entries()].filter(([k]) => k.startsWith('order:')).map(([, v]) => v as OrderReport);
}
