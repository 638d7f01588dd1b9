import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { Metrics, boundedLabel, type MetricSources } from '../../src/event-router/metrics';
import { TradeLog } from '../../src/journal/trade-log';
import { StorageHealth } from '../../src/persistence/storage-health';
import type { ProposalChange } from '../../src/runtime/orchestrator';
import type { ProposalView } from '../../src/proposal/view';
import { FaultyIo } from '../fakes/faulty-io';
import { parsePrometheus, series, valueOf, type Sample } from '../support/prometheus';

/** A hand-written stand-in for the orchestrator's two metric ports. */
type ProposalPorts = MetricSources['proposals'];
class FakeProposals implements ProposalPorts {
  live = { total: 0, awaitingApproval: 0 };
  private readonly listeners: Array<(change: ProposalChange) => void> = [];
  onChange(listener: (change: ProposalChange) => void): void {
    this.listeners.push(listener);
  }
  liveCount(): { total: number; awaitingApproval: number } {
    return this.live;
  }
  emit(change: ProposalChange): void {
    for (const l of this.listeners) l(change);
  }
}

const T0 = Date.parse('2026-11-26T00:00:00.000Z');
const iso = (ms: number) => new Date(T0 + ms).toISOString();

/** A proposal change whose view carries only what the metrics read. */
function change(to: ProposalView['state'], history: Array<[ProposalView['state'], number, string?]>, opts: { code?: string; restored?: boolean } = {}): ProposalChange {
  const view = {
    id: 'p-1', createdAt: iso(0), state: to,
    history: history.map(([state, at, by]) => ({ state, at: iso(at), ...(by ? { by } : {}) })),
    outcome: opts.code ? { state: to, at: iso(history.at(-1)![1]), by: 'x', code: opts.code, reason: '' } : null,
  } as unknown as ProposalView;
  return { view, from: history.at(-2)?.[0] ?? null, to, restored: opts.restored ?? false };
}

