/**
 * The proposal lifecycle: pending → awaiting-approval → approved → executing → settled, with the
 * exits rejected, timed-out and failed. Pure definition: no I/O and no clock reads (every time
 * comes in an event or an actor's output); the orchestrator provides the invoked actors with
 * `.provide()`.
 */
import { assign, fromCallback, fromPromise, setup } from 'xstate';
import { countsAsNewApproval, effectiveSizeFactor } from '../src/approval/policy';
import { amount, isPositive, toDec } from '../src/amounts';
import { normaliseIdentity } from '../src/identity';
import type {
  Amount, ApprovalRecord, ApprovalRequirement, Fill, OrderIntent, OrderReport, Reason, RiskDecision, Side,
} from '../src/proposal/types';

export const PROPOSAL_STATES = [
  'pending', 'awaiting-approval', 'approved', 'executing', 'settled', 'rejected', 'timed-out', 'failed',
] as const;
export type ProposalState = (typeof PROPOSAL_STATES)[number];
export const FINAL_STATES: readonly ProposalState[] = ['settled', 'rejected', 'timed-out', 'failed'];

/** What the proposal builder hands to a new actor. */
export interface ProposalDraft {
  id: string;
  signalId: string;
  symbol: string;
  side: Side;
  intent: OrderIntent;
  /** Quote-currency notional before the risk policy. */
  notional: number;
  /** Exact base quantity for sells (for a whole-position exit: exactly what is held). */
  quantity: Amount | null;
  price: number;
  priceSource: 'signal' | 'market';
  confidence: number;
  reasons: Reason[];
  explanation: string;
  /** Epoch ms. */
  createdAt: number;
  /** Epoch ms: absolute, so a restart keeps it. */
  deadline: number;
}

export interface HistoryEntry {
  state: ProposalState;
  at: number;
  by?: string;
  reason?: string;
}

/** Who or what decided a final state, and why. */
export interface Outcome {
  state: ProposalState;
  at: number;
  by: string;
  code: string;
  reason: string;
}

export interface ProposalContext extends ProposalDraft {
  /** Notional asked for before any cap. */
  requestedNotional: number;
  risk: RiskDecision | null;
  approval: ApprovalRequirement | null;
  approvals: ApprovalRecord[];
  /** Shrink-only factor from approvers (1 = as proposed). */
  sizeFactor: number;
  /** Derived from the id, so a re-run after a crash finds the same order at the venue. */
  clientOrderId: string;
  /** `dryRun`: approved in live mode while disarmed (see `Recheck`). */
  recheck: { price: number; driftPct: number; at: number; dryRun?: boolean } | null;
  order: OrderReport | null;
  fill: Fill | null;
  history: HistoryEntry[];
  outcome: Outcome | null;
}

/** Output of `assessProposal`. */
export interface Assessment {
  at: number;
  risk: RiskDecision;
  approval: ApprovalRequirement;
}

/** Output of `recheckApproval`: still valid at approval time, or a reason why not. */
export type Recheck =
  /** `dryRun`: approved in live mode while disarmed, so it runs as a dry run whatever happens later. */
  | { at: number; ok: true; price: number; driftPct: number; notional?: number; note?: string; dryRun?: boolean }
  | { at: number; ok: false; code: string; reason: string };

/** Output of `submitOrder`. */
export interface ExecutionResult {
  at: number;
  order: OrderReport;
  fill: Fill | null;
}

export type ProposalEvent =
  | { type: 'approval.given'; by: string; at: number; sizeFactor?: number; label?: string }
  | { type: 'approval.refused'; by: string; at: number; reason?: string }
  | { type: 'proposal.cancelled'; at: number; reason: string; by?: string }
  | { type: 'deadline.reached'; at: number };

/** Client order id of a proposal's order. */
export function clientOrderIdFor(proposalId: string): string {
  return `ct-${proposalId}`;
}

