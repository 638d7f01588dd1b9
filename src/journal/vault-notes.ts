/**
 * The vault's notes as text: one markdown note per finished proposal and one per day, with YAML
 * front matter and `[[wiki links]]`, readable in Obsidian and any markdown vault. Pure: plain data
 * in, text out, the same text for the same data (the rebuild depends on it). Anything that came
 * from outside (a signal's strategy in the reasons, an operator's label or reason, a venue's
 * words) is escaped so that it can neither break the YAML nor make a link, a tag, an embed or HTML.
 */
import { orderSize } from '../../machines/proposal.machine';
import { Dec } from '../amounts';
import type { ProposalView } from '../proposal/view';

/** What the journal adds to a proposal's note beyond its archived view: its venue's currency and its PnL. */
export interface NoteExtras {
  /** Quote currency of the venue's account (from its `account.opened`), when the journal has it. */
  quoteCurrency?: string;
  /** A sell's or a liquidation's realised PnL: what its fill made against the position's average cost. */
  realized?: string;
  /** The round trip (flat to flat) this proposal's position made, once a sell closed it. */
  roundTrip?: RoundTrip;
}

/** A position from flat back to flat at one venue: its realised PnL and the proposals that made it. */
export interface RoundTrip {
  realized: string;
  closedAt: string;
  /** Buys that opened or added to the position, in fill order. */
  buys: string[];
  /** Sells (and liquidations) that reduced it, in fill order; the last one closed it. */
  sells: string[];
}

/** One finished proposal as its day's note lists it. */
export interface DayEntry {
  id: string;
  finishedAt: string;
  symbol: string;
  side: 'buy' | 'sell';
  intent: 'buy' | 'sell' | 'liquidate';
  state: ProposalView['state'];
  code: string;
  /** The size sent (or that would have been sent): notional × size factor, exact. */
  notional: string;
  fill: { notional: string; fee: string } | null;
  realized: string | null;
  approvals: Array<{ by: string; label?: string }>;
}

/** Folder of a day's proposal notes and file names, relative to the vault. */
export const PROPOSALS_DIR = 'proposals';
export const DAILY_DIR = 'daily';

/** Where a proposal's note lives: `proposals/YYYY-MM-DD/<id>.md` (the day it finished, UTC). */
export function proposalNotePath(day: string, id: string): string {
  return `${PROPOSALS_DIR}/${day}/${safeName(id)}.md`;
}

/** Where a day's note lives: `daily/YYYY-MM-DD.md`. */
export function dailyNotePath(day: string): string {
  return `${DAILY_DIR}/${day}.md`;
}

const FINAL: ReadonlyArray<ProposalView['state']> = ['settled', 'rejected', 'timed-out', 'failed'];

/** The note of a finished proposal, filed under `day` (the UTC day it finished). */
export function renderProposalNote(view: ProposalView, extras: NoteExtras, day: string): string {
  const size = orderSize(view);
  const venue = view.order?.venue ?? null;
  const front = {
    type: 'proposal',
    id: view.id,
    signalId: view.signalId,
    clientOrderId: view.clientOrderId,
    symbol: view.symbol,
    side: view.side,
    intent: view.intent,
    state: view.state,
    quoteCurrency: extras.quoteCurrency ?? null,
    notional: size.notional,
    quantity: size.quantity,
    proposedNotional: decimal(view.notional),
    requestedNotional: decimal(view.requestedNotional),
    price: decimal(view.price),
    priceSource: view.priceSource,
    confidence: view.confidence,
    sizeFactor: view.sizeFactor,
    createdAt: view.createdAt,
    deadline: view.deadline,
    finishedAt: view.outcome?.at ?? view.history.at(-1)?.at ?? null,
    outcome: view.outcome ? { code: view.outcome.code, by: unlinked(view.outcome.by), reason: unlinked(view.outcome.reason) } : null,
    risk: view.risk ? { verdict: view.risk.kind, code: 'code' in view.risk ? view.risk.code : null, notional: 'notional' in view.risk ? decimal(view.risk.notional) : null } : null,
    requiredApprovals: view.requiredApprovals,
    approvers: view.approvals.map((a) => ({ principal: unlinked(a.by), label: a.label === undefined ? null : unlinked(a.label), at: a.at, sizeFactor: a.sizeFactor })),
    history: view.history.map((h) => ({ state: h.state, at: h.at, by: h.by === undefined ? null : unlinked(h.by), reason: h.reason === undefined ? null : unlinked(h.reason) })),
    venue,
    order: view.order ? { venueOrderId: unlinked(view.order.venueOrderId), status: view.order.status } : null,
    fill: view.fill ? { quantity: view.fill.quantity, price: view.fill.price, fee: view.fill.fee, notional: view.fill.notional, at: view.fill.at } : null,
    pnl: pnlFront(extras),
    daily: `[[${day}]]`,
    tags: ['chatops/proposal', `chatops/${view.state}`],
  };
  const ccy = extras.quoteCurrency ? ` ${md(extras.quoteCurrency)}` : '';
  const lines = [
    frontMatter(front),
    `# ${view.intent === 'liquidate' ? 'Liquidate' : view.side === 'buy' ? 'Buy' : 'Sell'} ${md(view.symbol)}: ${view.state}`,
    '',
    `Day [[${day}]] · proposal ${md(view.id)} · signal ${md(view.signalId)} · client order ${md(view.clientOrderId)}`,
    '',
    '## Outcome',
    '',
    view.outcome ? `**${view.state}** at ${md(view.outcome.at)} by ${md(view.outcome.by)} (${md(view.outcome.code)}): ${md(view.outcome.reason)}` : `**${view.state}**`,
    '',
    `Size ${md(size.notional)}${ccy}${size.quantity !== null ? ` (quantity ${md(size.quantity)})` : ''} at ${md(decimal(view.price))}${ccy} (${view.priceSource} price), confidence ${view.confidence}.`,
    '',
    '## Explanation',
    '',
    ...quoted(view.explanation),
    '',
    '## Reasons',
    '',
    ...bullets(view.reasons.map((r) => `${md(r.code)}: ${md(r.message)}`)),
    '',
    ...riskSection(view),
    ...approvalSection(view),
    ...fillSection(view, venue, ccy),
    ...pnlSection(view, extras, ccy),
    '## History',
    '',
    '| state | at | by | reason |',
    '| --- | --- | --- | --- |',
    ...view.history.map((h) => `| ${h.state} | ${md(h.at)} | ${md(h.by ?? '')} | ${md(h.reason ?? '')} |`),
    '',
  ];
  return lines.join('\n');
}

