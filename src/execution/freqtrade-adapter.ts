/**
 * The Freqtrade venue: a running Freqtrade bot (spot, long only) as an execution venue, over
 * `FreqtradeClient` (the only code that speaks Freqtrade's REST API). Orders become Freqtrade's
 * force entries and force exits; the bot places them at its exchange.
 *
 * Freqtrade skips its own protections (pairlocks, max drawdown, cooldowns) on a force entry, and
 * it is not asked for approval: our risk policy and approvals run before this adapter, and this
 * adapter only applies the venue's rules (listed pairs, minimum, funds, the bot's settings).
 *
 * Exactly once, without a client order id at the venue. Freqtrade has none: our `clientOrderId`
 * travels as the `entry_tag` of `POST /forceenter`, which Freqtrade keeps as the trade's
 * `enter_tag` and the entry order's `ft_order_tag`. Every entry is written durably
 * (`DATA_DIR/freqtrade-orders/`, a write-ahead-logged store) before the request leaves. An id
 * with no record here was never sent from this DATA_DIR: `findByClientId` answers undefined
 * without asking the bot, and `submit` looks for its tag once before the first send (open trades
 * from `/status`, the most recent closed ones from `/trades`: a DATA_DIR restored from a backup).
 * A recorded entry is looked up by its trade id (`/trade/{id}`), or by its tag while its send's
 * answer is lost. An entry whose answer was lost (timeout, dropped connection, 5xx, crash) is
 * never sent again while it may still appear: Freqtrade's handler may still be fetching a rate
 * and placing the order long after our timeout, and its open-trade check is outside its lock.
 * Until a look-up made `unknownOutcomeGraceMs` (default 90 s) after the send still finds no trade,
 * `submit` and `findByClientId` answer `TransientError order_outcome_unknown`; a resend is
 * reported (`entry_resent_after_grace`), and an id is sent at most `maxSendsPerOrder` times
 * (default 2; a further one is `VenueRejectedError resend_limit`). Entries are sent one at a time.
 *
 * A look-up never reads as a refusal: whatever fails while an order is looked up (a 429 rate
 * limit, a 400, a 404 of a recorded trade, refused credentials, unreadable data) is a
 * `TransientError` (`lookup_failed`, or `order_outcome_unknown`), because callers take a
 * `VenueRejectedError` to mean that nothing was placed.
 *
 * Exits (`side: 'sell'`) are `POST /forceexit` of the open trade(s) of the pair: a sell exits
 * `quantity` (the exact decimal text, oldest trade first), a liquidation the whole of every open
 * trade of the pair, and so does a sell of at least what the open trades hold (the wallet may
 * hold dust beyond them from Freqtrade's rounding: `exit_dust_left` reports it). A limit exit
 * carries its limit price. Before sending, the trade ids, amounts and the exit orders each trade
 * already had are written durably under the client order id; the exit is then reconciled by the
 * exit order that is its own and never resent while its outcome is unknown. Freqtrade cancels a
 * trade's open exit order when another force exit of it comes (a liquidation while a limit exit
 * rests), so exits of a pair are sent one at a time (and not while an entry of the pair is sent),
 * each exit claims its own order right after its send (the newest new force-exit order of the
 * trade; after a lost answer, the oldest one nobody claimed), and no order is claimed twice.
 * Once a leg of a multi-trade exit was sent, a later leg's failure is recorded and reported
 * (`exit_leg_failed`), never thrown as a refusal of the whole exit.
 *
 * Rules checked before anything is sent, each refusal a `VenueRejectedError` naming its rule:
 * the pair is in the bot's whitelist and quoted in its stake currency; `force_entry_enable` is
 * on and the bot's state is `running`; one trade per pair unless `position_adjustment_enable`;
 * the minimum (`minOrderNotional`, default 5000: Upbit's KRW minimum, as the default quote
 * currency is KRW — set it to the bot's exchange's minimum stake); the stake plus a fee reserve
 * (`feeReserveRate`, default 0.001) against the free stake currency; a sell against the open
 * trades' amounts, and a partial exit must leave at least the minimum in the trade.
 *
 * No per-order dry run: `submit(order, { dryRun: true })` throws `VenueRejectedError disarmed`
 * (as the router does for every venue without `capabilities.dryRun`). A bot running in its own
 * `dry_run` only simulates its fills: every report then carries `simulatedByVenue: true`.
 *
 * Reports: the entry's orders (`ft_order_tag` = our id; an untagged order only when it is the
 * trade's first buy of a trade whose `enter_tag` is ours, never the strategy's top-up buys with
 * `position_adjustment_enable`) give the filled quantity (`filled`), the average price
 * (Σ cost / Σ filled) and the fee (cost × the trade's `fee_open`, in the stake currency). When an
 * entry order's fee was taken in the base coin (`ft_fee_base`), the filled quantity is what is
 * left after it, and the fee is its value at the fill price (no stake-currency fee on top), so
 * quantity × price + fee is still what the stake currency paid. An exit's own exit orders likewise
 * with `fee_close`. Every amount is the exact decimal text Freqtrade wrote. Freqtrade may spend
 * more than the stake asked (a stake below the exchange minimum is raised by up to 30 %; a
 * strategy's `custom_stake_amount` may change it): an entry whose filled cost exceeds its notional
 * by more than 1 % is reported (`entry_overspent`) and logged as an error.
 */
import path from 'node:path';
import type { Amount, OrderReport, OrderRequest, OrderStatus } from '../proposal/types';
import { Dec, amount, toDec } from '../amounts';
import { ConfigError, InvariantError, TransientError, VenueAuthError, VenueRejectedError, describeError } from '../errors';
import { LogStore, type Change } from '../persistence/log-store';
import type { StorageIo } from '../persistence/storage-io';
import type { Logger } from '../logging';
import type { FreqtradeClient, FreqtradeConfig, FreqtradeOrder, FreqtradeTrade } from '../integrations/freqtrade';
import { isTerminal, type Balances, type ExecutionVenue, type LimitOrderFields, type VenueCapabilities } from './base';
import { DEFAULT_RETAIN_MS, expiredRecords } from './order-records';
import { positiveOrderAmount, venueNumber } from './venue-data';
import { KeyedSerial, Serial } from './serial';

