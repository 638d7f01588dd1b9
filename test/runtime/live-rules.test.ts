import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { createProposalServices } from '../../src/runtime/proposal-services';
import { PaperExecutor } from '../../src/execution/paper-executor';
import { ExecutionRouter } from '../../src/execution/router';
import type { ExecutionVenue } from '../../src/execution/base';
import { NodeStorageIo } from '../../src/persistence/storage-io';
import { RuntimeState } from '../../src/state';
import { TradeLog } from '../../src/journal/trade-log';
import { silentLogger } from '../../src/logging';
import { clientOrderIdFor, type ProposalContext } from '../../machines/proposal.machine';
import { ReservationBook } from '../../src/portfolio/reservations';
import type { OrderReport, OrderRequest } from '../../src/proposal/types';
import { VenueRejectedError } from '../../src/errors';
import type { MarketData } from '../../src/context/market-snapshot';
import { LiveBook, accountOpenedRecord } from '../../src/portfolio/live-book';
import { compareWithBook, recordLines, recountJournal } from '../../src/journal/ledger';

/** The paper venue with a dry run, as a live venue would have one: it records what it was asked. */
class DryRunVenue implements ExecutionVenue {
  readonly name = 'dryrunner';
  readonly minOrderNotional = 0;
  readonly capabilities = { orderTypes: ['market'] as const, dryRun: true, clientOrderIds: true };
  readonly dryRuns: OrderRequest[] = [];
  constructor(private readonly paper: PaperExecutor) {}
  trades(): boolean { return true; }
  async submit(order: OrderRequest, options: { dryRun?: boolean } = {}): Promise<OrderReport> {
    if (!options.dryRun) return this.paper.submit(order);
    this.dryRuns.push(order);
    const at = new Date().toISOString();
    return {
      clientOrderId: order.clientOrderId, venueOrderId: 'test', venue: this.name, symbol: order.symbol, side: order.side, status: 'filled',
      filledQuantity: order.quantity ?? '1', avgPrice: order.price, fee: '0', submittedAt: at, updatedAt: at, dryRun: true,
    };
  }
  findByClientId(id: string) { return this.paper.findByClientId(id); }
  cancel(id: string) { return this.paper.cancel(id); }
  balances() { return this.paper.balances(); }
}

/** The paper venue whose first look-ups fail with a refusal, as a rate-limited venue's may. */
class FlakyLookupVenue implements ExecutionVenue {
  readonly name = 'flaky';
  readonly minOrderNotional = 0;
  readonly capabilities = { orderTypes: ['market'] as const, dryRun: false, clientOrderIds: true };
  submits = 0;
  constructor(private readonly paper: PaperExecutor, private failures: number) {}
  trades(): boolean { return true; }
  submit(order: OrderRequest): Promise<OrderReport> {
    this.submits++;
    return this.paper.submit(order);
  }
  async findByClientId(id: string) {
    if (this.failures-- > 0) throw new VenueRejectedError('too_many_requests', 'rate limited');
    return this.paper.findByClientId(id);
  }
  cancel(id: string) { return this.paper.cancel(id); }
  balances() { return this.paper.balances(); }
}

const market: MarketData = {
  source: 'exchange',
  quote: async (symbol) => ({ symbol, price: 100, at: new Date().toISOString(), source: 'exchange' }),
  candles: async () => [],
};

let seq = 0;
function context(over: Partial<ProposalContext> = {}): ProposalContext {
  const id = `p-20261202-${(++seq).toString(16).padStart(12, '0')}`;
  const now = Date.now();
  return {
    id, signalId: 'sig', symbol: 'AAA/KRW', side: 'buy', intent: 'buy', notional: 500_000, quantity: null, price: 100, priceSource: 'market',
    confidence: 0.9, reasons: [], explanation: '', createdAt: now, deadline: now + 60_000, requestedNotional: 500_000, risk: null,
    approval: { approvers: 1, allowPartial: true, reasons: [] }, approvals: [], sizeFactor: 1, clientOrderId: clientOrderIdFor(id),
    recheck: { price: 100, driftPct: 0, at: now }, order: null, fill: null, history: [], outcome: null, ...over,
  };
}

