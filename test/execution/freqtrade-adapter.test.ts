import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { FakeFreqtrade, type FakeFreqtradeOptions } from '../fakes/fake-freqtrade';
import { FreqtradeClient, freqtradeErrorOf, parseExactJson, exactJsonBody, type FreqtradeClientOptions } from '../../src/integrations/freqtrade';
import { FreqtradeVenue, type FreqtradeVenueOptions } from '../../src/execution/freqtrade-adapter';
import { ExecutionRouter } from '../../src/execution/router';
import { NodeStorageIo } from '../../src/persistence/storage-io';
import { ConfigError, TransientError, VenueAuthError, VenueRejectedError, type AppError } from '../../src/errors';
import type { OrderReport, OrderRequest } from '../../src/proposal/types';
import { describeVenueContract } from './venue-contract';
import { rejectionOf } from '../support/rejection';

const BTC_PRICE = 100_000_000;
const GRACE_MS = 5000;

interface Harness {
  fake: FakeFreqtrade;
  venue: FreqtradeVenue;
  clock: { t: number };
  decisions: Array<Record<string, unknown>>;
  reopen: (extra?: { client?: Partial<FreqtradeClientOptions>; venue?: FreqtradeVenueOptions }) => Promise<FreqtradeVenue>;
  close: () => Promise<void>;
}

