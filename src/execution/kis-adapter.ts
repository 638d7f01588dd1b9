/**
 * The KIS venue: KRX stocks (`005930/KRW`) through Korea Investment & Securities, behind the same
 * interface as every venue, over `KisClient` (the only code that speaks KIS's wire format).
 *
 * Exactly once without client order ids. KIS numbers an order (ODNO) only in its answer, so every
 * attempt is written durably (`DATA_DIR/kis-orders/`, a write-ahead-logged store) before the
 * request leaves, and its ODNO is recorded against our client order id when the answer comes.
 * When the answer is lost (timeout, dropped connection, 5xx, an error code KIS's client does not
 * know as a refusal, a crash before it was recorded) the day's orders (`inquire-daily-ccld`) are
 * polled for a match — same stock, side and quantity, placed after the attempt was written (less
 * `clockSkewMs`), not claimed by another of our attempts — at least `visibilityPolls` times
 * spread over at least `visibilityWindowMs` before anything is sent again. One match is claimed
 * (recorded durably) as the order; none, after the window, means the request placed nothing and
 * the order may be sent again; two or more unclaimed candidates leave the outcome unknown for
 * good: nothing is resent, and `order_outcome_unknown` says so until an operator settles it.
 * Every such decision goes to `onDecision` (the caller journals it; `ambiguous` is reported once
 * and the caller alerts the operators on it). While the window is open, `findByClientId` answers
 * `TransientError order_outcome_unknown`, never "failed"; `submit` waits the window out itself
 * (its `sleep`). Only sends found absent count toward `maxAttempts`; past it the order is
 * refused (`VenueRejectedError resend_limit`: nothing of it is at KIS).
 *
 * One order, one client id. A poll never claims a match while another send of the same stock
 * and side is in flight in this process (written, no answer recorded yet): that order may be
 * the in-flight one's, whose answer will name it. The poll waits (`pending`) until that send has
 * ended; a match that is then still unclaimed cannot belong to an in-flight send. Lost answers
 * of the same stock, side and quantity are interchangeable (each claims one order or is found
 * absent and sent again: the count is right). As a last guard, an answer whose order number is
 * already claimed by another client id makes both ambiguous, never both filled. (Serialising
 * every send per stock and side while an outcome is unknown would also work, but would hold a
 * liquidation back for a whole window behind an unrelated lost answer.)
 *
 * Look-ups never read as refusals: any error while looking an order up (a KIS refusal of the
 * inquiry, refused keys, a bug) is `TransientError lookup_failed` naming the cause, so no caller
 * abandons an order that may be at KIS; corrupt data (`InvariantError`) and a DATA_DIR that
 * cannot be written (`StorageError`) keep their own kinds.
 *
 * KRX orders live for their day: an order still open when the session of its `ord_dt` has
 * closed (an unfilled limit, a market order held at the lower limit) expired at KRX, and is
 * reported `cancelled` with whatever had filled.
 *
 * Rules checked before anything is sent, each refusal a `VenueRejectedError` naming its rule:
 * - the KRX session (`session`, KIS_MARKET_HOURS, Asia/Seoul): outside it `market_closed`, for
 *   liquidations too (nothing can trade while the market is closed; `closedNow` tells the
 *   liquidation pass to wait for the open instead of sending). Holidays are not known here: KIS refuses those orders and the refusal is mapped
 *   to `market_closed` by its words.
 * - whole shares: a buy takes floor(notional / price) shares, and less than one is
 *   `below_minimum`; a sell of a fractional quantity is refused (`fractional_quantity`), never
 *   floored: KIS holdings are whole shares, so a fraction means the book and the account
 *   disagree, which the reconcile must settle rather than this adapter guess.
 * - funds: a buy needs quantity × price × (1 + `feeRate`) of the cash KIS shows after settlement
 *   (`prvs_rcdl_excc_amt`); a sell needs the shares KIS says may be sold (`ord_psbl_qty`).
 *   A market buy is priced here at the reference price; KIS itself reserves it at the day's
 *   upper limit price, so it may still refuse one the check passed (mapped to
 *   `insufficient_cash`).
 * - limit prices are moved onto the KRX tick in the trader's favour.
 * There is no dry run at KIS: `submit(…, { dryRun: true })` is refused (`disarmed`), nothing sent.
 *
 * `minOrderNotional` is 0: KRX has no minimum order value, and one whole share can always be
 * sold, so no holding is dust.
 */
import path from 'node:path';
import Decimal from 'decimal.js';
import type { Amount, OrderReport, OrderRequest, OrderStatus, Side } from '../proposal/types';
import { Dec, amount, toDec } from '../amounts';
import { InvariantError, StorageError, TransientError, VenueAuthError, VenueRejectedError, describeError } from '../errors';
import { LogStore, type Change } from '../persistence/log-store';
import type { StorageIo } from '../persistence/storage-io';
import type { Logger } from '../logging';
import { isSessionOpen, type MarketSession } from '../market-session';
import { isKrxSymbol } from '../symbols';
import {
  KIS_TRANSIENT, kstParts, kstToMs,
  type KisClient, type KisDailyOrder, type KisOrderAnswer,
} from '../integrations/kis';
import { isTerminal, type Balances, type ExecutionVenue, type LimitOrderFields, type VenueCapabilities } from './base';
import { DEFAULT_RETAIN_MS, expiredRecords } from './order-records';
import { positiveOrderAmount, venueNumber } from './venue-data';
import { KeyedSerial, Serial } from './serial';


