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
import { ReservationBook } from '../../src/portfolio/reservations';
import type { Candle, MarketData, MarketQuote } from '../../src/context/market-snapshot';

/** Market data whose price and failure a test sets. */
class FakeMarket implements MarketData {
  readonly source = 'exchange' as const;
  price = 100;
  failing = false;
  /** Age of the quotes it answers with (the exchange's own time of the price). */
  quoteAgeMs = 0;
  /** Holds every quote until it resolves (a slow exchange). */
  gate: Promise<void> = Promise.resolve();
  async quote(symbol: string): Promise<MarketQuote> {
    await this.gate;
    if (this.failing) throw new TransientError('market_data_timeout', 'no answer within 300 ms');
    return { symbol, price: this.price, at: new Date(Date.now() - this.quoteAgeMs).toISOString(), source: 'exchange' };
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
  let book: ReservationBook;
  /** A live proposal's context (the orchestrator admits live proposals to the reservation book). */
  const live = (over: Partial<ProposalContext> = {}) => {
    const c = context(over);
    book.admit(c.id);
    return c;
  };

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'services-'));
    market = new FakeMarket();
    const io = new NodeStorageIo();
    paper = await PaperExecutor.open(io, dir, { initialCash: 10_000_000, feeRate: 0, slippagePct: 0, fillDelayMs: 0, quoteCurrency: 'KRW', timeZone: 'Asia/Seoul' });
    state = await RuntimeState.open(io, dir, 'paper');
    journal = new TradeLog(io, path.join(dir, 'journal'));
    book = new ReservationBook();
    services = createProposalServices({
      riskLimits: { maxConsecutiveLosses: 3, dailyLossLimitPct: 5, dailyLiquidatePct: 10, maxPositionPct: 20, maxOpenPositions: 2 },
      approvalLimits: { mode: 'paper', minConfidence: 0.7, autoMaxNotional: 100_000_000, twoPersonNotional: 1e12 },
      maxPriceDriftPct: 1, allowAddToPosition: false, maxQuoteAgeSeconds: 120, market, portfolio: paper,
      router: new ExecutionRouter(paper, { pollIntervalMs: 5, fillTimeoutMs: 2000, fetchAttempts: 2 }),
      state, journal, logger: silentLogger(), reservations: book, onLiquidate: () => undefined,
    });
  });
  afterEach(async () => {
    await paper.close();
    await journal.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('counts proposals re-checked at the same moment against the open-position limit', async () => {
    const ctxs = ['AAA/KRW', 'BBB/KRW', 'CCC/KRW'].map((symbol) => live({ symbol }));
    const checks = await Promise.all(ctxs.map((c) => services.recheck(c)));
    expect(checks.map((c) => c.ok)).to.deep.equal([true, true, false]);
    expect((checks[2] as { code: string }).code).to.equal('max_open_positions');
  });

  it('releases the reserved capacity once an order is booked or fails', async () => {
    const a = live({ symbol: 'AAA/KRW' });
    const b = live({ symbol: 'BBB/KRW' });
    expect((await services.recheck(a)).ok).to.equal(true);
    expect((await services.recheck(b)).ok).to.equal(true);
    const filled = await services.execute({ ...a, recheck: { price: 100, driftPct: 0, at: Date.now() } });
    expect(filled.fill?.quantity).to.equal('10000');
    expect(book.size, 'only b still holds capacity').to.equal(1);
    // a is now a real position and b still holds its reservation: a third symbol is over the limit.
    expect((await services.recheck(live({ symbol: 'CCC/KRW' }))).ok).to.equal(false);
  });

  it('fails an exit whose position another exit already sold, without halting trading', async () => {
    const buy = context({ symbol: 'AAA/KRW' });
    await services.execute({ ...buy, recheck: { price: 100, driftPct: 0, at: Date.now() } });
    const exit = () => context({ symbol: 'AAA/KRW', side: 'sell', intent: 'sell', quantity: '10000', notional: 1_000_000 });
    const first = await services.execute({ ...exit(), recheck: { price: 100, driftPct: 0, at: Date.now() } });
    expect(first.fill?.quantity).to.equal('10000');
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

  /** A held position of AAA/KRW bought at 100 (10,000 units). */
  async function holding(): Promise<void> {
    await services.execute({ ...live({ symbol: 'AAA/KRW' }), recheck: { price: 100, driftPct: 0, at: Date.now() } });
  }
  const exitOf = (over: Partial<ProposalContext> = {}) => live({ symbol: 'AAA/KRW', side: 'sell', intent: 'liquidate', quantity: '10000', notional: 1_000_000, ...over });

  for (const move of [-3, -60, 3]) {
    it(`sends a liquidation at the fresh price when the price moved ${move}% since the card, and sells the whole position`, async () => {
      await holding();
      market.price = 100 * (1 + move / 100);
      const exit = exitOf();
      const check = await services.recheck(exit);
      expect(check.ok, JSON.stringify(check)).to.equal(true);
      const passed = check as Extract<typeof check, { ok: true }>;
      expect(passed.price).to.be.closeTo(market.price, 1e-9);
      expect(passed.note).to.match(/^repriced: the price moved/);
      const result = await services.execute({ ...exit, recheck: passed });
      expect(result.fill?.quantity).to.equal('10000');
      expect(paper.snapshot(Date.now()).positions).to.deep.equal([]);
    });
  }

  it('keeps the drift guard for entries: a 3% move rejects a buy as stale_price', async () => {
    market.price = 103;
    const check = await services.recheck(live());
    expect(check.ok).to.equal(false);
    expect((check as { code: string }).code).to.equal('stale_price');
  });

  it('treats an exchange quote older than MARKET_DATA_MAX_AGE_SECONDS as no market data', async () => {
    market.quoteAgeMs = 200_000;
    market.price = 150; // an old price far off: it must not be used
    const old = await services.recheck(live({ createdAt: Date.now() - 130_000 }));
    expect(old.ok).to.equal(false);
    expect((old as { reason: string }).reason).to.match(/more than MARKET_DATA_MAX_AGE_SECONDS 120 old/);
    const fresh = await services.recheck(live({ createdAt: Date.now() - 5_000 }));
    expect(fresh.ok).to.equal(true);
    expect((fresh as { price: number }).price, 'the card price stands, not the old quote').to.equal(100);
    expect((fresh as { note?: string }).note).to.match(/^market_data_missing: .*stale_quote|^market_data_missing: the latest quote/);
  });

  it('sends an exit at market when market data is down, however old its card', async () => {
    await holding();
    market.failing = true;
    const exit = exitOf({ createdAt: Date.now() - 3_600_000 });
    const check = await services.recheck(exit);
    expect(check.ok, JSON.stringify(check)).to.equal(true);
    expect((check as { note?: string }).note).to.match(/an exit goes out at market/);
    // Approved an hour ago (a restart much later): an exit is still sent, an entry would not be.
    const result = await services.execute({ ...exit, recheck: { price: 100, driftPct: 0, at: Date.now() - 3_600_000 } });
    expect(result.fill?.quantity).to.equal('10000');
  });

  it('reserves nothing for a proposal that stopped being live while its re-check waited for a quote', async () => {
    let open!: () => void;
    market.gate = new Promise((resolve) => { open = resolve; });
    const c = live({ symbol: 'BBB/KRW' });
    const check = services.recheck(c);
    book.close(c.id); // cancelled (kill switch) while the exchange was slow
    open();
    await check;
    expect(book.size).to.equal(0);
    const view = paper.snapshot(Date.now());
    expect(book.applyTo(view, 'someone-else'), 'nothing is applied to anyone').to.deep.equal(view);
  });

  it('refuses at approval a second buy of a symbol that the first one is buying or holds (adding to a position is off)', async () => {
    const first = live({ symbol: 'DDD/KRW' });
    const second = live({ symbol: 'DDD/KRW' });
    expect((await services.recheck(first)).ok).to.equal(true);
    const check = await services.recheck(second);
    expect(check.ok).to.equal(false);
    expect((check as { code: string }).code).to.equal('duplicate_position');
    await services.execute({ ...first, recheck: { price: 100, driftPct: 0, at: Date.now() } });
    const third = await services.recheck(live({ symbol: 'DDD/KRW' }));
    expect((third as { code: string }).code, 'held after the fill').to.equal('duplicate_position');
  });
});