async function harness(options: { client?: Partial<FreqtradeClientOptions>; venue?: FreqtradeVenueOptions; fake?: FakeFreqtradeOptions; realClock?: boolean } = {}): Promise<Harness> {
  const clock = { t: Date.now() };
  const now = options.realClock ? Date.now : () => clock.t;
  const fake = await FakeFreqtrade.start({ now, ...options.fake });
  fake.setBalance('KRW', 10_000_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'freqtrade-venue-'));
  const decisions: Array<Record<string, unknown>> = [];
  const opened: FreqtradeVenue[] = [];
  const reopen: Harness['reopen'] = async (extra = {}) => {
    const client = new FreqtradeClient({ apiUrl: fake.url, username: fake.username, password: fake.password, timeoutMs: 2000, now, ...options.client, ...extra.client });
    const venue = await FreqtradeVenue.open(new NodeStorageIo(), dir, client, {
      now, unknownOutcomeGraceMs: GRACE_MS, onDecision: async (r) => { decisions.push(r); }, ...options.venue, ...extra.venue,
    });
    opened.push(venue);
    return venue;
  };
  const venue = await reopen();
  return {
    fake, venue, clock, decisions, reopen,
    close: async () => {
      for (const v of opened) await v.close().catch(() => undefined);
      await fake.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

let seq = 0;
const nextId = () => `ct-p-20261126-ft${(++seq).toString(16).padStart(10, '0')}`;
const buy = (notional: string, extra: Partial<OrderRequest> = {}): OrderRequest => ({ clientOrderId: nextId(), symbol: 'BTC/KRW', side: 'buy', intent: 'buy', notional, price: String(BTC_PRICE), ...extra });
const sell = (quantity: string, extra: Partial<OrderRequest> = {}): OrderRequest => ({ clientOrderId: nextId(), symbol: 'BTC/KRW', side: 'sell', intent: 'sell', notional: '0', quantity, price: String(BTC_PRICE), ...extra });


const forceEnters = (fake: FakeFreqtrade) => fake.requestsTo('/forceenter', 'POST');
const forceExits = (fake: FakeFreqtrade) => fake.requestsTo('/forceexit', 'POST');

describeVenueContract('freqtrade', async () => {
  const h = await harness({ realClock: true });
  return { venue: h.venue, symbol: 'BTC/KRW', price: BTC_PRICE, ordersSeen: () => h.fake.ordersSeen(), close: h.close };
});

describe('FreqtradeVenue', () => {
  let h: Harness;
  afterEach(async () => { await h?.close(); });

  describe('orders', () => {
    it('enters with forceenter carrying the client order id as entry_tag and the stake as exact decimal text', async () => {
      h = await harness();
      const req = buy('50000.5');
      const report = await h.venue.submit(req);
      const sent = JSON.parse(forceEnters(h.fake)[0]!.body) as Record<string, unknown>;
      expect(sent).to.deep.equal({ pair: 'BTC/KRW', side: 'long', ordertype: 'market', entry_tag: req.clientOrderId, stakeamount: 50000.5 });
      expect(forceEnters(h.fake)[0]!.body).to.include('"stakeamount":50000.5');
      expect(report).to.include({ clientOrderId: req.clientOrderId, status: 'filled', side: 'buy', venue: 'freqtrade', venueOrderId: 'trade/1' });
      expect(report.filledQuantity).to.equal('0.00050000'.replace(/0+$/, ''));
      expect(report.avgPrice).to.equal('100000000');
      expect(report.fee).to.equal('25');
      expect(report.simulatedByVenue).to.equal(undefined);
    });

    it('sells a quantity with forceexit of the open trade, amount as the exact text asked', async () => {
      h = await harness();
      await h.venue.submit(buy('200000'));
      const report = await h.venue.submit(sell('0.0012'));
      expect(JSON.parse(forceExits(h.fake)[0]!.body)).to.deep.equal({ tradeid: '1', ordertype: 'market', amount: 0.0012 });
      expect(report).to.include({ status: 'filled', filledQuantity: '0.0012', avgPrice: '100000000', side: 'sell' });
      expect((await h.venue.balances()).positions).to.deep.equal([{ symbol: 'BTC/KRW', quantity: '0.0008' }]);
    });

    it('liquidates every open trade of the pair whole, including what the strategy itself entered (position adjustment)', async () => {
      h = await harness();
      h.fake.setConfig({ position_adjustment_enable: true });
      h.fake.strategyEntry('BTC/KRW', 100_000);
      await h.venue.submit(buy('50000'));
      await h.venue.submit(buy('70000', { symbol: 'ETH/KRW', price: '4000000' }));
      const report = await h.venue.submit({ ...sell('0.0015'), intent: 'liquidate' });
      expect(JSON.parse(forceExits(h.fake)[0]!.body)).to.deep.equal({ tradeid: '1', ordertype: 'market' });
      expect(report).to.include({ status: 'filled', filledQuantity: '0.0015' });
      const open = h.fake.trades().filter((t) => t['is_open']);
      expect(open.map((t) => t['pair'])).to.deep.equal(['ETH/KRW']);
      expect((await h.venue.balances()).positions.map((p) => p.symbol)).to.deep.equal(['ETH/KRW']);
    });

    it('refuses a partial exit that leaves less than the minimum, sending nothing', async () => {
      h = await harness();
      await h.venue.submit(buy('100000'));
      expect((await rejectionOf(h.venue.submit(sell('0.00098')))).code).to.equal('remaining_too_small');
      expect(forceExits(h.fake)).to.have.length(0);
    });

    it('exits the whole trades when the sell is at or above what they hold (dust in the wallet), reporting what stays', async () => {
      h = await harness();
      await h.venue.submit(buy('100000'));
      const req = sell('0.00100003');
      const report = await h.venue.submit(req);
      expect(JSON.parse(forceExits(h.fake)[0]!.body)).to.deep.equal({ tradeid: '1', ordertype: 'market' });
      expect(report).to.include({ status: 'filled', filledQuantity: '0.001' });
      expect(h.decisions[0]).to.include({ decision: 'exit_dust_left', clientOrderId: req.clientOrderId, requested: '0.00100003', exited: '0.001', left: '0.00000003' });
    });

    it('keeps a limit exit\'s limit price, also when it exits the whole trade', async () => {
      h = await harness();
      await h.venue.submit(buy('100000'));
      const report = await h.venue.submit(sell('0.001', { orderType: 'limit', limitPrice: '110000000.5' } as Partial<OrderRequest>));
      expect(JSON.parse(forceExits(h.fake)[0]!.body)).to.deep.equal({ tradeid: '1', ordertype: 'limit', price: 110000000.5 });
      expect(report.status).to.equal('open');
      h.fake.setPrice('BTC/KRW', 111_000_000);
      expect((await h.venue.findByClientId(report.clientOrderId))).to.include({ status: 'filled', filledQuantity: '0.001', avgPrice: '110000000.5' });
    });

    it('does not fail an exit over several trades when a later leg is refused after an earlier one was placed', async () => {
      h = await harness();
      h.fake.strategyEntry('BTC/KRW', 100_000);
      h.fake.strategyEntry('BTC/KRW', 100_000);
      // The bot refuses the second leg: at its price it would leave less than its minimum.
      const req = sell('0.00199', { price: '1000000000' });
      const report = await h.venue.submit(req);
      expect(forceExits(h.fake)).to.have.length(2);
      expect(report).to.include({ status: 'filled', filledQuantity: '0.001' });
      expect(h.decisions[0]).to.include({ decision: 'exit_leg_failed', clientOrderId: req.clientOrderId, tradeId: '2', code: 'remaining_too_small' });
      expect(await h.venue.findByClientId(req.clientOrderId)).to.include({ status: 'filled', filledQuantity: '0.001' });
    });

    it('never books a liquidation\'s exit order for a resting exit of the same pair that Freqtrade cancelled for it', async () => {
      h = await harness();
      await h.venue.submit(buy('100000'));
      const resting = sell('0.001', { orderType: 'limit', limitPrice: '110000000' } as Partial<OrderRequest>);
      expect((await h.venue.submit(resting)).status).to.equal('open');
      const liquidation = await h.venue.submit({ ...sell('0.001'), intent: 'liquidate' });
      expect(liquidation).to.include({ status: 'filled', filledQuantity: '0.001' });
      expect(await h.venue.findByClientId(resting.clientOrderId)).to.include({ status: 'cancelled', filledQuantity: '0' });
    });

    it('never lets an exit whose answer was lost claim the exit order of a later liquidation', async () => {
      h = await harness({ client: { timeoutMs: 200 } });
      await h.venue.submit(buy('100000'));
      h.fake.holdNextOrder({ after: 'placed' });
      const resting = sell('0.001', { orderType: 'limit', limitPrice: '110000000' } as Partial<OrderRequest>);
      expect(await rejectionOf(h.venue.submit(resting))).to.be.instanceOf(TransientError);
      const liquidation = await h.venue.submit({ ...sell('0.001'), intent: 'liquidate' });
      expect(liquidation).to.include({ status: 'filled', filledQuantity: '0.001' });
      expect((await rejectionOf(h.venue.findByClientId(resting.clientOrderId))).code).to.equal('order_outcome_unknown');
      h.clock.t += GRACE_MS + 1;
      expect(await h.venue.findByClientId(resting.clientOrderId)).to.equal(undefined);
      expect(await h.venue.findByClientId(liquidation.clientOrderId)).to.include({ filledQuantity: '0.001' });
    });

    it('sends exits of one pair one at a time', async () => {
      h = await harness({ client: { timeoutMs: 300 } });
      await h.venue.submit(buy('100000'));
      h.fake.holdNextOrder({ after: 'not-placed' });
      const first = h.venue.submit(sell('0.0005', { price: '100000000' })).catch((e: unknown) => e);
      const second = h.venue.submit({ ...sell('0.001'), intent: 'liquidate' });
      for (let i = 0; i < 200 && h.fake.heldCount === 0; i++) await new Promise((r) => setTimeout(r, 5));
      expect(forceExits(h.fake)).to.have.length(1);
      h.fake.releaseHeld();
      await first;
      expect((await second).filledQuantity).to.equal('0.001');
      expect(forceExits(h.fake)).to.have.length(2);
    });
  });

  describe('entry reports', () => {
    it('reports an entry the bot spent more than 1 % above its notional on (a stake raised to the exchange minimum)', async () => {
      h = await harness({ fake: { minStake: '60000' } });
      const req = buy('50000');
      const report = await h.venue.submit(req);
      expect(report.filledQuantity).to.equal('0.0006');
      expect(h.decisions).to.have.length(1);
      expect(h.decisions[0]).to.include({ decision: 'entry_overspent', clientOrderId: req.clientOrderId, notional: '50000', cost: '60000' });
      await h.venue.findByClientId(req.clientOrderId);
      expect(h.decisions).to.have.length(1);
    });

    it('reports the quantity net of a fee taken in the base coin, and its value as the fee (no stake-currency fee on top)', async () => {
      h = await harness({ fake: { feeInBase: true } });
      const report = await h.venue.submit(buy('100000'));
      expect(report).to.include({ filledQuantity: '0.0009995', avgPrice: '100000000', fee: '50' });
      expect((await h.venue.balances()).positions).to.deep.equal([{ symbol: 'BTC/KRW', quantity: '0.0009995' }]);
      expect((await h.venue.balances()).cash).to.equal('9900000');
    });

    it('never credits the strategy\'s own top-up buys (untagged) to our entry', async () => {
      h = await harness({ client: { timeoutMs: 200 } });
      h.fake.setConfig({ position_adjustment_enable: true });
      h.fake.holdNextOrder({ after: 'placed' });
      const req = buy('50000');
      await rejectionOf(h.venue.submit(req));
      h.fake.strategyTopUp(1, 100_000);
      const report = await h.venue.submit(req);
      expect(report).to.include({ venueOrderId: 'trade/1', filledQuantity: '0.0005' });
    });
  });

  describe('refusals before sending', () => {
    it('has no per-order dry run: dryRun is refused as disarmed and nothing is sent', async () => {
      h = await harness();
      const err = await rejectionOf(h.venue.submit(buy('50000'), { dryRun: true }));
      expect(err).to.be.instanceOf(VenueRejectedError);
      expect(err.code).to.equal('disarmed');
      const router = new ExecutionRouter(h.venue, { pollIntervalMs: 1, fillTimeoutMs: 1000, fetchAttempts: 1 });
      expect((await rejectionOf(router.execute(buy('50000'), { dryRun: true }))).code).to.equal('disarmed');
      expect(forceEnters(h.fake)).to.have.length(0);
      expect(h.venue.capabilities).to.deep.equal({ orderTypes: ['market', 'limit'], dryRun: false, clientOrderIds: false });
    });

    it('refuses an entry below the minimum and one the free stake currency cannot pay, naming the rule', async () => {
      h = await harness();
      const small = await rejectionOf(h.venue.submit(buy('4999')));
      expect(small.code).to.equal('below_minimum');
      expect(small.message).to.include('5000 KRW');
      h.fake.setBalance('KRW', 100_000);
      const poor = await rejectionOf(h.venue.submit(buy('100000')));
      expect(poor.code).to.equal('insufficient_cash');
      expect(poor.message).to.include('only 100000 is free');
      expect(forceEnters(h.fake)).to.have.length(0);
    });

    it('names force_entry_enable when the bot refuses force entries, and the state when it is stopped', async () => {
      h = await harness();
      h.fake.setConfig({ force_entry_enable: false });
      const off = await rejectionOf(h.venue.submit(buy('50000')));
      expect(off).to.be.instanceOf(VenueRejectedError);
      expect(off.code).to.equal('force_entry_disabled');
      expect(off.message).to.include('force_entry_enable');
      h.fake.setConfig({ force_entry_enable: true, state: 'stopped' });
      const stopped = await rejectionOf(h.venue.submit(buy('50000')));
      expect(stopped.code).to.equal('bot_not_running');
      expect(stopped.message).to.include('"stopped"');
      expect(forceEnters(h.fake)).to.have.length(0);
    });

    it('trades only whitelisted pairs in the bot\'s stake currency', async () => {
      h = await harness();
      expect(h.venue.trades('BTC/KRW')).to.equal(true);
      expect(h.venue.trades('XRP/KRW')).to.equal(false);
      expect(h.venue.trades('BTC/USDT')).to.equal(false);
      expect((await rejectionOf(h.venue.submit(buy('50000', { symbol: 'XRP/KRW' })))).code).to.equal('not_traded');
    });
  });

  describe('the bot', () => {
    it('marks every report simulatedByVenue while the bot runs in its own dry_run', async () => {
      h = await harness();
      h.fake.setConfig({ dry_run: true });
      const req = buy('50000');
      expect((await h.venue.submit(req)).simulatedByVenue).to.equal(true);
      expect((await h.venue.findByClientId(req.clientOrderId))?.simulatedByVenue).to.equal(true);
      expect((await h.venue.submit(sell('0.0005'))).simulatedByVenue).to.equal(true);
      expect((await h.venue.check('KRW')).dryRun).to.equal(true);
    });

    it('checks at start that the stake currency is the quote currency, naming both', async () => {
      h = await harness({ fake: { stakeCurrency: 'USDT', whitelist: ['BTC/USDT'] } });
      const err = await rejectionOf(h.venue.check('KRW'));
      expect(err).to.be.instanceOf(ConfigError);
      expect(err.message).to.include('USDT').and.to.include('KRW');
      const ok = await h.venue.check('USDT');
      expect(ok).to.include({ stakeCurrency: 'USDT', state: 'running', forceEntryEnable: true });
      h.fake.setConfig({ force_entry_enable: false });
      expect((await h.venue.check('USDT')).problems.join(' ')).to.include('force_entry_enable');
    });

    it('reads the bot\'s whitelist again every refreshIntervalMs: a pair added to it becomes tradable without a restart', async () => {
      h = await harness({ venue: { refreshIntervalMs: 20 } });
      expect(h.venue.trades('XRP/KRW')).to.equal(false);
      h.fake.setWhitelist(['BTC/KRW', 'ETH/KRW', 'XRP/KRW']);
      for (let i = 0; i < 200 && !h.venue.trades('XRP/KRW'); i++) await new Promise((r) => setTimeout(r, 10));
      expect(h.venue.trades('XRP/KRW')).to.equal(true);
    });

    it('reports balances: the stake currency as cash, every other currency as BASE/STAKE, exactly', async () => {
      h = await harness();
      h.fake.setBalance('KRW', '1234567.891');
      h.fake.setBalance('ETH', '0.12345678');
      expect(await h.venue.balances()).to.deep.equal({ quoteCurrency: 'KRW', cash: '1234567.891', positions: [{ symbol: 'ETH/KRW', quantity: '0.12345678' }] });
    });
  });

  describe('exactly once', () => {
    it('finds an entry the bot placed when the answer timed out, and never sends it again', async () => {
      h = await harness({ client: { timeoutMs: 200 } });
      h.fake.holdNextOrder({ after: 'placed' });
      const req = buy('50000');
      const err = await rejectionOf(h.venue.submit(req));
      expect(err).to.be.instanceOf(TransientError);
      const again = await h.venue.submit(req);
      expect(again.status).to.equal('filled');
      expect(forceEnters(h.fake)).to.have.length(1);
      expect(h.fake.trades()).to.have.length(1);
      expect(h.decisions.map((d) => d['decision'])).to.deep.equal(['entry_found_after_lost_answer']);
    });

    it('does not resend an entry the bot did not place until the grace has passed, then places exactly one', async () => {
      h = await harness({ client: { timeoutMs: 200 } });
      h.fake.holdNextOrder({ after: 'not-placed' });
      const req = buy('50000');
      await rejectionOf(h.venue.submit(req));
      const unknown = await rejectionOf(h.venue.submit(req));
      expect(unknown.code).to.equal('order_outcome_unknown');
      expect(forceEnters(h.fake)).to.have.length(1);
      h.clock.t += GRACE_MS + 1;
      expect(await h.venue.findByClientId(req.clientOrderId)).to.equal(undefined);
      const placed = await h.venue.submit(req);
      expect(placed.status).to.equal('filled');
      expect(forceEnters(h.fake)).to.have.length(2);
      expect(h.fake.trades()).to.have.length(1);
      expect(h.decisions.map((d) => d['decision'])).to.deep.equal(['entry_absent_after_grace', 'entry_resent_after_grace']);
    });

    it('finds an entry by entry_tag after a restart while its outcome was unknown, and does not resend it', async () => {
      h = await harness({ client: { timeoutMs: 200 } });
      h.fake.holdNextOrder({ after: 'placed' });
      const req = buy('50000');
      await rejectionOf(h.venue.submit(req));
      await h.venue.close();
      const restarted = await h.reopen();
      const report = await restarted.submit(req);
      expect(report.venueOrderId).to.equal('trade/1');
      expect(forceEnters(h.fake)).to.have.length(1);
      expect(h.fake.trades()).to.have.length(1);
      expect(h.decisions[0]).to.include({ decision: 'entry_found_after_lost_answer', clientOrderId: req.clientOrderId, tradeId: '1' });
    });

    it('finds an entry closed meanwhile among the closed trades before sending it (a fresh DATA_DIR knows nothing of it)', async () => {
      h = await harness();
      const req = buy('50000');
      await h.venue.submit(req);
      await h.venue.submit(sell('0.0005'));
      const other = await FreqtradeVenue.open(new NodeStorageIo(), fs.mkdtempSync(path.join(os.tmpdir(), 'freqtrade-other-')), new FreqtradeClient({ apiUrl: h.fake.url, username: h.fake.username, password: h.fake.password, now: () => h.clock.t }));
      try {
        // No record here: the look-up asks nothing; the send looks for the tag first.
        expect(await other.findByClientId(req.clientOrderId)).to.equal(undefined);
        expect(await other.submit(req)).to.include({ venueOrderId: 'trade/1', status: 'filled' });
        expect((await other.findByClientId(req.clientOrderId))?.filledQuantity).to.equal('0.0005');
        expect(forceEnters(h.fake)).to.have.length(1);
      } finally {
        await other.close();
      }
    });

    it('never resends an exit whose answer was lost: it is found on the trade\'s exit orders', async () => {
      h = await harness({ client: { timeoutMs: 200 } });
      await h.venue.submit(buy('100000'));
      h.fake.holdNextOrder({ after: 'placed' });
      const req = { ...sell('0.001'), intent: 'liquidate' as const };
      await rejectionOf(h.venue.submit(req));
      const report = await h.venue.submit(req);
      expect(report).to.include({ status: 'filled', filledQuantity: '0.001' });
      expect(forceExits(h.fake)).to.have.length(1);
      expect(h.decisions.map((d) => d['decision'])).to.deep.equal(['exit_found_after_lost_answer']);
    });
  });

  describe('look-ups', () => {
    it('answers undefined for an id it has no record of, without any request to the bot', async () => {
      h = await harness();
      await h.venue.balances();
      const before = h.fake.requests.length;
      expect(await h.venue.findByClientId(nextId())).to.equal(undefined);
      expect(await h.venue.cancel(nextId())).to.equal(undefined);
      expect(h.fake.requests.length).to.equal(before);
    });

    it('answers a look-up refused with 429 or 400 as TransientError, never VenueRejectedError, both in findByClientId and in submit', async () => {
      h = await harness({ client: { timeoutMs: 200 } });
      h.fake.holdNextOrder({ after: 'not-placed' });
      const req = buy('50000');
      await rejectionOf(h.venue.submit(req));
      h.clock.t += GRACE_MS + 1;
      h.fake.failNext('/status', 429, { error: 'Rate limit exceeded: 20 per 1 minute' });
      const limited = await rejectionOf(h.venue.findByClientId(req.clientOrderId));
      expect(limited).to.be.instanceOf(TransientError);
      h.fake.failNext('/trades', 400, { detail: 'Bad Request' });
      const bad = await rejectionOf(h.venue.submit(req));
      expect(bad).to.be.instanceOf(TransientError);
      expect(bad.code).to.equal('lookup_failed');
      expect(forceEnters(h.fake)).to.have.length(1);
    });

    it('looks a recorded entry up by its trade id only, and a failure there is transient', async () => {
      h = await harness();
      const req = buy('50000', { orderType: 'limit', limitPrice: '90000000' } as Partial<OrderRequest>);
      expect((await h.venue.submit(req)).status).to.equal('open');
      const trades = () => h.fake.requests.filter((r) => r.path === '/trades' || r.path === '/status').length;
      const before = trades();
      expect((await h.venue.findByClientId(req.clientOrderId))?.status).to.equal('open');
      h.fake.failNext('/trade/1', 400, { detail: 'Bad Request' });
      expect(await rejectionOf(h.venue.findByClientId(req.clientOrderId))).to.be.instanceOf(TransientError);
      expect(trades()).to.equal(before);
    });

    it('reads a 404 of a recorded trade as unknown, not cancelled, unless we cancelled it ourselves', async () => {
      h = await harness();
      const req = buy('50000', { orderType: 'limit', limitPrice: '90000000' } as Partial<OrderRequest>);
      await h.venue.submit(req);
      h.fake.failNext('/trade/1', 404, { detail: 'Trade not found.' });
      const missing = await rejectionOf(h.venue.findByClientId(req.clientOrderId));
      expect(missing).to.be.instanceOf(TransientError);
      expect(missing.code).to.equal('order_outcome_unknown');
      expect(h.decisions.map((d) => d['decision'])).to.deep.equal(['entry_trade_missing']);
      expect((await h.venue.findByClientId(req.clientOrderId))?.status).to.equal('open');
      // Freqtrade deletes a trade whose only entry was cancelled unfilled.
      expect(await h.venue.cancel(req.clientOrderId)).to.include({ status: 'cancelled', filledQuantity: '0' });
    });
  });

  describe('resends', () => {
    it('gives a lost entry 90 s by default before it counts as not placed', async () => {
      h = await harness({ client: { timeoutMs: 200 } });
      const venue = await h.reopen({ venue: { unknownOutcomeGraceMs: undefined } });
      h.fake.holdNextOrder({ after: 'not-placed' });
      const req = buy('50000');
      await rejectionOf(venue.submit(req));
      h.clock.t += 60_000;
      expect((await rejectionOf(venue.findByClientId(req.clientOrderId))).code).to.equal('order_outcome_unknown');
      h.clock.t += 30_001;
      expect(await venue.findByClientId(req.clientOrderId)).to.equal(undefined);
    });

    it('reports a resend after the grace, and refuses a third send of one id naming what to check', async () => {
      h = await harness({ client: { timeoutMs: 200 } });
      const req = buy('50000');
      for (let i = 0; i < 2; i++) {
        h.fake.holdNextOrder({ after: 'not-placed' });
        await rejectionOf(h.venue.submit(req));
        h.clock.t += GRACE_MS + 1;
      }
      const limit = await rejectionOf(h.venue.submit(req));
      expect(limit).to.be.instanceOf(VenueRejectedError);
      expect(limit.code).to.equal('resend_limit');
      expect(limit.message).to.include('/status').and.to.include(req.clientOrderId);
      expect(forceEnters(h.fake)).to.have.length(2);
      expect(h.decisions.map((d) => d['decision'])).to.deep.equal(['entry_absent_after_grace', 'entry_resent_after_grace', 'entry_absent_after_grace']);
      expect(h.decisions[1]).to.include({ sends: 2 });
    });
  });

  describe('credentials', () => {
    it('logs in once and uses the refresh token when the access token nears expiry, not a new login', async () => {
      h = await harness({ fake: { accessTtlSeconds: 60 } });
      await h.venue.balances();
      expect(h.fake.loginCount).to.equal(1);
      h.clock.t += 45_000;
      await h.venue.balances();
      expect(h.fake.refreshCount).to.equal(1);
      h.clock.t += 120_000;
      await h.venue.balances();
      expect(h.fake.refreshCount).to.equal(2);
      expect(h.fake.loginCount).to.equal(1);
      expect(h.fake.requests.filter((r) => r.path === '/balance').every((r) => r.auth === 'bearer' && r.status === 200)).to.equal(true);
    });

    it('renews a refused token with one login when the refresh token is refused too (the bot restarted with another secret), and repeats the call once', async () => {
      h = await harness();
      await h.venue.balances();
      h.fake.rotateJwtSecret();
      const balances = await h.venue.balances();
      expect(balances.cash).to.equal('10000000');
      expect(h.fake.refreshCount).to.equal(1);
      expect(h.fake.loginCount).to.equal(2);
      expect(h.fake.requestsTo('/balance').map((r) => r.status)).to.deep.equal([200, 401, 200]);
    });

    it('refuses wrong credentials with a typed VenueAuthError, once, and sends no more logins during the back-off', async () => {
      const fake = await FakeFreqtrade.start();
      try {
        const client = new FreqtradeClient({ apiUrl: fake.url, username: fake.username, password: 'not-the-password' });
        const errors: AppError[] = [];
        for (let i = 0; i < 5; i++) errors.push(await rejectionOf(client.showConfig()));
        expect(errors.every((e) => e instanceof VenueAuthError && e.code === 'invalid_credentials')).to.equal(true);
        expect(errors[0]!.message).to.include('Incorrect username or password').and.not.to.include('not-the-password');
        expect(fake.loginCount).to.equal(1);
        expect(fake.requests.filter((r) => r.path !== '/token/login')).to.have.length(0);
      } finally {
        await fake.stop();
      }
    });

    it('falls back to HTTP basic auth when the bot has no login route', async () => {
      const fake = await FakeFreqtrade.start();
      try {
        fake.disableLogin();
        const client = new FreqtradeClient({ apiUrl: fake.url, username: fake.username, password: fake.password });
        expect((await client.showConfig()).stake_currency).to.equal('KRW');
        await client.whitelist();
        expect(fake.requestsTo('/token/login')).to.have.length(1);
        expect(fake.requestsTo('/whitelist')[0]!.auth).to.equal('basic');
      } finally {
        await fake.stop();
      }
    });
  });

  describe('errors', () => {
    it('maps the bot\'s 502 {error} refusals and its {detail} answers into typed errors with Freqtrade\'s words', async () => {
      h = await harness();
      h.fake.failNext('/forceenter', 502, { error: 'Error querying /api/v1/forceenter: Maximum number of trades is reached.' });
      const full = await rejectionOf(h.venue.submit(buy('50000')));
      expect(full).to.be.instanceOf(VenueRejectedError);
      expect(full.code).to.equal('max_open_trades');
      expect(full.message).to.include('Maximum number of trades is reached.');
      h.fake.failNext('/forceenter', 422, { detail: [{ type: 'float_parsing', loc: ['body', 'stakeamount'], msg: 'Input should be a valid number', input: 'x' }] });
      const invalid = await rejectionOf(h.venue.submit(buy('50000')));
      expect(invalid.code).to.equal('invalid_request');
      expect(invalid.message).to.include('stakeamount: Input should be a valid number');
      h.fake.failNext('/balance', 500, 'Internal Server Error');
      expect(await rejectionOf(h.venue.balances())).to.be.instanceOf(TransientError);
      // Refused sends placed nothing: the next submit of the same id may go.
      expect(forceEnters(h.fake)).to.have.length(2);
    });

    it('translates each shape (pure)', () => {
      expect(freqtradeErrorOf(401, { detail: 'Unauthorized' }, 'GET /status')).to.be.instanceOf(VenueAuthError);
      expect(freqtradeErrorOf(404, { detail: 'Trade not found.' }, 'GET /trade/9')).to.include({ code: 'not_found' });
      expect(freqtradeErrorOf(502, { error: 'Error querying /api/v1/forceenter: Force_entry not enabled.' }, 'POST /forceenter')).to.include({ code: 'force_entry_disabled' });
      expect(freqtradeErrorOf(502, { error: 'Error querying /api/v1/balance: Error getting current tickers.' }, 'GET /balance')).to.be.instanceOf(TransientError);
      expect(freqtradeErrorOf(502, '<html>Bad Gateway</html>', 'GET /status')).to.be.instanceOf(TransientError);
    });

    it('keeps numbers exact both ways', () => {
      expect(parseExactJson('{"a":0.1,"b":[1e-7,"2.5"],"c":"x\\"1","d":true}')).to.deep.equal({ a: '0.1', b: ['1e-7', '2.5'], c: 'x"1', d: true });
      expect(exactJsonBody({ pair: 'BTC/KRW' }, { amount: '0.123456789012345678', price: undefined })).to.equal('{"pair":"BTC/KRW","amount":0.123456789012345678}');
    });
  });

  it('through the router: an order whose answer was lost is followed, not resent', async () => {
    h = await harness({ client: { timeoutMs: 200 } });
    h.fake.holdNextOrder({ after: 'placed' });
    const router = new ExecutionRouter(h.venue, { pollIntervalMs: 1, fillTimeoutMs: 2000, fetchAttempts: 2, sleep: async () => undefined });
    const out = await router.execute(buy('50000'));
    expect((out.order as OrderReport).status).to.equal('filled');
    expect(forceEnters(h.fake)).to.have.length(1);
  });
});