function pnlFront(extras: NoteExtras): Record<string, unknown> | null {
  if (extras.realized === undefined && extras.roundTrip === undefined) return null;
  return {
    realized: extras.realized ?? null,
    roundTrip: extras.roundTrip ? {
      realized: extras.roundTrip.realized,
      closedAt: extras.roundTrip.closedAt,
      buys: extras.roundTrip.buys.map((id) => `[[${safeName(id)}]]`),
      sells: extras.roundTrip.sells.map((id) => `[[${safeName(id)}]]`),
    } : null,
    positionClosed: extras.roundTrip !== undefined,
  };
}

function riskSection(view: ProposalView): string[] {
  if (!view.risk) return [];
  const r = view.risk;
  const head = r.kind === 'allow' ? `**allow** ${md(decimal(r.notional))}` : r.kind === 'cap' ? `**cap** to ${md(decimal(r.notional))} (${md(r.code)}): ${md(r.reason)}` : `**${r.kind}** (${md(r.code)}): ${md(r.reason)}`;
  return ['## Risk verdict', '', head, ...(r.reasons.length > 0 ? ['', ...bullets(r.reasons.map((x) => `${md(x.code)}: ${md(x.message)}`))] : []), ''];
}

function approvalSection(view: ProposalView): string[] {
  const lines = ['## Approval', ''];
  if (view.approval) {
    const partial = view.approval.allowPartial ? 'a smaller size may be approved' : 'only the full size';
    lines.push(view.approval.approvers === 0 ? `Approved by the policy, no person needed (${partial}).` : `Needs ${view.approval.approvers} person${view.approval.approvers === 1 ? '' : 's'} (${partial}).`);
    if (view.approval.reasons.length > 0) lines.push('', ...bullets(view.approval.reasons.map((x) => `${md(x.code)}: ${md(x.message)}`)));
  } else {
    lines.push('No approval was asked for.');
  }
  lines.push('');
  if (view.approvals.length > 0) {
    lines.push(...bullets(view.approvals.map((a) => `approved by ${md(a.by)}${a.label !== undefined ? ` (${md(a.label)})` : ''} at ${md(a.at)}, size ${md(new Dec(a.sizeFactor).times(100).toFixed())}%`)), '');
  }
  return lines;
}

function fillSection(view: ProposalView, venue: string | null, ccy: string): string[] {
  if (!view.fill && !view.order) return [];
  const rows: Array<[string, string]> = [['venue', md(venue ?? '')]];
  if (view.order) rows.push(['order', `${md(view.order.venueOrderId)} (${md(view.order.status)})`]);
  if (view.order?.rejectReason) rows.push(['refused', md(view.order.rejectReason)]);
  if (view.fill) {
    rows.push(['quantity', md(view.fill.quantity)], ['price', `${md(view.fill.price)}${ccy}`], ['fee', `${md(view.fill.fee)}${ccy}`], ['notional', `${md(view.fill.notional)}${ccy}`], ['at', md(view.fill.at)]);
  }
  return ['## Fill', '', '| | |', '| --- | --- |', ...rows.map(([k, v]) => `| ${k} | ${v} |`), ''];
}

