import { expect } from 'chai';
import { InputError } from '../../src/errors';
import { BODIES_EPOCH, readRecording } from '../../src/replay/recording';
import { webhookDedupeKey } from '../../src/runtime/dedupe-window';

const jsonl = (records: Array<Record<string, unknown>>) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';
const at = (s: number) => new Date(Date.parse('2026-11-26T01:00:00.000Z') + s * 1000).toISOString();
const signal = (id: string, s: number, extra: Record<string, unknown> = {}) => ({
  type: 'signal.received', at: at(s), signalId: id,
  signal: { id, receivedAt: at(s), source: 'tradingview', symbol: 'BTC/KRW', action: 'buy', size: 50_000, confidence: 0.9, ...extra },
});
const quote = { price: 100_000_000, at: '2026-11-26T00:00:00Z', source: 'replay' };

function refusal(fn: () => unknown): InputError {
  try {
    fn();
  } catch (err) {
    if (err instanceof InputError) return err;
    throw err;
  }
  throw new Error('expected an InputError');
}

describe('readRecording', () => {
  describe('a journal', () => {
    const text = jsonl([
      { type: 'account.opened', at: at(0), venue: 'paper', cash: '10000000' },
      signal('sig-a', 1),
      { type: 'signal.context', at: at(1.2), signalId: 'sig-a', observedAt: at(1.1), quote, candles: [['2026-11-26T00:00:00Z', 1, 2, 0.5, 1.5, 10]] },
      { type: 'signal.proposed', at: at(1.3), signalId: 'sig-a', proposalId: 'p-a' },
      { type: 'proposal.transition', at: at(1.3), proposalId: 'p-a', to: 'approved' },
      { type: 'proposal.recheck', at: at(1.4), proposalId: 'p-a', observedAt: at(1.4), quote: { ...quote, price: 100_100_000 }, ok: true },
      { type: 'order.filled', at: at(1.5), proposalId: 'p-a', fill: { price: '100100000', quantity: '0.0005' } },
      { type: 'proposal.finished', at: at(1.6), proposalId: 'p-a', state: 'settled', outcome: { code: 'filled' } },
      signal('sig-refused', 2),
      { type: 'signal.refused', at: at(2), signalId: 'sig-refused' },
      { type: 'state.changed', at: at(3), change: 'paused', by: 'alice' },
      signal('sig-liq', 4, { source: 'scheduler', strategy: 'liquidation: risk:daily_loss: too much', action: 'exit' }),
      // Received before sig-liq's record was written, but processed after: replayed in time order.
      signal('sig-b', 3.5, { symbol: 'ETH/KRW' }),
      { type: 'signal.dropped', at: at(4), signalId: 'sig-b', code: 'paused', reason: 'trading is paused' },
      { type: 'state.changed', at: at(5), change: 'armed', by: 'alice' },
      { type: 'state.changed', at: at(6), change: 'trading_state', to: 'halted', by: 'bob', reason: 'news' },
      { type: 'state.changed', at: at(7), change: 'breakers_cleared', to: 'active', by: 'bob', reason: 'ok' },
    ]) + '{"type":"signal.received","at":"2026-11-';

    it('replays the acknowledged signals in time order, at the time their market data came in', () => {
      const r = readRecording([{ name: '2026-11-26.jsonl', text }], { quoteCurrency: 'KRW' });
      expect(r.kind).to.equal('journal');
      expect(r.signals.map((s) => [s.signalId, s.at])).to.deep.equal([['sig-a', Date.parse(at(1.1))], ['sig-b', Date.parse(at(3.5))]]);
      const a = r.signals[0]!;
      expect(a.signal).to.deep.equal({ symbol: 'BTC/KRW', action: 'buy', size: 50_000, confidence: 0.9 });
      expect(a.dedupeKey).to.equal(null);
      expect(a.market).to.deep.equal({ quote, candles: [{ time: '2026-11-26T00:00:00Z', open: 1, high: 2, low: 0.5, close: 1.5, volume: 10 }] });
      expect(r.signals[1]!.market).to.equal(undefined);
    });

    it('keeps each proposal re-check quote and what the original run did', () => {
      const r = readRecording([{ name: '2026-11-26.jsonl', text }], { quoteCurrency: 'KRW' });
      expect(r.rechecks.get('p-a')).to.deep.equal({ quote: { ...quote, price: 100_100_000 } });
      expect(r.signals[0]!.proposalId).to.equal('p-a');
      expect(r.signals[0]!.original).to.deep.equal({ state: 'settled', reason: 'filled', fillPrice: '100100000' });
      expect(r.signals[1]!.original).to.deep.equal({ state: 'dropped', reason: 'paused' });
    });

    it('replays the operator commands that change what trading may do, and nothing else', () => {
      const r = readRecording([{ name: '2026-11-26.jsonl', text }], { quoteCurrency: 'KRW' });
      expect(r.commands).to.deep.equal([
        { at: Date.parse(at(3)), kind: 'pause', by: 'alice' },
        { at: Date.parse(at(6)), kind: 'trading_state', to: 'halted', by: 'bob', reason: 'news' },
        { at: Date.parse(at(7)), kind: 'trading_state', to: 'active', by: 'bob', reason: 'ok' },
      ]);
    });

    it('reads several days as one recording, and names the file and line of a record it cannot use', () => {
      const two = readRecording([{ name: 'd1.jsonl', text: jsonl([signal('sig-1', 1)]) }, { name: 'd2.jsonl', text: jsonl([signal('sig-2', 90_000)]) }], { quoteCurrency: 'KRW' });
      expect(two.signals.map((s) => s.signalId)).to.deep.equal(['sig-1', 'sig-2']);
      expect(refusal(() => readRecording([{ name: 'd1.jsonl', text: `${jsonl([signal('sig-1', 1)])}{oops\n${jsonl([signal('sig-2', 2)])}` }], { quoteCurrency: 'KRW' })).message).to.equal('d1.jsonl line 2 is not JSON');
      const badSignal = refusal(() => readRecording([{ name: 'd1.jsonl', text: jsonl([signal('sig-1', 1, { action: 'hold' })]) }], { quoteCurrency: 'KRW' }));
      expect(badSignal.message).to.match(/^d1\.jsonl line 1: signal\.action: /);
    });
  });

  describe('webhook bodies', () => {
    const body = (extra: Record<string, unknown>) => ({ secret: 'whatever', ticker: 'UPBIT:BTCKRW', action: 'buy', price: '100000000', size: '50000', ...extra });

    it('receives each body at its time, one second after the previous one without a time', () => {
      const r = readRecording([{ name: 'bodies.jsonl', text: jsonl([body({}), body({ time: '2026-11-26T01:00:00Z', action: 'exit' }), body({ size: '1' })]) }], { quoteCurrency: 'KRW' });
      expect(r.kind).to.equal('webhook-bodies');
      expect(r.signals.map((s) => [s.signalId, s.at])).to.deep.equal([
        ['line-1', BODIES_EPOCH], ['line-2', Date.parse('2026-11-26T01:00:00Z')], ['line-3', Date.parse('2026-11-26T01:00:01Z')],
      ]);
      expect(r.signals[0]!.signal).to.deep.equal({ symbol: 'BTC/KRW', action: 'buy', price: 100_000_000, size: 50_000 });
      expect(r.signals.every((s) => s.source === 'tradingview' && s.market === undefined && s.original === undefined)).to.equal(true);
    });

    it('deduplicates as the webhook does: by the body id, else by the normalised signal', () => {
      const r = readRecording([{ name: 'b.jsonl', text: jsonl([body({}), body({ ticker: 'BTC/KRW' }), body({ id: 'x' }), body({ id: 'x', size: '2' })]) }], { quoteCurrency: 'KRW' });
      const keys = r.signals.map((s) => s.dedupeKey);
      expect(keys[0]).to.equal(keys[1]);
      expect(keys[2]).to.equal(keys[3]).and.equal('tradingview:id:x');
      expect(keys[0]).to.equal(webhookDedupeKey(r.signals[0]!.signal));
    });

    it('refuses a body the webhook would refuse, naming its line', () => {
      const err = refusal(() => readRecording([{ name: 'b.jsonl', text: jsonl([body({}), body({ action: 'hold' })]) }], { quoteCurrency: 'KRW' }));
      expect(err.message).to.equal('b.jsonl line 2 is not a webhook body the service accepts: action: must be buy, sell or exit');
      expect(refusal(() => readRecording([{ name: 'b.jsonl', text: jsonl([body({ ticker: 'BTC/USDT' })]) }], { quoteCurrency: 'KRW' })).message).to.include('quoted in USDT');
    });
  });

  it('refuses an empty file and a file that mixes journal records and bodies', () => {
    expect(refusal(() => readRecording([{ name: 'e.jsonl', text: '\n\n' }], { quoteCurrency: 'KRW' })).message).to.equal('e.jsonl holds no records: nothing to replay');
    const mixed = refusal(() => readRecording([{ name: 'm.jsonl', text: jsonl([signal('sig-1', 1), { ticker: 'BTC/KRW', action: 'buy' }]) }], { quoteCurrency: 'KRW' }));
    expect(mixed.message).to.match(/^m\.jsonl line 2 is not a journal record, but m\.jsonl line 1 is one/);
  });
});
