/**
 * The operator API and the health endpoints against the real service, run as a child process
 * (INTERFACES.md "HTTP"). One shared service for tests that do not care about fresh state;
 * separate services where the configuration or the state must be their own.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { PROPOSAL_STATES } from '../../machines/proposal.machine';
import { readJournal, startService, tempDir, waitFor, writeCandles, type ServiceHandle } from '../support/service-process';

const INITIAL_CASH = 10_000_000;
const FEE_RATE = 0.0005;
const BTC = 100_000_000;

/** A fresh DATA_DIR for a child service. */
function serviceDir(): string {
  return tempDir('chatops-api-');
}

/** Polling bound: generous, as these machines are shared and often loaded. */
const BOUND_MS = 30_000;

/**
 * Starts a service and waits until it is ready; on failure nothing is left behind. `rules` is
 * written to DATA_DIR/rules.json (docs/rules.md), e.g. to allow repeated buys of one symbol.
 */
async function start(env: Record<string, string> = {}, opts: { dataDir?: string; rules?: Record<string, unknown> } = {}): Promise<ServiceHandle> {
  const dataDir = opts.dataDir ?? serviceDir();
  if (opts.rules) fs.writeFileSync(path.join(dataDir, 'rules.json'), JSON.stringify(opts.rules));
  let svc: ServiceHandle | undefined;
  try {
    svc = await startService({ dataDir, env, waitReady: false });
    await svc.waitReady(45_000);
    return svc;
  } catch (err) {
    await svc?.kill();
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

async function dispose(svc: ServiceHandle | undefined): Promise<void> {
  if (!svc) return;
  await svc.kill();
  fs.rmSync(svc.dataDir, { recursive: true, force: true });
}

/** A request with exactly the given headers (no token unless given). */
async function raw(svc: ServiceHandle, method: string, p: string, opts: { headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; type: string; text: string; body: any }> {
  const res = await fetch(`${svc.url}${p}`, { method, headers: opts.headers ?? {}, ...(opts.body !== undefined ? { body: opts.body } : {}) });
  const text = await res.text();
  let body: unknown = text;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, type: res.headers.get('content-type') ?? '', text, body };
}

function signalsReceived(svc: ServiceHandle): Array<Record<string, any>> {
  return readJournal(svc.dataDir).filter((r) => r['type'] === 'signal.received');
}

async function proposalIds(svc: ServiceHandle): Promise<string[]> {
  const res = await svc.api('GET', '/api/proposals');
  expect(res.status).to.equal(200);
  return (res.body.proposals as Array<{ id: string }>).map((p) => p.id);
}

/** Posts a manual signal and returns its id (expects 202). */
async function postSignal(svc: ServiceHandle, body: Record<string, unknown>): Promise<string> {
  const res = await svc.api('POST', '/api/signals', body);
  expect(res.status, JSON.stringify(res.body)).to.equal(202);
  expect(res.body.status).to.equal('accepted');
  return res.body.signalId as string;
}

/** Waits until the signal has a proposal and returns the proposal id. */
async function proposalOf(svc: ServiceHandle, signalId: string): Promise<string> {
  return waitFor(async () => {
    const res = await svc.api('GET', `/api/signals/${signalId}`);
    if (res.body?.status === 'dropped') throw new Error(`signal ${signalId} was dropped: ${JSON.stringify(res.body)}`);
    return res.body?.status === 'proposed' ? (res.body.proposalId as string) : undefined;
  }, `signal ${signalId} to be proposed`, BOUND_MS);
}

/** Waits until a proposal is in `state`; fails early when it ends in another final state. */
async function proposalIn(svc: ServiceHandle, id: string, state: string): Promise<any> {
  return waitFor(async () => {
    const res = await svc.api('GET', `/api/proposals/${id}`);
    expect(res.status).to.equal(200);
    if (res.body.state === state) return res.body;
    if (['settled', 'rejected', 'timed-out', 'failed'].includes(res.body.state)) {
      throw new Error(`proposal ${id} ended ${res.body.state} instead of ${state}: ${JSON.stringify(res.body.outcome)}`);
    }
    return undefined;
  }, `proposal ${id} to be ${state}`, BOUND_MS);
}

/** Posts a signal and waits for its proposal to reach `state`. */
async function proposeAndWait(svc: ServiceHandle, body: Record<string, unknown>, state: string): Promise<any> {
  const id = await proposalOf(svc, await postSignal(svc, body));
  return proposalIn(svc, id, state);
}

const needsPerson = { symbol: 'KRW-BTC', action: 'buy', confidence: 0.5, size: 50_000 };
const autoApproved = { symbol: 'KRW-BTC', action: 'buy', confidence: 0.9, size: 50_000 };

describe('operator API', function () {
  this.timeout(120_000);
  let svc: ServiceHandle;

  before(async () => {
    // Many tests buy BTC on this one service: allow adding to a held position.
    svc = await start({ WEBHOOK_MAX_BODY_BYTES: '1024' }, { rules: { allowAddToPosition: true } });
  });

  after(async () => {
    await dispose(svc);
  });

  describe('health endpoints', () => {
    it('answers /healthz 200 {"status":"ok"} when no token is given', async () => {
      const res = await raw(svc, 'GET', '/healthz');
      expect(res.status).to.equal(200);
      expect(res.body).to.deep.equal({ status: 'ok' });
    });

    it('answers /readyz 200 without a token when the service is ready', async () => {
      const res = await raw(svc, 'GET', '/readyz');
      expect(res.status).to.equal(200);
    });

    it('answers /metrics in the Prometheus text format when no token is given', async () => {
      await raw(svc, 'GET', '/healthz');
      const res = await raw(svc, 'GET', '/metrics');
      expect(res.status).to.equal(200);
      expect(res.type).to.match(/^text\/plain/);
      expect(res.text).to.match(/^# TYPE chatops_http_requests_total counter$/m);
      expect(res.text).to.match(/^chatops_http_requests_total\{[^}]*status="200"[^}]*\} \d+$/m);
      for (const line of res.text.split('\n').filter((l) => l !== '' && !l.startsWith('#'))) {
        expect(line).to.match(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? -?[0-9.eE+-]+$|^[a-zA-Z_:][a-zA-Z0-9_:]* (NaN|[+-]Inf)$/);
      }
    });
  });

  describe('bearer token', () => {
    let awaitingId: string;

    before(async () => {
      awaitingId = (await proposeAndWait(svc, needsPerson, 'awaiting-approval')).id;
    });

    const wrongHeaders = (token: string): Array<[string, Record<string, string>]> => [
      ['no Authorization header', {}],
      ['a wrong token', { authorization: 'Bearer wrong-token-0123456789abcdef' }],
      ['the token with an extra character', { authorization: `Bearer ${token}x` }],
      ['a prefix of the token', { authorization: `Bearer ${token.slice(0, -1)}` }],
      ['the token as Basic credentials', { authorization: `Basic ${token}` }],
      ['the bare token without a scheme', { authorization: token }],
      ['an empty bearer', { authorization: 'Bearer ' }],
    ];

    const routes = (id: string): Array<[string, string, unknown]> => [
      ['GET', `/api/signals/sig-20261126-000000000000`, undefined],
      ['GET', '/api/proposals', undefined],
      ['GET', '/api/proposals?state=settled', undefined],
      ['GET', `/api/proposals/${id}`, undefined],
      ['GET', `/api/proposals/${id}/diagram`, undefined],
      ['GET', '/api/machines/proposal', undefined],
      ['GET', '/api/portfolio', undefined],
      ['GET', '/api/status', undefined],
      ['GET', '/api/state', undefined],
      ['GET', '/api/no-such-route', undefined],
      ['POST', '/api/signals', autoApproved],
      ['POST', `/api/proposals/${id}/approve`, { by: 'mallory' }],
      ['POST', `/api/proposals/${id}/reject`, { by: 'mallory', reason: 'no' }],
      ['POST', '/api/pause', {}],
      ['POST', '/api/resume', {}],
      ['POST', '/api/arm', { by: 'mallory', minutes: 30 }],
      ['POST', '/api/disarm', {}],
      ['POST', '/api/liquidate', { by: 'mallory' }],
    ];

    it('answers 401 {"error":"unauthorized"} on every /api route when the token is wrong or missing', async () => {
      for (const [method, p, body] of routes(awaitingId)) {
        for (const [what, headers] of wrongHeaders(svc.token)) {
          const res = await raw(svc, method, p, {
            headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
            ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          });
          expect(res.status, `${method} ${p} with ${what}`).to.equal(401);
          expect(res.body.error, `${method} ${p} with ${what}`).to.equal('unauthorized');
        }
      }
    });

    it('changes nothing when unauthorised requests try to act', async () => {
      const before = signalsReceived(svc).length;
      const headers = { authorization: 'Bearer nope', 'content-type': 'application/json' };
      await raw(svc, 'POST', '/api/signals', { headers, body: JSON.stringify(autoApproved) });
      await raw(svc, 'POST', '/api/pause', { headers, body: '{}' });
      await raw(svc, 'POST', `/api/proposals/${awaitingId}/approve`, { headers, body: JSON.stringify({ by: 'mallory' }) });
      await raw(svc, 'POST', '/api/arm', { headers, body: JSON.stringify({ by: 'mallory', minutes: 30 }) });
      expect(signalsReceived(svc)).to.have.length(before);
      const state = await svc.api('GET', '/api/state');
      expect(state.body).to.include({ paused: false, armedUntil: null });
      const p = await svc.api('GET', `/api/proposals/${awaitingId}`);
      expect(p.body.state).to.equal('awaiting-approval');
      expect(p.body.approvals).to.deep.equal([]);
    });

    it('answers 200 when the right token is given', async () => {
      for (const [method, p] of routes(awaitingId).filter(([m, route]) => m === 'GET' && !route.includes('no-such') && !route.includes('/signals/'))) {
        const res = await svc.api(method, p);
        expect(res.status, `${method} ${p}`).to.equal(200);
      }
    });
  });

  describe('POST /api/signals with bad input', () => {
    const marker = (n: number) => `bad-input-${n}-${process.pid}`;
    const cases: Array<[string, (m: string) => unknown, string | null]> = [
      ['the body is malformed JSON', (m) => `{"symbol":"KRW-BTC","action":"buy","strategy":"${m}",`, null],
      ['the body is an array', (m) => JSON.stringify([{ symbol: 'KRW-BTC', action: 'buy', strategy: m }]), null],
      ['the body is a string', (m) => JSON.stringify(`KRW-BTC buy ${m}`), null],
      ['the body is a number', () => '42', null],
      ['the body is null', () => 'null', null],
      ['the symbol is missing', (m) => ({ action: 'buy', strategy: m }), 'symbol'],
      ['the action is missing', (m) => ({ symbol: 'KRW-BTC', strategy: m }), 'action'],
      ['the action is unknown', (m) => ({ symbol: 'KRW-BTC', action: 'hodl', strategy: m }), 'action'],
      ['the price is an object', (m) => ({ symbol: 'KRW-BTC', action: 'buy', price: { v: 1 }, strategy: m }), 'price'],
      ['the confidence is "abc"', (m) => ({ symbol: 'KRW-BTC', action: 'buy', confidence: 'abc', strategy: m }), 'confidence'],
      ['the price is negative', (m) => ({ symbol: 'KRW-BTC', action: 'buy', price: -100, strategy: m }), 'price'],
      ['the size is negative', (m) => ({ symbol: 'KRW-BTC', action: 'buy', size: -50_000, strategy: m }), 'size'],
      ['the price is "NaN"', (m) => ({ symbol: 'KRW-BTC', action: 'buy', price: 'NaN', strategy: m }), 'price'],
      ['the size is "Infinity"', (m) => ({ symbol: 'KRW-BTC', action: 'buy', size: 'Infinity', strategy: m }), 'size'],
      ['the confidence is 1.5', (m) => ({ symbol: 'KRW-BTC', action: 'buy', confidence: 1.5, strategy: m }), 'confidence'],
      ['the symbol is "BTC"', (m) => ({ symbol: 'BTC', action: 'buy', strategy: m }), 'symbol'],
      ['the symbol is "B@D"', (m) => ({ symbol: 'B@D', action: 'buy', strategy: m }), 'symbol'],
      ['the symbol is a number', (m) => ({ symbol: 7, action: 'buy', strategy: m }), 'symbol'],
    ];

    cases.forEach(([when, make, field], n) => {
      it(`answers 400 invalid_payload${field ? ` naming ${field}` : ''} and stores nothing when ${when}`, async () => {
        const m = marker(n);
        const beforeIds = await proposalIds(svc);
        const beforeCount = signalsReceived(svc).length;
        const payload = make(m);
        const res = await svc.api('POST', '/api/signals', typeof payload === 'string' ? payload : JSON.stringify(payload));
        expect(res.status, JSON.stringify(res.body)).to.equal(400);
        expect(res.body.error).to.equal('invalid_payload');
        expect(res.body.issues).to.be.an('array').that.is.not.empty;
        for (const issue of res.body.issues) {
          expect(issue).to.have.all.keys('path', 'message');
          expect(issue.path).to.be.a('string');
          expect(issue.message).to.be.a('string').and.not.equal('');
        }
        if (field) expect(res.body.issues.map((i: { path: string }) => i.path)).to.include(field);
        expect(await proposalIds(svc)).to.deep.equal(beforeIds);
        const received = signalsReceived(svc);
        expect(received).to.have.length(beforeCount);
        expect(received.filter((r) => JSON.stringify(r).includes(m))).to.deep.equal([]);
      });
    });

    it('names every bad field when several fields are bad', async () => {
      const res = await svc.api('POST', '/api/signals', { symbol: 'B@D', action: 'hold', price: -1, confidence: 2 });
      expect(res.status).to.equal(400);
      expect(res.body.issues.map((i: { path: string }) => i.path)).to.include.members(['symbol', 'action', 'price', 'confidence']);
    });
  });

  describe('body size and content type', () => {
    it('answers 413 and stores nothing when the body is larger than WEBHOOK_MAX_BODY_BYTES', async () => {
      const beforeCount = signalsReceived(svc).length;
      const body = JSON.stringify({ ...autoApproved, strategy: 'x'.repeat(90), timeframe: '1', time: 't', padding: 'p'.repeat(2000) });
      expect(Buffer.byteLength(body)).to.be.greaterThan(1024);
      const res = await svc.api('POST', '/api/signals', body);
      expect(res.status).to.equal(413);
      expect(res.body.error).to.be.a('string');
      expect(signalsReceived(svc)).to.have.length(beforeCount);
    });

    it('accepts a body just under WEBHOOK_MAX_BODY_BYTES', async () => {
      const base = JSON.stringify({ ...autoApproved, confidence: 0.5, padding: '' });
      const body = JSON.stringify({ ...autoApproved, confidence: 0.5, padding: 'p'.repeat(1000 - Buffer.byteLength(base)) });
      expect(Buffer.byteLength(body)).to.be.within(900, 1024);
      const res = await svc.api('POST', '/api/signals', body);
      expect(res.status, JSON.stringify(res.body)).to.equal(202);
    });

    it('answers 415 and stores nothing when the content type is text/plain', async () => {
      const beforeCount = signalsReceived(svc).length;
      const res = await svc.api('POST', '/api/signals', JSON.stringify(autoApproved), { 'content-type': 'text/plain' });
      expect(res.status).to.equal(415);
      expect(res.body.error).to.be.a('string');
      const form = await svc.api('POST', '/api/signals', 'symbol=KRW-BTC&action=buy', { 'content-type': 'application/x-www-form-urlencoded' });
      expect(form.status).to.equal(415);
      expect(signalsReceived(svc)).to.have.length(beforeCount);
    });

    it('accepts application/json with a charset parameter', async () => {
      const res = await svc.api('POST', '/api/signals', JSON.stringify({ ...autoApproved, confidence: 0.5 }), { 'content-type': 'application/json; charset=utf-8' });
      expect(res.status, JSON.stringify(res.body)).to.equal(202);
    });
  });

  describe('approvals', () => {
    it('settles with the approver in the history when a person approves', async () => {
      const p = await proposeAndWait(svc, needsPerson, 'awaiting-approval');
      expect(p.requiredApprovals).to.equal(1);
      const res = await svc.api('POST', `/api/proposals/${p.id}/approve`, { by: 'alice' });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(res.body.id).to.equal(p.id);
      expect(res.body.approvalCounted).to.equal(true);
      const settled = await proposalIn(svc, p.id, 'settled');
      // The shared token's principal is api; the caller's by is kept as its label.
      expect(settled.approvals.map((a: { by: string; label?: string }) => [a.by, a.label])).to.deep.equal([['api', 'alice']]);
      expect(settled.history.map((h: { state: string }) => h.state)).to.deep.equal(['pending', 'awaiting-approval', 'approved', 'executing', 'settled']);
      expect(settled.history[2]).to.include({ state: 'approved', by: 'api' });
      expect(settled.fill.quantity).to.be.closeTo(50_000 / BTC, 1e-12);
    });

    it('ends rejected with the reason in the history when a person rejects', async () => {
      const p = await proposeAndWait(svc, needsPerson, 'awaiting-approval');
      const res = await svc.api('POST', `/api/proposals/${p.id}/reject`, { by: 'bob', reason: 'spread too wide' });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(res.body.id).to.equal(p.id);
      const rejected = await proposalIn(svc, p.id, 'rejected');
      expect(rejected.history.at(-1)).to.include({ state: 'rejected', by: 'api', reason: 'spread too wide' });
      expect(rejected.outcome).to.include({ state: 'rejected', by: 'api', code: 'refused' });
      expect(readJournal(svc.dataDir).find((r) => r['type'] === 'approval.refused' && r['proposalId'] === p.id)).to.include({ by: 'api', label: 'bob' });
      expect(rejected).not.to.have.property('fill');
      expect(readJournal(svc.dataDir).some((r) => r['type'] === 'order.intent' && r['proposalId'] === p.id)).to.equal(false);
    });

    it('answers 409 not_awaiting_approval when the proposal has settled', async () => {
      const p = await proposeAndWait(svc, autoApproved, 'settled');
      const approve = await svc.api('POST', `/api/proposals/${p.id}/approve`, { by: 'alice' });
      expect(approve.status).to.equal(409);
      expect(approve.body.error).to.equal('not_awaiting_approval');
      const reject = await svc.api('POST', `/api/proposals/${p.id}/reject`, { by: 'alice' });
      expect(reject.status).to.equal(409);
      expect(reject.body.error).to.equal('not_awaiting_approval');
      const after = await svc.api('GET', `/api/proposals/${p.id}`);
      expect(after.body.state).to.equal('settled');
      expect(after.body.approvals).to.deep.equal([]);
    });

    it('answers 409 not_awaiting_approval when the proposal was rejected', async () => {
      const p = await proposeAndWait(svc, needsPerson, 'awaiting-approval');
      await svc.api('POST', `/api/proposals/${p.id}/reject`, { by: 'bob' });
      await proposalIn(svc, p.id, 'rejected');
      const res = await svc.api('POST', `/api/proposals/${p.id}/approve`, { by: 'alice' });
      expect(res.status).to.equal(409);
      expect(res.body.error).to.equal('not_awaiting_approval');
    });

    it('answers 404 when the proposal id is unknown', async () => {
      // Impossible days (no calendar has them) once answered 500.
      for (const id of ['p-20261126-0123456789ab', 'p-19990101-000000000000', 'p-00000000-000000000000', 'p-20261200-0123456789ab', 'p-20260230-0123456789ab', 'p-99991399-0123456789ab', 'not-an-id', '..%2F..%2Fstate.json', '%E2%80%8B']) {
        for (const [method, p, body] of [
          ['GET', `/api/proposals/${id}`, undefined],
          ['GET', `/api/proposals/${id}/diagram`, undefined],
          ['POST', `/api/proposals/${id}/approve`, { by: 'alice' }],
          ['POST', `/api/proposals/${id}/reject`, { by: 'alice' }],
        ] as Array<[string, string, unknown]>) {
          const res = await svc.api(method, p, body);
          expect(res.status, `${method} ${p}`).to.equal(404);
          expect(res.body.error, `${method} ${p}`).to.be.a('string');
        }
      }
      for (const id of ['sig-20261126-0123456789ab', 'sig-20261200-0123456789ab', 'sig-00000000-000000000000']) {
        const sig = await svc.api('GET', `/api/signals/${id}`);
        expect(sig.status, id).to.equal(404);
      }
    });

    for (const sizeFactor of [0, 1.5, 'x', -0.5]) {
      it(`answers 400 naming sizeFactor and keeps waiting when sizeFactor is ${JSON.stringify(sizeFactor)}`, async () => {
        const p = await proposeAndWait(svc, needsPerson, 'awaiting-approval');
        const res = await svc.api('POST', `/api/proposals/${p.id}/approve`, { by: 'alice', sizeFactor });
        expect(res.status, JSON.stringify(res.body)).to.equal(400);
        expect(res.body.error).to.equal('invalid_payload');
        expect(res.body.issues.map((i: { path: string }) => i.path)).to.include('sizeFactor');
        const after = await svc.api('GET', `/api/proposals/${p.id}`);
        expect(after.body.state).to.equal('awaiting-approval');
        expect(after.body.approvals).to.deep.equal([]);
        await svc.api('POST', `/api/proposals/${p.id}/reject`, { by: 'cleanup' });
      });
    }

    it('answers 400 naming by when the approver is missing, invisible, too long or claims a Telegram user', async () => {
      const p = await proposeAndWait(svc, needsPerson, 'awaiting-approval');
      for (const body of [{}, { by: '' }, { by: 3 }, { by: 'tg:1001' }, { by: 'TG:1001' }, { by: 'tg:\u200b1001' }, { by: 'alice\u200b' }, { by: 'x'.repeat(65) }, { by: 'ali\u202ece' }]) {
        const res = await svc.api('POST', `/api/proposals/${p.id}/approve`, body);
        expect(res.status, JSON.stringify(body)).to.equal(400);
        expect(res.body.issues.map((i: { path: string }) => i.path)).to.include('by');
      }
      const noBody = await svc.api('POST', `/api/proposals/${p.id}/approve`);
      expect(noBody.status).to.equal(400);
      expect((await svc.api('GET', `/api/proposals/${p.id}`)).body.state).to.equal('awaiting-approval');
      await svc.api('POST', `/api/proposals/${p.id}/reject`, { by: 'cleanup' });
    });

    it('fills half the size when the approver gives sizeFactor 0.5', async () => {
      const p = await proposeAndWait(svc, needsPerson, 'awaiting-approval');
      const res = await svc.api('POST', `/api/proposals/${p.id}/approve`, { by: 'carol', sizeFactor: 0.5 });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      const settled = await proposalIn(svc, p.id, 'settled');
      expect(settled.fill.quantity).to.be.closeTo(25_000 / BTC, 1e-12);
      expect(settled.fill.notional).to.be.closeTo(25_000, 1e-6);
      expect(settled.fill.fee).to.be.closeTo(25_000 * FEE_RATE, 1e-9);
      expect(settled.approvals).to.have.length(1);
      expect(settled.approvals[0]).to.include({ by: 'api', label: 'carol', sizeFactor: 0.5 });
    });
  });

  describe('manual signal duplicates', () => {
    it('makes two signals when two identical signals carry no id', async () => {
      const body = { symbol: 'KRW-ETH', action: 'buy', confidence: 0.9, size: 10_000, strategy: `twins-${process.pid}` };
      const first = await svc.api('POST', '/api/signals', body);
      const second = await svc.api('POST', '/api/signals', body);
      expect(first.status).to.equal(202);
      expect(second.status).to.equal(202);
      expect(first.body).to.include({ status: 'accepted' });
      expect(second.body).to.include({ status: 'accepted' });
      expect(second.body.signalId).to.be.a('string').and.not.equal(first.body.signalId);
      const [a, b] = await Promise.all([proposalOf(svc, first.body.signalId), proposalOf(svc, second.body.signalId)]);
      expect(a).not.to.equal(b);
      await Promise.all([proposalIn(svc, a, 'settled'), proposalIn(svc, b, 'settled')]);
    });

    it('answers 200 duplicate with the first signalId when the same id comes twice', async () => {
      const id = `manual-${process.pid}-${Date.now()}`;
      const body = { ...needsPerson, id };
      const first = await svc.api('POST', '/api/signals', body);
      expect(first.status).to.equal(202);
      const second = await svc.api('POST', '/api/signals', body);
      expect(second.status).to.equal(200);
      expect(second.body).to.deep.equal({ status: 'duplicate', signalId: first.body.signalId });
      const third = await svc.api('POST', '/api/signals', { ...body, confidence: 0.2 });
      expect(third.status).to.equal(200);
      expect(third.body.signalId).to.equal(first.body.signalId);
      expect(signalsReceived(svc).filter((r) => r['signal']?.externalId === id)).to.have.length(1);
      const proposalId = await proposalOf(svc, first.body.signalId);
      await svc.api('POST', `/api/proposals/${proposalId}/reject`, { by: 'cleanup' });
    });
  });

  describe('machine diagrams', () => {
    it('returns a stateDiagram-v2 naming all eight states when asked for the machine', async () => {
      const res = await svc.api('GET', '/api/machines/proposal');
      expect(res.status).to.equal(200);
      expect(res.body.mermaid).to.be.a('string');
      expect(res.body.mermaid.startsWith('stateDiagram-v2')).to.equal(true);
      expect(PROPOSAL_STATES).to.have.length(8);
      for (const state of PROPOSAL_STATES) {
        const node = state.replace(/-/g, '_');
        expect(res.body.mermaid, state).to.match(new RegExp(`(^|\\s)${node}(\\s|:|$)`, 'm'));
        expect(res.body.mermaid, state).to.include(state);
      }
      expect(res.body.mermaid).to.match(/\[\*\] --> pending/);
    });

    it('marks the current state and the path when asked for a settled proposal diagram', async () => {
      const p = await proposeAndWait(svc, autoApproved, 'settled');
      const text = await svc.api('GET', `/api/proposals/${p.id}/diagram`);
      expect(text.status).to.equal(200);
      expect(text.body).to.be.a('string');
      expect(text.body.startsWith('stateDiagram-v2')).to.equal(true);
      expect(text.body).to.match(/^\s*class settled current$/m);
      const visited = /^\s*class ([a-z_,]+) visited$/m.exec(text.body);
      expect(visited, text.body).not.to.equal(null);
      expect(visited![1]!.split(',').sort()).to.deep.equal(['approved', 'executing', 'pending']);
      const json = await svc.api('GET', `/api/proposals/${p.id}/diagram`, undefined, { accept: 'application/json' });
      expect(json.status).to.equal(200);
      expect(json.body).to.include({ id: p.id, state: 'settled' });
      expect(json.body.mermaid).to.equal(text.body);
    });

    it('marks awaiting-approval as current when the proposal waits for a person', async () => {
      const p = await proposeAndWait(svc, needsPerson, 'awaiting-approval');
      const text = await svc.api('GET', `/api/proposals/${p.id}/diagram`);
      expect(text.body).to.match(/^\s*class awaiting_approval current$/m);
      expect(text.body).not.to.match(/^\s*class settled current$/m);
      await svc.api('POST', `/api/proposals/${p.id}/reject`, { by: 'cleanup' });
    });
  });
});

describe('operator API walk-through on a fresh service', function () {
  this.timeout(120_000);
  let svc: ServiceHandle;
  let signalId: string;
  let settled: any;

  before(async () => {
    svc = await start();
    signalId = await postSignal(svc, { ...autoApproved, strategy: 'walk-through', timeframe: '15' });
    settled = await proposalIn(svc, await proposalOf(svc, signalId), 'settled');
  });

  after(async () => {
    await dispose(svc);
  });

  it('answers GET /api/signals/:id with id, receivedAt, status and proposalId when the signal was proposed', async () => {
    const res = await svc.api('GET', `/api/signals/${signalId}`);
    expect(res.status).to.equal(200);
    expect(res.body).to.include({ id: signalId, status: 'proposed', proposalId: settled.id });
    expect(new Date(res.body.receivedAt).toISOString()).to.equal(res.body.receivedAt);
    expect(res.body).not.to.have.property('reason');
  });

  it('answers GET /api/proposals/:id with every documented field when the proposal settled', async () => {
    const p = settled;
    expect(p).to.include.keys('id', 'signalId', 'state', 'symbol', 'side', 'notional', 'confidence', 'deadline', 'approvals', 'history', 'order', 'fill');
    expect(p).to.include({ signalId, state: 'settled', symbol: 'BTC/KRW', side: 'buy', notional: 50_000, confidence: 0.9 });
    expect(p.id).to.be.a('string');
    expect(new Date(p.deadline).toISOString()).to.equal(p.deadline);
    expect(Date.parse(p.deadline)).to.be.greaterThan(Date.parse(p.history[0].at));
    expect(p.approvals).to.deep.equal([]);
    expect(p.history.map((h: { state: string }) => h.state)).to.deep.equal(['pending', 'approved', 'executing', 'settled']);
    for (const h of p.history) {
      expect(Object.keys(h).every((k) => ['state', 'at', 'by', 'reason'].includes(k)), JSON.stringify(h)).to.equal(true);
      expect(PROPOSAL_STATES).to.include(h.state);
      expect(new Date(h.at).toISOString()).to.equal(h.at);
    }
    expect(p.order).to.include({ status: 'filled', side: 'buy' });
    expect(p.order.filledQuantity).to.be.closeTo(50_000 / BTC, 1e-12);
    expect(p.fill.quantity).to.be.closeTo(50_000 / BTC, 1e-12);
    expect(p.fill.price).to.equal(BTC);
    expect(p.fill.fee).to.be.closeTo(50_000 * FEE_RATE, 1e-9);
    expect(p.fill.notional).to.be.closeTo(50_000, 1e-6);
  });

  it('answers GET /api/portfolio with numbers that match an independent calculation when one buy filled', async () => {
    const res = await svc.api('GET', '/api/portfolio');
    expect(res.status).to.equal(200);
    const quantity = 50_000 / BTC;
    const fee = quantity * BTC * FEE_RATE;
    const cash = INITIAL_CASH - 50_000 - fee;
    expect(fee).to.equal(25);
    expect(res.body.cash).to.be.closeTo(cash, 1e-6);
    expect(res.body.equity).to.be.closeTo(cash + quantity * BTC, 1e-6);
    expect(res.body.dailyPnl).to.be.closeTo(-fee, 1e-6);
    expect(res.body.consecutiveLosses).to.equal(0);
    expect(res.body.positions).to.have.length(1);
    expect(res.body.positions[0]).to.include({ symbol: 'BTC/KRW', avgPrice: BTC });
    expect(res.body.positions[0].quantity).to.be.closeTo(quantity, 1e-12);
  });

  it('lists proposals newest first and filters by state when several exist', async () => {
    const waiting = await proposeAndWait(svc, { ...needsPerson, symbol: 'KRW-ETH' }, 'awaiting-approval');
    const all = await svc.api('GET', '/api/proposals');
    expect(all.status).to.equal(200);
    expect(all.body.proposals.map((p: { id: string }) => p.id)).to.deep.equal([waiting.id, settled.id]);
    const done = await svc.api('GET', '/api/proposals?state=settled');
    expect(done.body.proposals.map((p: { id: string }) => p.id)).to.deep.equal([settled.id]);
    expect(done.body.proposals[0]).to.include({ state: 'settled', signalId });
    const open = await svc.api('GET', '/api/proposals?state=awaiting-approval');
    expect(open.body.proposals.map((p: { id: string }) => p.id)).to.deep.equal([waiting.id]);
    const none = await svc.api('GET', '/api/proposals?state=rejected');
    expect(none.body).to.deep.equal({ proposals: [] });
  });

  it('answers 400 naming state when the state filter is unknown', async () => {
    for (const state of ['bogus', 'SETTLED', 'awaiting_approval']) {
      const res = await svc.api('GET', `/api/proposals?state=${state}`);
      expect(res.status, state).to.equal(400);
      expect(res.body.error).to.equal('invalid_payload');
      expect(res.body.issues.map((i: { path: string }) => i.path)).to.include('state');
    }
  });
  // BUG (product): api.ts reads `state` only when it is a string; `?state=a&state=b` parses to an
  // array, the filter is silently dropped and every proposal is listed with 200.
  it('answers 400 naming state when the state filter is repeated', async () => {
    const res = await svc.api('GET', '/api/proposals?state=bogus&state=settled');
    expect(res.status, JSON.stringify(res.body).slice(0, 200)).to.equal(400);
    expect(res.body.issues.map((i: { path: string }) => i.path)).to.include('state');
  });
});

describe('two-person rule over HTTP (principals)', function () {
  this.timeout(120_000);
  let svc: ServiceHandle;
  const ALICE = 'alice-operator-token-0123456789';
  const BOB = 'bob-operator-token-01234567890a';
  const as = (token: string, method: string, p: string, body?: unknown) => svc.api(method, p, body, { authorization: `Bearer ${token}` });

  before(async () => {
    svc = await start({ APPROVAL_TWO_PERSON_NOTIONAL: '40000', OPERATOR_TOKENS: `alice:${ALICE},bob:${BOB}` }, { rules: { allowAddToPosition: true } });
  });

  after(async () => {
    await dispose(svc);
  });

  it('settles after two named operators approve; the same one again, in any spelling, does not count', async () => {
    const p = await proposeAndWait(svc, { ...autoApproved }, 'awaiting-approval');
    expect(p.requiredApprovals).to.equal(2);

    const first = await as(ALICE, 'POST', `/api/proposals/${p.id}/approve`, {});
    expect(first.status, JSON.stringify(first.body)).to.equal(200);
    expect(first.body).to.include({ state: 'awaiting-approval', approvalCounted: true });
    for (const by of [undefined, 'alice', 'ALICE', ' ａｌｉｃｅ ']) {
      const repeat = await as(ALICE, 'POST', `/api/proposals/${p.id}/approve`, by === undefined ? {} : { by });
      expect(repeat.status, String(by)).to.equal(200);
      expect(repeat.body).to.include({ state: 'awaiting-approval', approvalCounted: false });
    }
    expect((await svc.api('GET', `/api/proposals/${p.id}`)).body.approvals.map((a: { by: string }) => a.by)).to.deep.equal(['alice']);

    const second = await as(BOB, 'POST', `/api/proposals/${p.id}/approve`, { by: 'bob' });
    expect(second.status).to.equal(200);
    expect(second.body.approvalCounted).to.equal(true);
    const done = await proposalIn(svc, p.id, 'settled');
    expect(done.approvals.map((a: { by: string }) => a.by)).to.deep.equal(['alice', 'bob']);
    expect(done.history.find((h: { state: string }) => h.state === 'approved')).to.include({ by: 'bob' });
  });

  it('never lets the shared token count twice, whatever the labels (alice, ALICE, alice with a zero-width space, bob)', async () => {
    const p = await proposeAndWait(svc, { ...autoApproved }, 'awaiting-approval');
    const first = await svc.api('POST', `/api/proposals/${p.id}/approve`, { by: 'alice' });
    expect(first.body).to.include({ approvalCounted: true });
    for (const by of ['ALICE', 'bob', 'carol']) {
      const again = await svc.api('POST', `/api/proposals/${p.id}/approve`, { by });
      expect(again.status, by).to.equal(200);
      expect(again.body.approvalCounted, by).to.equal(false);
    }
    expect((await svc.api('POST', `/api/proposals/${p.id}/approve`, { by: 'alice\u200b' })).status).to.equal(400);
    const view = (await svc.api('GET', `/api/proposals/${p.id}`)).body;
    expect(view.state).to.equal('awaiting-approval');
    expect(view.approvals).to.have.length(1);
    expect(view.approvals[0]).to.include({ by: 'api', label: 'alice' });
    // A named operator is a second principal beside api.
    expect((await as(BOB, 'POST', `/api/proposals/${p.id}/approve`, {})).body.approvalCounted).to.equal(true);
    expect((await proposalIn(svc, p.id, 'settled')).approvals.map((a: { by: string }) => a.by)).to.deep.equal(['api', 'bob']);
  });

  it('refuses a named token acting as someone else with 403 identity_mismatch, and a Telegram name over HTTP with 400; nothing changes', async () => {
    const p = await proposeAndWait(svc, { ...autoApproved }, 'awaiting-approval');
    const mismatch = await as(ALICE, 'POST', `/api/proposals/${p.id}/approve`, { by: 'bob' });
    expect(mismatch.status).to.equal(403);
    expect(mismatch.body.error).to.equal('identity_mismatch');
    expect((await as(ALICE, 'POST', `/api/proposals/${p.id}/reject`, { by: 'bob' })).status).to.equal(403);
    expect((await as(ALICE, 'POST', '/api/pause', { by: 'bob' })).status).to.equal(403);
    const telegram = await svc.api('POST', `/api/proposals/${p.id}/approve`, { by: 'tg:1001' });
    expect(telegram.status).to.equal(400);
    expect(telegram.body.issues.map((i: { path: string }) => i.path)).to.deep.equal(['by']);
    expect((await svc.api('GET', `/api/proposals/${p.id}`)).body).to.include({ state: 'awaiting-approval' });
    expect((await svc.api('GET', '/api/state')).body.paused).to.equal(false);
    expect((await as('not-a-token-0123456789abcdef', 'GET', '/api/status')).status).to.equal(401);
    const rejected = await as(BOB, 'POST', `/api/proposals/${p.id}/reject`, { reason: 'cleanup' });
    expect(rejected.body.history.at(-1)).to.include({ state: 'rejected', by: 'bob' });
  });
});

describe('pause over HTTP', function () {
  this.timeout(120_000);
  let svc: ServiceHandle | undefined;

  after(async () => {
    await dispose(svc);
  });

  it('drops signals with the reason paused, keeps the pause across a restart, and resumes', async () => {
    svc = await start();
    const paused = await svc.api('POST', '/api/pause', { by: 'ops' });
    expect(paused.status).to.equal(200);
    const state = await svc.api('GET', '/api/state');
    expect(state.status).to.equal(200);
    expect(state.body).to.include({ mode: 'paper', tradingState: 'active', paused: true, armedUntil: null });

    const signalId = await postSignal(svc, autoApproved);
    const dropped = await waitFor(async () => {
      const res = await svc!.api('GET', `/api/signals/${signalId}`);
      return res.body.status === 'dropped' ? res.body : undefined;
    }, 'the signal to be dropped', BOUND_MS);
    expect(dropped).to.include({ id: signalId, status: 'dropped', reason: 'paused' });
    expect(dropped).not.to.have.property('proposalId');
    expect(await proposalIds(svc)).to.deep.equal([]);

    const dataDir = svc.dataDir;
    expect(await svc.stop()).to.equal(0);
    svc = await start({}, { dataDir });

    const restarted = await svc.api('GET', '/api/state');
    expect(restarted.body.paused).to.equal(true);
    const again = await svc.api('GET', `/api/signals/${signalId}`);
    expect(again.body).to.include({ status: 'dropped', reason: 'paused' });

    const resumed = await svc.api('POST', '/api/resume', { by: 'ops' });
    expect(resumed.status).to.equal(200);
    expect((await svc.api('GET', '/api/state')).body.paused).to.equal(false);
    await proposeAndWait(svc, autoApproved, 'settled');
  });
});

describe('stale price at approval', function () {
  this.timeout(120_000);
  let svc: ServiceHandle | undefined;

  after(async () => {
    await dispose(svc);
  });

  it('rejects with stale_price when the price moved more than MAX_PRICE_DRIFT_PCT before the approval', async () => {
    const dataDir = serviceDir();
    const candles = writeCandles(dataDir, { 'KRW-BTC': BTC, 'KRW-ETH': 5_000_000 }, 'replay.jsonl');
    const env = { MAX_PRICE_DRIFT_PCT: '1', MARKET_DATA_REPLAY_FILE: candles };
    svc = await start(env, { dataDir });
    const p = await proposeAndWait(svc, needsPerson, 'awaiting-approval');
    expect(p.price).to.equal(BTC);
    expect(await svc.stop()).to.equal(0);

    writeCandles(dataDir, { 'KRW-BTC': BTC * 1.05, 'KRW-ETH': 5_000_000 }, 'replay.jsonl');
    svc = await start(env, { dataDir });
    expect((await svc.api('GET', `/api/proposals/${p.id}`)).body.state).to.equal('awaiting-approval');

    const res = await svc.api('POST', `/api/proposals/${p.id}/approve`, { by: 'alice' });
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    // The answer waits for the re-check (at most MARKET_DATA_TIMEOUT_MS) and tells its outcome.
    expect(res.body.state, 'the approve answer tells the re-check outcome').to.equal('rejected');
    expect(res.body.outcome).to.include({ code: 'stale_price' });
    const rejected = await proposalIn(svc, p.id, 'rejected');
    expect(rejected.outcome).to.include({ state: 'rejected', code: 'stale_price' });
    const last = rejected.history.at(-1);
    expect(last.state).to.equal('rejected');
    expect(last.reason).to.be.a('string').and.match(/5(\.00)?%/);
    expect(rejected).not.to.have.property('fill');
    const portfolio = await svc.api('GET', '/api/portfolio');
    expect(portfolio.body.positions).to.deep.equal([]);
    expect(portfolio.body.cash).to.equal(INITIAL_CASH);
  });
});

describe('risk cap over HTTP', function () {
  this.timeout(120_000);
  let svc: ServiceHandle;

  before(async () => {
    svc = await start({ RISK_MAX_POSITION_PCT: '1' });
  });

  after(async () => {
    await dispose(svc);
  });

  it('caps the notional to RISK_MAX_POSITION_PCT of equity when the signal asks for more', async () => {
    const p = await proposeAndWait(svc, { symbol: 'KRW-BTC', action: 'buy', confidence: 0.9, size: 300_000 }, 'settled');
    expect(p.requestedNotional).to.equal(300_000);
    expect(p.notional).to.equal(INITIAL_CASH * 0.01);
    expect(p.risk.kind).to.equal('cap');
    expect(p.fill.notional).to.be.closeTo(100_000, 1e-6);
    expect(p.fill.quantity).to.be.closeTo(100_000 / BTC, 1e-12);
  });

  it('shows the capped notional while waiting for a person when the signal asks for more', async () => {
    const equity = (await svc.api('GET', '/api/portfolio')).body.equity as number;
    const p = await proposeAndWait(svc, { symbol: 'KRW-ETH', action: 'buy', confidence: 0.5, size: 300_000 }, 'awaiting-approval');
    expect(p.requestedNotional).to.equal(300_000);
    expect(p.notional).to.be.closeTo(equity * 0.01, 1e-6);
    expect(p.risk.kind).to.equal('cap');
    expect(p.risk.notional).to.be.closeTo(equity * 0.01, 1e-6);
    await svc.api('POST', `/api/proposals/${p.id}/reject`, { by: 'cleanup' });
  });
});

describe('service shutdown', function () {
  this.timeout(120_000);
  let svc: ServiceHandle | undefined;

  after(async () => {
    await dispose(svc);
  });

  it('exits 0 and journals service.stopped when sent SIGTERM', async () => {
    svc = await start();
    await proposeAndWait(svc, needsPerson, 'awaiting-approval');
    expect(await svc.stop()).to.equal(0);
    const journal = readJournal(svc.dataDir);
    expect(journal.at(-1)).to.include({ type: 'service.stopped' });
  });
});
