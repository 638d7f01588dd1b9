import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { RiskClock } from '../../src/runtime/risk-clock';
import type { LiquidationReport } from '../../src/runtime/loop';
import { PaperExecutor } from '../../src/execution/paper-executor';
import { NodeStorageIo } from '../../src/persistence/storage-io';
import { RuntimeState } from '../../src/state';
import { TradeLog } from '../../src/journal/trade-log';
import { silentLogger } from '../../src/logging';
import { TransientError } from '../../src/errors';
import type { Candle, MarketData, MarketQuote } from '../../src/context/market-snapshot';
import type { RiskLimits } from '../../src/proposal/types';

const LIMITS: RiskLimits = { maxConsecutiveLosses: 3, dailyLossLimitPct: 5, dailyLiquidatePct: 10, maxPositionPct: 100, maxOpenPositions: 5 };

/** Market data whose answer per symbol a test sets: a price (fresh now), a stale price, or a failure. */
class ScriptedMarket implements MarketData {
  readonly source = 'exchange' as const;
  readonly answers = new Map<string, { price: number; ageMs?: number } | 'fail'>();
  async quote(symbol: string): Promise<MarketQuote> {
    const a = this.answers.get(symbol);
    if (!a || a === 'fail') throw new TransientError('market_data_unavailable', `no quote for ${symbol}`);
    return { symbol, price: a.price, at: new Date(Date.now() - (a.ageMs ?? 0)).toISOString(), source: 'exchange' };
  }
  async candles(): Promise<Candle[]> {
    return [];
  }
}

