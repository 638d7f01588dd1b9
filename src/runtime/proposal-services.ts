/**
 * What the proposal machine's invoked actors do: assess (risk + approval policy), re-check at
 * approval (trading state, price drift, risk again) and execute (exactly once, through the
 * router). The machine stays pure; this file holds the I/O.
 */
import Decimal from 'decimal.js';
import { orderSize, type Assessment, type ExecutionResult, type ProposalContext, type Recheck } from '../../machines/proposal.machine';
import { evaluateRisk } from '../risk/policy';
import { requiredApproval } from '../approval/policy';
import { InvariantError, describeError } from '../errors';
import type { ApprovalLimits, OrderRequest, RiskDecision, RiskLimits } from '../proposal/types';
import type { MarketData } from '../context/market-snapshot';
import type { PortfolioSource } from '../context/portfolio-snapshot';
import type { ExecutionRouter } from '../execution/router';
import { utcDay, type TradeLog } from '../journal/trade-log';
import type { Logger } from '../logging';
import type { RuntimeState } from '../state';
import type { Orchestrator, ProposalServices } from './orchestrator';

export interface ProposalServiceDeps {
  riskLimits: RiskLimits;
  approvalLimits: ApprovalLimits;
  maxPriceDriftPct: number;
  market: MarketData;
  portfolio: PortfolioSource;
  router: ExecutionRouter;
  state: RuntimeState;
  journal: TradeLog;
  logger: Logger;
  orchestrator: Orchestrator;
  /** Called when the risk policy says to liquidate everything. */
  onLiquidate: (code: string, reason: string) => void;
  now?: () => number;
}

