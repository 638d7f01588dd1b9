import fs from 'node:fs';
import { expect } from 'chai';
import { startService, waitFor, type ServiceHandle } from '../support/service-process';

/** Reads server-sent events from a fetch body until `until` has seen what it wants. */
async function readEvents(res: Response, until: (events: Array<{ event: string; data: any }>) => boolean): Promise<Array<{ event: string; data: any }>> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: Array<{ event: string; data: any }> = [];
  let buffer = '';
  const deadline = Date.now() + 15_000;
  while (!until(events)) {
    if (Date.now() > deadline) throw new Error(`events so far: ${JSON.stringify(events.map((e) => e.event))}`);
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = /^event: (.*)$/m.exec(frame)?.[1];
      const data = /^data: (.*)$/m.exec(frame)?.[1];
      if (event && data) events.push({ event, data: JSON.parse(data) });
    }
  }
  await reader.cancel();
  return events;
}

describe('operator console (GET /) and its API', function () {
  this.timeout(60_000);
  const ALICE = 'alice-operator-token-0123456789';
  let svc: ServiceHandle;
  before(async () => { svc = await startService({ env: { OPERATOR_TOKENS: `alice:${ALICE}`, APPROVAL_TIMEOUT_SECONDS: '600' } }); });
  after(async () => {
    await svc.stop();
    fs.rmSync(svc.dataDir, { recursive: true, force: true });
  });

  it('serves the page, its script and style from this origin only, with the token input labelled and no secret in them', async () => {
    const res = await fetch(`${svc.url}/`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/text\/html/);
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).to.include("default-src 'self'");
    expect(csp).to.not.include('unsafe-inline');
    const html = await res.text();
    expect(html).to.match(/<label for="token">API token<\/label>/);
    expect(html).to.not.include('<script>');
    const js = await fetch(`${svc.url}/console.js`);
    expect(js.headers.get('content-type')).to.match(/javascript/);
    const script = await js.text();
    // Values are written as text, and the token only ever goes out in the Authorization header.
    expect(script).to.not.match(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|new EventSource|prompt\(/);
    expect(script).to.include("authorization: 'Bearer ' + token");
    expect((await fetch(`${svc.url}/console.css`)).headers.get('content-type')).to.match(/text\/css/);
    for (const body of [html, script]) expect(body).to.not.include(svc.token);
  });

  it('GET /api/whoami names the token\'s principal; the shared token must give a label', async () => {
    expect((await svc.api('GET', '/api/whoami')).body).to.deep.equal({ principal: 'api', shared: true, labelRequired: true });
    const alice = await svc.api('GET', '/api/whoami', undefined, { authorization: `Bearer ${ALICE}` });
    expect(alice.body).to.deep.equal({ principal: 'alice', shared: false, labelRequired: false });
    expect((await svc.api('GET', '/api/whoami', undefined, { authorization: 'Bearer wrong' })).status).to.equal(401);
  });

  it('GET /api/events needs the bearer header (a token in the URL is refused) and starts with a snapshot, then durable changes', async () => {
    expect((await fetch(`${svc.url}/api/events`)).status).to.equal(401);
    expect((await fetch(`${svc.url}/api/events?token=${svc.token}`)).status).to.equal(401);

    const res = await fetch(`${svc.url}/api/events`, { headers: { authorization: `Bearer ${ALICE}` } });
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^text\/event-stream/);
    const sent = await svc.api('POST', '/api/signals', { symbol: 'KRW-ETH', action: 'buy', size: 100_000, confidence: 0.5 });
    const events = await readEvents(res, (evs) => evs.some((e) => e.event === 'proposal' && e.data.state === 'awaiting-approval'));
    expect(events[0]!.event).to.equal('snapshot');
    expect(events[0]!.data.principal).to.equal('alice');
    expect(events[0]!.data).to.have.keys('principal', 'state', 'pending', 'awaitingApproval', 'portfolio', 'signals');
    const signal = events.find((e) => e.event === 'signal' && e.data.id === sent.body.signalId);
    expect(signal?.data).to.include({ source: 'api', symbol: 'ETH/KRW', action: 'buy' });
    const proposal = events.find((e) => e.event === 'proposal' && e.data.state === 'awaiting-approval')!.data;
    expect(proposal.signalId).to.equal(sent.body.signalId);
    expect(proposal.priceOnApproval.kind).to.equal('entry_checked');
    expect(proposal.priceOnApproval.maxDriftPct).to.be.a('number');
    expect(Date.parse(proposal.priceOnApproval.standsUntil)).to.be.greaterThan(Date.parse(proposal.createdAt));

    // The same proposal in GET /api/pending, with what approving does to its price.
    const answer = (await svc.api('GET', '/api/pending')).body;
    expect(answer.total).to.equal(answer.proposals.length);
    const pending = answer.proposals;
    expect(pending.map((p: { id: string }) => p.id)).to.include(proposal.id);
    expect(pending.find((p: { id: string }) => p.id === proposal.id).priceOnApproval).to.deep.equal(proposal.priceOnApproval);
  });

  it('GET /api/signals lists recent signals newest first, a dropped one with its code and reason, and a duplicate', async () => {
    const held = await svc.api('POST', '/api/signals', { symbol: 'KRW-BTC', action: 'exit' });
    const dupe = { symbol: 'KRW-BTC', action: 'buy', size: 60_000, confidence: 0.5, id: 'tv-alert-7' };
    const first = await svc.api('POST', '/api/signals', dupe);
    expect((await svc.api('POST', '/api/signals', dupe)).body.status).to.equal('duplicate');
    const list = await waitFor(async () => {
      const got = (await svc.api('GET', '/api/signals?limit=5')).body.signals as Array<Record<string, any>>;
      return got.some((s) => s['id'] === held.body.signalId && s['status'] === 'dropped') && got.some((s) => s['status'] === 'duplicate') ? got : undefined;
    }, 'the dropped and the duplicate signal');
    const dropped = list.find((s) => s['id'] === held.body.signalId)!;
    expect(dropped['code']).to.be.a('string').and.not.equal('');
    expect(dropped['reason']).to.be.a('string').and.not.equal('');
    expect(list.find((s) => s['status'] === 'duplicate')!['duplicateOf']).to.equal(first.body.signalId);
    expect(list[0]!['status']).to.equal('duplicate');
    // Its registry record keeps the words too.
    expect((await svc.api('GET', `/api/signals/${held.body.signalId}`)).body.detail).to.equal(dropped['reason']);
    for (const bad of ['0', '201', 'x']) {
      const res = await svc.api('GET', `/api/signals?limit=${bad}`);
      expect(res.status).to.equal(400);
      expect(res.body.issues[0].path).to.equal('limit');
    }
  });

  it('after a restart the recent signals come from the signal records, dropped ones with their reason', async () => {
    const before = (await svc.api('GET', '/api/signals?limit=200')).body.signals as Array<Record<string, any>>;
    await svc.stop();
    const again = await startService({ dataDir: svc.dataDir, env: { OPERATOR_TOKENS: `alice:${ALICE}` } });
    try {
      const after = (await again.api('GET', '/api/signals?limit=200')).body.signals as Array<Record<string, any>>;
      // Duplicates are not signals of their own: the registry keeps the first one only.
      const kept = before.filter((s) => s['status'] !== 'duplicate');
      expect(after.map((s) => [s['id'], s['status'], s['code'], s['reason']])).to.deep.equal(kept.map((s) => [s['id'], s['status'], s['code'], s['reason']]));
    } finally {
      svc = again;
    }
  });
});
