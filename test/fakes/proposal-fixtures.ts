/**
 * Plain-data builders for proposal machine tests: a draft, the outputs of the invoked actors
 * (assessment, re-check, execution result) and a venue order report. Every time is a fixed epoch
 * number so tests can tell a time taken from an event from one read off a clock.
 */
import type { Assessment, ExecutionResult, ProposalContext, ProposalDraft, Recheck } from '../../machines/proposal.machine';
import type { ApprovalRequirement, Fill, OrderReport, RiskDecision } from '../../src/proposal/types';

/** Creation time of the default draft (epoch ms, 2023-11-14T22:13:20Z). */
export const T0 = 1_700_000_000_000;
/** Approval window of the default draft. */
export const WINDOW_MS = 5 * 60_000;

/** A buy draft for 100 000 KRW of BTC, created at T0 with a deadline five minutes later. */
export function makeDraft(overrides: Partial<ProposalDraft> = {}): ProposalDraft {
  return {
    id: 'p-001',
    signalId: 's-001',
    symbol: 'BTC/KRW',
    side: 'buy',
    intent: 'buy',
    notional: 100_000,
    quantity: null,
    price: 50_000_000,
    priceSource: 'signal',
    confidence: 0.9,
    reasons: [{ code: 'rsi_oversold', message: 'RSI 28 below 30' }],
    explanation: 'oversold bounce',
    createdAt: T0,
    deadline: T0 + WINDOW_MS,
    ...overrides,
  };
}

/** An allow verdict for `notional`. */
export function allow(notional = 100_000): RiskDecision {
  return { kind: 'allow', notional, reasons: [] };
}

/** A cap verdict lowering the order to `notional`. */
export function cap(notional: number): RiskDecision {
  return { kind: 'cap', code: 'max_position', reason: `capped to ${notional} by the position limit`, notional, reasons: [] };
}

/** A block verdict. */
export function block(): RiskDecision {
  return { kind: 'block', code: 'daily_loss_limit', reason: 'daily loss limit reached', reasons: [] };
}

/** A liquidate verdict. */
export function liquidate(): RiskDecision {
  return { kind: 'liquidate', code: 'daily_liquidate', reason: 'daily loss beyond the liquidation line', reasons: [], breaker: 'reducing' };
}

/** An approval requirement for `approvers` distinct people. */
export function requirement(approvers: number): ApprovalRequirement {
  return {
    approvers,
    allowPartial: true,
    reasons: approvers === 0 ? [{ code: 'auto_approved', message: 'paper mode, small and confident' }] : [{ code: 'live_mode', message: 'live mode: a person approves every order' }],
  };
}

/** Output of assessProposal. */
export function makeAssessment(at: number, risk: RiskDecision = allow(), approvers = 1): Assessment {
  return { at, risk, approval: requirement(approvers) };
}

/** A passed re-check, optionally capping the notional again. */
export function recheckOk(at: number, notional?: number): Recheck {
  return notional === undefined ? { at, ok: true, price: 50_100_000, driftPct: 0.2 } : { at, ok: true, price: 50_100_000, driftPct: 0.2, notional };
}

/** A failed re-check: the price moved too far since the card. */
export function recheckStale(at: number): Recheck {
  return { at, ok: false, code: 'stale_price', reason: 'price moved 3.1% since the card (limit 1%)' };
}

/** A venue order report for the proposal in `ctx`. */
export function makeOrder(ctx: Pick<ProposalContext, 'clientOrderId' | 'symbol' | 'side'>, overrides: Partial<OrderReport> = {}): OrderReport {
  return {
    clientOrderId: ctx.clientOrderId,
    venueOrderId: 'v-1',
    venue: 'paper',
    symbol: ctx.symbol,
    side: ctx.side,
    status: 'filled',
    filledQuantity: '0.002',
    avgPrice: '50000000',
    fee: '50',
    submittedAt: new Date(T0).toISOString(),
    updatedAt: new Date(T0).toISOString(),
    ...overrides,
  };
}

/** A complete fill of 0.002 at 50 000 000. */
export function makeFill(overrides: Partial<Fill> = {}): Fill {
  return { quantity: '0.002', price: '50000000', fee: '50', notional: '100000', at: new Date(T0).toISOString(), ...overrides };
}

/** A filled execution result. */
export function filledResult(at: number, ctx: Pick<ProposalContext, 'clientOrderId' | 'symbol' | 'side'>): ExecutionResult {
  return { at, order: makeOrder(ctx), fill: makeFill() };
}

/** A venue rejection: nothing filled. */
export function rejectedResult(at: number, ctx: Pick<ProposalContext, 'clientOrderId' | 'symbol' | 'side'>): ExecutionResult {
  return {
    at,
    order: makeOrder(ctx, { status: 'rejected', filledQuantity: '0', avgPrice: '0', fee: '0', rejectReason: 'under_min_total_bid' }),
    fill: null,
  };
}

/** An order that ended cancelled with nothing filled and no reason from the venue. */
export function unfilledResult(at: number, ctx: Pick<ProposalContext, 'clientOrderId' | 'symbol' | 'side'>): ExecutionResult {
  return { at, order: makeOrder(ctx, { status: 'cancelled', filledQuantity: '0', avgPrice: '0', fee: '0' }), fill: makeFill({ quantity: '0', notional: '0' }) };
}

/** An error as an actor throws it: with a time and optionally a code. */
export function timedError(message: string, at: number, code?: string): Error & { at: number; code?: string } {
  const e = new Error(message) as Error & { at: number; code?: string };
  e.at = at;
  if (code !== undefined) e.code = code;
  return e;
}