async function failure(run: Promise<unknown>): Promise<string | undefined> {
  try {
    await run;
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe('live rules at the first submit (in-process, paper book)', () => {
  let dir: string;
  let paper: PaperExecutor;
  let state: RuntimeState;
  let journal: TradeLog;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'live-rules-'));
    const io = new NodeStorageIo();
    paper = await PaperExecutor.open(io, dir, { initialCash: 10_000_000, feeRate: 0, slippagePct: 0, fillDelayMs: 0, quoteCurrency: 'KRW', timeZone: 'Asia/Seoul' });
    state = await RuntimeState.open(io, dir, 'live');
    journal = new TradeLog(io, path.join(dir, 'journal'));
  });
  afterEach(async () => {
    await paper.close();
    await journal.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const services = (venue: ExecutionVenue) => createProposalServices({
    riskLimits: { maxConsecutiveLosses: 3, dailyLossLimitPct: 5, dailyLiquidatePct: 10, maxPositionPct: 50, maxOpenPositions: 5 },
    approvalLimits: { mode: 'live', minConfidence: 0.7, autoMaxNotional: 100_000_000, twoPersonNotional: 1e12 },
    maxPriceDriftPct: 1, allowAddToPosition: true, maxQuoteAgeSeconds: 120, market, portfolio: paper,
    router: new ExecutionRouter(venue, { pollIntervalMs: 5, fillTimeoutMs: 2000, fetchAttempts: 2 }),
    state, journal, logger: silentLogger(), reservations: new ReservationBook(), onLiquidate: () => undefined, liveMaxOrderNotional: 1_000_000,
  });
  const journalled = (type: string) => fs.readdirSync(path.join(dir, 'journal')).filter((f) => f.endsWith('.jsonl'))
    .flatMap((f) => fs.readFileSync(path.join(dir, 'journal', f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string }))
    .filter((r) => r.type === type);

  it('runs an entry dry while disarmed, placing nothing, and journals it apart from fills', async () => {
    const venue = new DryRunVenue(paper);
    const result = await services(venue).execute(context());
    expect(result.order.dryRun).to.equal(true);
    expect(venue.dryRuns).to.have.length(1);
    expect(paper.snapshot(Date.now()).positions).to.deep.equal([]);
    expect(journalled('order.dry_run')).to.have.length(1);
    expect(journalled('order.filled')).to.have.length(0);
  });

  it('never abandons an order whose look-up failed: after a restart it is found at the venue, and nothing is sent again', async () => {
    await state.arm('ops', 30);
    const ctx = context();
    // Sent before a crash: the order is at the venue, the restarted service does not know it.
    await paper.submit({ clientOrderId: ctx.clientOrderId, symbol: ctx.symbol, side: 'buy', intent: 'buy', notional: '500000', price: '100' });
    const venue = new FlakyLookupVenue(paper, 1);
    const result = await services(venue).execute(ctx);
    expect(result.order.clientOrderId).to.equal(ctx.clientOrderId);
    expect(venue.submits, 'nothing sent again').to.equal(0);
    expect(journalled('order.failed')).to.have.length(0);
    expect(journalled('order.unknown')).to.have.length(1);
  });

  it('fails an entry disarmed where the venue has no dry run, sending nothing', async () => {
    expect(await failure(services(paper).execute(context()))).to.equal('disarmed');
    expect(paper.snapshot(Date.now()).positions).to.deep.equal([]);
  });

  it('sends an entry for real once armed', async () => {
    await state.arm('ops', 30);
    const venue = new DryRunVenue(paper);
    const result = await services(venue).execute(context());
    expect(result.order.dryRun).to.equal(undefined);
    expect(venue.dryRuns).to.have.length(0);
    expect(result.fill?.quantity).to.equal('5000');
  });

  it('refuses an entry above LIVE_MAX_ORDER_NOTIONAL, armed or not, naming the variable', async () => {
    await state.arm('ops', 30);
    let message = '';
    try {
      await services(paper).execute(context({ notional: 1_000_001, requestedNotional: 1_000_001 }));
    } catch (err) {
      message = (err as Error).message;
      expect((err as { code?: string }).code).to.equal('live_max_order_notional');
    }
    expect(message).to.include('LIVE_MAX_ORDER_NOTIONAL');
    expect(paper.snapshot(Date.now()).positions).to.deep.equal([]);
  });

  it('sends a liquidation while disarmed and above the cap: reducing risk always goes out', async () => {
    await state.arm('ops', 30);
    const s = services(paper);
    await s.execute(context({ notional: 900_000, requestedNotional: 900_000 }));
    await s.execute(context({ notional: 900_000, requestedNotional: 900_000 }));
    await state.disarm('ops');
    const liquidation = await s.execute(context({ side: 'sell', intent: 'liquidate', quantity: '18000', notional: 1_800_000, requestedNotional: 1_800_000 }));
    expect(liquidation.fill?.quantity).to.equal('18000');
    expect(paper.snapshot(Date.now()).positions).to.deep.equal([]);
  });

  it('runs a discretionary exit dry while disarmed', async () => {
    await state.arm('ops', 30);
    const venue = new DryRunVenue(paper);
    const s = services(venue);
    await s.execute(context());
    await state.disarm('ops');
    const exit = await s.execute(context({ side: 'sell', intent: 'sell', quantity: '5000', notional: 500_000 }));
    expect(exit.order.dryRun).to.equal(true);
    expect(paper.snapshot(Date.now()).positions.map((p) => p.quantity)).to.deep.equal(['5000']);
  });

  it('keeps a proposal approved while disarmed a dry run when the service is armed before it goes out', async () => {
    const venue = new DryRunVenue(paper);
    const s = services(venue);
    const recheck = await s.recheck(context({ recheck: null }));
    expect(recheck.ok && recheck.dryRun, 'the approval records that it was disarmed').to.equal(true);
    await state.arm('ops', 30);
    const ctx = context();
    const result = await s.execute({ ...ctx, recheck: { price: 100, driftPct: 0, at: Date.now(), dryRun: true } });
    expect(result.order.dryRun).to.equal(true);
    expect(paper.snapshot(Date.now()).positions).to.deep.equal([]);
  });
});

