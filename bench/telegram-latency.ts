/**
 * Benchmark 5, child phase `measure`: Telegram gate latencies of the real service (its own
 * process, started through the test harness) against the Bot API emulator `telegram-test-api`,
 * which runs here, in this process, with hooks on its HTTP server.
 *
 *   leg a  webhook 202 → card: an alert that needs a person is posted to
 *          `/webhook/tradingview` (paced, open loop); from the moment its 202 arrives here to
 *          the moment the emulator's HTTP server receives the `sendMessage` carrying its card
 *          (the `request` event; the card is recognised by its `approve:<id>` button once the
 *          body is parsed). Both stamps are taken in this process (performance.now()).
 *   leg b  callback handed to the bot → order at the venue: Approve is tapped on every card
 *          (paced, open loop); from the moment the emulator sends the `getUpdates` response that
 *          carries the tap (its `res.end`) to the paper order's `submittedAt` (and, for
 *          comparison, the journal's `order.submitted` record). The bot polls `getUpdates`
 *          again at once after a batch but sleeps `idlePollMs` (250 ms) after an empty answer,
 *          and the emulator answers at once: taps wait there before they are handed over,
 *          which is not measured; taps that arrive during one sleep are handed over together
 *          and handled one after another, which is. Service stamps are ISO strings with
 *          millisecond resolution (Date.now() here, same clock).
 *
 * The first `warmup` proposals go through both legs but are not counted.
 */
import fs from 'node:fs';
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import path from 'node:path';
import { TelegramEmulator } from '../test/fakes/telegram-emulator';
import { startService } from '../test/support/service-process';
import { childMain, spread, type Spread } from './lib';

const CHAT_ID = '-1001';
const APPROVER = 1001;
const WEBHOOK_SECRET = 'bench-webhook-secret-0123456789';

export interface TelegramArgs {
  dataDir: string;
  /** Measured proposals (after the warm-up). */
  proposals: number;
  warmup: number;
  /** Alerts posted per second (leg a). */
  signalRate: number;
  /** Approve taps per second (leg b). */
  tapRate: number;
}

export interface TelegramMeasured {
  proposals: number;
  warmup: number;
  signalRate: number;
  tapRate: number;
  /** leg a, ms: 202 → card's sendMessage at the emulator. */
  cardMs: Spread;
  /** leg a breakdown (ms, journal stamps): 202 → `awaiting-approval` recorded, that → card at the emulator. */
  toAwaitingMs: Spread;
  awaitingToCardMs: Spread;
  /** Largest delay of a paced alert behind its schedule, ms. */
  signalLagMaxMs: number;
  /** Cards that reached the emulator less than 45 ms after the previous outbound call: they waited for the client's 25/s spacing. */
  heldCards: number;
  /** leg b, ms: getUpdates response with the tap → paper order `submittedAt`. */
  orderMs: Spread;
  /** Same, to the journal's `order.submitted` record (after the venue's write). */
  orderJournalMs: Spread;
  /** Same as orderMs, for taps that were first in their getUpdates batch. */
  orderFirstInBatchMs: Spread;
  /** leg b breakdown (ms, journal stamps): handed over → `approval.given` (all taps, first taps of a batch), that → `executing`, that → `submittedAt`. */
  toApprovalMs: Spread;
  firstToApprovalMs: Spread;
  approvalToExecutingMs: Spread;
  executingToOrderMs: Spread;
  /** Taps per getUpdates answer that carried any. */
  batchSizes: { answers: number; mean: number; max: number; single: number };
  tapLagMaxMs: number;
  /** Measured proposals whose card (leg a) or order (leg b) did not arrive in time (must be 0). */
  missingCards: number;
  missingOrders: number;
  elapsedMs: { legA: number; legB: number };
}

