/**
 * The Telegram ChatOps gate end to end: the real service as a child process (own DATA_DIR,
 * replay prices, paper venue) talks to the Bot API emulator `telegram-test-api` on loopback;
 * people are emulator clients that tap buttons and send commands. What is checked is what a
 * person sees in the chat (cards, edits, replies, answers) and what happened (proposal states
 * over the operator API, orders in the paper venue's file, the journal).
 */
import fs from 'node:fs';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import path from 'node:path';
import { expect } from 'chai';
import { readJournal, startService, tempDir, waitFor, writeCandles, type ServiceHandle } from '../support/service-process';
import { paperVenueOrders } from '../support/store-files';
import { TelegramEmulator, type BotMessage, type EmulatorClient } from '../fakes/telegram-emulator';

const CHAT_ID = '-1001';
const ALICE = 1001;
const BOB = 1002;
const STRANGER = 9999;
const BTC_PRICE = 100_000_000;
const TZ = 'Asia/Seoul';

/** Below APPROVAL_MIN_CONFIDENCE (0.7): a person must approve. */
const MANUAL_BUY = { symbol: 'KRW-BTC', action: 'buy', confidence: 0.5, size: 50_000 };

interface Proposal {
  id: string;
  state: string;
  deadline: string;
  approvals: Array<{ by: string; at: string }>;
  history: Array<{ state: string; at: string; by?: string; reason?: string }>;
  /** Numbers for display; `exact` holds the decimal text. */
  fill?: { quantity: number; price: number; fee: number; notional: number; exact: { quantity: string; price: string; fee: string; notional: string } };
}
/** A paper order as the venue's store holds it: amounts are exact decimal text. */
interface PaperOrder { clientOrderId: string; status: string; side: string; filledQuantity: string }

/** `YYYY-MM-DD HH:MM:SS` in the trading time zone, as a person reads a card. */
function localTime(iso: string): string {
  return new Date(iso).toLocaleString('sv-SE', { timeZone: TZ, hour12: false });
}