export interface KisVenueOptions {
  /** The KRX session orders are sent in (KIS_MARKET_HOURS, Asia/Seoul). */
  session: MarketSession;
  /** Fee locked on top of a buy in the funds check and reported on fills (an estimate); default 0.00015. */
  feeRate?: Amount;
  /** Securities transaction tax on a sell's value (KIS_SELL_TAX_RATE), reported with the fee; default 0. */
  sellTaxRate?: Amount;
  /** Polls of the day's orders after a lost answer, before the order counts as not placed; default 3 (at least 2). */
  visibilityPolls?: number;
  /** The span those polls cover at least, ms; default 12 000. */
  visibilityWindowMs?: number;
  /**
   * An order KIS timed this long before the attempt was written still matches it, ms; default
   * 60 000. The host's clock may run ahead of KIS's: too small a margin rules the order placed
   * absent, and it is sent twice; too large a one can only make an outcome ambiguous (nothing
   * resent, operators asked), the safe side.
   */
  clockSkewMs?: number;
  /** Sends found absent (lost answer, no order after the window) per client order id before `resend_limit`; default 2. */
  maxAttempts?: number;
  /** How long a finished order is remembered, ms; default 3 days. */
  retainMs?: number;
  checkpointMinBytes?: number;
  /** Every decision about a lost answer (`found`, `absent` → resend, `ambiguous` once), for the journal. */
  onDecision?: (record: Record<string, unknown>) => Promise<void>;
  logger?: Logger;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

type AttemptOutcome =
  /** Written before the send; no answer recorded (a crash mid-send reads as this). */
  | 'sending'
  /** The send ended without an answer: KIS may hold the order. */
  | 'unknown'
  /** KIS answered that nothing was done (rate limit): certain. */
  | 'not_placed'
  /** KIS refused the order (or the credentials): nothing was placed. */
  | 'refused'
  /** Polled over the window and not there: nothing was placed. */
  | 'absent'
  /** KIS answered with the order number. */
  | 'accepted'
  /** Found by the poll and claimed. */
  | 'found'
  /** Two or more candidates: unknown for good, never resent. */
  | 'ambiguous';

interface Attempt {
  n: number;
  outcome: AttemptOutcome;
  /** Epoch ms the attempt was written (before the send), and when the send ended without an answer. */
  sentAt: number;
  endedAt?: number;
  polls?: number;
  firstPollAt?: number;
  lastPollAt?: number;
  odno?: string;
  orgNo?: string;
  candidates?: string[];
  /** Ambiguous because this order number was also claimed by that client id. */
  sharedWith?: string;
  last?: OrderReport;
}

interface OrderRecord {
  clientOrderId: string;
  symbol: string;
  pdno: string;
  side: Side;
  /** Whole shares. */
  quantity: string;
  ordDvsn: '00' | '01';
  /** Limit price, `0` for a market order. */
  price: string;
  createdAt: number;
  attempts: Attempt[];
  finalAt?: number;
}

interface Plan {
  pdno: string;
  quantity: Dec;
  ordDvsn: '00' | '01';
  price: Dec;
  /** What the order is worth at the price used for the checks. */
  value: Dec;
}

interface Found {
  report: OrderReport;
  attempt: Attempt;
}

/** KRX stock symbols: a six-character code starting with a digit, quoted in KRW. */
const recordKey = (clientOrderId: string) => `order:${clientOrderId}`;
const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The KRX price tick (since 2023-01-25, KOSPI and KOSDAQ alike) for a price. */
export function krxTickSize(price: Decimal.Value): Dec {
  const p = new Dec(price);
  const bands: Array<[number, number]> = [[2000, 1], [5000, 5], [20_000, 10], [50_000, 50], [200_000, 100], [500_000, 500]];
  for (const [below, tick] of bands) if (p.lt(below)) return new Dec(tick);
  return new Dec(1000);
}

/** A price on the KRX tick, in the trader's favour (a buy down, a sell up). */
export function roundToKrxTick(price: Dec, side: Side): Dec {
  const tick = krxTickSize(price);
  return price.div(tick).toDecimalPlaces(0, side === 'buy' ? Decimal.ROUND_DOWN : Decimal.ROUND_UP).times(tick);
}

export class KisVenue implements ExecutionVenue {
  readonly name = 'kis';
  readonly minOrderNotional = 0;
  readonly capabilities: VenueCapabilities = { orderTypes: ['market', 'limit'], dryRun: false, clientOrderIds: false };
  /** An open order is looked up once a second at most: a paper account takes 2 requests a second, shared with market data. */
  readonly pollIntervalMs = 1000;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly feeRate: Dec;
  private readonly sellTaxRate: Dec;
  private readonly polls: number;
  private readonly windowMs: number;
  private readonly skewMs: number;
  private readonly perOrder = new KeyedSerial();
  /** Polls that may claim an order run one at a time, so one order is never claimed twice. */
  private readonly claims = new Serial();
  /** Sends without an answer yet, by `pdno:side`: polls of that stock and side do not decide meanwhile. */
  private readonly flying = new Map<string, number>();
  /** Order numbers KIS answered and not yet recorded in the store (kept when recording one failed), with their client ids. */
  private readonly answered = new Map<string, string>();