function pnlSection(view: ProposalView, extras: NoteExtras, ccy: string): string[] {
  if (!view.fill) return [];
  const lines = ['## PnL', ''];
  if (extras.realized !== undefined) lines.push(`Realised by this ${view.intent === 'liquidate' ? 'liquidation' : 'sell'}: ${md(extras.realized)}${ccy} (against the position's average cost, fees included).`);
  const trip = extras.roundTrip;
  if (trip) {
    const links = (ids: string[]) => ids.map((id) => `[[${safeName(id)}]]`).join(', ');
    lines.push(`The position was closed at ${md(trip.closedAt)}: the round trip realised ${md(trip.realized)}${ccy}.`, '', `- buys: ${links(trip.buys)}`, `- sells: ${links(trip.sells)}`);
  } else if (view.side === 'buy') {
    lines.push('The position is open: the realised PnL is added here once a sell closes it.');
  }
  lines.push('');
  return lines;
}

/** The note of one day: a summary and a link to each proposal that finished that day. */
export function renderDailyNote(day: string, entries: readonly DayEntry[], quoteCurrency?: string): string {
  const states: Record<string, number> = {};
  for (const s of FINAL) states[s] = 0;
  let fills = 0;
  let traded = new Dec(0);
  let fees = new Dec(0);
  let realized = new Dec(0);
  const approvals = new Map<string, { principal: string; label: string | null; count: number }>();
  for (const e of entries) {
    states[e.state] = (states[e.state] ?? 0) + 1;
    if (e.fill) {
      fills += 1;
      traded = traded.plus(e.fill.notional);
      fees = fees.plus(e.fill.fee);
    }
    if (e.realized !== null) realized = realized.plus(e.realized);
    for (const a of e.approvals) {
      const key = JSON.stringify([a.by, a.label ?? null]);
      const held = approvals.get(key) ?? { principal: a.by, label: a.label ?? null, count: 0 };
      held.count += 1;
      approvals.set(key, held);
    }
  }
  const byWhom = [...approvals.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
  const ccy = quoteCurrency ? ` ${md(quoteCurrency)}` : '';
  const front = {
    type: 'daily',
    day,
    quoteCurrency: quoteCurrency ?? null,
    proposals: entries.length,
    states,
    fills,
    notionalTraded: traded.toFixed(),
    fees: fees.toFixed(),
    realizedPnl: realized.toFixed(),
    approvals: byWhom.map((a) => ({ principal: unlinked(a.principal), label: a.label === null ? null : unlinked(a.label), count: a.count })),
    tags: ['chatops/daily'],
  };
  const lines = [
    frontMatter(front),
    `# ${day}`,
    '',
    '## Summary',
    '',
    `- ${entries.length} proposal${entries.length === 1 ? '' : 's'} finished: ${FINAL.map((s) => `${states[s]} ${s}`).join(', ')}`,
    `- ${fills} fill${fills === 1 ? '' : 's'}, ${md(traded.toFixed())}${ccy} traded, ${md(fees.toFixed())}${ccy} in fees`,
    `- realised PnL ${md(realized.toFixed())}${ccy}`,
    `- approvals: ${byWhom.length === 0 ? 'none' : byWhom.map((a) => `${md(a.principal)}${a.label !== null ? ` (${md(a.label)})` : ''} ${a.count}`).join(', ')}`,
    '',
    '## Proposals',
    '',
    '| finished | proposal | symbol | side | state | notional | fill | PnL | approved by |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...entries.map((e) => `| ${md(e.finishedAt.slice(11, 19))} | [[${safeName(e.id)}]] | ${md(e.symbol)} | ${e.intent === 'liquidate' ? 'liquidate' : e.side} | ${e.state} | ${md(e.notional)} | ${e.fill ? md(e.fill.notional) : ''} | ${e.realized !== null ? md(e.realized) : ''} | ${e.approvals.map((a) => md(a.label !== undefined ? `${a.by} (${a.label})` : a.by)).join(', ')} |`),
    '',
  ];
  return lines.join('\n');
}

/** A day entry for a finished proposal. */
export function dayEntry(view: ProposalView, extras: NoteExtras): DayEntry {
  return {
    id: view.id,
    finishedAt: view.outcome?.at ?? view.history.at(-1)?.at ?? view.createdAt,
    symbol: view.symbol,
    side: view.side,
    intent: view.intent,
    state: view.state,
    code: view.outcome?.code ?? '',
    notional: orderSize(view).notional,
    fill: view.fill ? { notional: view.fill.notional, fee: view.fill.fee } : null,
    realized: extras.realized ?? null,
    approvals: view.approvals.map((a) => (a.label !== undefined ? { by: a.by, label: a.label } : { by: a.by })),
  };
}

// --- YAML front matter -------------------------------------------------------------------------

type Yaml = string | number | boolean | null | Yaml[] | { [key: string]: Yaml };

/**
 * Front matter from plain data, in a small subset of YAML that any YAML parser reads the same
 * way: block mappings and sequences indented by two spaces, every string double-quoted (JSON
 * escaping, which YAML's double-quoted style shares), numbers and booleans bare, empty
 * collections as `[]` / `{}`. No free text can end a value or start a key.
 */
export function frontMatter(value: Record<string, unknown>): string {
  return ['---', ...yamlMapping(value as { [key: string]: Yaml }, 0), '---', ''].join('\n');
}

function yamlMapping(map: { [key: string]: Yaml }, indent: number): string[] {
  const pad = ' '.repeat(indent);
  const out: string[] = [];
  for (const [key, v] of Object.entries(map)) {
    if (v === undefined) continue;
    const k = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? key : yamlString(key);
    if (isBlock(v)) out.push(`${pad}${k}:`, ...yamlBlock(v, indent + 2));
    else out.push(`${pad}${k}: ${yamlScalar(v)}`);
  }
  return out;
}

function yamlBlock(v: Yaml[] | { [key: string]: Yaml }, indent: number): string[] {
  if (!Array.isArray(v)) return yamlMapping(v, indent);
  const pad = ' '.repeat(indent);
  const out: string[] = [];
  for (const item of v) {
    if (!isBlock(item)) {
      out.push(`${pad}- ${yamlScalar(item)}`);
      continue;
    }
    // The item's first line shares the dash; the rest are indented under it.
    const inner = yamlBlock(item, indent + 2);
    out.push(`${pad}- ${inner[0]!.slice(indent + 2)}`, ...inner.slice(1));
  }
  return out;
}

/** A non-empty sequence or mapping (written as a block); empty ones are written inline. */
function isBlock(v: Yaml): v is Yaml[] | { [key: string]: Yaml } {
  return v !== null && typeof v === 'object' && (Array.isArray(v) ? v.length > 0 : Object.keys(v).length > 0);
}

function yamlScalar(v: Yaml): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return '[]';
  if (typeof v === 'object') return '{}';
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : yamlString(String(v));
  return yamlString(v);
}

