import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { WebSocket } from 'ws';
import { assign, createActor, setup } from 'xstate';
import { BRIDGE_PAGE, INSPECTOR_UI, openInspector, sanitiseInspection, type Inspector } from '../../src/runtime/inspector';
import { Orchestrator, type ProposalServices } from '../../src/runtime/orchestrator';
import { WalProposalStore } from '../../src/persistence/proposal-store';
import { NodeStorageIo } from '../../src/persistence/storage-io';
import { ProposalArchive } from '../../src/journal/tracker';
import { TradeLog } from '../../src/journal/trade-log';
import { ReservationBook } from '../../src/portfolio/reservations';
import { silentLogger } from '../../src/logging';
import { secretScrubber } from '../../src/redaction';
import { loadConfig } from '../../src/config';
import { amount } from '../../src/amounts';
import { makeDraft } from '../fakes/proposal-fixtures';
import { waitFor } from '../support/service-process';
import { listeningAddresses, tryConnect } from '../support/listeners';

const WEBHOOK = 'unit-webhook-secret-0123456789';
const TOKEN = 'unit-api-token-0123456789abcdef';
const RAW_MARKER = 'RAW-BODY-MARKER-7f3a';
const redact = secretScrubber([WEBHOOK, TOKEN]);

type Message = Record<string, any>;

/** A page's view of the relay: every message it received, parsed. */
async function connect(port: number, origin?: string): Promise<{ ws: WebSocket; messages: Message[] }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, origin ? { origin } : {});
  const messages: Message[] = [];
  ws.on('message', (data) => messages.push(JSON.parse(String(data)) as Message));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, messages };
}

/** Services where a person must approve and the fill is instant. */
const services: ProposalServices = {
  assess: async (ctx) => ({ at: Date.now(), risk: { kind: 'allow', notional: ctx.notional, reasons: [] }, approval: { approvers: 1, allowPartial: true, reasons: [] } }),
  recheck: async (ctx) => ({ at: Date.now(), ok: true, price: ctx.price, driftPct: 0 }),
  execute: async (ctx) => {
    const at = new Date().toISOString();
    return {
      at: Date.now(),
      order: { clientOrderId: ctx.clientOrderId, venueOrderId: 'v', venue: 'paper', symbol: ctx.symbol, side: ctx.side, status: 'filled', filledQuantity: '1', avgPrice: amount(ctx.price), fee: '0', submittedAt: at, updatedAt: at },
      fill: { quantity: '1', price: amount(ctx.price), fee: '0', notional: amount(ctx.price), at },
    };
  },
};