describe('Metrics', () => {
  let dir: string;
  let health: StorageHealth;
  let io: FaultyIo;
  let journal: TradeLog;
  let proposals: FakeProposals;
  let metrics: Metrics;

  const scrape = async (m = metrics): Promise<Sample[]> => parsePrometheus(await m.render());

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatops-metrics-'));
    health = new StorageHealth(dir, { probeIntervalMs: 60_000 });
    io = new FaultyIo(health);
    journal = new TradeLog(io, path.join(dir, 'journal'));
    proposals = new FakeProposals();
    metrics = new Metrics();
    metrics.follow({ journal, proposals, storage: health, venueOf: (id) => (id === 'p-krx' ? 'kis' : undefined) });
  });

  afterEach(async () => {
    await journal.close();
    health.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('counts signals, proposals and orders from journal records once they are durable', async () => {
    await journal.append({ type: 'signal.received', signalId: 's-1', signal: { source: 'tradingview', symbol: 'BTC/KRW' } });
    await journal.append({ type: 'signal.received', signalId: 's-2', signal: { source: 'api', symbol: 'BTC/KRW' } });
    await journal.append({ type: 'signal.duplicate', signalId: 's-1', source: 'tradingview', key: 'k' });
    await journal.append({ type: 'signal.dropped', signalId: 's-2', code: 'paused', reason: 'trading is paused' });
    await journal.append({ type: 'proposal.created', proposalId: 'p-1', draft: { intent: 'buy', symbol: 'BTC/KRW' } });
    await journal.append({ type: 'order.submitted', proposalId: 'p-1', order: { venue: 'paper' } });
    await journal.append({ type: 'order.filled', proposalId: 'p-1', order: { venue: 'paper' } });
    await journal.append({ type: 'order.partially_filled', proposalId: 'p-1', again: true, order: { venue: 'paper' } });
    await journal.append({ type: 'order.failed', proposalId: 'p-krx', error: { code: 'market_closed' } });
    await journal.append({ type: 'order.unknown', proposalId: 'p-gone', error: { code: 'network' } });
    await journal.append({ type: 'proposal.finished', proposalId: 'p-1', state: 'settled', outcome: { code: 'filled' } });
    await journal.append({ type: 'proposal.finished', proposalId: 'p-2', state: 'timed-out', outcome: { code: 'timeout' } });
    await journal.append({ type: 'approval.given', proposalId: 'p-3', by: 'alice' });
    await journal.append({ type: 'approval.refused', proposalId: 'p-3', by: 'bob' });

    const m = await scrape();
    expect(series(m, 'chatops_signals_received_total')).to.deep.equal({ 'source="tradingview"': 1, 'source="api"': 1 });
    expect(series(m, 'chatops_signals_duplicate_total')).to.deep.equal({ 'source="tradingview"': 1 });
    expect(series(m, 'chatops_signals_dropped_total')).to.deep.equal({ 'code="paused"': 1 });
    expect(series(m, 'chatops_proposals_created_total')).to.deep.equal({ 'intent="buy"': 1 });
    // A part journalled again after a restart is not a second order event.
    expect(series(m, 'chatops_orders_total')).to.deep.equal({
      'result="submitted",venue="paper"': 1, 'result="filled",venue="paper"': 1,
      'result="failed",venue="kis"': 1, 'result="unknown",venue="none"': 1,
    });
    expect(series(m, 'chatops_proposals_finished_total')).to.deep.equal({ 'code="filled",state="settled"': 1, 'code="timeout",state="timed-out"': 1 });
    expect(valueOf(m, 'chatops_approval_timeouts_total')).to.equal(1);
    expect(series(m, 'chatops_approval_decisions_total')).to.deep.equal({ 'decision="given"': 1, 'decision="refused"': 1 });
    expect(valueOf(m, 'chatops_storage_sync_seconds_count', { kind: 'datasync' })).to.be.greaterThan(0);
  });

  it('times each durable write where the storage layer syncs it', async () => {
    let m = await scrape();
    expect(valueOf(m, 'chatops_storage_sync_seconds_count', { kind: 'replace' })).to.equal(0);
    await io.replaceFile(path.join(dir, 'doc.json'), Buffer.from('{}'));
    await journal.append({ type: 'service.started' });
    m = await scrape();
    expect(valueOf(m, 'chatops_storage_sync_seconds_count', { kind: 'replace' })).to.equal(1);
    expect(valueOf(m, 'chatops_storage_sync_seconds_count', { kind: 'datasync' })).to.be.greaterThan(0);
    expect(valueOf(m, 'chatops_storage_sync_seconds_bucket', { kind: 'replace', le: '+Inf' })).to.equal(1);
  });

  it('counts nothing for a record whose write failed', async () => {
    io.failNext('ENOSPC', { match: (p) => p.kind === 'write' });
    const failed = await journal.append({ type: 'signal.received', signalId: 's-1', signal: { source: 'api' } }).then(() => 'written', () => 'refused');
    expect(failed).to.equal('refused');
    const m = await scrape();
    expect(series(m, 'chatops_signals_received_total')).to.deep.equal({});
  });

  it('keeps label values bounded: an unexpected value becomes "other"', async () => {
    await journal.append({ type: 'signal.dropped', signalId: 's-1', code: 'Rejected: BTC/KRW at 100000000', reason: 'x' });
    metrics.signal('api', 'p-20261126-0000-abcdef');
    metrics.venueError('upbit', 'submit', 'venue_rejected');
    metrics.telegramError('send message\n', 'transport');
    const m = await scrape();
    expect(series(m, 'chatops_signals_dropped_total')).to.deep.equal({ 'code="other"': 1 });
    expect(series(m, 'chatops_signals_total')).to.deep.equal({ 'source="api",status="other"': 1 });
    expect(series(m, 'chatops_venue_errors_total')).to.deep.equal({ 'category="venue_rejected",operation="submit",venue="upbit"': 1 });
    expect(series(m, 'chatops_telegram_errors_total')).to.deep.equal({ 'kind="transport",method="other"': 1 });
    expect(boundedLabel('timed-out')).to.equal('timed-out');
    expect(boundedLabel(undefined)).to.equal('other');
  });

  it('observes approval latency only for a person\'s decision that ended the wait', async () => {
    // A person's approval 90 s after creation, and a rejection 400 s after.
    proposals.emit(change('approved', [['pending', 0], ['awaiting-approval', 1_000], ['approved', 90_000, 'alice']]));
    proposals.emit(change('rejected', [['pending', 0], ['awaiting-approval', 1_000], ['rejected', 400_000, 'bob']], { code: 'refused' }));
    // Not a person's decision on a waiting proposal: auto-approval, cancellation (pause), restore.
    proposals.emit(change('approved', [['pending', 0], ['approved', 10, 'approval-policy']]));
    proposals.emit(change('rejected', [['pending', 0], ['awaiting-approval', 1_000], ['rejected', 5_000, 'api']], { code: 'cancelled' }));
    proposals.emit(change('approved', [['pending', 0], ['awaiting-approval', 1_000], ['approved', 9_000, 'alice']], { restored: true }));
    const m = await scrape();
    expect(valueOf(m, 'chatops_approval_latency_seconds_count', { decision: 'approved' })).to.equal(1);
    expect(valueOf(m, 'chatops_approval_latency_seconds_sum', { decision: 'approved' })).to.equal(90);
    expect(valueOf(m, 'chatops_approval_latency_seconds_bucket', { decision: 'approved', le: '60' })).to.equal(0);
    expect(valueOf(m, 'chatops_approval_latency_seconds_bucket', { decision: 'approved', le: '120' })).to.equal(1);
    expect(valueOf(m, 'chatops_approval_latency_seconds_count', { decision: 'rejected' })).to.equal(1);
    expect(valueOf(m, 'chatops_approval_latency_seconds_sum', { decision: 'rejected' })).to.equal(400);
    expect(series(m, 'chatops_proposal_transitions_total')).to.deep.equal({ 'to="approved"': 3, 'to="rejected"': 2 });
  });

  it('reads live and waiting proposals at each scrape', async () => {
    proposals.live = { total: 3, awaitingApproval: 2 };
    let m = await scrape();
    expect(valueOf(m, 'chatops_live_proposals')).to.equal(3);
    expect(valueOf(m, 'chatops_awaiting_approval_proposals')).to.equal(2);
    proposals.live = { total: 0, awaitingApproval: 0 };
    m = await scrape();
    expect(valueOf(m, 'chatops_live_proposals')).to.equal(0);
    expect(valueOf(m, 'chatops_awaiting_approval_proposals')).to.equal(0);
  });

  it('gives each service its own counts, and every one the process metrics, in one process', async () => {
    const other = new Metrics();
    metrics.signal('api', 'accepted');
    metrics.httpRequest('GET', 200);
    const [mine, theirs] = [await scrape(), await scrape(other)];
    expect(valueOf(mine, 'chatops_signals_total', { source: 'api', status: 'accepted' })).to.equal(1);
    expect(series(theirs, 'chatops_signals_total')).to.deep.equal({});
    for (const m of [mine, theirs]) {
      expect(valueOf(m, 'process_cpu_seconds_total')).to.be.a('number');
      expect(m.some((s) => s.name === 'nodejs_heap_size_used_bytes')).to.equal(true);
    }
    expect(other.contentType).to.match(/^text\/plain; version=0\.0\.4/);
  });
});
