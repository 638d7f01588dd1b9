import { Writable } from 'node:stream';
import { expect } from 'chai';
import winston from 'winston';
import { DISCORD_LIMITS, DiscordNotifier, SEVERITY_COLORS, embedLength, fitText, renderDiscordEmbed, type DiscordNotifierOptions } from '../../src/notifications/discord';
import type { Notice } from '../../src/notifications/notice';
import { ConfigError } from '../../src/errors';
import { FakeDiscord, validateWebhookBody } from '../fakes/fake-discord';

function notice(overrides: Partial<Notice> = {}): Notice {
  return {
    kind: 'fill',
    severity: 'info',
    title: 'Filled: buy BTC/KRW',
    lines: ['Paper fill at 50,000,000 KRW', 'Fee 50 KRW'],
    fields: [{ name: 'Symbol', value: 'BTC/KRW' }, { name: 'Side', value: 'buy' }, { name: 'Notional', value: '100,000 KRW' }],
    proposalId: 'p-001',
    at: '2023-11-14T22:13:20.000Z',
    ...overrides,
  };
}

/** A winston logger without any redactor, writing JSON lines to memory. */
function captureLogger(): { logger: winston.Logger; lines: string[]; text: () => string } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const logger = winston.createLogger({ level: 'debug', format: winston.format.json(), transports: [new winston.transports.Stream({ stream })] });
  return { logger, lines, text: () => lines.join('') };
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

type Embed = { title: string; description?: string; color: number; fields: Array<{ name: string; value: string; inline: boolean }>; footer: { text: string }; timestamp?: string };
const embedOf = (message: Record<string, unknown>): Embed => (message.embeds as Embed[])[0]!;

/** libuv timers count whole milliseconds; a 200 ms timer may be measured as 199.x ms. */
const TIMER_SLACK_MS = 2;

