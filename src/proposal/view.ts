/**
 * The proposal as the operator API, the console and the journal show it: plain data made from
 * the actor's context and state.
 */
import type { HistoryEntry, ProposalContext, ProposalState } from '../../machines/proposal.machine';
import type { ApprovalRequirement, Fill, OrderReport, Reason, RiskDecision } from './types';

export interface ProposalView {
  id: string;
  signalId: string;
  state: ProposalState;
  symbol: string;
  side: 'buy' | 'sell';
  intent: 'buy' | 'sell' | 'liquidate';
  notional: number;
  requestedNotional: number;
  quantity: number | null;
  price: number;
  priceSource: 'signal' | 'market';
  confidence: number;
  reasons: Reason[];
  explanation: string;
  risk: RiskDecision | null;
  approval: ApprovalRequirement | null;
  requiredApprovals: number;
  sizeFactor: number;
  createdAt: string;
  deadline: string;
  approvals: Array<{ by: string; at: string; sizeFactor: number }>;
  history: Array<{ state: ProposalState; at: string; by?: string; reason?: string }>;
  outcome: { state: ProposalState; at: string; by: string; code: string; reason: string } | null;
  clientOrderId: string;
  order?: OrderReport;
  fill?: Fill;
}

const iso = (ms: number) => new Date(ms).toISOString();

function historyView(h: HistoryEntry): ProposalView['history'][number] {
  const out: ProposalView['history'][number] = { state: h.state, at: iso(h.at) };
  if (h.by !== undefined) out.by = h.by;
  if (h.reason !== undefined) out.reason = h.reason;
  return out;
}

export function toProposalView(ctx: ProposalContext, state: ProposalState): ProposalView {
  const view: ProposalView = {
    id: ctx.id,
    signalId: ctx.signalId,
    state,
    symbol: ctx.symbol,
    side: ctx.side,
    intent: ctx.intent,
    notional: ctx.notional,
    requestedNotional: ctx.requestedNotional,
    quantity: ctx.quantity,
    price: ctx.price,
    priceSource: ctx.priceSource,
    confidence: ctx.confidence,
    reasons: ctx.reasons,
    explanation: ctx.explanation,
    risk: ctx.risk,
    approval: ctx.approval,
    requiredApprovals: ctx.approval?.approvers ?? 0,
    sizeFactor: ctx.sizeFactor,
    createdAt: iso(ctx.createdAt),
    deadline: iso(ctx.deadline),
    approvals: ctx.approvals.map((a) => ({ by: a.by, at: iso(a.at), sizeFactor: a.sizeFactor })),
    history: ctx.history.map(historyView),
    outcome: ctx.outcome ? { ...ctx.outcome, at: iso(ctx.outcome.at) } : null,
    clientOrderId: ctx.clientOrderId,
  };
  if (ctx.order) view.order = ctx.order;
  if (ctx.fill) view.fill = ctx.fill;
  return view;
}