describe('XState inspector relay', function () {
  this.timeout(20_000);
  let dir: string;
  let inspector: Inspector | null;
  const opened: Array<{ close(): Promise<void> }> = [];

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatops-inspect-'));
    inspector = null;
  });
  afterEach(async () => {
    for (const o of opened.splice(0).reverse()) await o.close();
    await inspector?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function open(port = 0): Promise<Inspector> {
    inspector = await openInspector({ port, dataDir: dir, redact, logger: silentLogger() });
    return inspector;
  }

  async function orchestrator(inspect: Inspector['inspect']): Promise<Orchestrator> {
    const io = new NodeStorageIo();
    const { store } = await WalProposalStore.open(io, dir);
    const archive = new ProposalArchive(io, path.join(dir, 'journal'));
    const journal = new TradeLog(io, path.join(dir, 'journal'));
    const o = new Orchestrator({ store, archive, journal, logger: silentLogger(), services, reservations: new ReservationBook(), inspect });
    opened.push({ close: async () => { await o.stop(); await store.close(); await Promise.all([archive.close(), journal.close()]); } });
    await o.restore();
    return o;
  }

  function fileLines(): Message[] {
    const file = path.join(dir, 'logs', 'xstate-inspect.jsonl');
    return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Message);
  }

  it('listens on 127.0.0.1 only and serves the bridge page that embeds the Stately inspector', async () => {
    const { address, url } = await open();
    expect(address?.host).to.equal('127.0.0.1');
    expect(url).to.equal(`http://127.0.0.1:${address!.port}/`);
    // The kernel's view, not the relay's own word.
    expect(listeningAddresses(address!.port)).to.deep.equal(['127.0.0.1']);
    const res = await fetch(url!);
    expect(res.status).to.equal(200);
    const html = await res.text();
    expect(html).to.equal(BRIDGE_PAGE);
    expect(html).to.include(`<iframe id="inspector" title="Stately inspector" src="${INSPECTOR_UI}">`);
    expect(html).to.include('@statelyai.connected');
    // The page's script is valid JavaScript.
    const script = /<script>([\s\S]*)<\/script>/.exec(html)![1]!;
    expect(() => new Function(script)).not.to.throw();
    expect((await fetch(`${url}other`)).status).to.equal(404);
  });

  it('sends @xstate.actor and @xstate.snapshot for a new proposal and again when its dormant proposal wakes for a decision', async () => {
    const insp = await open();
    const page = await connect(insp.address!.port);
    const o = await orchestrator(insp.inspect);
    const draft = makeDraft({ id: 'p-inspect-1', deadline: Date.now() + 60_000, createdAt: Date.now() });
    await o.start(draft);
    await waitFor(() => (o.view(draft.id)?.state === 'awaiting-approval' ? true : undefined), 'awaiting approval');
    const first = await waitFor(() => page.messages.find((m) => m.type === '@xstate.snapshot' && m.snapshot?.value === 'awaiting-approval' && m.snapshot?.context?.id === draft.id), 'a snapshot awaiting approval');
    const actor = page.messages.find((m) => m.type === '@xstate.actor' && m.name === draft.id);
    expect(actor, 'the proposal actor is announced').to.not.equal(undefined);
    expect(actor!.sessionId).to.equal(first.sessionId);
    expect(JSON.parse(actor!.definition as string)).to.have.property('id', 'proposal');
    expect(actor!._version).to.be.a('string');

    // Waiting costs no actor; the approval wakes one, and the inspector sees it.
    const before = page.messages.length;
    await o.approve(draft.id, 'alice');
    await waitFor(() => (o.view(draft.id)?.state === 'settled' ? true : undefined), 'settled');
    const woken = await waitFor(() => page.messages.slice(before).find((m) => m.type === '@xstate.actor' && m.name === draft.id), 'the woken actor announced');
    expect(woken.sessionId).to.not.equal(first.sessionId);
    await waitFor(() => page.messages.slice(before).find((m) => m.type === '@xstate.snapshot' && m.sessionId === woken.sessionId && m.snapshot?.value === 'settled'), 'a settled snapshot of the woken actor');
    const given = page.messages.find((m) => m.type === '@xstate.event' && m.event?.type === 'approval.given');
    expect(given?.event.by).to.equal('alice');
  });

  it('scrubs configured secrets and omits raw bodies in every relayed message and every file line', async () => {
    const insp = await open();
    const page = await connect(insp.address!.port);
    const o = await orchestrator(insp.inspect);
    const draft = {
      ...makeDraft({ id: 'p-inspect-2', deadline: Date.now() + 60_000, createdAt: Date.now(), explanation: `careless template with ${TOKEN} in it` }),
      raw: `{"secret":"${WEBHOOK}","note":"${RAW_MARKER}"}`,
      headers: { authorization: `Bearer ${TOKEN}` },
    };
    await o.start(draft);
    await o.reject(draft.id, 'alice', `reason quoting ${WEBHOOK}`);
    await waitFor(() => page.messages.find((m) => m.type === '@xstate.snapshot' && m.snapshot?.value === 'rejected'), 'the rejected snapshot');
    await waitFor(() => (fileLines().some((l) => l.value === 'rejected') ? true : undefined), 'the rejected line on disk');
    const relayed = JSON.stringify(page.messages);
    const written = fs.readFileSync(path.join(dir, 'logs', 'xstate-inspect.jsonl'), 'utf8');
    for (const [where, text] of [['relay', relayed], ['file', written]] as const) {
      for (const secret of [WEBHOOK, TOKEN, RAW_MARKER]) expect(text, `${where} holds ${secret}`).not.to.include(secret);
      // What was there is marked, not silently gone.
      expect(text, where).to.include('[redacted]');
      expect(text, where).to.include('"raw":"[omitted]"');
      expect(text, where).to.include('"headers":"[omitted]"');
    }
    const line = fileLines().find((l) => l.type === '@xstate.snapshot' && l.value === 'rejected')!;
    expect(line.actor).to.equal(draft.id);
    expect(line.context.explanation).to.equal('careless template with [redacted] in it');
  });

  it('keeps a bounded number of messages for a page that connects later, then goes on live', async () => {
    const insp = await open();
    const machine = setup({ types: { context: {} as { n: number } } }).createMachine({ id: 'ticker', context: { n: 0 }, on: { tick: { actions: assign({ n: ({ context }) => context.n + 1 }) } } });
    const actor = createActor(machine, { id: 'ticker-1', inspect: insp.inspect });
    actor.start();
    for (let i = 0; i < 500; i++) actor.send({ type: 'tick' });
    // The library converts each event on a timer of its own; a timer queued after them runs after them.
    await new Promise((r) => setTimeout(r, 0));
    const page = await connect(insp.address!.port);
    await waitFor(() => (page.messages.length >= 200 ? true : undefined), 'the replayed messages');
    actor.send({ type: 'tick' });
    await waitFor(() => page.messages.find((m) => m.type === '@xstate.snapshot' && m.snapshot?.context?.n === 501), 'a live message');
    // Exactly the last 200 messages before the page came (the newest: the 500th tick's snapshot), then live ones.
    expect(page.messages[199]).to.deep.include({ type: '@xstate.snapshot' });
    expect(page.messages[199]!.snapshot.context.n).to.equal(500);
    expect(page.messages[200]).to.deep.include({ type: '@xstate.event' });
    expect(page.messages[200]!.event.type).to.equal('tick');
    actor.stop();
  });

  it('refuses sockets from pages of other sites and takes them from pages on this machine', async () => {
    const { address } = await open();
    const refused = new WebSocket(`ws://127.0.0.1:${address!.port}/`, { origin: 'https://evil.example' });
    const status = await new Promise<number>((resolve) => {
      refused.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      refused.once('open', () => resolve(101));
      refused.once('error', () => undefined);
    });
    expect(status).to.equal(403);
    const tunnelled = await connect(address!.port, 'http://localhost:18099');
    tunnelled.ws.close();
  });

  it('closes the relay on close: nothing listens afterwards, and inspecting then never throws', async () => {
    const insp = await open();
    const port = insp.address!.port;
    const page = await connect(port);
    const closed = new Promise<void>((resolve) => page.ws.once('close', () => resolve()));
    await insp.close();
    await closed;
    expect(await tryConnect(port)).to.equal('ECONNREFUSED');
    const actor = createActor(setup({}).createMachine({ id: 'late' }), { inspect: insp.inspect });
    expect(() => actor.start()).not.to.throw();
    actor.stop();
  });

  it('goes on with the file alone when the port is taken', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    try {
      const port = (blocker.address() as net.AddressInfo).port;
      const insp = await open(port);
      expect(insp.url).to.equal(null);
      const actor = createActor(setup({}).createMachine({ id: 'file-only', context: { n: 1 } }), { id: 'file-only-1', inspect: insp.inspect });
      actor.start();
      actor.stop();
      await waitFor(() => (fs.existsSync(path.join(dir, 'logs', 'xstate-inspect.jsonl')) && fileLines().some((l) => l.actor === 'file-only-1' && l.type === '@xstate.snapshot') ? true : undefined), 'the file line');
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });
});

