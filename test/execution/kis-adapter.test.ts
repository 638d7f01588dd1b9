import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { FAKE_KIS_MESSAGES, FakeKis, type FakeKisOptions } from '../fakes/fake-kis';
import { KisClient, type KisClientOptions } from '../../src/integrations/kis';
import { parseMarketSession, type MarketSession } from '../../src/market-session';
import { KisVenue, roundToKrxTick, type KisVenueOptions } from '../../src/execution/kis-adapter';
import { NodeStorageIo } from '../../src/persistence/storage-io';
import { Dec } from '../../src/amounts';
import { TransientError, VenueAuthError, VenueRejectedError, type AppError } from '../../src/errors';
import type { OrderReport, OrderRequest } from '../../src/proposal/types';
import { describeVenueContract } from './venue-contract';
import { rejectionOf } from '../support/rejection';

const PDNO = '005930';
const SYMBOL = '005930/KRW';
const PRICE = 1000;
/** Monday 2 March 2026, 10:00 in Seoul. */
const MONDAY_10_KST = Date.parse('2026-03-02T01:00:00Z');
const ALWAYS = parseMarketSession('Mon-Sun 00:00-24:00', 'Asia/Seoul') as MarketSession;
const KRX = parseMarketSession('09:00-15:30', 'Asia/Seoul') as MarketSession;
const WINDOW_MS = 10_000;

interface Harness {
  fake: FakeKis;
  venue: KisVenue;
  client: KisClient;
  dir: string;
  clock: { t: number };
  /** Every wait asked for (the fake clock moves by it). */
  sleeps: number[];
  decisions: Array<Record<string, unknown>>;
  open: (extra?: { client?: Partial<KisClientOptions>; venue?: Partial<KisVenueOptions> }) => Promise<{ venue: KisVenue; client: KisClient }>;
  close: () => Promise<void>;
}

interface HarnessOptions {
  fake?: FakeKisOptions;
  client?: Partial<KisClientOptions>;
  venue?: Partial<KisVenueOptions>;
  realClock?: boolean;
  paper?: boolean;
  /** KIS's clock runs this far behind the host's, ms. */
  fakeLagMs?: number;
}

