/**
 * The XState inspector relay in the real process: off, nothing listens on XSTATE_INSPECT_PORT; on,
 * a page connected to the relay sees `@xstate.snapshot`s of a proposal restored from before the
 * restart (woken by its approval) and of a new one made by a signal, the relay listens on loopback
 * only even with HOST=0.0.0.0, and no secret or raw webhook body reaches a message or the
 * JSON-lines file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { WebSocket } from 'ws';
import { freePort, readJournal, startService, tempDir, waitFor, writeCandles, type ServiceHandle } from '../support/service-process';
import { listeningAddresses, tryConnect } from '../support/listeners';

const WEBHOOK = 'test-webhook-secret-0123456789';
const ALICE = 'alice-operator-token-0123456789';
/** Only in the webhook's raw body (a field the signal does not keep): must reach no inspection event. */
const RAW_MARKER = 'raw-body-marker-5c1e9';
/** Below APPROVAL_MIN_CONFIDENCE (0.7): a person must approve. */
const MANUAL_BUY = { symbol: 'KRW-BTC', action: 'buy', confidence: 0.5, size: 50_000 };

type Message = Record<string, any>;

describe('XState inspector relay (real process)', function () {
  this.timeout(120_000);
  const dir = tempDir('chatops-inspect-e2e-');
  let svc: ServiceHandle | null = null;
  let relayPort: number;
  let restoredId: string;
  let candles: string;

  before(async () => {
    relayPort = await freePort();
    candles = writeCandles(dir, { 'KRW-BTC': 100_000_000, 'KRW-ETH': 5_000_000, 'KRW-XRP': 800 }, '.candles.jsonl');
  });
  after(async () => {
    await svc?.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const env = (inspect: boolean, extra: Record<string, string> = {}) => ({
    MARKET_DATA_SOURCE: 'replay', MARKET_DATA_REPLAY_FILE: candles,
    OPERATOR_TOKENS: `alice:${ALICE}`, XSTATE_INSPECT: String(inspect), XSTATE_INSPECT_PORT: String(relayPort), ...extra,
  });

  async function proposalOf(s: ServiceHandle, signalId: string): Promise<string> {
    return waitFor(async () => {
      const r = await s.api('GET', `/api/signals/${signalId}`);
      if (r.body.status === 'dropped') throw new Error(`signal ${signalId} dropped: ${JSON.stringify(r.body)}`);
      return r.body.status === 'proposed' ? (r.body.proposalId as string) : undefined;
    }, `signal ${signalId} proposed`);
  }

  async function awaiting(s: ServiceHandle, id: string): Promise<void> {
    await waitFor(async () => ((await s.api('GET', `/api/proposals/${id}`)).body.state === 'awaiting-approval' ? true : undefined), `${id} awaiting approval`);
  }

  it('listens nowhere when XSTATE_INSPECT=false', async () => {
    svc = await startService({ dataDir: dir, env: env(false) });
    const sent = await svc.api('POST', '/api/signals', { ...MANUAL_BUY, strategy: `tpl ${WEBHOOK}` });
    expect(sent.status).to.equal(202);
    restoredId = await proposalOf(svc, sent.body.signalId as string);
    await awaiting(svc, restoredId);
    expect(await tryConnect(relayPort)).to.equal('ECONNREFUSED');
    expect(listeningAddresses(relayPort)).to.deep.equal([]);
    expect(fs.existsSync(path.join(dir, 'logs', 'xstate-inspect.jsonl'))).to.equal(false);
    expect(svc.output()).not.to.include('XState inspector on');
    expect(await svc.stop()).to.equal(0);
    svc = null;
  });

  it('relays snapshots of a restored proposal woken by its approval and of a new one, on loopback only, without secrets or raw bodies', async () => {
    svc = await startService({ dataDir: dir, env: env(true, { HOST: '0.0.0.0' }) });
    const s = svc;
    expect(s.output()).to.include(`XState inspector on http://127.0.0.1:${relayPort}/`);
    // The kernel's listeners: the service on every interface as asked, the relay on loopback alone.
    expect(listeningAddresses(relayPort)).to.deep.equal(['127.0.0.1']);

    const ws = new WebSocket(`ws://127.0.0.1:${relayPort}/`);
    const messages: Message[] = [];
    const texts: string[] = [];
    ws.on('message', (data) => {
      texts.push(String(data));
      messages.push(JSON.parse(String(data)) as Message);
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    try {
      const snapshotsOf = (id: string) => messages.filter((m) => m.type === '@xstate.snapshot' && m.snapshot?.context?.id === id);

      // Restored: waiting costs no actor, so the approval wakes one, and the inspector sees it.
      await awaiting(s, restoredId);
      const approved = await s.api('POST', `/api/proposals/${restoredId}/approve`, {}, { authorization: `Bearer ${ALICE}` });
      expect(approved.status, JSON.stringify(approved.body)).to.equal(200);
      await waitFor(() => snapshotsOf(restoredId).find((m) => m.snapshot.value === 'settled'), 'a settled snapshot of the restored proposal');
      expect(messages.some((m) => m.type === '@xstate.actor' && m.name === restoredId)).to.equal(true);

      // New: a signal through the API, and one through the webhook whose raw body is kept in the journal.
      const manual = await s.api('POST', '/api/signals', { ...MANUAL_BUY, symbol: 'KRW-XRP', strategy: `careless ${ALICE}` });
      const newId = await proposalOf(s, manual.body.signalId as string);
      await waitFor(() => snapshotsOf(newId).find((m) => m.snapshot.value === 'awaiting-approval'), 'an awaiting snapshot of the new proposal');
      const hook = await fetch(`${s.url}/webhook/tradingview`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ secret: WEBHOOK, ticker: 'UPBIT:ETHKRW', action: 'buy', confidence: '0.5', size: '50000', note: RAW_MARKER, strategy: `tpl ${s.token}` }),
      });
      expect(hook.status).to.equal(202);
      const hookId = await proposalOf(s, ((await hook.json()) as { signalId: string }).signalId);
      await waitFor(() => snapshotsOf(hookId).find((m) => m.snapshot.value === 'awaiting-approval'), 'an awaiting snapshot of the webhook proposal');
      const rejected = await s.api('POST', `/api/proposals/${hookId}/reject`, { reason: `quoting ${WEBHOOK}` }, { authorization: `Bearer ${ALICE}` });
      expect(rejected.status).to.equal(200);
      await waitFor(() => snapshotsOf(hookId).find((m) => m.snapshot.value === 'rejected'), 'a rejected snapshot');

      // The raw body is there to leak (the journal keeps it), yet no inspection event carries it.
      expect(JSON.stringify(readJournal(dir))).to.include(RAW_MARKER);
      const file = fs.readFileSync(path.join(dir, 'logs', 'xstate-inspect.jsonl'), 'utf8');
      for (const id of [restoredId, newId, hookId]) expect(file, `file lines of ${id}`).to.include(`"actor":"${id}"`);
      for (const [where, text] of [['relay', texts.join('\n')], ['file', file]] as const) {
        for (const secret of [WEBHOOK, s.token, ALICE, RAW_MARKER]) expect(text, `${where} holds ${secret}`).not.to.include(secret);
      }
    } finally {
      ws.terminate();
    }

    // Stop closes the relay.
    expect(await s.stop()).to.equal(0);
    svc = null;
    expect(await tryConnect(relayPort)).to.equal('ECONNREFUSED');
  });
});