  private constructor(private readonly store: LogStore<OrderRecord>, private readonly client: KisClient, private readonly options: KisVenueOptions) {
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? defaultSleep;
    this.feeRate = toDec('feeRate', options.feeRate ?? '0.00015');
    this.sellTaxRate = toDec('sellTaxRate', options.sellTaxRate ?? '0');
    this.polls = Math.max(2, options.visibilityPolls ?? 3);
    this.windowMs = options.visibilityWindowMs ?? 12_000;
    this.skewMs = options.clockSkewMs ?? 60_000;
  }

  /** Opens the attempt store under `DATA_DIR/kis-orders/`. */
  static async open(io: StorageIo, dataDir: string, client: KisClient, options: KisVenueOptions): Promise<KisVenue> {
    const { store } = await LogStore.open<OrderRecord>(io, path.join(dataDir, 'kis-orders'), {
      name: 'kis-orders',
      ...(options.checkpointMinBytes !== undefined ? { checkpointMinBytes: options.checkpointMinBytes } : {}),
    });
    return new KisVenue(store, client, options);
  }

  /** Whether `symbol` is a KRX stock (`005930/KRW`). */
  /** KRX outside KIS_MARKET_HOURS: orders would be refused before sending, so a liquidation waits for the open. */
  closedNow(now: number): string | undefined {
    return isSessionOpen(this.options.session, now) ? undefined : `KRX is closed: KIS orders are sent only during ${this.options.session.text} (KIS_MARKET_HOURS)`;
  }

  trades(symbol: string): boolean {
    return isKrxSymbol(symbol);
  }

  /**
   * Places the order once per client order id (an order of ours already at KIS is returned
   * instead). No dry run: with `dryRun` it is refused (`disarmed`) and nothing is sent.
   */
  submit(request: OrderRequest, options: { dryRun?: boolean } = {}): Promise<OrderReport> {
    if (options.dryRun) {
      return Promise.reject(new VenueRejectedError('disarmed', `live trading is disarmed and KIS has no dry run; ${request.side} ${request.symbol} was not sent`, { venue: this.name, symbol: request.symbol }));
    }
    return this.perOrder.run(request.clientOrderId, () => this.place(request));
  }

  /**
   * The order for this client id, or undefined when none can be at KIS (never sent from this
   * DATA_DIR, forgotten, or found absent). Throws `order_outcome_unknown` while a lost answer's
   * window is open (one poll per call) or when the order could not be told apart.
   */
  findByClientId(clientOrderId: string): Promise<OrderReport | undefined> {
    return this.perOrder.run(clientOrderId, async () => (await this.lookingUp(clientOrderId, () => this.reconcile(clientOrderId, false)))?.report);
  }

  /** Cancels what is left of an open order (order-rvsecncl) and returns its report after. */
  cancel(clientOrderId: string): Promise<OrderReport | undefined> {
    return this.perOrder.run(clientOrderId, async () => {
      const found = await this.lookingUp(clientOrderId, () => this.reconcile(clientOrderId, false));
      if (!found || isTerminal(found.report)) return found?.report;
      const record = this.record(clientOrderId)!;
      const { odno, orgNo } = found.attempt;
      if (!odno || !orgNo) throw new VenueRejectedError('cannot_cancel', `KIS order for ${clientOrderId} has no order number or branch recorded; cancel it in KIS's own app`, { venue: this.name, clientOrderId });
      try {
        await this.client.cancelOrder({ orgNo, odno, ordDvsn: record.ordDvsn });
      } catch (err) {
        // Finished meanwhile: KIS refuses to cancel it; the look-up below says how it ended.
        if (!(err instanceof VenueRejectedError)) throw err;
      }
      return (await this.lookingUp(clientOrderId, () => this.reconcile(clientOrderId, false)))?.report ?? found.report;
    });
  }

  /**
   * Cash and holdings from `inquire-balance`. Cash is `prvs_rcdl_excc_amt` (deposits after
   * today's and yesterday's trades settle, T+2), not `dnca_tot_amt` (deposits now): the book
   * has already paid for today's buys and been paid for today's sells, and a buy can only spend
   * what is left after them. Holdings are `hldg_qty` (whole shares) as `005930/KRW`.
   */
  async balances(): Promise<Balances> {
    const { holdings, cash } = await this.client.balance();
    const positions: Balances['positions'] = [];
    for (const h of holdings) {
      const quantity = venueNumber('KIS', 'hldg_qty', h.hldg_qty);
      const symbol = `${h.pdno}/KRW`;
      if (quantity.gt(0) && isKrxSymbol(symbol)) positions.push({ symbol, quantity: amount(quantity) });
    }
    return { quoteCurrency: 'KRW', cash: amount(venueNumber('KIS', 'prvs_rcdl_excc_amt', cash.prvs_rcdl_excc_amt)), positions };
  }

  /** Records of orders finished longer ago than `retainMs`, dropped with the next write. */
  private expired(except: string, now: number): Array<Change<OrderRecord>> {
    return expiredRecords(this.store.entries(), except, now, this.options.retainMs ?? DEFAULT_RETAIN_MS);
  }

