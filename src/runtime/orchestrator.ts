/**
 * The actor registry: one XState actor per live proposal. Every snapshot is persisted (writes
 * coalesced by the store), every transition journalled, and a proposal that reaches a final
 * state is archived and removed from the live store. On start-up every live proposal is
 * restored: deadlines re-arm themselves, and `executing` ones re-run `submitOrder`, which
 * reconciles with the venue by client order id.
 */
import { createActor, fromCallback, fromPromise, type Actor, type InspectionEvent, type SnapshotFrom } from 'xstate';
import {
  FINAL_STATES, isValidSizeFactor, proposalMachine,
  type Assessment, type ExecutionResult, type ProposalContext, type ProposalDraft, type ProposalEvent, type ProposalState, type Recheck,
} from '../../machines/proposal.machine';
import { ConflictError, InputError, NotFoundError, describeError } from '../errors';
import { countsAsNewApproval } from '../approval/policy';
import type { Logger } from '../logging';
import type { LiveProposalStore } from '../persistence/proposal-store';
import type { ProposalArchive } from '../journal/tracker';
import type { TradeLog } from '../journal/trade-log';
import { toProposalView, type ProposalView } from '../proposal/view';

/** What the machine's invoked actors do, supplied by the composition root. */
export interface ProposalServices {
  assess(ctx: ProposalContext): Promise<Assessment>;
  recheck(ctx: ProposalContext): Promise<Recheck>;
  execute(ctx: ProposalContext): Promise<ExecutionResult>;
}

/** A state change of one proposal, for notifiers (Telegram, Discord). */
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

export interface OrchestratorDeps {
  store: LiveProposalStore;
  archive: ProposalArchive;
  journal: TradeLog;
  logger: Logger;
  now?: () => number;
  /** Observe actors with the XState inspector. */
  inspect?: (event: InspectionEvent) => void;
}

export class Orchestrator {
  private readonly actors = new Map<string, ProposalActor>();
  private readonly lastState = new Map<string, ProposalState>();
  private readonly lastApprovals = new Map<string, number>();
  /**
   * Restored proposals that only wait for a person: kept as their snapshot until an event
   * (approval, rejection, cancel) or their deadline needs an actor. Restoring 10k of them is then
   * a file read, not 20k actor starts; behaviour is the same as an actor's.
   */
  private readonly dormant = new Map<string, ProposalSnapshot>();
  private dormantDeadlines: Array<{ id: string; deadline: number }> = [];
  private dormantTimer: NodeJS.Timeout | null = null;
  /** Finished proposals between their final snapshot and the archive (a few ms). */
  private readonly finishing = new Map<string, ProposalView>();
  private readonly listeners: Array<(change: ProposalChange) => void> = [];
  private readonly now: () => number;
  private machine: ProposalMachine | null = null;
  private restoring = false;
  private readyFlag = false;
  private stopping = false;

