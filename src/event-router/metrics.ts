/**
 * What `GET /metrics` shows, in the Prometheus text format (prom-client). Each service has its
 * own Registry (tests run several services in one process); the process metrics (CPU, memory,
 * event loop, GC) are collected once per process and shown by every service's registry.
 *
 * Most figures come from the journal's durable records (`TradeLog.onDurable`), so a count never
 * shows something a restart could undo. What never reaches the journal is counted where it
 * happens: answers at the HTTP edge (invalid bodies, refusals), failed venue and Telegram calls,
 * and how long each durable write took. Label values are bounded (codes, states, venue names):
 * never ids, symbols, people or free text.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { JournalEntry } from '../journal/trade-log';
import type { ProposalChange } from '../runtime/orchestrator';
import type { SyncKind } from '../persistence/storage-io';
import type { TelegramErrorKind } from '../notifications/telegram';

/**
 * The process metrics' registry. `collectDefaultMetrics` may be called once per registry (the
 * names clash only inside one), but every call starts collectors that are never stopped (an
 * event-loop delay monitor, a GC PerformanceObserver) and its CPU counters count from that call:
 * one set per process, shared by every service's registry, is what describes the process. (The
 * event-loop delay figures are reset by each scrape: with several services in one process, as in
 * tests, they cover the time since any of them was scraped.)
 */
let processMetrics: Registry | undefined;
function processRegistry(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics });
  }
  return processMetrics;
}

/** The sources a service's metrics follow, each a port the composition root hands over. */
export interface MetricSources {
  journal: { onDurable(listener: (entry: JournalEntry) => void): unknown };
  proposals: {
    onChange(listener: (change: ProposalChange) => void): void;
    liveCount(): { total: number; awaitingApproval: number };
  };
  storage?: { onSync(listener: (kind: SyncKind, seconds: number) => void): void };
  /** The venue a proposal's order goes to, for order records that carry no order report. */
  venueOf?: (proposalId: string) => string | undefined;
}

const OTHER = 'other';

/**
 * A label value that stays bounded: a short lower-case code (letters, `_`, `-`, `.`) as it is,
 * anything else `other`. Codes, states and venue names pass; ids, amounts, symbols and words
 * (digits, capitals, spaces, slashes) never do.
 */
export function boundedLabel(value: unknown): string {
  return typeof value === 'string' && /^[a-z][a-z_.-]{0,47}$/.test(value) ? value : OTHER;
}

/** Results an order record stands for (journal type → `result` label). */
const ORDER_RESULTS: Record<string, string> = {
  'order.submitted': 'submitted',
  'order.partially_filled': 'partially_filled',
  'order.filled': 'filled',
  'order.reconciled': 'reconciled',
  'order.dry_run': 'dry_run',
  'order.failed': 'failed',
  'order.unknown': 'unknown',
};

/** Seconds from 0.1 ms to 2.5 s: the fsync floor here is ~0.12 ms, a slow disk takes hundreds. */
const SYNC_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** Seconds a person takes, up to an hour (APPROVAL_TIMEOUT_SECONDS defaults to 300). */
const APPROVAL_BUCKETS = [1, 5, 10, 30, 60, 120, 180, 300, 600, 1800, 3600];

export class Metrics {
  /** This service's registry: its own metrics and the process metrics. */
  readonly registry: Registry;
  private readonly httpRequests: Counter<'method' | 'status'>;
  private readonly edgeSignals: Counter<'source' | 'status'>;
  private readonly transitions: Counter<'to'>;
  private readonly signalsReceived: Counter<'source'>;
  private readonly signalsDuplicate: Counter<'source'>;
  private readonly signalsDropped: Counter<'code'>;
  private readonly signalsProposed: Counter;
  private readonly proposalsCreated: Counter<'intent'>;
  private readonly proposalsFinished: Counter<'state' | 'code'>;
  private readonly approvalTimeouts: Counter;
  private readonly approvalDecisions: Counter<'decision'>;
  private readonly approvalLatency: Histogram<'decision'>;
  private readonly orders: Counter<'venue' | 'result'>;
  private readonly riskBreakers: Counter<'code'>;
  private readonly venueErrors: Counter<'venue' | 'operation' | 'category'>;
  private readonly telegramErrors: Counter<'method' | 'kind'>;
  private readonly storageSync: Histogram<'kind'>;

