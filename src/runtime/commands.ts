/**
 * The command core shared by the operator API and Telegram: each command returns plain data;
 * transports only parse, authorise and render.
 */
import type { Redact } from '../redaction';
import type { PortfolioSource } from '../context/portfolio-snapshot';
import { displayNumber } from '../amounts';
import type { Amount, TradingState } from '../proposal/types';
import type { ProposalView } from '../proposal/view';
import type { RuntimeState, RuntimeStateView } from '../state';
import type { TradeLog } from '../journal/trade-log';
import type { Orchestrator } from './orchestrator';
import type { LiquidationReport, TradingLoop } from './loop';
import type { ScanReport } from './scheduler';

/** Proposals listed by `/pending` (newest first). */
const PENDING_LIMIT = 50;

/** One position as shown: `quantity` for display, `exactQuantity` to the last place; the mark and its age. */
export interface PositionReport {
  symbol: string;
  quantity: number;
  exactQuantity: Amount;
  avgPrice: number;
  marketValue: number;
  markPrice: number;
  /** ISO time of the mark (null: never marked; valued at the average price). */
  markedAt: string | null;
  markAgeSeconds: number | null;
  /** Never marked, or marked longer ago than MARKET_DATA_MAX_AGE_SECONDS: its value is not current. */
  markStale: boolean;
}

export interface PortfolioReport {
  cash: number;
  equity: number;
  positions: PositionReport[];
  /** Holdings below the venue's minimum order: valued in equity, never a position. */
  dust: Array<{ symbol: string; quantity: number; exactQuantity: Amount; marketValue: number }>;
  dailyPnl: number;
  dayStartEquity: number;
  realizedPnl: number;
  consecutiveLosses: number;
  tradingDay: string;
  quoteCurrency: string;
  /** MARKET_DATA_MAX_AGE_SECONDS: a mark older than this is stale (a console ages marks itself). */
  markMaxAgeSeconds: number;
}

export interface StatusReport extends RuntimeStateView {
  liveProposals: number;
  awaitingApproval: number;
  equity: number;
  dailyPnl: number;
  quoteCurrency: string;
}

export interface CommandDeps {
  orchestrator: Orchestrator;
  loop: TradingLoop;
  state: RuntimeState;
  portfolio: PortfolioSource;
  journal: TradeLog;
  quoteCurrency: string;
  /** MARKET_DATA_MAX_AGE_SECONDS: a mark older than this is shown as stale. */
  markMaxAgeSeconds: number;
  /** Takes configured secrets out of what people type (reasons, labels) before it is stored. */
  redact?: Redact;
  /** Runs a scan now (the scheduler's). */
  scan?: (symbol?: string) => Promise<ScanReport>;
  now?: () => number;
}

export class Commands {
  private readonly now: () => number;

  constructor(private readonly deps: CommandDeps) {
    this.now = deps.now ?? Date.now;
  }

  private clean(text: string): string {
    return this.deps.redact ? this.deps.redact(text) : text;
  }

  state(): RuntimeStateView {
    return this.deps.state.view();
  }

  status(): StatusReport {
    const live = this.deps.orchestrator.liveCount();
    const p = this.deps.portfolio.snapshot(this.now());
    return {
      ...this.deps.state.view(),
      liveProposals: live.total,
      awaitingApproval: live.awaitingApproval,
      equity: p.equity,
      dailyPnl: p.dailyPnl,
      quoteCurrency: this.deps.quoteCurrency,
    };
  }

  pending(): ProposalView[] {
    return this.deps.orchestrator.liveViews({ state: 'awaiting-approval', limit: PENDING_LIMIT });
  }

  portfolio(): PortfolioReport {
    const now = this.now();
    const p = this.deps.portfolio.snapshot(now);
    return {
      cash: p.cash,
      equity: p.equity,
      positions: p.positions.map((x) => {
        const age = x.markedAt === null ? null : Math.max(0, Math.round((now - x.markedAt) / 1000));
        return {
          symbol: x.symbol, quantity: displayNumber(x.quantity), exactQuantity: x.quantity, avgPrice: x.avgPrice, marketValue: x.marketValue,
          markPrice: x.markPrice, markedAt: x.markedAt === null ? null : new Date(x.markedAt).toISOString(), markAgeSeconds: age,
          markStale: age === null || age > this.deps.markMaxAgeSeconds,
        };
      }),
      dust: p.dust.map((d) => ({ symbol: d.symbol, quantity: displayNumber(d.quantity), exactQuantity: d.quantity, marketValue: d.marketValue })),
      dailyPnl: p.dailyPnl,
      dayStartEquity: p.dayStartEquity,
      realizedPnl: p.realizedPnl,
      consecutiveLosses: p.consecutiveLosses,
      tradingDay: p.tradingDay,
      quoteCurrency: this.deps.quoteCurrency,
      markMaxAgeSeconds: this.deps.markMaxAgeSeconds,
    };
  }