export interface FreqtradeVenueOptions {
  /** The smallest order, stake currency; default 5000 (Upbit's KRW minimum). */
  minOrderNotional?: number;
  /** Share of a stake kept free for the exchange's fee when funds are checked; default `0.001`. */
  feeReserveRate?: Amount;
  /** Whether limit orders are offered (`capabilities.orderTypes`); default true. */
  limitOrders?: boolean;
  /** How long after a send whose answer was lost the bot is given to show it, ms; default 90 000. */
  unknownOutcomeGraceMs?: number;
  /** How many times one client order id may be sent (a resend after a lost answer included); default 2. */
  maxSendsPerOrder?: number;
  /** Reloads the bot's config and whitelist this often, ms; default never (only `refresh`). */
  refreshIntervalMs?: number;
  /** How many of the most recent closed trades are searched for an entry tag; default 500. */
  closedTradesSearched?: number;
  /** How long a finished order is remembered, ms; default 3 days. */
  retainMs?: number;
  checkpointMinBytes?: number;
  /** Reports reconciliation decisions (the caller journals them); a failure here is logged only. */
  onDecision?: (record: Record<string, unknown>) => Promise<void>;
  logger?: Logger;
  now?: () => number;
}

/** What the start-up check found about the bot. */
export interface FreqtradeCheck {
  stakeCurrency: string;
  dryRun: boolean;
  state: string;
  forceEntryEnable: boolean;
  botName?: string;
  version?: string;
  /** Settings that will refuse orders until changed (`force_entry_enable`, the bot state), in words. */
  problems: string[];
}

type Outcome = 'sending' | 'unknown' | 'refused' | 'absent' | 'accepted' | 'found' | 'not_sent';

interface ExitLeg {
  tradeId: string;
  /** Exact base amount asked; absent: the whole trade. */
  amount?: Amount;
  /** Exit orders the trade had before this exit was sent. */
  before: string[];
  /** The exit order(s) that are this exit's own, once seen. */
  own?: string[];
  outcome: Outcome;
}

interface OrderRecord {
  kind: 'entry' | 'exit';
  clientOrderId: string;
  symbol: string;
  createdAt: number;
  sentAt: number;
  endedAt?: number;
  outcome: Outcome;
  tradeId?: string;
  legs?: ExitLeg[];
  simulated: boolean;
  last?: OrderReport;
  finalAt?: number;
  /** How many times this id was sent (absent in records written before it was counted: 1). */
  sends?: number;
  /** We asked the bot to cancel the entry's open order (Freqtrade then deletes an unfilled trade). */
  cancelAsked?: boolean;
  /** `entry_trade_missing` was reported. */
  missingReported?: boolean;
  /** An entry's stake asked (exact decimal text), for `entry_overspent`. */
  notional?: Amount;
  /** `entry_overspent` was reported. */
  overspentReported?: boolean;
}

const recordKey = (id: string) => `order:${id}`;
const mayBeThere = (o: Outcome) => o === 'sending' || o === 'unknown' || o === 'accepted' || o === 'found';

