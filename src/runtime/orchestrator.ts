/**
 * The actor registry of live proposals. The live store is the truth; an XState actor exists
 * only while an event or a deadline is being handled:
 * - every snapshot is written to the store, and only once it is durable is the change shown
 *   (journal line, notices, cards) and is an order sent;
 * - a proposal that waits for a person is its stored snapshot plus an entry in a deadline heap;
 * - when a write fails, the actor is discarded and the proposal falls back to its last durable
 *   snapshot (memory never runs ahead of disk); proposals that need an actor to go on get one
 *   again once storage is back.
 * On start-up every live proposal is restored the same way: deadlines re-arm themselves, and
 * `executing` ones re-run `submitOrder`, which reconciles with the venue by client order id.
 */
import { createActor, fromCallback, fromPromise, type Actor, type InspectionEvent, type SnapshotFrom } from 'xstate';
import {
  FINAL_STATES, isValidSizeFactor, proposalMachine,
  type Assessment, type ExecutionResult, type ProposalContext, type ProposalDraft, type ProposalEvent, type ProposalState, type Recheck,
} from '../../machines/proposal.machine';
import { ConflictError, InputError, NotFoundError, StorageError, describeError } from '../errors';
import { countsAsNewApproval } from '../approval/policy';
import type { Logger } from '../logging';
import type { LiveProposalStore, PersistedProposal } from '../persistence/proposal-store';
import type { StorageHealthChange } from '../persistence/storage-health';
import type { ProposalArchive } from '../journal/tracker';
import { utcDay, type TradeLog } from '../journal/trade-log';
import { toProposalView, type ProposalView } from '../proposal/view';
import type { ReservationBook } from '../portfolio/reservations';
import { DeadlineHeap } from './deadline-heap';

/** What the machine's invoked actors do, supplied by the composition root. */
export interface ProposalServices {
  assess(ctx: ProposalContext): Promise<Assessment>;
  recheck(ctx: ProposalContext): Promise<Recheck>;
  execute(ctx: ProposalContext): Promise<ExecutionResult>;
}

/** A state change of one proposal, for notifiers (Telegram, Discord). Emitted once it is durable. */
export interface ProposalChange {
  view: ProposalView;
  from: ProposalState | null;
  to: ProposalState;
  /** True when the change happened while restoring (not a new decision). */
  restored: boolean;
}

type ProposalMachine = typeof proposalMachine;
type ProposalActor = Actor<ProposalMachine>;
type ProposalSnapshot = SnapshotFrom<ProposalMachine>;

/** setTimeout's largest delay; longer deadlines re-arm in steps. */
const MAX_TIMER_MS = 2_147_483_647;
/** Proposals cancelled at once by the kill switch (each needs an actor while it is cancelled). */
const CANCEL_BATCH = 200;

export interface OrchestratorDeps {
  store: LiveProposalStore;
  archive: ProposalArchive;
  journal: TradeLog;
  logger: Logger;
  services: ProposalServices;
  /** Risk capacity held by proposals: opened when a proposal is live, closed when it is not. */
  reservations: ReservationBook;
  /**
   * How long an approval's answer waits for the re-check that follows it (MARKET_DATA_TIMEOUT_MS),
   * so the answer tells whether the order goes out or why not.
   */
  recheckWaitMs?: number;
  /** Storage recovery resumes the proposals that a failed write stopped. */
  storage?: { readonly ok: boolean; onChange(listener: (change: StorageHealthChange) => void): void };
  now?: () => number;
  /** Observe actors with the XState inspector. */
  inspect?: (event: InspectionEvent) => void;
}

/** The facts of a snapshot that decide whether it is a change worth writing and showing. */
interface Mark {
  state: ProposalState;
  approvals: number;
  history: number;
}

function markOf(snapshot: ProposalSnapshot): Mark {
  return { state: snapshot.value as ProposalState, approvals: snapshot.context.approvals.length, history: snapshot.context.history.length };
}

