/**
 * `/metrics` against the real service (one child process, paper venue, replay candles) while a
 * scripted scenario runs: each figure must match what happened, exactly, at each step.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { startService, tempDir, waitFor, writeCandles, type ServiceHandle } from '../support/service-process';
import { parsePrometheus, series, valueOf, type Sample } from '../support/prometheus';

const BOUND_MS = 30_000;
/** Long enough for a person's decision in this test on a loaded machine, short enough to wait out. */
const APPROVAL_TIMEOUT_SECONDS = 12;
const WEBHOOK_SECRET = 'metrics-webhook-secret-0123456789';

const DOC = path.resolve(import.meta.dirname, '../../docs/metrics.md');

const needsPerson = (symbol: string) => ({ symbol, action: 'buy', confidence: 0.5, size: 50_000 });

describe('/metrics over a scripted scenario (whole process)', function () {
  this.timeout(180_000);
  let svc: ServiceHandle | undefined;

  const scrape = async (): Promise<Sample[]> => {
    const res = await fetch(`${svc!.url}/metrics`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
    return parsePrometheus(await res.text());
  };
  const webhook = async (body: Record<string, unknown>): Promise<{ status: number; body: any }> => {
    const res = await fetch(`${svc!.url}/webhook/tradingview`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: await res.json() };
  };
  const signal = async (body: Record<string, unknown>): Promise<string> => {
    const res = await svc!.api('POST', '/api/signals', body);
    expect(res.status, JSON.stringify(res.body)).to.equal(202);
    return res.body.signalId as string;
  };
  const proposalOf = (signalId: string): Promise<string> => waitFor(async () => {
    const s = (await svc!.api('GET', `/api/signals/${signalId}`)).body;
    if (s.status === 'dropped') throw new Error(`signal ${signalId} dropped: ${s.reason}`);
    return s.status === 'proposed' ? (s.proposalId as string) : undefined;
  }, `signal ${signalId} to be proposed`, BOUND_MS);
  const proposalIn = (id: string, state: string): Promise<any> => waitFor(async () => {
    const p = (await svc!.api('GET', `/api/proposals/${id}`)).body;
    if (p.state === state) return p;
    if (['settled', 'rejected', 'timed-out', 'failed'].includes(p.state)) throw new Error(`proposal ${id} ended ${p.state}, not ${state}: ${JSON.stringify(p.outcome)}`);
    return undefined;
  }, `proposal ${id} to be ${state}`, BOUND_MS);

  before(async () => {
    const dataDir = tempDir('chatops-metrics-e2e-');
    const candles = writeCandles(dataDir, { 'KRW-BTC': 100_000_000, 'KRW-ETH': 5_000_000, 'KRW-XRP': 800, 'KRW-SOL': 200_000 }, '.candles.jsonl');
    svc = await startService({ dataDir, waitReady: false, env: { MARKET_DATA_REPLAY_FILE: candles, APPROVAL_TIMEOUT_SECONDS: String(APPROVAL_TIMEOUT_SECONDS), WEBHOOK_SECRET } });
    await svc.waitReady(45_000);
  });

  after(async () => {
    if (!svc) return;
    await svc.kill();
    fs.rmSync(svc.dataDir, { recursive: true, force: true });
  });

  it('counts signals, proposals, approvals, time-outs, orders and durable writes as they happen', async () => {
    // A fresh service: process metrics, nothing counted yet, nothing live.
    let m = await scrape();
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds']) expect(valueOf(m, name), name).to.be.a('number');
    expect(series(m, 'chatops_signals_received_total')).to.deep.equal({});
    expect(valueOf(m, 'chatops_live_proposals')).to.equal(0);
    expect(valueOf(m, 'chatops_approval_timeouts_total')).to.equal(0);
    expect(valueOf(m, 'chatops_storage_sync_seconds_count', { kind: 'datasync' })).to.be.greaterThan(0);

    // 1. A proposal that waits for a person who never answers: it times out at the end.
    const waiting = await proposalOf(await signal(needsPerson('KRW-SOL')));
    await proposalIn(waiting, 'awaiting-approval');
    m = await scrape();
    expect(valueOf(m, 'chatops_live_proposals')).to.equal(1);
    expect(valueOf(m, 'chatops_awaiting_approval_proposals')).to.equal(1);
    expect(series(m, 'chatops_proposals_created_total')).to.deep.equal({ 'intent="buy"': 1 });

    // 2. A signal while paused: recorded, then dropped with the reason `paused`.
    expect((await svc!.api('POST', '/api/pause', { by: 'ops' })).status).to.equal(200);
    const paused = await signal(needsPerson('KRW-BTC'));
    await waitFor(async () => ((await svc!.api('GET', `/api/signals/${paused}`)).body.status === 'dropped' ? true : undefined), 'the paused signal to be dropped', BOUND_MS);
    expect((await svc!.api('POST', '/api/resume', { by: 'ops' })).status).to.equal(200);

    // 3. A proposal an operator rejects.
    const refused = await proposalOf(await signal(needsPerson('KRW-XRP')));
    await proposalIn(refused, 'awaiting-approval');
    expect((await svc!.api('POST', `/api/proposals/${refused}/reject`, { by: 'ops', reason: 'not today' })).status).to.equal(200);
    await proposalIn(refused, 'rejected');

    // 4. A proposal an operator approves: it settles on the paper venue.
    const approved = await proposalOf(await signal(needsPerson('KRW-ETH')));
    await proposalIn(approved, 'awaiting-approval');
    expect((await svc!.api('POST', `/api/proposals/${approved}/approve`, { by: 'ops' })).status).to.equal(200);
    await proposalIn(approved, 'settled');
    m = await scrape();
    expect(valueOf(m, 'chatops_orders_total', { venue: 'paper', result: 'filled' })).to.equal(1);

    // 5. A webhook signal auto-approved and settled, sent twice (the second is a duplicate), and an invalid one.
    const auto = { secret: WEBHOOK_SECRET, symbol: 'KRW-BTC', action: 'buy', confidence: 0.9, size: 50_000, id: 'metrics-auto-1' };
    const first = await webhook(auto);
    expect(first.status).to.equal(202);
    expect((await webhook(auto)).body.status).to.equal('duplicate');
    expect((await webhook({ secret: WEBHOOK_SECRET, symbol: 'KRW-BTC', action: 'hold' })).status).to.equal(400);
    await proposalIn(await proposalOf(first.body.signalId as string), 'settled');

    // 6. The first proposal's deadline passes.
    await waitFor(async () => {
      const p = (await svc!.api('GET', `/api/proposals/${waiting}`)).body;
      return p.state === 'timed-out' ? true : undefined;
    }, 'the waiting proposal to time out', (APPROVAL_TIMEOUT_SECONDS + 30) * 1000);
    // Counts follow durable journal records: wait until the last finish is on disk.
    m = await waitFor(async () => {
      const now = await scrape();
      return Object.values(series(now, 'chatops_proposals_finished_total')).reduce((a, b) => a + b, 0) === 4 ? now : undefined;
    }, 'four finished proposals on /metrics', BOUND_MS);

    expect(series(m, 'chatops_signals_total')).to.deep.equal({
      'source="api",status="accepted"': 4,
      'source="tradingview",status="accepted"': 1, 'source="tradingview",status="duplicate"': 1, 'source="tradingview",status="invalid"': 1,
    });
    expect(series(m, 'chatops_signals_received_total')).to.deep.equal({ 'source="api"': 4, 'source="tradingview"': 1 });
    expect(series(m, 'chatops_signals_duplicate_total')).to.deep.equal({ 'source="tradingview"': 1 });
    expect(series(m, 'chatops_signals_dropped_total')).to.deep.equal({ 'code="paused"': 1 });
    expect(valueOf(m, 'chatops_signals_proposed_total')).to.equal(4);
    expect(series(m, 'chatops_proposals_created_total')).to.deep.equal({ 'intent="buy"': 4 });
    expect(series(m, 'chatops_proposals_finished_total')).to.deep.equal({
      'code="filled",state="settled"': 2, 'code="refused",state="rejected"': 1, 'code="timeout",state="timed-out"': 1,
    });
    expect(valueOf(m, 'chatops_approval_timeouts_total')).to.equal(1);
    expect(series(m, 'chatops_approval_decisions_total')).to.deep.equal({ 'decision="given"': 1, 'decision="refused"': 1 });
    expect(valueOf(m, 'chatops_approval_latency_seconds_count', { decision: 'approved' })).to.equal(1);
    expect(valueOf(m, 'chatops_approval_latency_seconds_count', { decision: 'rejected' })).to.equal(1);
    expect(valueOf(m, 'chatops_approval_latency_seconds_bucket', { decision: 'rejected', le: '+Inf' })).to.equal(1);
    expect(series(m, 'chatops_orders_total')).to.deep.equal({ 'result="submitted",venue="paper"': 2, 'result="filled",venue="paper"': 2 });
    expect(series(m, 'chatops_proposal_transitions_total')).to.deep.equal({
      'to="pending"': 4, 'to="awaiting-approval"': 3, 'to="approved"': 2, 'to="executing"': 2, 'to="settled"': 2, 'to="rejected"': 1, 'to="timed-out"': 1,
    });
    expect(valueOf(m, 'chatops_http_requests_total', { method: 'POST', status: '202' })).to.equal(5);
    expect(valueOf(m, 'chatops_http_requests_total', { method: 'POST', status: '400' })).to.equal(1);
    expect(series(m, 'chatops_venue_errors_total')).to.deep.equal({});
    expect(valueOf(m, 'chatops_live_proposals')).to.equal(0);
    expect(valueOf(m, 'chatops_awaiting_approval_proposals')).to.equal(0);
    expect(valueOf(m, 'chatops_reserved_proposals')).to.equal(0);
    expect(valueOf(m, 'chatops_storage_available')).to.equal(1);
    expect(valueOf(m, 'chatops_storage_sync_seconds_count', { kind: 'datasync' })).to.be.greaterThan(0);
  });

  it('shows exactly the metrics docs/metrics.md lists, and its dashboard uses only metrics it shows', async () => {
    const text = await (await fetch(`${svc!.url}/metrics`)).text();
    const shown = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((t) => t[1]!));
    const doc = fs.readFileSync(DOC, 'utf8');
    const listed = [...doc.matchAll(/^\| `(chatops_\w+)` \|/gm)].map((t) => t[1]!);
    expect(new Set(listed)).to.deep.equal(new Set([...shown].filter((n) => n.startsWith('chatops_'))));
    // Every metric named anywhere in the page (queries, alerts, the dashboard) is one the service shows.
    const family = (name: string) => name.replace(/_(bucket|count|sum)$/, '');
    for (const [name] of doc.matchAll(/\b(?:chatops|process|nodejs)_[a-z0-9_]+/g)) {
      if (name.endsWith('_')) continue;
      expect(shown.has(family(name)) || shown.has(name), `${name} in docs/metrics.md`).to.equal(true);
    }
    const dashboard = JSON.parse(/```json\n([\s\S]*?)```/.exec(doc)![1]!) as { panels: Array<{ targets: Array<{ expr: string }> }> };
    expect(dashboard.panels.flatMap((p) => p.targets).length).to.be.greaterThan(5);
  });
});