  async close(): Promise<void> {
    await this.perOrder.idle();
    await this.store.close();
  }

  // ---- submit ------------------------------------------------------------------------------

  private async place(request: OrderRequest): Promise<OrderReport> {
    const id = request.clientOrderId;
    const existing = await this.lookingUp(id, () => this.reconcile(id, true));
    if (existing) return existing.report;
    this.checkSession(request);
    const plan = this.plan(request);
    await this.checkFunds(request, plan);
    const maxAttempts = this.options.maxAttempts ?? 2;
    for (;;) {
      const absent = (this.record(id)?.attempts ?? []).filter((a) => a.outcome === 'absent').length;
      if (absent >= maxAttempts) throw this.resendLimit(id, absent);
      const attempt = await this.begin(request, plan);
      const land = this.takeOff(plan.pdno, request.side);
      let answer: KisOrderAnswer;
      try {
        answer = await this.client.orderCash({ side: request.side, pdno: plan.pdno, ordDvsn: plan.ordDvsn, quantity: amount(plan.quantity), price: amount(plan.price) });
      } catch (err) {
        const outcome = await this.sendFailed(id, attempt, err).finally(land);
        if (outcome !== 'unknown') throw err;
        const found = await this.lookingUp(id, () => this.resolve(id, attempt.n, true));
        if (found) return found.report;
        // Absent after the window: nothing was placed; the next pass sends again (bounded).
        continue;
      }
      return this.accepted(id, attempt, answer).finally(land);
    }
  }

  /** Records KIS's answer (its order number) for the attempt; an order number another client id holds makes both ambiguous. */
  private async accepted(id: string, attempt: Attempt, answer: KisOrderAnswer): Promise<OrderReport> {
    const other = this.claimant(answer.odno, id);
    if (other) return this.claimedTwice(id, attempt.n, answer.odno, other);
    this.answered.set(answer.odno, id);
    const submittedAt = Number.isFinite(kstToMs(kstParts(attempt.sentAt).date, answer.orderTime)) ? kstToMs(kstParts(attempt.sentAt).date, answer.orderTime) : this.now();
    const report = this.openReport(this.record(id)!, answer.odno, submittedAt);
    await this.updateAttempt(id, attempt.n, { outcome: 'accepted', odno: answer.odno, orgNo: answer.orgNo, last: report }).then(() => {
      // Recorded: the store names the order from now on, so memory need not (it would grow with every order).
      this.answered.delete(answer.odno);
    }, (err: unknown) => {
      // Placed: the answer stands; without the record the poll would find it again.
      this.options.logger?.error('KIS order: placed, but its order number could not be recorded', { component: 'kis', clientOrderId: id, odno: answer.odno, error: describeError(err).message });
    });
    return report;
  }

  /** Marks a send in flight for its stock and side; the function returned lands it. */
  private takeOff(pdno: string, side: Side): () => void {
    const key = `${pdno}:${side}`;
    this.flying.set(key, (this.flying.get(key) ?? 0) + 1);
    let landed = false;
    return () => {
      if (landed) return;
      landed = true;
      const left = (this.flying.get(key) ?? 1) - 1;
      if (left > 0) this.flying.set(key, left);
      else this.flying.delete(key);
    };
  }

  private resendLimit(id: string, absent: number): VenueRejectedError {
    return new VenueRejectedError('resend_limit', `KIS order ${id}: KIS's answer was lost ${absent} times and each time the day's orders showed no such order after the window, so nothing of it is at KIS; nothing more is sent for this client order id (at most ${this.options.maxAttempts ?? 2} sends found absent): check the connection to KIS (KIS_API_URL, the timeouts in the log) and the day's orders in KIS's own app before proposing it again`, {
      venue: this.name, clientOrderId: id, absent,
    });
  }

  private checkSession(request: OrderRequest): void {
    const now = this.now();
    if (isSessionOpen(this.options.session, now)) return;
    const { date, time } = kstParts(now);
    const seoul = `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6)} ${time.slice(0, 2)}:${time.slice(2, 4)}`;
    const liquidation = request.intent === 'liquidate' ? '; a liquidation cannot trade while KRX is closed either: send it again once the market opens' : '';
    throw new VenueRejectedError('market_closed', `KRX is closed: KIS orders are sent only during the session ${this.options.session.text} (KIS_MARKET_HOURS), and it is ${seoul} in Seoul${liquidation}; nothing was sent`, {
      venue: this.name, symbol: request.symbol, session: this.options.session, intent: request.intent,
    });
  }

