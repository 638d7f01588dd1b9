/**
 * Which proposal and state changes become notices, and the fan-out to every sink. The mapping
 * is pure; `NoticeDispatcher` only forwards.
 */
import type { ProposalChange } from '../runtime/orchestrator';
import type { StateChange } from '../state';
import type { StorageHealthChange } from '../persistence/storage-health';
import type { Notice, NoticeSink } from './notice';
import { formatAmount } from '../proposal/card-renderer';

const fmt = formatAmount;

/** The notice for a proposal change, or undefined when it is not notice-worthy. */
export function noticeForProposal(change: ProposalChange, quote: string): Notice | undefined {
  const v = change.view;
  if (change.from === change.to) return undefined;
  const at = v.outcome?.at ?? new Date().toISOString();
  const fields = [
    { name: 'Proposal', value: v.id },
    { name: 'Symbol', value: v.symbol },
    { name: 'Side', value: v.intent === 'liquidate' ? 'liquidate' : v.side },
  ];
  switch (v.state) {
    case 'settled': {
      const f = v.fill;
      if (v.order?.dryRun) {
        return {
          kind: 'fill', severity: 'info', at, proposalId: v.id,
          title: `Dry run (disarmed): ${v.side.toUpperCase()} ${v.symbol}`,
          lines: [`${v.order.venue} accepted the order and placed nothing: live trading is disarmed (/arm to send orders).`],
          fields: [...fields, { name: 'Notional', value: `${fmt(v.notional)} ${quote}` }],
        };
      }
      const simulated = v.order?.simulatedByVenue ? [`Simulated by ${v.order.venue}: the bot runs in its own dry_run mode, nothing reached an exchange.`] : [];
      return {
        kind: v.intent === 'liquidate' ? 'liquidation' : 'fill', severity: 'info', at, proposalId: v.id,
        title: `${v.intent === 'liquidate' ? 'Liquidated' : 'Filled'}${simulated.length > 0 ? ' (simulated)' : ''}: ${v.side.toUpperCase()} ${v.symbol}`,
        lines: [...(f ? [`${fmt(f.quantity, 8)} at ${fmt(f.price, 8)} ${quote} (fee ${fmt(f.fee, 2)})`] : []), ...simulated],
        fields: [...fields, { name: 'Notional', value: `${fmt(f?.notional ?? v.notional)} ${quote}` }],
      };
    }
    case 'failed':
      return {
        kind: 'failure', severity: 'warning', at, proposalId: v.id,
        title: `Order failed: ${v.side.toUpperCase()} ${v.symbol}`,
        lines: [v.outcome ? `${v.outcome.code}: ${v.outcome.reason}` : 'the order could not be placed'],
        fields,
      };
    case 'timed-out':
      return {
        kind: 'timeout', severity: 'info', at, proposalId: v.id,
        title: `Timed out: ${v.side.toUpperCase()} ${v.symbol}`,
        lines: ['no decision before the deadline; rejected automatically'],
        fields,
      };
    case 'rejected':
      if (v.outcome?.by === 'risk-policy') {
        return {
          kind: 'risk_block', severity: 'warning', at, proposalId: v.id,
          title: `Blocked by risk policy: ${v.side.toUpperCase()} ${v.symbol}`,
          lines: [`${v.outcome.code}: ${v.outcome.reason}`], fields,
        };
      }
      if (v.outcome?.by === 'approval-recheck') {
        return {
          kind: 'rejection', severity: 'warning', at, proposalId: v.id,
          title: `Rejected at approval: ${v.side.toUpperCase()} ${v.symbol}`,
          lines: [`${v.outcome.code}: ${v.outcome.reason}`], fields,
        };
      }
      return undefined;
    default:
      return undefined;
  }
}

/** The notice for a runtime state change (breakers, kill switch, pause). */
export function noticeForState(change: StateChange, at: string): Notice | undefined {
  if (change.kind === 'trading_state') {
    return {
      kind: 'breaker', severity: change.to === 'halted' ? 'critical' : 'warning', at,
      title: `Trading state: ${change.from} → ${change.to}`,
      lines: [change.reason], fields: [{ name: 'By', value: change.by }],
    };
  }
  if (change.kind === 'paused' || change.kind === 'resumed') {
    return { kind: 'state', severity: 'info', at, title: change.kind === 'paused' ? 'Trading paused' : 'Trading resumed', lines: [], fields: [{ name: 'By', value: change.by }] };
  }
  if (change.kind === 'liquidation_ordered' || change.kind === 'liquidation_done') {
    return {
      kind: 'liquidation', severity: change.kind === 'liquidation_ordered' ? 'critical' : 'info', at,
      title: change.kind === 'liquidation_ordered' ? 'Liquidation ordered: every position is being sold' : 'Liquidation finished',
      lines: [change.reason], fields: [{ name: 'By', value: change.by }],
    };
  }
  return undefined;
}

/** The alert when DATA_DIR stops (or starts again) taking writes. */
export function noticeForStorage(change: StorageHealthChange): Notice {
  if (change.kind === 'unavailable') {
    return {
      kind: 'storage', severity: 'critical', at: change.at,
      title: 'Storage unavailable: nothing new is accepted',
      lines: [
        `${change.cause} writing ${change.file}.`,
        'Webhooks, signals and decisions answer 503 storage_unavailable; what was acknowledged before is kept. Service resumes by itself once DATA_DIR can be written (free space, remount read-write).',
      ],
      fields: [],
    };
  }
  return {
    kind: 'storage', severity: 'info', at: change.at, title: 'Storage available again',
    lines: [`DATA_DIR takes writes again after ${change.downSeconds} s; stopped proposals resume.`], fields: [],
  };
}

/** Venue decisions a person must look at: an order no poll can settle, an entry above its approved stake. */
const DECISIONS_FOR_A_PERSON = new Set(['ambiguous', 'entry_overspent']);

/**
 * The critical notice for a venue's decision about an order (`onDecision` of an adapter) that a
 * person must settle; undefined for the decisions the journal alone keeps.
 */
export function noticeForVenueDecision(venue: string, record: Record<string, unknown>, at: string): Notice | undefined {
  const decision = String(record['decision'] ?? '');
  if (!DECISIONS_FOR_A_PERSON.has(decision)) return undefined;
  const words = record['message'] ?? record['detail'];
  return {
    kind: 'venue', severity: 'critical', at, title: `${venue}: ${decision.replace(/_/g, ' ')}`,
    lines: typeof words === 'string' ? [words] : [],
    fields: typeof record['clientOrderId'] === 'string' ? [{ name: 'Order', value: record['clientOrderId'] }] : [],
  };
}

/** Sends every notice to every sink. */
export class NoticeDispatcher {
  private readonly sinks: NoticeSink[] = [];

  add(sink: NoticeSink): void {
    this.sinks.push(sink);
  }

  notify(notice: Notice): void {
    for (const s of this.sinks) s.notify(notice);
  }

  async close(): Promise<void> {
    await Promise.all(this.sinks.map((s) => s.close?.()));
  }
}