  constructor(private readonly deps: OrchestratorDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Supplies the services; must be called once before `restore` or `start`. */
  provide(services: ProposalServices): void {
    const now = this.now;
    this.machine = proposalMachine.provide({
      actors: {
        assessProposal: fromPromise<Assessment, ProposalContext>(({ input }) => withTime(services.assess(input), now)),
        recheckApproval: fromPromise<Recheck, ProposalContext>(({ input }) => withTime(services.recheck(input), now)),
        submitOrder: fromPromise<ExecutionResult, ProposalContext>(({ input }) => withTime(services.execute(input), now)),
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
    const machine = this.requireMachine();
    this.restoring = true;
    let restored = 0;
    let failed = 0;
    for (const record of this.deps.store.all()) {
      try {
        const snapshot = record.snapshot as ProposalSnapshot;
        if (snapshot.status === 'done') {
          // Crashed between archiving and removing: finish the bookkeeping.
          this.finish(record.id, snapshot, true);
          continue;
        }
        if (snapshot.status === 'active' && snapshot.value === 'awaiting-approval') {
          this.dormant.set(record.id, snapshot);
          this.dormantDeadlines.push({ id: record.id, deadline: snapshot.context.deadline });
          restored += 1;
          continue;
        }
        // `input` is required by the types but ignored when a snapshot is given.
        const actor = createActor(machine, { id: record.id, snapshot, input: snapshot.context, ...(this.deps.inspect ? { inspect: this.deps.inspect } : {}) });
        this.track(record.id, actor, snapshot.value as ProposalState, snapshot.context.approvals.length);
        actor.start();
        restored += 1;
      } catch (err) {
        failed += 1;
        this.deps.logger.error('could not restore a proposal; it stays in the store for inspection', { proposalId: record.id, error: describeError(err) });
      }
    }
    this.restoring = false;
    this.dormantDeadlines.sort((a, b) => a.deadline - b.deadline);
    this.armDormantDeadline();
    this.readyFlag = true;
    return { restored, failed };
  }

  /** Starts a new proposal actor; resolves once its first snapshot is on disk. */
  async start(draft: ProposalDraft): Promise<ProposalView> {
    const machine = this.requireMachine();
    if (this.actors.has(draft.id) || this.dormant.has(draft.id)) return this.view(draft.id)!;
    this.deps.journal.append({ type: 'proposal.created', proposalId: draft.id, signalId: draft.signalId, draft });
    const actor = createActor(machine, { id: draft.id, input: draft, ...(this.deps.inspect ? { inspect: this.deps.inspect } : {}) });
    this.track(draft.id, actor, null);
    actor.start();
    // The first snapshot is persisted by the subscription only on a change; persist it now.
    this.persist(draft.id, actor);
    await this.deps.store.flush(draft.id);
    return this.view(draft.id) ?? this.deps.archive.get(draft.id)!;
  }

  /** Whether a proposal with this id is live or archived. */
  has(id: string): boolean {
    return this.actors.has(id) || this.dormant.has(id) || this.finishing.has(id) || this.deps.archive.get(id) !== undefined;
  }

  isLive(id: string): boolean {
    return this.actors.has(id) || this.dormant.has(id);
  }

  /** The proposal view, live or archived. */
  view(id: string): ProposalView | undefined {
    const actor = this.actors.get(id);
    if (actor) {
      const snap = actor.getSnapshot();
      return toProposalView(snap.context, snap.value as ProposalState);
    }
    const sleeping = this.dormant.get(id);
    if (sleeping) return toProposalView(sleeping.context, 'awaiting-approval');
    return this.finishing.get(id) ?? this.deps.archive.get(id);
  }

  /** How many proposals are live and how many of them wait for a person, without building views. */
  liveCount(): { total: number; awaitingApproval: number } {
    let awaitingApproval = this.dormant.size;
    for (const actor of this.actors.values()) if (actor.getSnapshot().value === 'awaiting-approval') awaitingApproval += 1;
    return { total: this.actors.size + this.dormant.size, awaitingApproval };
  }

  /** Live proposals, newest first. */
  live(): ProposalView[] {
    return [...this.actors.keys(), ...this.dormant.keys()]
      .map((id) => this.view(id)!)
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  /** Live then archived proposals, newest first. */
  list(opts: { state?: string; limit: number }): ProposalView[] {
    const live = [...this.live(), ...this.finishing.values()].filter((p) => !opts.state || p.state === opts.state);
    if (opts.state && !FINAL_STATES.includes(opts.state as ProposalState)) return live.slice(0, opts.limit);
    const archived = this.deps.archive.list({ ...(opts.state ? { state: opts.state } : {}), limit: opts.limit });
    return [...live, ...archived].sort((a, b) => b.createdAt.localeCompare(a.createdAt)).slice(0, opts.limit);
  }

  /**
   * Records an approval. A repeat by the same person changes nothing (`counted: false`).
   * Resolves once the change is on disk.
   */
  async approve(id: string, by: string, sizeFactor?: number): Promise<{ view: ProposalView; counted: boolean }> {
    const actor = this.awaiting(id);
    if (sizeFactor !== undefined && !isValidSizeFactor(sizeFactor)) {
      throw new InputError('invalid_size_factor', `sizeFactor must be greater than 0 and at most 1, got ${sizeFactor}`, [{ path: 'sizeFactor', message: 'must be > 0 and ≤ 1' }]);
    }
    const ctx = actor.getSnapshot().context;
    if (!countsAsNewApproval(ctx.approvals, by)) {
      this.deps.journal.append({ type: 'approval.ignored', proposalId: id, by, reason: 'repeat approval by the same person' });
      return { view: this.view(id)!, counted: false };
    }
    const at = this.now();
    this.deps.journal.append({ type: 'approval.given', proposalId: id, by, ...(sizeFactor !== undefined ? { sizeFactor } : {}) });
    actor.send({ type: 'approval.given', by, at, ...(sizeFactor !== undefined ? { sizeFactor } : {}) });
    await this.deps.store.flush(id);
    return { view: this.view(id)!, counted: true };
  }

  /** Records a rejection by a person. Resolves once it is on disk. */
  async reject(id: string, by: string, reason?: string): Promise<ProposalView> {
    const actor = this.awaiting(id);
    this.deps.journal.append({ type: 'approval.refused', proposalId: id, by, ...(reason ? { reason } : {}) });
    actor.send({ type: 'approval.refused', by, at: this.now(), ...(reason ? { reason } : {}) });
    await this.deps.store.flush(id);
    return this.view(id)!;
  }

  /** Cancels every live proposal that has not reached `executing` (pause, kill switch). */
  async cancelAll(reason: string, by: string): Promise<number> {
    let n = 0;
    for (const id of [...this.dormant.keys()]) this.wake(id);
    for (const actor of this.actors.values()) {
      const state = actor.getSnapshot().value as ProposalState;
      if (state === 'pending' || state === 'awaiting-approval' || state === 'approved') {
        actor.send({ type: 'proposal.cancelled', reason, by, at: this.now() });
        n += 1;
      }
    }
    await this.deps.store.flush();
    return n;
  }

  /** Makes sure the current snapshot of a proposal is on disk (before an order is sent). */
  async persistNow(id: string): Promise<void> {
    const actor = this.actors.get(id);
    if (actor) this.persist(id, actor);
    await this.deps.store.flush(id);
  }

  /** Stops every actor (their snapshots are already persisted) and waits for the last write. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.dormantTimer) clearTimeout(this.dormantTimer);
    this.dormantTimer = null;
    for (const actor of this.actors.values()) actor.stop();
    this.actors.clear();
    await this.deps.store.flush();
  }

  private awaiting(id: string): ProposalActor {
    const actor = this.actors.get(id) ?? this.wake(id);
    if (!actor) {
      const archived = this.finishing.get(id) ?? this.deps.archive.get(id);
      if (archived) throw new ConflictError('not_awaiting_approval', `proposal ${id} is ${archived.state}, not awaiting approval`, { state: archived.state });
      throw new NotFoundError('proposal_not_found', `no proposal with id ${id}`);
    }
    const state = actor.getSnapshot().value as ProposalState;
    if (state !== 'awaiting-approval') {
      throw new ConflictError('not_awaiting_approval', `proposal ${id} is ${state}, not awaiting approval`, { state });
    }
    const deadline = actor.getSnapshot().context.deadline;
    if (this.now() >= deadline) {
      throw new ConflictError('not_awaiting_approval', `proposal ${id} passed its deadline ${new Date(deadline).toISOString()} and is timing out`, { state: 'timed-out' });
    }
    return actor;
  }

  /** Gives a dormant proposal its actor (its deadline timer re-arms itself on start). */
  private wake(id: string): ProposalActor | undefined {
    const snapshot = this.dormant.get(id);
    if (!snapshot) return undefined;
    this.dormant.delete(id);
    const actor = createActor(this.requireMachine(), { id, snapshot, input: snapshot.context, ...(this.deps.inspect ? { inspect: this.deps.inspect } : {}) });
    this.track(id, actor, 'awaiting-approval', snapshot.context.approvals.length);
    actor.start();
    return actor;
  }

  /** One timer for the earliest dormant deadline: the proposal is woken and times out itself. */
  private armDormantDeadline(): void {
    if (this.dormantTimer) clearTimeout(this.dormantTimer);
    this.dormantTimer = null;
    while (this.dormantDeadlines.length > 0 && !this.dormant.has(this.dormantDeadlines[0]!.id)) this.dormantDeadlines.shift();
    const next = this.dormantDeadlines[0];
    if (!next || this.stopping) return;
    this.dormantTimer = setTimeout(() => {
      const now = this.now();
      while (this.dormantDeadlines.length > 0 && this.dormantDeadlines[0]!.deadline <= now) {
        const { id } = this.dormantDeadlines.shift()!;
        this.wake(id);
      }
      this.armDormantDeadline();
    }, Math.min(Math.max(0, next.deadline - this.now()), MAX_TIMER_MS));
  }

  private track(id: string, actor: ProposalActor, initial: ProposalState | null, approvals = 0): void {
    this.actors.set(id, actor);
    if (initial) this.lastState.set(id, initial);
    this.lastApprovals.set(id, approvals);
    actor.subscribe({
      next: (snapshot) => this.onSnapshot(id, actor, snapshot),
      error: (err) => {
        // An unobserved actor error would be rethrown and kill the process.
        this.deps.logger.error('proposal actor failed', { proposalId: id, error: describeError(err) });
        this.deps.journal.append({ type: 'proposal.transition', proposalId: id, error: describeError(err) });
      },
    });
  }

  private onSnapshot(id: string, actor: ProposalActor, snapshot: ProposalSnapshot): void {
    if (this.stopping) return;
    const to = snapshot.value as ProposalState;
    const from = this.lastState.get(id) ?? null;
    if (from !== to) {
      this.lastState.set(id, to);
      const last = snapshot.context.history[snapshot.context.history.length - 1];
      this.deps.journal.append({
        type: 'proposal.transition', proposalId: id, signalId: snapshot.context.signalId, from, to,
        ...(last?.by ? { by: last.by } : {}), ...(last?.reason ? { reason: last.reason } : {}),
      });
    }
    // Two-person proposals: an approval that does not yet decide is a change worth showing.
    const approvals = snapshot.context.approvals.length;
    const approvalsChanged = (this.lastApprovals.get(id) ?? 0) !== approvals;
    if (snapshot.status === 'done') {
      this.finish(id, snapshot, this.restoring);
    } else if (!(this.restoring && from === to && !approvalsChanged)) {
      // A restored actor re-emits the snapshot it was read from: no need to write it back.
      this.persist(id, actor);
    }
    if (snapshot.status === 'done') this.lastApprovals.delete(id);
    else this.lastApprovals.set(id, approvals);
    if (from !== to || approvalsChanged) this.emit({ view: toProposalView(snapshot.context, to), from, to, restored: this.restoring });
  }

  private persist(id: string, actor: ProposalActor): void {
    void this.deps.store.put({ id, updatedAt: this.now(), snapshot: actor.getPersistedSnapshot() }).catch((err: unknown) => {
      this.deps.logger.error('could not persist a proposal snapshot', { proposalId: id, error: describeError(err) });
    });
  }

  /**
   * A final state is made durable in three steps: the final snapshot is written to the live
   * store, then the proposal is archived and journalled, then removed from the live store. A crash
   * before the first step restores the previous state (its decision was not acknowledged yet);
   * after it, restore finishes the bookkeeping without archiving twice.
   */
  private finish(id: string, snapshot: ProposalSnapshot, restoring: boolean): void {
    const view = toProposalView(snapshot.context, snapshot.value as ProposalState);
    const actor = this.actors.get(id);
    this.actors.delete(id);
    this.lastState.delete(id);
    this.finishing.set(id, view);
    const archive = (checkArchived: boolean) => {
      if (!checkArchived || !this.deps.archive.get(id)) {
        this.deps.archive.add(view, new Date(this.now()).toISOString());
        this.deps.journal.append({ type: 'proposal.finished', proposalId: id, signalId: view.signalId, state: view.state, outcome: view.outcome });
      }
      this.finishing.delete(id);
      return this.deps.store.remove(id);
    };
    const fail = (err: unknown) => this.deps.logger.error('could not finish a proposal in the store', { proposalId: id, error: describeError(err) });
    if (restoring) {
      void archive(true).catch(fail);
      return;
    }
    const persisted = actor ? actor.getPersistedSnapshot() : snapshot;
    void this.deps.store.put({ id, updatedAt: this.now(), snapshot: persisted })
      .then(() => this.deps.store.flush(id))
      .then(() => archive(false))
      .catch(fail);
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

  private requireMachine(): ProposalMachine {
    if (!this.machine) throw new Error('Orchestrator.provide() must be called before use');
    return this.machine;
  }
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