  /** The order for `request`, whole shares, after the rules that can be checked here. */
  private plan(request: OrderRequest): Plan {
    const { symbol, side } = request;
    if (!this.trades(symbol)) throw new VenueRejectedError('not_traded', `KIS trades KRX stocks (six-character codes such as 005930/KRW), not ${symbol}; nothing was sent`, { venue: this.name, symbol });
    const pdno = symbol.slice(0, 6);
    const limit = request as OrderRequest & LimitOrderFields;
    const isLimit = limit.orderType === 'limit';
    const reference = positiveOrderAmount('price', request.price);
    const price = isLimit ? roundToKrxTick(positiveOrderAmount('limitPrice', limit.limitPrice ?? request.price), side) : reference;
    let quantity: Dec;
    if (side === 'buy') {
      const notional = positiveOrderAmount('notional', request.notional);
      quantity = notional.div(price).toDecimalPlaces(0, Decimal.ROUND_DOWN);
      if (quantity.lt(1)) {
        throw new VenueRejectedError('below_minimum', `KRX trades whole shares: ${amount(notional)} KRW buys no share of ${symbol} at ${amount(price)} KRW; nothing was sent`, { venue: this.name, symbol, notional: amount(notional), price: amount(price) });
      }
    } else {
      quantity = toDec('quantity', request.quantity ?? '0');
      if (!quantity.isInteger()) {
        throw new VenueRejectedError('fractional_quantity', `KRX trades whole shares and KIS holds whole shares, but ${amount(quantity)} ${symbol} was asked to be sold: the book and the account disagree; nothing was sent`, { venue: this.name, symbol, quantity: amount(quantity) });
      }
      if (quantity.lt(1)) throw new VenueRejectedError('below_minimum', `selling ${amount(quantity)} shares of ${symbol}: at least one whole share is needed; nothing was sent`, { venue: this.name, symbol });
    }
    return { pdno, quantity, ordDvsn: isLimit ? '00' : '01', price: isLimit ? price : new Dec(0), value: quantity.times(price) };
  }

  /** Cash after settlement for a buy (with the fee), sellable shares for a sell, from `inquire-balance`. */
  private async checkFunds(request: OrderRequest, plan: Plan): Promise<void> {
    const { holdings, cash } = await this.client.balance();
    if (request.side === 'buy') {
      const free = venueNumber('KIS', 'prvs_rcdl_excc_amt', cash.prvs_rcdl_excc_amt);
      const needed = plan.value.times(this.feeRate.plus(1));
      if (free.gte(needed)) return;
      throw new VenueRejectedError('insufficient_cash', `buying ${amount(plan.quantity)} ${request.symbol} at ${amount(plan.value.div(plan.quantity))} KRW needs ${amount(needed.toDecimalPlaces(0, Decimal.ROUND_UP))} KRW with the ${amount(this.feeRate.times(100))} % fee, but KIS shows ${amount(free)} KRW after settlement; nothing was sent`, {
        venue: this.name, symbol: request.symbol, needed: amount(needed), free: amount(free),
      });
    }
    const row = holdings.find((h) => h.pdno === plan.pdno);
    const sellable = venueNumber('KIS', 'ord_psbl_qty', row?.ord_psbl_qty ?? row?.hldg_qty ?? '0');
    if (sellable.gte(plan.quantity)) return;
    throw new VenueRejectedError('insufficient_position', `selling ${amount(plan.quantity)} ${request.symbol}, but KIS says ${amount(sellable)} may be sold (held ${row?.hldg_qty ?? '0'}); nothing was sent`, {
      venue: this.name, symbol: request.symbol, needed: amount(plan.quantity), free: amount(sellable),
    });
  }

  /** Writes the next attempt durably (and forgets long-finished orders) before it is sent. */
  private async begin(request: OrderRequest, plan: Plan): Promise<Attempt> {
    const id = request.clientOrderId;
    const now = this.now();
    const record: OrderRecord = this.record(id) ?? {
      clientOrderId: id, symbol: request.symbol, pdno: plan.pdno, side: request.side, quantity: amount(plan.quantity), ordDvsn: plan.ordDvsn, price: amount(plan.price), createdAt: now, attempts: [],
    };
    const attempt: Attempt = { n: record.attempts.length + 1, outcome: 'sending', sentAt: now };
    const { finalAt: _done, ...open } = record;
    const next: OrderRecord = { ...open, quantity: amount(plan.quantity), ordDvsn: plan.ordDvsn, price: amount(plan.price), attempts: [...record.attempts, attempt] };
    await this.store.commit([{ key: recordKey(id), value: next }, ...this.expired(id, now)]);
    return attempt;
  }

  /** Records how a send without an answer ended; returns that outcome. */
  private async sendFailed(id: string, attempt: Attempt, err: unknown): Promise<AttemptOutcome> {
    let outcome: AttemptOutcome;
    if (err instanceof TransientError && (err.code === KIS_TRANSIENT.rateLimited || err.code === KIS_TRANSIENT.tokenRateLimited)) outcome = 'not_placed';
    else if (err instanceof VenueRejectedError || err instanceof VenueAuthError) outcome = 'refused';
    else outcome = 'unknown';
    if (outcome === 'unknown') {
      this.options.logger?.warn('KIS order: the answer was lost; the day\'s orders are polled before anything else is sent', { component: 'kis', clientOrderId: id, attempt: attempt.n, error: describeError(err).message });
    }
    try {
      await this.updateAttempt(id, attempt.n, { outcome, ...(outcome === 'unknown' ? { endedAt: this.now() } : {}) });
    } catch (writeErr) {
      // The attempt stays `sending`, which is polled like an unknown one: nothing is lost.
      this.options.logger?.error('KIS order: could not record how a send ended', { component: 'kis', clientOrderId: id, error: describeError(writeErr).message });
    }
    return outcome;
  }

