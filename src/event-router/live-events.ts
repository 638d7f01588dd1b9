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
  status: 'received' | 'proposed' | 'dropped' | 'duplicate' | 'refused';
  proposalId?: string;
  /** Why it was dropped (or refused): a code and the words. */
  code?: string;
  reason?: string;
  duplicateOf?: string;
}

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
  journal: { onDurable(listener: (entry: JournalEntry) => void): unknown };
  proposals: { onChange(listener: (change: ProposalChange) => void): void };
  state: { onChange(listener: (change: StateChange) => void): void };
  /** What a new console starts from. */
  snapshot: {
    pending(): ProposalView[];
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
  /** Newest last. Null until the first console asks (start-up reads nothing). */
  private signals: RecentSignal[] | null = null;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly portfolioRefresh: NodeJS.Timeout;
  private portfolioPending: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly src: LiveEventSources) {
    src.journal.onDurable((entry) => this.journalRecord(entry));
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

  /** Pending proposals as the console shows them. */
  pending(): ConsoleProposal[] {
    return this.src.snapshot.pending().map((v) => consoleProposal(v, this.src.priceRule));
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
    this.send(client, 'snapshot', {
      principal,
      state: this.src.snapshot.state(),
      pending: this.pending(),
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
    if (this.signals === null) {
      this.signals = this.src.snapshot.storedSignals(RECENT_SIGNALS).reverse().map(fromRecord);
    }
    return this.signals;
  }

  private journalRecord(entry: JournalEntry): void {
    if (entry.type.startsWith('signal.')) this.signalRecord(entry);
    else if (entry.type.startsWith('order.') || entry.type === 'book.adjusted' || entry.type === 'liquidation.done' || entry.type === 'account.opened') this.portfolioChanged();
  }

  private signalRecord(entry: JournalEntry): void {
    // Before the first console asks, the registry holds what the ring would: nothing to keep.
    if (this.signals === null) return;
    let changed: RecentSignal | undefined;
    const find = (id: unknown) => this.signals!.find((s) => s.id === id);
    switch (entry.type) {
      case 'signal.received': {
        const s = entry['signal'] as Record<string, unknown> | undefined;
        changed = { ...fromSignal(s), id: String(entry.signalId), at: String(s?.['receivedAt'] ?? entry.at), source: String(s?.['source'] ?? 'unknown'), status: 'received' };
        this.signals.push(changed);
        break;
      }
      case 'signal.duplicate': {
        const first = find(entry.signalId);
        changed = { id: null, at: entry.at, source: String(entry['source'] ?? 'unknown'), status: 'duplicate', duplicateOf: String(entry.signalId), ...(first ? pick(first) : {}) };
        this.signals.push(changed);
        break;
      }
      case 'signal.proposed':
        changed = find(entry.signalId);
        if (changed) Object.assign(changed, { status: 'proposed', proposalId: String(entry['proposalId'] ?? entry.proposalId) });
        break;
      case 'signal.dropped':
        changed = find(entry.signalId);
        if (changed) Object.assign(changed, { status: 'dropped', code: String(entry['code']), reason: String(entry['reason'] ?? '') });
        break;
      case 'signal.refused':
        changed = find(entry.signalId);
        if (changed) Object.assign(changed, { status: 'refused', code: 'storage', reason: String((entry['error'] as { message?: unknown } | undefined)?.message ?? 'could not be recorded') });
        break;
      default:
        return;
    }
    if (this.signals.length > RECENT_SIGNALS) this.signals.splice(0, this.signals.length - RECENT_SIGNALS);
    if (changed) this.broadcast('signal', changed);
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

function fromSignal(s: Record<string, unknown> | undefined): Partial<RecentSignal> {
  const out: Partial<RecentSignal> = {};
  if (!s) return out;
  if (typeof s['symbol'] === 'string') out.symbol = s['symbol'];
  if (typeof s['action'] === 'string') out.action = s['action'];
  if (typeof s['price'] === 'number') out.price = s['price'];
  if (typeof s['size'] === 'number') out.size = s['size'];
  if (typeof s['confidence'] === 'number') out.confidence = s['confidence'];
  return out;
}

function pick(s: RecentSignal): Partial<RecentSignal> {
  const { symbol, action, price, size, confidence } = s;
  return JSON.parse(JSON.stringify({ symbol, action, price, size, confidence })) as Partial<RecentSignal>;
}

function fromRecord(r: SignalRecord): RecentSignal {
  const out: RecentSignal = {
    ...fromSignal(r.signal as unknown as Record<string, unknown> | undefined),
    id: r.id, at: r.receivedAt, source: r.signal?.source ?? 'unknown', status: r.status,
  };
  if (r.proposalId) out.proposalId = r.proposalId;
  if (r.status === 'dropped') {
    if (r.reason) out.code = r.reason;
    if (r.detail) out.reason = r.detail;
  }
  return out;
}
