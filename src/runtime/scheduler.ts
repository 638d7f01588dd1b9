/**
 * Scans and timed jobs: `scan(symbol?)` runs the rules on current market data for the watch list
 * and makes proposals where every enabled confirmation agrees; a periodic scan
 * (SCAN_INTERVAL_MINUTES, off by default); the daily summary at the trading-day rollover in
 * TRADING_DAY_TZ. While paused, neither the periodic scan nor the summary runs.
 */
import { newSignalId } from '../proposal/ids';
import { normaliseSymbol } from '../symbols';
import { tradingDayOf } from '../portfolio/paper-portfolio';
import type { Signal } from '../proposal/types';
import type { PortfolioSource } from '../context/portfolio-snapshot';
import type { SignalRegistry } from '../journal/tracker';
import type { Logger } from '../logging';
import type { RuntimeState } from '../state';
import type { Notice } from '../notifications/notice';
import { formatAmount } from '../proposal/card-renderer';
import { describeError } from '../errors';
import { isPositive } from '../amounts';
import type { TradingLoop } from './loop';
import type { Orchestrator } from './orchestrator';

export interface ScanReport {
  scanned: string[];
  proposals: string[];
  skipped: Array<{ symbol: string; reason: string }>;
}

export interface DailySummary {
  day: string;
  equity: number;
  dailyPnl: number;
  realizedPnl: number;
  openPositions: number;
  outcomes: Record<string, number>;
}

export interface SchedulerDeps {
  loop: TradingLoop;
  orchestrator: Orchestrator;
  registry: SignalRegistry;
  portfolio: PortfolioSource;
  state: RuntimeState;
  logger: Logger;
  watchlist: string[];
  intervalMinutes: number;
  dailySummary: boolean;
  timeZone: string;
  quoteCurrency: string;
  onSummary: (notice: Notice) => void;
  now?: () => number;
}

/** The first instant after `now` that belongs to the next trading day in `timeZone`. */
export function nextRollover(now: number, timeZone: string): number {
  const today = tradingDayOf(now, timeZone);
  let lo = now;
  let hi = now + 27 * 3_600_000;
  while (tradingDayOf(hi, timeZone) === today) hi += 3_600_000;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (tradingDayOf(mid, timeZone) === today) lo = mid;
    else hi = mid;
  }
  return hi;
}

export class Scheduler {
  private readonly now: () => number;
  private scanTimer: NodeJS.Timeout | null = null;
  private summaryTimer: NodeJS.Timeout | null = null;
  private scanning = false;

  constructor(private readonly deps: SchedulerDeps) {
    this.now = deps.now ?? Date.now;
  }

  start(): void {
    if (this.deps.intervalMinutes > 0) {
      this.scanTimer = setInterval(() => {
        if (this.deps.state.paused || this.scanning) return;
        this.scan().catch((err: unknown) => this.deps.logger.error('periodic scan failed', { error: describeError(err) }));
      }, this.deps.intervalMinutes * 60_000);
      this.scanTimer.unref();
    }
    if (this.deps.dailySummary) this.armSummary();
  }

  stop(): void {
    if (this.scanTimer) clearInterval(this.scanTimer);
    if (this.summaryTimer) clearTimeout(this.summaryTimer);
    this.scanTimer = null;
    this.summaryTimer = null;
  }