  private openReport(record: OrderRecord, odno: string, submittedAt: number): OrderReport {
    const at = new Date(submittedAt).toISOString();
    return { clientOrderId: record.clientOrderId, venueOrderId: odno, venue: this.name, symbol: record.symbol, side: record.side, status: 'open', filledQuantity: '0', avgPrice: '0', fee: '0', submittedAt: at, updatedAt: at };
  }

  // ---- reconciliation ----------------------------------------------------------------------

  /**
   * The order of ours at KIS for `clientOrderId`, or undefined when none can be there. A lost
   * answer is polled for: with `wait`, until decided; without, once per call (then
   * `order_outcome_unknown` while the window is open).
   */
  private async reconcile(clientOrderId: string, wait: boolean): Promise<Found | undefined> {
    const record = this.record(clientOrderId);
    if (!record) return undefined;
    for (const attempt of record.attempts) {
      if (attempt.odno) return this.lookUp(record, attempt);
      if (attempt.outcome === 'ambiguous') throw this.ambiguous(record, attempt);
      if (attempt.outcome === 'sending' || attempt.outcome === 'unknown') {
        const found = await this.resolve(clientOrderId, attempt.n, wait);
        if (found) return found;
      }
    }
    return undefined;
  }

  /** The order with the attempt's ODNO, from the day's orders (its last report while KIS does not show it). */
  private async lookUp(record: OrderRecord, attempt: Attempt): Promise<Found> {
    if (attempt.last && isTerminal(attempt.last)) return { report: attempt.last, attempt };
    const rows = await this.client.dailyOrders({ date: kstParts(attempt.sentAt).date, pdno: record.pdno, odno: attempt.odno! });
    const row = rows.find((r) => r.odno === attempt.odno);
    if (!row) return { report: attempt.last ?? this.openReport(record, attempt.odno!, attempt.sentAt), attempt };
    const report = this.reportOf(record, row);
    if (!attempt.last || JSON.stringify(attempt.last) !== JSON.stringify(report)) await this.updateAttempt(record.clientOrderId, attempt.n, { last: report });
    return { report, attempt: { ...attempt, last: report } };
  }

  /**
   * Polls for the order a lost answer may have placed. Decides: one match → claimed (found);
   * several → ambiguous (never resent); none after `visibilityPolls` over `visibilityWindowMs`
   * → absent. Undefined when absent.
   */
  private async resolve(clientOrderId: string, n: number, wait: boolean): Promise<Found | undefined> {
    const interval = Math.ceil(this.windowMs / (this.polls - 1));
    for (;;) {
      const outcome = await this.claims.run(() => this.pollOnce(clientOrderId, n));
      if (outcome !== 'pending') return outcome === 'absent' ? undefined : outcome;
      const attempt = this.record(clientOrderId)!.attempts[n - 1]!;
      if (!wait) {
        const until = Math.max((attempt.firstPollAt ?? this.now()) + this.windowMs, (attempt.endedAt ?? attempt.sentAt) + this.windowMs);
        throw new TransientError('order_outcome_unknown', `the answer to KIS order ${clientOrderId} (attempt ${n}) was lost and the day's orders do not settle it yet (${attempt.polls ?? 0} of at least ${this.polls} polls; a match is not claimed while another ${this.record(clientOrderId)!.side} of the stock is being sent); it is polled until at least ${new Date(until).toISOString()} and nothing new is sent before then`, {
          venue: this.name, clientOrderId, attempt: n, polls: attempt.polls ?? 0, until,
        });
      }
      await this.sleep(interval);
    }
  }

  /** One poll of the day's orders for a lost answer, and what it decided (`pending`: not yet). */
  private async pollOnce(clientOrderId: string, n: number): Promise<Found | 'absent' | 'pending'> {
    const record = this.record(clientOrderId)!;
    const attempt = record.attempts[n - 1]!;
    if (attempt.odno) return this.lookUp(record, attempt);
    if (attempt.outcome === 'absent') return 'absent';
    if (attempt.outcome === 'ambiguous') throw this.ambiguous(record, attempt);
    const rows = await this.client.dailyOrders({ date: kstParts(attempt.sentAt).date, pdno: record.pdno, side: record.side });
    const now = this.now();
    const claimed = this.claimedOrderNumbers();
    const earliest = Math.floor((attempt.sentAt - this.skewMs) / 1000) * 1000;
    const candidates = rows.filter((r) => {
      const at = kstToMs(r.ord_dt, r.ord_tmd);
      return r.pdno === record.pdno && r.sll_buy_dvsn_cd === (record.side === 'sell' ? '01' : '02') && sameQuantity(r.ord_qty, record.quantity)
        && at >= earliest && at <= now + this.skewMs && !claimed.has(r.odno);
    });
    const polls = (attempt.polls ?? 0) + 1;
    const progress = { polls, firstPollAt: attempt.firstPollAt ?? now, lastPollAt: now };
    if (candidates.length > 0 && this.flying.has(`${record.pdno}:${record.side}`)) {
      // A send of this stock and side has no answer yet: a match may be its order. Decide after it lands.
      await this.updateAttempt(clientOrderId, n, progress);
      return 'pending';
    }
    const base = { type: 'kis.order.lost_answer', venue: this.name, clientOrderId, attempt: n, symbol: record.symbol, side: record.side, quantity: record.quantity, polls, at: new Date(now).toISOString() };
    if (candidates.length === 1) {
      const row = candidates[0]!;
      const report = this.reportOf(record, row);
      await this.updateAttempt(clientOrderId, n, { ...progress, outcome: 'found', odno: row.odno, ...(row.ord_gno_brno ? { orgNo: row.ord_gno_brno } : {}), last: report });
      await this.decide({ ...base, decision: 'found', odno: row.odno, message: `the order KIS placed for the lost answer was found (order ${row.odno}) and claimed; nothing is resent` });
      return { report, attempt: this.record(clientOrderId)!.attempts[n - 1]! };
    }
    if (candidates.length > 1) {
      const odnos = candidates.map((r) => r.odno);
      await this.updateAttempt(clientOrderId, n, { ...progress, outcome: 'ambiguous', candidates: odnos });
      await this.decide({ ...base, decision: 'ambiguous', candidates: odnos, message: `${odnos.length} unclaimed KIS orders (${odnos.join(', ')}) match the lost answer; none is claimed and nothing is resent: the outcome stays unknown until an operator settles it` });
      throw this.ambiguous(this.record(clientOrderId)!, this.record(clientOrderId)!.attempts[n - 1]!);
    }
    const since = attempt.endedAt ?? attempt.sentAt;
    const settled = polls >= this.polls && now - progress.firstPollAt >= this.windowMs && now - since >= this.windowMs;
    await this.updateAttempt(clientOrderId, n, { ...progress, ...(settled ? { outcome: 'absent' as const } : {}) });
    if (!settled) return 'pending';
    await this.decide({ ...base, decision: 'absent', message: `KIS shows no order for the lost answer after ${polls} polls over ${Math.round((now - progress.firstPollAt) / 1000)} s: nothing was placed, and the order may be sent again` });
    return 'absent';
  }

