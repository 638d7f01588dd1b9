/**
 * Benchmark 6, child phase `measure`: an allowed user's Approve tap under a flood of strangers
 * (issue 9). The real service (its own process, started through the test harness) against the
 * Bot API emulator `telegram-test-api`, which runs here with hooks on its HTTP server.
 *
 * Each round posts an alert that needs a person and waits for its card; in a flood round,
 * `strangers` distinct users (fresh ids every round, each in a private chat) then send `/help`
 * (10 at a time, all in the emulator before the tap); then the allowed user taps Approve.
 * Baseline rounds are the same without the flood, alternated with flood rounds in the same
 * service so a drift of the machine's load does not favour one. Before each round the bot's
 * outbound calls must have been quiet for a second (what a flood left queued is drained).
 *
 * Stamps (Date.now() here and the service's journal, same clock, 1 ms resolution):
 *   tap sent      the emulator has stored the tap (its client's POST resolved)
 *   hand-over     the emulator ends the `getUpdates` response that carries the tap (as leg b of
 *                 `telegram-latency.ts`): how long the bot took to ask for it is before this
 *   approval      the journal's `approval.given` record of the proposal
 *   answer        the `answerCallbackQuery` for the tap arrives at the emulator (`request`)
 * The first round is a baseline warm-up, not counted.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { TelegramEmulator } from '../test/fakes/telegram-emulator';
import { startService, type ServiceHandle } from '../test/support/service-process';
import { childMain } from './lib';

const CHAT_ID = '-1001';
const APPROVER = 1001;
/** Outbound silence (no bot call but getUpdates) that starts a round. */
const QUIET_MS = 1000;
const FIRST_STRANGER = 2_000_000;

export interface FloodArgs {
  dataDir: string;
  /** Measured rounds of each kind (flood and baseline), after one warm-up round. */
  rounds: number;
  /** Strangers sending `/help` in a flood round. */
  strangers: number;
}

/** One round; times in ms. */
export interface FloodRound {
  flood: boolean;
  /** Time to put every stranger's `/help` into the emulator (0 without a flood). */
  floodSendMs: number;
  /** Tap sent → hand-over: the tap waited in the emulator until the bot asked for updates. */
  tapToHandoverMs: number;
  /** Updates ahead of the tap in the getUpdates answer that carried it. */
  aheadInBatch: number;
  handoverToApprovalMs: number;
  handoverToAnswerMs: number;
  /** Tap sent → answer at the emulator: what the person waits for. */
  tapToAnswerMs: number;
  /** Replies to strangers the emulator had accepted before the tap's answer (recorder order). */
  strangerRepliesBeforeAnswer: number;
  /** Replies to this round's strangers the emulator had accepted once the approval was journalled (more may follow). */
  strangerReplies: number;
  /** Whether the round started with the bot's outbound calls quiet. */
  quietAtStart: boolean;
}

export interface FloodMeasured {
  strangers: number;
  rounds: FloodRound[];
  warmup: FloodRound;
}

interface Handover { at: number; callbackId: string; ahead: number }

/** Hooks on the emulator's HTTP server: taps handed over in getUpdates answers, answers to taps, last outbound call. */
function hookEmulator(emu: TelegramEmulator, handovers: Map<string, Handover>, answers: Map<string, number>, lastOutbound: { at: number }): void {
  const server = (emu.server as unknown as { server: Server }).server;
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const method = /^\/bot[^/]+\/(\w+)/.exec(req.url ?? '')?.[1];
    if (method === undefined || method === 'getMe') return;
    const at = Date.now();
    if (method === 'answerCallbackQuery') {
      res.once('finish', () => {
        const id = String((req as IncomingMessage & { body?: Record<string, unknown> }).body?.['callback_query_id'] ?? '');
        if (!answers.has(id)) answers.set(id, at);
      });
    }
    if (method !== 'getUpdates') {
      lastOutbound.at = at;
      return;
    }
    const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
    (res as { end: unknown }).end = (...args: unknown[]) => {
      const endAt = Date.now();
      const chunk = args[0];
      const text = Buffer.isBuffer(chunk) ? chunk.toString('utf8') : typeof chunk === 'string' ? chunk : '';
      if (text.includes('callback_query')) {
        const updates = (JSON.parse(text) as { result?: Array<{ callback_query?: { id?: string; data?: string } }> }).result ?? [];
        updates.forEach((u, ahead) => {
          const data = u.callback_query?.data;
          if (data && !handovers.has(data)) handovers.set(data, { at: endAt, callbackId: String(u.callback_query?.id), ahead });
        });
      }
      return end(...args);
    };
  });
}

async function waitUntil<T>(check: () => T | undefined, what: string, timeoutMs: number, stepMs = 20): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
}

/** The `at` of the journal's `approval.given` record of a proposal, if written yet. */
function approvalAt(dataDir: string, proposalId: string): number | undefined {
  const dir = path.join(dataDir, 'journal');
  if (!fs.existsSync(dir)) return undefined;
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl'))) {
    for (const line of fs.readFileSync(path.join(dir, file), 'utf8').split('\n')) {
      if (!line.includes('"type":"approval.given"') || !line.includes(proposalId)) continue;
      const r = JSON.parse(line) as { proposalId?: string; at?: string };
      if (r.proposalId === proposalId && r.at) return Date.parse(r.at);
    }
  }
  return undefined;
}

