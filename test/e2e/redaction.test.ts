import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import fc from 'fast-check';
import { startService, waitFor, type ServiceHandle } from '../support/service-process';
import { TelegramEmulator } from '../fakes/telegram-emulator';

/**
 * Secrets out of everything: a careless alert template (or a careless operator) puts a
 * configured secret into some field of a signal. Wherever it is placed — a known field, the id,
 * an unknown field, a nested object, an object key, an invalid symbol, malformed JSON — it
 * appears in no answer, in no file under DATA_DIR except the secret store, and in nothing sent to
 * Telegram (every Bot API call the emulator received).
 */
describe('redaction of configured secrets (real process, fuzzed placements)', function () {
  this.timeout(180_000);
  let svc: ServiceHandle;
  let emu: TelegramEmulator;
  const ALLOWED = 1001;
  const WEBHOOK = 'test-webhook-secret-0123456789';
  const ALICE = 'alice-operator-token-0123456789';
  const LLM = 'sk-llm-key-0123456789abcdefghij';
  let secrets: string[];
  const answers: string[] = [];

  before(async () => {
    emu = await TelegramEmulator.start();
    svc = await startService({
      env: {
        OPERATOR_TOKENS: `alice:${ALICE}`, LLM_API_KEY: LLM, LLM_BASE_URL: 'http://127.0.0.1:9/v1', WEBHOOK_RATE_LIMIT_PER_MINUTE: '0',
        TELEGRAM_BOT_TOKEN: emu.token, TELEGRAM_API_ROOT: emu.apiURL, TELEGRAM_CHAT_ID: '-1001', TELEGRAM_ALLOWED_USER_IDS: String(ALLOWED),
      },
    });
    secrets = [WEBHOOK, svc.token, ALICE, LLM, emu.token];
  });
  after(async () => {
    await svc.kill();
    await emu.stop();
    fs.rmSync(svc.dataDir, { recursive: true, force: true });
  });

  type Placement = 'strategy' | 'id' | 'timeframe' | 'extra' | 'nested' | 'key' | 'ticker' | 'malformed' | 'api-strategy' | 'api-id';
  const placement = fc.constantFrom<Placement>('strategy', 'id', 'timeframe', 'extra', 'nested', 'key', 'ticker', 'malformed', 'api-strategy', 'api-id');
  const affix = fc.string({ maxLength: 6, unit: fc.constantFrom('a', 'b', '-', ' ', '1', 'ü', '/') });

  async function send(where: Placement, secret: string, before: string, after: string, n: number): Promise<void> {
    const s = `${before}${secret}${after}`;
    const base: Record<string, unknown> = { secret: WEBHOOK, ticker: 'UPBIT:BTCKRW', action: 'buy', price: '100000000', size: '50000', confidence: '0.5', id: `red-${n}` };
    let body: string;
    let url = `${svc.url}/webhook/tradingview`;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    switch (where) {
      case 'strategy': case 'id': case 'timeframe': case 'ticker':
        body = JSON.stringify({ ...base, [where]: s });
        break;
      case 'extra':
        body = JSON.stringify({ ...base, note: s });
        break;
      case 'nested':
        body = JSON.stringify({ ...base, plot: { values: [1, { label: s }] } });
        break;
      case 'key':
        body = JSON.stringify({ ...base, [s]: 'x' });
        break;
      case 'malformed':
        body = `{"secret":"${WEBHOOK}","ticker":"UPBIT:BTCKRW","strategy":"${s}",`;
        break;
      case 'api-strategy': case 'api-id':
        url = `${svc.url}/api/signals`;
        headers['authorization'] = `Bearer ${svc.token}`;
        body = JSON.stringify({ symbol: 'KRW-BTC', action: 'buy', price: 100_000_000, size: 50_000, confidence: 0.5, ...(where === 'api-id' ? { id: s } : { strategy: s, id: `red-api-${n}` }) });
        break;
    }
    const res = await fetch(url, { method: 'POST', headers, body });
    const text = await res.text();
    answers.push(text);
    expect(res.status, `${where}: ${text}`).to.be.oneOf([200, 202, 400]);
    if (res.status === 202) {
      const { signalId } = JSON.parse(text) as { signalId: string };
      const signal = await waitFor(async () => {
        const r = await svc.api('GET', `/api/signals/${signalId}`);
        return r.body.status === 'received' ? undefined : r;
      }, 'the signal to be processed', 20_000);
      answers.push(JSON.stringify(signal.body));
      if (signal.body.proposalId) answers.push(JSON.stringify((await svc.api('GET', `/api/proposals/${signal.body.proposalId}`)).body));
    }
  }

  function filesUnder(dir: string): string[] {
    return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
      const p = path.join(dir, e.name);
      return e.isDirectory() ? filesUnder(p) : [p];
    });
  }

  it('never stores, answers or logs a secret, wherever in a signal it was put', async () => {
    let n = 0;
    await fc.assert(fc.asyncProperty(placement, fc.nat({ max: 4 }), affix, affix, async (where, which, before, after) => {
      n += 1;
      await send(where, secrets[which]!, before, after, n);
    }), { numRuns: Number(process.env['REDACTION_RUNS'] ?? 40) });
    // Every placement at least once, with the webhook secret.
    for (const where of ['strategy', 'id', 'timeframe', 'extra', 'nested', 'key', 'ticker', 'malformed', 'api-strategy', 'api-id'] as const) {
      n += 1;
      await send(where, WEBHOOK, 'x', 'y', n);
    }
    // What people type: a label, a rejection's reason, a trading-state reason.
    const waiting = (await svc.api('GET', '/api/proposals?state=awaiting-approval&limit=3')).body.proposals as Array<{ id: string }>;
    expect(waiting.length).to.be.at.least(3);
    answers.push(JSON.stringify((await svc.api('POST', `/api/proposals/${waiting[0]!.id}/approve`, { by: `x${svc.token}` })).body));
    answers.push(JSON.stringify((await svc.api('POST', `/api/proposals/${waiting[1]!.id}/reject`, { by: 'ops', reason: `template leaked ${WEBHOOK}` })).body));
    answers.push(JSON.stringify((await svc.api('POST', '/api/trading-state', { state: 'reducing', by: 'ops', reason: `key ${LLM}` })).body));
    answers.push(JSON.stringify((await svc.api('POST', '/api/trading-state', { state: 'active', by: 'ops', reason: 'back' })).body));
    // And in Telegram: a rejection whose reason holds a secret, then the card's edit and a reply.
    const person = emu.client(ALLOWED, { userName: 'alice' });
    await emu.command(person, `/reject ${waiting[2]!.id} pasted ${WEBHOOK} by mistake`);
    await waitFor(async () => ((await svc.api('GET', `/api/proposals/${waiting[2]!.id}`)).body.state === 'rejected' ? true : undefined), 'the Telegram rejection');
    await emu.command(person, '/pending');
    await waitFor(() => (emu.messages().some((m) => /Waiting for approval/.test(m.text)) ? true : undefined), 'the /pending reply');
    answers.push(JSON.stringify((await svc.api('GET', '/api/proposals?limit=1000')).body));
    answers.push(JSON.stringify((await svc.api('GET', '/api/state')).body));

    for (const text of answers) for (const secret of secrets) expect(text.includes(secret), `an answer holds a secret: ${text.slice(0, 200)}`).to.equal(false);
    // Everything the bot sent (cards, edits, replies, notices, answers), as Telegram received it.
    const sentToTelegram = emu.calls.filter((c) => c.method !== 'getUpdates');
    expect(sentToTelegram.filter((c) => c.method === 'sendMessage').length, 'cards went out').to.be.greaterThan(0);
    for (const call of sentToTelegram) {
      const text = JSON.stringify(call.params);
      for (const secret of secrets) expect(text.includes(secret), `${call.method} to Telegram holds a secret: ${text.slice(0, 200)}`).to.equal(false);
    }
    expect(sentToTelegram.some((c) => JSON.stringify(c.params).includes('[redacted]')), 'placements reached Telegram redacted').to.equal(true);
    // The journal shows that the placements were stored (redacted), not dropped.
    const journal = fs.readdirSync(path.join(svc.dataDir, 'journal')).filter((f) => f.endsWith('.jsonl')).map((f) => fs.readFileSync(path.join(svc.dataDir, 'journal', f), 'utf8')).join('');
    expect(journal).to.contain('[redacted]');
    for (const file of filesUnder(svc.dataDir)) {
      if (path.basename(file) === 'secrets.json') continue;
      const content = fs.readFileSync(file);
      for (const secret of secrets) expect(content.includes(secret), `${path.relative(svc.dataDir, file)} holds a secret`).to.equal(false);
    }
  });
});