  constructor() {
    this.registry = Registry.merge([processRegistry()]);
    const registers = [this.registry];
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) => new Counter<L>({ name, help, labelNames, registers });
    this.httpRequests = counter('chatops_http_requests_total', 'HTTP requests answered, by method and status code.', ['method', 'status']);
    this.edgeSignals = counter('chatops_signals_total', 'Signal requests answered at the HTTP edge (webhook and POST /api/signals), by source and answer: accepted, duplicate, invalid, unauthorized, forbidden_source, rate_limited, backlog_full, storage_unavailable.', ['source', 'status']);
    this.transitions = counter('chatops_proposal_transitions_total', 'Durable proposal state changes, by the state entered.', ['to']);
    this.signalsReceived = counter('chatops_signals_received_total', 'Signals durably recorded (journal signal.received), by source.', ['source']);
    this.signalsDuplicate = counter('chatops_signals_duplicate_total', 'Signals answered as a repeat inside the dedupe window (journal signal.duplicate), by source.', ['source']);
    this.signalsDropped = counter('chatops_signals_dropped_total', 'Recorded signals that made no proposal (journal signal.dropped), by reason code.', ['code']);
    this.signalsProposed = counter('chatops_signals_proposed_total', 'Recorded signals that made a proposal (journal signal.proposed).');
    this.proposalsCreated = counter('chatops_proposals_created_total', 'Proposals created (journal proposal.created), by intent.', ['intent']);
    this.proposalsFinished = counter('chatops_proposals_finished_total', 'Proposals finished (journal proposal.finished), by final state and outcome code.', ['state', 'code']);
    this.approvalTimeouts = counter('chatops_approval_timeouts_total', 'Proposals that reached their approval deadline without a decision (finished timed-out).');
    this.approvalDecisions = counter('chatops_approval_decisions_total', 'Decisions by people on proposals (journal approval.given, approval.refused, approval.ignored for a repeat by the same principal).', ['decision']);
    this.approvalLatency = new Histogram({
      name: 'chatops_approval_latency_seconds',
      help: 'Seconds from a proposal\'s creation to the person\'s decision that ended its wait: the approval that completed it (the second one under the two-person rule) or a rejection.',
      labelNames: ['decision'], buckets: APPROVAL_BUCKETS, registers,
    });
    this.orders = counter('chatops_orders_total', 'Order records (journal order.*), by venue and result: submitted, partially_filled, filled, reconciled, dry_run, failed, unknown (an attempt whose outcome the venue could not give; each retry counts).', ['venue', 'result']);
    this.riskBreakers = counter('chatops_risk_breakers_total', 'Risk breakers fired (journal risk.breaker), by code.', ['code']);
    this.venueErrors = counter('chatops_venue_errors_total', 'Failed venue calls on the order path (look-up, submit, cancel; each failed attempt), by venue, operation and error category.', ['venue', 'operation', 'category']);
    this.telegramErrors = counter('chatops_telegram_errors_total', 'Failed Telegram Bot API calls (each failed attempt, polling included), by method and kind: refused, rate_limited, server, transport.', ['method', 'kind']);
    this.storageSync = new Histogram({
      name: 'chatops_storage_sync_seconds',
      help: 'Seconds each durable write took: datasync = one group-commit fdatasync (covering every record queued with it); replace = a whole file replaced (write, fsync, rename, folder fsync).',
      labelNames: ['kind'], buckets: SYNC_BUCKETS, registers,
    });
    // Shown at zero from the start, so a dashboard's rate() has a series before the first one.
    for (const kind of ['datasync', 'replace'] as const) this.storageSync.zero({ kind });
    for (const decision of ['approved', 'rejected'] as const) this.approvalLatency.zero({ decision });
  }

  /** Content-Type of `render()`. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric in the Prometheus text format. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  httpRequest(method: string, status: number): void {
    this.httpRequests.inc({ method: /^[A-Z]{1,16}$/.test(method) ? method : 'OTHER', status: String(status) });
  }

  /** A signal request's answer at the HTTP edge (invalid ones never reach the journal). */
  signal(source: string, status: string): void {
    this.edgeSignals.inc({ source: boundedLabel(source), status: boundedLabel(status) });
  }

  /** A failed venue call on the order path. */
  venueError(venue: string, operation: string, category: string): void {
    this.venueErrors.inc({ venue: boundedLabel(venue), operation: boundedLabel(operation), category: boundedLabel(category) });
  }

  /** A failed Telegram call. */
  telegramError(method: string, kind: TelegramErrorKind): void {
    this.telegramErrors.inc({ method: /^[a-zA-Z]{1,32}$/.test(method) ? method : OTHER, kind });
  }

  /** A durable write that succeeded, and how long it took. */
  storageSynced(kind: SyncKind, seconds: number): void {
    this.storageSync.observe({ kind }, seconds);
  }

  /** A gauge read at each scrape. */
  gauge(name: string, read: () => number, help = name): void {
    new Gauge({ name, help, registers: [this.registry], collect() { this.set(read()); } });
  }

  /**
   * Follows the service: journal records as they become durable, proposal changes (approval
   * latency needs the creation time the view carries), storage syncs, and the live and waiting
   * proposals at each scrape.
   */
  follow(sources: MetricSources): void {
    const venueOf = sources.venueOf ?? (() => undefined);
    sources.journal.onDurable((entry) => this.journalRecord(entry, venueOf));
    sources.proposals.onChange((change) => this.proposalChange(change));
    sources.storage?.onSync((kind, seconds) => this.storageSynced(kind, seconds));
    this.gauge('chatops_live_proposals', () => sources.proposals.liveCount().total, 'Proposals not yet finished (pending, awaiting approval, approved, executing).');
    this.gauge('chatops_awaiting_approval_proposals', () => sources.proposals.liveCount().awaitingApproval, 'Proposals waiting for a person\'s decision.');
  }

  /** Counts one durable journal record. */
  journalRecord(entry: JournalEntry, venueOf: (proposalId: string) => string | undefined = () => undefined): void {
    switch (entry.type) {
      case 'signal.received':
        this.signalsReceived.inc({ source: boundedLabel(field(entry['signal'], 'source')) });
        return;
      case 'signal.duplicate':
        this.signalsDuplicate.inc({ source: boundedLabel(entry['source']) });
        return;
      case 'signal.dropped':
        this.signalsDropped.inc({ code: boundedLabel(entry['code']) });
        return;
      case 'signal.proposed':
        this.signalsProposed.inc();
        return;
      case 'proposal.created':
        this.proposalsCreated.inc({ intent: boundedLabel(field(entry['draft'], 'intent')) });
        return;
      case 'proposal.finished': {
        const state = boundedLabel(entry['state']);
        this.proposalsFinished.inc({ state, code: boundedLabel(field(entry['outcome'], 'code')) });
        if (state === 'timed-out') this.approvalTimeouts.inc();
        return;
      }
      case 'approval.given':
        this.approvalDecisions.inc({ decision: 'given' });
        return;
      case 'approval.refused':
        this.approvalDecisions.inc({ decision: 'refused' });
        return;
      case 'approval.ignored':
        this.approvalDecisions.inc({ decision: 'ignored' });
        return;
      case 'risk.breaker':
        this.riskBreakers.inc({ code: boundedLabel(entry['code']) });
        return;
      default:
        break;
    }
    const result = ORDER_RESULTS[entry.type];
    // A part journalled again after a restart was counted when it was first booked.
    if (result === undefined || entry['again'] === true) return;
    const venue = field(entry['order'], 'venue') ?? (entry.proposalId ? venueOf(entry.proposalId) : undefined) ?? 'none';
    this.orders.inc({ venue: boundedLabel(venue), result });
  }

  /** Approval latency: a person's decision that took a proposal out of awaiting-approval. */
  proposalChange(change: ProposalChange): void {
    this.transitions.inc({ to: change.to });
    if (change.restored) return;
    const { view } = change;
    const decided = view.history.at(-1);
    if (view.history.at(-2)?.state !== 'awaiting-approval' || decided?.state !== change.to) return;
    let decision: 'approved' | 'rejected';
    if (change.to === 'approved') decision = 'approved';
    else if (change.to === 'rejected' && view.outcome?.code === 'refused') decision = 'rejected';
    else return;
    const seconds = (Date.parse(decided.at) - Date.parse(view.createdAt)) / 1000;
    if (Number.isFinite(seconds) && seconds >= 0) this.approvalLatency.observe({ decision }, seconds);
  }
}

/** A string field of a record's nested object, or undefined. */
function field(value: unknown, key: string): string | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const v = (value as Record<string, unknown>)[key];
  return typeof v === 'string' ? v : undefined;
}