async function harness(options: HarnessOptions = {}): Promise<Harness> {
  const clock = { t: MONDAY_10_KST };
  const now = options.realClock ? Date.now : () => clock.t;
  const sleeps: number[] = [];
  const sleep = options.realClock
    ? (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
    : async (ms: number) => {
      sleeps.push(ms);
      clock.t += ms;
      await new Promise((resolve) => setImmediate(resolve));
    };
  const paper = options.paper ?? true;
  const lag = options.fakeLagMs ?? 0;
  const fake = await FakeKis.start({ now: lag ? () => now() - lag : now, paper, ...options.fake });
  fake.setPrice(PDNO, PRICE);
  fake.setCash(10_000_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kis-venue-'));
  const decisions: Array<Record<string, unknown>> = [];
  const opened: KisVenue[] = [];
  const open: Harness['open'] = async (extra = {}) => {
    const client = new KisClient({ apiUrl: fake.url, appKey: fake.appKey, appSecret: fake.appSecret, accountNo: fake.accountNo, paper, dataDir: dir, timeoutMs: 300, now, sleep, ...options.client, ...extra.client });
    const venue = await KisVenue.open(new NodeStorageIo(), dir, client, {
      session: KRX, now, sleep, visibilityWindowMs: WINDOW_MS, onDecision: async (r) => { decisions.push(r); }, ...options.venue, ...extra.venue,
    });
    opened.push(venue);
    return { venue, client };
  };
  const first = await open();
  return {
    fake, dir, clock, sleeps, decisions, open, venue: first.venue, client: first.client,
    close: async () => {
      for (const v of opened) await v.close().catch(() => undefined);
      await fake.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

let seq = 0;
const nextId = () => `ct-p-20260302-kis${(++seq).toString(16).padStart(9, '0')}`;
const buy = (notional: string, extra: Partial<OrderRequest> = {}): OrderRequest => ({ clientOrderId: nextId(), symbol: SYMBOL, side: 'buy', intent: 'buy', notional, price: String(PRICE), ...extra });
const sell = (quantity: string, extra: Partial<OrderRequest> = {}): OrderRequest => ({ clientOrderId: nextId(), symbol: SYMBOL, side: 'sell', intent: 'sell', notional: '0', quantity, price: String(PRICE), ...extra });


async function settle(venue: KisVenue, id: string): Promise<OrderReport> {
  for (let i = 0; i < 20; i++) {
    const r = await venue.findByClientId(id);
    if (r && ['filled', 'cancelled', 'rejected'].includes(r.status)) return r;
  }
  throw new Error(`order ${id} did not reach a final status`);
}

const orderPosts = (fake: FakeKis) => fake.requestsTo('/trading/order-cash');

/** Waits (bounded) until `condition` holds. */
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  if (!condition()) throw new Error('condition not met within 10 s');
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: AppError };
const outcomeOf = <T>(p: Promise<T>): Promise<Outcome<T>> => p.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error: error as AppError }));

describeVenueContract('kis', async () => {
  const h = await harness({ realClock: true, fake: { requestsPerSecond: 0 }, client: { requestsPerSecond: 1000 }, venue: { session: ALWAYS } });
  return { venue: h.venue, symbol: SYMBOL, price: PRICE, ordersSeen: () => h.fake.ordersSeen(), close: h.close };
});

describe('KisVenue', () => {
  let h: Harness;
  afterEach(async () => {
    await h?.close();
  });

  describe('orders', () => {
    it('buys floor(notional / price) whole shares at market and reports the fill exactly', async () => {
      h = await harness();
      const req = buy('50999');
      const placed = await h.venue.submit(req);
      expect(placed).to.include({ status: 'open', venue: 'kis', symbol: SYMBOL, side: 'buy' });
      expect(placed.venueOrderId).to.match(/^\d{10}$/);
      const [post] = orderPosts(h.fake);
      expect(post!.body).to.include({ CANO: '50123456', ACNT_PRDT_CD: '01', PDNO, ORD_DVSN: '01', ORD_QTY: '50', ORD_UNPR: '0' });
      const final = await settle(h.venue, req.clientOrderId);
      expect(final).to.include({ status: 'filled', filledQuantity: '50', avgPrice: '1000', venueOrderId: placed.venueOrderId });
      expect(h.fake.holding(PDNO)).to.equal(50);
    });

    it('sends a limit buy at a price moved down onto the KRX tick', async () => {
      h = await harness();
      expect(roundToKrxTick(new Dec('70080'), 'buy').toFixed()).to.equal('70000');
      expect(roundToKrxTick(new Dec('70080'), 'sell').toFixed()).to.equal('70100');
      await h.venue.submit({ ...buy('10000'), orderType: 'limit', limitPrice: '1003' } as OrderRequest);
      expect(orderPosts(h.fake)[0]!.body).to.include({ ORD_DVSN: '00', ORD_UNPR: '1003', ORD_QTY: '9' });
    });

    it('sells whole shares held and the holding is gone from balances', async () => {
      h = await harness();
      h.fake.setHolding(PDNO, 10);
      const req = sell('10');
      await h.venue.submit(req);
      expect((await settle(h.venue, req.clientOrderId)).filledQuantity).to.equal('10');
      expect((await h.venue.balances()).positions).to.deep.equal([]);
    });

    it('liquidates every holding: each position in balances is sold whole', async () => {
      h = await harness();
      h.fake.setPrice('000660', 2000);
      h.fake.setHolding(PDNO, 7);
      h.fake.setHolding('000660', 3);
      const before = await h.venue.balances();
      expect(before.positions.map((p) => p.symbol).sort()).to.deep.equal(['000660/KRW', SYMBOL]);
      for (const p of before.positions) {
        const req: OrderRequest = { clientOrderId: nextId(), symbol: p.symbol, side: 'sell', intent: 'liquidate', notional: '0', quantity: p.quantity, price: '1000' };
        await h.venue.submit(req);
        expect((await settle(h.venue, req.clientOrderId)).status).to.equal('filled');
      }
      expect((await h.venue.balances()).positions).to.deep.equal([]);
    });

    it('reports cash after T+2 settlement (prvs_rcdl_excc_amt), not deposits now', async () => {
      h = await harness();
      const req = buy('100000');
      await h.venue.submit(req);
      await settle(h.venue, req.clientOrderId);
      const b = await h.venue.balances();
      // 100 shares at 1,000 and the fake's 0.015 % fee (15 KRW) have left; dnca_tot_amt still says 10,000,000.
      expect(b).to.deep.equal({ quoteCurrency: 'KRW', cash: '9899985', positions: [{ symbol: SYMBOL, quantity: '100' }] });
    });

    it('cancels an open order (order-rvsecncl) and answers the final report of a filled one', async () => {
      h = await harness();
      h.fake.autoFill(false);
      const open = buy('50000');
      await h.venue.submit(open);
      const cancelled = await h.venue.cancel(open.clientOrderId);
      expect(cancelled).to.include({ status: 'cancelled', filledQuantity: '0' });
      expect(h.fake.requestsTo('/trading/order-rvsecncl')[0]!.body).to.include({ ORGN_ODNO: cancelled!.venueOrderId, RVSE_CNCL_DVSN_CD: '02', QTY_ALL_ORD_YN: 'Y' });
      expect(h.fake.requestsTo('/trading/order-rvsecncl')[0]!.headers['tr_id']).to.equal('VTTC0013U');
      h.fake.autoFill(true);
      const done = buy('50000');
      await h.venue.submit(done);
      expect(await h.venue.cancel(done.clientOrderId)).to.include({ status: 'filled', filledQuantity: '50' });
      expect(h.fake.requestsTo('/trading/order-rvsecncl')).to.have.length(1);
    });

    it('trades only KRX codes', () => {
      return harness().then((made) => {
        h = made;
        expect(h.venue.trades('005930/KRW')).to.equal(true);
        expect(h.venue.trades('0001A0/KRW')).to.equal(true);
        expect(h.venue.trades('BTC/KRW')).to.equal(false);
        expect(h.venue.trades('005930/USD')).to.equal(false);
      });
    });
  });

  describe('refusals before sending', () => {
    it('refuses a dry run as disarmed and sends nothing at all', async () => {
      h = await harness();
      const before = h.fake.requests.length;
      const err = await rejectionOf(h.venue.submit(buy('50000'), { dryRun: true }));
      expect(err).to.be.instanceOf(VenueRejectedError);
      expect(err.code).to.equal('disarmed');
      expect(h.fake.requests.length).to.equal(before);
      expect(h.venue.capabilities).to.deep.equal({ orderTypes: ['market', 'limit'], dryRun: false, clientOrderIds: false });
    });

    it('refuses a buy of less than one share as below_minimum', async () => {
      h = await harness();
      const err = await rejectionOf(h.venue.submit(buy('999')));
      expect(err.code).to.equal('below_minimum');
      expect(err.message).to.match(/whole shares/);
      expect(orderPosts(h.fake)).to.have.length(0);
    });

    it('refuses a sell of a fractional quantity and sends nothing', async () => {
      h = await harness();
      h.fake.setHolding(PDNO, 10);
      const err = await rejectionOf(h.venue.submit(sell('2.5')));
      expect(err.code).to.equal('fractional_quantity');
      expect(orderPosts(h.fake)).to.have.length(0);
    });

    it('refuses a buy the cash after settlement cannot pay for with the fee, and a sell of shares not held', async () => {
      h = await harness();
      h.fake.setCash(50_000);
      const err = await rejectionOf(h.venue.submit(buy('50000')));
      expect(err.code).to.equal('insufficient_cash');
      expect(err.message).to.match(/50008 KRW/);
      const short = await rejectionOf(h.venue.submit(sell('5')));
      expect(short.code).to.equal('insufficient_position');
      expect(orderPosts(h.fake)).to.have.length(0);
    });

    it('refuses outside the session before sending, naming the session and KIS_MARKET_HOURS', async () => {
      h = await harness();
      h.clock.t = Date.parse('2026-03-02T07:00:00Z'); // 16:00 in Seoul
      const err = await rejectionOf(h.venue.submit(buy('50000')));
      expect(err).to.be.instanceOf(VenueRejectedError);
      expect(err.code).to.equal('market_closed');
      expect(err.message).to.include('KIS_MARKET_HOURS').and.include('Mon-Fri 09:00-15:30 Asia/Seoul').and.include('16:00');
      h.clock.t = Date.parse('2026-03-07T02:00:00Z'); // Saturday 11:00
      h.fake.setHolding(PDNO, 3);
      const liquidation = await rejectionOf(h.venue.submit(sell('3', { intent: 'liquidate' })));
      expect(liquidation.code).to.equal('market_closed');
      expect(liquidation.message).to.match(/liquidation cannot trade/);
      expect(orderPosts(h.fake)).to.have.length(0);
    });

    it('maps a refusal KIS gives (market closed on a holiday) by its words', async () => {
      h = await harness();
      h.fake.setMarketOpen(false);
      const err = await rejectionOf(h.venue.submit(buy('50000')));
      expect(err.code).to.equal('market_closed');
      expect(err.message).to.include('장종료');
      expect(h.fake.ordersSeen()).to.equal(0);
    });
  });

  describe('lost answers', () => {
    it('finds the order KIS placed when the answer timed out: exactly one order', async () => {
      h = await harness();
      h.fake.holdNextOrder({ after: 'placed' });
      const req = buy('50000');
      const report = await h.venue.submit(req);
      expect(h.fake.ordersSeen()).to.equal(1);
      expect(orderPosts(h.fake)).to.have.length(1);
      expect(report.venueOrderId).to.equal(h.fake.orders()[0]!.odno);
      expect(report.status).to.equal('filled');
      expect(h.decisions.map((d) => d['decision'])).to.deep.equal(['found']);
      expect(await h.venue.findByClientId(req.clientOrderId)).to.include({ venueOrderId: report.venueOrderId });
    });

    it('finds it when KIS shows it late, within the window, and sends nothing again', async () => {
      h = await harness();
      h.fake.showOrdersLate(WINDOW_MS - 2000);
      h.fake.holdNextOrder({ after: 'placed' });
      const report = await h.venue.submit(buy('50000'));
      expect(h.fake.ordersSeen()).to.equal(1);
      expect(orderPosts(h.fake)).to.have.length(1);
      expect(report.venueOrderId).to.equal(h.fake.orders()[0]!.odno);
      expect(h.fake.requestsTo('/inquire-daily-ccld').length).to.be.greaterThan(1);
    });

    it('sends once more after at least three polls over the window found nothing: exactly one order', async () => {
      h = await harness();
      h.fake.holdNextOrder({ after: 'not-placed' });
      const report = await h.venue.submit(buy('50000'));
      expect(h.fake.ordersSeen()).to.equal(1);
      expect(report.venueOrderId).to.equal(h.fake.orders()[0]!.odno);
      const posts = orderPosts(h.fake);
      expect(posts).to.have.length(2);
      const polls = h.fake.requestsTo('/inquire-daily-ccld').filter((r) => r.at < posts[1]!.at || r.at === posts[1]!.at);
      expect(polls.length).to.be.at.least(3);
      expect(polls[polls.length - 1]!.at - polls[0]!.at).to.be.at.least(WINDOW_MS);
      expect(h.decisions.map((d) => d['decision'])).to.deep.equal(['absent']);
    });

    it('never claims an order another of our attempts has claimed', async () => {
      h = await harness();
      const first = buy('50000');
      await h.venue.submit(first);
      h.fake.holdNextOrder({ after: 'not-placed' });
      const second = buy('50000');
      const report = await h.venue.submit(second);
      expect(h.fake.ordersSeen()).to.equal(2);
      expect(report.venueOrderId).to.not.equal((await h.venue.findByClientId(first.clientOrderId))!.venueOrderId);
      expect(h.decisions.map((d) => d['decision'])).to.deep.equal(['absent']);
    });

    it('leaves the outcome unknown and resends nothing when two unclaimed orders match', async () => {
      h = await harness();
      h.fake.holdNextOrder({ after: 'placed' });
      const req = buy('50000');
      const pending = rejectionOf(h.venue.submit(req));
      while (h.fake.heldCount === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      // The same order placed by hand (another app) while ours was in flight.
      await h.client.orderCash({ side: 'buy', pdno: PDNO, ordDvsn: '01', quantity: '50', price: '0' });
      const err = await pending;
      expect(err).to.be.instanceOf(TransientError);
      expect(err.code).to.equal('order_outcome_unknown');
      expect(err.message).to.match(/nothing is resent/);
      expect(h.decisions.map((d) => d['decision'])).to.deep.equal(['ambiguous']);
      expect((await rejectionOf(h.venue.findByClientId(req.clientOrderId))).code).to.equal('order_outcome_unknown');
      expect((await rejectionOf(h.venue.submit(req))).code).to.equal('order_outcome_unknown');
      expect(h.fake.ordersSeen()).to.equal(2);
      expect(orderPosts(h.fake)).to.have.length(2);
      // Reported once: the operators are alerted once, however often it is asked after.
      expect(h.decisions.map((d) => d['decision'])).to.deep.equal(['ambiguous']);
    });

    it('never lets a lost answer claim the order of another send of the same stock and side still in flight', async () => {
      h = await harness({ client: { timeoutMs: 5000 } });
      h.fake.setHolding(PDNO, 10);
      h.fake.holdNextOrder({ after: 'not-placed' }); // Y: the connection drops, nothing placed
      h.fake.holdNextOrder({ after: 'placed', answer: true }); // X: placed, its answer late
      const y = sell('10');
      const x = sell('10', { intent: 'liquidate' });
      const yDone = outcomeOf(h.venue.submit(y));
      await until(() => h.fake.heldCount === 1);
      const xDone = outcomeOf(h.venue.submit(x));
      await until(() => h.fake.heldCount === 2);
      h.fake.releaseNextHeld();
      // Y's poll sees X's order, unclaimed, while X has no answer yet.
      await until(() => h.fake.requestsTo('/inquire-daily-ccld').length > 0);
      h.fake.releaseNextHeld();
      const [yOut, xOut] = await Promise.all([yDone, xDone]);
      expect(h.fake.ordersSeen()).to.equal(1);
      const odno = h.fake.orders()[0]!.odno;
      expect(xOut.ok && xOut.value.venueOrderId).to.equal(odno);
      // Y was found absent and sent again; KIS refused it (X sold the shares): nothing of Y is at KIS.
      expect(yOut.ok).to.equal(false);
      expect(!yOut.ok && yOut.error).to.be.instanceOf(VenueRejectedError);
      expect(await h.venue.findByClientId(y.clientOrderId)).to.equal(undefined);
      expect((await settle(h.venue, x.clientOrderId))).to.include({ status: 'filled', filledQuantity: '10', venueOrderId: odno });
      expect(h.decisions.map((d) => d['decision'])).to.deep.equal(['absent']);
    });

    it('makes both ambiguous, never both filled, when an answer names an order number another client id holds', async () => {
      h = await harness();
      const first = buy('50000');
      const placed = await h.venue.submit(first);
      h.fake.renumberNextAnswer(placed.venueOrderId!);
      const second = buy('50000');
      const err = await rejectionOf(h.venue.submit(second));
      expect(err).to.be.instanceOf(TransientError);
      expect(err.code).to.equal('order_outcome_unknown');
      expect(err.message).to.include(first.clientOrderId).and.include(second.clientOrderId);
      expect((await rejectionOf(h.venue.findByClientId(first.clientOrderId))).code).to.equal('order_outcome_unknown');
      expect((await rejectionOf(h.venue.findByClientId(second.clientOrderId))).code).to.equal('order_outcome_unknown');
      expect(h.decisions.map((d) => [d['decision'], d['clientOrderId']])).to.have.deep.members([['ambiguous', first.clientOrderId], ['ambiguous', second.clientOrderId]]);
      expect(orderPosts(h.fake)).to.have.length(2);
    });

    it('finds the placed order when the host clock runs ahead of KIS by seconds (default clockSkewMs)', async () => {
      h = await harness({ fakeLagMs: 5000 });
      h.fake.holdNextOrder({ after: 'placed' });
      const report = await h.venue.submit(buy('50000'));
      expect(h.fake.ordersSeen()).to.equal(1);
      expect(orderPosts(h.fake)).to.have.length(1);
      expect(report.venueOrderId).to.equal(h.fake.orders()[0]!.odno);
      expect(h.decisions.map((d) => d['decision'])).to.deep.equal(['found']);
    });

    it('refuses with resend_limit once maxAttempts sends were found absent, nothing being at KIS', async () => {
      h = await harness();
      h.fake.holdNextOrder({ after: 'not-placed' });
      h.fake.holdNextOrder({ after: 'not-placed' });
      const req = buy('50000');
      const err = await rejectionOf(h.venue.submit(req));
      expect(err).to.be.instanceOf(VenueRejectedError);
      expect(err.code).to.equal('resend_limit');
      expect(err.message).to.include('KIS_API_URL');
      expect(h.decisions.map((d) => d['decision'])).to.deep.equal(['absent', 'absent']);
      expect(await h.venue.findByClientId(req.clientOrderId)).to.equal(undefined);
      expect((await rejectionOf(h.venue.submit(req))).code).to.equal('resend_limit');
      expect(orderPosts(h.fake)).to.have.length(2);
      expect(h.fake.ordersSeen()).to.equal(0);
    });

    it('counts neither rate-limited nor refused sends toward maxAttempts', async () => {
      h = await harness({ venue: { maxAttempts: 1 } });
      h.fake.answerNext('order-cash', { status: 500, msgCd: 'EGW00201', msg1: FAKE_KIS_MESSAGES.rateLimited });
      const req = buy('50000');
      expect((await rejectionOf(h.venue.submit(req))).code).to.equal('kis_rate_limited');
      h.fake.answerNext('order-cash', { status: 200, msgCd: '40580000', msg1: FAKE_KIS_MESSAGES.marketClosed });
      expect((await rejectionOf(h.venue.submit(req))).code).to.equal('market_closed');
      const report = await h.venue.submit(req);
      expect(report.venueOrderId).to.equal(h.fake.orders()[0]!.odno);
      expect(orderPosts(h.fake)).to.have.length(3);
      expect(h.fake.ordersSeen()).to.equal(1);
    });

    it('after a restart while the outcome is unknown, finds the order instead of resending it', async () => {
      h = await harness();
      h.fake.showOrdersLate(WINDOW_MS - 1000);
      const crashed = await h.open({ venue: { sleep: async () => { throw new Error('process killed'); } } });
      h.fake.holdNextOrder({ after: 'placed' });
      const req = buy('50000');
      expect((await rejectionOf(crashed.venue.submit(req))).message).to.include('process killed');
      await crashed.venue.close();
      h.clock.t += 1000; // a restart takes a while (and a new client's throttle starts empty)
      const restarted = await h.open();
      expect((await rejectionOf(restarted.venue.findByClientId(req.clientOrderId))).code).to.equal('order_outcome_unknown');
      const report = await restarted.venue.submit(req);
      expect(report.venueOrderId).to.equal(h.fake.orders()[0]!.odno);
      expect(h.fake.ordersSeen()).to.equal(1);
      expect(orderPosts(h.fake)).to.have.length(1);
    });
  });

  describe('look-ups never read as refusals', () => {
    it('answers lookup_failed when KIS refuses the inquiry of an order it holds', async () => {
      h = await harness();
      h.fake.autoFill(false);
      const req = buy('50000');
      await h.venue.submit(req);
      h.fake.answerNext('inquire-daily-ccld', { status: 200, msgCd: 'OPSQ9999', msg1: '조회 처리 중 오류가 발생했습니다.' });
      const err = await rejectionOf(h.venue.findByClientId(req.clientOrderId));
      expect(err).to.be.instanceOf(TransientError);
      expect(err.code).to.equal('lookup_failed');
      expect(err.details).to.include({ cause: 'kis_refused', clientOrderId: req.clientOrderId });
      expect(await h.venue.findByClientId(req.clientOrderId)).to.include({ status: 'open' });
    });

    it('answers lookup_failed, and later finds the order, when a poll after a lost answer is refused', async () => {
      h = await harness();
      h.fake.holdNextOrder({ after: 'placed' });
      h.fake.answerNext('inquire-daily-ccld', { status: 200, msgCd: 'OPSQ9999', msg1: '조회 처리 중 오류가 발생했습니다.' });
      const req = buy('50000');
      const err = await rejectionOf(h.venue.submit(req));
      expect(err).to.be.instanceOf(TransientError);
      expect(err.code).to.equal('lookup_failed');
      const report = await h.venue.submit(req);
      expect(report.venueOrderId).to.equal(h.fake.orders()[0]!.odno);
      expect(orderPosts(h.fake)).to.have.length(1);
    });

    it('answers lookup_failed when the keys are refused while an order is followed', async () => {
      h = await harness();
      const req = buy('50000');
      await h.venue.submit(req);
      h.fake.answerNext('inquire-daily-ccld', { status: 500, msgCd: 'EGW00105', msg1: FAKE_KIS_MESSAGES.invalidAppSecret });
      const err = await rejectionOf(h.venue.findByClientId(req.clientOrderId));
      expect(err).to.be.instanceOf(TransientError);
      expect(err.details).to.include({ cause: 'invalid_keys', causeCategory: 'venue_auth' });
    });

    it('settles an order-cash answer with an unknown code from the day\'s orders: placed → found', async () => {
      h = await harness();
      h.fake.answerNext('order-cash', { status: 500, msgCd: 'APBK1234', msg1: '처리 중 오류가 발생했습니다.' }, { placeFirst: true });
      const report = await h.venue.submit(buy('50000'));
      expect(h.fake.ordersSeen()).to.equal(1);
      expect(orderPosts(h.fake)).to.have.length(1);
      expect(report.venueOrderId).to.equal(h.fake.orders()[0]!.odno);
      expect(h.decisions.map((d) => d['decision'])).to.deep.equal(['found']);
    });

    it('settles an order-cash answer with an unknown code from the day\'s orders: not placed → absent, sent again once', async () => {
      h = await harness();
      h.fake.answerNext('order-cash', { status: 200, msgCd: 'ZZZZ0001', msg1: '알 수 없는 오류' });
      const report = await h.venue.submit(buy('50000'));
      expect(h.fake.ordersSeen()).to.equal(1);
      expect(orderPosts(h.fake)).to.have.length(2);
      expect(report.venueOrderId).to.equal(h.fake.orders()[0]!.odno);
      expect(h.decisions.map((d) => d['decision'])).to.deep.equal(['absent']);
    });

    it('takes a known refusal code on order-cash as refused, without polling', async () => {
      h = await harness();
      h.fake.answerNext('order-cash', { status: 200, msgCd: 'APBK0952', msg1: '처리할 수 없습니다' });
      const err = await rejectionOf(h.venue.submit(buy('50000')));
      expect(err).to.be.instanceOf(VenueRejectedError);
      expect(err.code).to.equal('insufficient_cash');
      expect(h.fake.requestsTo('/inquire-daily-ccld')).to.have.length(0);
    });
  });

  describe('the end of the session', () => {
    it('reports an order still open at the close as cancelled, with what filled', async () => {
      h = await harness();
      h.fake.autoFill(false);
      const part = buy('50000');
      const placed = await h.venue.submit(part);
      h.fake.fillOrder(placed.venueOrderId!, 20);
      const none = buy('30000');
      await h.venue.submit(none);
      expect(await h.venue.findByClientId(part.clientOrderId)).to.include({ status: 'partially_filled', filledQuantity: '20' });
      h.clock.t = Date.parse('2026-03-02T06:29:00Z'); // 15:29 in Seoul: still open
      expect(await h.venue.findByClientId(none.clientOrderId)).to.include({ status: 'open' });
      h.clock.t = Date.parse('2026-03-02T06:30:00Z'); // 15:30: the session has closed
      expect(await h.venue.findByClientId(part.clientOrderId)).to.include({ status: 'cancelled', filledQuantity: '20', avgPrice: '1000', updatedAt: '2026-03-02T06:30:00.000Z' });
      expect(await h.venue.findByClientId(none.clientOrderId)).to.include({ status: 'cancelled', filledQuantity: '0' });
    });
  });

  describe('credentials and the token', () => {
    it('answers a wrong appkey with a VenueAuthError and asks for no token again (no storm)', async () => {
      h = await harness();
      const { venue } = await h.open({ client: { appKey: 'PSwrongkey000000000000000000000000000' } });
      const first = await rejectionOf(venue.balances());
      expect(first).to.be.instanceOf(VenueAuthError);
      expect(first.code).to.equal('invalid_keys');
      expect(first.message).to.include('EGW00103').and.not.include('PSwrongkey');
      for (let i = 0; i < 3; i++) expect(await rejectionOf(venue.submit(buy('50000')))).to.be.instanceOf(VenueAuthError);
      expect(h.fake.requestsTo('/oauth2/tokenP')).to.have.length(1);
      expect(h.fake.tokensIssued).to.equal(0);
    });

    it('issues one token for two instances on one DATA_DIR, cached 0600 and keyed to host + appkey', async () => {
      h = await harness();
      await h.venue.balances();
      const second = await h.open();
      await second.venue.balances();
      expect(h.fake.tokensIssued).to.equal(1);
      const file = path.join(h.dir, 'kis-token.json');
      expect(fs.statSync(file).mode & 0o777).to.equal(0o600);
      const text = fs.readFileSync(file, 'utf8');
      expect(text).to.not.include(h.fake.appKey).and.not.include(h.fake.appSecret);
      // Another host (another account) never reuses it.
      const other = await FakeKis.start({ now: () => h.clock.t });
      try {
        const client = new KisClient({ apiUrl: other.url, appKey: other.appKey, appSecret: other.appSecret, accountNo: other.accountNo, paper: true, dataDir: h.dir, now: () => h.clock.t });
        await client.balance();
        expect(other.tokensIssued).to.equal(1);
      } finally {
        await other.stop();
      }
    });

    it('replaces a refused token once, and not again within the minute', async () => {
      h = await harness();
      await h.venue.balances();
      h.clock.t += 61_000;
      h.fake.expireTokens();
      await h.venue.balances();
      expect(h.fake.tokensIssued).to.equal(2);
      h.fake.expireTokens();
      const err = await rejectionOf(h.venue.balances());
      expect(err).to.be.instanceOf(VenueAuthError);
      expect(err.code).to.equal('token_expired');
      expect(err.message).to.include('EGW00123').and.include('one token a minute');
      expect(h.fake.tokensIssued).to.equal(2);
      expect(h.fake.requestsTo('/oauth2/tokenP')).to.have.length(2);
    });
  });

  describe('the wire', () => {
    it('sends paper transaction ids (VTTC…) with every required header for a paper account', async () => {
      h = await harness();
      const req = buy('50000');
      await h.venue.submit(req);
      await settle(h.venue, req.clientOrderId);
      const ids = new Set(h.fake.requests.filter((r) => r.path.startsWith('/uapi')).map((r) => String(r.headers['tr_id'])));
      expect([...ids].sort()).to.deep.equal(['VTTC0012U', 'VTTC0081R', 'VTTC8434R']);
      const post = orderPosts(h.fake)[0]!;
      expect(post.headers).to.include({ 'content-type': 'application/json; charset=utf-8', appkey: h.fake.appKey, appsecret: h.fake.appSecret, custtype: 'P' });
      expect(post.headers['authorization']).to.match(/^Bearer fake-token-/);
    });

    it('sends real transaction ids (TTTC…) for a real account', async () => {
      h = await harness({ paper: false });
      h.fake.setHolding(PDNO, 5);
      const req = sell('5');
      await h.venue.submit(req);
      await settle(h.venue, req.clientOrderId);
      const ids = new Set(h.fake.requests.filter((r) => r.path.startsWith('/uapi')).map((r) => String(r.headers['tr_id'])));
      expect([...ids].sort()).to.deep.equal(['TTTC0011U', 'TTTC0081R', 'TTTC8434R']);
    });

    it('keeps to the rate limit: no request is refused with EGW00201', async () => {
      h = await harness({ fake: { requestsPerSecond: 2 } });
      for (let i = 0; i < 7; i++) await h.venue.balances();
      expect(h.fake.requests.filter((r) => r.error === 'EGW00201')).to.deep.equal([]);
      expect(h.sleeps.length).to.be.greaterThan(0);
    });

    it('maps EGW00201 to a transient kis_rate_limited when a faster client meets the limit', async () => {
      h = await harness({ fake: { requestsPerSecond: 2 } });
      const { client } = await h.open({ client: { requestsPerSecond: 10 } });
      await client.balance();
      await client.balance();
      const err = await rejectionOf(client.balance());
      expect(err).to.be.instanceOf(TransientError);
      expect(err.code).to.equal('kis_rate_limited');
      expect(err.message).to.include('초당 거래건수');
    });
  });
});