/** Form-encoded Bot API parameters arrive as strings; structured ones hold JSON. */
function param(value: unknown): unknown {
  if (typeof value === 'string' && /^[[{]/.test(value)) {
    try {
      return JSON.parse(value);
    } catch {
      return value;
    }
  }
  return value;
}

const APPROVE = /^approve:(p-\d{8}-[0-9a-f]{12})$/;

/** The proposal id of a card's Approve button in `sendMessage` parameters. */
function cardProposal(body: Record<string, unknown> | undefined): string | undefined {
  const markup = param(body?.['reply_markup']) as { inline_keyboard?: Array<Array<{ callback_data?: string }>> } | undefined;
  for (const button of markup?.inline_keyboard?.flat() ?? []) {
    const m = APPROVE.exec(button.callback_data ?? '');
    if (m) return m[1];
  }
  return undefined;
}

interface Handoff {
  at: number;
  position: number;
  batch: number;
}

interface CardArrival {
  at: number;
  /** Since the previous call of the service's outbound queue reached the emulator, ms. */
  gap: number;
}

/** The service's client spaces its outbound calls 1000/25 = 40 ms apart: a card this close to the previous call waited for it. */
const QUEUE_SPACING_MS = 40;

/** Hooks on the emulator's HTTP server: card arrivals and getUpdates hand-overs of taps. */
function hookEmulator(emu: TelegramEmulator, cards: Map<string, CardArrival>, handoffs: Map<string, Handoff>, batches: number[]): void {
  const server = (emu.server as unknown as { server: Server }).server;
  let lastQueued = Number.NEGATIVE_INFINITY;
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const method = /^\/bot[^/]+\/(\w+)/.exec(req.url ?? '')?.[1];
    if (method !== undefined && method !== 'getUpdates' && method !== 'getMe') {
      const at = performance.now();
      const gap = at - lastQueued;
      lastQueued = at;
      if (method !== 'sendMessage') return;
      res.once('finish', () => {
        const id = cardProposal((req as IncomingMessage & { body?: Record<string, unknown> }).body);
        if (id && !cards.has(id)) cards.set(id, { at, gap });
      });
    } else if (method === 'getUpdates') {
      const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
      (res as { end: unknown }).end = (...args: unknown[]) => {
        const at = Date.now();
        const chunk = args[0];
        const text = Buffer.isBuffer(chunk) ? chunk.toString('utf8') : typeof chunk === 'string' ? chunk : '';
        if (text.includes('callback_query')) {
          const updates = (JSON.parse(text) as { result?: Array<{ callback_query?: { data?: string } }> }).result ?? [];
          const taps = updates.map((u) => APPROVE.exec(u.callback_query?.data ?? '')?.[1]).filter((id): id is string => id !== undefined);
          if (taps.length > 0) batches.push(taps.length);
          taps.forEach((id, position) => {
            if (!handoffs.has(id)) handoffs.set(id, { at, position, batch: taps.length });
          });
        }
        return end(...args);
      };
    }
  });
}

/** Calls `fire(i)` for i = 0 … n-1 at start + i × 1000/rate ms (open loop); resolves with the largest lag. */
function paced(n: number, rate: number, fire: (i: number) => void): Promise<number> {
  const interval = 1000 / rate;
  const started = performance.now();
  let next = 0;
  let lagMax = 0;
  return new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (next < n && started + next * interval <= now) {
        lagMax = Math.max(lagMax, now - (started + next * interval));
        fire(next);
        next += 1;
      }
      if (next < n) setTimeout(tick, Math.max(0, started + next * interval - performance.now()));
      else resolve(lagMax);
    };
    tick();
  });
}

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return true;
}

/** Journal records of some types, read straight from the day files. */
function journalRecords(dataDir: string, types: string[]): Array<Record<string, any>> {
  const dir = path.join(dataDir, 'journal');
  const marks = types.map((t) => `"type":"${t}"`);
  const out: Array<Record<string, any>> = [];
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort()) {
    for (const line of fs.readFileSync(path.join(dir, file), 'utf8').split('\n')) {
      if (marks.some((m) => line.includes(m))) out.push(JSON.parse(line) as Record<string, any>);
    }
  }
  return out;
}