describe('RiskClock', () => {
  let dir: string;
  let venue: PaperExecutor;
  let state: RuntimeState;
  let journal: TradeLog;
  let market: ScriptedMarket;
  let liquidations: Array<{ by: string; reason: string }>;
  let nextReports: LiquidationReport[];

  const io = new NodeStorageIo();
  const clock = () => new RiskClock({
    market, portfolio: venue, state, journal, logger: silentLogger(), limits: LIMITS, intervalMs: 60_000,
    maxQuoteAgeSeconds: 120, quoteTimeoutMs: 1000,
    liquidate: async (by, reason) => {
      liquidations.push({ by, reason });
      return nextReports.shift() ?? { started: [], underWay: [], dust: [], failed: [], waiting: [] };
    },
  });
  const buy = async (id: string, symbol: string, notional: string, price: string) => {
    const r = await venue.submit({ clientOrderId: id, symbol, side: 'buy', intent: 'buy', notional, price });
    expect(r.status).to.equal('filled');
  };
  const sellAll = async (id: string, symbol: string, price: string) => {
    const held = (await venue.balances()).positions.find((p) => p.symbol === symbol)!.quantity;
    const r = await venue.submit({ clientOrderId: id, symbol, side: 'sell', intent: 'liquidate', notional: '0', quantity: held, price });
    expect(r.status).to.equal('filled');
  };
  const journalTypes = async () => {
    await journal.close();
    const files = fs.readdirSync(path.join(dir, 'journal')).filter((f) => f.endsWith('.jsonl'));
    return files.flatMap((f) => fs.readFileSync(path.join(dir, 'journal', f), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>));
  };

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'risk-clock-'));
    venue = await PaperExecutor.open(io, dir, { initialCash: 10_000_000, feeRate: 0, slippagePct: 0, fillDelayMs: 0, quoteCurrency: 'KRW', timeZone: 'Asia/Seoul' });
    state = await RuntimeState.open(io, dir, 'paper');
    journal = new TradeLog(io, path.join(dir, 'journal'));
    market = new ScriptedMarket();
    liquidations = [];
    nextReports = [];
    await buy('b-btc', 'BTC/KRW', '1000000', '100000000');
    await buy('b-eth', 'ETH/KRW', '1000000', '5000000');
  });
  afterEach(async () => {
    await venue.close();
    await journal.close().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('marks every held symbol it has a fresh quote for; one failing or stale symbol does not stop the others', async () => {
    market.answers.set('BTC/KRW', { price: 110_000_000 });
    market.answers.set('ETH/KRW', 'fail');
    const ethMarkedAt = venue.snapshot(Date.now()).positions.find((p) => p.symbol === 'ETH/KRW')!.markedAt;
    await new Promise((r) => setTimeout(r, 5));
    const round = await clock().tick();
    expect(round!.marked).to.deep.equal(['BTC/KRW']);
    expect(round!.unmarked.map((u) => u.symbol)).to.deep.equal(['ETH/KRW']);
    const view = venue.snapshot(Date.now());
    expect(view.positions.find((p) => p.symbol === 'BTC/KRW')!.markPrice).to.equal(110_000_000);
    expect(view.positions.find((p) => p.symbol === 'ETH/KRW')!.markedAt).to.equal(ethMarkedAt);

    market.answers.set('ETH/KRW', { price: 6_000_000, ageMs: 600_000 });
    const stale = await clock().tick();
    expect(stale!.unmarked[0]!.reason).to.contain('older than MARKET_DATA_MAX_AGE_SECONDS');
    expect(venue.snapshot(Date.now()).positions.find((p) => p.symbol === 'ETH/KRW')!.markPrice).to.equal(5_000_000);
  });

  it('trips the daily-loss breaker and orders a liquidation on marks alone, then retries what is still held, backing off, until nothing is', async () => {
    // −60 % on both: a loss of 1.2M of 10M is past RISK_DAILY_LIQUIDATE_PCT 10.
    market.answers.set('BTC/KRW', { price: 40_000_000 });
    market.answers.set('ETH/KRW', { price: 2_000_000 });
    const c = clock();
    const ethFailed = { started: [], underWay: [], dust: [], failed: [{ symbol: 'ETH/KRW', error: 'storage unavailable' }], waiting: [] };
    nextReports.push({ ...ethFailed, started: [{ symbol: 'BTC/KRW', proposalId: 'p-1' }] }, ethFailed, { ...ethFailed, failed: [], started: [{ symbol: 'ETH/KRW', proposalId: 'p-2' }] });
    const first = await c.tick();
    expect(first!.breaker).to.equal(true);
    expect(state.tradingState).to.equal('reducing');
    expect(state.liquidation).to.include({ by: 'risk:daily_liquidation' });
    expect(liquidations).to.have.length(1);
    await sellAll('s-btc', 'BTC/KRW', '40000000');

    // ETH is still held: the next round tries again; it fails again, so the one after waits.
    expect((await c.tick())!.liquidation!.failed[0]!.symbol).to.equal('ETH/KRW');
    expect(liquidations).to.have.length(2);
    expect((await c.tick())!.liquidation).to.equal(null);
    expect(liquidations).to.have.length(2);
    expect((await c.tick())!.liquidation!.started[0]!.symbol).to.equal('ETH/KRW');
    expect(liquidations).to.have.length(3);

    // Once nothing is held the order ends.
    await sellAll('s-eth', 'ETH/KRW', '2000000');
    const done = await c.tick();
    expect(done!.liquidationEnded).to.equal(true);
    expect(state.liquidation).to.equal(null);
    expect(liquidations).to.have.length(3);

    const records = await journalTypes();
    expect(records.filter((r) => r['type'] === 'risk.breaker' && r['source'] === 'risk-clock')).to.have.length(1);
    expect(records.filter((r) => r['type'] === 'liquidation.pass')).to.have.length(3);
    expect(records.filter((r) => r['type'] === 'liquidation.done')).to.have.length(1);
  });

  it('does not trip again for a loss an operator accepted, and trips when it grows by another threshold', async () => {
    market.answers.set('BTC/KRW', { price: 40_000_000 });
    market.answers.set('ETH/KRW', { price: 2_000_000 });
    const c = clock();
    await c.tick();
    expect(state.tradingState).to.equal('reducing');
    expect(state.liquidation).not.to.equal(null);
    // The operator looks, and clears: the loss of 1.2M (12 %) is accepted.
    const view = venue.snapshot(Date.now());
    await state.clearBreakers('op', 'reviewed', { tradingDay: view.tradingDay, dailyPnl: view.dailyPnl, consecutiveLosses: view.consecutiveLosses });
    expect(state.liquidation).to.equal(null);
    await c.tick();
    expect(state.tradingState).to.equal('active');
    expect(state.liquidation).to.equal(null);
    // A further fall to −95 %: 1.9M lost, 0.7M more than accepted, past another 5 % (0.5M): reducing again.
    market.answers.set('BTC/KRW', { price: 5_000_000 });
    market.answers.set('ETH/KRW', { price: 250_000 });
    await c.tick();
    expect(state.tradingState).to.equal('reducing');
    expect(state.liquidation, 'not yet another 10 % for the liquidation').to.equal(null);
  });

  it('dates a mark by its quote, and never lets an older quote replace a newer mark', async () => {
    const filledAt = venue.snapshot(Date.now()).positions.find((p) => p.symbol === 'BTC/KRW')!.markedAt!;
    // Taken before the fill that marked BTC: it does not replace the fill's price.
    market.answers.set('BTC/KRW', { price: 90_000_000, ageMs: Date.now() - filledAt + 30_000 });
    market.answers.set('ETH/KRW', { price: 5_100_000, ageMs: 0 });
    await new Promise((r) => setTimeout(r, 20));
    await clock().tick();
    let view = venue.snapshot(Date.now());
    expect(view.positions.find((p) => p.symbol === 'BTC/KRW')).to.include({ markPrice: 100_000_000, markedAt: filledAt });
    expect(view.positions.find((p) => p.symbol === 'ETH/KRW')!.markPrice).to.equal(5_100_000);
    // A quote newer than the fill, though 200 ms old, is the mark, dated when it was taken.
    await new Promise((r) => setTimeout(r, 400));
    market.answers.set('BTC/KRW', { price: 101_000_000, ageMs: 200 });
    const before = Date.now();
    await clock().tick();
    view = venue.snapshot(Date.now());
    const btc = view.positions.find((p) => p.symbol === 'BTC/KRW')!;
    expect(btc.markPrice).to.equal(101_000_000);
    expect(btc.markedAt!).to.be.at.most(before - 200 + 50).and.above(filledAt);
  });

  it('keeps a standing liquidation across a restart of the state', async () => {
    await state.orderLiquidation('op', 'sell all');
    const reopened = await RuntimeState.open(io, dir, 'paper');
    expect(reopened.liquidation).to.include({ by: 'op', reason: 'sell all' });
  });

  it('sells nothing while halted, and does not order a liquidation for a loss that leaves nothing held', async () => {
    market.answers.set('BTC/KRW', { price: 40_000_000 });
    market.answers.set('ETH/KRW', { price: 2_000_000 });
    await state.setTradingState('halted', 'op', 'kill switch');
    await clock().tick();
    expect(state.tradingState).to.equal('halted');
    expect(liquidations).to.deep.equal([]);

    await state.setTradingState('active', 'op', 'back', { relax: true });
    await state.endLiquidation('op', 'reset');
    await sellAll('s-btc', 'BTC/KRW', '40000000');
    await sellAll('s-eth', 'ETH/KRW', '2000000');
    await clock().tick();
    expect(state.tradingState).to.equal('reducing');
    expect(state.liquidation).to.equal(null);
    expect(liquidations).to.deep.equal([]);
  });

  it('keeps the marks across a restart of the venue (the next round starts from them)', async () => {
    market.answers.set('BTC/KRW', { price: 120_000_000 });
    market.answers.set('ETH/KRW', { price: 5_500_000 });
    await clock().tick();
    const before = venue.snapshot(Date.now());
    await venue.close();
    venue = await PaperExecutor.open(io, dir, { initialCash: 10_000_000, feeRate: 0, slippagePct: 0, fillDelayMs: 0, quoteCurrency: 'KRW', timeZone: 'Asia/Seoul' });
    const after = venue.snapshot(Date.now());
    expect(after.equity).to.equal(before.equity);
    expect(after.dailyPnl).to.equal(before.dailyPnl);
    expect(after.positions.map((p) => p.markedAt)).to.deep.equal(before.positions.map((p) => p.markedAt));
  });
});
