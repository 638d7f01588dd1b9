import { expect } from 'chai';
import { countsAsNewApproval, effectiveSizeFactor, requiredApproval } from '../../src/approval/policy';
import { InvariantError } from '../../src/errors';
import type { ApprovalLimits, ApprovalRecord, ApprovalRequirement } from '../../src/proposal/types';

const paper: ApprovalLimits = { mode: 'paper', minConfidence: 0.7, autoMaxNotional: 100_000, twoPersonNotional: 1_000_000 };
const live: ApprovalLimits = { ...paper, mode: 'live' };

function codes(r: ApprovalRequirement): string[] {
  return r.reasons.map((x) => x.code);
}

function approval(by: string, sizeFactor = 1): ApprovalRecord {
  return { by, at: 0, sizeFactor };
}

describe('requiredApproval', () => {
  it('auto-approves when paper mode, confident enough and small', () => {
    const r = requiredApproval({ notional: 50_000, confidence: 0.9, intent: 'buy' }, paper);
    expect(r.approvers).to.equal(0);
    expect(r.allowPartial).to.equal(true);
    expect(codes(r)).to.deep.equal(['auto_approved']);
  });

  it('needs one person when the mode is live', () => {
    const r = requiredApproval({ notional: 50_000, confidence: 0.9, intent: 'buy' }, live);
    expect(r.approvers).to.equal(1);
    expect(codes(r)).to.deep.equal(['live_mode']);
  });

  it('needs one person for a sell when the mode is live', () => {
    const r = requiredApproval({ notional: 50_000, confidence: 0.9, intent: 'sell' }, live);
    expect(r.approvers).to.equal(1);
    expect(r.allowPartial).to.equal(true);
  });

  it('needs one person when confidence is below the minimum', () => {
    const r = requiredApproval({ notional: 50_000, confidence: 0.69, intent: 'buy' }, paper);
    expect(r.approvers).to.equal(1);
    expect(codes(r)).to.deep.equal(['low_confidence']);
    expect(r.reasons[0]!.message).to.contain('0.69').and.contain('0.7');
  });

  it('needs no person when confidence is exactly at the minimum', () => {
    const r = requiredApproval({ notional: 50_000, confidence: 0.7, intent: 'buy' }, paper);
    expect(r.approvers).to.equal(0);
  });

  it('needs no person when the notional is exactly the auto-approve maximum', () => {
    const r = requiredApproval({ notional: 100_000, confidence: 0.9, intent: 'buy' }, paper);
    expect(r.approvers).to.equal(0);
  });

  it('needs one person when the notional is one unit above the auto-approve maximum', () => {
    const r = requiredApproval({ notional: 100_001, confidence: 0.9, intent: 'buy' }, paper);
    expect(r.approvers).to.equal(1);
    expect(codes(r)).to.deep.equal(['large_notional']);
    expect(r.reasons[0]!.message).to.contain('100001').and.contain('100000');
  });

  it('needs one person when the notional is one unit under the two-person threshold', () => {
    const r = requiredApproval({ notional: 999_999, confidence: 0.9, intent: 'buy' }, paper);
    expect(r.approvers).to.equal(1);
  });

  it('needs two people when the notional is exactly the two-person threshold', () => {
    const r = requiredApproval({ notional: 1_000_000, confidence: 0.9, intent: 'buy' }, paper);
    expect(r.approvers).to.equal(2);
    expect(codes(r)).to.deep.equal(['large_notional', 'two_person']);
  });

  it('lists every rule that fired when several do', () => {
    const r = requiredApproval({ notional: 2_000_000, confidence: 0.1, intent: 'buy' }, live);
    expect(r.approvers).to.equal(2);
    expect(codes(r)).to.deep.equal(['live_mode', 'low_confidence', 'large_notional', 'two_person']);
  });

  it('needs two people when the two-person threshold is below the auto-approve maximum', () => {
    const r = requiredApproval({ notional: 60_000, confidence: 0.9, intent: 'buy' }, { ...paper, twoPersonNotional: 50_000 });
    expect(r.approvers).to.equal(2);
    expect(codes(r)).to.deep.equal(['two_person']);
  });

  it('needs nobody and allows no partial size when the intent is liquidate, even live and large', () => {
    const r = requiredApproval({ notional: 50_000_000, confidence: 0, intent: 'liquidate' }, live);
    expect(r.approvers).to.equal(0);
    expect(r.allowPartial).to.equal(false);
    expect(codes(r)).to.deep.equal(['liquidation']);
  });

  it('throws InvariantError rather than auto-approving when confidence is NaN', () => {
    expect(() => requiredApproval({ notional: 50_000, confidence: Number.NaN, intent: 'buy' }, paper)).to.throw(InvariantError, /confidence/);
  });

  it('throws InvariantError when the notional is negative', () => {
    expect(() => requiredApproval({ notional: -1, confidence: 0.9, intent: 'buy' }, paper)).to.throw(InvariantError, /notional/);
  });

  it('throws InvariantError when a limit is NaN', () => {
    expect(() => requiredApproval({ notional: 1, confidence: 0.9, intent: 'buy' }, { ...paper, autoMaxNotional: Number.NaN })).to.throw(InvariantError);
  });
});

describe('countsAsNewApproval', () => {
  it('counts the first approval when there are none', () => {
    expect(countsAsNewApproval([], 'alice')).to.equal(true);
  });

  it('counts a different person', () => {
    expect(countsAsNewApproval([approval('alice')], 'bob')).to.equal(true);
  });

  it('does not count the same person approving again', () => {
    expect(countsAsNewApproval([approval('alice'), approval('bob')], 'alice')).to.equal(false);
  });

  it('does not count a repeat when the ids differ only by surrounding whitespace', () => {
    expect(countsAsNewApproval([approval(' 12345 ')], '12345\n')).to.equal(false);
  });

  it('does not count an empty or blank id', () => {
    expect(countsAsNewApproval([], '')).to.equal(false);
    expect(countsAsNewApproval([], '   ')).to.equal(false);
  });

  it('compares principals after Unicode normalisation: case, width and surrounding space do not make a second person', () => {
    expect(countsAsNewApproval([approval('Alice')], 'alice')).to.equal(false);
    expect(countsAsNewApproval([approval('alice')], 'ＡＬＩＣＥ ')).to.equal(false);
    expect(countsAsNewApproval([approval('alice')], 'bob')).to.equal(true);
  });
});

describe('effectiveSizeFactor', () => {
  it('is 1 when there are no approvals', () => {
    expect(effectiveSizeFactor([])).to.equal(1);
  });

  it('is the smallest factor any approver chose', () => {
    expect(effectiveSizeFactor([approval('a', 1), approval('b', 0.5), approval('c', 0.75)])).to.equal(0.5);
  });

  it('does not grow the order when an approver gives a factor above 1', () => {
    expect(effectiveSizeFactor([approval('a', 2)])).to.equal(1);
  });

  it('throws InvariantError when a factor is zero, negative or NaN', () => {
    for (const f of [0, -0.5, Number.NaN]) {
      expect(() => effectiveSizeFactor([approval('a', f)])).to.throw(InvariantError, /size factor/);
    }
  });
});