/** Whether a sizeFactor is acceptable: 0 < f ≤ 1 (an approval can only shrink an order). */
export function isValidSizeFactor(f: unknown): f is number {
  return typeof f === 'number' && Number.isFinite(f) && f > 0 && f <= 1;
}



/**
 * The sizeFactor-adjusted notional and quantity, exact: what actually goes to the venue. At a
 * factor of 1 the quantity is the proposal's own to the last place.
 */
export function orderSize(ctx: Pick<ProposalContext, 'notional' | 'quantity' | 'sizeFactor'>): { notional: Amount; quantity: Amount | null } {
  const factor = toDec('sizeFactor', ctx.sizeFactor);
  return {
    notional: amount(toDec('notional', ctx.notional).times(factor)),
    quantity: ctx.quantity === null ? null : amount(toDec('quantity', ctx.quantity).times(factor)),
  };
}

function notProvided(name: string): never {
  throw new Error(`proposal machine: actor ${name} was not provided by the orchestrator`);
}

type CancelEvent = Extract<ProposalEvent, { type: 'proposal.cancelled' }>;

function cancelOutcome({ event }: { event: ProposalEvent }): Outcome {
  const e = event as CancelEvent;
  return { state: 'rejected', at: e.at, by: e.by ?? 'system', code: 'cancelled', reason: e.reason };
}

function cancelEntry({ event }: { event: ProposalEvent }): HistoryEntry {
  const e = event as CancelEvent;
  return { state: 'rejected', at: e.at, by: e.by ?? 'system', reason: e.reason };
}

