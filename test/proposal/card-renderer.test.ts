import { expect } from 'chai';
import { CALLBACK, escapeHtml, formatTime, parseCallbackData, renderCard } from '../../src/proposal/card-renderer';
import type { ProposalView } from '../../src/proposal/view';

const ID = 'p-20261126-0123456789ab';

function view(over: Partial<ProposalView> = {}): ProposalView {
  return {
    id: ID, signalId: 'sig-20261126-0123456789ab', state: 'awaiting-approval', symbol: 'BTC/KRW', side: 'buy', intent: 'buy',
    notional: 50_000, requestedNotional: 50_000, quantity: null, price: 100_000_000, priceSource: 'market', confidence: 0.5,
    reasons: [{ code: 'signal', message: 'buy signal for BTC/KRW (tradingview, <b>x</b> & co)' }], explanation: 'Buy a little.',
    risk: { kind: 'allow', notional: 50_000, reasons: [] }, approval: { approvers: 1, allowPartial: true, reasons: [] }, requiredApprovals: 1,
    sizeFactor: 1, createdAt: '2026-11-26T00:00:00.000Z', deadline: '2026-11-26T00:05:00.000Z', approvals: [], history: [{ state: 'pending', at: '2026-11-26T00:00:00.000Z' }],
    outcome: null, clientOrderId: `ct-${ID}`, ...over,
  };
}
const opts = { timeZone: 'Asia/Seoul', quoteCurrency: 'KRW' };

/** Every opened tag is closed, in order; no raw `<`, `>` or `&` outside markup and entities. */
function wellFormed(html: string): boolean {
  const stack: string[] = [];
  for (const m of html.matchAll(/<(\/?)([a-z]+)>|&(amp|lt|gt);|[<>&]/g)) {
    if (m[2]) {
      if (m[1]) {
        if (stack.pop() !== m[2]) return false;
      } else stack.push(m[2]);
    } else if (!m[3]) return false;
  }
  return stack.length === 0;
}

