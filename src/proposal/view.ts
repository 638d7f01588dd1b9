/**
 * The proposal as the operator API, the console and the journal show it: plain data made from
 * the actor's context and state.
 */
import type { HistoryEntry, ProposalContext, ProposalState } from '../../machines/proposal.machine';
import type { Amount, ApprovalRequirement, Fill, OrderReport, Reason, RiskDecision } from './types';

export interface ProposalView {
  id: string;
  signalId: string;
  state: ProposalState;
  symbol: string;
  side: 'buy' | 'sell';
  intent: 'buy' | 'sell' | 'liquidate';
  notional: number;
  requestedNotional: number;
  quantity: Amount | null;
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
  approvals: Array<{ by: string; at: string; sizeFactor: number; label?: string }>;
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
    approvals: ctx.approvals.map((a) => ({ by: a.by, at: iso(a.at), sizeFactor: a.sizeFactor, ...(a.label !== undefined ? { label: a.label } : {}) })),
    history: ctx.history.map(historyView),
    outcome: ctx.outcome ? { ...ctx.outcome, at: iso(ctx.outcome.at) } : null,
    clientOrderId: ctx.clientOrderId,
  };
  if (ctx.order) view.order = ctx.order;
  if (ctx.fill) view.fill = ctx.fill;
  return view;
}

/** Amount fields shown as numbers, with the exact decimal text beside them. */
type Displayed<T, K extends keyof T> = Omit<T, K> & Record<K, number> & { exact: Pick<T, K> };

/** A proposal as JSON answers carry it: amounts as numbers for display, exact decimal text under `exact`. */
export type ProposalJson = Omit<ProposalView, 'quantity' | 'order' | 'fill'> & {
  quantity: number | null;
  exactQuantity: Amount | null;
  order?: Displayed<OrderReport, 'filledQuantity' | 'avgPrice' | 'fee'>;
  fill?: Displayed<Fill, 'quantity' | 'price' | 'fee' | 'notional'>;
};

export function proposalJson(view: ProposalView): ProposalJson {
  const { quantity, order, fill, ...rest } = view;
  const out: ProposalJson = { ...rest, quantity: quantity === null ? null : Number(quantity), exactQuantity: quantity };
  if (order) {
    out.order = {
      ...order, filledQuantity: Number(order.filledQuantity), avgPrice: Number(order.avgPrice), fee: Number(order.fee),
      exact: { filledQuantity: order.filledQuantity, avgPrice: order.avgPrice, fee: order.fee },
    };
  }
  if (fill) {
    out.fill = {
      ...fill, quantity: Number(fill.quantity), price: Number(fill.price), fee: Number(fill.fee), notional: Number(fill.notional),
      exact: { quantity: fill.quantity, price: fill.price, fee: fill.fee, notional: fill.notional },
    };
  }
  return out;
}