  private ambiguous(record: OrderRecord, attempt: Attempt): TransientError {
    const details = { venue: this.name, clientOrderId: record.clientOrderId, candidates: attempt.candidates ?? [], ambiguous: true, ...(attempt.sharedWith ? { sharedWith: attempt.sharedWith } : {}) };
    if (attempt.sharedWith) {
      return new TransientError('order_outcome_unknown', `KIS order ${(attempt.candidates ?? []).join(', ')} (${record.side} ${record.quantity} ${record.symbol}) was claimed by both ${record.clientOrderId} and ${attempt.sharedWith}; neither is taken as placed or filled, nothing is resent, and the outcome stays unknown: check the orders in KIS and settle both by hand`, details);
    }
    return new TransientError('order_outcome_unknown', `the answer to KIS order ${record.clientOrderId} was lost and ${attempt.candidates?.length ?? 'several'} unclaimed orders of ${record.side} ${record.quantity} ${record.symbol} match it (${(attempt.candidates ?? []).join(', ')}); nothing is resent and the outcome stays unknown: check the orders in KIS and settle it by hand`, details);
  }

  private claimedOrderNumbers(): Set<string> {
    const out = new Set<string>(this.answered.keys());
    for (const [, record] of this.store.entries()) {
      for (const a of record.attempts) {
        if (a.odno) out.add(a.odno);
        // An order number two client ids claimed stays taken: no third claims it.
        if (a.sharedWith) for (const odno of a.candidates ?? []) out.add(odno);
      }
    }
    return out;
  }

  /** Another client id's attempt that holds `odno`, if any. */
  private claimant(odno: string, except: string): { record: OrderRecord; attempt: Attempt } | undefined {
    for (const [, record] of this.store.entries()) {
      if (record.clientOrderId === except) continue;
      const attempt = record.attempts.find((a) => a.odno === odno);
      if (attempt) return { record, attempt };
    }
    const holder = this.answered.get(odno);
    const record = holder !== undefined && holder !== except ? this.record(holder) : undefined;
    const attempt = record?.attempts.find((a) => a.outcome === 'sending' || a.outcome === 'unknown');
    return record && attempt ? { record, attempt } : undefined;
  }

  /** One order number answered for two client ids: both become ambiguous (reported once each), never both filled. */
  private async claimedTwice(id: string, n: number, odno: string, other: { record: OrderRecord; attempt: Attempt }): Promise<never> {
    const now = new Date(this.now()).toISOString();
    const otherId = other.record.clientOrderId;
    for (const [who, which, shared] of [[id, n, otherId], [otherId, other.attempt.n, id]] as const) {
      await this.updateAttempt(who, which, { outcome: 'ambiguous', candidates: [odno], sharedWith: shared }, ['odno', 'orgNo', 'last']).catch((err: unknown) => {
        this.options.logger?.error('KIS order: could not record an ambiguous outcome', { component: 'kis', clientOrderId: who, error: describeError(err).message });
      });
      const record = this.record(who);
      await this.decide({
        type: 'kis.order.claimed_twice', venue: this.name, clientOrderId: who, attempt: which, symbol: record?.symbol, side: record?.side, quantity: record?.quantity, at: now,
        decision: 'ambiguous', odno, sharedWith: shared,
        message: `KIS order ${odno} is claimed by both ${who} and ${shared}; neither is taken as placed or filled and nothing is resent: the outcome stays unknown until an operator settles it`,
      });
    }
    const record = this.record(id)!;
    throw this.ambiguous(record, record.attempts[n - 1]!);
  }