describe('Telegram ChatOps gate (real service, telegram-test-api)', function () {
  this.timeout(60_000);

  let services: ServiceHandle[] = [];
  let emulators: TelegramEmulator[] = [];
  let dirs: string[] = [];

  afterEach(async function () {
    const failed = this.currentTest?.state === 'failed';
    await Promise.all(services.map((s) => s.kill()));
    await Promise.all(emulators.map((e) => e.stop().catch(() => undefined)));
    if (failed) {
      for (const s of services) process.stderr.write(`\n--- service output (${s.url}) ---\n${s.output().slice(-4000)}\n`);
      for (const e of emulators) {
        const calls = e.calls.filter((c) => c.method !== 'getUpdates').map((c) => `${c.instance} ${c.status} ${c.method} ${JSON.stringify(c.params).slice(0, 300)}`);
        process.stderr.write(`\n--- bot API calls (${e.apiURL}) ---\n${calls.join('\n')}\n`);
      }
    }
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    services = [];
    emulators = [];
    dirs = [];
  });

  // ---- set-up

  function telegramEnv(emu: TelegramEmulator): Record<string, string> {
    return { TELEGRAM_BOT_TOKEN: emu.token, TELEGRAM_API_ROOT: emu.apiURL, TELEGRAM_CHAT_ID: CHAT_ID, TELEGRAM_ALLOWED_USER_IDS: `${ALICE},${BOB}` };
  }

  async function launch(dir: string, env: Record<string, string>): Promise<ServiceHandle> {
    const svc = await startService({ dataDir: dir, env, waitReady: false });
    services.push(svc); // tracked before waiting, so a start that hangs is still killed
    await svc.waitReady(30_000);
    return svc;
  }

  interface World {
    emu: TelegramEmulator;
    svc: ServiceHandle;
    dir: string;
    env: Record<string, string>;
    alice: EmulatorClient;
    bob: EmulatorClient;
  }

  /** An emulator, the service pointed at it, and two allowed people in the group chat. */
  async function world(extraEnv: Record<string, string> = {}): Promise<World> {
    const emu = await TelegramEmulator.start();
    emulators.push(emu);
    const dir = tempDir('chatops-tg-');
    dirs.push(dir);
    const env = { ...telegramEnv(emu), ...extraEnv };
    const svc = await launch(dir, env);
    return { emu, svc, dir, env, alice: emu.client(ALICE, { userName: 'alice' }), bob: emu.client(BOB, { userName: 'bob' }) };
  }

  // ---- the service

  async function postSignal(svc: ServiceHandle, body: Record<string, unknown>): Promise<string> {
    const res = await svc.api('POST', '/api/signals', body);
    expect(res.status, JSON.stringify(res.body)).to.equal(202);
    return res.body.signalId as string;
  }

  async function proposalOf(svc: ServiceHandle, signalId: string): Promise<string> {
    return waitFor(async () => {
      const res = await svc.api('GET', `/api/signals/${signalId}`);
      if (res.status !== 200) return undefined;
      if (res.body.status === 'dropped') throw new Error(`signal ${signalId} was dropped: ${res.body.reason}`);
      return res.body.status === 'proposed' ? (res.body.proposalId as string) : undefined;
    }, `signal ${signalId} to be proposed`, 15_000);
  }

  async function getProposal(svc: ServiceHandle, id: string): Promise<Proposal> {
    const res = await svc.api('GET', `/api/proposals/${id}`);
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    return res.body as Proposal;
  }

  async function waitState(svc: ServiceHandle, id: string, states: string[], timeoutMs = 15_000): Promise<Proposal> {
    let last = '';
    try {
      return await waitFor(async () => {
        const p = await getProposal(svc, id);
        last = p.state;
        return states.includes(p.state) ? p : undefined;
      }, `proposal ${id} to reach ${states.join(' or ')}`, timeoutMs);
    } catch (err) {
      throw new Error(`${(err as Error).message} (last state: ${last})`, { cause: err });
    }
  }

  /** Posts a signal and waits for its proposal to await a person. */
  async function awaiting(svc: ServiceHandle, body: Record<string, unknown> = MANUAL_BUY): Promise<Proposal> {
    const id = await proposalOf(svc, await postSignal(svc, body));
    return waitState(svc, id, ['awaiting-approval']);
  }

  function venueOrders(dir: string, proposalId: string): PaperOrder[] {
    return (paperVenueOrders(dir) as unknown as PaperOrder[]).filter((o) => o.clientOrderId.startsWith(`ct-${proposalId}`));
  }

  const journal = (dir: string, type: string, proposalId?: string) =>
    readJournal(dir).filter((r) => r['type'] === type && (proposalId === undefined || r['proposalId'] === proposalId));

  /** The card record the gate keeps in DATA_DIR/telegram.json. */
  function cardRecord(dir: string, proposalId: string): { status: string; messageId: number | null } | undefined {
    try {
      const doc = JSON.parse(fs.readFileSync(path.join(dir, 'telegram.json'), 'utf8')) as { cards: Record<string, { status: string; messageId: number | null }> };
      return doc.cards[proposalId];
    } catch {
      return undefined;
    }
  }

  // ---- the chat

  /** The card of a proposal once it is in the chat with its buttons. */
  async function waitCard(emu: TelegramEmulator, id: string): Promise<BotMessage> {
    return waitFor(() => {
      const card = emu.card(id);
      return card && card.keyboard && card.keyboard.length > 0 ? card : undefined;
    }, `the card of ${id} in the chat`, 15_000);
  }

  /** The card once it has been edited to its outcome (buttons removed). */
  async function waitCardOutcome(emu: TelegramEmulator, id: string, outcome: RegExp): Promise<BotMessage> {
    try {
      return await waitFor(() => {
        const card = emu.card(id);
        return card && outcome.test(card.text) && Array.isArray(card.keyboard) && card.keyboard.length === 0 ? card : undefined;
      }, `the card of ${id} to show ${outcome}`, 15_000);
    } catch (err) {
      throw new Error(`${(err as Error).message}; the card is now ${JSON.stringify(emu.card(id))}`, { cause: err });
    }
  }

  /** A bot message (not one of `before`) in `chatId` whose text matches. */
  async function waitMessage(emu: TelegramEmulator, match: RegExp, opts: { before?: Set<number>; chatId?: string; what?: string } = {}): Promise<BotMessage> {
    const chatId = opts.chatId ?? CHAT_ID;
    const fresh = () => emu.messages().filter((m) => !opts.before?.has(m.messageId) && m.chatId === chatId);
    try {
      return await waitFor(() => fresh().find((m) => match.test(m.text)), opts.what ?? `a message matching ${match} in ${chatId}`, 15_000);
    } catch (err) {
      throw new Error(`${(err as Error).message}; new messages: ${JSON.stringify(fresh().map((m) => m.text))}`, { cause: err });
    }
  }

  const seen = (emu: TelegramEmulator) => new Set(emu.messages().map((m) => m.messageId));

  /** Sends a command and returns the bot's reply (the first new message in that chat matching). */
  async function ask(emu: TelegramEmulator, client: EmulatorClient, text: string, reply: RegExp, chatId = CHAT_ID): Promise<BotMessage> {
    const before = seen(emu);
    await emu.command(client, text);
    return waitMessage(emu, reply, { before, chatId, what: `the reply to ${text}` });
  }

  /** Taps a button and waits for the callback query to be answered; returns the answer. */
  async function tap(emu: TelegramEmulator, client: EmulatorClient, data: string): Promise<{ id: string; text: string; alert: boolean }> {
    const answered = emu.answers().length;
    await emu.tap(client, data);
    return waitFor(() => emu.answers()[answered], `an answer to the tap on ${data}`, 15_000);
  }

  // ---- 1

  it('signal → card with every field (user text escaped) → Approve → paper fill → card edited → fill notice', async () => {
    const { emu, svc, dir, alice } = await world();
    const p = await awaiting(svc, { ...MANUAL_BUY, strategy: '<b>x</b> & co' });
    const card = await waitCard(emu, p.id);

    expect(card.chatId).to.equal(CHAT_ID);
    const text = card.text;
    expect(text).to.match(/^<b>BUY BTC\/KRW<\/b>/);
    expect(text).to.include('Size: 50,000 KRW');
    expect(text).to.include('Price: 100,000,000 KRW');
    expect(text).to.include('Confidence: 50%');
    expect(text).to.include('Risk: allowed');
    expect(text).to.match(/Reasons:\n• /);
    expect(text).to.match(/<i>Buy BTC\/KRW for about 50,000 KRW at 100,000,000 KRW[^<]*<\/i>/);
    expect(text).to.include(`Deadline: ${localTime(p.deadline)} (${TZ})`);
    // The strategy name is user text: escaped for HTML parse mode, never markup.
    expect(text).to.include('&lt;b&gt;x&lt;/b&gt; &amp; co');
    expect(text).to.not.include('<b>x</b>');
    expect(card.keyboard).to.deep.equal([[
      { text: '✅ Approve', callback_data: `approve:${p.id}` },
      { text: 'Approve 50%', callback_data: `half:${p.id}` },
      { text: '❌ Reject', callback_data: `reject:${p.id}` },
    ]]);

    const before = seen(emu);
    const answer = await tap(emu, alice, `approve:${p.id}`);
    expect(answer.text).to.equal('Approved.');
    const settled = await waitState(svc, p.id, ['settled', 'rejected', 'failed', 'timed-out']);
    expect(settled.state, JSON.stringify(settled.history)).to.equal('settled');
    expect(settled.fill?.quantity).to.equal(0.0005);
    const approved = settled.history.find((h) => h.state === 'approved');
    expect(approved?.by).to.equal(`tg:${ALICE}`);
    expect(venueOrders(dir, p.id).map((o) => o.status)).to.deep.equal(['filled']);

    const edited = await waitCardOutcome(emu, p.id, /✅ Settled/);
    expect(edited.messageId, 'edited in place').to.equal(card.messageId);
    expect(edited.text).to.include(`Approved by @alice at ${localTime(approved!.at)}`);
    expect(edited.text).to.include('Filled 0.0005 at 100,000,000 KRW');
    expect(emu.cardSends(p.id), 'the card was sent once').to.have.length(1);

    const notice = await waitMessage(emu, /Filled: BUY BTC\/KRW/, { before, what: 'the fill notice' });
    expect(notice.text).to.include(p.id);
    expect(notice.text).to.include('0.0005 at 100,000,000 KRW');
  });

  // ---- 2

  it('Reject: the proposal is rejected and the card shows who and when, without buttons', async () => {
    const { emu, svc, dir, alice } = await world();
    const p = await awaiting(svc);
    await waitCard(emu, p.id);
    const answer = await tap(emu, alice, `reject:${p.id}`);
    expect(answer.text).to.equal('Rejected.');
    const rejected = await waitState(svc, p.id, ['rejected', 'settled', 'failed', 'timed-out']);
    expect(rejected.state).to.equal('rejected');
    const entry = rejected.history.find((h) => h.state === 'rejected');
    expect(entry?.by).to.equal(`tg:${ALICE}`);
    const card = await waitCardOutcome(emu, p.id, /❌ Rejected/);
    expect(card.text).to.include(`Decided by @alice at ${localTime(entry!.at)}`);
    expect(venueOrders(dir, p.id)).to.have.length(0);
  });

  it('no answer: the deadline (APPROVAL_TIMEOUT_SECONDS=2) times it out and the card says "Timed out" without buttons', async () => {
    const { emu, svc, dir } = await world({ APPROVAL_TIMEOUT_SECONDS: '2' });
    const p = await awaiting(svc);
    await waitCard(emu, p.id);
    const before = seen(emu);
    const timedOut = await waitState(svc, p.id, ['timed-out', 'rejected', 'settled', 'failed']);
    expect(timedOut.state).to.equal('timed-out');
    const at = Date.parse(timedOut.history.find((h) => h.state === 'timed-out')!.at);
    expect(at, 'not before the deadline').to.be.at.least(Date.parse(p.deadline));
    const card = await waitCardOutcome(emu, p.id, /⌛ Timed out/);
    expect(card.text).to.include(`at ${localTime(new Date(at).toISOString())}`);
    await waitMessage(emu, new RegExp(`Timed out: BUY BTC/KRW[\\s\\S]*${p.id}`), { before, what: 'the timeout notice' });
    expect(venueOrders(dir, p.id)).to.have.length(0);
  });

  it('stale price at approval (restart with prices 5% higher): rejected, with the reason on the card', async () => {
    const emu = await TelegramEmulator.start();
    emulators.push(emu);
    const dir = tempDir('chatops-tg-');
    dirs.push(dir);
    const candles = (price: number) => writeCandles(dir, { 'KRW-BTC': price, 'KRW-ETH': 5_000_000 }, 'replay.jsonl');
    const env = { ...telegramEnv(emu), MARKET_DATA_SOURCE: 'replay', MARKET_DATA_REPLAY_FILE: candles(BTC_PRICE) };
    const first = await launch(dir, env);
    const p = await awaiting(first);
    await waitCard(emu, p.id);
    expect(await first.stop(), 'clean stop').to.equal(0);

    candles(BTC_PRICE * 1.05);
    const second = await launch(dir, env);
    const alice = emu.client(ALICE, { userName: 'alice' });
    await tap(emu, alice, `approve:${p.id}`);
    const rejected = await waitState(second, p.id, ['rejected', 'settled', 'failed', 'timed-out']);
    expect(rejected.state, JSON.stringify(rejected.history)).to.equal('rejected');
    expect(JSON.stringify(rejected.history)).to.match(/price moved 5\.00%/);
    const card = await waitCardOutcome(emu, p.id, /❌ Rejected/);
    expect(card.text).to.match(/Reason: price moved 5\.00% \(from 100000000 to 105000000\)/);
    expect(card.text).to.include('Approved by @alice');
    expect(emu.cardSends(p.id), 'the restart did not send the card again').to.have.length(1);
    expect(venueOrders(dir, p.id)).to.have.length(0);
  });

  // ---- 3

  it('two-person rule: the same person twice does not execute; a second allowed person does, once', async () => {
    const { emu, svc, dir, alice, bob } = await world({ APPROVAL_TWO_PERSON_NOTIONAL: '40000' });
    const p = await awaiting(svc);
    const card = await waitCard(emu, p.id);
    expect(card.text).to.include('Approvals: 0/2');

    const first = await tap(emu, alice, `approve:${p.id}`);
    expect(first.text).to.match(/1\/2/);
    const second = await tap(emu, alice, `approve:${p.id}`);
    expect(second.text).to.match(/already approved/);
    const after = await getProposal(svc, p.id);
    expect(after.state).to.equal('awaiting-approval');
    expect(after.approvals.map((a) => a.by)).to.deep.equal([`tg:${ALICE}`]);
    const updated = await waitFor(() => {
      const c = emu.card(p.id);
      return c?.text.includes('Approvals: 1/2 (@alice)') ? c : undefined;
    }, 'the card to show 1/2 (@alice)', 15_000);
    expect(updated.keyboard?.[0]?.map((b) => b.text), 'still has its buttons').to.include('✅ Approve');
    expect(venueOrders(dir, p.id)).to.have.length(0);

    const before = seen(emu);
    await tap(emu, bob, `approve:${p.id}`);
    const settled = await waitState(svc, p.id, ['settled', 'rejected', 'failed', 'timed-out']);
    expect(settled.state, JSON.stringify(settled.history)).to.equal('settled');
    expect(settled.approvals.map((a) => a.by)).to.deep.equal([`tg:${ALICE}`, `tg:${BOB}`]);
    const edited = await waitCardOutcome(emu, p.id, /✅ Settled/);
    expect(edited.text).to.include('Approved by @alice, @bob');
    await waitMessage(emu, /Filled: BUY BTC\/KRW/, { before, what: 'the fill notice' });
    expect(venueOrders(dir, p.id), 'one order').to.have.length(1);
    expect(journal(dir, 'order.filled', p.id), 'one fill').to.have.length(1);
    expect(emu.messages().filter((m) => /Filled: /.test(m.text)), 'one fill notice').to.have.length(1);
  });

  // ---- 4

  it('Approve 50%: the fill is half the size', async () => {
    const { emu, svc, dir, alice } = await world();
    const p = await awaiting(svc);
    await waitCard(emu, p.id);
    await tap(emu, alice, `half:${p.id}`);
    const settled = await waitState(svc, p.id, ['settled', 'rejected', 'failed', 'timed-out']);
    expect(settled.state, JSON.stringify(settled.history)).to.equal('settled');
    expect(settled.fill?.quantity).to.equal(0.00025);
    expect(settled.fill?.notional).to.equal(25_000);
    expect(settled.fill?.exact.quantity).to.equal('0.00025');
    expect(venueOrders(dir, p.id).map((o) => o.filledQuantity)).to.deep.equal(['0.00025']);
    const card = await waitCardOutcome(emu, p.id, /✅ Settled/);
    expect(card.text).to.include('Approved by @alice at 50% size');
    expect(card.text).to.include('Filled 0.00025 at 100,000,000 KRW');
  });

  // ---- 5

  it('a user not in the allow list, or an allowed user in another group, changes nothing and is journalled', async () => {
    const { emu, svc, dir, alice } = await world();
    const p = await awaiting(svc);
    await waitCard(emu, p.id);

    const stranger = emu.client(STRANGER, { userName: 'mallory' });
    const answer = await tap(emu, stranger, `approve:${p.id}`);
    expect(answer.text).to.match(/not authorized/i);
    const reply = await ask(emu, stranger, '/pause', /not authorized/i);
    expect(reply.chatId).to.equal(CHAT_ID);

    // Alice is allowed, but not from a group the bot does not serve.
    const aliceElsewhere = emu.client(ALICE, { chatId: -2002, type: 'group', userName: 'alice' });
    const elsewhere = await tap(emu, aliceElsewhere, `approve:${p.id}`);
    expect(elsewhere.text).to.match(/not authorized/i);
    await ask(emu, aliceElsewhere, '/pause', /not authorized/i, '-2002');

    expect((await getProposal(svc, p.id)).state).to.equal('awaiting-approval');
    expect((await getProposal(svc, p.id)).approvals).to.deep.equal([]);
    expect((await svc.api('GET', '/api/state')).body.paused).to.equal(false);
    expect(journal(dir, 'approval.given'), 'no approval was recorded').to.have.length(0);
    const refused = journal(dir, 'telegram.unauthorized');
    expect(refused.map((r) => [r['userId'], r['kind']])).to.have.deep.members([
      [STRANGER, 'callback'], [STRANGER, 'command'], [ALICE, 'callback'], [ALICE, 'command'],
    ]);

    // The rule is the chat, not Telegram as such: alice in a private chat with the bot is served.
    const alicePrivate = emu.client(ALICE, { chatId: ALICE, type: 'private', userName: 'alice' });
    await ask(emu, alicePrivate, '/status', /^<b>Status<\/b>/, String(ALICE));
    // And in the group, her tap still works after all of that.
    await tap(emu, alice, `approve:${p.id}`);
    expect((await waitState(svc, p.id, ['settled', 'rejected', 'failed', 'timed-out'])).state).to.equal('settled');
  });

  // ---- 6 and 10

  it('every command replies (setMyCommands refused by the emulator: a logged warning, the bot keeps working)', async () => {
    const { emu, svc, dir, alice } = await world();

    // 10: the emulator answers setMyCommands with 500; the service warns and carries on.
    await waitFor(() => (emu.calls.some((c) => c.method === 'setMyCommands') ? true : undefined), 'setMyCommands to be called');
    expect(emu.calls.filter((c) => c.method === 'setMyCommands').every((c) => c.status === 500)).to.equal(true);
    const logFile = path.join(dir, 'logs', 'service.jsonl');
    const warning = await waitFor(() => {
      if (!fs.existsSync(logFile)) return undefined;
      return fs.readFileSync(logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((r) => /setMyCommands/.test(String(r['message'])));
    }, 'the setMyCommands warning in the log');
    expect(warning['level']).to.equal('warn');

    const help = await ask(emu, alice, '/help', /\/help/);
    for (const c of ['help', 'status', 'pending', 'positions', 'pnl', 'pause', 'resume', 'scan', 'approve', 'reject', 'liquidate', 'arm', 'disarm']) {
      expect(help.text, `/help lists /${c}`).to.include(`/${c} `);
    }
    const status = await ask(emu, alice, '/status', /^<b>Status<\/b>/);
    expect(status.text).to.include('Mode: paper');
    expect(status.text).to.include('Paused: no');
    expect(status.text).to.include('Equity: 10,000,000 KRW');
    expect((await ask(emu, alice, '/pending', /.+/)).text).to.equal('No proposals are waiting for approval.');
    expect((await ask(emu, alice, '/positions', /.+/)).text).to.match(/^No open positions/);
    const pnl = await ask(emu, alice, '/pnl', /^<b>PnL<\/b>/);
    expect(pnl.text).to.include('Equity: 10,000,000 KRW');

    // /pause really drops a signal with the reason `paused`; /resume makes proposals again.
    await ask(emu, alice, '/pause', /Paused/);
    expect((await svc.api('GET', '/api/state')).body.paused).to.equal(true);
    const dropped = await postSignal(svc, MANUAL_BUY);
    const signal = await waitFor(async () => {
      const res = await svc.api('GET', `/api/signals/${dropped}`);
      return res.body.status === 'received' ? undefined : res.body as { status: string; reason?: string };
    }, 'the signal sent while paused to be handled');
    expect(signal).to.include({ status: 'dropped', reason: 'paused' });
    await ask(emu, alice, '/resume', /Resumed/);
    expect((await svc.api('GET', '/api/state')).body.paused).to.equal(false);

    // /arm <minutes> and /disarm: persisted and journalled with the Telegram principal.
    expect((await ask(emu, alice, '/arm soon', /Usage: \/arm/)).text).to.match(/^⚠️ Usage: \/arm &lt;minutes&gt;, a whole number from 1 to 1440/);
    await ask(emu, alice, '/arm 1441', /Usage: \/arm/);
    expect((await svc.api('GET', '/api/state')).body.armedUntil, 'a refused /arm arms nothing').to.equal(null);
    expect((await ask(emu, alice, '/arm 30', /Armed until/)).text).to.include('trades on paper');
    const armedUntil = (await svc.api('GET', '/api/state')).body.armedUntil as string;
    expect(Date.parse(armedUntil) - Date.now()).to.be.within(29 * 60_000, 30 * 60_000);
    await ask(emu, alice, '/disarm', /Disarmed/);
    expect((await svc.api('GET', '/api/state')).body.armedUntil).to.equal(null);
    expect(journal(dir, 'state.changed').filter((r) => r['change'] === 'armed' || r['change'] === 'disarmed').map((r) => [r['change'], r['by']]))
      .to.deep.equal([['armed', `tg:${ALICE}`], ['disarmed', `tg:${ALICE}`]]);

    // /pending, /approve <id>, /reject <id> reason.
    const a = await awaiting(svc);
    const b = await awaiting(svc);
    const pending = await ask(emu, alice, '/pending', /Waiting for approval/);
    expect(pending.text).to.include(a.id);
    expect(pending.text).to.include(b.id);
    await ask(emu, alice, `/approve ${a.id}`, new RegExp(`Approved <code>${a.id}</code>`));
    expect((await waitState(svc, a.id, ['settled', 'rejected', 'failed', 'timed-out'])).state).to.equal('settled');
    // Unknown, malformed and impossible ids are unknown proposals, never "something went wrong".
    for (const id of ['p-20261126-0123456789ab', 'p-00000000-000000000000', 'sig-20261200-0123456789ab', 'p-1', '<b>x</b>']) {
      const reply = await ask(emu, alice, `/approve ${id}`, /Unknown proposal|went wrong/);
      expect(reply.text, id).to.match(/^⚠️ Unknown proposal/);
    }
    await ask(emu, alice, `/reject ${b.id} too risky today`, new RegExp(`Rejected <code>${b.id}</code>`));
    const rejected = await waitState(svc, b.id, ['rejected', 'settled', 'failed', 'timed-out']);
    expect(rejected.state).to.equal('rejected');
    expect(rejected.history.find((h) => h.state === 'rejected')?.reason).to.equal('too risky today');

    // /scan answers (this build has no scanner configured).
    const scan = await ask(emu, alice, '/scan', /.+/);
    expect(scan.text).to.match(/scan/i);

    const positions = await ask(emu, alice, '/positions', /^<b>Positions<\/b>/);
    expect(positions.text).to.include('BTC/KRW: 0.0005');

    // /liquidate without confirmation sells nothing: it asks, with a button.
    const confirm = await ask(emu, alice, '/liquidate', /Sell every open position\?/);
    const button = confirm.keyboard?.[0]?.[0];
    expect(button?.callback_data).to.match(/^liquidate:[0-9a-f]+$/);
    const held = (await svc.api('GET', '/api/portfolio')).body as { positions: Array<{ symbol: string; quantity: number }> };
    expect(held.positions.map((x) => [x.symbol, x.quantity])).to.deep.equal([['BTC/KRW', 0.0005]]);
    const sells = () => svc.api('GET', '/api/proposals').then((r) => (r.body.proposals as Array<{ side: string }>).filter((x) => x.side === 'sell'));
    expect(await sells(), 'no sell proposal before the confirmation').to.have.length(0);

    // With the confirmation, the position is sold.
    const before = seen(emu);
    await tap(emu, alice, button!.callback_data);
    await waitFor(async () => {
      const pf = (await svc.api('GET', '/api/portfolio')).body as { positions: unknown[] };
      return pf.positions.length === 0 ? true : undefined;
    }, 'the portfolio to be empty', 15_000);
    await waitMessage(emu, /Liquidated: SELL BTC\/KRW/, { before, what: 'the liquidation notice' });
    await waitFor(() => {
      const m = emu.messages().find((x) => x.messageId === confirm.messageId);
      return m && /Liquidation confirmed by @alice/.test(m.text) && m.keyboard?.length === 0 ? m : undefined;
    }, 'the confirmation message to be edited');
  });

  // ---- 7

  it('repeated taps and duplicate updates have one effect', async () => {
    const { emu, svc, dir, alice, bob } = await world({ APPROVAL_TWO_PERSON_NOTIONAL: '40000' });

    // Two quick taps on Approve (two callback queries): one approval, one order, one fill.
    const one = await awaiting(svc, { ...MANUAL_BUY, size: 20_000 });
    await waitCard(emu, one.id);
    const before = seen(emu);
    const answered = emu.answers().length;
    await Promise.all([emu.tap(alice, `approve:${one.id}`), emu.tap(alice, `approve:${one.id}`)]);
    await waitFor(() => (emu.answers().length >= answered + 2 ? true : undefined), 'both taps to be answered');
    expect((await waitState(svc, one.id, ['settled', 'rejected', 'failed', 'timed-out'])).state).to.equal('settled');
    await waitMessage(emu, new RegExp(`Filled: [\\s\\S]*${one.id}`), { before, what: 'the fill notice' });
    expect(journal(dir, 'approval.given', one.id)).to.have.length(1);
    expect(venueOrders(dir, one.id)).to.have.length(1);
    expect(journal(dir, 'order.filled', one.id)).to.have.length(1);

    // The same update delivered again (same update_id), and the same callback query in a new
    // update: neither is acted on a second time (a second approval by alice would be journalled
    // as ignored and answered again).
    const two = await awaiting(svc, { ...MANUAL_BUY, symbol: 'KRW-ETH' }); // BTC is held now
    await waitCard(emu, two.id);
    const first = await tap(emu, alice, `approve:${two.id}`);
    expect(first.text).to.match(/1\/2/);
    const update = emu.lastCallbackUpdate();
    expect(update?.['callbackQuery']?.data).to.equal(`approve:${two.id}`);
    emu.redeliver(update!);
    emu.redeliver(update!, { newUpdateId: true });
    // Updates are handled in order: once this reply is there, both duplicates were handled.
    await ask(emu, alice, '/status', /^<b>Status<\/b>/);
    expect(emu.answers().filter((a) => a.id === first.id), 'the callback query was answered once').to.have.length(1);
    expect(journal(dir, 'approval.given', two.id)).to.have.length(1);
    expect(journal(dir, 'approval.ignored', two.id)).to.have.length(0);
    expect((await getProposal(svc, two.id)).state).to.equal('awaiting-approval');

    await tap(emu, bob, `approve:${two.id}`);
    expect((await waitState(svc, two.id, ['settled', 'rejected', 'failed', 'timed-out'])).state).to.equal('settled');
    expect(venueOrders(dir, two.id)).to.have.length(1);
    expect(journal(dir, 'order.filled', two.id)).to.have.length(1);
  });

  // ---- 8

  it('SIGKILL while a card is pending, restart, Approve on the old card: executes once, card not sent again', async () => {
    const { emu, svc, dir, env, alice } = await world();
    const p = await awaiting(svc);
    const card = await waitCard(emu, p.id);
    await waitFor(() => (cardRecord(dir, p.id)?.status === 'sent' ? true : undefined), 'the card record on disk');
    await svc.kill();
    expect(svc.child.signalCode).to.equal('SIGKILL');

    const second = await launch(dir, env);
    expect((await getProposal(second, p.id)).state).to.equal('awaiting-approval');
    await tap(emu, alice, `approve:${p.id}`);
    const settled = await waitState(second, p.id, ['settled', 'rejected', 'failed', 'timed-out']);
    expect(settled.state, JSON.stringify(settled.history)).to.equal('settled');
    expect(emu.cardSends(p.id), 'the card was sent once, before the crash').to.have.length(1);
    expect(emu.messages().filter((m) => m.text.startsWith('<b>') && m.text.includes(`<code>${p.id}</code>`))).to.have.length(1);
    const edited = await waitCardOutcome(emu, p.id, /✅ Settled/);
    expect(edited.messageId, 'the old card was edited').to.equal(card.messageId);

    const orders = venueOrders(dir, p.id);
    expect(orders, 'one order at the venue').to.have.length(1);
    expect(orders[0]!.status).to.equal('filled');
    expect(journal(dir, 'order.filled', p.id), 'one fill').to.have.length(1);
  });

  // ---- 9

  it('Telegram down while proposals wait: deadlines still time them out; once it is back, the outcome is delivered', async () => {
    const { emu, svc, dir } = await world({ APPROVAL_TIMEOUT_SECONDS: '3' });
    // A: its card is in the chat before Telegram goes away.
    const a = await awaiting(svc);
    const cardA = await waitCard(emu, a.id);
    await waitFor(() => (cardRecord(dir, a.id)?.status === 'sent' ? true : undefined), 'the card record of A on disk');
    await emu.stop();
    // B: its card can never get out before its deadline.
    const b = await awaiting(svc);

    for (const p of [a, b]) {
      const done = await waitState(svc, p.id, ['timed-out', 'rejected', 'settled', 'failed'], 10_000);
      expect(done.state).to.equal('timed-out');
      const at = Date.parse(done.history.find((h) => h.state === 'timed-out')!.at);
      const deadline = Date.parse(p.deadline);
      expect(at, 'on time: not before the deadline').to.be.at.least(deadline);
      expect(at, 'on time: not long after the deadline').to.be.below(deadline + 2000);
    }
    // The gate gives up on B's card (no longer wanted) before Telegram is back.
    await waitFor(() => (journal(dir, 'card.undelivered', b.id).length > 0 ? true : undefined), 'B to be marked undelivered', 10_000);

    await emu.startInstance(); // the same port, empty storage
    // A: the edit to its old card reaches the new instance (which has no copy of the message).
    const edit = await waitFor(() => emu.calls.find((c) => c.instance === 1 && c.method === 'editMessageText'
      && String(c.params['message_id']) === String(cardA.messageId) && /⌛ Timed out/.test(String(c.params['text']))),
    'the Timed out edit of A to arrive', 15_000);
    expect(edit.params['reply_markup']).to.deep.equal({ inline_keyboard: [] });
    // B: reported as undelivered, with its outcome; its card with buttons is never sent.
    const report = await waitMessage(emu, new RegExp(`could not be delivered[\\s\\S]*${b.id}`), { what: 'the undelivered report of B' });
    expect(report.text).to.include('⌛ Timed out');
    expect(report.keyboard ?? []).to.deep.equal([]);
    await waitMessage(emu, new RegExp(`Timed out: BUY BTC/KRW[\\s\\S]*${b.id}`), { what: 'the timeout notice of B' });
    expect(emu.cardSends(b.id), 'no card with buttons for B').to.have.length(0);
    expect(emu.cardSends(a.id), 'A was sent once').to.have.length(1);
  });

  // The gate asks `stillWanted()` before every attempt, so a card that Telegram could take only
  // after the deadline is never sent with live buttons.
  it('Telegram back after a deadline but before the next retry: the card is not sent late; it is reported undelivered', async () => {
    const { emu, svc, dir } = await world({ APPROVAL_TIMEOUT_SECONDS: '2' });
    await waitFor(() => (emu.calls.some((c) => c.method === 'getUpdates') ? true : undefined), 'the bot to poll');
    await emu.stop();
    const p = await awaiting(svc);
    const done = await waitState(svc, p.id, ['timed-out', 'rejected', 'settled', 'failed'], 10_000);
    expect(done.state).to.equal('timed-out');
    await emu.startInstance(); // back before the gate's next attempt (backoff 500, 1000, 2000 ms…)
    await waitMessage(emu, new RegExp(`could not be delivered[\\s\\S]*${p.id}`), { what: 'the undelivered report' });
    expect(emu.cardSends(p.id), 'no card with live buttons after the deadline').to.have.length(0);
    expect(journal(dir, 'card.undelivered', p.id)).to.have.length(1);
  });

  // ---- one card per proposal across crashes

  /**
   * Holds the emulator's answer to the first `sendMessage` that carries a card: Telegram has the
   * card, the bot has not heard back. Resolves with a release function once the card is stored.
   */
  function holdFirstCardAnswer(emu: TelegramEmulator): { held: Promise<void>; release: () => void } {
    const http = (emu.server as unknown as { server: HttpServer }).server;
    let release = () => undefined as void;
    let heldOne = false;
    const held = new Promise<void>((resolve) => {
      http.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
        if (heldOne || !/\/sendMessage$/.test(req.url ?? '')) return;
        const end = res.end.bind(res) as (...args: unknown[]) => unknown;
        (res as unknown as { end: (...args: unknown[]) => unknown }).end = (...args: unknown[]) => {
          const body = JSON.stringify((req as { body?: unknown }).body ?? '');
          if (heldOne || !body.includes('approve:')) return end(...args);
          heldOne = true;
          release = () => { try { end(...args); } catch { /* the bot is gone */ } };
          resolve();
          return res;
        };
      });
    });
    return { held, release: () => release() };
  }

  /** Every message in the chat that is a card of the proposal, as it is now. */
  const cardsOf = (emu: TelegramEmulator, id: string) => emu.messages().filter((m) => m.text.includes(`<code>${id}</code>`) && /^(<i>A copy[^\n]*\n\n)?<b>/.test(m.text));

  it('a crash between a card send and its record: the restart sends one more card, a tap on the unrecorded one mends it, and no restart sends a third', async () => {
    const { emu, svc, dir, env, alice } = await world();
    const hold = holdFirstCardAnswer(emu);
    const signalId = await postSignal(svc, MANUAL_BUY);
    await hold.held;
    const id = await proposalOf(svc, signalId);
    const first = await waitCard(emu, id);
    // The intent is on disk, the message id is not: the crash comes exactly here.
    expect(cardRecord(dir, id)).to.include({ status: 'sending', messageId: null });
    await svc.kill();
    hold.release();

    const second = await launch(dir, env);
    const recorded = await waitFor(() => {
      const r = cardRecord(dir, id);
      return r?.status === 'sent' && r.messageId !== first.messageId ? r : undefined;
    }, 'the second card to be recorded');
    // The held answer never reached the bot, so the recorder saw only the second send; the chat has both.
    expect(cardsOf(emu, id), 'the intent without a message id made the restart send again').to.have.length(2);

    // Alice taps Approve on the first card, the one no record knows.
    await alice.sendCallback(alice.makeCallbackQuery(`approve:${id}`, { message: { message_id: first.messageId } }));
    const settled = await waitState(second, id, ['settled', 'rejected', 'failed', 'timed-out']);
    expect(settled.state).to.equal('settled');
    // The recorded card shows the outcome; the tapped copy shows the state it was tapped in.
    await waitFor(() => (cardsOf(emu, id).find((c) => c.messageId === recorded.messageId && /✅ Settled/.test(c.text)) ? true : undefined), 'the recorded card to show the outcome');
    const cards = await waitFor(() => {
      const now = cardsOf(emu, id);
      return now.length === 2 && now.every((c) => (c.keyboard ?? []).length === 0) ? now : undefined;
    }, 'both cards without buttons').catch(() => { throw new Error(`cards now: ${JSON.stringify(cardsOf(emu, id))}`); });
    expect(cards.map((c) => c.messageId).sort()).to.deep.equal([first.messageId, recorded.messageId].sort());
    expect(journal(dir, 'card.mended', id).map((r) => r['messageId'])).to.deep.equal([first.messageId]);

    // Restarts (killed, then clean) never send a card for a proposal whose card is recorded.
    await second.kill();
    const third = await launch(dir, env);
    expect(await third.stop()).to.equal(0);
    const fourth = await launch(dir, env);
    expect((await fourth.api('GET', '/api/status')).status).to.equal(200);
    expect(cardsOf(emu, id)).to.have.length(2);
    expect(emu.cardSends(id)).to.have.length(1);
    expect(venueOrders(dir, id), 'one order').to.have.length(1);
  });
});
