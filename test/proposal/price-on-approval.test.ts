import { expect } from 'chai';
import { priceOnApproval } from '../../src/proposal/price-on-approval';

describe('price on approval', () => {
  const rule = { maxAgeSeconds: 90, maxDriftPct: 1.5 };
  it('an entry is re-checked against the drift limit, and its price stands for MARKET_DATA_MAX_AGE_SECONDS from its making', () => {
    expect(priceOnApproval({ side: 'buy', createdAt: '2026-12-03T10:00:00.000Z' }, rule)).to.deep.equal({ kind: 'entry_checked', maxDriftPct: 1.5, standsUntil: '2026-12-03T10:01:30.000Z' });
  });
  it('an exit or a liquidation goes out at the fresh market price', () => {
    expect(priceOnApproval({ side: 'sell', createdAt: '2026-12-03T10:00:00.000Z' }, rule)).to.deep.equal({ kind: 'exit_at_market' });
  });
});
