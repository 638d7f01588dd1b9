/**
 * The console's live stream (`GET /api/events`, server-sent events read with `fetch` and the
 * bearer header): a snapshot first, then each durable change — a proposal's state or approvals,
 * a signal's fate (dropped and duplicate ones too), the trading state, the portfolio. Everything
 * sent was already durable, so nothing on the screen can be undone by a restart.
 *
 * Cost per event is one small message per connected console, whatever is stored; the recent
 * signals are a bounded ring. A console that cannot keep up is disconnected (it reconnects and
 * gets a fresh snapshot) rather than buffered without bound.
 */
import type { Response } from 'express';
import type { Logger } from '../logging';
import type { JournalEntry } from '../journal/trade-log';
import type { SignalRecord } from '../journal/tracker';
import type { ProposalChange } from '../runtime/orchestrator';
import type { PortfolioReport } from '../runtime/commands';
import type { RuntimeStateView, StateChange } from '../state';
import type { ProposalView } from '../proposal/view';
import { proposalJson, type ProposalJson } from '../proposal/view';
import { priceOnApproval, type PriceOnApproval, type PriceRule } from '../proposal/price-on-approval';
import { OverloadedError } from '../errors';

/** A proposal as the console shows it: the API's JSON and what approving does to its price. */
export type ConsoleProposal = ProposalJson & { priceOnApproval: PriceOnApproval };

export function consoleProposal(view: ProposalView, rule: PriceRule): ConsoleProposal {
  return { ...proposalJson(view), priceOnApproval: priceOnApproval(view, rule) };
}

/** One recent signal and what became of it. */
export interface RecentSignal {
  /** The signal's id; a duplicate has none of its own and names the first one in `duplicateOf`. */
  id: string | null;
  at: string;
  source: string;
  symbol?: string;
  action?: string;
  price?: number;
  size?: number;
  confidence?: number;
  status: 'received' | 'proposed' | 'dropped' | 'duplicate';
  proposalId?: string;
  /** Why it was dropped: a code and the words. */
  code?: string;
  reason?: string;
  duplicateOf?: string;
}

/** Pending proposals a console is sent, newest first; the total beside them says how many more wait. */
export const CONSOLE_PENDING_LIMIT = 500;
/** Signals kept for the console. */
export const RECENT_SIGNALS = 200;
/** Consoles connected at once; the next one is refused with 503. */
const MAX_CLIENTS = 32;
/** A console with more than this unsent is cut off (it reconnects and starts from a snapshot). */
const MAX_BUFFERED_BYTES = 1 << 20;
const HEARTBEAT_MS = 15_000;
/** Marks move without journal records (the risk clock): the portfolio is re-sent this often while someone watches. */
const PORTFOLIO_REFRESH_MS = 15_000;
/** Book changes close together are sent as one portfolio. */
const PORTFOLIO_COALESCE_MS = 250;

export interface LiveEventSources {
  /** Duplicates (which the registry does not keep) and book changes. */
  journal: { onDurable(listener: (entry: JournalEntry) => void): unknown };
  /** Signal records as recovery reads them: each is told after it is durable. */
  signals: { onChange(listener: (record: SignalRecord) => void): void };
  proposals: { onChange(listener: (change: ProposalChange) => void): void };
  state: { onChange(listener: (change: StateChange) => void): void };
  /** What a new console starts from. */
  snapshot: {
    /** Proposals awaiting approval, and how many there are in all. */
    pending(): { proposals: ProposalView[]; total: number };
    portfolio(): PortfolioReport;
    state(): RuntimeStateView;
    /** Signals recorded before this process started (read once, when the first console asks). */
    storedSignals(limit: number): SignalRecord[];
  };
  priceRule: PriceRule;
  logger: Logger;
}

interface Client {
  res: Response;
  principal: string;
}