  /** Any error while looking an order up is transient (`lookup_failed`), never a refusal: the order may be at KIS. */
  private async lookingUp<T>(clientOrderId: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof TransientError || err instanceof InvariantError || err instanceof StorageError) throw err;
      const cause = describeError(err);
      throw new TransientError('lookup_failed', `KIS order ${clientOrderId} could not be looked up (${cause.code}: ${cause.message}); whether it is at KIS stays unknown until a look-up succeeds, and nothing is sent for it meanwhile`, {
        venue: this.name, clientOrderId, cause: cause.code, ...(cause.category ? { causeCategory: cause.category } : {}),
      });
    }
  }

  private async decide(record: Record<string, unknown>): Promise<void> {
    this.options.logger?.warn(`KIS order: ${String(record['message'])}`, { component: 'kis', ...record });
    try {
      await this.options.onDecision?.(record);
    } catch (err) {
      this.options.logger?.error('KIS order: the decision could not be reported', { component: 'kis', error: describeError(err).message });
    }
  }

  /**
   * A row of the day's orders as our report; exact amounts. KIS does not report an order's costs
   * here: the fee is `feeRate` of what filled, plus `sellTaxRate` of it on a sell, each cut to
   * whole KRW. A difference from what KIS really charged shows at the next reconcile as an
   * adjustment, told to the operators.
   */
  private reportOf(record: OrderRecord, row: KisDailyOrder): OrderReport {
    const ordered = venueNumber('KIS', 'ord_qty', row.ord_qty);
    const filled = venueNumber('KIS', 'tot_ccld_qty', row.tot_ccld_qty ?? '0');
    const value = venueNumber('KIS', 'tot_ccld_amt', row.tot_ccld_amt ?? '0');
    const cancelledQty = venueNumber('KIS', 'cnc_cfrm_qty', row.cnc_cfrm_qty || '0');
    const rejectedQty = venueNumber('KIS', 'rjct_qty', row.rjct_qty || '0');
    let status: OrderStatus;
    if (filled.gte(ordered)) status = 'filled';
    else if (rejectedQty.gt(0) && filled.isZero()) status = 'rejected';
    else if (cancelledQty.gt(0) || row.cncl_yn === 'Y' || rejectedQty.gt(0)) status = 'cancelled';
    else status = filled.gt(0) ? 'partially_filled' : 'open';
    const at = kstToMs(row.ord_dt, row.ord_tmd);
    if (!Number.isFinite(at)) throw new InvariantError('corrupt_venue_data', `KIS sent order ${row.odno} with date ${JSON.stringify(row.ord_dt)} and time ${JSON.stringify(row.ord_tmd)}`, { venue: this.name, field: 'ord_tmd' });
    // KRX orders are day orders: one still open once its day's session has closed expired there.
    const closedAt = kstToMs(row.ord_dt) + this.options.session.closeMinute * 60_000;
    const expired = (status === 'open' || status === 'partially_filled') && this.now() >= closedAt;
    if (expired) status = 'cancelled';
    const iso = new Date(at).toISOString();
    return {
      clientOrderId: record.clientOrderId, venueOrderId: row.odno, venue: this.name, symbol: record.symbol, side: record.side, status,
      filledQuantity: amount(filled), avgPrice: filled.gt(0) ? amount(value.div(filled).toSignificantDigits(20)) : '0',
      fee: amount(this.costOf(record.side, value)), submittedAt: iso, updatedAt: expired ? new Date(closedAt).toISOString() : iso,
    };
  }

  private costOf(side: Side, value: Dec): Dec {
    const fee = value.times(this.feeRate).toDecimalPlaces(0, Decimal.ROUND_DOWN);
    return side === 'sell' ? fee.plus(value.times(this.sellTaxRate).toDecimalPlaces(0, Decimal.ROUND_DOWN)) : fee;
  }

  // ---- the store ---------------------------------------------------------------------------

  private record(clientOrderId: string): OrderRecord | undefined {
    return this.store.get(recordKey(clientOrderId));
  }

  /** Patches attempt `n` (and removes the `drop` fields) durably. */
  private async updateAttempt(clientOrderId: string, n: number, patch: Partial<Attempt>, drop: Array<keyof Attempt> = []): Promise<void> {
    const record = this.record(clientOrderId);
    if (!record) return;
    const attempts = record.attempts.map((a) => {
      if (a.n !== n) return a;
      const next: Attempt = { ...a, ...patch };
      for (const key of drop) delete next[key];
      return next;
    });
    const { finalAt, ...rest } = record;
    const next: OrderRecord = { ...rest, attempts };
    if (isFinal(next)) next.finalAt = finalAt ?? this.now();
    await this.store.commit([{ key: recordKey(clientOrderId), value: next }]);
  }

}

/** Whether nothing about a client id can change: an order that ended, or no attempt that may be at KIS. */
function isFinal(record: OrderRecord): boolean {
  if (record.attempts.some((a) => a.last !== undefined && isTerminal(a.last))) return true;
  return record.attempts.every((a) => a.outcome === 'refused' || a.outcome === 'absent' || a.outcome === 'not_placed');
}

function sameQuantity(a: string, b: string): boolean {
  try {
    return new Dec(a).eq(new Dec(b));
  } catch {
    return false;
  }
}