export function createProposalServices(deps: ProposalServiceDeps): ProposalServices {
  const now = deps.now ?? Date.now;

  async function applyBreaker(risk: RiskDecision, ctx: ProposalContext): Promise<void> {
    if (!risk.breaker) return;
    const code = 'code' in risk ? risk.code : 'breaker';
    const reason = 'reason' in risk ? risk.reason : 'risk breaker';
    const moved = await deps.state.setTradingState(risk.breaker, 'risk-policy', `${code}: ${reason}`);
    if (moved) {
      deps.journal.append({ type: 'risk.breaker', proposalId: ctx.id, code, reason, tradingState: risk.breaker });
      deps.logger.warn('risk breaker: trading state moved', { tradingState: risk.breaker, code, reason });
    }
    if (risk.kind === 'liquidate') deps.onLiquidate(code, reason);
  }

  return {
    async assess(ctx) {
      await deps.portfolio.mark({ [ctx.symbol]: ctx.price });
      const portfolio = deps.portfolio.snapshot(now());
      const risk = evaluateRisk({ symbol: ctx.symbol, side: ctx.side, intent: ctx.intent, notional: ctx.notional }, portfolio, deps.riskLimits, deps.state.tradingState);
      await applyBreaker(risk, ctx);
      const notional = risk.kind === 'cap' ? risk.notional : ctx.notional;
      const approval = requiredApproval({ notional, confidence: ctx.confidence, intent: ctx.intent }, deps.approvalLimits);
      const result: Assessment = { at: now(), risk, approval };
      return result;
    },

    async recheck(ctx) {
      // An order already at the venue (crash after sending) is followed, never re-judged.
      const existing = await deps.router.find(ctx.clientOrderId);
      if (existing) return { at: now(), ok: true, price: ctx.price, driftPct: 0, note: 'order_already_at_venue' };
      const tradingState = deps.state.tradingState;
      if (tradingState === 'halted') return { at: now(), ok: false, code: 'halted', reason: 'trading is halted (kill switch)' };
      if (tradingState === 'reducing' && ctx.side === 'buy') {
        return { at: now(), ok: false, code: 'reducing', reason: 'trading is reducing: only exits are allowed' };
      }
      let price = ctx.price;
      let driftPct = 0;
      let note: string | undefined;
      try {
        const quote = await deps.market.quote(ctx.symbol);
        price = quote.price;
        driftPct = new Decimal(quote.price).minus(ctx.price).abs().div(ctx.price).mul(100).toNumber();
        if (driftPct > deps.maxPriceDriftPct) {
          return {
            at: now(), ok: false, code: 'stale_price',
            reason: `price moved ${driftPct.toFixed(2)}% (from ${ctx.price} to ${quote.price}) since the card, more than MAX_PRICE_DRIFT_PCT ${deps.maxPriceDriftPct}%`,
          };
        }
      } catch (err) {
        // Without fresh data the drift cannot be measured; the card price stands, and says so.
        note = `market_data_missing: ${describeError(err).message}`;
      }
      await deps.portfolio.mark({ [ctx.symbol]: price });
      const size = orderSize(ctx);
      const notional = ctx.side === 'buy' ? size.notional : (size.quantity ?? 0) * price;
      const risk = evaluateRisk({ symbol: ctx.symbol, side: ctx.side, intent: ctx.intent, notional }, deps.portfolio.snapshot(now()), deps.riskLimits, deps.state.tradingState);
      await applyBreaker(risk, ctx);
      if (risk.kind === 'block' || risk.kind === 'liquidate') return { at: now(), ok: false, code: risk.code, reason: risk.reason };
      const out: Extract<Recheck, { ok: true }> = { at: now(), ok: true, price, driftPct };
      if (risk.kind === 'cap' && ctx.side === 'buy') out.notional = risk.notional / ctx.sizeFactor;
      if (note) out.note = note;
      return out;
    },

    async execute(ctx) {
      // The `executing` snapshot (with the client order id) is on disk before anything is sent.
      await new Promise((resolve) => setImmediate(resolve));
      await deps.orchestrator.persistNow(ctx.id);
      const size = orderSize(ctx);
      const price = ctx.recheck?.price ?? ctx.price;
      let quantity = size.quantity;
      if (ctx.side === 'sell') {
        const balances = await deps.router.venue.balances();
        const held = balances.positions.find((p) => p.symbol === ctx.symbol)?.quantity ?? 0;
        quantity = Math.min(quantity ?? held, held);
      }
      const request: OrderRequest = {
        clientOrderId: ctx.clientOrderId, symbol: ctx.symbol, side: ctx.side, intent: ctx.intent, notional: size.notional, price,
        ...(quantity !== null ? { quantity } : {}),
      };
      try {
        const routed = await deps.router.execute(request, {
          beforeSubmit: () => deps.journal.append({ type: 'order.intent', proposalId: ctx.id, clientOrderId: ctx.clientOrderId, request }),
          onPlaced: (order) => deps.journal.append({ type: 'order.submitted', proposalId: ctx.id, clientOrderId: ctx.clientOrderId, order }),
        });
        // Found already filled after a restart: a previous run may have journalled the fill.
        const journalled = routed.foundFinal && routed.fill !== null
          && deps.journal.hasOrderRecord('order.filled', ctx.clientOrderId, [utcDay(routed.order.updatedAt), utcDay(now())]);
        if (routed.fill) {
          deps.journal.append({ type: journalled ? 'order.reconciled' : 'order.filled', proposalId: ctx.id, clientOrderId: ctx.clientOrderId, order: routed.order, fill: routed.fill });
        } else deps.journal.append({ type: 'order.failed', proposalId: ctx.id, clientOrderId: ctx.clientOrderId, order: routed.order });
        const result: ExecutionResult = { at: now(), order: routed.order, fill: routed.fill };
        return result;
      } catch (err) {
        deps.journal.append({ type: 'order.failed', proposalId: ctx.id, clientOrderId: ctx.clientOrderId, error: describeError(err) });
        if (err instanceof InvariantError) {
          // Corrupt data stops trading rather than being coerced.
          await deps.state.setTradingState('halted', 'execution-router', `${err.code}: ${err.message}`);
        }
        throw err;
      }
    },
  };
}