/**
 * A double-quoted YAML string. JSON's escaping is YAML's; on top of it every character YAML or
 * an editor may take as a line break or a byte-order mark is escaped too.
 */
export function yamlString(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\u009f\u2028\u2029\ufeff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

// --- Escaping ------------------------------------------------------------------------------------

/**
 * Text for a markdown body: on one line, with every character that markdown or Obsidian gives a
 * meaning (links `[[…]]`, embeds `![[…]]`, tags `#`, HTML `<…>`, entities `&`, emphasis, code,
 * tables `|`, comments `%%`, highlights `==`, maths `$`, footnotes `^`) escaped with a backslash.
 */
export function md(text: string): string {
  return oneLine(text).replace(/[\\`*_[\]{}<>#|!~=$%^&]/g, (c) => `\\${c}`);
}

/**
 * Free text for a front-matter value: Obsidian shows property values as text but makes a link
 * of `[[…]]` and `[…](…)` there, so bracket pairs are broken apart; YAML quoting does the rest.
 */
export function unlinked(text: string): string {
  return oneLine(text).replace(/\[(?=\[)/g, '[ ').replace(/\](?=[\]([])/g, '] ');
}

/** Control characters and line breaks become spaces: free text never starts a line of its own. */
function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return String(text).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ');
}

/** A multi-line text as a block quote, each line escaped. */
function quoted(text: string): string[] {
  const lines = String(text).split(/\r\n|\r|\n/).map((l) => md(l).trimEnd());
  while (lines.length > 0 && lines.at(-1) === '') lines.pop();
  return lines.length === 0 ? ['> (none)'] : lines.map((l) => (l === '' ? '>' : `> ${l}`));
}

function bullets(items: string[]): string[] {
  return items.length === 0 ? ['- (none)'] : items.map((i) => `- ${i}`);
}

/** A number as exact decimal text (the text JavaScript prints for it, in plain notation). */
function decimal(n: number): string {
  return Number.isFinite(n) ? new Dec(n).toFixed() : String(n);
}

/** A file name from an id: ids are `[a-z]+-YYYYMMDD-hex`, anything else is made harmless. */
export function safeName(id: string): string {
  return String(id).replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_') || '_';
}
