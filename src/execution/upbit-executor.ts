/**
 * The Upbit venue: the execution adapter for Upbit's KRW market, behind the same interface as
 * the paper venue, over `UpbitClient` (the only code that speaks Upbit's wire format).
 *
 * Exactly once. Upbit's `identifier` is unique forever and is burned even by a refused request,
 * so one client order id may take several attempts: attempt n carries `<clientOrderId>-<n>`, and
 * n is written durably (`DATA_DIR/upbit-orders/`, a write-ahead-logged store) before the request
 * leaves. Before another attempt is sent, every earlier one that may be at Upbit is looked up by
 * its identifier; an attempt whose answer was lost (timeout, 5xx, crash) counts as not placed
 * only once a look-up made `unknownOutcomeGraceMs` after the send still does not find it. Until
 * then `findByClientId` and `submit` answer `TransientError order_outcome_unknown`: the outcome
 * is unknown, never "failed". A 429 or a burned identifier placed nothing for certain: the
 * attempt is looked up once, after the back-off, and the next one is sent (a bounded number of
 * times). Identifiers are never reused.
 *
 * Rules checked before anything is sent, each refusal a `VenueRejectedError` naming its rule: the
 * 5,000 KRW minimum (a buy by its KRW, a sell by quantity × reference price), the KRW price tick
 * (a limit price is moved onto it in the trader's favour), the free KRW for a buy with Upbit's
 * 0.05 % fee locked on top, the free coin for a sell, quantities of at most 8 decimals, and
 * optionally LIVE_MAX_ORDER_NOTIONAL.
 *
 * Reports: fills are judged by `executed_volume` (a filled market buy ends in state `cancel`),
 * fees by `paid_fee`, the average price from the order's trades (Σ funds / Σ volume). Every
 * amount is exact decimal text.
 */
import path from 'node:path';
import Decimal from 'decimal.js';
import type { Amount, OrderReport, OrderRequest, OrderStatus, Side } from '../proposal/types';
import { Dec, amount, toDec } from '../amounts';
import { InvariantError, TransientError, VenueAuthError, VenueRejectedError } from '../errors';
import { LogStore, type Change } from '../persistence/log-store';
import type { StorageIo } from '../persistence/storage-io';
import type { Logger } from '../logging';
import { toUpbitMarket } from '../symbols';
import { UPBIT_TRANSIENT, type UpbitClient, type UpbitOrder, type UpbitOrderParams } from '../integrations/upbit';
import { isTerminal, type Balances, type ExecutionVenue, type LimitOrderFields, type VenueCapabilities } from './base';

export type { LimitOrderFields } from './base';
import { roundToKrwTick } from './krw-ticks';
import { DEFAULT_RETAIN_MS, expiredRecords } from './order-records';
import { positiveOrderAmount } from './venue-data';
import { KeyedSerial } from './serial';