export const proposalMachine = setup({
  types: {
    context: {} as ProposalContext,
    events: {} as ProposalEvent,
    input: {} as ProposalDraft,
  },
  actors: {
    assessProposal: fromPromise<Assessment, ProposalContext>(async () => notProvided('assessProposal')),
    recheckApproval: fromPromise<Recheck, ProposalContext>(async () => notProvided('recheckApproval')),
    submitOrder: fromPromise<ExecutionResult, ProposalContext>(async () => notProvided('submitOrder')),
    approvalDeadline: fromCallback<ProposalEvent, { deadline: number }>(() => notProvided('approvalDeadline')),
  },
  guards: {
    isRiskBlocked: (_, p: { assessment: Assessment }) => p.assessment.risk.kind === 'block' || p.assessment.risk.kind === 'liquidate',
    needsPerson: (_, p: { assessment: Assessment }) => p.assessment.approval.approvers > 0,
    // Blank ids are refused first (isBlankApprover), so "does not count" here means a repeat.
    isRepeatApprover: ({ context, event }) => event.type === 'approval.given' && !countsAsNewApproval(context.approvals, event.by),
    isBlankApprover: ({ event }) => (event.type === 'approval.given' || event.type === 'approval.refused') && normaliseIdentity(event.by) === '',
    // A decision that arrives at or after the deadline does not count: the deadline decides.
    isPastDeadline: ({ context, event }) => (event.type === 'approval.given' || event.type === 'approval.refused') && event.at >= context.deadline,
    hasInvalidSizeFactor: ({ event }) => event.type === 'approval.given' && event.sizeFactor !== undefined && !isValidSizeFactor(event.sizeFactor),
    completesApproval: ({ context, event }) => {
      if (event.type !== 'approval.given') return false;
      const needed = context.approval?.approvers ?? 1;
      return context.approvals.length + 1 >= needed;
    },
    isRecheckPassed: (_, p: { recheck: Recheck }) => p.recheck.ok,
    isFilled: (_, p: { result: ExecutionResult }) => p.result.fill !== null && isPositive(p.result.fill.quantity),
    /** The venue validated the order and placed nothing (live trading disarmed). */
    isAcceptedDryRun: (_, p: { result: ExecutionResult }) => p.result.order.dryRun === true && p.result.order.status !== 'rejected',
  },
  actions: {
    recordAssessment: assign(({ context }, p: { assessment: Assessment }) => {
      const { risk, approval } = p.assessment;
      // Shrink only: a cap lowers the size, never raises it, and a non-positive cap is not a size.
      const capped = risk.kind === 'cap' && risk.notional > 0 && risk.notional < context.notional ? { notional: risk.notional } : {};
      return { risk, approval, ...capped };
    }),
    recordApproval: assign(({ context, event }) => {
      if (event.type !== 'approval.given') return {};
      const sizeFactor = event.sizeFactor ?? 1;
      const approvals: ApprovalRecord[] = [...context.approvals, { by: normaliseIdentity(event.by), at: event.at, sizeFactor, ...(event.label !== undefined ? { label: event.label } : {}) }];
      return { approvals, sizeFactor: effectiveSizeFactor(approvals) };
    }),
    enterState: assign(({ context }, p: { state: ProposalState; at: number; by?: string; reason?: string }) => {
      const entry: HistoryEntry = { state: p.state, at: p.at };
      if (p.by !== undefined) entry.by = p.by;
      if (p.reason !== undefined) entry.reason = p.reason;
      return { history: [...context.history, entry] };
    }),
    decide: assign((_, p: Outcome) => ({ outcome: p })),
    recordRecheck: assign(({ context }, p: { recheck: Recheck }) => {
      if (!p.recheck.ok) return {};
      const recheck = { price: p.recheck.price, driftPct: p.recheck.driftPct, at: p.recheck.at, ...(p.recheck.dryRun ? { dryRun: true } : {}) };
      // A re-check may cap the size again (risk changed since the card); it never raises it.
      const n = p.recheck.notional;
      const capped = n !== undefined && Number.isFinite(n) && n > 0 && n < context.notional ? { notional: n } : {};
      return { recheck, ...capped };
    }),
    recordExecution: assign((_, p: { result: ExecutionResult }) => ({ order: p.result.order, fill: p.result.fill })),
  },
}).createMachine({
  id: 'proposal',
  context: ({ input }) => ({
    ...input,
    requestedNotional: input.notional,
    risk: null,
    approval: null,
    approvals: [],
    sizeFactor: 1,
    clientOrderId: clientOrderIdFor(input.id),
    recheck: null,
    order: null,
    fill: null,
    history: [{ state: 'pending', at: input.createdAt }],
    outcome: null,
  }),
  initial: 'pending',
  states: {
    pending: {
      invoke: {
        id: 'assessProposal',
        src: 'assessProposal',
        input: ({ context }) => context,
        onDone: [
          {
            guard: { type: 'isRiskBlocked', params: ({ event }) => ({ assessment: event.output }) },
            target: 'rejected',
            actions: [
              { type: 'recordAssessment', params: ({ event }) => ({ assessment: event.output }) },
              {
                type: 'decide',
                params: ({ event }) => {
                  const r = event.output.risk as Extract<RiskDecision, { code: string }>;
                  return { state: 'rejected', at: event.output.at, by: 'risk-policy', code: r.code, reason: r.reason };
                },
              },
              {
                type: 'enterState',
                params: ({ event }) => ({ state: 'rejected', at: event.output.at, by: 'risk-policy', reason: (event.output.risk as Extract<RiskDecision, { code: string }>).reason }),
              },
            ],
          },
          {
            guard: { type: 'needsPerson', params: ({ event }) => ({ assessment: event.output }) },
            target: 'awaiting-approval',
            actions: [
              { type: 'recordAssessment', params: ({ event }) => ({ assessment: event.output }) },
              { type: 'enterState', params: ({ event }) => ({ state: 'awaiting-approval', at: event.output.at }) },
            ],
          },
          {
            target: 'approved',
            actions: [
              { type: 'recordAssessment', params: ({ event }) => ({ assessment: event.output }) },
              {
                type: 'enterState',
                params: ({ event }) => ({ state: 'approved', at: event.output.at, by: 'approval-policy', reason: event.output.approval.reasons.map((r) => r.message).join('; ') || 'auto-approved' }),
              },
            ],
          },
        ],
        onError: {
          target: 'rejected',
          actions: [
            { type: 'decide', params: ({ context, event }) => ({ state: 'rejected', at: errorTime(event.error, context), by: 'system', code: 'assessment_failed', reason: errorText(event.error) }) },
            { type: 'enterState', params: ({ context, event }) => ({ state: 'rejected', at: errorTime(event.error, context), by: 'system', reason: errorText(event.error) }) },
          ],
        },
      },
      on: {
        'proposal.cancelled': {
          target: 'rejected',
          actions: [{ type: 'decide', params: cancelOutcome }, { type: 'enterState', params: cancelEntry }],
        },
      },
    },
    'awaiting-approval': {
      invoke: {
        id: 'approvalDeadline',
        src: 'approvalDeadline',
        input: ({ context }) => ({ deadline: context.deadline }),
      },
      on: {
        'approval.given': [
          { guard: 'isBlankApprover' },
          { guard: 'isPastDeadline' },
          { guard: 'isRepeatApprover' },
          { guard: 'hasInvalidSizeFactor' },
          {
            guard: 'completesApproval',
            target: 'approved',
            actions: [
              'recordApproval',
              {
                type: 'enterState',
                params: ({ event }) => ({ state: 'approved', at: event.at, by: normaliseIdentity((event as { by: string }).by) }),
              },
            ],
          },
          { actions: 'recordApproval' },
        ],
        'approval.refused': [{ guard: 'isBlankApprover' }, { guard: 'isPastDeadline' }, {
          target: 'rejected',
          actions: [
            {
              type: 'decide',
              params: ({ event }) => {
                const e = event as Extract<ProposalEvent, { type: 'approval.refused' }>;
                return { state: 'rejected', at: e.at, by: normaliseIdentity(e.by), code: 'refused', reason: e.reason ?? 'rejected by operator' };
              },
            },
            {
              type: 'enterState',
              params: ({ event }) => {
                const e = event as Extract<ProposalEvent, { type: 'approval.refused' }>;
                return { state: 'rejected', at: e.at, by: normaliseIdentity(e.by), reason: e.reason ?? 'rejected by operator' };
              },
            },
          ],
        }],
        'proposal.cancelled': {
          target: 'rejected',
          actions: [{ type: 'decide', params: cancelOutcome }, { type: 'enterState', params: cancelEntry }],
        },
        'deadline.reached': {
          target: 'timed-out',
          actions: [
            { type: 'decide', params: ({ event, context }) => ({ state: 'timed-out', at: event.at, by: 'approval-deadline', code: 'timeout', reason: `no decision before the deadline ${new Date(context.deadline).toISOString()}` }) },
            { type: 'enterState', params: ({ event }) => ({ state: 'timed-out', at: event.at, by: 'approval-deadline', reason: 'no decision before the deadline' }) },
          ],
        },
      },
    },
    approved: {
      invoke: {
        id: 'recheckApproval',
        src: 'recheckApproval',
        input: ({ context }) => context,
        onDone: [
          {
            guard: { type: 'isRecheckPassed', params: ({ event }) => ({ recheck: event.output }) },
            target: 'executing',
            actions: [
              { type: 'recordRecheck', params: ({ event }) => ({ recheck: event.output }) },
              { type: 'enterState', params: ({ event }) => ({ state: 'executing', at: event.output.at }) },
            ],
          },
          {
            target: 'rejected',
            actions: [
              {
                type: 'decide',
                params: ({ event }) => {
                  const r = event.output as Extract<Recheck, { ok: false }>;
                  return { state: 'rejected', at: r.at, by: 'approval-recheck', code: r.code, reason: r.reason };
                },
              },
              {
                type: 'enterState',
                params: ({ event }) => {
                  const r = event.output as Extract<Recheck, { ok: false }>;
                  return { state: 'rejected', at: r.at, by: 'approval-recheck', reason: r.reason };
                },
              },
            ],
          },
        ],
        onError: {
          target: 'rejected',
          actions: [
            { type: 'decide', params: ({ context, event }) => ({ state: 'rejected', at: errorTime(event.error, context), by: 'approval-recheck', code: 'recheck_failed', reason: errorText(event.error) }) },
            { type: 'enterState', params: ({ context, event }) => ({ state: 'rejected', at: errorTime(event.error, context), by: 'approval-recheck', reason: errorText(event.error) }) },
          ],
        },
      },
      on: {
        'proposal.cancelled': {
          target: 'rejected',
          actions: [{ type: 'decide', params: cancelOutcome }, { type: 'enterState', params: cancelEntry }],
        },
      },
    },
    // Once an order may be at the venue, nothing cancels the proposal: the venue decides.
    executing: {
      invoke: {
        id: 'submitOrder',
        src: 'submitOrder',
        input: ({ context }) => context,
        onDone: [
          {
            guard: { type: 'isAcceptedDryRun', params: ({ event }) => ({ result: event.output }) },
            target: 'settled',
            actions: [
              { type: 'recordExecution', params: ({ event }) => ({ result: event.output }) },
              { type: 'decide', params: ({ event }) => ({ state: 'settled', at: event.output.at, by: event.output.order.venue, code: 'dry_run', reason: `dry run: ${event.output.order.venue} accepted the order and placed nothing (live trading is disarmed)` }) },
              { type: 'enterState', params: ({ event }) => ({ state: 'settled', at: event.output.at, by: event.output.order.venue }) },
            ],
          },
          {
            guard: { type: 'isFilled', params: ({ event }) => ({ result: event.output }) },
            target: 'settled',
            actions: [
              { type: 'recordExecution', params: ({ event }) => ({ result: event.output }) },
              { type: 'decide', params: ({ event }) => ({ state: 'settled', at: event.output.at, by: event.output.order.venue, code: 'filled', reason: `filled ${event.output.fill?.quantity} at ${event.output.fill?.price}` }) },
              { type: 'enterState', params: ({ event }) => ({ state: 'settled', at: event.output.at, by: event.output.order.venue }) },
            ],
          },
          {
            target: 'failed',
            actions: [
              { type: 'recordExecution', params: ({ event }) => ({ result: event.output }) },
              {
                type: 'decide',
                params: ({ event }) => ({
                  state: 'failed', at: event.output.at, by: event.output.order.venue,
                  code: event.output.order.status === 'rejected' ? 'venue_rejected' : 'not_filled',
                  reason: event.output.order.rejectReason ?? `order ended ${event.output.order.status} with nothing filled`,
                }),
              },
              { type: 'enterState', params: ({ event }) => ({ state: 'failed', at: event.output.at, by: event.output.order.venue, reason: event.output.order.rejectReason ?? event.output.order.status }) },
            ],
          },
        ],
        onError: {
          target: 'failed',
          actions: [
            { type: 'decide', params: ({ context, event }) => ({ state: 'failed', at: errorTime(event.error, context), by: 'execution-router', code: errorCode(event.error, 'submit_failed'), reason: errorText(event.error) }) },
            { type: 'enterState', params: ({ context, event }) => ({ state: 'failed', at: errorTime(event.error, context), by: 'execution-router', reason: errorText(event.error) }) },
          ],
        },
      },
    },
    settled: { type: 'final' },
    rejected: { type: 'final' },
    'timed-out': { type: 'final' },
    failed: { type: 'final' },
  },
});

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function errorCode(error: unknown, fallback: string): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : fallback;
}

/** Actors attach `at` to the errors they throw; otherwise the last known time is used. */
function errorTime(error: unknown, context: ProposalContext): number {
  const at = (error as { at?: unknown } | null)?.at;
  if (typeof at === 'number') return at;
  return context.history[context.history.length - 1]?.at ?? context.createdAt;
}