export class Orchestrator {
  private readonly machine: ProposalMachine;
  private readonly now: () => number;
  /** Actors of proposals being handled right now. */
  private readonly actors = new Map<string, ProposalActor>();
  /** Proposals waiting for a person with no actor: their snapshot is the store's record. */
  private readonly waiting = new Set<string>();
  private readonly deadlines = new DeadlineHeap();
  private deadlineTimer: NodeJS.Timeout | null = null;
  private deadlineAt = Infinity;
  /** Proposals a failed write stopped outside awaiting-approval: they get an actor once storage is back. */
  private readonly parked = new Set<string>();
  /** Finished proposals between their durable final snapshot and the archive. */
  private readonly finishing = new Map<string, ProposalView>();
  /** Archiving under way (stop waits for it). */
  private readonly archiving = new Set<Promise<void>>();
  /** Live ids in creation order (stale entries are skipped and compacted now and then). */
  private order: string[] = [];
  private readonly liveIds = new Set<string>();
  /** Live liquidations per symbol (a second one for the same position is not started). */
  private readonly liquidations = new Map<string, string>();
  /** What was last queued for writing per proposal (state, approvals, history length). */
  private readonly queued = new Map<string, Mark>();
  /** The newest write in flight per proposal. */
  private readonly pending = new Map<string, Promise<void>>();
  /** Approval answers waiting for the re-check's outcome. */
  private readonly recheckWaiters = new Map<string, Array<() => void>>();
  private readonly listeners: Array<(change: ProposalChange) => void> = [];
  private restoring = false;
  private readyFlag = false;
  private stopping = false;

  constructor(private readonly deps: OrchestratorDeps) {
    this.now = deps.now ?? Date.now;
    const now = this.now;
    const services = deps.services;
    this.machine = proposalMachine.provide({
      actors: {
        assessProposal: fromPromise<Assessment, ProposalContext>(({ input }) => this.unlessStorageFails(input.id, withTime(services.assess(input), now))),
        recheckApproval: fromPromise<Recheck, ProposalContext>(({ input }) => this.unlessStorageFails(input.id, withTime(services.recheck(input), now))),
        submitOrder: fromPromise<ExecutionResult, ProposalContext>(async ({ input }) => {
          // The `executing` snapshot (with the client order id) is durable before anything is
          // sent. Its write is queued by the subscription right after this actor starts.
          await Promise.resolve();
          const write = this.pending.get(input.id);
          if (write) {
            try {
              await write;
            } catch {
              // Not durable: this actor is being discarded and the proposal resumes from its
              // last durable snapshot once storage is back. Nothing is sent.
              return new Promise<ExecutionResult>(() => undefined);
            }
          }
          return withTime(services.execute(input), now);
        }),
        approvalDeadline: fromCallback<ProposalEvent, { deadline: number }>(({ input, sendBack }) => {
          let timer: NodeJS.Timeout | undefined;
          const arm = () => {
            const left = input.deadline - now();
            if (left <= 0) {
              sendBack({ type: 'deadline.reached', at: now() });
              return;
            }
            timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
          };
          // Armed on the next tick: a deadline that passed while the process was down fires
          // right after restore, once the actor is running.
          timer = setTimeout(arm, 0);
          return () => clearTimeout(timer);
        }),
      },
    }) as unknown as ProposalMachine;
    deps.storage?.onChange((change) => {
      if (change.kind === 'recovered') this.resumeParked();
    });
  }

  /** True once every persisted proposal is restored and its timer re-armed. */
  get ready(): boolean {
    return this.readyFlag;
  }

  onChange(listener: (change: ProposalChange) => void): void {
    this.listeners.push(listener);
  }

  /** Restores every live proposal from the store. */
  async restore(): Promise<{ restored: number; failed: number }> {
    this.restoring = true;
    let restored = 0;
    let failed = 0;
    const records = [...this.deps.store.all()];
    records.sort((a, b) => createdAtOf(a) - createdAtOf(b));
    for (const record of records) {
      try {
        const snapshot = record.snapshot as ProposalSnapshot;
        this.queued.set(record.id, markOf(snapshot));
        if (snapshot.status === 'done') {
          // Crashed between the final snapshot and the archive: finish the bookkeeping.
          this.finish(record.id, toProposalView(snapshot.context, snapshot.value as ProposalState), true);
          continue;
        }
        this.admit(record.id, snapshot.context);
        if (snapshot.status === 'active' && snapshot.value === 'awaiting-approval') this.sleep(record.id, snapshot.context.deadline);
        else this.spawn(record.id, snapshot);
        restored += 1;
      } catch (err) {
        failed += 1;
        this.deps.logger.error('could not restore a proposal; it stays in the store for inspection', { proposalId: record.id, error: describeError(err) });
      }
    }
    this.restoring = false;
    this.readyFlag = true;
    return { restored, failed };
  }