export interface UpbitVenueOptions {
  /** Upbit's KRW-market fee, locked on top of a buy; default `0.0005`. */
  feeRate?: Amount;
  /** Upbit's minimum order total, KRW; default 5000. */
  minOrderNotional?: number;
  /** How long after a send whose answer was lost Upbit is given to show the order, ms; default 30 000. */
  unknownOutcomeGraceMs?: number;
  /** How long a finished order is remembered, ms; default 3 days. */
  retainMs?: number;
  /** Attempts one submit makes when Upbit answers 429 (each after a back-off and a look-up); default 3. */
  rateLimitedAttempts?: number;
  /** Look-ups after a cancel while Upbit finishes it; default 5, `cancelCheckIntervalMs` (200) apart. */
  cancelChecks?: number;
  cancelCheckIntervalMs?: number;
  /** Log size that triggers a checkpoint of the store. */
  checkpointMinBytes?: number;
  logger?: Logger;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** What is known about one attempt (one identifier). */
type AttemptOutcome =
  /** Written before the send; no answer recorded (a crash mid-send reads as this). */
  | 'sending'
  /** The send ended without an answer (timeout, network, 5xx): Upbit may hold it. */
  | 'unknown'
  /** Upbit answered that this request placed nothing (429, a burned identifier); the identifier is looked up once. */
  | 'not_placed'
  /** Upbit refused the order (a 4xx naming a rule, or the credentials): nothing was placed. */
  | 'refused'
  /** Looked up and not there (after the grace, or after a not_placed answer). */
  | 'absent'
  /** Upbit answered with the order (`last`). */
  | 'accepted'
  /** Found by a look-up (`last`). */
  | 'found'
  /** A dry run at `/v1/orders/test`: never an order. */
  | 'dry';

interface Attempt {
  n: number;
  identifier: string;
  outcome: AttemptOutcome;
  /** Epoch ms the attempt was written (just before the send) and when the send ended without an answer. */
  sentAt: number;
  endedAt?: number;
  uuid?: string;
  /** The latest report of the order. */
  last?: OrderReport;
  dryRun?: true;
}

/** Every attempt for one client order id. */
interface OrderRecord {
  clientOrderId: string;
  symbol: string;
  side: Side;
  createdAt: number;
  attempts: Attempt[];
  /** When nothing about this client id can change any more (forgotten `retainMs` later). */
  finalAt?: number;
}

/** An order of ours at Upbit, and the identifier it carries. */
interface Found {
  report: OrderReport;
  identifier: string;
}

/** An order ready to send, and what it locks. */
interface Plan {
  params: Omit<UpbitOrderParams, 'identifier'>;
  /** What the order is worth in KRW (the minimum and the cap apply to it). */
  value: Dec;
  lock: { currency: string; amount: Dec };
}

/** Upbit's KRW markets take 8 decimals of volume. */
const VOLUME_DECIMALS = 8;
const recordKey = (clientOrderId: string) => `order:${clientOrderId}`;

/** The identifier attempt `n` of a client order id carries at Upbit. */
export function upbitIdentifier(clientOrderId: string, n: number): string {
  return `${clientOrderId}-${n}`;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class UpbitVenue implements ExecutionVenue {
  readonly name = 'upbit';
  readonly minOrderNotional: number;
  readonly capabilities: VenueCapabilities = { orderTypes: ['market', 'limit'], dryRun: true, clientOrderIds: true };
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly feeRate: Dec;
  private readonly graceMs: number;
  /** One operation at a time per client order id (attempt numbers are never raced). */
  private readonly perOrder = new KeyedSerial();
  private markets: ReadonlySet<string>;

  private constructor(
    private readonly store: LogStore<OrderRecord>,
    private readonly client: UpbitClient,
    markets: string[],
    private readonly options: UpbitVenueOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? defaultSleep;
    this.feeRate = toDec('feeRate', options.feeRate ?? '0.0005');
    this.minOrderNotional = options.minOrderNotional ?? 5000;
    this.graceMs = options.unknownOutcomeGraceMs ?? 30_000;
    this.markets = new Set(markets);
  }

  /**
   * Opens the attempt store under `DATA_DIR/upbit-orders/` and loads Upbit's KRW market list
   * (once; `refreshMarkets` reloads it). Fails when the list cannot be loaded.
   */
  static async open(io: StorageIo, dataDir: string, client: UpbitClient, options: UpbitVenueOptions = {}): Promise<UpbitVenue> {
    const { store } = await LogStore.open<OrderRecord>(io, path.join(dataDir, 'upbit-orders'), {
      name: 'upbit-orders',
      ...(options.checkpointMinBytes !== undefined ? { checkpointMinBytes: options.checkpointMinBytes } : {}),
    });
    try {
      return new UpbitVenue(store, client, await client.krwMarkets(), options);
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  /** Reloads the list of KRW markets (new listings, delistings). */
  async refreshMarkets(): Promise<void> {
    this.markets = new Set(await this.client.krwMarkets());
  }

  /** Whether Upbit lists a KRW market for `symbol` (`BTC/KRW`). */
  trades(symbol: string): boolean {
    return this.markets.has(symbol);
  }

  /**
   * Places the order once per client order id (an order already at Upbit under any attempt is
   * returned instead). With `dryRun`, Upbit validates it at `POST /v1/orders/test` and nothing is
   * placed: the report is final, `dryRun: true`, `status: 'filled'` (Upbit would take it) with
   * `filledQuantity: '0'` (nothing traded, so nothing may be booked), and `findByClientId` never
   * returns it. Without keys a dry run checks the rules here only.
   */
  submit(request: OrderRequest, options: { dryRun?: boolean } = {}): Promise<OrderReport> {
    return this.perOrder.run(request.clientOrderId, () => this.place(request, options.dryRun === true));
  }

  /**
   * The order at Upbit for this client id (the latest report; while a late venue does not show an
   * order it answered, the answer it gave), or undefined when no attempt can be there.
   * Throws `TransientError order_outcome_unknown` while an attempt whose answer was lost may still
   * appear.
   */
  findByClientId(clientOrderId: string): Promise<OrderReport | undefined> {
    return this.perOrder.run(clientOrderId, async () => (await this.reconcile(clientOrderId))?.report);
  }

  /**
   * Cancels the open order and returns its report once Upbit shows it final (it cancels
   * asynchronously: the report may still be open after `cancelChecks` look-ups). A cancelled
   * order keeps what filled.
   */
  cancel(clientOrderId: string): Promise<OrderReport | undefined> {
    return this.perOrder.run(clientOrderId, async () => {
      const found = await this.reconcile(clientOrderId);
      if (!found || isTerminal(found.report)) return found?.report;
      try {
        await this.client.cancelByIdentifier(found.identifier);
      } catch (err) {
        // Finished meanwhile: Upbit refuses to cancel a done order; the look-up below says how it ended.
        if (!(err instanceof VenueRejectedError)) throw err;
      }
      let report = found.report;
      for (let i = 0; i < (this.options.cancelChecks ?? 5); i++) {
        if (i > 0) await this.sleep(this.options.cancelCheckIntervalMs ?? 200);
        const row = await this.client.orderByIdentifier(found.identifier);
        if (!row) continue;
        report = reportOf(row, clientOrderId);
        await this.noteReport(clientOrderId, found.identifier, row.uuid, report);
        if (isTerminal(report)) break;
      }
      return report;
    });
  }

  /**
   * Cash and holdings from `GET /v1/accounts`: cash is the KRW balance plus what open orders
   * lock (the account owns both), and each other currency held (free + locked > 0) is a position
   * `BASE/KRW`. What may be sold now (free only) is checked by `submit`.
   */
  async balances(): Promise<Balances> {
    const rows = await this.client.accounts();
    let cash = new Dec(0);
    const positions: Balances['positions'] = [];
    for (const row of rows) {
      const held = toDec(`${row.currency} balance`, row.balance).plus(toDec(`${row.currency} locked`, row.locked ?? '0'));
      if (row.currency === 'KRW') cash = held;
      else if (held.gt(0)) positions.push({ symbol: `${row.currency}/KRW`, quantity: amount(held) });
    }
    return { quoteCurrency: 'KRW', cash: amount(cash), positions };
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

  private async place(request: OrderRequest, dryRun: boolean): Promise<OrderReport> {
    const plan = this.plan(request);
    const id = request.clientOrderId;
    // Without keys nothing can be asked of Upbit: a dry run checks the rules here (unless an
    // attempt of this id may be at Upbit, which only Upbit can answer).
    if (dryRun && !this.client.hasKeys && !this.record(id)?.attempts.some(mayBeAtUpbit)) return this.dryReport(request, 'not-sent');
    const existing = await this.reconcile(id);
    if (existing) return existing.report;
    await this.checkFunds(request, plan);
    const tries = this.options.rateLimitedAttempts ?? 3;
    for (let attemptNo = 1; ; attemptNo++) {
      const attempt = await this.begin(request, dryRun);
      const params: UpbitOrderParams = { ...plan.params, identifier: attempt.identifier };
      let row: UpbitOrder;
      try {
        row = dryRun ? await this.client.testOrder(params) : await this.client.placeOrder(params);
      } catch (err) {
        const outcome = await this.sendFailed(id, attempt, err, dryRun);
        if (outcome === 'not_placed' && attemptNo < tries) {
          // Backed off by the client before the next request; the attempt is looked up first.
          const found = await this.reconcile(id);
          if (found) return found.report;
          continue;
        }
        throw err;
      }
      return this.answered(request, attempt, row, dryRun);
    }
  }

  /** The Upbit order for `request`, after the rules that can be checked here. */
  private plan(request: OrderRequest): Plan {
    const { symbol, side } = request;
    if (!this.trades(symbol)) {
      throw new VenueRejectedError('not_traded', `Upbit lists no KRW market for ${symbol}; nothing was sent`, { venue: this.name, symbol });
    }
    const limit = request as OrderRequest & LimitOrderFields;
    const isLimit = limit.orderType === 'limit';
    const reference = positiveOrderAmount('price', request.price);
    const market = toUpbitMarket(symbol);
    let plan: Plan;
    if (side === 'buy') {
      const notional = positiveOrderAmount('notional', request.notional);
      if (isLimit) {
        const price = roundToKrwTick(positiveOrderAmount('limitPrice', limit.limitPrice ?? request.price), 'buy');
        const volume = notional.div(price).toDecimalPlaces(VOLUME_DECIMALS, Decimal.ROUND_DOWN);
        const value = volume.times(price);
        plan = { params: { market, side: 'bid', ord_type: 'limit', price: amount(price), volume: amount(volume) }, value, lock: { currency: 'KRW', amount: value.times(this.feeRate.plus(1)) } };
      } else {
        // Whole KRW, rounded down: never more than approved.
        const krw = notional.toDecimalPlaces(0, Decimal.ROUND_DOWN);
        plan = { params: { market, side: 'bid', ord_type: 'price', price: amount(krw) }, value: krw, lock: { currency: 'KRW', amount: krw.times(this.feeRate.plus(1)) } };
      }
    } else {
      const asked = toDec('quantity', request.quantity ?? '0');
      if (asked.lt(0)) throw new InvariantError('invalid_order', `invalid order quantity: ${String(request.quantity)}`, { field: 'quantity' });
      const volume = asked.toDecimalPlaces(VOLUME_DECIMALS, Decimal.ROUND_DOWN);
      if (!volume.gt(0)) {
        throw new VenueRejectedError('size_too_small', `selling ${amount(asked)} ${symbol} rounds to 0 at Upbit's ${VOLUME_DECIMALS} decimals of volume; nothing was sent`, { venue: this.name, symbol });
      }
      const base = symbol.split('/')[0]!;
      if (isLimit) {
        const price = roundToKrwTick(positiveOrderAmount('limitPrice', limit.limitPrice ?? request.price), 'sell');
        plan = { params: { market, side: 'ask', ord_type: 'limit', price: amount(price), volume: amount(volume) }, value: volume.times(price), lock: { currency: base, amount: volume } };
      } else {
        plan = { params: { market, side: 'ask', ord_type: 'market', volume: amount(volume) }, value: volume.times(reference), lock: { currency: base, amount: volume } };
      }
    }
    this.checkSize(request, plan, reference);
    return plan;
  }

  /** The minimum and the cap, on what the order is worth. */
  private checkSize(request: OrderRequest, plan: Plan, reference: Dec): void {
    const worth = `${amount(plan.value.toDecimalPlaces(2, Decimal.ROUND_DOWN))} KRW`;
    const what = plan.params.ord_type === 'market'
      ? `selling ${plan.params.volume} ${request.symbol} at the reference price ${amount(reference)} is worth ${worth}`
      : plan.params.ord_type === 'price' ? `this market buy spends ${worth}` : `this limit ${request.side} of ${plan.params.volume} at ${plan.params.price} is worth ${worth}`;
    if (plan.value.lt(this.minOrderNotional)) {
      const dust = request.side === 'sell' ? ': a holding worth less is dust and cannot be sold on Upbit' : '';
      throw new VenueRejectedError('below_minimum', `Upbit's minimum order is ${this.minOrderNotional} KRW (buys and sells alike), and ${what}${dust}; nothing was sent`, { venue: this.name, symbol: request.symbol, value: amount(plan.value), minimum: this.minOrderNotional });
    }
  }

  /** What the account has free, from `GET /v1/accounts`, against what the order locks. */
  private async checkFunds(request: OrderRequest, plan: Plan): Promise<void> {
    const rows = await this.client.accounts();
    const row = rows.find((r) => r.currency === plan.lock.currency);
    const free = toDec(`${plan.lock.currency} balance`, row?.balance ?? '0');
    if (free.gte(plan.lock.amount)) return;
    const locked = toDec(`${plan.lock.currency} locked`, row?.locked ?? '0');
    const inOrders = locked.gt(0) ? ` (${amount(locked)} more is locked in open orders)` : '';
    if (request.side === 'buy') {
      throw new VenueRejectedError('insufficient_cash', `buying ${request.symbol} for ${amount(plan.value)} KRW locks ${amount(plan.lock.amount)} KRW at Upbit (the ${amount(this.feeRate.times(100))} % fee is locked on top of a buy), but only ${amount(free)} KRW is free${inOrders}; nothing was sent`, { venue: this.name, symbol: request.symbol, needed: amount(plan.lock.amount), free: amount(free) });
    }
    throw new VenueRejectedError('insufficient_position', `selling ${amount(plan.lock.amount)} ${plan.lock.currency}, but only ${amount(free)} ${plan.lock.currency} is free at Upbit${inOrders}; nothing was sent`, { venue: this.name, symbol: request.symbol, needed: amount(plan.lock.amount), free: amount(free) });
  }

  /** Writes the next attempt durably (and forgets long-finished orders) before it is sent. */
  private async begin(request: OrderRequest, dryRun: boolean): Promise<Attempt> {
    const id = request.clientOrderId;
    const now = this.now();
    const record = this.record(id) ?? { clientOrderId: id, symbol: request.symbol, side: request.side, createdAt: now, attempts: [] };
    const n = record.attempts.reduce((max, a) => Math.max(max, a.n), 0) + 1;
    const attempt: Attempt = { n, identifier: upbitIdentifier(id, n), outcome: 'sending', sentAt: now, ...(dryRun ? { dryRun: true as const } : {}) };
    const { finalAt: _done, ...open } = record;
    const changes: Array<Change<OrderRecord>> = [{ key: recordKey(id), value: { ...open, attempts: [...record.attempts, attempt] } }, ...this.expired(id, now)];
    await this.store.commit(changes);
    if (n > 1) this.options.logger?.info('Upbit order: new attempt', { component: 'upbit', clientOrderId: id, identifier: attempt.identifier });
    return attempt;
  }

  /** Records how a send without an answer ended; returns that outcome. */
  private async sendFailed(id: string, attempt: Attempt, err: unknown, dryRun: boolean): Promise<AttemptOutcome> {
    let outcome: AttemptOutcome;
    if (err instanceof TransientError && err.code === UPBIT_TRANSIENT.rateLimited) outcome = 'not_placed';
    else if (err instanceof VenueRejectedError && err.code === 'duplicate_identifier') outcome = dryRun ? 'refused' : 'not_placed';
    else if (err instanceof VenueRejectedError || err instanceof VenueAuthError) outcome = 'refused';
    else outcome = 'unknown';
    if (dryRun && outcome !== 'refused') outcome = 'dry';
    if (outcome === 'unknown') {
      this.options.logger?.warn('Upbit order: the answer was lost; the order is looked up before anything else is sent', { component: 'upbit', clientOrderId: id, identifier: attempt.identifier, error: err instanceof Error ? err.message : String(err) });
    }
    try {
      await this.updateAttempt(id, attempt.n, { outcome, ...(outcome === 'unknown' ? { endedAt: this.now() } : {}) });
    } catch (writeErr) {
      // The attempt stays `sending`, which is looked up like an unknown one: nothing is lost.
      this.options.logger?.error('Upbit order: could not record how a send ended', { component: 'upbit', clientOrderId: id, error: writeErr instanceof Error ? writeErr.message : String(writeErr) });
    }
    return outcome;
  }

  /** Records Upbit's answer to a send and reports it. */
  private async answered(request: OrderRequest, attempt: Attempt, row: UpbitOrder, dryRun: boolean): Promise<OrderReport> {
    const id = request.clientOrderId;
    if (dryRun) {
      await this.updateAttempt(id, attempt.n, { outcome: 'dry', ...(typeof row.uuid === 'string' ? { uuid: row.uuid } : {}) }).catch((err: unknown) => {
        this.options.logger?.error('Upbit dry run: could not record the answer', { component: 'upbit', clientOrderId: id, error: err instanceof Error ? err.message : String(err) });
      });
      return this.dryReport(request, typeof row.uuid === 'string' ? row.uuid : 'upbit-test');
    }
    let report: OrderReport;
    try {
      report = reportOf(row, id);
    } catch (err) {
      // The order is at Upbit even if its answer cannot be read: it is never sent again.
      await this.updateAttempt(id, attempt.n, { outcome: 'accepted', ...(typeof row.uuid === 'string' ? { uuid: row.uuid } : {}) }).catch(() => undefined);
      throw err;
    }
    try {
      await this.updateAttempt(id, attempt.n, { outcome: 'accepted', uuid: row.uuid, last: report });
    } catch (err) {
      // Placed: the answer stands; the look-up by identifier finds the order again.
      this.options.logger?.error('Upbit order: placed, but the answer could not be recorded', { component: 'upbit', clientOrderId: id, error: err instanceof Error ? err.message : String(err) });
    }
    return report;
  }

  private dryReport(request: OrderRequest, venueOrderId: string): OrderReport {
    const at = new Date(this.now()).toISOString();
    return {
      clientOrderId: request.clientOrderId, venueOrderId, venue: this.name, symbol: request.symbol, side: request.side,
      status: 'filled', filledQuantity: '0', avgPrice: '0', fee: '0', submittedAt: at, updatedAt: at, dryRun: true,
    };
  }

  // ---- reconciliation ----------------------------------------------------------------------

  /**
   * The order of ours at Upbit under any attempt of `clientOrderId`, looked up by identifier;
   * undefined when none can be there. Throws `order_outcome_unknown` while an attempt whose answer
   * was lost may still appear.
   */
  private async reconcile(clientOrderId: string): Promise<Found | undefined> {
    const record = this.record(clientOrderId);
    if (!record) {
      // Never sent from this DATA_DIR, or forgotten after it finished: attempt 1 is asked for.
      if (!this.client.hasKeys) return undefined;
      const identifier = upbitIdentifier(clientOrderId, 1);
      const row = await this.client.orderByIdentifier(identifier);
      return row ? { report: reportOf(row, clientOrderId), identifier } : undefined;
    }
    for (const attempt of record.attempts) {
      if (!mayBeAtUpbit(attempt)) continue;
      if (attempt.last && isTerminal(attempt.last)) return { report: attempt.last, identifier: attempt.identifier };
      const row = await this.client.orderByIdentifier(attempt.identifier);
      if (row) {
        const report = reportOf(row, clientOrderId);
        await this.noteReport(clientOrderId, attempt.identifier, row.uuid, report);
        return { report, identifier: attempt.identifier };
      }
      // Upbit answered with it before: a late venue that does not show it yet.
      if (attempt.last) return { report: attempt.last, identifier: attempt.identifier };
      const since = attempt.endedAt ?? attempt.sentAt;
      if (attempt.outcome !== 'not_placed' && this.now() - since < this.graceMs) {
        throw new TransientError('order_outcome_unknown', `the answer to Upbit order ${attempt.identifier} was lost and Upbit does not show it yet; it is looked up again until ${new Date(since + this.graceMs).toISOString()}, and nothing new is sent before then`, {
          venue: this.name, clientOrderId, identifier: attempt.identifier, until: since + this.graceMs,
        });
      }
      await this.updateAttempt(clientOrderId, attempt.n, { outcome: 'absent' });
    }
    return undefined;
  }

  /** Records the latest report of the attempt carrying `identifier`. */
  private async noteReport(clientOrderId: string, identifier: string, uuid: string, report: OrderReport): Promise<void> {
    const attempt = this.record(clientOrderId)?.attempts.find((a) => a.identifier === identifier);
    if (!attempt) return;
    if (attempt.last && JSON.stringify(attempt.last) === JSON.stringify(report) && attempt.uuid === uuid) return;
    await this.updateAttempt(clientOrderId, attempt.n, { outcome: attempt.outcome === 'accepted' ? 'accepted' : 'found', uuid, last: report });
  }

  // ---- the store ---------------------------------------------------------------------------

  private record(clientOrderId: string): OrderRecord | undefined {
    return this.store.get(recordKey(clientOrderId));
  }

  /** Changes one attempt durably and works out whether the client id is final. */
  private async updateAttempt(clientOrderId: string, n: number, patch: Partial<Attempt>): Promise<void> {
    const record = this.record(clientOrderId);
    if (!record) return;
    const attempts = record.attempts.map((a) => (a.n === n ? { ...a, ...patch } : a));
    const { finalAt, ...rest } = record;
    const next: OrderRecord = { ...rest, attempts };
    if (isFinal(next)) next.finalAt = finalAt ?? this.now();
    await this.store.commit([{ key: recordKey(clientOrderId), value: next }]);
  }

}

/** Whether nothing about a client id can change: an order that ended, or no attempt that may be at Upbit. */
function isFinal(record: OrderRecord): boolean {
  if (record.attempts.some((a) => a.last !== undefined && isTerminal(a.last))) return true;
  return !record.attempts.some(mayBeAtUpbit);
}

/** Whether an attempt may have placed an order (it is looked up before another is sent). */
function mayBeAtUpbit(a: Attempt): boolean {
  return !a.dryRun && a.outcome !== 'refused' && a.outcome !== 'absent' && a.outcome !== 'dry';
}


/** Upbit's time (`2026-01-02T10:00:00+09:00`) as ISO 8601 UTC. */
function isoOf(field: string, value: unknown): string {
  const ms = typeof value === 'string' ? Date.parse(value) : Number.NaN;
  if (!Number.isFinite(ms)) throw new InvariantError('corrupt_venue_data', `Upbit sent ${field} ${JSON.stringify(value)}, not a time`, { venue: 'upbit', field });
  return new Date(ms).toISOString();
}

/** Upbit's order state and what executed, as an order status. */
function statusOf(row: UpbitOrder, executed: Dec): OrderStatus {
  switch (row.state) {
    case 'wait':
    case 'watch':
      return executed.gt(0) ? 'partially_filled' : 'open';
    case 'done':
      return 'filled';
    case 'cancel': {
      if (!executed.gt(0)) return 'cancelled';
      // A market buy spends its KRW and ends `cancel` with the rest returned: that is a fill.
      if (row.ord_type === 'price') return 'filled';
      // A market sell cut short, or a limit order cancelled after a partial fill: cancelled, with what filled.
      if (row.ord_type === 'market' && row.volume != null && executed.gte(toDec('volume', row.volume))) return 'filled';
      return 'cancelled';
    }
    default:
      throw new InvariantError('corrupt_venue_data', `Upbit sent order state ${JSON.stringify(row.state)} for ${row.uuid}`, { venue: 'upbit', field: 'state' });
  }
}

/** An Upbit order as an order report; exact amounts. Unreadable data is an `InvariantError`. */
function reportOf(row: UpbitOrder, clientOrderId: string): OrderReport {
  const field = (name: string, value: unknown): Dec => {
    try {
      return toDec(name, value);
    } catch {
      throw new InvariantError('corrupt_venue_data', `Upbit sent ${name} ${JSON.stringify(value)} for order ${String(row.uuid)}`, { venue: 'upbit', field: name });
    }
  };
  if (typeof row.uuid !== 'string' || !/^KRW-[A-Z0-9]+$/.test(String(row.market)) || (row.side !== 'bid' && row.side !== 'ask')) {
    throw new InvariantError('corrupt_venue_data', `Upbit sent an order without a uuid, a KRW market or a side: ${JSON.stringify({ uuid: row.uuid, market: row.market, side: row.side })}`, { venue: 'upbit' });
  }
  const executed = field('executed_volume', row.executed_volume ?? '0');
  const trades = row.trades ?? [];
  let funds = new Dec(0);
  let volume = new Dec(0);
  for (const t of trades) {
    funds = funds.plus(field('trade funds', t.funds));
    volume = volume.plus(field('trade volume', t.volume));
  }
  let avgPrice = new Dec(0);
  if (volume.gt(0)) avgPrice = funds.div(volume);
  else if (executed.gt(0) && row.executed_funds !== undefined) avgPrice = field('executed_funds', row.executed_funds).div(executed);
  else if (executed.gt(0)) {
    throw new InvariantError('corrupt_venue_data', `Upbit reported ${amount(executed)} executed for order ${row.uuid} without its trades or executed_funds: no price to book`, { venue: 'upbit', field: 'trades' });
  }
  const submittedAt = isoOf('created_at', row.created_at);
  const lastTrade = trades[trades.length - 1];
  return {
    clientOrderId,
    venueOrderId: row.uuid,
    venue: 'upbit',
    symbol: `${row.market.slice(4)}/KRW`,
    side: row.side === 'bid' ? 'buy' : 'sell',
    status: statusOf(row, executed),
    filledQuantity: amount(executed),
    avgPrice: amount(avgPrice.toSignificantDigits(20)),
    fee: amount(field('paid_fee', row.paid_fee ?? '0')),
    submittedAt,
    // The last execution's time (stable across look-ups), else the order's.
    updatedAt: lastTrade?.created_at ? isoOf('trade created_at', lastTrade.created_at) : submittedAt,
  };
}
