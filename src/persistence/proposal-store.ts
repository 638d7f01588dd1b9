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
  /** Resolves once every change so far (or, with `id`, every change to that proposal) is on disk. */
  flush(id?: string): Promise<void>;
  readonly writeCount: number;
}

interface ProposalFile {
  version: 1;
  proposals: Record<string, PersistedProposal>;
}

/** Number of lowdb files the live proposals are spread over (by a hash of the id). */
export const PROPOSAL_SHARDS = 16;

function shardOf(id: string): number {
  let h = 2166136261;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 16777619);
  return (h >>> 0) % PROPOSAL_SHARDS;
}

/**
 * Live proposals in lowdb, spread over `PROPOSAL_SHARDS` documents under `DATA_DIR/proposals/`.
 * A lowdb write re-serialises its whole file, so one transition rewrites a sixteenth of the live
 * set instead of all of it; writes are coalesced per document.
 */
export class LowdbProposalStore implements LiveProposalStore {
  private constructor(private readonly shards: Array<JsonDocument<ProposalFile>>) {}

  static async open(dataDir: string): Promise<LowdbProposalStore> {
    const dir = path.join(dataDir, 'proposals');
    const shards = await Promise.all(Array.from({ length: PROPOSAL_SHARDS }, (_, i) =>
      JsonDocument.open<ProposalFile>(path.join(dir, `shard-${String(i).padStart(2, '0')}.json`), { version: 1, proposals: {} })));
    return new LowdbProposalStore(shards);
  }

  all(): PersistedProposal[] {
    return this.shards.flatMap((s) => Object.values(s.data.proposals));
  }

  put(record: PersistedProposal): Promise<void> {
    return this.shards[shardOf(record.id)]!.update((d) => {
      d.proposals[record.id] = record;
    });
  }

  remove(id: string): Promise<void> {
    return this.shards[shardOf(id)]!.update((d) => {
      delete d.proposals[id];
    });
  }

  async flush(id?: string): Promise<void> {
    if (id !== undefined) return this.shards[shardOf(id)]!.flush();
    await Promise.all(this.shards.map((s) => s.flush()));
  }

  get writeCount(): number {
    return this.shards.reduce((n, s) => n + s.writeCount, 0);
  }
}