  /** Starts a new proposal; resolves once its first snapshot is durable (rejects with a StorageError otherwise). */
  async start(draft: ProposalDraft): Promise<ProposalView> {
    if (this.liveIds.has(draft.id) || this.finishing.has(draft.id)) return this.view(draft.id)!;
    this.admit(draft.id, draft);
    const created = this.deps.journal.append({ type: 'proposal.created', proposalId: draft.id, signalId: draft.signalId, draft });
    const actor = this.track(draft.id, createActor(this.machine, { id: draft.id, input: draft, ...this.inspection() }));
    actor.start();
    await Promise.allSettled([created]);
    await this.pending.get(draft.id);
    return this.view(draft.id) ?? this.deps.archive.get(draft.id)!;
  }

  /** Whether a proposal with this id is live or archived. */
  has(id: string): boolean {
    return this.liveIds.has(id) || this.finishing.has(id) || this.deps.archive.get(id) !== undefined;
  }

  isLive(id: string): boolean {
    return this.liveIds.has(id);
  }

  /** Whether a liquidation of `symbol` is live. */
  liquidating(symbol: string): boolean {
    return this.liquidations.has(symbol);
  }

  /** The proposal view, live or archived. */
  view(id: string): ProposalView | undefined {
    const snapshot = this.snapshotOf(id);
    if (snapshot) return toProposalView(snapshot.context, snapshot.value as ProposalState);
    return this.finishing.get(id) ?? this.deps.archive.get(id);
  }

  /** How many proposals are live and how many of them wait for a person, without building views. */
  liveCount(): { total: number; awaitingApproval: number } {
    let awaitingApproval = this.waiting.size;
    for (const actor of this.actors.values()) if (actor.getSnapshot().value === 'awaiting-approval') awaitingApproval += 1;
    return { total: this.liveIds.size, awaitingApproval };
  }

  /** Live proposals, newest first, at most `limit` of them (views are built only for those returned). */
  liveViews(opts: { state?: string; limit: number }): ProposalView[] {
    const out: ProposalView[] = [];
    const seen = new Set<string>();
    for (let i = this.order.length - 1; i >= 0 && out.length < opts.limit; i--) {
      const id = this.order[i]!;
      // An id made live again (a start retried after a failed write) is listed once.
      if (seen.has(id)) continue;
      seen.add(id);
      const snapshot = this.snapshotOf(id);
      if (!snapshot || (opts.state && snapshot.value !== opts.state)) continue;
      out.push(toProposalView(snapshot.context, snapshot.value as ProposalState));
    }
    return out;
  }

  /** Live then archived proposals, newest first. */
  list(opts: { state?: string; limit: number }): ProposalView[] {
    const live = this.liveViews(opts);
    const done = [...this.finishing.values()].filter((p) => !opts.state || p.state === opts.state);
    if (opts.state && !FINAL_STATES.includes(opts.state as ProposalState)) return live;
    const archived = this.deps.archive.list({ ...(opts.state ? { state: opts.state } : {}), limit: opts.limit });
    const seen = new Set(done.map((p) => p.id));
    return [...live, ...done, ...archived.filter((p) => !seen.has(p.id))].sort((a, b) => b.createdAt.localeCompare(a.createdAt)).slice(0, opts.limit);
  }