describe('card renderer', () => {
  it('escapes user text, shows the deadline in the trading time zone, and offers the three buttons', () => {
    const card = renderCard(view(), opts);
    expect(card.text).to.include('&lt;b&gt;x&lt;/b&gt; &amp; co');
    expect(card.text).to.include('Deadline: 2026-11-26 09:05:00 (Asia/Seoul)');
    expect(wellFormed(card.text)).to.equal(true);
    expect(card.keyboard).to.deep.equal([[
      { text: '✅ Approve', callback_data: CALLBACK.approve(ID) },
      { text: 'Approve 50%', callback_data: CALLBACK.approveHalf(ID) },
      { text: '❌ Reject', callback_data: CALLBACK.reject(ID) },
    ]]);
  });

  it("keeps within Telegram's 4096 characters, with balanced markup and the deadline, whatever the texts", () => {
    const long = '&<>'.repeat(2000);
    const card = renderCard(view({ explanation: long, reasons: Array.from({ length: 20 }, (_, i) => ({ code: `r${i}`, message: long })) }), opts);
    const visible = card.text.replace(/<[^>]+>/g, '').replace(/&(amp|lt|gt);/g, 'x');
    expect(visible.length).to.be.below(4096);
    expect(wellFormed(card.text)).to.equal(true);
    expect(card.text).to.include('Deadline:');
    expect(card.text).to.include('and 12 more');
  });

  it('shows two-person progress and who approved', () => {
    const card = renderCard(view({ requiredApprovals: 2, approvals: [{ by: 'tg:1001', at: '2026-11-26T00:01:00.000Z', sizeFactor: 1 }] }), { ...opts, names: { 'tg:1001': '@alice' } });
    expect(card.text).to.include('Approvals: 1/2 (@alice)');
  });

  it('replaces the buttons with the outcome once decided, naming who decided in words', () => {
    const card = renderCard(view({
      state: 'timed-out',
      outcome: { state: 'timed-out', at: '2026-11-26T00:05:00.000Z', by: 'approval-deadline', code: 'timeout', reason: 'no decision before the deadline' },
    }), opts);
    expect(card.keyboard).to.deep.equal([]);
    expect(card.text).to.include('⌛ Timed out');
    expect(card.text).to.include('Decided by the deadline (no answer in time) at 2026-11-26 09:05:00');
  });

  it('says that an entry needs a fresh price within the drift limit, until when its price stands without market data, and that an exit goes out at the fresh price', () => {
    const rule = { priceRule: { maxAgeSeconds: 120, maxDriftPct: 1 } };
    const entry = renderCard(view(), { ...opts, ...rule });
    expect(entry.text).to.include('Approval needs a fresh market price within 1% of this one; without market data this price stands until 2026-11-26 09:02:00');
    const exit = renderCard(view({ side: 'sell', intent: 'sell', quantity: '0.5' }), { ...opts, ...rule });
    expect(exit.text).to.include('an exit goes out at the fresh market price').and.not.include('stands until');
    // A decided card no longer speaks of approval.
    expect(renderCard(view({ state: 'settled' }), { ...opts, ...rule }).text).not.to.include('stands until');
  });

  it('shows a sell\'s exact quantity to eight places with the quote value beside it', () => {
    const card = renderCard(view({ side: 'sell', intent: 'sell', quantity: '1215000011.05650013', notional: 1_500_000 }), opts);
    expect(card.text).to.include('Size: 1,215,000,011.05650013 BTC (≈ 1,500,000 KRW)');
  });

  it('does not offer Approve 50% when the policy forbids partial approval', () => {
    const card = renderCard(view({ approval: { approvers: 1, allowPartial: false, reasons: [] } }), opts);
    expect(card.keyboard[0]!.map((b) => b.text)).to.deep.equal(['✅ Approve', '❌ Reject']);
  });

  it('parses only the callback data it made', () => {
    expect(parseCallbackData(CALLBACK.approve(ID))).to.deep.equal({ action: 'approve', proposalId: ID });
    expect(parseCallbackData(CALLBACK.reject(ID))).to.deep.equal({ action: 'reject', proposalId: ID });
    expect(parseCallbackData('approve:p-1')).to.equal(undefined);
    expect(parseCallbackData('approve:../../etc')).to.equal(undefined);
    expect(parseCallbackData(undefined)).to.equal(undefined);
    expect(Buffer.byteLength(CALLBACK.approveHalf(ID))).to.be.at.most(64);
  });

  it('escapes the three HTML metacharacters', () => {
    expect(escapeHtml('a<b>&c')).to.equal('a&lt;b&gt;&amp;c');
  });

  it('words a dry run as one: nothing placed, never "Filled", and no buttons', () => {
    const at = '2026-11-26T00:01:00.000Z';
    const card = renderCard(view({
      state: 'settled', outcome: { state: 'settled', at, by: 'upbit', code: 'dry_run', reason: 'dry run: upbit accepted the order and placed nothing' },
      order: { clientOrderId: `ct-${ID}`, venueOrderId: 'test', venue: 'upbit', symbol: 'BTC/KRW', side: 'buy', status: 'filled', filledQuantity: '0', avgPrice: '0', fee: '0', submittedAt: at, updatedAt: at, dryRun: true },
    }), opts);
    expect(card.text).to.include('🧪 Dry run').and.include('nothing was placed');
    expect(card.text).not.to.match(/Filled|✅ Settled/);
    expect(card.keyboard).to.deep.equal([]);
  });

  it('says on a fill that the venue only simulated it (a Freqtrade bot in its own dry_run mode)', () => {
    const at = '2026-11-26T00:01:00.000Z';
    const order = { clientOrderId: `ct-${ID}`, venueOrderId: '7', venue: 'freqtrade', symbol: 'BTC/KRW', side: 'buy' as const, status: 'filled' as const, filledQuantity: '0.001', avgPrice: '100000000', fee: '50', submittedAt: at, updatedAt: at };
    const settled = { state: 'settled' as const, outcome: { state: 'settled' as const, at, by: 'freqtrade', code: 'filled', reason: 'filled' }, fill: { quantity: '0.001', price: '100000000', fee: '50', notional: '100000', at } };
    expect(renderCard(view({ ...settled, order: { ...order, simulatedByVenue: true } }), opts).text).to.include('Simulated by freqtrade').and.include('dry_run');
    expect(renderCard(view({ ...settled, order }), opts).text).not.to.include('Simulated');
  });

  it('writes midnight in the trading zone as 00, on the new day', () => {
    expect(formatTime('2026-12-02T15:00:26.000Z', 'Asia/Seoul')).to.equal('2026-12-03 00:00:26');
    expect(formatTime('2026-12-02T14:59:59.000Z', 'Asia/Seoul')).to.equal('2026-12-02 23:59:59');
  });
});