/** Posts an alert that needs a person; resolves with its proposal id once its card is in the chat. */
async function cardedProposal(svc: ServiceHandle, emu: TelegramEmulator, n: number): Promise<string> {
  const res = await svc.api('POST', '/api/signals', { symbol: 'KRW-BTC', action: 'buy', confidence: 0.5, size: 50_000, strategy: `bench-flood-${n}` });
  if (res.status !== 202) throw new Error(`alert refused: ${res.status} ${JSON.stringify(res.body)}`);
  const signalId = res.body.signalId as string;
  let id: string | undefined;
  const until = Date.now() + 30_000;
  while (id === undefined) {
    const s = await svc.api('GET', `/api/signals/${signalId}`);
    if (s.body?.status === 'dropped') throw new Error(`alert dropped: ${s.body.reason}`);
    if (s.body?.status === 'proposed') id = s.body.proposalId as string;
    else if (Date.now() > until) throw new Error(`alert ${signalId} not proposed`);
    else await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const proposalId = id;
  await waitUntil(() => emu.cardSends(proposalId)[0], `the card of ${proposalId}`, 30_000);
  return proposalId;
}

async function round(svc: ServiceHandle, emu: TelegramEmulator, args: FloodArgs, n: number, flood: boolean, state: {
  handovers: Map<string, Handover>; answers: Map<string, number>; lastOutbound: { at: number };
}): Promise<FloodRound> {
  const quietAtStart = await waitUntil(() => (Date.now() - state.lastOutbound.at >= QUIET_MS ? true : undefined), 'the bot to go quiet', 60_000, 50)
    .catch(() => false);
  const proposalId = await cardedProposal(svc, emu, n);
  const strangers = flood ? Array.from({ length: args.strangers }, (_, i) => FIRST_STRANGER + n * args.strangers + i) : [];
  const strangerChats = new Set(strangers.map(String));
  const floodStarted = Date.now();
  await emu.flood(strangers, '/help', 10);
  const floodSendMs = Date.now() - floodStarted;

  const client = emu.client(APPROVER, { chatId: Number(CHAT_ID), userName: 'bench' });
  const data = `approve:${proposalId}`;
  await client.sendCallback(client.makeCallbackQuery(data));
  const tapSent = Date.now();
  const handover = await waitUntil(() => state.handovers.get(data), `the hand-over of ${data}`, 120_000);
  const answerAt = await waitUntil(() => state.answers.get(handover.callbackId), `the answer to ${data}`, 120_000);
  const approval = await waitUntil(() => approvalAt(args.dataDir, proposalId), `approval.given of ${proposalId}`, 120_000, 50);
  const answerCall = emu.calls.find((c) => c.method === 'answerCallbackQuery' && String(c.params['callback_query_id']) === handover.callbackId);
  const isStrangerReply = (c: (typeof emu.calls)[number]) => c.method === 'sendMessage' && c.status === 200 && strangerChats.has(String(c.params['chat_id']));
  return {
    flood, floodSendMs, quietAtStart,
    tapToHandoverMs: handover.at - tapSent,
    aheadInBatch: handover.ahead,
    handoverToApprovalMs: approval - handover.at,
    handoverToAnswerMs: answerAt - handover.at,
    tapToAnswerMs: answerAt - tapSent,
    strangerRepliesBeforeAnswer: answerCall ? emu.countBefore(answerCall, isStrangerReply) : Number.NaN,
    strangerReplies: emu.sendsTo(strangerChats).length,
  };
}

async function measure(args: FloodArgs): Promise<FloodMeasured> {
  const handovers = new Map<string, Handover>();
  const answers = new Map<string, number>();
  const lastOutbound = { at: 0 };
  const emu = await TelegramEmulator.start();
  hookEmulator(emu, handovers, answers, lastOutbound);
  fs.mkdirSync(args.dataDir, { recursive: true });
  fs.writeFileSync(path.join(args.dataDir, 'rules.json'), JSON.stringify({ allowAddToPosition: true }));
  const svc = await startService({
    dataDir: args.dataDir,
    waitReady: false,
    env: {
      TELEGRAM_BOT_TOKEN: emu.token, TELEGRAM_API_ROOT: emu.apiURL, TELEGRAM_CHAT_ID: CHAT_ID, TELEGRAM_ALLOWED_USER_IDS: String(APPROVER),
      RISK_MAX_POSITION_PCT: '100', PAPER_INITIAL_CASH: '100000000000',
      // Long enough that a tap held up by the flood is still measured, never timed out.
      APPROVAL_TIMEOUT_SECONDS: '1800',
    },
  });
  try {
    await svc.waitReady(30_000);
    const state = { handovers, answers, lastOutbound };
    let n = 0;
    const warmup = await round(svc, emu, args, n++, false, state);
    const rounds: FloodRound[] = [];
    for (let r = 0; r < args.rounds; r++) {
      // Alternate which kind goes first.
      for (const flood of r % 2 === 0 ? [true, false] : [false, true]) rounds.push(await round(svc, emu, args, n++, flood, state));
    }
    return { strangers: args.strangers, rounds, warmup };
  } finally {
    await svc.kill();
    await emu.stop();
  }
}

childMain({ measure });
