import fs from 'node:fs';
import { expect } from 'chai';
import { startService, waitFor, type ServiceHandle } from '../support/service-process';

describe('kill switch (POST /api/trading-state)', function () {
  this.timeout(90_000);
  let svc: ServiceHandle;
  afterEach(async () => {
    await svc?.kill();
    if (svc) fs.rmSync(svc.dataDir, { recursive: true, force: true });
  });

  const proposalOf = async (signalId: string) => waitFor(async () => {
    const s = (await svc.api('GET', `/api/signals/${signalId}`)).body;
    return s.status === 'received' ? undefined : s;
  }, 'the signal to be processed');

  it('halted cancels proposals waiting for a person, drops new signals, survives a restart; active trades again', async () => {
    svc = await startService();
    const waiting = await svc.api('POST', '/api/signals', { symbol: 'KRW-BTC', action: 'buy', confidence: 0.5, size: 50_000 });
    const w = await proposalOf(waiting.body.signalId);
    await waitFor(async () => ((await svc.api('GET', `/api/proposals/${w.proposalId}`)).body.state === 'awaiting-approval' ? true : undefined), 'awaiting');

    const halt = await svc.api('POST', '/api/trading-state', { state: 'halted', by: 'ops', reason: 'exchange incident' });
    expect(halt.status).to.equal(200);
    expect(halt.body.cancelled).to.equal(1);
    expect(halt.body.state.tradingState).to.equal('halted');
    const cancelled = await waitFor(async () => {
      const p = (await svc.api('GET', `/api/proposals/${w.proposalId}`)).body;
      return p.state === 'rejected' ? p : undefined;
    }, 'the waiting proposal to be cancelled');
    expect(cancelled.outcome.code).to.equal('cancelled');
    expect(cancelled.outcome.by).to.equal('api (ops)');

    const dropped = await svc.api('POST', '/api/signals', { symbol: 'KRW-ETH', action: 'buy', confidence: 0.9, size: 50_000 });
    expect((await proposalOf(dropped.body.signalId)).reason).to.equal('halted');

    const dataDir = svc.dataDir;
    await svc.stop();
    svc = await startService({ dataDir });
    expect((await svc.api('GET', '/api/state')).body.tradingState).to.equal('halted');

    const bad = await svc.api('POST', '/api/trading-state', { state: 'off', by: 'ops' });
    expect(bad.status).to.equal(400);
    expect(bad.body.issues.map((i: { path: string }) => i.path)).to.include('state');

    await svc.api('POST', '/api/trading-state', { state: 'active', by: 'ops', reason: 'incident over' });
    const again = await svc.api('POST', '/api/signals', { symbol: 'KRW-ETH', action: 'buy', confidence: 0.9, size: 50_000 });
    const p = await proposalOf(again.body.signalId);
    expect(p.status).to.equal('proposed');
    await waitFor(async () => ((await svc.api('GET', `/api/proposals/${p.proposalId}`)).body.state === 'settled' ? true : undefined), 'settled');
  });
});
