import { expect } from 'chai';
import { TelegramClient, TelegramShedError } from '../../src/notifications/telegram';
import { createLogger } from '../../src/logging';
import { TelegramEmulator } from '../fakes/telegram-emulator';
import { freePort } from '../support/service-process';

/** The outbound queue against the Bot API emulator: lanes, shedding, and text bounds. */
describe('TelegramClient outbound lanes (telegram-test-api)', function () {
  this.timeout(30_000);
  let emu: TelegramEmulator;
  let client: TelegramClient;

  before(async () => {
    emu = await TelegramEmulator.start();
  });
  after(async () => {
    await emu.stop();
  });
  afterEach(async () => {
    await client?.stop(0);
  });

  const make = (opts: { strangerLaneCapacity?: number } = {}) => new TelegramClient({
    token: emu.token, apiRoot: emu.apiURL, logger: createLogger({ level: 'error', dataDir: null, secrets: [], console: false }), perSecond: 50, ...opts,
  });
  const sent = (chat: number) => emu.accepted('sendMessage').filter((c) => String(c.params['chat_id']) === String(chat)).map((c) => String(c.params['text']));

  it('sends an answer for a person before notices, and strangers after everything for allowed users', async () => {
    client = make();
    const chat = 7001;
    const all: Array<Promise<unknown>> = [];
    for (let i = 0; i < 5; i++) all.push(client.send({ method: 'sendMessage', lane: 'stranger', params: { chat_id: chat, text: `stranger ${i}` } }));
    for (let i = 0; i < 5; i++) all.push(client.send({ method: 'sendMessage', lane: 'notice', params: { chat_id: chat, text: `notice ${i}` } }));
    all.push(client.send({ method: 'sendMessage', lane: 'card', params: { chat_id: chat, text: 'card' } }));
    all.push(client.send({ method: 'sendMessage', lane: 'answer', params: { chat_id: chat, text: 'answer' } }));
    await Promise.all(all);
    // The first stranger call was already on its way when the others were queued.
    expect(sent(chat)).to.deep.equal([
      'stranger 0', 'answer', 'card', 'notice 0', 'notice 1', 'notice 2', 'notice 3', 'notice 4',
      'stranger 1', 'stranger 2', 'stranger 3', 'stranger 4',
    ]);
  });

  it('sheds strangers beyond the lane capacity at once, and never sheds allowed users', async () => {
    client = make({ strangerLaneCapacity: 3 });
    const chat = 7002;
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => client.send({ method: 'sendMessage', lane: 'stranger', params: { chat_id: chat, text: `s${i}` } })));
    const shed = results.filter((r) => r.status === 'rejected');
    for (const r of shed) expect((r as PromiseRejectedResult).reason).to.be.instanceOf(TelegramShedError);
    // One in flight and three waiting were kept.
    expect(sent(chat)).to.deep.equal(['s0', 's1', 's2', 's3']);
    const notices = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => client.send({ method: 'sendMessage', lane: 'notice', params: { chat_id: chat, text: `n${i}` } })));
    expect(notices.every((r) => r.status === 'fulfilled')).to.equal(true);
  });

  it('reports each failed call by method and kind: Telegram\'s 5xx, and a network that does not answer (metrics)', async () => {
    const errors: Array<[string, string]> = [];
    client = new TelegramClient({
      token: emu.token, apiRoot: emu.apiURL, logger: createLogger({ level: 'error', dataDir: null, secrets: [], console: false }), perSecond: 50,
      onError: (method, kind) => errors.push([method, kind]),
    });
    // The emulator answers 500 to setMyCommands.
    await client.send({ method: 'setMyCommands', params: { commands: [] }, maxAttempts: 1 }).catch(() => undefined);
    await client.send({ method: 'sendMessage', params: { chat_id: 7004, text: 'fine' } });
    await client.stop(0);
    client = new TelegramClient({
      token: emu.token, apiRoot: `http://127.0.0.1:${await freePort()}`, logger: createLogger({ level: 'error', dataDir: null, secrets: [], console: false }),
      onError: (method, kind) => errors.push([method, kind]),
    });
    await client.send({ method: 'sendMessage', params: { chat_id: 7004, text: 'lost' }, maxAttempts: 1 }).catch(() => undefined);
    expect(errors).to.deep.equal([['setMyCommands', 'server'], ['sendMessage', 'transport']]);
  });

  it('cuts a text longer than Telegram accepts so that Telegram takes it', async () => {
    client = make();
    const chat = 7003;
    const long = `<b>${'x&amp;'.repeat(20_000)}</b>`;
    await client.send({ method: 'sendMessage', lane: 'notice', params: { chat_id: chat, text: long, parse_mode: 'HTML' } });
    const [text] = sent(chat);
    expect(text!.length).to.be.at.most(4096);
    expect(text).to.match(/^<b>(x&amp;)+x?…<\/b>$/);
  });
});