describe('renderDiscordEmbed', () => {
  it('renders title, detail lines, inline fields, footer and timestamp when given a notice', () => {
    const embed = renderDiscordEmbed(notice());
    expect(embed.title).to.equal('Filled: buy BTC/KRW');
    expect(embed.description).to.equal('Paper fill at 50,000,000 KRW\nFee 50 KRW');
    expect(embed.fields).to.deep.equal([
      { name: 'Symbol', value: 'BTC/KRW', inline: true },
      { name: 'Side', value: 'buy', inline: true },
      { name: 'Notional', value: '100,000 KRW', inline: true },
    ]);
    expect(embed.footer.text).to.equal('fill · proposal p-001');
    expect(embed.timestamp).to.equal('2023-11-14T22:13:20.000Z');
  });

  it('colours info blue, warning amber and critical red', () => {
    expect(renderDiscordEmbed(notice({ severity: 'info' })).color).to.equal(SEVERITY_COLORS.info).and.equal(0x3498db);
    expect(renderDiscordEmbed(notice({ severity: 'warning' })).color).to.equal(SEVERITY_COLORS.warning).and.equal(0xffbf00);
    expect(renderDiscordEmbed(notice({ severity: 'critical' })).color).to.equal(SEVERITY_COLORS.critical).and.equal(0xe74c3c);
  });

  it('escapes markdown and mention syntax when notice text contains them', () => {
    const embed = renderDiscordEmbed(notice({ title: 'blocked: max_position', lines: ['@everyone <@123> [x](http://e.x)', '# not a header'], fields: [{ name: 'code', value: '*bold*' }] }));
    expect(embed.title).to.equal('blocked: max\\_position');
    expect(embed.description).to.equal('@everyone \\<@123\\> \\[x\\]\\(http://e.x\\)\n\\# not a header');
    expect(embed.fields[0]!.value).to.equal('\\*bold\\*');
  });

  it('cuts every text to Discord limits when the notice is oversize', () => {
    const big = notice({
      title: 'T'.repeat(1000),
      lines: Array.from({ length: 100 }, (_, i) => `line ${i} ${'d'.repeat(100)}`),
      fields: Array.from({ length: 40 }, (_, i) => ({ name: `n${i}${'N'.repeat(300)}`, value: 'V'.repeat(2000) })),
      proposalId: 'p'.repeat(3000),
    });
    const embed = renderDiscordEmbed(big);
    expect(embed.title).to.have.length(DISCORD_LIMITS.title);
    expect(embed.title.endsWith('…')).to.equal(true);
    expect(embed.footer.text.length).to.be.at.most(DISCORD_LIMITS.footerText);
    expect(embed.description!.length).to.be.at.most(DISCORD_LIMITS.description).and.be.greaterThan(0);
    expect(embed.fields.length).to.be.at.most(DISCORD_LIMITS.fields).and.be.greaterThan(0);
    for (const f of embed.fields) {
      expect(f.name.length).to.be.at.most(DISCORD_LIMITS.fieldName);
      expect(f.value.length).to.be.at.most(DISCORD_LIMITS.fieldValue);
    }
    expect(embed.fields.at(-1)!.value).to.match(/^\d+ more not shown$/);
    expect(embedLength(embed)).to.be.at.most(DISCORD_LIMITS.embedTotal);
    expect(validateWebhookBody({ username: 'chatops-trading', embeds: [embed], allowed_mentions: { parse: [] } })).to.equal(null);
  });

  it('keeps at most 25 fields and says how many were left out when there are more', () => {
    const embed = renderDiscordEmbed(notice({ lines: [], fields: Array.from({ length: 30 }, (_, i) => ({ name: `f${i}`, value: String(i) })) }));
    expect(embed.fields).to.have.length(25);
    expect(embed.fields[23]).to.deep.equal({ name: 'f23', value: '23', inline: true });
    expect(embed.fields[24]!.value).to.equal('6 more not shown');
    expect(embed).to.not.have.property('description');
  });

  it('fills empty field names and values when a notice has them, as Discord refuses empty ones', () => {
    const embed = renderDiscordEmbed(notice({ fields: [{ name: '', value: '' }] }));
    expect(embed.fields[0]).to.deep.equal({ name: '-', value: '-', inline: true });
  });

  it('omits the timestamp when `at` is not a date', () => {
    expect(renderDiscordEmbed(notice({ at: 'yesterday' }))).to.not.have.property('timestamp');
  });

  it('never splits a surrogate pair or leaves a dangling escape when cutting', () => {
    expect(fitText('ab😀cd', 4)).to.equal('ab…');
    expect(fitText('abc\\_def', 5)).to.equal('abc…');
    expect(fitText('short', 5)).to.equal('short');
  });
});

describe('FakeDiscord', () => {
  let fake: FakeDiscord;
  beforeEach(async () => {
    fake = await FakeDiscord.start();
  });
  afterEach(async () => {
    await fake.close();
  });

  const post = (url: string, body: unknown) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  it('answers 400 with code 50035 and the field path when an embed is over a limit', async () => {
    const res = await post(`${fake.webhookUrl}?wait=true`, { embeds: [{ title: 'x'.repeat(257), fields: [{ name: 'a', value: 'v'.repeat(1025) }] }] });
    expect(res.status).to.equal(400);
    const body = (await res.json()) as any;
    expect(body).to.include({ code: 50035, message: 'Invalid Form Body' });
    expect(body.errors.embeds['0'].title._errors[0].code).to.equal('BASE_TYPE_MAX_LENGTH');
    expect(body.errors.embeds['0'].fields['0'].value._errors[0].code).to.equal('BASE_TYPE_MAX_LENGTH');
  });

  it('answers 400 when there are more than 10 embeds or more than 6000 characters in total', async () => {
    const eleven = await post(fake.webhookUrl, { embeds: Array.from({ length: 11 }, () => ({ title: 't' })) });
    expect(eleven.status).to.equal(400);
    const heavy = await post(fake.webhookUrl, { embeds: [{ description: 'd'.repeat(4000) }, { description: 'd'.repeat(2001) }] });
    expect(((await heavy.json()) as any).errors.embeds._errors[0].code).to.equal('MAX_EMBED_SIZE_EXCEEDED');
  });

  it('answers 401 when the token is wrong and 204 without wait=true', async () => {
    expect((await post(`${fake.origin}/api/webhooks/${fake.webhookId}/wrong`, { content: 'x' })).status).to.equal(401);
    expect((await post(fake.webhookUrl, { content: 'x' })).status).to.equal(204);
  });

  it('counts a violation when a request arrives during an announced rate limit', async () => {
    fake.rateLimitNext({ retryAfter: 5 });
    expect((await post(fake.webhookUrl, { content: 'x' })).status).to.equal(429);
    expect((await post(fake.webhookUrl, { content: 'x' })).status).to.equal(429);
    expect(fake.violations).to.have.length(1);
  });
});