  /**
   * Records an approval. A repeat by the same person changes nothing (`counted: false`).
   * Resolves once the change is durable; rejects with a StorageError (and changes nothing) if not.
   */
  async approve(id: string, by: string, sizeFactor?: number, label?: string): Promise<{ view: ProposalView; counted: boolean }> {
    const ctx = this.awaitingContext(id);
    if (sizeFactor !== undefined && !isValidSizeFactor(sizeFactor)) {
      throw new InputError('invalid_size_factor', `sizeFactor must be greater than 0 and at most 1, got ${sizeFactor}`, [{ path: 'sizeFactor', message: 'must be > 0 and ≤ 1' }]);
    }
    if (!countsAsNewApproval(ctx.approvals, by)) {
      void this.deps.journal.append({ type: 'approval.ignored', proposalId: id, by, ...(label !== undefined ? { label } : {}), reason: 'repeat approval by the same principal' });
      return { view: this.view(id)!, counted: false };
    }
    const extra = { ...(sizeFactor !== undefined ? { sizeFactor } : {}), ...(label !== undefined ? { label } : {}) };
    const line = this.deps.journal.append({ type: 'approval.given', proposalId: id, by, ...extra });
    await this.decide(id, { type: 'approval.given', by, at: this.now(), ...extra }, line);
    if (this.snapshotOf(id)?.value === 'approved') await this.leftApproved(id, this.deps.recheckWaitMs ?? 0);
    return { view: this.view(id)!, counted: true };
  }