describe('sanitiseInspection', () => {
  it('reduces errors and big integers to plain data and marks raw bodies and secret-keyed values', () => {
    const out = sanitiseInspection({ error: new Error(`bad ${TOKEN}`), nested: [{ rawBody: 'x', apiKey: 'k', password: '' }], n: 1n }, redact);
    expect(out).to.deep.equal({ error: { name: 'Error', message: 'bad [redacted]' }, nested: [{ rawBody: '[omitted]', apiKey: '[redacted]', password: '' }], n: '1' });
  });
});

describe('XSTATE_INSPECT_PORT (config)', () => {
  it('defaults to 8099 and takes 0 for any free port', () => {
    expect(loadConfig({}).xstateInspectPort).to.equal(8099);
    expect(loadConfig({ XSTATE_INSPECT_PORT: '0' }).xstateInspectPort).to.equal(0);
  });
  it('refuses a port that is not one, or PORT itself while inspection is on', () => {
    expect(() => loadConfig({ XSTATE_INSPECT_PORT: '70000' })).to.throw(/XSTATE_INSPECT_PORT/);
    expect(() => loadConfig({ XSTATE_INSPECT: 'true', PORT: '9000', XSTATE_INSPECT_PORT: '9000' })).to.throw(/XSTATE_INSPECT_PORT: must differ from PORT/);
    expect(loadConfig({ XSTATE_INSPECT: 'false', PORT: '9000', XSTATE_INSPECT_PORT: '9000' }).xstateInspectPort).to.equal(9000);
  });
});
