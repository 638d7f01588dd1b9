/**
 * Words for Telegram: command replies and notices rendered from the command core's plain data
 * (HTML parse mode, user text escaped). Pure.
 */
import type { PortfolioReport, StatusReport } from '../runtime/commands';
import type { LiquidationReport } from '../runtime/loop';
import type { ProposalView } from '../proposal/view';
import type { Notice } from '../notifications/notice';
import { escapeHtml, formatAmount, formatTime } from '../proposal/card-renderer';

export const COMMANDS: Array<{ command: string; description: string }> = [
  { command: 'help', description: 'What the bot can do' },
  { command: 'status', description: 'Mode, trading state, live proposals, equity, daily PnL' },
  { command: 'pending', description: 'Proposals waiting for approval' },
  { command: 'positions', description: 'Open positions' },
  { command: 'pnl', description: 'Equity and profit and loss' },
  { command: 'pause', description: 'Stop making new proposals' },
  { command: 'resume', description: 'Make proposals again' },
  { command: 'scan', description: 'Scan the watch list (or one symbol) now' },
  { command: 'approve', description: '/approve <id>: approve a proposal' },
  { command: 'reject', description: '/reject <id> [reason]: reject a proposal' },
  { command: 'liquidate', description: 'Sell every position (asks to confirm)' },
  { command: 'arm', description: '/arm <minutes>: let live orders go out until then' },
  { command: 'disarm', description: 'Stop live orders (approved ones run dry)' },
];

export function renderHelp(): string {
  return ['<b>chatops-trading</b>', ...COMMANDS.map((c) => `/${c.command} — ${escapeHtml(c.description)}`)].join('\n');
}

export function renderStatus(s: StatusReport): string {
  return [
    '<b>Status</b>',
    `Mode: ${s.mode}${s.armedUntil ? ` (armed until ${escapeHtml(s.armedUntil)})` : ''}`,
    `Trading state: ${s.tradingState}${s.tradingStateReason ? ` — ${escapeHtml(s.tradingStateReason)}` : ''}`,
    `Paused: ${s.paused ? 'yes' : 'no'}`,
    `Live proposals: ${s.liveProposals} (${s.awaitingApproval} awaiting approval)`,
    `Equity: ${formatAmount(s.equity)} ${s.quoteCurrency}`,
    `Daily PnL: ${signed(s.dailyPnl)} ${s.quoteCurrency}`,
  ].join('\n');
}

function signed(n: number): string {
  return `${n >= 0 ? '+' : ''}${formatAmount(n)}`;
}

export function renderPending(list: ProposalView[], timeZone: string): string {
  if (list.length === 0) return 'No proposals are waiting for approval.';
  return ['<b>Waiting for approval</b>', ...list.slice(0, 20).map((p) =>
    `• <code>${escapeHtml(p.id)}</code> ${p.side.toUpperCase()} ${escapeHtml(p.symbol)} ${formatAmount(p.notional)} — until ${formatTime(p.deadline, timeZone)}`)].join('\n');
}

export function renderPositions(p: PortfolioReport): string {
  const dust = p.dust.length === 0 ? [] : [`Dust (below the venue's minimum): ${p.dust.map((d) => `${escapeHtml(d.symbol)} ${formatAmount(d.exactQuantity, 12)}`).join(', ')}`];
  if (p.positions.length === 0) return [`No open positions. Cash: ${formatAmount(p.cash)} ${p.quoteCurrency}`, ...dust].join('\n');
  return ['<b>Positions</b>', ...p.positions.map((x) => {
    const mark = x.markStale ? ` — mark ${x.markAgeSeconds === null ? 'missing' : `${x.markAgeSeconds} s old`}` : '';
    return `• ${escapeHtml(x.symbol)}: ${formatAmount(x.exactQuantity, 12)} @ ${formatAmount(x.avgPrice, 8)} (value ${formatAmount(x.marketValue)} ${p.quoteCurrency}${mark})`;
  }),
  `Cash: ${formatAmount(p.cash)} ${p.quoteCurrency}`, ...dust].join('\n');
}

/** What a liquidation pass did, per symbol: sold, already being sold, dust left, could not start. */
export function renderLiquidation(by: string, r: LiquidationReport): string {
  const lines = [`🚨 Liquidation confirmed by ${escapeHtml(by)}.`];
  if (r.started.length + r.underWay.length + r.failed.length + r.waiting.length === 0) lines.push('Nothing to sell: no position is held.');
  for (const s of r.started) lines.push(`• ${escapeHtml(s.symbol)}: selling (<code>${escapeHtml(s.proposalId)}</code>)`);
  for (const symbol of r.underWay) lines.push(`• ${escapeHtml(symbol)}: already being sold`);
  for (const f of r.failed) lines.push(`• ${escapeHtml(f.symbol)}: <b>not started</b> (${escapeHtml(f.error)}); retried every risk check until it is sold`);
  for (const w of r.waiting) lines.push(`• ${escapeHtml(w.symbol)}: <b>waiting</b> (${escapeHtml(w.reason)}); sold once the market opens`);
  for (const d of r.dust) lines.push(`• ${escapeHtml(d.symbol)}: ${escapeHtml(d.quantity)} left as dust (below the venue's minimum order)`);
  return lines.join('\n');
}

export function renderPnl(p: PortfolioReport): string {
  return [
    '<b>PnL</b>',
    `Equity: ${formatAmount(p.equity)} ${p.quoteCurrency}`,
    `Daily PnL (${p.tradingDay}): ${signed(p.dailyPnl)} ${p.quoteCurrency} (day start ${formatAmount(p.dayStartEquity)})`,
    `Realised PnL: ${signed(p.realizedPnl)} ${p.quoteCurrency}`,
    `Consecutive losses: ${p.consecutiveLosses}`,
  ].join('\n');
}

export function renderNotice(n: Notice): string {
  const icon = n.severity === 'critical' ? '🚨' : n.severity === 'warning' ? '⚠️' : 'ℹ️';
  return [
    `${icon} <b>${escapeHtml(n.title)}</b>`,
    ...n.lines.map(escapeHtml),
    ...n.fields.map((f) => `${escapeHtml(f.name)}: ${escapeHtml(f.value)}`),
  ].join('\n');
}