async function measure(args: TelegramArgs): Promise<TelegramMeasured> {
  const total = args.warmup + args.proposals;
  const cards = new Map<string, CardArrival>();
  const handoffs = new Map<string, Handoff>();
  const batches: number[] = [];
  const emu = await TelegramEmulator.start();
  hookEmulator(emu, cards, handoffs, batches);
  fs.mkdirSync(args.dataDir, { recursive: true });
  fs.writeFileSync(path.join(args.dataDir, 'rules.json'), JSON.stringify({ allowAddToPosition: true }));
  const svc = await startService({
    dataDir: args.dataDir,
    waitReady: false,
    env: {
      TELEGRAM_BOT_TOKEN: emu.token, TELEGRAM_API_ROOT: emu.apiURL, TELEGRAM_CHAT_ID: CHAT_ID, TELEGRAM_ALLOWED_USER_IDS: String(APPROVER),
      WEBHOOK_SECRET, WEBHOOK_RATE_LIMIT_PER_MINUTE: '0', DEDUPE_WINDOW_SECONDS: '300',
      RISK_MAX_POSITION_PCT: '100', PAPER_INITIAL_CASH: '100000000000', APPROVAL_TIMEOUT_SECONDS: '1800',
    },
  });
  try {
    await svc.waitReady(30_000);

    // ---- leg a: alerts that need a person, paced; 202 → card at the emulator
    const url = new URL(svc.url);
    const agent = new http.Agent({ keepAlive: true });
    const ids: Array<string | undefined> = new Array(total);
    const answered = new Map<string, number>();
    let failures = 0;
    const legAStarted = performance.now();
    const signalLagMaxMs = await paced(total, args.signalRate, (i) => {
      const body = JSON.stringify({ secret: WEBHOOK_SECRET, symbol: 'KRW-BTC', action: 'buy', confidence: 0.5, size: 50_000, strategy: 'bench-telegram', id: `tg-${i}` });
      const req = http.request({
        agent, host: url.hostname, port: url.port, method: 'POST', path: '/webhook/tradingview',
        headers: { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) },
      }, (res) => {
        const at = performance.now();
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => {
          const signalId = /"signalId":"(sig-[^"]+)"/.exec(text)?.[1];
          if (res.statusCode !== 202 || !signalId) {
            failures += 1;
            return;
          }
          const id = signalId.replace(/^sig-/, 'p-');
          ids[i] = id;
          answered.set(id, at);
        });
      });
      req.on('error', () => {
        failures += 1;
      });
      req.end(body);
    });
    await waitUntil(() => answered.size + failures >= total, 30_000);
    if (failures > 0) throw new Error(`${failures} of ${total} alerts were not accepted:\n${svc.output().slice(-2000)}`);
    await waitUntil(() => [...answered.keys()].every((id) => cards.has(id)), 60_000);
    const legAMs = performance.now() - legAStarted;
    agent.destroy();

    // ---- leg b: Approve on every card, paced; getUpdates hand-over → order at the venue
    const client = emu.client(APPROVER, { chatId: Number(CHAT_ID), userName: 'bench' });
    const tapIds = ids.filter((id): id is string => id !== undefined && cards.has(id));
    const legBStarted = performance.now();
    const tapLagMaxMs = await paced(tapIds.length, args.tapRate, (i) => {
      void client.sendCallback(client.makeCallbackQuery(`approve:${tapIds[i]}`)).catch(() => undefined);
    });
    const want = new Set(tapIds);
    let submitted: Array<Record<string, any>> = [];
    await waitUntil(() => {
      submitted = journalRecords(args.dataDir, ['order.submitted']).filter((r) => want.has(r['proposalId'] as string));
      return submitted.length >= want.size;
    }, 60_000);
    const legBMs = performance.now() - legBStarted;

    // ---- figures (warm-up proposals excluded)
    const measured = new Set(ids.slice(args.warmup).filter((id): id is string => id !== undefined));
    const origin = performance.timeOrigin;
    const records = journalRecords(args.dataDir, ['proposal.transition', 'approval.given']).filter((r) => measured.has(r['proposalId'] as string));
    const stamp = (pred: (r: Record<string, any>) => boolean) => new Map(records.filter(pred).map((r) => [r['proposalId'] as string, Date.parse(r['at'] as string)]));
    const awaitingAt = stamp((r) => r['type'] === 'proposal.transition' && r['to'] === 'awaiting-approval');
    const executingAt = stamp((r) => r['type'] === 'proposal.transition' && r['to'] === 'executing');
    const approvalAt = stamp((r) => r['type'] === 'approval.given');
    const orders = new Map(submitted.map((r) => [r['proposalId'] as string, { submittedAt: Date.parse(r['order'].submittedAt as string), journalAt: Date.parse(r['at'] as string) }]));

    const card: number[] = [];
    const toAwaiting: number[] = [];
    const awaitingToCard: number[] = [];
    const order: number[] = [];
    const orderJournal: number[] = [];
    const firstInBatch: number[] = [];
    const toApproval: number[] = [];
    const firstToApproval: number[] = [];
    const approvalToExecuting: number[] = [];
    const executingToOrder: number[] = [];
    let missingCards = 0;
    let missingOrders = 0;
    let heldCards = 0;
    for (const id of measured) {
      const at202 = answered.get(id)!;
      const arrival = cards.get(id);
      if (arrival === undefined) {
        missingCards += 1;
        continue;
      }
      const cardAt = arrival.at;
      card.push(cardAt - at202);
      if (arrival.gap < QUEUE_SPACING_MS + 5) heldCards += 1;
      const awaiting = awaitingAt.get(id);
      if (awaiting !== undefined) {
        toAwaiting.push(awaiting - (origin + at202));
        awaitingToCard.push(origin + cardAt - awaiting);
      }
      const handoff = handoffs.get(id);
      const o = orders.get(id);
      if (!handoff || !o) {
        missingOrders += 1;
        continue;
      }
      order.push(o.submittedAt - handoff.at);
      orderJournal.push(o.journalAt - handoff.at);
      if (handoff.position === 0) firstInBatch.push(o.submittedAt - handoff.at);
      const approved = approvalAt.get(id);
      const executing = executingAt.get(id);
      if (approved !== undefined && executing !== undefined) {
        toApproval.push(approved - handoff.at);
        if (handoff.position === 0) firstToApproval.push(approved - handoff.at);
        approvalToExecuting.push(executing - approved);
        executingToOrder.push(o.submittedAt - executing);
      }
    }
    return {
      proposals: measured.size, warmup: args.warmup, signalRate: args.signalRate, tapRate: args.tapRate,
      cardMs: spread(card), toAwaitingMs: spread(toAwaiting), awaitingToCardMs: spread(awaitingToCard), signalLagMaxMs,
      orderMs: spread(order), orderJournalMs: spread(orderJournal), orderFirstInBatchMs: spread(firstInBatch),
      toApprovalMs: spread(toApproval), firstToApprovalMs: spread(firstToApproval), approvalToExecutingMs: spread(approvalToExecuting), executingToOrderMs: spread(executingToOrder),
      batchSizes: {
        answers: batches.length, mean: batches.reduce((a, b) => a + b, 0) / Math.max(1, batches.length),
        max: Math.max(0, ...batches), single: batches.filter((b) => b === 1).length,
      },
      heldCards, tapLagMaxMs, missingCards, missingOrders, elapsedMs: { legA: legAMs, legB: legBMs },
    };
  } finally {
    await svc.kill();
    await emu.stop();
  }
}

childMain({ measure });