describe('DiscordNotifier', () => {
  let fake: FakeDiscord;
  let log: ReturnType<typeof captureLogger>;
  let notifier: DiscordNotifier | undefined;

  function makeNotifier(overrides: Partial<DiscordNotifierOptions> = {}): DiscordNotifier {
    notifier = new DiscordNotifier({ logger: log.logger, baseDelayMs: 20, ...overrides, webhookUrl: overrides.webhookUrl ?? fake.webhookUrl });
    return notifier;
  }

  beforeEach(async () => {
    fake = await FakeDiscord.start();
    log = captureLogger();
    notifier = undefined;
  });

  afterEach(async () => {
    await notifier?.close();
    await fake.close();
    // Whatever happened in the test, the secret token never reached a log line.
    expect(log.text()).to.not.contain(fake.token);
  });

  it('posts one embed with the username, no mentions and wait=true when notified', async () => {
    makeNotifier().notify(notice({ severity: 'warning' }));
    const [message] = await fake.waitForMessages(1);
    const request = fake.requests[0]!;
    expect(request.method).to.equal('POST');
    expect(request.query).to.deep.equal({ wait: 'true' });
    expect(request.headers['content-type']).to.equal('application/json');
    expect(request.status).to.equal(200);
    expect(message!.username).to.equal('chatops-trading');
    expect(message!.allowed_mentions).to.deep.equal({ parse: [] });
    expect(message!.embeds).to.have.length(1);
    const embed = embedOf(message!);
    expect(embed.title).to.equal('Filled: buy BTC/KRW');
    expect(embed.color).to.equal(0xffbf00);
    expect(embed.fields.map((f) => [f.name, f.value, f.inline])).to.deep.equal([['Symbol', 'BTC/KRW', true], ['Side', 'buy', true], ['Notional', '100,000 KRW', true]]);
  });

  it('delivers an oversize notice that the fake accepts when every text is over its limit', async () => {
    makeNotifier().notify(notice({ title: 'x'.repeat(5000), lines: ['y'.repeat(9000)], fields: Array.from({ length: 60 }, () => ({ name: 'n'.repeat(500), value: 'v'.repeat(5000) })) }));
    const [message] = await fake.waitForMessages(1);
    expect(fake.requests.map((r) => r.status)).to.deep.equal([200]);
    expect(embedLength(embedOf(message!))).to.be.at.most(6000);
  });

  it('returns from notify before anything is sent and never throws when a notice is malformed', async () => {
    const n = makeNotifier();
    n.notify(notice({ title: 'first' }));
    expect(fake.requests).to.have.length(0);
    expect(() => n.notify({ kind: 'fill' } as unknown as Notice)).to.not.throw();
    n.notify(notice({ title: 'second' }));
    const messages = await fake.waitForMessages(2);
    expect(messages.map((m) => embedOf(m).title)).to.deep.equal(['first', 'second']);
    await waitFor(() => log.text().includes('discord_render_failed'), 'the render failure to be logged');
  });

  it('waits retry_after and sends the same message once, keeping order, when Discord answers 429 once', async () => {
    fake.rateLimitNext({ retryAfter: 0.2 });
    const n = makeNotifier();
    n.notify(notice({ title: 'one' }));
    n.notify(notice({ title: 'two' }));
    n.notify(notice({ title: 'three' }));
    const messages = await fake.waitForMessages(3);
    expect(messages.map((m) => embedOf(m).title)).to.deep.equal(['one', 'two', 'three']);
    expect(fake.requests.map((r) => r.status)).to.deep.equal([429, 200, 200, 200]);
    expect(fake.requests[0]!.raw).to.equal(fake.requests[1]!.raw);
    expect(fake.requests[1]!.at - fake.requests[0]!.at).to.be.at.least(200 - TIMER_SLACK_MS);
    expect(fake.violations).to.deep.equal([]);
    expect(log.text()).to.contain('discord_rate_limited');
  });

  it('waits the Retry-After header when a 429 carries no JSON body', async () => {
    fake.rateLimitNext({ retryAfter: 1, jsonBody: false });
    makeNotifier().notify(notice());
    await fake.waitForMessages(1);
    expect(fake.requests.map((r) => r.status)).to.deep.equal([429, 200]);
    expect(fake.requests[1]!.at - fake.requests[0]!.at).to.be.at.least(1000 - TIMER_SLACK_MS);
    expect(fake.violations).to.deep.equal([]);
  });

  it('holds the next send until Reset-After when X-RateLimit-Remaining is 0', async () => {
    fake.exhaustBucketNext(0.3);
    const n = makeNotifier();
    n.notify(notice({ title: 'one' }));
    n.notify(notice({ title: 'two' }));
    n.notify(notice({ title: 'three' }));
    await fake.waitForMessages(3);
    expect(fake.requests.map((r) => r.status)).to.deep.equal([200, 200, 200]);
    expect(fake.requests[1]!.at - fake.requests[0]!.at).to.be.at.least(300 - TIMER_SLACK_MS);
    // Only the exhausted bucket holds a send back.
    expect(fake.requests[2]!.at - fake.requests[1]!.at).to.be.below(250);
    expect(fake.violations).to.deep.equal([]);
  });

  it('retries with backoff and delivers once when Discord answers 500 then succeeds', async () => {
    fake.failNext(500).failNext(502);
    makeNotifier().notify(notice());
    await fake.waitForMessages(1);
    expect(fake.requests.map((r) => r.status)).to.deep.equal([500, 502, 200]);
    expect(fake.messages).to.have.length(1);
    // baseDelayMs 20, doubled: 20 ms then 40 ms.
    expect(fake.requests[2]!.at - fake.requests[1]!.at).to.be.at.least(40 - TIMER_SLACK_MS);
  });

  it('drops a notice after maxAttempts failures and sends the next one when Discord keeps failing', async () => {
    fake.failNext().failNext().failNext();
    const n = makeNotifier({ maxAttempts: 3 });
    n.notify(notice({ title: 'lost' }));
    n.notify(notice({ title: 'kept' }));
    const [message] = await fake.waitForMessages(1);
    expect(embedOf(message!).title).to.equal('kept');
    expect(fake.requests.map((r) => r.status)).to.deep.equal([500, 500, 500, 200]);
    await waitFor(() => log.text().includes('discord_unavailable') && log.text().includes('notice dropped'), 'the drop to be logged');
  });

  it('drops a notice without retrying and sends later ones when Discord answers 400', async () => {
    fake.replyNext({ kind: 'status', status: 400, body: { code: 50035, message: 'Invalid Form Body', errors: { embeds: { _errors: [{ code: 'MAX_EMBED_SIZE_EXCEEDED', message: 'Embed size exceeds maximum size of 6000' }] } } } });
    const n = makeNotifier();
    n.notify(notice({ title: 'refused' }));
    n.notify(notice({ title: 'later' }));
    const [message] = await fake.waitForMessages(1);
    expect(embedOf(message!).title).to.equal('later');
    expect(fake.requests.map((r) => r.status)).to.deep.equal([400, 200]);
    await waitFor(() => log.lines.some((l) => l.includes('discord_rejected') && l.includes('"discordCode":50035')), 'the refusal to be logged');
    expect(log.text()).to.contain('discord webhook');
  });

  it('keeps the token out of logs when the token is refused (401)', async () => {
    const n = new DiscordNotifier({ webhookUrl: `${fake.origin}/api/webhooks/${fake.webhookId}/${fake.token}x`, logger: log.logger });
    notifier = n;
    n.notify(notice());
    await waitFor(() => log.text().includes('discord_rejected'), 'the 401 to be logged');
    expect(fake.requests.map((r) => r.status)).to.deep.equal([401]);
    expect(log.text()).to.not.contain(`${fake.token}x`);
  });

  it('keeps the URL out of logs when a network error message contains it', async () => {
    const failing: typeof fetch = async (input) => {
      throw new TypeError(`fetch failed for ${String(input)}`, { cause: { code: 'ECONNREFUSED', message: `connect to ${String(input)}` } });
    };
    makeNotifier({ fetch: failing, maxAttempts: 2 }).notify(notice());
    await waitFor(() => log.text().includes('notice dropped'), 'the drop to be logged');
    const text = log.text();
    expect(text).to.contain('ECONNREFUSED');
    expect(text).to.contain('[discord webhook]');
    expect(text).to.not.contain('/api/webhooks/');
  });

  it('retries then drops when the connection is refused, with the token out of the logs', async () => {
    const origin = fake.origin;
    await fake.close();
    makeNotifier({ webhookUrl: `${origin}/api/webhooks/1/${fake.token}`, maxAttempts: 2 }).notify(notice());
    await waitFor(() => log.text().includes('unreachable, notice dropped'), 'the drop to be logged');
    fake = await FakeDiscord.start();
  });

  it('refuses to start with a ConfigError that does not show the value when the URL is invalid', () => {
    expect(() => new DiscordNotifier({ webhookUrl: `not a url ${fake.token}`, logger: log.logger })).to.throw(ConfigError).that.satisfies((err: ConfigError) => !JSON.stringify({ m: err.message, i: err.issues }).includes(fake.token));
  });

  it('drops the oldest waiting notice with a logged error when the queue is full', async () => {
    const n = makeNotifier({ maxQueue: 2 });
    // 'n1' is taken by the worker at once; 'n2' and 'n3' wait; 'n4' pushes 'n2' out.
    for (let i = 1; i <= 4; i++) n.notify(notice({ title: `n${i}` }));
    const messages = await fake.waitForMessages(3);
    expect(messages.map((m) => embedOf(m).title)).to.deep.equal(['n1', 'n3', 'n4']);
    await waitFor(() => log.lines.some((l) => l.includes('discord_queue_full') && l.includes('"title":"n2"')), 'the dropped notice to be logged');
  });

  it('drains the queue on close and drops notices given after it', async () => {
    const n = makeNotifier();
    for (let i = 0; i < 5; i++) n.notify(notice({ title: `n${i}` }));
    await n.close();
    expect(fake.messages.map((m) => embedOf(m).title)).to.deep.equal(['n0', 'n1', 'n2', 'n3', 'n4']);
    n.notify(notice({ title: 'late' }));
    await waitFor(() => log.text().includes('discord_closed'), 'the late notice to be logged');
    expect(fake.messages).to.have.length(5);
  });

  it('stops within closeTimeoutMs when Discord keeps the queue waiting', async () => {
    fake.rateLimitNext({ retryAfter: 60 });
    const n = makeNotifier({ closeTimeoutMs: 150 });
    n.notify(notice({ title: 'stuck' }));
    n.notify(notice({ title: 'behind' }));
    await waitFor(() => fake.requests.length === 1, 'the first request');
    const started = Date.now();
    await n.close();
    expect(Date.now() - started).to.be.below(1000);
    expect(fake.messages).to.have.length(0);
    await waitFor(() => log.text().includes('discord_close_timeout'), 'the close timeout to be logged');
    expect(log.lines.find((l) => l.includes('discord_close_timeout'))).to.contain('"notSent":2');
  });
});