/** A live venue that fills each order in the parts a test scripts, one per lookup. */
class PartialVenue implements ExecutionVenue {
  readonly name = 'upbit';
  readonly minOrderNotional = 0;
  readonly capabilities = { orderTypes: ['market', 'limit'] as const, dryRun: false, clientOrderIds: true };
  private readonly orders = new Map<string, { report: OrderReport; step: number }>();
  constructor(private readonly parts: ReadonlyArray<[OrderReport['status'], string, string, string]>) {}
  trades(): boolean { return true; }
  async submit(order: OrderRequest): Promise<OrderReport> {
    const at = new Date().toISOString();
    const report: OrderReport = {
      clientOrderId: order.clientOrderId, venueOrderId: `v-${order.clientOrderId}`, venue: this.name, symbol: order.symbol, side: order.side,
      status: 'open', filledQuantity: '0', avgPrice: '0', fee: '0', submittedAt: at, updatedAt: at,
    };
    this.orders.set(order.clientOrderId, { report, step: 0 });
    return { ...report };
  }
  async findByClientId(id: string): Promise<OrderReport | undefined> {
    const o = this.orders.get(id);
    if (!o) return undefined;
    const [status, filledQuantity, avgPrice, fee] = this.parts[Math.min(o.step++, this.parts.length - 1)]!;
    Object.assign(o.report, { status, filledQuantity, avgPrice, fee });
    return { ...o.report };
  }
  async cancel(id: string): Promise<OrderReport | undefined> { return this.findByClientId(id); }
  async balances() { return { quoteCurrency: 'KRW', cash: '0', positions: [] }; }
}