export class LiveEvents {
  private readonly clients = new Set<Client>();
  /** Newest last: what this process saw, and once a console asked, what was stored before it. */
  private readonly signals: RecentSignal[] = [];
  /** Start-up reads nothing: the stored signals are merged in when the first console asks. */
  private seeded = false;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly portfolioRefresh: NodeJS.Timeout;
  private portfolioPending: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly src: LiveEventSources) {
    src.journal.onDurable((entry) => this.journalRecord(entry));
    src.signals.onChange((record) => this.signalRecord(record));
    src.proposals.onChange((change) => this.broadcast('proposal', consoleProposal(change.view, src.priceRule)));
    src.state.onChange(() => this.broadcast('state', src.snapshot.state()));
    this.heartbeat = setInterval(() => this.comment('heartbeat'), HEARTBEAT_MS).unref();
    this.portfolioRefresh = setInterval(() => {
      if (this.clients.size > 0) this.broadcast('portfolio', src.snapshot.portfolio());
    }, PORTFOLIO_REFRESH_MS).unref();
  }

  get connected(): number {
    return this.clients.size;
  }

  /** The newest `limit` signals, newest first. */
  recentSignals(limit: number): RecentSignal[] {
    return this.ring().slice(-limit).reverse();
  }

  /** Pending proposals as the console shows them, and how many await approval in all. */
  pending(): { proposals: ConsoleProposal[]; total: number } {
    const { proposals, total } = this.src.snapshot.pending();
    return { proposals: proposals.map((v) => consoleProposal(v, this.src.priceRule)), total };
  }

  /** Opens a stream on `res` for an authenticated principal; throws OverloadedError when full. */
  open(res: Response, principal: string): void {
    if (this.closed || this.clients.size >= MAX_CLIENTS) {
      throw new OverloadedError('too_many_consoles', `${this.clients.size} consoles are connected; close one and retry`, 5);
    }
    res.status(200);
    res.set({ 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    res.flushHeaders();
    const client: Client = { res, principal };
    this.clients.add(client);
    res.on('close', () => this.clients.delete(client));
    // Reconnect after 2 s when the connection drops (the console's own reader honours it).
    res.write('retry: 2000\n\n');
    const pending = this.pending();
    this.send(client, 'snapshot', {
      principal,
      state: this.src.snapshot.state(),
      pending: pending.proposals,
      awaitingApproval: pending.total,
      portfolio: this.src.snapshot.portfolio(),
      signals: this.recentSignals(50),
    });
  }

  close(): void {
    this.closed = true;
    clearInterval(this.heartbeat);
    clearInterval(this.portfolioRefresh);
    if (this.portfolioPending) clearTimeout(this.portfolioPending);
    for (const c of this.clients) c.res.end();
    this.clients.clear();
  }

  private ring(): RecentSignal[] {
    if (!this.seeded) {
      this.seeded = true;
      const known = new Set(this.signals.map((x) => x.id));
      this.signals.push(...this.src.snapshot.storedSignals(RECENT_SIGNALS).filter((r) => !known.has(r.id)).map(fromRecord));
      this.signals.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
      this.trim();
    }
    return this.signals;
  }

  private trim(): void {
    if (this.signals.length > RECENT_SIGNALS) this.signals.splice(0, this.signals.length - RECENT_SIGNALS);
  }

  private journalRecord(entry: JournalEntry): void {
    if (entry.type === 'signal.duplicate') this.duplicate(entry);
    else if (entry.type.startsWith('order.') || entry.type === 'book.adjusted' || entry.type === 'liquidation.done' || entry.type === 'account.opened') this.portfolioChanged();
  }

  /** A signal's registry record, new or changed: one row per signal, updated in place. */
  private signalRecord(record: SignalRecord): void {
    const row = fromRecord(record);
    const i = this.signals.findIndex((x) => x.id === row.id);
    if (i >= 0) this.signals[i] = row;
    else {
      this.signals.push(row);
      this.trim();
    }
    this.broadcast('signal', row);
  }

  /** A repeated alert: its own row, naming the first signal (the registry keeps no record of it). */
  private duplicate(entry: JournalEntry): void {
    const first = this.signals.find((x) => x.id === entry.signalId);
    const row: RecentSignal = { id: null, at: entry.at, source: String(entry['source'] ?? 'unknown'), status: 'duplicate', duplicateOf: String(entry.signalId), ...signalFields(first) };
    this.signals.push(row);
    this.trim();
    this.broadcast('signal', row);
  }

  private portfolioChanged(): void {
    if (this.portfolioPending || this.clients.size === 0) return;
    this.portfolioPending = setTimeout(() => {
      this.portfolioPending = null;
      this.broadcast('portfolio', this.src.snapshot.portfolio());
    }, PORTFOLIO_COALESCE_MS);
    this.portfolioPending.unref();
  }

  private broadcast(event: string, data: unknown): void {
    if (this.clients.size === 0) return;
    const frame = frameOf(event, data);
    for (const c of this.clients) this.write(c, frame);
  }

  private send(client: Client, event: string, data: unknown): void {
    this.write(client, frameOf(event, data));
  }

  private comment(text: string): void {
    for (const c of this.clients) this.write(c, `: ${text}\n\n`);
  }

  private write(client: Client, frame: string): void {
    if (client.res.writableLength > MAX_BUFFERED_BYTES) {
      this.src.logger.warn('a console fell behind its live stream and was disconnected', { principal: client.principal });
      this.clients.delete(client);
      client.res.destroy();
      return;
    }
    client.res.write(frame);
  }
}

function frameOf(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

type SignalFields = Pick<RecentSignal, 'symbol' | 'action' | 'price' | 'size' | 'confidence'>;

/** What a row says of the signal itself, from the signal or from the first signal's row. */
function signalFields(s: SignalFields | undefined): SignalFields {
  const out: SignalFields = {};
  if (s?.symbol !== undefined) out.symbol = s.symbol;
  if (s?.action !== undefined) out.action = s.action;
  if (s?.price !== undefined) out.price = s.price;
  if (s?.size !== undefined) out.size = s.size;
  if (s?.confidence !== undefined) out.confidence = s.confidence;
  return out;
}

function fromRecord(r: SignalRecord): RecentSignal {
  const out: RecentSignal = {
    ...signalFields(r.signal),
    id: r.id, at: r.receivedAt, source: r.signal?.source ?? 'unknown', status: r.status,
  };
  if (r.proposalId) out.proposalId = r.proposalId;
  if (r.status === 'dropped') {
    if (r.reason) out.code = r.reason;
    if (r.detail) out.reason = r.detail;
  }
  return out;
}