  /** Resolves once the proposal's durable state is past `approved` (the re-check decided), or after `ms`. */
  private leftApproved(id: string, ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      const waiters = this.recheckWaiters.get(id) ?? [];
      waiters.push(done);
      this.recheckWaiters.set(id, waiters);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
    });
  }

  /** Records a rejection by a person. Resolves once it is durable. */
  async reject(id: string, by: string, reason?: string, label?: string): Promise<ProposalView> {
    this.awaitingContext(id);
    const line = this.deps.journal.append({ type: 'approval.refused', proposalId: id, by, ...(label !== undefined ? { label } : {}), ...(reason ? { reason } : {}) });
    await this.decide(id, { type: 'approval.refused', by, at: this.now(), ...(reason ? { reason } : {}) }, line);
    return this.view(id)!;
  }

  /**
   * Cancels every live proposal that has not reached `executing` (pause, kill switch), a batch
   * at a time. Resolves with how many were cancelled durably and how many a failed write kept.
   */
  async cancelAll(reason: string, by: string): Promise<{ cancelled: number; failed: number }> {
    let cancelled = 0;
    let failed = 0;
    const ids = [...new Set(this.order)].filter((id) => {
      const state = this.snapshotOf(id)?.value;
      return state === 'pending' || state === 'awaiting-approval' || state === 'approved';
    });
    for (let i = 0; i < ids.length; i += CANCEL_BATCH) {
      const writes: Array<Promise<void>> = [];
      for (const id of ids.slice(i, i + CANCEL_BATCH)) {
        const actor = this.actors.get(id) ?? this.wake(id);
        if (!actor) continue;
        const state = actor.getSnapshot().value;
        if (state !== 'pending' && state !== 'awaiting-approval' && state !== 'approved') continue;
        actor.send({ type: 'proposal.cancelled', reason, by, at: this.now() });
        writes.push(this.pending.get(id) ?? Promise.resolve());
      }
      for (const outcome of await Promise.allSettled(writes)) {
        if (outcome.status === 'fulfilled') cancelled += 1;
        else failed += 1;
      }
    }
    return { cancelled, failed };
  }

  /**
   * The clock jumped forward (a replay's simulated time moves from record to record, not with
   * the wall clock): deadlines due by the new time fire now and the timer re-arms for the next.
   */
  clockMoved(): void {
    this.armDeadline();
  }

  /** Stops every actor (their snapshots are durable) and waits for writes in flight. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    for (const actor of this.actors.values()) actor.stop();
    this.actors.clear();
    await Promise.allSettled([...this.pending.values()]);
    await Promise.allSettled([...this.archiving]);
    await this.deps.store.flush();
  }

  // ---- internals

  private inspection(): { inspect?: (event: InspectionEvent) => void } {
    return this.deps.inspect ? { inspect: this.deps.inspect } : {};
  }

  /**
   * The last durable snapshot: what is shown and decided on. An actor may be a step ahead while
   * its write is in flight; that step is not shown until it is on disk (a failed write undoes it).
   */
  private snapshotOf(id: string): ProposalSnapshot | undefined {
    if (!this.liveIds.has(id)) return undefined;
    return this.deps.store.get(id)?.snapshot as ProposalSnapshot | undefined;
  }

  /** The context of a proposal that can take a decision now, or the reason it cannot. */
  private awaitingContext(id: string): ProposalContext {
    const snapshot = this.snapshotOf(id);
    if (!snapshot) {
      const finished = this.finishing.get(id) ?? this.deps.archive.get(id);
      if (finished) throw new ConflictError('not_awaiting_approval', `proposal ${id} is ${finished.state}, not awaiting approval`, { state: finished.state });
      throw new NotFoundError('proposal_not_found', `no proposal with id ${id}`);
    }
    // A running actor may hold a decision whose write is in flight: judge by it too.
    const current = this.actors.get(id)?.getSnapshot() ?? snapshot;
    const state = current.value as ProposalState;
    if (state !== 'awaiting-approval' || snapshot.value !== 'awaiting-approval' || this.parked.has(id)) {
      const shown = snapshot.value as ProposalState;
      throw new ConflictError('not_awaiting_approval', `proposal ${id} is ${shown === 'awaiting-approval' ? 'being decided' : shown}, not awaiting approval`, { state: shown });
    }
    if (this.now() >= current.context.deadline) {
      throw new ConflictError('not_awaiting_approval', `proposal ${id} passed its deadline ${new Date(current.context.deadline).toISOString()} and is timing out`, { state: 'timed-out' });
    }
    return current.context;
  }

  /** Sends a person's decision and waits until its snapshot is durable. */
  private async decide(id: string, event: ProposalEvent, line: Promise<void>): Promise<void> {
    const actor = this.actors.get(id) ?? this.wake(id);
    if (!actor) throw new NotFoundError('proposal_not_found', `no proposal with id ${id}`);
    actor.send(event);
    const write = this.pending.get(id);
    if (!write && this.actors.get(id) === actor && actor.getSnapshot().value === 'awaiting-approval') {
      // The machine swallowed the event: back to waiting without an actor.
      actor.stop();
      this.actors.delete(id);
      this.sleep(id, actor.getSnapshot().context.deadline);
    }
    await Promise.allSettled([line]);
    if (write) await write;
  }

  private admit(id: string, ctx: Pick<ProposalContext, 'intent' | 'symbol'>): void {
    if (!this.liveIds.has(id)) {
      this.liveIds.add(id);
      this.order.push(id);
    }
    this.deps.reservations.admit(id);
    if (ctx.intent === 'liquidate') this.liquidations.set(ctx.symbol, id);
  }

  /** The proposal is no longer live (finished, or never made durable). */
  private forget(id: string): void {
    this.deps.reservations.close(id);
    this.liveIds.delete(id);
    this.waiting.delete(id);
    this.parked.delete(id);
    this.queued.delete(id);
    this.pending.delete(id);
    for (const [symbol, other] of this.liquidations) if (other === id) this.liquidations.delete(symbol);
    // Compact the creation order once most of it is stale.
    if (this.order.length > 64 && this.order.length > 2 * this.liveIds.size) this.order = this.order.filter((x) => this.liveIds.has(x));
  }

  private track(id: string, actor: ProposalActor): ProposalActor {
    this.actors.set(id, actor);
    actor.subscribe({
      next: (snapshot) => this.onSnapshot(id, actor, snapshot),
      error: (err) => {
        // An unobserved actor error would be rethrown and kill the process.
        this.deps.logger.error('proposal actor failed', { proposalId: id, error: describeError(err) });
        void this.deps.journal.append({ type: 'proposal.transition', proposalId: id, error: describeError(err) });
      },
    });
    return actor;
  }

  /** An actor for a stored snapshot (restore, storage back). */
  private spawn(id: string, snapshot: ProposalSnapshot): ProposalActor {
    // `input` is required by the types but ignored when a snapshot is given.
    const actor = this.track(id, createActor(this.machine, { id, snapshot, input: snapshot.context, ...this.inspection() }));
    actor.start();
    return actor;
  }

  private onSnapshot(id: string, actor: ProposalActor, snapshot: ProposalSnapshot): void {
    if (this.stopping || this.actors.get(id) !== actor) return;
    const mark = markOf(snapshot);
    const prev = this.queued.get(id);
    const same = prev !== undefined && prev.state === mark.state && prev.approvals === mark.approvals && prev.history === mark.history;
    // An actor made from a stored snapshot re-emits it first; a swallowed event changes nothing.
    if (same && snapshot.status !== 'done') return;
    this.queued.set(id, mark);
    const from = prev?.state ?? null;
    const to = mark.state;
    const record: PersistedProposal = { id, updatedAt: this.now(), snapshot: actor.getPersistedSnapshot() };
    const write = this.deps.store.put(record);
    const line = from !== to ? this.transitionLine(id, snapshot, from, to) : Promise.resolve();
    const written = Promise.allSettled([write, line]).then(() => write);
    this.pending.set(id, written);
    const restored = this.restoring;
    written.then(() => {
      if (this.pending.get(id) === written) this.pending.delete(id);
      const view = toProposalView(snapshot.context, to);
      if (from !== to || prev?.approvals !== mark.approvals) this.emit({ view, from, to, restored });
      if (to !== 'approved') this.wakeRecheckWaiters(id);
      if (snapshot.status === 'done') {
        // A reverted actor's final snapshot is finished by the revert, once its writes settled.
        if (this.actors.get(id) !== actor) return;
        this.actors.delete(id);
        this.finish(id, view, false);
      } else if (to === 'awaiting-approval' && !this.pending.has(id) && this.actors.get(id) === actor) {
        // Waiting for a person costs no actor.
        actor.stop();
        this.actors.delete(id);
        this.sleep(id, snapshot.context.deadline);
      }
    }, (err: unknown) => this.revert(id, actor, err));
  }

  private transitionLine(id: string, snapshot: ProposalSnapshot, from: ProposalState | null, to: ProposalState): Promise<void> {
    const last = snapshot.context.history[snapshot.context.history.length - 1];
    return this.deps.journal.append({
      type: 'proposal.transition', proposalId: id, signalId: snapshot.context.signalId, from, to,
      ...(last?.by ? { by: last.by } : {}), ...(last?.reason ? { reason: last.reason } : {}),
    });
  }

  /**
   * A write failed: the actor (and what it started) is discarded and the proposal falls back to
   * its last durable snapshot, which is what a restart would find.
   */
  private revert(id: string, actor: ProposalActor, err: unknown): void {
    if (this.actors.get(id) !== actor) return;
    actor.stop();
    this.actors.delete(id);
    // What the discarded actor reserved goes with it; the re-check that resumes reserves anew.
    this.deps.reservations.release(id);
    const error = describeError(err);
    this.deps.logger.error('a proposal change could not be made durable; it is back at its last durable state', { proposalId: id, error });
    void this.deps.journal.append({ type: 'proposal.reverted', proposalId: id, error });
    // Writes of the discarded actor still in flight decide what is durable: wait for them (the
    // proposal takes no decision meanwhile), then go on from what the store holds.
    const inflight = this.pending.get(id);
    this.pending.delete(id);
    this.parked.add(id);
    void Promise.allSettled([inflight]).then(() => this.fallBack(id));
  }

  /** Places a proposal whose actor was discarded according to its durable snapshot. */
  private fallBack(id: string): void {
    if (this.stopping || this.actors.has(id)) return;
    this.parked.delete(id);
    const committed = this.deps.store.get(id)?.snapshot as ProposalSnapshot | undefined;
    if (!committed) {
      this.forget(id);
      return;
    }
    this.queued.set(id, markOf(committed));
    if (committed.status === 'done') this.finish(id, toProposalView(committed.context, committed.value as ProposalState), true);
    else if (committed.value === 'awaiting-approval') this.sleep(id, committed.context.deadline);
    else this.parked.add(id);
    // Storage may already be back (its probe won the race with this failure): go on now.
    if (this.deps.storage?.ok) setImmediate(() => this.resumeParked());
  }

  private wakeRecheckWaiters(id: string): void {
    const waiters = this.recheckWaiters.get(id);
    if (!waiters) return;
    this.recheckWaiters.delete(id);
    for (const w of waiters) w();
  }

  /**
   * A storage failure inside an invoked actor (a mark that could not be written) is not the
   * proposal's outcome: its actor is discarded like after any failed write, and the step runs
   * again from the durable snapshot once storage is back.
   */
  private unlessStorageFails<T>(id: string, work: Promise<T>): Promise<T> {
    return work.catch((err: unknown) => {
      if (!(err instanceof StorageError)) throw err;
      const actor = this.actors.get(id);
      if (actor) queueMicrotask(() => this.revert(id, actor, err));
      return new Promise<T>(() => undefined);
    });
  }

  /** Storage is back: proposals that a failed write stopped go on from their durable snapshot. */
  private resumeParked(): void {
    for (const id of [...this.parked]) {
      this.parked.delete(id);
      const snapshot = this.deps.store.get(id)?.snapshot as ProposalSnapshot | undefined;
      if (!snapshot) continue;
      if (snapshot.status === 'done') this.finish(id, toProposalView(snapshot.context, snapshot.value as ProposalState), true);
      else this.spawn(id, snapshot);
    }
  }

  /** Keeps a proposal that waits for a person as its durable snapshot plus a deadline entry. */
  private sleep(id: string, deadline: number): void {
    this.waiting.add(id);
    this.deadlines.push({ id, deadline });
    if (deadline < this.deadlineAt) this.armDeadline();
  }

  /** Gives a waiting proposal its actor (its deadline timer re-arms itself on start). */
  private wake(id: string): ProposalActor | undefined {
    if (!this.waiting.delete(id)) return undefined;
    const snapshot = this.deps.store.get(id)?.snapshot as ProposalSnapshot | undefined;
    if (!snapshot) return undefined;
    return this.spawn(id, snapshot);
  }

  /** One timer for the earliest deadline: due proposals are woken and time out themselves. */
  private armDeadline(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    this.deadlineAt = Infinity;
    if (this.stopping) return;
    const next = this.deadlines.peek();
    if (!next) return;
    this.deadlineAt = next.deadline;
    this.deadlineTimer = setTimeout(() => {
      this.deadlineTimer = null;
      const now = this.now();
      while ((this.deadlines.peek()?.deadline ?? Infinity) <= now) {
        const { id, deadline } = this.deadlines.pop()!;
        const snapshot = this.waiting.has(id) ? (this.deps.store.get(id)?.snapshot as ProposalSnapshot | undefined) : undefined;
        if (snapshot?.context.deadline === deadline) this.wake(id);
      }
      this.armDeadline();
    }, Math.min(Math.max(0, next.deadline - this.now()), MAX_TIMER_MS));
  }

  /**
   * A durable final snapshot is archived and journalled, then removed from the live store. A
   * crash in between finds the final snapshot at restore and finishes without archiving twice.
   */
  private finish(id: string, view: ProposalView, checkArchived: boolean): void {
    this.deps.reservations.close(id);
    this.finishing.set(id, view);
    this.liveIds.delete(id);
    this.waiting.delete(id);
    const finishedAt = view.history.at(-1)?.at ?? new Date(this.now()).toISOString();
    const archive = async () => {
      const at = new Date(this.now()).toISOString();
      const added = checkArchived ? await this.deps.archive.ensure(view, at, [utcDay(finishedAt), utcDay(at)]) : (await this.deps.archive.add(view, at), true);
      if (added) await this.deps.journal.append({ type: 'proposal.finished', proposalId: id, signalId: view.signalId, state: view.state, outcome: view.outcome });
      await this.deps.store.remove(id);
    };
    const done = archive().then(() => {
      this.finishing.delete(id);
      this.forget(id);
    }, (err: unknown) => {
      // The final snapshot is durable; the bookkeeping is retried once storage is back (or at restore).
      this.deps.logger.error('could not archive a finished proposal; retried when storage is back', { proposalId: id, error: describeError(err) });
      this.parked.add(id);
      if (this.deps.storage?.ok) setImmediate(() => this.resumeParked());
    });
    this.archiving.add(done);
    void done.finally(() => this.archiving.delete(done));
  }

  private emit(change: ProposalChange): void {
    for (const l of this.listeners) {
      try {
        l(change);
      } catch (err) {
        this.deps.logger.error('proposal change listener failed', { proposalId: change.view.id, error: describeError(err) });
      }
    }
  }
}

function createdAtOf(record: PersistedProposal): number {
  return (record.snapshot as ProposalSnapshot).context?.createdAt ?? 0;
}

/** Attaches the failure time to an error so the machine records when it happened. */
async function withTime<T>(promise: Promise<T>, now: () => number): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    if (err && typeof err === 'object' && !('at' in err)) (err as { at?: number }).at = now();
    throw err;
  }
}
