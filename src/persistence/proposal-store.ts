/**
 * Snapshots of live (non-final) proposals, one record per proposal id, in lowdb. Bounded by
 * what is live, not by history: a proposal that reaches a final state is archived in the
 * journal and removed from here. Writes are coalesced by the underlying document.
 */
import path from 'node:path';
import { JsonDocument } from './json-document';

export interface PersistedProposal {
  id: string;
  updatedAt: number;
  /** XState persisted snapshot (JSON-safe). */
  snapshot: unknown;
}

/** The store port the orchestrator depends on (lowdb today, a shared database tomorrow). */
export interface LiveProposalStore {
  all(): PersistedProposal[];
  put(record: PersistedProposal): Promise<void>;
  remove(id: string): Promise<void>;
  flush(): Promise<void>;
  readonly writeCount: number;
}

interface ProposalFile {
  version: 1;
  proposals: Record<string, PersistedProposal>;
}

export class LowdbProposalStore implements LiveProposalStore {
  private constructor(private readonly doc: JsonDocument<ProposalFile>) {}

  static async open(dataDir: string, opts: { coalesceMs?: number } = {}): Promise<LowdbProposalStore> {
    const doc = await JsonDocument.open<ProposalFile>(path.join(dataDir, 'proposals.json'), { version: 1, proposals: {} }, opts);
    return new LowdbProposalStore(doc);
  }

  all(): PersistedProposal[] {
    return Object.values(this.doc.data.proposals);
  }

  put(record: PersistedProposal): Promise<void> {
    return this.doc.update((d) => {
      d.proposals[record.id] = record;
    });
  }

  remove(id: string): Promise<void> {
    return this.doc.update((d) => {
      delete d.proposals[id];
    });
  }

  flush(): Promise<void> {
    return this.doc.flush();
  }

  get writeCount(): number {
    return this.doc.writeCount;
  }
}
