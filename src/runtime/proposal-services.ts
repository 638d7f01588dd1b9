/**
 * What the proposal machine's invoked actors do: assess (risk + approval policy), re-check at
 * approval (trading state, price drift, risk again) and execute (exactly once, through the
 * router). The machine stays pure; this file holds the I/O.
 */
import Decimal from 'decimal.js';
import { Dec, amount, isPositive, toDec } from '../amounts';
import { orderSize, type Assessment, type ExecutionResult, type ProposalContext, type Recheck } from '../../machines/proposal.machine';
import type { ReservationBook } from '../portfolio/reservations';
import { BREAKER_CODES, evaluateRisk, waivedBreakers } from '../risk/policy';
import { requiredApproval } from '../approval/policy';
import { ConflictError, InvariantError, StorageError, TransientError, VenueRejectedError, describeError } from '../errors';
import type { Amount, ApprovalLimits, OrderReport, OrderRequest, PortfolioView, RiskDecision, RiskLimits } from '../proposal/types';
import { quoteAgeMs, type MarketData } from '../context/market-snapshot';
import { quoteView } from '../context/recorded-market';
import type { QuoteView } from '../proposal/rule-engine';
import type { PortfolioSource } from '../context/portfolio-snapshot';
import type { ExecutionRouter, RoutedOrder } from '../execution/router';
import { utcDay, type TradeLog } from '../journal/trade-log';
import type { Logger } from '../logging';
import type { RuntimeState } from '../state';
import type { ProposalServices } from './orchestrator';

export interface ProposalServiceDeps {
  riskLimits: RiskLimits;
  approvalLimits: ApprovalLimits;
  maxPriceDriftPct: number;
  /** The rules' `allowAddToPosition`: whether a buy may add to a held position (checked again at approval). */
  allowAddToPosition: boolean;
  /** MARKET_DATA_MAX_AGE_SECONDS: how old a price (or an approval's re-check) may be when used. */
  maxQuoteAgeSeconds: number;
  market: MarketData;
  portfolio: PortfolioSource;
  router: ExecutionRouter;
  state: RuntimeState;
  /** LIVE_MAX_ORDER_NOTIONAL: in live mode, the largest entry or discretionary exit sent. */
  liveMaxOrderNotional?: number;
  /**
   * Live mode: the account's book, sourced from the venues. It is told when an order may be at a
   * venue and not yet booked (so a reconciliation then does not take our own fill for an outside
   * trade), books each partial fill as it comes (`order.partially_filled`, the part) and each
   * final report (what its parts left, if any) before the fill's journal record, which then
   * carries the fill's place in the book's order. The paper venue books its own fills, so
   * paper mode has none.
   */
  liveAccount?: LiveAccountHooks;
  journal: TradeLog;
  logger: Logger;
  /** Risk capacity held between the re-check and the booked fill (the orchestrator opens and closes it per proposal). */
  reservations: ReservationBook;
  /** Called when the risk policy says to liquidate everything. */
  onLiquidate: (code: string, reason: string) => void;
  now?: () => number;
}

/** One partial fill as booked: the delta since the previous part. */
export interface PartFill {
  quantity: Amount;
  price: Amount;
  fee: Amount;
}

/** What the proposal services tell a book sourced from live venues (its ordering contract). */
export interface LiveAccountHooks {
  /** Before the order is sent: it may be at the venue from now on. */
  orderStarted(clientOrderId: string, symbol: string): Promise<void>;
  /** The order never reached the venue. */
  orderAbandoned(clientOrderId: string): Promise<void>;
  /**
   * A report that is not final and filled more: books the part not booked yet; returns it and
   * its place in the book's order (null: nothing new).
   */
  bookPart(order: OrderReport): Promise<{ fill: PartFill; fillSequence: number } | null>;
  /** The parts booked for an order not final yet, oldest first (journalled again when an order is found at the venue). */
  partsBooked(clientOrderId: string): Array<{ filledQuantity: Amount; fill: PartFill; fillSequence: number }>;
  /** A final report: books its fill (what its parts left of it) once; returns the fill's place in the book's order. */
  bookFill(order: OrderReport): Promise<number | null>;
}

