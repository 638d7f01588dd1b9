/**
 * The command core shared by the operator API and Telegram: each command returns plain data;
 * transports only parse, authorise and render.
 */
import type { PortfolioSource } from '../context/portfolio-snapshot';
import type { TradingState } from '../proposal/types';
import type { ProposalView } from '../proposal/view';
import type { RuntimeState, RuntimeStateView } from '../state';
import type { TradeLog } from '../journal/trade-log';
import type { Orchestrator } from './orchestrator';
import type { TradingLoop } from './loop';
import type { ScanReport } from './scheduler';

/** Proposals listed by `/pending` (newest first). */
const PENDING_LIMIT = 50;

export interface PortfolioReport {
  cash: number;
  equity: number;
  positions: Array<{ symbol: string; quantity: number; avgPrice: number; marketValue: number }>;
  dailyPnl: number;
  dayStartEquity: number;
  realizedPnl: number;
  consecutiveLosses: number;
  tradingDay: string;
  quoteCurrency: string;
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
  /** Runs a scan now (the scheduler's). */
  scan?: (symbol?: string) => Promise<ScanReport>;
  now?: () => number;
}

export class Commands {
  private readonly now: () => number;

  constructor(private readonly deps: CommandDeps) {
    this.now = deps.now ?? Date.now;
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
    const p = this.deps.portfolio.snapshot(this.now());
    return {
      cash: p.cash,
      equity: p.equity,
      positions: p.positions.map((x) => ({ symbol: x.symbol, quantity: x.quantity, avgPrice: x.avgPrice, marketValue: x.marketValue })),
      dailyPnl: p.dailyPnl,
      dayStartEquity: p.dayStartEquity,
      realizedPnl: p.realizedPnl,
      consecutiveLosses: p.consecutiveLosses,
      tradingDay: p.tradingDay,
      quoteCurrency: this.deps.quoteCurrency,
    };
  }

  async pause(by: string): Promise<{ changed: boolean; state: RuntimeStateView }> {
    const changed = await this.deps.state.pause(by);
    if (changed) this.deps.journal.append({ type: 'state.changed', change: 'paused', by });
    return { changed, state: this.deps.state.view() };
  }

  async resume(by: string): Promise<{ changed: boolean; state: RuntimeStateView }> {
    const changed = await this.deps.state.resume(by);
    if (changed) this.deps.journal.append({ type: 'state.changed', change: 'resumed', by });
    return { changed, state: this.deps.state.view() };
  }

  async arm(by: string, minutes: number): Promise<RuntimeStateView> {
    const until = await this.deps.state.arm(by, minutes);
    this.deps.journal.append({ type: 'state.changed', change: 'armed', by, until });
    return this.deps.state.view();
  }

  async disarm(by: string): Promise<RuntimeStateView> {
    await this.deps.state.disarm(by);
    this.deps.journal.append({ type: 'state.changed', change: 'disarmed', by });
    return this.deps.state.view();
  }

  approve(id: string, by: string, sizeFactor?: number): Promise<{ view: ProposalView; counted: boolean }> {
    return this.deps.orchestrator.approve(id, by, sizeFactor);
  }

  reject(id: string, by: string, reason?: string): Promise<ProposalView> {
    return this.deps.orchestrator.reject(id, by, reason);
  }

  /**
   * Sets the trading state by hand: `halted` is the kill switch (nothing goes out; proposals that
   * have not reached the venue are cancelled), `reducing` allows exits only, `active` clears a
   * breaker. The operator may relax a state; breakers never do.
   */
  async setTradingState(to: TradingState, by: string, reason: string): Promise<{ changed: boolean; cancelled: number; cancelFailed: number; state: RuntimeStateView }> {
    const changed = await this.deps.state.setTradingState(to, by, reason, { relax: true });
    if (changed) void this.deps.journal.append({ type: 'state.changed', change: 'trading_state', to, by, reason });
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

  /** Confirmed liquidation of every position: the state moves to reducing first. */
  async liquidate(by: string): Promise<{ proposals: string[] }> {
    await this.deps.state.setTradingState('reducing', by, 'liquidation requested by operator');
    this.deps.journal.append({ type: 'state.changed', change: 'liquidation', by });
    const proposals = await this.deps.loop.liquidateAll(by, 'liquidation requested by operator');
    return { proposals };
  }
}
