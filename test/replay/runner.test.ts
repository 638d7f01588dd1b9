import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { loadConfig } from '../../src/config';
import type { MarketObservation } from '../../src/context/recorded-market';
import { defaultRules } from '../../src/proposal/rules-config';
import type { Recording, RecordedSignal } from '../../src/replay/recording';
import { runReplay, type ApproveMode } from '../../src/replay/runner';

/**
 * The replay's engine in-process, on real files in a temporary DATA_DIR: simulated time (a
 * 300-second deadline passes at once), the approval modes, recorded re-check quotes and operator
 * commands.
 */
const T0 = Date.parse('2026-11-26T01:00:00.000Z');
/** An exchange quote taken a second before the signal's market data came in. */
const market = (price: number, at: number): MarketObservation => ({ quote: { price, at: new Date(at - 1000).toISOString(), source: 'exchange' }, candles: [] });
const buy = (id: string, s: number, symbol: string, size: number, price = 1_000): RecordedSignal => ({
  signalId: id, at: T0 + s * 1000, source: 'api', signal: { symbol, action: 'buy', size, confidence: 0.9 }, dedupeKey: null,
  market: market(price, T0 + s * 1000), proposalId: id.replace(/^sig-/, 'p-'),
});
const recording = (signals: RecordedSignal[], extra: Partial<Recording> = {}): Recording => ({ kind: 'journal', signals, rechecks: new Map(), commands: [], ...extra });

describe('runReplay', function () {
  this.timeout(30_000);
  // The service's DATA_DIR: a replay neither reads nor writes it.
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'replay-runner-'));
  after(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  const env = { DATA_DIR: dataDir, APPROVAL_TIMEOUT_SECONDS: '300', APPROVAL_AUTO_MAX_NOTIONAL: '100000', APPROVAL_TWO_PERSON_NOTIONAL: '1000000', MAX_PRICE_DRIFT_PCT: '1' };
  const run = (r: Recording, approve: ApproveMode = 'policy', more: Record<string, string> = {}) =>
    runReplay({ config: loadConfig({ ...env, ...more }), rules: defaultRules(), recording: r, approve, stallMs: 10_000 });

  it('lets a proposal that needs a person time out at its deadline in simulated time, and writes nothing to DATA_DIR', async () => {
    const before = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('chatops-replay-')).length;
    const result = await run(recording([buy('sig-20261126-000000000001', 0, 'ETH/KRW', 300_000)]));
    expect(result.proposals).to.have.length(1);
    expect(result.proposals[0]).to.include({ signalId: 'sig-20261126-000000000001', symbol: 'ETH/KRW', state: 'timed-out', reason: 'timeout', notional: 300_000 });
    expect(result.from).to.equal('2026-11-26T01:00:00.000Z');
    expect(result.to).to.equal('2026-11-26T01:05:00.000Z');
    expect(fs.readdirSync(dataDir)).to.deep.equal([]);
    expect(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('chatops-replay-')).length).to.equal(before);
  });

  it('answers every proposal that needs a person with --approve all (two principals for the two-person rule) and none', async () => {
    const signals = [buy('sig-20261126-000000000001', 0, 'ETH/KRW', 300_000), buy('sig-20261126-000000000002', 1, 'XRP/KRW', 1_500_000)];
    const all = await run(recording(signals), 'all');
    expect(all.proposals.map((p) => [p.state, p.approvedBy])).to.deep.equal([['settled', ['replay']], ['settled', ['replay', 'replay-2']]]);
    expect(all.portfolio.positions.map((p) => p.symbol)).to.deep.equal(['ETH/KRW', 'XRP/KRW']);
    const none = await run(recording(signals), 'none');
    expect(none.proposals.map((p) => [p.state, p.decidedBy])).to.deep.equal([['rejected', 'replay'], ['rejected', 'replay']]);
    expect(none.portfolio.positions).to.deep.equal([]);
  });

  it('re-checks on the quote the original re-check saw', async () => {
    const signal = buy('sig-20261126-000000000001', 0, 'BTC/KRW', 50_000, 100_000_000);
    const rechecks = new Map([[signal.proposalId!, { quote: { price: 101_500_000, at: '2026-11-26T01:00:01.000Z', source: 'exchange' as const } }]]);
    const moved = await run(recording([signal], { rechecks }));
    expect(moved.proposals[0]).to.include({ state: 'rejected', reason: 'stale_price' });
    const close = await run(recording([signal], { rechecks: new Map([[signal.proposalId!, { quote: { price: 100_500_000, at: '2026-11-26T01:00:01.000Z', source: 'exchange' as const } }]]) }));
    expect(close.proposals[0]).to.include({ state: 'settled' });
    expect(close.proposals[0]!.fill!.exact.price).to.equal('100500000');
  });

  it('replays operator commands at their times: a signal while paused is dropped, after resume it is proposed', async () => {
    const result = await run(recording(
      [buy('sig-20261126-000000000001', 10, 'BTC/KRW', 50_000), buy('sig-20261126-000000000002', 30, 'ETH/KRW', 50_000)],
      { commands: [{ at: T0 + 5_000, kind: 'pause', by: 'alice' }, { at: T0 + 20_000, kind: 'resume', by: 'alice' }] },
    ));
    expect(result.proposals.map((p) => [p.symbol, p.state, p.reason])).to.deep.equal([['BTC/KRW', 'dropped', 'paused'], ['ETH/KRW', 'settled', 'filled']]);
  });

  it('starts the liquidation a risk breaker asks for, between steps, and lists it', async () => {
    const sell = (id: string, s: number, size: number, price: number): RecordedSignal => ({ ...buy(id, s, 'BTC/KRW', size, price), signal: { symbol: 'BTC/KRW', action: 'sell', size, confidence: 0.9 } });
    const result = await run(recording([
      buy('sig-20261126-000000000001', 0, 'BTC/KRW', 2_000_000, 100_000_000),
      // BTC falls to 40%: selling a little realises part of a loss of 12% of the day's equity.
      sell('sig-20261126-000000000002', 60, 100_000, 40_000_000),
      // The next entry meets the daily liquidation breaker (RISK_DAILY_LIQUIDATE_PCT 10).
      buy('sig-20261126-000000000003', 120, 'ETH/KRW', 50_000, 5_000_000),
    ]), 'policy', { APPROVAL_AUTO_MAX_NOTIONAL: '5000000', APPROVAL_TWO_PERSON_NOTIONAL: '10000000', MAX_PRICE_DRIFT_PCT: '100' });
    expect(result.proposals.map((p) => [p.signalId, p.symbol, p.side, p.state, p.reason])).to.deep.equal([
      ['sig-20261126-000000000001', 'BTC/KRW', 'buy', 'settled', 'filled'],
      ['sig-20261126-000000000002', 'BTC/KRW', 'sell', 'settled', 'filled'],
      ['sig-20261126-000000000003', 'ETH/KRW', 'buy', 'rejected', 'daily_liquidation'],
      ['liquidation-1', 'BTC/KRW', 'sell', 'settled', 'filled'],
    ]);
    expect(result.portfolio.positions).to.deep.equal([]);
  });

  it('gives the same result every time', async () => {
    const signals = [buy('sig-20261126-000000000001', 0, 'ETH/KRW', 300_000), buy('sig-20261126-000000000002', 1, 'BTC/KRW', 50_000), buy('sig-20261126-000000000003', 2, 'BTC/KRW', 50_000)];
    const first = JSON.stringify(await run(recording(signals)));
    expect(JSON.stringify(await run(recording(signals)))).to.equal(first);
  });
});