describe('partial fills in live mode (in-process, live book)', () => {
  let dir: string;
  let state: RuntimeState;
  let journal: TradeLog;
  let book: LiveBook;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'live-parts-'));
    const io = new NodeStorageIo();
    state = await RuntimeState.open(io, dir, 'live');
    await state.arm('ops', 30);
    journal = new TradeLog(io, path.join(dir, 'journal'));
    book = await LiveBook.open(io, dir, { venue: 'upbit', quoteCurrency: 'KRW', timeZone: 'Asia/Seoul', minOrderNotional: 5000 });
    await book.reconcile({ quoteCurrency: 'KRW', cash: '10000000', positions: [] });
  });
  afterEach(async () => {
    await book.close();
    await journal.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const records = () => fs.readdirSync(path.join(dir, 'journal')).filter((f) => f.endsWith('.jsonl'))
    .flatMap((f) => fs.readFileSync(path.join(dir, 'journal', f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; fill?: unknown; order?: { fillSequence?: number } }));

  /** The live account's hooks over the book (no venue reconcile); `inFlight` records the book's flights after each part. */
  const hooks = (inFlight: string[][] = []) => ({
    orderStarted: (id: string, symbol: string) => book.expectOrder(id, symbol),
    orderAbandoned: (id: string) => book.forgetOrder(id),
    bookPart: async (order: OrderReport) => {
      const out = await book.bookFill(order);
      inFlight.push(Object.keys(book.inFlight));
      return out.fill && out.fillSequence !== null ? { fill: out.fill, fillSequence: out.fillSequence } : null;
    },
    partsBooked: (id: string) => book.partsOf(id),
    bookFill: async (order: OrderReport) => (await book.bookFill(order)).fillSequence,
  });
  const servicesOn = (venue: ExecutionVenue, liveAccount: ReturnType<typeof hooks>) => createProposalServices({
    riskLimits: { maxConsecutiveLosses: 3, dailyLossLimitPct: 5, dailyLiquidatePct: 10, maxPositionPct: 50, maxOpenPositions: 5 },
    approvalLimits: { mode: 'live', minConfidence: 0.7, autoMaxNotional: 100_000_000, twoPersonNotional: 1e12 },
    maxPriceDriftPct: 1, allowAddToPosition: true, maxQuoteAgeSeconds: 120, market, portfolio: book,
    router: new ExecutionRouter(venue, { pollIntervalMs: 1, fillTimeoutMs: 2000, fetchAttempts: 2 }),
    state, journal, logger: silentLogger(), reservations: new ReservationBook(), onLiquidate: () => undefined, liveMaxOrderNotional: 1_000_000, liveAccount,
  });
  const recounted = () => {
    const recount = recountJournal(recordLines([accountOpenedRecord(book.unjournalledOpening!), ...records()]), { venue: 'upbit' });
    expect(recount.errors).to.deep.equal([]);
    expect(compareWithBook(recount, book.state)).to.deep.equal([]);
    return recount;
  };

  it('journals again, when the order is found at the venue, a part whose line a crash lost, and the journal recounts equal to the book', async () => {
    const venue = new PartialVenue([['partially_filled', '2000', '100', '0.1'], ['partially_filled', '3000', '100.5', '0.15075'], ['filled', '5000', '100.3', '0.25075']]);
    const ctx = context();
    // A previous run sent the order, booked its first part and died before journalling it.
    await venue.submit({ clientOrderId: ctx.clientOrderId, symbol: ctx.symbol, side: 'buy', intent: 'buy', notional: '500000', price: '100' });
    await book.expectOrder(ctx.clientOrderId, ctx.symbol);
    await book.bookFill((await venue.findByClientId(ctx.clientOrderId))!);
    const result = await servicesOn(venue, hooks()).execute(ctx);
    expect(result.fill).to.include({ quantity: '5000' });
    // The lost part is journalled again; the venue's next answers were 3000 (at the services' own
    // lookup, before following) and then final, so the final report booked the rest.
    const parts = records().filter((r) => r.type === 'order.partially_filled');
    expect(parts.map((r) => [r.fill, r.order?.fillSequence, (r as { again?: boolean }).again])).to.deep.equal([[{ quantity: '2000', price: '100', fee: '0.1' }, 1, true]]);
    expect(recounted().fills).to.equal(2);
    expect(book.state.cash).to.equal('9498499.74925');
  });

  it('books each part as it comes, journals it as order.partially_filled after booking, and the journal recounts equal to the book', async () => {
    const venue = new PartialVenue([['partially_filled', '2000', '100', '0.1'], ['partially_filled', '3000', '100.5', '0.15075'], ['filled', '5000', '100.3', '0.25075']]);
    const inFlight: string[][] = [];
    const liveAccount = hooks(inFlight);
    const services = createProposalServices({
      riskLimits: { maxConsecutiveLosses: 3, dailyLossLimitPct: 5, dailyLiquidatePct: 10, maxPositionPct: 50, maxOpenPositions: 5 },
      approvalLimits: { mode: 'live', minConfidence: 0.7, autoMaxNotional: 100_000_000, twoPersonNotional: 1e12 },
      maxPriceDriftPct: 1, allowAddToPosition: true, maxQuoteAgeSeconds: 120, market, portfolio: book,
      router: new ExecutionRouter(venue, { pollIntervalMs: 1, fillTimeoutMs: 2000, fetchAttempts: 2 }),
      state, journal, logger: silentLogger(), reservations: new ReservationBook(), onLiquidate: () => undefined, liveMaxOrderNotional: 1_000_000, liveAccount,
    });
    const ctx = context();
    const result = await services.execute(ctx);
    expect(result.fill).to.include({ quantity: '5000', price: '100.3' });
    expect(inFlight).to.deep.equal([[ctx.clientOrderId], [ctx.clientOrderId]]);
    expect(book.inFlight).to.deep.equal({});

    const journalled = records();
    const parts = journalled.filter((r) => r.type === 'order.partially_filled');
    // 3000 at 100.5 less 2000 at 100: 1000 at 101.5.
    expect(parts.map((r) => [r.fill, r.order?.fillSequence])).to.deep.equal([
      [{ quantity: '2000', price: '100', fee: '0.1', at: (parts[0]!.fill as { at: string }).at }, 1],
      [{ quantity: '1000', price: '101.5', fee: '0.05075', at: (parts[1]!.fill as { at: string }).at }, 2],
    ]);
    const filled = journalled.filter((r) => r.type === 'order.filled');
    expect(filled).to.have.length(1);
    expect(filled[0]!.fill).to.include({ quantity: '5000', price: '100.3', fee: '0.25075' });
    expect(filled[0]!.order?.fillSequence).to.equal(3);

    const recount = recountJournal(recordLines([accountOpenedRecord(book.unjournalledOpening!), ...journalled]), { venue: 'upbit' });
    expect(recount.errors).to.deep.equal([]);
    expect(recount.fills).to.equal(3);
    expect(compareWithBook(recount, book.state)).to.deep.equal([]);
    expect(book.state).to.include({ cash: '9498499.74925', feesPaid: '0.25075' });
  });
});
