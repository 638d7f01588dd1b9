/**
 * Snapshots of live (non-final) proposals, one record per proposal id, in a write-ahead log
 * with checkpoints under `DATA_DIR/proposals/`. Bounded by what is live, not by history: a
 * proposal that reaches a final state is archived in the journal and removed from here. A
 * transition costs one appended record, whatever the number of live or finished proposals.
 */
import path from 'node:path';
import { InvariantError } from '../errors';
import { LogStore, type LogStoreStats, type RestoreReport } from './log-store';
import type { StorageIo } from './storage-io';

export interface PersistedProposal {
  id: string;
  updatedAt: number;
  /** XState persisted snapshot (JSON-safe). Shared with memory: never mutated. */
  snapshot: unknown;
}

/** The store port the orchestrator depends on (a log and checkpoints today, a database tomorrow). */
export interface LiveProposalStore {
  /** The last durable record of a proposal. */
  get(id: string): PersistedProposal | undefined;
  /** Every durable record, in the order they were first written. */
  all(): Iterable<PersistedProposal>;
  readonly size: number;
  /** Resolves once the record is durable (then `get` returns it); rejects with a StorageError otherwise. */
  put(record: PersistedProposal): Promise<void>;
  remove(id: string): Promise<void>;
  /** Resolves once every change so far is durable or refused. */
  flush(): Promise<void>;
  readonly stats: LogStoreStats;
  close(): Promise<void>;
}

/** The layout before the write-ahead log: sixteen lowdb documents `proposals/shard-NN.json`. */
const LEGACY_SHARD = /^shard-\d{2}\.json$/;

export class WalProposalStore implements LiveProposalStore {
  private constructor(private readonly log: LogStore<PersistedProposal>) {}

  /** Opens `DATA_DIR/proposals/`, importing the shard files of older versions on first start. */
  static async open(io: StorageIo, dataDir: string, opts: { checkpointMinBytes?: number } = {}): Promise<{ store: WalProposalStore; report: RestoreReport }> {
    const dir = path.join(dataDir, 'proposals');
    const legacy = (await io.list(dir)).filter((n) => LEGACY_SHARD.test(n)).sort();
    const { store, report } = await LogStore.open<PersistedProposal>(io, dir, {
      name: 'proposals',
      ...(opts.checkpointMinBytes !== undefined ? { checkpointMinBytes: opts.checkpointMinBytes } : {}),
      migrate: async () => (legacy.length > 0 ? readLegacyShards(io, dir, legacy) : undefined),
    });
    // The checkpoint holds what the shards held (now or at an earlier, interrupted migration).
    for (const name of legacy) await io.remove(path.join(dir, name));
    return { store: new WalProposalStore(store), report };
  }

  get(id: string): PersistedProposal | undefined {
    return this.log.get(id);
  }

  all(): Iterable<PersistedProposal> {
    return this.log.values();
  }

  get size(): number {
    return this.log.size;
  }

  put(record: PersistedProposal): Promise<void> {
    return this.log.put(record.id, record);
  }

  remove(id: string): Promise<void> {
    return this.log.remove(id);
  }

  flush(): Promise<void> {
    return this.log.flush();
  }

  get stats(): LogStoreStats {
    return this.log.stats;
  }

  close(): Promise<void> {
    return this.log.close();
  }
}

async function readLegacyShards(io: StorageIo, dir: string, names: string[]): Promise<Array<[string, PersistedProposal]>> {
  const out: Array<[string, PersistedProposal]> = [];
  for (const name of names) {
    const file = path.join(dir, name);
    const raw = await io.readFile(file);
    if (!raw || raw.length === 0) continue; // an empty shard left by a power loss held nothing durable
    let doc: { proposals?: Record<string, PersistedProposal> };
    try {
      doc = JSON.parse(raw.toString()) as typeof doc;
    } catch (err) {
      throw new InvariantError('corrupt_store', `${file} (a proposal shard of an older version) is not valid JSON (${(err as Error).message}): restore it from a backup of DATA_DIR, or move it aside to start without its proposals`, { file });
    }
    for (const [id, record] of Object.entries(doc.proposals ?? {})) out.push([id, record]);
  }
  return out;
}