  /** Scans one symbol or the whole watch list now; resolves once its proposals exist. */
  async scan(symbol?: string): Promise<ScanReport> {
    const report: ScanReport = { scanned: [], proposals: [], skipped: [] };
    const raw = symbol !== undefined ? [symbol] : this.deps.watchlist;
    if (raw.length === 0) {
      report.skipped.push({ symbol: '-', reason: 'the watch list (SCAN_WATCHLIST) is empty; give a symbol: /scan KRW-BTC' });
      return report;
    }
    if (this.deps.state.paused) {
      for (const s of raw) report.skipped.push({ symbol: s, reason: 'trading is paused' });
      return report;
    }
    this.scanning = true;
    try {
      for (const r of raw) {
        const canonical = normaliseSymbol(r);
        if (!canonical) {
          report.skipped.push({ symbol: r, reason: 'not a recognised symbol' });
          continue;
        }
        if (!canonical.endsWith(`/${this.deps.quoteCurrency}`)) {
          report.skipped.push({ symbol: canonical, reason: `not quoted in ${this.deps.quoteCurrency} (QUOTE_CURRENCY)` });
          continue;
        }
        report.scanned.push(canonical);
        const held = this.deps.portfolio.snapshot(this.now()).positions.some((p) => p.symbol === canonical && isPositive(p.quantity));
        if (held) {
          report.skipped.push({ symbol: canonical, reason: 'a position is already held' });
          continue;
        }
        const probe: Signal = { id: newSignalId(this.now()), receivedAt: new Date(this.now()).toISOString(), source: 'scan', symbol: canonical, action: 'buy', strategy: 'scan' };
        const outcome = await this.deps.loop.evaluate(probe);
        if (outcome.kind === 'none') {
          report.skipped.push({ symbol: canonical, reason: `${outcome.code}: ${outcome.reason}` });
          continue;
        }
        const agreeing = outcome.confirmations.filter((c) => c.status === 'agrees').length;
        if (outcome.confirmations.length === 0 || agreeing < outcome.confirmations.length) {
          report.skipped.push({ symbol: canonical, reason: `rules do not fire: ${agreeing} of ${outcome.confirmations.length} confirmations agree` });
          continue;
        }
        const ack = await this.deps.loop.receive({ symbol: canonical, action: 'buy', strategy: 'scan' }, 'scan', null);
        await this.deps.loop.idle();
        const rec = this.deps.registry.get(ack.signalId);
        if (rec?.proposalId) report.proposals.push(rec.proposalId);
        else report.skipped.push({ symbol: canonical, reason: rec?.reason ?? 'no proposal' });
      }
    } finally {
      this.scanning = false;
    }
    return report;
  }

  /** The summary of the trading day that ends at `end` (epoch ms, exclusive). */
  summary(end: number): DailySummary {
    const view = this.deps.portfolio.snapshot(end - 1);
    const outcomes: Record<string, number> = {};
    for (const p of this.deps.orchestrator.list({ limit: 1000 })) {
      if (tradingDayOf(Date.parse(p.createdAt), this.deps.timeZone) !== view.tradingDay) continue;
      outcomes[p.state] = (outcomes[p.state] ?? 0) + 1;
    }
    return { day: view.tradingDay, equity: view.equity, dailyPnl: view.dailyPnl, realizedPnl: view.realizedPnl, openPositions: view.positions.length, outcomes };
  }

  private armSummary(): void {
    const at = nextRollover(this.now(), this.deps.timeZone);
    this.summaryTimer = setTimeout(() => {
      try {
        if (!this.deps.state.paused) this.deps.onSummary(summaryNotice(this.summary(at), this.deps.quoteCurrency));
      } catch (err) {
        this.deps.logger.error('daily summary failed', { error: describeError(err) });
      }
      this.armSummary();
    }, Math.min(Math.max(0, at - this.now()), 2_147_483_647));
    this.summaryTimer.unref();
  }
}

/** The daily summary as a notice. */
export function summaryNotice(s: DailySummary, quote: string): Notice {
  const fmt = (n: number) => formatAmount(n);
  const outcomes = Object.entries(s.outcomes).map(([k, v]) => `${k} ${v}`).join(', ') || 'no proposals';
  return {
    kind: 'daily_summary', severity: 'info', at: new Date().toISOString(),
    title: `Daily summary ${s.day}`,
    lines: [`Proposals: ${outcomes}`],
    fields: [
      { name: 'Equity', value: `${fmt(s.equity)} ${quote}` },
      { name: 'Daily PnL', value: `${s.dailyPnl >= 0 ? '+' : ''}${fmt(s.dailyPnl)} ${quote}` },
      { name: 'Realised PnL', value: `${fmt(s.realizedPnl)} ${quote}` },
      { name: 'Open positions', value: String(s.openPositions) },
    ],
  };
}
