/**
 * Benchmark 3, child phase `burst`: group commit under a burst of approvals, in process.
 *
 * `proposals` proposals wait for approval (written straight into the live store from one that
 * went through the orchestrator, then restored as at a start), and all of them are approved,
 * `concurrency` at a time (a new approval starts when one is acknowledged; all at once when it
 * equals `proposals`), as taps of a busy minute would arrive. An acknowledgement is
 * `orchestrator.approve` resolving, which is what the Telegram and REST transports answer on:
 * the approval's journal line and the `approved` snapshot are durable, and the re-check that
 * follows has decided (its outcome durable) or MARKET_DATA_TIMEOUT_MS has passed. Each proposal
 * then goes on to `settled` with the product's services (paper order, fill, archive). Syncs are counted at the file-operations port (`CountingIo`) and by the
 * live store's own stats.
 *
 * Run by `bench/run.ts`; the phase answers with one JSON line.
 */
import {
  DAY_MS, CountingIo, StateWatcher, childMain, makeDraft, openRuntime, openStore, preloadAwaiting, spread, wireRuntime, type AreaCount, type Spread,
} from './lib';

export interface BurstMeasured {
  proposals: number;
  concurrency: number;
  /** ms from an approve call to its acknowledgement. */
  ackLatency: Spread;
  /** First approve call until the last acknowledgement, and until the last proposal is archived. */
  ackMs: number;
  settledMs: number;
  /** Syncs (all files) until the last acknowledgement, and until everything is archived. */
  syncsAtAck: number;
  syncsAtSettled: number;
  /** Syncs and records written by part of DATA_DIR, until everything is archived. */
  syncsByArea: Record<string, AreaCount>;
  /** Live-store commits and syncs until everything is archived (its own stats). */
  storeCommits: number;
  storeSyncs: number;
}

async function burst(args: { dataDir: string; proposals: number; concurrency: number }): Promise<BurstMeasured> {
  const prep = await openRuntime(args.dataDir, 'waiting');
  const { id } = await prep.orchestrator.start(makeDraft(Date.now(), DAY_MS));
  await new StateWatcher(prep.orchestrator).until(id, 'awaiting-approval');
  await preloadAwaiting(prep.store, prep.store.get(id)!, args.proposals - 1);
  await prep.close({ checkpoint: true });

  const io = new CountingIo();
  const rt = await wireRuntime(args.dataDir, io, await openStore(io, args.dataDir), 'paper');
  await rt.orchestrator.restore();
  const ids = [...rt.store.all()].map((r) => r.id);
  if (ids.length !== args.proposals) throw new Error(`expected ${args.proposals} proposals awaiting approval, have ${ids.length}`);
  const removed = Promise.all(ids.map((x) => rt.store.removed(x)));
  const syncs0 = io.syncs;
  const stats0 = rt.store.stats;

  const latencies: number[] = [];
  const t0 = performance.now();
  let next = 0;
  const approveNext = async (): Promise<void> => {
    while (next < ids.length) {
      const id = ids[next++]!;
      const a0 = performance.now();
      await rt.orchestrator.approve(id, 'telegram:10001');
      latencies.push(performance.now() - a0);
    }
  };
  await Promise.all(Array.from({ length: Math.min(args.concurrency, ids.length) }, approveNext));
  const ackMs = performance.now() - t0;
  const syncsAtAck = io.syncs - syncs0;
  await removed;
  const settledMs = performance.now() - t0;
  const syncsAtSettled = io.syncs - syncs0;
  const stats = rt.store.stats;
  const settled = rt.archive.list({ state: 'settled', limit: args.proposals }).length;
  if (settled !== args.proposals) throw new Error(`expected ${args.proposals} settled proposals, the archive has ${settled}`);
  const syncsByArea = io.byArea(args.dataDir);
  await rt.close();
  return {
    proposals: args.proposals, concurrency: args.concurrency, ackLatency: spread(latencies), ackMs, settledMs, syncsAtAck, syncsAtSettled, syncsByArea,
    storeCommits: stats.commits - stats0.commits, storeSyncs: stats.syncs - stats0.syncs,
  };
}

childMain({ burst });
