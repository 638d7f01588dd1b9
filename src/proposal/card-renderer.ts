/**
 * Proposal cards for Telegram (HTML parse mode): what a person needs to decide on a phone, and
 * the buttons. Pure: takes the proposal view and the time zone, returns text and a keyboard.
 */
import Decimal from 'decimal.js';
import { toDec, type Amount } from '../amounts';
import type { ProposalView } from './view';
import { priceOnApproval, type PriceRule } from './price-on-approval';

export interface InlineButton {
  text: string;
  callback_data: string;
}

export interface RenderedCard {
  text: string;
  keyboard: InlineButton[][];
}

/** Callback data of the card buttons; the proposal id travels in it (≤ 64 bytes). */
export const CALLBACK = {
  approve: (id: string) => `approve:${id}`,
  approveHalf: (id: string) => `half:${id}`,
  reject: (id: string) => `reject:${id}`,
};

export type CardAction = { action: 'approve' | 'half' | 'reject'; proposalId: string } | { action: 'liquidate'; nonce: string };

/** Parses button data; undefined for anything we did not make. */
export function parseCallbackData(data: string | undefined): CardAction | undefined {
  if (!data) return undefined;
  const m = /^(approve|half|reject):(p-\d{8}-[0-9a-f]{12})$/.exec(data);
  if (m) return { action: m[1] as 'approve' | 'half' | 'reject', proposalId: m[2]! };
  const l = /^liquidate:([0-9a-f]{8,32})$/.exec(data);
  if (l) return { action: 'liquidate', nonce: l[1]! };
  return undefined;
}

/** Escapes text for Telegram's HTML parse mode. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Telegram allows 4096 characters after entity parsing. Texts are cut before escaping (never
 * inside markup): at most 8 reasons of 240 characters and an 800-character explanation, which
 * with the fixed lines and the outcome block stays well under the limit.
 */