  async pause(givenBy: string): Promise<{ changed: boolean; state: RuntimeStateView }> {
    const by = this.clean(givenBy);
    const changed = await this.deps.state.pause(by);
    if (changed) this.deps.journal.append({ type: 'state.changed', change: 'paused', by });
    return { changed, state: this.deps.state.view() };
  }

  async resume(givenBy: string): Promise<{ changed: boolean; state: RuntimeStateView }> {
    const by = this.clean(givenBy);
    const changed = await this.deps.state.resume(by);
    if (changed) this.deps.journal.append({ type: 'state.changed', change: 'resumed', by });
    return { changed, state: this.deps.state.view() };
  }

  async arm(givenBy: string, minutes: number): Promise<RuntimeStateView> {
    const by = this.clean(givenBy);
    const until = await this.deps.state.arm(by, minutes);
    this.deps.journal.append({ type: 'state.changed', change: 'armed', by, until });
    return this.deps.state.view();
  }

  async disarm(givenBy: string): Promise<RuntimeStateView> {
    const by = this.clean(givenBy);
    await this.deps.state.disarm(by);
    this.deps.journal.append({ type: 'state.changed', change: 'disarmed', by });
    return this.deps.state.view();
  }

  /** An approval by the principal `by` (`label`: a shared-token caller's name, not counted). */
  approve(id: string, by: string, sizeFactor?: number, label?: string): Promise<{ view: ProposalView; counted: boolean }> {
    return this.deps.orchestrator.approve(id, by, sizeFactor, label === undefined ? undefined : this.clean(label));
  }

  reject(id: string, by: string, reason?: string, label?: string): Promise<ProposalView> {
    return this.deps.orchestrator.reject(id, by, reason === undefined ? undefined : this.clean(reason), label === undefined ? undefined : this.clean(label));
  }

  /**
   * Sets the trading state by hand: `halted` is the kill switch (nothing goes out; proposals that
   * have not reached the venue are cancelled), `reducing` allows exits only, `active` clears a
   * breaker. The operator may relax a state; breakers never do.
   */
  async setTradingState(to: TradingState, givenBy: string, givenReason: string): Promise<{ changed: boolean; cancelled: number; cancelFailed: number; state: RuntimeStateView }> {
    const by = this.clean(givenBy);
    const reason = this.clean(givenReason);
    let changed: boolean;
    if (to === 'active') {
      // Clearing by hand accepts today's loss as it stands: the breakers trip again only if it
      // gets worse, and a standing liquidation ends (nothing more is sold).
      const p = this.deps.portfolio.snapshot(this.now());
      const cleared = await this.deps.state.clearBreakers(by, reason, { tradingDay: p.tradingDay, dailyPnl: p.dailyPnl, consecutiveLosses: p.consecutiveLosses });
      changed = cleared.changed;
      void this.deps.journal.append({ type: 'state.changed', change: 'breakers_cleared', to, by, reason, accepted: { tradingDay: p.tradingDay, dailyPnl: p.dailyPnl, consecutiveLosses: p.consecutiveLosses } });
      if (cleared.liquidationEnded) void this.deps.journal.append({ type: 'state.changed', change: 'liquidation_ended', by, reason });
    } else {
      changed = await this.deps.state.setTradingState(to, by, reason, { relax: true });
      if (changed) void this.deps.journal.append({ type: 'state.changed', change: 'trading_state', to, by, reason });
    }
    // Proposals whose cancellation could not be written stay where they were; while halted
    // nothing of theirs reaches a venue (the re-check and the submit both refuse).
    const { cancelled, failed } = to === 'halted' ? await this.deps.orchestrator.cancelAll(`trading halted by ${by}: ${reason}`, by) : { cancelled: 0, failed: 0 };
    return { changed, cancelled, cancelFailed: failed, state: this.deps.state.view() };
  }

  /** Scans the watch list, or one symbol, now. */
  async scan(symbol?: string): Promise<ScanReport> {
    if (!this.deps.scan) return { scanned: [], proposals: [], skipped: [{ symbol: symbol ?? '-', reason: 'scanning is not configured' }] };
    return this.deps.scan(symbol);
  }

  /**
   * Confirmed liquidation of every position: the state moves to reducing first, and the order
   * stands until nothing is held (the risk clock retries what failed). Reports per symbol.
   */
  async liquidate(givenBy: string): Promise<{ proposals: string[] } & LiquidationReport> {
    const by = this.clean(givenBy);
    const reason = 'liquidation requested by operator';
    await this.deps.state.setTradingState('reducing', by, reason);
    await this.deps.state.orderLiquidation(by, reason);
    this.deps.journal.append({ type: 'state.changed', change: 'liquidation', by });
    const report = await this.deps.loop.liquidateAll(by, reason);
    void this.deps.journal.append({ type: 'liquidation.pass', by, reason, ...report });
    return { proposals: report.started.map((s) => s.proposalId), ...report };
  }
}
