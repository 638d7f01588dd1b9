/**
 * The approval policy: how many distinct people must approve a proposal, and how approvals
 * combine. Pure: plain data in, plain data out. Corrupt numbers (NaN, negative) throw
 * `InvariantError` rather than silently auto-approving.
 */
import { InvariantError } from '../errors';
import { normaliseIdentity } from '../identity';
import type { ApprovalLimits, ApprovalRecord, ApprovalRequirement, OrderIntent, Reason } from '../proposal/types';

/**
 * Decides who must approve an order.
 *
 * - `liquidate`: nobody (a breaker or a confirmed /liquidate already decided); no partial size.
 * - otherwise one person when the mode is live, the confidence is below the minimum, or the
 *   notional is above the auto-approve maximum; two people when the notional is at or above the
 *   two-person threshold; nobody otherwise. Buys and sells may be approved at a smaller size.
 */
export function requiredApproval(
  p: { notional: number; confidence: number; intent: OrderIntent },
  limits: ApprovalLimits,
): ApprovalRequirement {
  checkLimits(limits);

  if (p.intent === 'liquidate') {
    return {
      approvers: 0,
      allowPartial: false,
      reasons: [{ code: 'liquidation', message: 'liquidation needs no approval: a breaker or a confirmed /liquidate already decided' }],
    };
  }

  requireFinite('notional', p.notional, true);
  requireFinite('confidence', p.confidence, false);

  const reasons: Reason[] = [];
  let approvers = 0;

  if (limits.mode === 'live') {
    approvers = Math.max(approvers, 1);
    reasons.push({ code: 'live_mode', message: 'live mode: a person approves every order' });
  }
  if (p.confidence < limits.minConfidence) {
    approvers = Math.max(approvers, 1);
    reasons.push({ code: 'low_confidence', message: `confidence ${p.confidence} is below the minimum ${limits.minConfidence}` });
  }
  if (p.notional > limits.autoMaxNotional) {
    approvers = Math.max(approvers, 1);
    reasons.push({ code: 'large_notional', message: `notional ${p.notional} is above the auto-approve maximum ${limits.autoMaxNotional}` });
  }
  if (p.notional >= limits.twoPersonNotional) {
    approvers = 2;
    reasons.push({ code: 'two_person', message: `notional ${p.notional} is at or above the two-person threshold ${limits.twoPersonNotional}` });
  }
  if (approvers === 0) {
    reasons.push({
      code: 'auto_approved',
      message: `paper mode, confidence ${p.confidence} at or above ${limits.minConfidence}, notional ${p.notional} at or below ${limits.autoMaxNotional}`,
    });
  }

  return { approvers, allowPartial: true, reasons };
}

/**
 * Whether an approval by the principal `by` adds a new distinct approver. Principals are compared
 * after Unicode normalisation (NFKC, trimmed, lower case); an empty one never counts. Labels do
 * not count: two shared-token approvals are one principal, `api`, whatever they are labelled.
 */
export function countsAsNewApproval(existing: ApprovalRecord[], by: string): boolean {
  const id = typeof by === 'string' ? normaliseIdentity(by) : '';
  if (id === '') return false;
  return !existing.some((a) => typeof a.by === 'string' && normaliseIdentity(a.by) === id);
}

/**
 * The size factor the order goes out with: the smallest factor any approver chose, 1 when there
 * are none. Shrink-only: a factor above 1 counts as 1. A factor that is not in (0, ∞) is corrupt
 * data and throws `InvariantError`.
 */
export function effectiveSizeFactor(approvals: ApprovalRecord[]): number {
  let factor = 1;
  for (const a of approvals) {
    if (typeof a.sizeFactor !== 'number' || !Number.isFinite(a.sizeFactor) || a.sizeFactor <= 0) {
      throw new InvariantError('invalid_size_factor', `approval by ${a.by} has size factor ${String(a.sizeFactor)}; expected a number above 0`, {
        by: a.by,
        sizeFactor: a.sizeFactor,
      });
    }
    factor = Math.min(factor, a.sizeFactor);
  }
  return factor;
}

function requireFinite(field: string, value: unknown, nonNegative: boolean): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || (nonNegative && value < 0)) {
    throw new InvariantError('invalid_approval_input', `${field} must be a ${nonNegative ? 'non-negative ' : ''}finite number, got ${String(value)}`, {
      field,
      value,
    });
  }
}

function checkLimits(limits: ApprovalLimits): void {
  if (limits.mode !== 'paper' && limits.mode !== 'live') {
    throw new InvariantError('invalid_approval_limits', `approval mode must be paper or live, got ${String(limits.mode)}`, { mode: limits.mode });
  }
  for (const key of ['minConfidence', 'autoMaxNotional', 'twoPersonNotional'] as const) {
    const value = limits[key];
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new InvariantError('invalid_approval_limits', `approval limit ${key} must be a finite number, got ${String(value)}`, { key, value });
    }
  }
}
