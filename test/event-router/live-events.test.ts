import { EventEmitter } from 'node:events';
import { expect } from 'chai';
import type { Response } from 'express';
import winston from 'winston';
import { LiveEvents, RECENT_SIGNALS } from '../../src/event-router/live-events';
import type { JournalEntry } from '../../src/journal/trade-log';
import type { SignalRecord } from '../../src/journal/tracker';
import type { PortfolioReport } from '../../src/runtime/commands';
import type { RuntimeStateView } from '../../src/state';
import { OverloadedError } from '../../src/errors';

/** A stand-in for an HTTP response that keeps what was written, with a settable backlog. */
class FakeResponse extends EventEmitter {
  written = '';
  writableLength = 0;
  destroyed = false;
  ended = false;
  status(): this { return this; }
  set(): this { return this; }
  flushHeaders(): void {}
  write(chunk: string): boolean { this.written += chunk; return true; }
  end(): void { this.ended = true; }
  destroy(): void { this.destroyed = true; this.emit('close'); }
  events(): Array<{ event: string; data: any }> {
    return this.written.split('\n\n').filter((f) => f.startsWith('event: ')).map((f) => {
      const [e, d] = f.split('\n');
      return { event: e!.slice('event: '.length), data: JSON.parse(d!.slice('data: '.length)) };
    });
  }
}

const STATE: RuntimeStateView = { mode: 'paper', tradingState: 'active', tradingStateReason: null, paused: false, armedUntil: null, liquidation: null };
const PORTFOLIO = { cash: 1, equity: 1, positions: [], dust: [], dailyPnl: 0, dayStartEquity: 1, realizedPnl: 0, consecutiveLosses: 0, tradingDay: '2026-12-03', quoteCurrency: 'KRW', markMaxAgeSeconds: 60 } as PortfolioReport;

function setup(stored: SignalRecord[] = []) {
  const journal: Array<(e: JournalEntry) => void> = [];
  const registry: Array<(r: SignalRecord) => void> = [];
  const storedAsked: number[] = [];
  const live = new LiveEvents({
    journal: { onDurable: (l) => journal.push(l) },
    signals: { onChange: (l) => registry.push(l) },
    proposals: { onChange: () => undefined },
    state: { onChange: () => undefined },
    snapshot: { pending: () => ({ proposals: [], total: 0 }), portfolio: () => PORTFOLIO, state: () => STATE, storedSignals: (n) => { storedAsked.push(n); return stored.slice(0, n); } },
    priceRule: { maxAgeSeconds: 60, maxDriftPct: 1 },
    logger: winston.createLogger({ silent: true }),
  });
  const record = (e: Omit<JournalEntry, 'at'>) => { for (const l of journal) l({ at: '2026-12-03T00:00:00.000Z', ...e } as JournalEntry); };
  const signal = (r: SignalRecord) => { for (const l of registry) l(r); };
  return { live, record, signal, storedAsked };
}

const T = (n: number) => new Date(Date.parse('2026-12-03T00:00:00.000Z') + n * 1000).toISOString();
const received = (id: string, n = 10): SignalRecord => ({ id, receivedAt: T(n), status: 'received', signal: { id, receivedAt: T(n), source: 'api', symbol: 'BTC/KRW', action: 'buy' } });

describe('LiveEvents (the console stream)', () => {
  it('merges the stored signals in once, when first asked, one row per signal, and keeps at most RECENT_SIGNALS', () => {
    const stored: SignalRecord[] = [
      { id: 'sig-c', receivedAt: T(3), status: 'proposed', proposalId: 'p-c' },
      { id: 'sig-b', receivedAt: T(2), status: 'dropped', reason: 'paused', detail: 'trading is paused' },
      { id: 'sig-a', receivedAt: T(1), status: 'proposed', proposalId: 'p-a' },
    ];
    const { live, signal, storedAsked } = setup(stored);
    // Seen by this process before anyone asked, and also in the registry's files: listed once.
    signal({ ...received('sig-c', 3), status: 'proposed', proposalId: 'p-c' });
    signal(received('sig-d', 4));
    expect(storedAsked).to.deep.equal([]);
    expect(live.recentSignals(10).map((s) => [s.id, s.status, s.code, s.reason])).to.deep.equal([
      ['sig-d', 'received', undefined, undefined], ['sig-c', 'proposed', undefined, undefined],
      ['sig-b', 'dropped', 'paused', 'trading is paused'], ['sig-a', 'proposed', undefined, undefined],
    ]);
    for (let i = 0; i < RECENT_SIGNALS + 5; i++) signal(received(`sig-${i}`, 10 + i));
    const last = `sig-${RECENT_SIGNALS + 4}`;
    signal({ ...received(last, 10 + RECENT_SIGNALS + 4), status: 'dropped', reason: 'halted', detail: 'trading is halted (kill switch)' });
    const all = live.recentSignals(RECENT_SIGNALS);
    expect(all).to.have.length(RECENT_SIGNALS);
    expect(all[0]).to.include({ id: last, status: 'dropped', code: 'halted', reason: 'trading is halted (kill switch)' });
    expect(all.filter((x) => x.id === last)).to.have.length(1);
    expect(all.at(-1)!.id).to.equal('sig-5');
    expect(storedAsked).to.deep.equal([RECENT_SIGNALS]);
    live.close();
  });

  it('starts each stream with a snapshot and sends a duplicate as its own row naming the first signal', () => {
    const { live, record, signal } = setup();
    const res = new FakeResponse();
    live.open(res as unknown as Response, 'alice');
    signal(received('sig-1'));
    record({ type: 'signal.duplicate', signalId: 'sig-1', source: 'tradingview', key: 'k' });
    const events = res.events();
    expect(events.map((e) => e.event)).to.deep.equal(['snapshot', 'signal', 'signal']);
    expect(events[0]!.data.principal).to.equal('alice');
    expect(events[2]!.data).to.include({ id: null, status: 'duplicate', duplicateOf: 'sig-1', symbol: 'BTC/KRW' });
    live.close();
    expect(res.ended).to.equal(true);
  });

  it('cuts off a console that does not read (it reconnects to a snapshot) and refuses more than it can serve', () => {
    const { live, signal } = setup();
    const slow = new FakeResponse();
    const fine = new FakeResponse();
    live.open(slow as unknown as Response, 'alice');
    live.open(fine as unknown as Response, 'bob');
    live.recentSignals(1);
    slow.writableLength = 2 << 20;
    signal(received('sig-1'));
    expect(slow.destroyed).to.equal(true);
    expect(fine.events().map((e) => e.event)).to.deep.equal(['snapshot', 'signal']);
    expect(live.connected).to.equal(1);
    const more: FakeResponse[] = [];
    expect(() => {
      for (let i = 0; i < 100; i++) {
        const r = new FakeResponse();
        more.push(r);
        live.open(r as unknown as Response, 'carol');
      }
    }).to.throw(OverloadedError);
    expect(live.connected).to.equal(32);
    live.close();
  });
});