const MAX_REASON = 240;
const MAX_EXPLANATION = 800;

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1).trimEnd()}…`;
}

/** `1234567.891` → `1,234,567.89` (maxFraction 2); exact amounts keep every digit up to `maxFraction`. */
export function formatAmount(n: number | Amount, maxFraction = 0): string {
  if (typeof n === 'number') return n.toLocaleString('en-US', { maximumFractionDigits: maxFraction });
  let d;
  try {
    d = toDec('amount', n);
  } catch {
    return String(n);
  }
  const [int, frac] = d.toDecimalPlaces(maxFraction, Decimal.ROUND_HALF_UP).toFixed().split('.');
  const grouped = int!.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return frac !== undefined ? `${grouped}.${frac}` : grouped;
}

export function formatTime(iso: string, timeZone: string): string {
  const d = new Date(iso);
  const parts = new Intl.DateTimeFormat('en-CA', {
    // hourCycle h23, not hour12: false, which writes midnight as 24:00 in this locale.
    timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  }).formatToParts(d);
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? '';
  return `${get('year')}-${get('month')}-${get('day')} ${get('hour')}:${get('minute')}:${get('second')}`;
}

function riskLine(view: ProposalView, quote: string): string {
  const r = view.risk;
  if (!r) return 'not assessed yet';
  if (r.kind === 'allow') return 'allowed';
  if (r.kind === 'cap') return `capped to ${formatAmount(r.notional)} ${quote} (${r.code}: ${r.reason})`;
  return `${r.kind} (${r.code}: ${r.reason})`;
}

const OUTCOME_WORDS: Record<string, string> = {
  settled: '✅ Settled', rejected: '❌ Rejected', 'timed-out': '⌛ Timed out', failed: '⚠️ Failed',
  approved: '✅ Approved', executing: '⏳ Executing',
};

/** The card's line on what approving does to its price. */
function priceStandsLine(view: ProposalView, rule: PriceRule, timeZone: string): string {
  const price = priceOnApproval(view, rule);
  if (price.kind === 'exit_at_market') return 'Price on approval: an exit goes out at the fresh market price, however far it moved';
  return `Approval needs a fresh market price within ${price.maxDriftPct}% of this one; without market data this price stands until ${formatTime(price.standsUntil, timeZone)}`;
}

/** The card of a proposal: the question while it awaits approval, the outcome once decided. */
export function renderCard(view: ProposalView, opts: { timeZone: string; quoteCurrency: string; names?: Record<string, string>; priceRule?: PriceRule }): RenderedCard {
  const q = opts.quoteCurrency;
  const name = (by: string) => opts.names?.[by] ?? by;
  const base = view.symbol.split('/')[0] ?? view.symbol;
  const sideWord = view.intent === 'liquidate' ? 'LIQUIDATE' : view.side.toUpperCase();
  const lines: string[] = [];
  lines.push(`<b>${escapeHtml(sideWord)} ${escapeHtml(view.symbol)}</b>  <code>${escapeHtml(view.id)}</code>`);
  const size = view.side === 'sell' && view.quantity !== null
    ? `${formatAmount(view.quantity, 8)} ${escapeHtml(base)} (≈ ${formatAmount(view.notional)} ${escapeHtml(q)})`
    : `${formatAmount(view.notional)} ${escapeHtml(q)}`;
  lines.push(`Size: ${size}${view.requestedNotional !== view.notional ? ` (asked ${formatAmount(view.requestedNotional)})` : ''}`);
  lines.push(`Price: ${formatAmount(view.price, 8)} ${escapeHtml(q)}${view.priceSource === 'signal' ? ' ⚠️ from the signal: no fresh market data' : ''}`);
  lines.push(`Confidence: ${Math.round(view.confidence * 100)}%`);
  lines.push(`Risk: ${escapeHtml(riskLine(view, q))}`);
  if (view.reasons.length > 0) {
    lines.push('Reasons:');
    for (const r of view.reasons.slice(0, 8)) lines.push(`• ${escapeHtml(cut(r.message, MAX_REASON))}`);
    if (view.reasons.length > 8) lines.push(`• … and ${view.reasons.length - 8} more`);
  }
  if (view.explanation) lines.push(`<i>${escapeHtml(cut(view.explanation, MAX_EXPLANATION))}</i>`);
  const needed = view.requiredApprovals;
  if (needed > 1) {
    const who = view.approvals.map((a) => escapeHtml(name(a.by))).join(', ');
    lines.push(`Approvals: ${view.approvals.length}/${needed}${who ? ` (${who})` : ''}`);
  }
  lines.push(`Deadline: ${formatTime(view.deadline, opts.timeZone)} (${escapeHtml(opts.timeZone)})`);
  const awaiting = view.state === 'awaiting-approval' || view.state === 'pending';
  if (awaiting && opts.priceRule) lines.push(escapeHtml(priceStandsLine(view, opts.priceRule, opts.timeZone)));

  const text = lines.join('\n');
  if (awaiting) {
    const row: InlineButton[] = [{ text: '✅ Approve', callback_data: CALLBACK.approve(view.id) }];
    if (view.approval?.allowPartial && view.sizeFactor > 0.5) row.push({ text: 'Approve 50%', callback_data: CALLBACK.approveHalf(view.id) });
    row.push({ text: '❌ Reject', callback_data: CALLBACK.reject(view.id) });
    return { text, keyboard: [row] };
  }
  return { text: `${text}\n\n${renderOutcome(view, opts)}`, keyboard: [] };
}

/** Internal deciders in words for people. */
const DECIDERS: Record<string, string> = {
  'approval-deadline': 'the deadline (no answer in time)',
  'approval-recheck': 'the re-check at approval',
  'approval-policy': 'the approval policy',
  'risk-policy': 'the risk policy',
  'execution-router': 'the execution router',
  system: 'the system',
};

/** The outcome block: what happened, who decided, when. */
export function renderOutcome(view: ProposalView, opts: { timeZone: string; quoteCurrency: string; names?: Record<string, string> }): string {
  const name = (by: string) => opts.names?.[by] ?? DECIDERS[by] ?? by;
  const words = view.outcome?.code === 'dry_run' ? '🧪 Dry run (settled, nothing placed)' : OUTCOME_WORDS[view.state] ?? view.state;
  const lines = [`<b>${words}</b>`];
  if (view.approvals.length > 0) {
    const first = view.approvals[0]!;
    const size = view.sizeFactor < 1 ? ` at ${Math.round(view.sizeFactor * 100)}% size,` : '';
    lines.push(`Approved by ${view.approvals.map((a) => escapeHtml(name(a.by))).join(', ')}${size} at ${formatTime(view.approvals[view.approvals.length - 1]?.at ?? first.at, opts.timeZone)}`);
  }
  const o = view.outcome;
  if (o && o.code === 'dry_run') {
    // Nothing was placed: never worded as a fill.
    lines.push(`Dry run at ${escapeHtml(name(o.by))} at ${formatTime(o.at, opts.timeZone)}: nothing was placed (live trading is disarmed)`);
  } else if (o) {
    const verb = o.state === 'settled' ? 'Filled by' : o.state === 'failed' ? 'Failed at' : 'Decided by';
    lines.push(`${verb} ${escapeHtml(name(o.by))} at ${formatTime(o.at, opts.timeZone)}`);
    if (o.state !== 'settled') lines.push(`Reason: ${escapeHtml(o.reason)}`);
  } else {
    const last = view.history[view.history.length - 1];
    if (last) lines.push(`${escapeHtml(last.state)} since ${formatTime(last.at, opts.timeZone)}`);
  }
  if (view.fill) lines.push(`Filled ${formatAmount(view.fill.quantity, 8)} at ${formatAmount(view.fill.price, 8)} ${escapeHtml(opts.quoteCurrency)}, fee ${formatAmount(view.fill.fee, 2)}`);
  if (view.order?.simulatedByVenue) lines.push(`🧪 Simulated by ${escapeHtml(view.order.venue)} (the bot runs in its own dry_run mode): nothing reached an exchange`);
  return lines.join('\n');
}
