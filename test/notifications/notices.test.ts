import { expect } from 'chai';
import { noticeForVenueDecision } from '../../src/notifications/notices';

describe('noticeForVenueDecision', () => {
  const at = '2026-12-02T06:00:00.000Z';

  it('raises a critical notice for an order no poll can settle and for an entry above its stake, naming the order', () => {
    const ambiguous = noticeForVenueDecision('kis', { type: 'kis.order.lost_answer', decision: 'ambiguous', clientOrderId: 'ct-p-1', message: 'two orders match; settle it by hand' }, at);
    expect(ambiguous).to.deep.equal({
      kind: 'venue', severity: 'critical', at, title: 'kis: ambiguous', lines: ['two orders match; settle it by hand'], fields: [{ name: 'Order', value: 'ct-p-1' }],
    });
    expect(noticeForVenueDecision('freqtrade', { decision: 'entry_overspent', clientOrderId: 'ct-p-2', detail: 'cost 130000 for a stake of 100000' }, at)?.title).to.equal('freqtrade: entry overspent');
  });

  it('leaves the decisions the journal alone keeps (found, absent, a resend) without a notice', () => {
    for (const decision of ['found', 'absent', 'entry_found_after_lost_answer', 'entry_resent_after_grace', undefined]) {
      expect(noticeForVenueDecision('kis', { decision }, at), String(decision)).to.equal(undefined);
    }
  });
});
