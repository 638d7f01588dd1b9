/**
 * Benchmark 2, child phases: cost of one persisted transition with a given finished history.
 *
 *   prepare  write `finished` settled proposals to the archive and the journal (the lines the
 *            orchestrator writes for them), spread over `days` days up to today, and leave
 *            `live` proposals awaiting approval in the live store
 *   measure  restore, then run `proposals` proposals one after another through
 *            pending → awaiting-approval → approved → executing → settled, each step on disk
 *
 * Run by `bench/run.ts`; each phase answers with one JSON line.
 */
import { toProposalView } from '../src/proposal/view';
import {
  DAY_MS, TRANSITIONS_PER_PROPOSAL, childMain, fillingServices, makeDraft, nextTurn, openRuntime, settledContext, StateWatcher, waitingServices, type Runtime,
} from './lib';

export interface TransitionPrepared {
  finished: number;
  live: number;
  prepareMs: number;
}

export interface TransitionMeasured {
  proposals: number;
  transitions: number;
  /** Wall time per transition, every snapshot on disk before the next step. */
  perTransitionUs: number;
  /** `orchestrator.start` until `awaiting-approval` is on disk. */
  startMs: number;
  /** `orchestrator.approve` until `settled` is archived and removed from the live store. */
  approveToSettledMs: number;
  writesPerProposal: number;
  cpuPerTransitionUs: number;
  restoreMs: number;
}

async function prepare(args: { dataDir: string; finished: number; days: number; live: number }): Promise<TransitionPrepared> {
  const started = performance.now();
  const rt = await openRuntime(args.dataDir, () => waitingServices());
  writeHistory(rt, args.finished, args.days);
  const ids = await Promise.all(Array.from({ length: args.live }, () => rt.orchestrator.start(makeDraft(Date.now())).then((v) => v.id)));
  while (rt.orchestrator.live().some((p) => p.state !== 'awaiting-approval')) await nextTurn();
  await rt.store.flush();
  if (rt.orchestrator.live().length !== ids.length) throw new Error(`expected ${ids.length} live proposals, have ${rt.orchestrator.live().length}`);
  await rt.close();
  return { finished: args.finished, live: args.live, prepareMs: performance.now() - started };
}

/**
 * Appends what the orchestrator writes for a settled proposal: its archive record and the
 * journal lines (created, transitions, approval, order, fill, finished), oldest first and ending
 * now, so today's files hold their share of history too.
 */
function writeHistory(rt: Runtime, finished: number, days: number): void {
  const end = Date.now() - 60_000;
  const span = days * DAY_MS;
  const stepMs = 2_000;
  const iso = (ms: number) => new Date(ms).toISOString();
  for (let i = 0; i < finished; i++) {
    const createdAt = Math.round(end - span + (i * span) / finished);
    const draft = makeDraft(createdAt);
    const ctx = settledContext(draft, stepMs);
    const at = (n: number) => iso(createdAt + n * stepMs);
    const base = { proposalId: draft.id, signalId: draft.signalId };
    const j = rt.journal;
    j.append({ type: 'proposal.created', ...base, draft, at: at(0) });
    j.append({ type: 'proposal.transition', ...base, from: 'pending', to: 'awaiting-approval', at: at(1) });
    j.append({ type: 'approval.given', proposalId: draft.id, by: 'telegram:10001', at: at(2) });
    j.append({ type: 'proposal.transition', ...base, from: 'awaiting-approval', to: 'approved', by: 'telegram:10001', at: at(2) });
    j.append({ type: 'proposal.transition', ...base, from: 'approved', to: 'executing', at: at(3) });
    j.append({ type: 'order.filled', proposalId: draft.id, clientOrderId: ctx.clientOrderId, order: ctx.order, fill: ctx.fill, at: at(4) });
    j.append({ type: 'proposal.transition', ...base, from: 'executing', to: 'settled', by: 'paper', at: at(4) });
    const view = toProposalView(ctx, 'settled');
    rt.archive.add(view, at(4));
    j.append({ type: 'proposal.finished', ...base, state: view.state, outcome: view.outcome, at: at(4) });
  }
}

async function measure(args: { dataDir: string; proposals: number; warmup: number }): Promise<TransitionMeasured> {
  const rt = await openRuntime(args.dataDir, fillingServices);
  const r0 = performance.now();
  await rt.orchestrator.restore();
  const restoreMs = performance.now() - r0;
  await rt.store.flush();
  const watcher = new StateWatcher(rt.orchestrator);

  let startMs = 0;
  let approveMs = 0;
  const cycle = async () => {
    const t0 = performance.now();
    const { id } = await rt.orchestrator.start(makeDraft(Date.now()));
    await watcher.until(id, 'awaiting-approval');
    await rt.store.flush();
    const t1 = performance.now();
    await rt.orchestrator.approve(id, 'telegram:10001');
    await watcher.until(id, 'settled');
    await rt.store.flush();
    const t2 = performance.now();
    startMs += t1 - t0;
    approveMs += t2 - t1;
  };

  for (let i = 0; i < args.warmup; i++) await cycle();
  startMs = 0;
  approveMs = 0;
  const writes0 = rt.store.writeCount;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < args.proposals; i++) await cycle();
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const writes = rt.store.writeCount - writes0;
  await rt.close();

  const transitions = args.proposals * TRANSITIONS_PER_PROPOSAL;
  return {
    proposals: args.proposals,
    transitions,
    perTransitionUs: (wallMs * 1000) / transitions,
    startMs: startMs / args.proposals,
    approveToSettledMs: approveMs / args.proposals,
    writesPerProposal: writes / args.proposals,
    cpuPerTransitionUs: (cpu.user + cpu.system) / transitions,
    restoreMs,
  };
}

childMain({ prepare, measure });