export class FreqtradeVenue implements ExecutionVenue {
  readonly name = 'freqtrade';
  readonly minOrderNotional: number;
  readonly capabilities: VenueCapabilities;
  /** Newer Freqtrade versions rate-limit their API: an open order is looked up once a second at most. */
  readonly pollIntervalMs = 1000;
  private readonly now: () => number;
  private readonly graceMs: number;
  private readonly maxSends: number;
  private readonly feeReserve: Dec;
  private readonly perOrder = new KeyedSerial();
  /** Force entries go one at a time. */
  private readonly entries = new Serial();
  /** Sends and exit look-ups of one pair go one at a time. */
  private readonly perPair = new KeyedSerial();
  private whitelist: ReadonlySet<string>;
  private readonly refreshTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly store: LogStore<OrderRecord>,
    private readonly client: FreqtradeClient,
    private config: FreqtradeConfig,
    whitelist: string[],
    private readonly options: FreqtradeVenueOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.graceMs = options.unknownOutcomeGraceMs ?? 90_000;
    this.maxSends = options.maxSendsPerOrder ?? 2;
    this.feeReserve = toDec('feeReserveRate', options.feeReserveRate ?? '0.001');
    this.minOrderNotional = options.minOrderNotional ?? 5000;
    this.capabilities = { orderTypes: options.limitOrders === false ? ['market'] : ['market', 'limit'], dryRun: false, clientOrderIds: false };
    this.whitelist = new Set(whitelist);
    // The bot's pairlist and settings change while we run (a dynamic pairlist, /stop, a reload).
    if (options.refreshIntervalMs) {
      this.refreshTimer = setInterval(() => {
        this.refresh().catch((err: unknown) => options.logger?.warn('could not reload the Freqtrade bot\'s config and whitelist; the last ones stand', { component: 'freqtrade', error: describeError(err).message }));
      }, options.refreshIntervalMs);
      this.refreshTimer.unref();
    }
  }

  /**
   * Opens the record store under `DATA_DIR/freqtrade-orders/` and reads the bot's config and
   * whitelist once (`refresh` reloads them). Fails when the bot cannot be asked.
   */
  static async open(io: StorageIo, dataDir: string, client: FreqtradeClient, options: FreqtradeVenueOptions = {}): Promise<FreqtradeVenue> {
    const { store } = await LogStore.open<OrderRecord>(io, path.join(dataDir, 'freqtrade-orders'), {
      name: 'freqtrade-orders',
      ...(options.checkpointMinBytes !== undefined ? { checkpointMinBytes: options.checkpointMinBytes } : {}),
    });
    try {
      const config = await client.showConfig();
      return new FreqtradeVenue(store, client, config, await client.whitelist(), options);
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  /**
   * The start-up check: the API answers `ping`, our credentials are taken, and the bot's stake
   * currency is `quoteCurrency` (else `ConfigError` naming both). Settings that would refuse
   * every order (`force_entry_enable` off, the bot not running) are listed in `problems`.
   */
  async check(quoteCurrency: string): Promise<FreqtradeCheck> {
    if (!(await this.client.ping())) throw new TransientError('freqtrade_unavailable', 'Freqtrade answered /ping without "pong"', { venue: this.name });
    await this.refresh();
    const c = this.config;
    if (c.stake_currency !== quoteCurrency) {
      throw new ConfigError(`the Freqtrade bot's stake_currency is ${c.stake_currency} but QUOTE_CURRENCY is ${quoteCurrency}: make them the same`, [
        { variable: 'QUOTE_CURRENCY', message: `the Freqtrade bot trades in ${c.stake_currency}, not ${quoteCurrency}` },
      ]);
    }
    const problems: string[] = [];
    if (!c.force_entry_enable) problems.push('force_entry_enable is false in the bot\'s config: entries are refused until it is true');
    if (c.state !== 'running') problems.push(`the bot's state is "${c.state}", not running: entries and exits are refused until it is started`);
    return {
      stakeCurrency: c.stake_currency, dryRun: c.dry_run === true, state: c.state, forceEntryEnable: c.force_entry_enable === true, problems,
      ...(c.bot_name ? { botName: c.bot_name } : {}), ...(c.version ? { version: c.version } : {}),
    };
  }

  /** Reloads the bot's config and whitelist. */
  async refresh(): Promise<void> {
    this.config = await this.client.showConfig();
    this.whitelist = new Set(await this.client.whitelist());
  }

  /** Whether the bot trades `symbol`: in its whitelist and quoted in its stake currency. */
  trades(symbol: string): boolean {
    return this.whitelist.has(symbol) && symbol.split('/')[1] === this.config.stake_currency;
  }

  /** Places the order once per client order id (see the module comment). No dry run. */
  submit(request: OrderRequest, options: { dryRun?: boolean } = {}): Promise<OrderReport> {
    if (options.dryRun === true) {
      return Promise.reject(new VenueRejectedError('disarmed', `live trading is disarmed and Freqtrade has no dry run of an order (force entries and exits are placed at once); nothing was sent for ${request.clientOrderId}`, { venue: this.name, clientOrderId: request.clientOrderId }));
    }
    const { symbol } = request;
    return this.perOrder.run(request.clientOrderId, () => (request.side === 'buy'
      ? this.entries.run(() => this.perPair.run(symbol, () => this.enter(request)))
      : this.perPair.run(symbol, () => this.exit(request))));
  }

  /**
   * The order with this client id, or undefined when it was never sent from here (no request is
   * made for an id without a record). Throws `TransientError order_outcome_unknown` while a send
   * whose answer was lost may still appear, and `lookup_failed` when the look-up itself failed.
   */
  findByClientId(clientOrderId: string): Promise<OrderReport | undefined> {
    return this.perOrder.run(clientOrderId, () => this.lookUp(clientOrderId));
  }

  /** Cancels the open order(s) of this client id (`DELETE /trades/{id}/open-order`); its report after. */
  cancel(clientOrderId: string): Promise<OrderReport | undefined> {
    return this.perOrder.run(clientOrderId, async () => {
      const report = await this.lookUp(clientOrderId);
      if (!report || isTerminal(report)) return report;
      const record = this.record(clientOrderId);
      const ids = record?.kind === 'exit' ? (record.legs ?? []).map((l) => l.tradeId) : [record?.tradeId ?? report.venueOrderId.replace(/^trade\//, '')];
      if (record?.kind === 'entry') await this.update(clientOrderId, { cancelAsked: true });
      for (const id of ids) {
        try {
          await this.client.cancelOpenOrder(id);
        } catch (err) {
          // Finished or gone meanwhile: the look-up below says how it ended.
          if (!(err instanceof VenueRejectedError)) throw err;
        }
      }
      return this.lookUp(clientOrderId);
    });
  }

  /**
   * Cash and holdings from `GET /balance`: cash is the stake currency's balance (free + used: the
   * account owns both), each other currency held is a position `BASE/STAKE`.
   */
  async balances(): Promise<Balances> {
    const body = await this.client.balance();
    const stake = body.stake || this.config.stake_currency;
    let cash = new Dec(0);
    const positions: Balances['positions'] = [];
    for (const row of body.currencies) {
      if (row.is_position) continue;
      const held = venueNumber('Freqtrade', `${row.currency} balance`, row.balance);
      if (row.currency === stake) cash = held;
      else if (held.gt(0)) positions.push({ symbol: `${row.currency}/${stake}`, quantity: amount(held) });
    }
    return { quoteCurrency: stake, cash: amount(cash), positions };
  }

  /** Records of orders finished longer ago than `retainMs`, dropped with the next write. */
  private expired(except: string, now: number): Array<Change<OrderRecord>> {
    return expiredRecords(this.store.entries(), except, now, this.options.retainMs ?? DEFAULT_RETAIN_MS);
  }

  async close(): Promise<void> {
    clearInterval(this.refreshTimer);
    await this.perOrder.idle();
    await this.store.close();
  }

  // ---- entries -----------------------------------------------------------------------------

  private async enter(request: OrderRequest): Promise<OrderReport> {
    const id = request.clientOrderId;
    const existing = this.record(id) ? await this.lookUp(id) : await this.foundByTag(id);
    if (existing) return existing;
    const prior = this.record(id);
    this.checkResend(prior, 'entry');
    const { symbol } = request;
    this.checkTraded(symbol);
    const limit = request as OrderRequest & LimitOrderFields;
    const isLimit = limit.orderType === 'limit';
    if (isLimit && !this.capabilities.orderTypes.includes('limit')) throw new VenueRejectedError('order_type', 'this Freqtrade venue takes market orders only; nothing was sent', { venue: this.name });
    const stake = positiveOrderAmount('notional', request.notional);
    const price = isLimit ? amount(positiveOrderAmount('limitPrice', limit.limitPrice ?? request.price)) : undefined;
    if (stake.lt(this.minOrderNotional)) {
      throw new VenueRejectedError('below_minimum', `the minimum order at this Freqtrade venue is ${this.minOrderNotional} ${this.config.stake_currency}, and this entry stakes ${amount(stake)}; nothing was sent`, { venue: this.name, symbol, value: amount(stake), minimum: this.minOrderNotional });
    }
    this.config = await this.client.showConfig();
    this.checkBot('entry', true);
    const open = (await this.client.openTrades()).filter((t) => t.pair === symbol);
    if (open.length > 0 && this.config.position_adjustment_enable !== true) {
      throw new VenueRejectedError('position_open', `Freqtrade already has open trade ${open.map((t) => t.trade_id).join(', ')} for ${symbol}, and the bot's position_adjustment_enable is off (one trade per pair); nothing was sent`, { venue: this.name, symbol });
    }
    await this.checkCash(symbol, stake);
    const record = await this.begin({ kind: 'entry', clientOrderId: id, symbol, outcome: 'sending', simulated: this.config.dry_run === true, notional: amount(stake) });
    if (prior?.outcome === 'absent') {
      await this.decide({ decision: 'entry_resent_after_grace', clientOrderId: id, sends: record.sends, firstSentAt: new Date(prior.sentAt).toISOString(), detail: `no trade carried the entry_tag ${this.graceMs} ms after the lost answer; the entry is sent again (send ${record.sends} of at most ${this.maxSends})` });
    }
    let trade: FreqtradeTrade;
    try {
      trade = await this.client.forceEnter({ pair: symbol, side: 'long', stakeamount: amount(stake), ordertype: isLimit ? 'limit' : 'market', ...(price ? { price } : {}), entry_tag: id });
    } catch (err) {
      await this.sendFailed(record, err);
      throw err;
    }
    const report = this.entryReport(trade, id, record.simulated);
    await this.update(id, { outcome: 'accepted', tradeId: String(trade.trade_id), last: report }).catch((err: unknown) => {
      // Placed: the answer stands; the look-up by entry_tag finds the trade again.
      this.options.logger?.error('Freqtrade entry placed, but the answer could not be recorded', { component: 'freqtrade', clientOrderId: id, error: describeError(err).message });
    });
    await this.checkOverspent(id, trade).catch((err: unknown) => this.options.logger?.error('Freqtrade entry: the overspend check failed', { component: 'freqtrade', clientOrderId: id, error: describeError(err).message }));
    return report;
  }

  private async checkCash(symbol: string, stake: Dec): Promise<void> {
    const body = await this.client.balance();
    const stakeCurrency = this.config.stake_currency;
    const row = body.currencies.find((r) => r.currency === stakeCurrency && !r.is_position);
    const free = venueNumber('Freqtrade', `${stakeCurrency} free`, row?.free ?? '0');
    const needed = stake.times(this.feeReserve.plus(1));
    if (free.gte(needed)) return;
    throw new VenueRejectedError('insufficient_cash', `entering ${symbol} with ${amount(stake)} ${stakeCurrency} needs ${amount(needed)} ${stakeCurrency} free at the Freqtrade bot (the stake plus a ${amount(this.feeReserve.times(100))} % fee reserve), but only ${amount(free)} is free; nothing was sent`, { venue: this.name, symbol, needed: amount(needed), free: amount(free) });
  }

  /** The entry of `tag` in a trade, as an order report. */
  private entryReport(trade: FreqtradeTrade, tag: string, simulated: boolean): OrderReport {
    const mine = entryOrders(trade, tag);
    const sum = sumEntry(mine, trade.fee_open);
    const first = mine[0];
    const submittedAt = timeOf(first?.order_timestamp ?? trade.open_timestamp, trade.open_date);
    return {
      clientOrderId: tag, venueOrderId: `trade/${trade.trade_id}`, venue: this.name, symbol: trade.pair, side: 'buy',
      status: statusOf(mine, sum.filled), filledQuantity: amount(sum.filled), avgPrice: amount(sum.avg), fee: amount(sum.fee),
      submittedAt, updatedAt: lastFill(mine) ?? submittedAt, ...(simulated ? { simulatedByVenue: true } : {}),
    };
  }

  /**
   * Reports (once) an entry whose filled cost exceeds the notional asked by more than 1 %: Freqtrade
   * raises a stake below the exchange minimum by up to 30 %, and a strategy's custom_stake_amount
   * may change it.
   */
  private async checkOverspent(id: string, trade: FreqtradeTrade): Promise<void> {
    const record = this.record(id);
    if (!record?.notional || record.overspentReported) return;
    const { cost } = sumEntry(entryOrders(trade, id), trade.fee_open);
    const notional = toDec('notional', record.notional);
    if (!cost.gt(notional.times('1.01'))) return;
    await this.update(id, { overspentReported: true });
    const detail = `Freqtrade spent ${amount(cost)} ${this.config.stake_currency} on entry ${id} (${record.symbol}), more than the ${amount(notional)} approved: it raises a stake below the exchange minimum by up to 30 %, and the strategy's custom_stake_amount may change it`;
    this.options.logger?.error(detail, { component: 'freqtrade', clientOrderId: id, notional: amount(notional), cost: amount(cost) });
    await this.decide({ decision: 'entry_overspent', clientOrderId: id, symbol: record.symbol, tradeId: String(trade.trade_id), notional: amount(notional), cost: amount(cost), detail });
  }

  /**
   * An entry with no record here (a DATA_DIR restored from a backup, or a record forgotten after
   * `retainMs`) found by its tag before its first send: recorded, so it is never sent.
   */
  private async foundByTag(id: string): Promise<OrderReport | undefined> {
    const trade = await this.asLookup(id, () => this.findByTag(id));
    if (!trade) return undefined;
    const simulated = this.config.dry_run === true;
    const report = this.entryReport(trade, id, simulated);
    await this.begin({ kind: 'entry', clientOrderId: id, symbol: trade.pair, outcome: 'found', tradeId: String(trade.trade_id), simulated, last: report, sends: 0 });
    await this.decide({ decision: 'entry_found_without_record', clientOrderId: id, tradeId: String(trade.trade_id), detail: 'a trade carries this entry_tag though no send of it is recorded here; it is not sent' });
    return report;
  }

  /** Refuses a send beyond `maxSendsPerOrder` of one client order id. */
  private checkResend(prior: OrderRecord | undefined, what: 'entry' | 'exit'): void {
    const sends = prior ? prior.sends ?? 1 : 0;
    if (sends < this.maxSends) return;
    throw new VenueRejectedError('resend_limit', `${what} ${prior!.clientOrderId} (${prior!.symbol}) was sent to Freqtrade ${sends} times, each answer lost and the bot showing nothing after ${this.graceMs} ms; it is not sent again: check the bot's log and its /status and /trades for a trade of ${prior!.symbol}${what === 'entry' ? ` tagged ${prior!.clientOrderId}` : ''} before placing it again under a new proposal; nothing was sent`, { venue: this.name, clientOrderId: prior!.clientOrderId, symbol: prior!.symbol, sends });
  }

  /** The trade carrying entry tag `tag`: open trades first, then the most recent closed ones. */
  private async findByTag(tag: string): Promise<FreqtradeTrade | undefined> {
    const carries = (t: FreqtradeTrade) => t.enter_tag === tag || t.orders.some((o) => o.ft_order_side === 'buy' && o.ft_order_tag === tag);
    const open = (await this.client.openTrades()).find(carries);
    if (open) return open;
    const wanted = this.options.closedTradesSearched ?? 500;
    const head = await this.client.closedTrades(1, 0);
    const total = Number(head.total_trades);
    if (!Number.isSafeInteger(total) || total <= 0) return undefined;
    const page = await this.client.closedTrades(wanted, Math.max(0, total - wanted));
    return [...page.trades].reverse().find(carries);
  }

  // ---- exits -------------------------------------------------------------------------------

  private async exit(request: OrderRequest): Promise<OrderReport> {
    const id = request.clientOrderId;
    const existing = this.record(id) ? await this.asLookup(id, () => this.reconcile(id)) : undefined;
    if (existing) return existing;
    const prior = this.record(id);
    this.checkResend(prior, 'exit');
    const { symbol } = request;
    this.checkTraded(symbol);
    this.config = await this.client.showConfig();
    this.checkBot('exit', false);
    const open = (await this.client.openTrades()).filter((t) => t.pair === symbol && t.is_open).sort((a, b) => Number(a.trade_id) - Number(b.trade_id));
    if (open.length === 0) {
      throw new VenueRejectedError('no_open_trade', `Freqtrade has no open trade for ${symbol} to exit (a holding outside the bot's trades cannot be force-exited); nothing was sent`, { venue: this.name, symbol });
    }
    const legs: Array<{ trade: FreqtradeTrade; amount?: Amount }> = request.intent === 'liquidate' ? open.map((t) => ({ trade: t })) : this.allocate(request, open);
    const limit = request as OrderRequest & LimitOrderFields;
    const price = limit.orderType === 'limit' ? amount(positiveOrderAmount('limitPrice', limit.limitPrice ?? request.price)) : undefined;
    const record = await this.begin({
      kind: 'exit', clientOrderId: id, symbol, outcome: 'sending', simulated: this.config.dry_run === true,
      legs: legs.map((l) => ({ tradeId: String(l.trade.trade_id), ...(l.amount ? { amount: l.amount } : {}), before: exitOrderIds(l.trade), outcome: 'sending' as const })),
    });
    await this.reportResend(prior, record);
    if (request.intent !== 'liquidate' && legs.every((l) => l.amount === undefined)) await this.reportDust(request, open);
    const sent = await this.sendLegs(record, price);
    if (!sent.ok) throw sent.error;
    const report = await this.asLookup(id, () => this.reconcile(id));
    if (!report) throw new InvariantError('exit_lost', `Freqtrade accepted exit ${id} but it cannot be reported`, { venue: this.name, clientOrderId: id });
    return report;
  }

  /**
   * Sends each leg of an exit, claiming its own exit order right after. A failure before any leg
   * was sent is thrown; after one was, it is recorded and reported, and the other legs still go
   * (but none after a transient failure: the bot is unlikely to answer them either).
   */
  private async sendLegs(record: OrderRecord, price: Amount | undefined): Promise<{ ok: true } | { ok: false; error: unknown }> {
    const id = record.clientOrderId;
    const ordertype = price !== undefined ? 'limit' : 'market';
    let sentAny = false;
    for (const [i, leg] of (record.legs ?? []).entries()) {
      try {
        await this.client.forceExit({ tradeid: leg.tradeId, ordertype, ...(leg.amount ? { amount: leg.amount } : {}), ...(price ? { price } : {}) });
        await this.updateLeg(id, i, 'accepted');
        sentAny = true;
        await this.claimAfterSend(id, i);
      } catch (err) {
        const transient = !(err instanceof VenueRejectedError || err instanceof VenueAuthError);
        const stop = transient || !sentAny;
        await this.legFailed(id, i, transient, stop);
        if (stop) return sentAny ? { ok: true } : { ok: false, error: err };
        this.options.logger?.error('Freqtrade refused one leg of an exit after an earlier leg was placed', { component: 'freqtrade', clientOrderId: id, tradeId: leg.tradeId, error: describeError(err).message });
        await this.decide({ decision: 'exit_leg_failed', clientOrderId: id, tradeId: leg.tradeId, code: (err as { code?: unknown }).code, detail: `an earlier leg of this exit was placed, so the exit stands; this leg was refused: ${describeError(err).message}` });
      }
    }
    return { ok: true };
  }

  /** Right after an acknowledged send: the newest new force-exit order of the trade nobody claimed is this leg's. */
  private async claimAfterSend(id: string, i: number): Promise<void> {
    const leg = this.record(id)?.legs?.[i];
    if (!leg) return;
    try {
      const trade = await this.client.trade(leg.tradeId);
      const free = trade ? this.unclaimed(id, leg, trade) : [];
      const newest = free[free.length - 1];
      if (newest) await this.setOwn(id, i, newest.order_id);
    } catch (err) {
      // Claimed at the next look-up instead.
      this.options.logger?.warn('Freqtrade exit placed; its order could not be read yet', { component: 'freqtrade', clientOrderId: id, tradeId: leg.tradeId, error: describeError(err).message });
    }
  }

  /** New force-exit orders of a leg's trade (oldest first) that no other record claimed. */
  private unclaimed(id: string, leg: ExitLeg, trade: FreqtradeTrade): FreqtradeOrder[] {
    const claimed = new Set<string>();
    for (const [, r] of this.store.entries()) {
      if (r.clientOrderId === id) continue;
      for (const l of r.legs ?? []) for (const o of l.own ?? []) claimed.add(o);
    }
    return trade.orders.filter((o) => o.ft_order_side === 'sell' && !leg.before.includes(o.order_id) && !claimed.has(o.order_id) && (o.ft_order_tag ?? 'force_exit') === 'force_exit');
  }

  private async setOwn(id: string, i: number, orderId: string): Promise<void> {
    const record = this.record(id);
    if (!record?.legs) return;
    await this.update(id, { legs: record.legs.map((l, j) => (j === i ? { ...l, own: [orderId] } : l)) });
  }

  private async reportResend(prior: OrderRecord | undefined, record: OrderRecord): Promise<void> {
    if (!prior?.legs?.some((l) => l.outcome === 'absent')) return;
    await this.decide({ decision: 'exit_resent_after_grace', clientOrderId: record.clientOrderId, sends: record.sends, detail: `no exit order appeared ${this.graceMs} ms after the lost answer; the exit is sent again (send ${record.sends} of at most ${this.maxSends})` });
  }

  /** A sell of more than the open trades hold exits them whole; what the wallet holds beyond them stays (dust). */
  private async reportDust(request: OrderRequest, open: FreqtradeTrade[]): Promise<void> {
    const held = open.reduce((s, t) => s.plus(venueNumber('Freqtrade', 'trade amount', t.amount)), new Dec(0));
    const asked = positiveOrderAmount('quantity', request.quantity);
    if (!asked.gt(held)) return;
    await this.decide({ decision: 'exit_dust_left', clientOrderId: request.clientOrderId, symbol: request.symbol, requested: amount(asked), exited: amount(held), left: amount(asked.minus(held)), detail: 'the sell asked for more than the bot\'s open trades hold (dust from Freqtrade\'s rounding or the fee); the whole trades are exited and the rest stays in the wallet' });
  }

  /**
   * A sell of `quantity` over the open trades, oldest first; the minimum and the rest checked. At
   * or above what the trades hold, the trades are exited whole (no amount): Freqtrade's rounding
   * can leave the wallet holding dust beyond them, and refusing would leave the position open.
   */
  private allocate(request: OrderRequest, open: FreqtradeTrade[]): Array<{ trade: FreqtradeTrade; amount?: Amount }> {
    const asked = positiveOrderAmount('quantity', request.quantity);
    const held = open.reduce((s, t) => s.plus(venueNumber('Freqtrade', 'trade amount', t.amount)), new Dec(0));
    const { symbol } = request;
    const whole = asked.gte(held);
    const qty = whole ? held : asked;
    const reference = positiveOrderAmount('price', request.price);
    if (qty.times(reference).lt(this.minOrderNotional)) {
      throw new VenueRejectedError('below_minimum', `the minimum order at this Freqtrade venue is ${this.minOrderNotional} ${this.config.stake_currency}, and selling ${amount(qty)} ${symbol} at ${amount(reference)} is worth ${amount(qty.times(reference).toDecimalPlaces(2))}: a holding worth less is dust; nothing was sent`, { venue: this.name, symbol, minimum: this.minOrderNotional });
    }
    if (whole) return open.map((trade) => ({ trade }));
    const out: Array<{ trade: FreqtradeTrade; amount: Amount }> = [];
    let rest = qty;
    for (const trade of open) {
      if (!rest.gt(0)) break;
      const has = venueNumber('Freqtrade', 'trade amount', trade.amount);
      const take = Dec.min(rest, has);
      const left = has.minus(take);
      if (left.gt(0) && left.times(reference).lt(this.minOrderNotional)) {
        throw new VenueRejectedError('remaining_too_small', `selling ${amount(take)} of trade ${trade.trade_id} (${symbol}) would leave ${amount(left)}, worth less than the minimum of ${this.minOrderNotional} ${this.config.stake_currency}: sell all of it or less; nothing was sent`, { venue: this.name, symbol });
      }
      out.push({ trade, amount: amount(take) });
      rest = rest.minus(take);
    }
    return out;
  }

  /** The report of an exit from its trades' new exit orders; undefined while a leg is unknown. */
  private async exitReport(record: OrderRecord): Promise<{ report?: OrderReport; unknown: ExitLeg[] }> {
    const orders: FreqtradeOrder[] = [];
    const trades: string[] = [];
    let fee = new Dec(0);
    const unknown: ExitLeg[] = [];
    for (const [i, leg] of (record.legs ?? []).entries()) {
      if (!mayBeThere(leg.outcome)) continue;
      const trade = await this.client.trade(leg.tradeId);
      if (!trade) {
        throw new TransientError('order_outcome_unknown', `Freqtrade answers 404 for trade ${leg.tradeId} of exit ${record.clientOrderId}: its outcome is unknown (check that FREQTRADE_API_URL reaches the bot that placed it); nothing is sent again`, { venue: this.name, clientOrderId: record.clientOrderId, tradeId: leg.tradeId });
      }
      let mine: FreqtradeOrder[];
      if (leg.own) {
        mine = trade.orders.filter((o) => leg.own!.includes(o.order_id));
      } else {
        // Not claimed yet (the answer was lost): the oldest new force-exit order nobody claimed.
        const first = this.unclaimed(record.clientOrderId, leg, trade)[0];
        mine = first ? [first] : [];
        if (first) await this.setOwn(record.clientOrderId, i, first.order_id);
      }
      if (mine.length === 0 && (leg.outcome === 'sending' || leg.outcome === 'unknown')) {
        unknown.push(leg);
        continue;
      }
      if (leg.outcome === 'sending' || leg.outcome === 'unknown') {
        await this.updateLeg(record.clientOrderId, (record.legs ?? []).indexOf(leg), 'found');
        await this.decide({ decision: 'exit_found_after_lost_answer', clientOrderId: record.clientOrderId, tradeId: leg.tradeId, detail: 'the exit order was found on the trade; it is not sent again' });
      }
      trades.push(leg.tradeId);
      orders.push(...mine);
      fee = fee.plus(sumOrders(mine, trade.fee_close).fee);
    }
    if (trades.length === 0) return { unknown };
    const sum = sumOrders(orders, undefined);
    const submittedAt = new Date(record.sentAt).toISOString();
    return {
      unknown,
      report: {
        clientOrderId: record.clientOrderId, venueOrderId: `trade/${trades.join(',')}/exit`, venue: this.name, symbol: record.symbol, side: 'sell',
        status: unknown.length > 0 ? (sum.filled.gt(0) ? 'partially_filled' : 'open') : statusOf(orders, sum.filled),
        filledQuantity: amount(sum.filled), avgPrice: amount(sum.avg), fee: amount(fee), submittedAt, updatedAt: lastFill(orders) ?? submittedAt,
        ...(record.simulated ? { simulatedByVenue: true } : {}),
      },
    };
  }

  // ---- reconciliation ----------------------------------------------------------------------

  /** `reconcile` as a look-up: whatever fails is a `TransientError`, never a refusal. */
  private lookUp(id: string): Promise<OrderReport | undefined> {
    const record = this.record(id);
    // An exit claims its order at its look-up: never while another exit of the pair is sent.
    if (record?.kind === 'exit' && !(record.last && isTerminal(record.last))) return this.perPair.run(record.symbol, () => this.asLookup(id, () => this.reconcile(id)));
    return this.asLookup(id, () => this.reconcile(id));
  }

  /**
   * Runs a look-up of order `id`: a `TransientError` passes as it is; any other failure (a 400, a
   * 404, refused credentials, unreadable data) becomes `TransientError lookup_failed`, since a
   * refusal would tell the caller that nothing was placed.
   */
  private async asLookup<T>(id: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof TransientError) throw err;
      const code = (err as { code?: unknown }).code;
      this.options.logger?.error('Freqtrade: an order look-up failed; it counts as not known yet', { component: 'freqtrade', clientOrderId: id, error: describeError(err).message, ...(typeof code === 'string' ? { code } : {}) });
      throw new TransientError('lookup_failed', `looking up ${id} at Freqtrade failed (${describeError(err).message}): whether it was placed is not known yet; nothing is sent and it is looked up again`, {
        venue: this.name, clientOrderId: id, ...(typeof code === 'string' ? { cause: code } : {}),
      });
    }
  }

  /** What Freqtrade shows for this recorded client id; throws `order_outcome_unknown` while it may still appear. */
  private async reconcile(id: string): Promise<OrderReport | undefined> {
    const record = this.record(id);
    if (!record) return undefined;
    if (record.last && isTerminal(record.last)) return record.last;
    return record.kind === 'entry' ? this.reconcileEntry(record) : this.reconcileExit(record);
  }

  private async reconcileEntry(record: OrderRecord): Promise<OrderReport | undefined> {
    const id = record.clientOrderId;
    if (!mayBeThere(record.outcome)) return undefined;
    if (record.tradeId) {
      const trade = await this.client.trade(record.tradeId);
      const report = trade ? this.entryReport(trade, id, record.simulated) : await this.tradeMissing(record, record.tradeId);
      await this.note(id, report);
      if (trade) await this.checkOverspent(id, trade);
      return report;
    }
    const trade = await this.findByTag(id);
    if (trade) {
      const report = this.entryReport(trade, id, record.simulated);
      await this.update(id, { outcome: 'found', tradeId: String(trade.trade_id), last: report });
      await this.decide({ decision: 'entry_found_after_lost_answer', clientOrderId: id, tradeId: String(trade.trade_id), detail: 'the trade was found by its entry_tag; the entry is not sent again' });
      await this.checkOverspent(id, trade);
      return report;
    }
    this.stillUnknown(record, 'entry');
    await this.update(id, { outcome: 'absent' });
    await this.decide({ decision: 'entry_absent_after_grace', clientOrderId: id, detail: `no trade carries the entry_tag ${this.graceMs} ms after the lost answer: the entry counts as not placed and may be sent again` });
    return undefined;
  }

  private async reconcileExit(record: OrderRecord): Promise<OrderReport | undefined> {
    const id = record.clientOrderId;
    const { report, unknown } = await this.exitReport(record);
    if (unknown.length > 0) {
      this.stillUnknown(record, 'exit');
      for (const leg of unknown) {
        await this.updateLeg(id, (record.legs ?? []).findIndex((l) => l.tradeId === leg.tradeId), 'absent');
        await this.decide({ decision: 'exit_absent_after_grace', clientOrderId: id, tradeId: leg.tradeId, detail: 'no new exit order on the trade after the grace: that exit counts as not placed' });
      }
      return report ? this.reconcileExit(this.record(id)!) : undefined;
    }
    if (report) await this.note(id, report);
    return report;
  }

  /**
   * The recorded trade of an entry answers 404. Freqtrade deletes a trade whose only entry was
   * cancelled unfilled: after our own cancel with nothing filled, the entry is cancelled. Else it
   * is unknown (another bot or database behind the URL, a trade deleted by hand): never "cancelled",
   * which would let a filled entry vanish from the book.
   */
  private async tradeMissing(record: OrderRecord, tradeId: string): Promise<OrderReport> {
    const filled = record.last ? venueNumber('Freqtrade', 'last filled', record.last.filledQuantity) : new Dec(0);
    if (record.cancelAsked && !filled.gt(0)) {
      return { ...(record.last ?? this.emptyReport(record, `trade/${tradeId}`)), status: 'cancelled', updatedAt: new Date(this.now()).toISOString() };
    }
    if (!record.missingReported) {
      await this.update(record.clientOrderId, { missingReported: true });
      await this.decide({ decision: 'entry_trade_missing', clientOrderId: record.clientOrderId, tradeId, detail: `Freqtrade answers 404 for trade ${tradeId} of this entry; it counts as unknown (never cancelled) until the bot shows it: check that FREQTRADE_API_URL reaches the same bot and database` });
    }
    throw new TransientError('order_outcome_unknown', `Freqtrade answers 404 for trade ${tradeId} of entry ${record.clientOrderId}: its outcome is unknown (check that FREQTRADE_API_URL reaches the bot that placed it, and its /trade/${tradeId}); nothing is sent again`, { venue: this.name, clientOrderId: record.clientOrderId, tradeId });
  }

  /** Throws `order_outcome_unknown` while a lost send is within its grace. */
  private stillUnknown(record: OrderRecord, what: string): void {
    const since = record.endedAt ?? record.sentAt;
    if (this.now() - since < this.graceMs) {
      throw new TransientError('order_outcome_unknown', `the answer to Freqtrade ${what} ${record.clientOrderId} was lost and the bot does not show it yet; it is looked up again until ${new Date(since + this.graceMs).toISOString()}, and nothing is sent again before then`, {
        venue: this.name, clientOrderId: record.clientOrderId, until: since + this.graceMs,
      });
    }
  }

  private emptyReport(record: OrderRecord, venueOrderId: string): OrderReport {
    const at = new Date(record.sentAt).toISOString();
    return {
      clientOrderId: record.clientOrderId, venueOrderId, venue: this.name, symbol: record.symbol, side: record.kind === 'entry' ? 'buy' : 'sell',
      status: 'cancelled', filledQuantity: '0', avgPrice: '0', fee: '0', submittedAt: at, updatedAt: at, ...(record.simulated ? { simulatedByVenue: true } : {}),
    };
  }

  private async decide(record: Record<string, unknown>): Promise<void> {
    const full = { venue: this.name, at: new Date(this.now()).toISOString(), ...record };
    this.options.logger?.warn('Freqtrade reconciliation', { component: 'freqtrade', ...full });
    try {
      await this.options.onDecision?.(full);
    } catch (err) {
      this.options.logger?.error('Freqtrade reconciliation decision could not be reported', { component: 'freqtrade', error: describeError(err).message });
    }
  }

  // ---- checks ------------------------------------------------------------------------------

  private checkTraded(symbol: string): void {
    if (!this.trades(symbol)) {
      throw new VenueRejectedError('not_traded', `the Freqtrade bot does not trade ${symbol}: its whitelist is ${[...this.whitelist].join(', ') || 'empty'} and its stake currency ${this.config.stake_currency}; nothing was sent`, { venue: this.name, symbol });
    }
  }

  private checkBot(what: 'entry' | 'exit', needsForceEntry: boolean): void {
    if (needsForceEntry && this.config.force_entry_enable !== true) {
      throw new VenueRejectedError('force_entry_disabled', `the Freqtrade bot refuses force entries: force_entry_enable is false in its config (set it to true and reload the bot); nothing was sent`, { venue: this.name, setting: 'force_entry_enable' });
    }
    if (this.config.state !== 'running') {
      throw new VenueRejectedError('bot_not_running', `the Freqtrade bot's state is "${this.config.state}", not running, so it takes no force ${what} (start the bot); nothing was sent`, { venue: this.name, state: this.config.state });
    }
  }

  // ---- the store ---------------------------------------------------------------------------

  private record(id: string): OrderRecord | undefined {
    return this.store.get(recordKey(id));
  }

  /** Writes the record of a send durably (and forgets long-finished ones) before it leaves. */
  private async begin(fields: Omit<OrderRecord, 'createdAt' | 'sentAt'>): Promise<OrderRecord> {
    const now = this.now();
    const prior = this.record(fields.clientOrderId);
    const sends = fields.sends ?? (prior ? prior.sends ?? 1 : 0) + 1;
    const record: OrderRecord = { ...fields, createdAt: prior?.createdAt ?? now, sentAt: now, sends };
    const changes: Array<Change<OrderRecord>> = [{ key: recordKey(record.clientOrderId), value: record }, ...this.expired(record.clientOrderId, now)];
    await this.store.commit(changes);
    return record;
  }

  private async sendFailed(record: OrderRecord, err: unknown): Promise<void> {
    const refused = err instanceof VenueRejectedError || err instanceof VenueAuthError;
    if (!refused) this.options.logger?.warn('Freqtrade entry: the answer was lost; the trade is looked up by entry_tag before anything else is sent', { component: 'freqtrade', clientOrderId: record.clientOrderId, error: describeError(err).message });
    // If this write fails the record stays `sending`, which is looked up like an unknown one.
    await this.update(record.clientOrderId, refused ? { outcome: 'refused' } : { outcome: 'unknown', endedAt: this.now() }).catch(() => undefined);
  }

  /** Records a leg's failure (unknown when `transient`, else refused); with `stop`, the legs after it are not sent. */
  private async legFailed(id: string, i: number, transient: boolean, stop: boolean): Promise<void> {
    const refused = !transient;
    const record = this.record(id);
    if (!record?.legs) return;
    const legs = record.legs.map((l, j) => (j === i ? { ...l, outcome: refused ? 'refused' as const : 'unknown' as const } : j > i && stop ? { ...l, outcome: 'not_sent' as const } : l));
    await this.update(id, { legs, ...(refused ? {} : { endedAt: this.now() }) }).catch(() => undefined);
  }

  private async updateLeg(id: string, i: number, outcome: Outcome): Promise<void> {
    const record = this.record(id);
    if (!record?.legs || i < 0) return;
    await this.update(id, { legs: record.legs.map((l, j) => (j === i ? { ...l, outcome } : l)) });
  }

  /** Records the latest report when it changed. */
  private async note(id: string, report: OrderReport): Promise<void> {
    const record = this.record(id);
    if (record?.last && JSON.stringify(record.last) === JSON.stringify(report)) return;
    await this.update(id, { last: report });
  }

  private async update(id: string, patch: Partial<OrderRecord>): Promise<void> {
    const record = this.record(id);
    if (!record) return;
    const next: OrderRecord = { ...record, ...patch };
    const done = (next.last !== undefined && isTerminal(next.last)) || (next.kind === 'entry' ? !mayBeThere(next.outcome) : !(next.legs ?? []).some((l) => mayBeThere(l.outcome)));
    if (done) next.finalAt = record.finalAt ?? this.now();
    else delete next.finalAt;
    await this.store.commit([{ key: recordKey(id), value: next }]);
  }

}



function exitOrderIds(trade: FreqtradeTrade): string[] {
  return trade.orders.filter((o) => o.ft_order_side === 'sell').map((o) => o.order_id);
}

/** Σ filled, Σ cost / Σ filled, and cost × `feeRate`. */
function sumOrders(orders: FreqtradeOrder[], feeRate: unknown): { filled: Dec; avg: Dec; fee: Dec } {
  let filled = new Dec(0);
  let cost = new Dec(0);
  for (const o of orders) {
    const f = venueNumber('Freqtrade', 'order filled', o.filled ?? '0');
    if (!f.gt(0)) continue;
    const price = o.average !== null && o.average !== undefined && venueNumber('Freqtrade', 'order average', o.average).gt(0) ? venueNumber('Freqtrade', 'order average', o.average) : venueNumber('Freqtrade', 'order safe_price', o.safe_price);
    filled = filled.plus(f);
    cost = cost.plus(f.times(price));
  }
  const rate = feeRate === null || feeRate === undefined ? new Dec(0) : venueNumber('Freqtrade', 'fee rate', feeRate);
  return { filled, avg: filled.gt(0) ? cost.div(filled).toSignificantDigits(20) : new Dec(0), fee: cost.times(rate) };
}

/**
 * The entry orders of `tag` in a trade: tagged with it, or the trade's first buy when it carries
 * no tag and the trade's `enter_tag` is `tag` (never a later untagged buy: the strategy's top-ups).
 */
function entryOrders(trade: FreqtradeTrade, tag: string): FreqtradeOrder[] {
  const buys = trade.orders.filter((o) => o.ft_order_side === 'buy');
  return buys.filter((o, i) => o.ft_order_tag === tag || (i === 0 && (o.ft_order_tag === null || o.ft_order_tag === undefined) && trade.enter_tag === tag));
}

/**
 * An entry's orders summed: `filled` net of any fee taken in the base coin (`ft_fee_base`),
 * `avg` = Σ cost / Σ gross filled, `cost` what the stake currency paid (before its fee), and `fee`:
 * the base-coin fee at the fill price, else cost × `feeRate`.
 */
function sumEntry(orders: FreqtradeOrder[], feeRate: unknown): { filled: Dec; avg: Dec; fee: Dec; cost: Dec } {
  let gross = new Dec(0);
  let net = new Dec(0);
  let cost = new Dec(0);
  let fee = new Dec(0);
  const rate = feeRate === null || feeRate === undefined ? new Dec(0) : venueNumber('Freqtrade', 'fee rate', feeRate);
  for (const o of orders) {
    const one = sumOrders([o], undefined);
    if (!one.filled.gt(0)) continue;
    const base = o.ft_fee_base === null || o.ft_fee_base === undefined ? new Dec(0) : venueNumber('Freqtrade', 'order ft_fee_base', o.ft_fee_base);
    const paid = one.filled.times(one.avg);
    gross = gross.plus(one.filled);
    net = net.plus(one.filled.minus(base));
    cost = cost.plus(paid);
    fee = fee.plus(base.gt(0) ? base.times(one.avg) : paid.times(rate));
  }
  return { filled: net, avg: gross.gt(0) ? cost.div(gross).toSignificantDigits(20) : new Dec(0), fee, cost };
}

/** ccxt's order statuses, as one status for the orders of one client id. */
function statusOf(orders: FreqtradeOrder[], filled: Dec): OrderStatus {
  if (orders.length === 0) return 'cancelled';
  if (orders.some((o) => o.is_open || o.status === 'open')) return filled.gt(0) ? 'partially_filled' : 'open';
  if (orders.every((o) => o.status === 'closed')) return filled.gt(0) ? 'filled' : 'cancelled';
  // Cancelled (or expired) before all of it filled: cancelled, with what filled.
  return 'cancelled';
}

/** Epoch ms text (or Freqtrade's `%Y-%m-%d %H:%M:%S` UTC) as ISO 8601. */
function timeOf(ms: unknown, printed: unknown): string {
  const n = Number(ms);
  if (ms !== null && ms !== undefined && Number.isFinite(n)) return new Date(n).toISOString();
  const parsed = typeof printed === 'string' ? Date.parse(`${printed.replace(' ', 'T')}Z`) : Number.NaN;
  if (Number.isFinite(parsed)) return new Date(parsed).toISOString();
  throw new InvariantError('corrupt_venue_data', `Freqtrade sent no readable time (${JSON.stringify(ms)}, ${JSON.stringify(printed)})`, { venue: 'freqtrade' });
}

function lastFill(orders: FreqtradeOrder[]): string | undefined {
  const times = orders.map((o) => Number(o.order_filled_timestamp)).filter((t) => Number.isFinite(t) && t > 0);
  return times.length > 0 ? new Date(Math.max(...times)).toISOString() : undefined;
}

