import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { createProposalServices } from '../../src/runtime/proposal-services';
import { PaperExecutor } from '../../src/execution/paper-executor';
import { ExecutionRouter } from '../../src/execution/router';
import { NodeStorageIo } from '../../src/persistence/storage-io';
import { RuntimeState } from '../../src/state';
import { TradeLog } from '../../src/journal/trade-log';
import { silentLogger } from '../../src/logging';
import { TransientError } from '../../src/errors';
import { clientOrderIdFor, type ProposalContext } from '../../machines/proposal.machine';
import type { Candle, MarketData, MarketQuote } from '../../src/context/market-snapshot';

/** Market data whose price and failure a test sets. */
class FakeMarket implements MarketData {
  readonly source = 'exchange' as const;
  price = 100;
  failing = false;
  async quote(symbol: string): Promise<MarketQuote> {
    if (this.failing) throw new TransientError('market_data_timeout', 'no answer within 300 ms');
    return { symbol, price: this.price, at: new Date().toISOString(), source: 'exchange' };
  }
  async candles(): Promise<Candle[]> {
    return [];
  }
}

let seq = 0;
function context(over: Partial<ProposalContext> = {}): ProposalContext {
  const id = `p-20261126-${(++seq).toString(16).padStart(12, '0')}`;
  const now = Date.now();
  return {
    id, signalId: 'sig', symbol: 'AAA/KRW', side: 'buy', intent: 'buy', notional: 1_000_000, quantity: null, price: 100, priceSource: 'market',
    confidence: 0.9, reasons: [], explanation: '', createdAt: now, deadline: now + 60_000, requestedNotional: 1_000_000, risk: null,
    approval: { approvers: 1, allowPartial: true, reasons: [] }, approvals: [], sizeFactor: 1, clientOrderId: clientOrderIdFor(id),
    recheck: null, order: null, fill: null, history: [], outcome: null, ...over,
  };
}

describe('proposal services', () => {
  let dir: string;
  let market: FakeMarket;
  let paper: PaperExecutor;
  let state: RuntimeState;
  let journal: TradeLog;
  let services: ReturnType<typeof createProposalServices>;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'services-'));
    market = new FakeMarket();
    const io = new NodeStorageIo();
    paper = await PaperExecutor.open(io, dir, { initialCash: 10_000_000, feeRate: 0, slippagePct: 0, fillDelayMs: 0, quoteCurrency: 'KRW', timeZone: 'Asia/Seoul' });
    state = await RuntimeState.open(io, dir, 'paper');
    journal = new TradeLog(io, path.join(dir, 'journal'));
    services = createProposalServices({
      riskLimits: { maxConsecutiveLosses: 3, dailyLossLimitPct: 5, dailyLiquidatePct: 10, maxPositionPct: 20, maxOpenPositions: 2 },
      approvalLimits: { mode: 'paper', minConfidence: 0.7, autoMaxNotional: 100_000_000, twoPersonNotional: 1e12 },
      maxPriceDriftPct: 1, maxQuoteAgeSeconds: 120, market, portfolio: paper,
      router: new ExecutionRouter(paper, { pollIntervalMs: 5, fillTimeoutMs: 2000, fetchAttempts: 2 }),
      state, journal, logger: silentLogger(), onLiquidate: () => undefined,
    });
  });
  afterEach(async () => {
    await paper.close();
    await journal.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('counts proposals re-checked at the same moment against the open-position limit', async () => {
    const ctxs = ['AAA/KRW', 'BBB/KRW', 'CCC/KRW'].map((symbol) => context({ symbol }));
    const checks = await Promise.all(ctxs.map((c) => services.recheck(c)));
    expect(checks.map((c) => c.ok)).to.deep.equal([true, true, false]);
    expect((checks[2] as { code: string }).code).to.equal('max_open_positions');
  });

  it('releases the reserved capacity once an order is booked or fails', async () => {
    const a = context({ symbol: 'AAA/KRW' });
    const b = context({ symbol: 'BBB/KRW' });
    expect((await services.recheck(a)).ok).to.equal(true);
    expect((await services.recheck(b)).ok).to.equal(true);
    const filled = await services.execute({ ...a, recheck: { price: 100, driftPct: 0, at: Date.now() } });
    expect(filled.fill?.quantity).to.equal(10_000);
    // a is now a real position and b still holds its reservation: a third symbol is over the limit.
    expect((await services.recheck(context({ symbol: 'CCC/KRW' }))).ok).to.equal(false);
  });

  it('fails an exit whose position another exit already sold, without halting trading', async () => {
    const buy = context({ symbol: 'AAA/KRW' });
    await services.execute({ ...buy, recheck: { price: 100, driftPct: 0, at: Date.now() } });
    const exit = () => context({ symbol: 'AAA/KRW', side: 'sell', intent: 'sell', quantity: 10_000, notional: 1_000_000 });
    const first = await services.execute({ ...exit(), recheck: { price: 100, driftPct: 0, at: Date.now() } });
    expect(first.fill?.quantity).to.equal(10_000);
    let code: string | undefined;
    try {
      await services.execute({ ...exit(), recheck: { price: 100, driftPct: 0, at: Date.now() } });
    } catch (err) {
      code = (err as { code?: string }).code;
    }
    expect(code).to.equal('no_position');
    expect(state.tradingState).to.equal('active');
  });

  it('rejects an approval as stale when market data is down and the card is older than MARKET_DATA_MAX_AGE_SECONDS', async () => {
    market.failing = true;
    const old = await services.recheck(context({ createdAt: Date.now() - 121_000 }));
    expect(old.ok).to.equal(false);
    expect((old as { code: string }).code).to.equal('stale_price');
    expect((old as { reason: string }).reason).to.match(/market data unavailable/);
    const fresh = await services.recheck(context({ createdAt: Date.now() - 5_000 }));
    expect(fresh.ok).to.equal(true);
    expect((fresh as { note?: string }).note).to.match(/^market_data_missing/);
  });

  it('makes a person approve a proposal priced only by its signal, and never marks the book with that price', async () => {
    const a = await services.assess(context({ priceSource: 'signal', price: 1, notional: 50_000 }));
    expect(a.approval.approvers).to.equal(1);
    expect(a.approval.reasons.map((r) => r.code)).to.include('unverified_price');
    expect(paper.snapshot(Date.now()).positions).to.deep.equal([]);
  });

  it('sends nothing when trading was halted between the approval and the first submit', async () => {
    await state.setTradingState('halted', 'ops', 'incident');
    let code: string | undefined;
    try {
      await services.execute({ ...context(), recheck: { price: 100, driftPct: 0, at: Date.now() } });
    } catch (err) {
      code = (err as { code?: string }).code;
    }
    expect(code).to.equal('halted');
    expect(paper.snapshot(Date.now()).positions).to.deep.equal([]);
  });
});