export function createProposalServices(deps: ProposalServiceDeps): ProposalServices {
  const now = deps.now ?? Date.now;

  async function applyBreaker(risk: RiskDecision, ctx: ProposalContext, book: PortfolioView): Promise<void> {
    if (!risk.breaker) return;
    // What an operator accepted when clearing the breakers does not trip them again (the entry
    // itself is still judged, and blocked, by the same checks).
    const waived = waivedBreakers(book, deps.riskLimits, deps.state.breakerWaiver);
    if (risk.reasons.every((r) => !BREAKER_CODES.has(r.code) || waived.has(r.code))) return;
    const code = 'code' in risk ? risk.code : 'breaker';
    const reason = 'reason' in risk ? risk.reason : 'risk breaker';
    const moved = await deps.state.setTradingState(risk.breaker, 'risk-policy', `${code}: ${reason}`);
    if (moved) {
      deps.journal.append({ type: 'risk.breaker', proposalId: ctx.id, code, reason, tradingState: risk.breaker });
      deps.logger.warn('risk breaker: trading state moved', { tradingState: risk.breaker, code, reason });
    }
    if (risk.kind === 'liquidate') deps.onLiquidate(code, reason);
  }

  const reservations = deps.reservations;
  const portfolioFor = (id: string) => reservations.applyTo(deps.portfolio.snapshot(now()), id);
  const reserve = (ctx: ProposalContext, notional: number, price: number) => reservations.reserve(ctx.id, { symbol: ctx.symbol, side: ctx.side, notional, price });
  /** The order's value at `price`, for the policies and the reservation (the order itself stays exact). */
  const valueOf = (ctx: ProposalContext, size: { notional: Amount; quantity: Amount | null }, price: number): number =>
    (ctx.side === 'buy' ? toDec('notional', size.notional) : toDec('quantity', size.quantity ?? '0').times(price)).toNumber();
  const maxQuoteAgeMs = deps.maxQuoteAgeSeconds * 1000;

  return {
    async assess(ctx) {
      // A price that only the signal vouches for never values the book.
      if (ctx.priceSource === 'market') await deps.portfolio.mark({ [ctx.symbol]: ctx.price });
      const assessed = portfolioFor(ctx.id);
      const risk = evaluateRisk({ symbol: ctx.symbol, side: ctx.side, intent: ctx.intent, notional: ctx.notional }, assessed, deps.riskLimits, deps.state.tradingState);
      await applyBreaker(risk, ctx, assessed);
      const notional = risk.kind === 'cap' ? risk.notional : ctx.notional;
      let approval = requiredApproval({ notional, confidence: ctx.confidence, intent: ctx.intent }, deps.approvalLimits);
      if (ctx.priceSource === 'signal' && approval.approvers === 0) {
        approval = {
          ...approval, approvers: 1,
          reasons: [...approval.reasons.filter((r) => r.code !== 'auto_approved'), { code: 'unverified_price', message: 'no fresh market data: the price comes from the signal, so a person must approve' }],
        };
      }
      const result: Assessment = { at: now(), risk, approval };
      return result;
    },

    async recheck(ctx) {
      // An order already at the venue (crash after sending) is followed, never re-judged.
      const existing = await deps.router.find(ctx.symbol, ctx.clientOrderId);
      if (existing) return { at: now(), ok: true, price: ctx.price, driftPct: 0, note: 'order_already_at_venue' };
      let price = ctx.price;
      let driftPct = 0;
      let note: string | undefined;
      // Reducing risk always goes out: an exit or a liquidation is re-priced, never refused for drift or staleness.
      const reducesRisk = ctx.side === 'sell';
      let fresh = false;
      let quotedAt = now();
      // What the market said, as received, goes into the one record of this re-check with its
      // verdict (not awaited: it acknowledges nothing), so a replay re-checks on the same quote.
      let seen: { observedAt: string } & ({ quote: QuoteView } | { quoteError: string }) | undefined;
      const judged = (out: Recheck): Recheck => {
        void deps.journal.append({
          type: 'proposal.recheck', proposalId: ctx.id, ...seen,
          ok: out.ok, ...(out.ok ? (out.note !== undefined ? { note: out.note } : {}) : { code: out.code }),
        });
        return out;
      };
      try {
        const quote = await deps.market.quote(ctx.symbol);
        seen = { observedAt: new Date(now()).toISOString(), quote: quoteView(quote) };
        quotedAt = now() - quoteAgeMs(quote, now());
        if (!(quoteAgeMs(quote, now()) <= maxQuoteAgeMs)) {
          throw new TransientError('stale_quote', `the latest quote of ${ctx.symbol} is from ${quote.at}, more than MARKET_DATA_MAX_AGE_SECONDS ${deps.maxQuoteAgeSeconds} old`);
        }
        price = quote.price;
        driftPct = new Decimal(quote.price).minus(ctx.price).abs().div(ctx.price).mul(100).toNumber();
        if (driftPct > deps.maxPriceDriftPct) {
          if (!reducesRisk) {
            return judged({
              at: now(), ok: false, code: 'stale_price',
              reason: `price moved ${driftPct.toFixed(2)}% (from ${ctx.price} to ${quote.price}) since the card, more than MAX_PRICE_DRIFT_PCT ${deps.maxPriceDriftPct}%`,
            });
          }
          note = `repriced: the price moved ${driftPct.toFixed(2)}% (from ${ctx.price} to ${quote.price}) since the card; an exit goes out at the fresh price`;
        }
        fresh = true;
      } catch (err) {
        // A quote too old to use is recorded as the quote it was; a failed one as its error.
        seen ??= { observedAt: new Date(now()).toISOString(), quoteError: describeError(err).message };
        // Without fresh data the drift cannot be measured: an entry's card price may stand only
        // while it is itself fresh (MARKET_DATA_MAX_AGE_SECONDS); an exit goes out at market.
        const ageMs = now() - ctx.createdAt;
        if (!reducesRisk && ageMs > maxQuoteAgeMs) {
          return judged({
            at: now(), ok: false, code: 'stale_price',
            reason: `market data unavailable at approval (${describeError(err).message}) and the card's price is ${Math.round(ageMs / 1000)} s old, more than MARKET_DATA_MAX_AGE_SECONDS ${deps.maxQuoteAgeSeconds}`,
          });
        }
        note = reducesRisk
          ? `market_data_missing: ${describeError(err).message}; an exit goes out at market with the card's price (${ctx.price}) as reference`
          : `market_data_missing: ${describeError(err).message}`;
      }
      // A failed mark (storage) is not missing market data: it fails the re-check as it is.
      if (fresh) await deps.portfolio.mark({ [ctx.symbol]: price }, { [ctx.symbol]: quotedAt });
      // From here to the reservation nothing awaits: the check and the reservation are atomic.
      const tradingState = deps.state.tradingState;
      if (tradingState === 'halted') return judged({ at: now(), ok: false, code: 'halted', reason: 'trading is halted (kill switch)' });
      if (tradingState === 'reducing' && ctx.side === 'buy') {
        return judged({ at: now(), ok: false, code: 'reducing', reason: 'trading is reducing: only exits are allowed' });
      }
      const size = orderSize(ctx);
      const notional = valueOf(ctx, size, price);
      const book = portfolioFor(ctx.id);
      // Position rules hold at approval too: another buy of this symbol may have filled, or be
      // reserved, since the card was made.
      if (ctx.side === 'buy' && !deps.allowAddToPosition && book.positions.some((p) => p.symbol === ctx.symbol && isPositive(p.quantity))) {
        return judged({ at: now(), ok: false, code: 'duplicate_position', reason: `a position in ${ctx.symbol} is already held or being bought, and adding to a position is off (allowAddToPosition)` });
      }
      const risk = evaluateRisk({ symbol: ctx.symbol, side: ctx.side, intent: ctx.intent, notional }, book, deps.riskLimits, tradingState);
      if (risk.kind === 'block' || risk.kind === 'liquidate') {
        await applyBreaker(risk, ctx, book);
        return judged({ at: now(), ok: false, code: risk.code, reason: risk.reason });
      }
      const out: Extract<Recheck, { ok: true }> = { at: now(), ok: true, price, driftPct };
      // Approved while disarmed: a dry run, also if it is armed before the order goes (the
      // snapshot keeps this, so a retry or a restart never turns it into a real order).
      if (deps.state.mode === 'live' && ctx.intent !== 'liquidate' && !deps.state.isArmed()) out.dryRun = true;
      if (risk.kind === 'cap' && ctx.side === 'buy') out.notional = risk.notional / ctx.sizeFactor;
      reserve(ctx, risk.kind === 'cap' ? risk.notional : notional, price);
      if (note) out.note = note;
      judged(out);
      await applyBreaker(risk, ctx, book);
      return out;
    },

    async execute(ctx) {
      const size = orderSize(ctx);
      const price = ctx.recheck?.price ?? ctx.price;
      reserve(ctx, valueOf(ctx, size, price), price);
      try {
        // The orchestrator runs this only once the `executing` snapshot (with the client order
        // id) is durable.
        let delay = 500;
        for (;;) {
          try {
            return await executeOnce(ctx, size, price);
          } catch (err) {
            if (!(err instanceof TransientError || err instanceof StorageError)) throw err;
            // The order's fate is unknown (the venue could not be asked, or could not record it):
            // never "failed" without the venue's word. Ask again, by client order id, until it answers.
            deps.journal.append({ type: 'order.unknown', proposalId: ctx.id, clientOrderId: ctx.clientOrderId, error: describeError(err) });
            deps.logger.error('order outcome unknown; reconciling with the venue', { proposalId: ctx.id, error: describeError(err) });
            await new Promise((resolve) => setTimeout(resolve, delay));
            delay = Math.min(delay * 2, 30_000);
          }
        }
      } finally {
        reservations.release(ctx.id);
      }
    },
  };

  /**
   * The live rules for an order about to be sent (INTERFACES, Live mode): entries and
   * discretionary exits above LIVE_MAX_ORDER_NOTIONAL are refused, and while disarmed they run
   * dry; liquidations (a breaker's or a confirmed /liquidate) go out armed or not, whatever their
   * size, because reducing risk always goes out. Returns whether the order is a dry run.
   */
  function liveRules(request: OrderRequest): boolean {
    if (deps.state.mode !== 'live' || request.intent === 'liquidate') return false;
    const notional = request.side === 'buy' ? toDec('notional', request.notional) : toDec('quantity', request.quantity ?? '0').times(toDec('price', request.price));
    const cap = deps.liveMaxOrderNotional;
    if (cap !== undefined && notional.gt(cap)) {
      throw new VenueRejectedError('live_max_order_notional', `the order is worth ${amount(notional)}, above LIVE_MAX_ORDER_NOTIONAL ${cap}; nothing was sent`, { notional: amount(notional), cap });
    }
    return !deps.state.isArmed();
  }

  async function executeOnce(ctx: ProposalContext, size: { notional: Amount; quantity: Amount | null }, price: number): Promise<ExecutionResult> {
    // Whether the order may be at the venue: found there, or its send has begun. From then on
    // its outcome is the venue's to give, never "failed" on our side.
    let mayBeAtVenue = false;
    let dryRunSent = false;
    try {
      const existing = await lookUp(ctx);
      mayBeAtVenue = existing !== undefined;
      if (existing) await journalPartsAgain(ctx, existing);
      const request = existing ? orderRequest(ctx, size, price, size.quantity) : await firstRequest(ctx, size, price);
      const dryRun = existing ? false : liveRules(request) || ctx.recheck?.dryRun === true;
      const routed = await deps.router.execute(request, {
        dryRun,
        beforeSubmit: async () => {
          await deps.journal.append({ type: 'order.intent', proposalId: ctx.id, clientOrderId: ctx.clientOrderId, request });
          // A dry run places nothing: the book has nothing to wait for.
          dryRunSent = dryRun;
          if (!dryRun) {
            mayBeAtVenue = true;
            await deps.liveAccount?.orderStarted(ctx.clientOrderId, ctx.symbol);
          }
        },
        onPlaced: (order) => deps.journal.append({ type: 'order.submitted', proposalId: ctx.id, clientOrderId: ctx.clientOrderId, order }),
        onProgress: (order) => recordPart(ctx, order),
      });
      return await recordOutcome(ctx, routed);
    } catch (err) {
      if (dryRunSent && err instanceof TransientError) {
        // A dry run has nothing at stake: an unanswered one fails rather than being retried
        // (a retry after an operator armed would place a real order).
        throw new VenueRejectedError('dry_run_failed', `the dry run got no answer (${describeError(err).message}); nothing was placed`);
      }
      if (err instanceof TransientError || err instanceof StorageError) throw err;
      if (err instanceof InvariantError) {
        // Corrupt data stops trading rather than being coerced.
        await deps.state.setTradingState('halted', 'execution-router', `${err.code}: ${err.message}`);
      }
      // A refusal (the venue's, or ours before sending) means nothing was placed.
      if (!mayBeAtVenue || err instanceof VenueRejectedError) {
        void deps.journal.append({ type: 'order.failed', proposalId: ctx.id, clientOrderId: ctx.clientOrderId, error: describeError(err) });
        await deps.liveAccount?.orderAbandoned(ctx.clientOrderId).catch((e: unknown) => deps.logger.error('live book: could not forget an abandoned order', { error: describeError(e) }));
        throw err;
      }
      // Anything else once the order may be at the venue (keys refused while following it, a
      // report that cannot be read): the outcome is unknown, and the order is followed until the
      // venue answers.
      throw new TransientError('order_outcome_unknown', `${describeError(err).message}; the order may be at the venue and is followed until it answers`, { cause: describeError(err).code });
    }
  }

  /**
   * Whether the venue already has this proposal's order. A look-up that fails says nothing about
   * the order (after a restart it may well be there): only an answer does, so any failure other
   * than corrupt data is an unknown outcome, asked again, never a reason to abandon the order.
   */
  async function lookUp(ctx: ProposalContext): Promise<OrderReport | undefined> {
    try {
      return await deps.router.find(ctx.symbol, ctx.clientOrderId);
    } catch (err) {
      if (err instanceof TransientError || err instanceof StorageError || err instanceof InvariantError) throw err;
      throw new TransientError('order_outcome_unknown', `the venue could not be asked whether the order exists (${describeError(err).message}); asking again before anything is sent`, { cause: describeError(err).code });
    }
  }

  function orderRequest(ctx: ProposalContext, size: { notional: Amount }, price: number, quantity: Amount | null): OrderRequest {
    return {
      clientOrderId: ctx.clientOrderId, symbol: ctx.symbol, side: ctx.side, intent: ctx.intent, notional: size.notional, price: amount(price),
      ...(quantity !== null ? { quantity } : {}),
    };
  }

  /**
   * Nothing was sent yet (a restart may have brought this back hours later): re-checks what may
   * have changed since the approval, before the first and only submit.
   */
  async function firstRequest(ctx: ProposalContext, size: { notional: Amount; quantity: Amount | null }, price: number): Promise<OrderRequest> {
    if (deps.state.tradingState === 'halted') throw new ConflictError('halted', 'trading was halted before the order was sent; nothing was sent');
    // An entry approved long ago (a restart hours later) is not sent on an old price; an exit is.
    if (ctx.side === 'buy' && ctx.recheck && now() - ctx.recheck.at > maxQuoteAgeMs) {
      throw new ConflictError('stale_approval', `the approval was re-checked ${Math.round((now() - ctx.recheck.at) / 1000)} s ago, more than MARKET_DATA_MAX_AGE_SECONDS ${deps.maxQuoteAgeSeconds}; nothing was sent`);
    }
    let quantity = size.quantity;
    if (ctx.side === 'sell') {
      // Never more than is held (another exit may have sold part of it), to the last place.
      const balances = await deps.router.venueFor(ctx.symbol).balances();
      const held = toDec('held quantity', balances.positions.find((p) => p.symbol === ctx.symbol)?.quantity ?? '0');
      const wanted = quantity === null ? held : Dec.min(toDec('quantity', quantity), held);
      if (!wanted.gt(0)) throw new VenueRejectedError('no_position', `nothing of ${ctx.symbol} is held any more; nothing was sent`);
      quantity = amount(wanted);
    }
    return orderRequest(ctx, size, price, quantity);
  }

  /**
   * Live mode: books a partial fill as it comes, then journals the part booked as
   * `order.partially_filled` (book first, as for `order.filled`, so the record carries its place in
   * the book's order). The paper venue fills at once and books its own fills: nothing to do.
   */
  async function recordPart(ctx: ProposalContext, report: OrderReport): Promise<void> {
    const part = await deps.liveAccount?.bookPart(report);
    if (!part) return;
    await deps.journal.append({
      type: 'order.partially_filled', proposalId: ctx.id, clientOrderId: ctx.clientOrderId,
      order: { ...report, fillSequence: part.fillSequence }, fill: { ...part.fill, at: report.updatedAt },
    });
  }

  /**
   * An order found at the venue (a restart, or a retry while following it): the parts the book
   * booked are journalled again, because a crash between booking a part and writing its line
   * would lose the line. The ledger counts each part once (by the cumulative quantity it reached).
   */
  async function journalPartsAgain(ctx: ProposalContext, found: OrderReport): Promise<void> {
    for (const part of deps.liveAccount?.partsBooked(ctx.clientOrderId) ?? []) {
      await deps.journal.append({
        type: 'order.partially_filled', proposalId: ctx.id, clientOrderId: ctx.clientOrderId, again: true,
        order: { clientOrderId: ctx.clientOrderId, venue: found.venue, symbol: found.symbol, side: found.side, status: 'partially_filled', filledQuantity: part.filledQuantity, fillSequence: part.fillSequence },
        fill: { ...part.fill },
      });
    }
  }

  /** Journals what the venue did (and in live mode books it) before the proposal is settled or failed. */
  async function recordOutcome(ctx: ProposalContext, routed: RoutedOrder): Promise<ExecutionResult> {
    // Found already filled after a restart: a previous run may have journalled the fill.
    const journalled = routed.foundFinal && routed.fill !== null
      && deps.journal.hasOrderRecord('order.filled', ctx.clientOrderId, [utcDay(routed.order.updatedAt), utcDay(now())]);
    // A dry run's record is its own type: nothing was placed, so no book and no ledger counts it.
    if (routed.order.dryRun) {
      await deps.journal.append({ type: 'order.dry_run', proposalId: ctx.id, clientOrderId: ctx.clientOrderId, order: routed.order, fill: routed.fill });
    } else if (routed.fill) {
      // Live: the book takes the fill first, so the journal carries its place in the book's order.
      const fillSequence = await deps.liveAccount?.bookFill(routed.order);
      const order = fillSequence === undefined || fillSequence === null ? routed.order : { ...routed.order, fillSequence };
      await deps.journal.append({ type: journalled ? 'order.reconciled' : 'order.filled', proposalId: ctx.id, clientOrderId: ctx.clientOrderId, order, fill: routed.fill });
    } else {
      await deps.liveAccount?.bookFill(routed.order);
      await deps.journal.append({ type: 'order.failed', proposalId: ctx.id, clientOrderId: ctx.clientOrderId, order: routed.order });
    }
    return { at: now(), order: routed.order, fill: routed.fill };
  }
}
