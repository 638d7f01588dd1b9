/**
 * The Telegram Bot API emulator (`telegram-test-api` 4.2.1) on loopback, with a recorder of
 * every Bot API call the bot makes (method, parameters, HTTP status) that survives a restart
 * of the emulator on the same port. The emulator itself keeps only the latest version of each
 * bot message (edits overwrite it in place) and nothing of `answerCallbackQuery` or refused
 * methods; the recorder is how tests see those.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import TelegramServer from 'telegram-test-api';
import { freePort } from '../support/service-process';

export type Keyboard = Array<Array<{ text: string; callback_data: string }>>;

/** One Bot API call as the emulator received it. */
export interface BotCall {
  method: string;
  params: Record<string, any>;
  status: number;
  at: number;
  /** Which emulator instance (0 first, 1 after the first restart, …) received it. */
  instance: number;
}

/** A bot message as it is now in the emulator (copied: later edits do not change it). */
export interface BotMessage {
  messageId: number;
  chatId: string;
  text: string;
  keyboard: Keyboard | undefined;
}

export type EmulatorClient = ReturnType<TelegramServer['getClient']>;

export const BOT_TOKEN = '123456:TEST';

/** Form-encoded parameters arrive as strings; structured ones are JSON. */
function decode(body: unknown): Record<string, any> {
  const out: Record<string, any> = {};
  if (!body || typeof body !== 'object') return out;
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    if (typeof v === 'string' && /^[[{]/.test(v)) {
      try { out[k] = JSON.parse(v); continue; } catch { /* a plain string */ }
    }
    out[k] = typeof v === 'object' && v !== null ? structuredClone(v) : v;
  }
  return out;
}

export class TelegramEmulator {
  server!: TelegramServer;
  readonly calls: BotCall[] = [];
  private instance = -1;
  private running = false;

  private constructor(readonly port: number, readonly token: string) {}

  static async start(token = BOT_TOKEN): Promise<TelegramEmulator> {
    const emu = new TelegramEmulator(await freePort(), token);
    await emu.startInstance();
    return emu;
  }

  get apiURL(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** A new emulator instance on the same port (empty storage, the call log is kept). */
  async startInstance(): Promise<void> {
    if (this.running) return;
    this.server = new TelegramServer({ port: this.port, host: '127.0.0.1', storeTimeout: 600 });
    await this.server.start();
    this.instance += 1;
    this.running = true;
    const instance = this.instance;
    const http = (this.server as unknown as { server: Server }).server;
    http.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
      const m = /^\/bot[^/]+\/(\w+)/.exec(req.url ?? '');
      if (!m) return;
      res.once('finish', () => {
        // Express has parsed (and the emulator normalised) the body on the same request object.
        this.calls.push({ method: m[1]!, params: decode((req as IncomingMessage & { body?: unknown }).body), status: res.statusCode, at: Date.now(), instance });
      });
    });
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    await this.server.stop();
  }

  client(userId: number, opts: { chatId?: number; type?: 'private' | 'group' | 'supergroup'; userName?: string } = {}): EmulatorClient {
    return this.server.getClient(this.token, {
      userId, chatId: opts.chatId ?? -1001, type: opts.type ?? 'group', userName: opts.userName ?? `user${userId}`, firstName: opts.userName ?? `User ${userId}`,
    });
  }

  /** Taps an inline button (the callback carries only `data`, as the emulator's client makes it). */
  async tap(client: EmulatorClient, data: string): Promise<void> {
    await client.sendCallback(client.makeCallbackQuery(data));
  }

  async command(client: EmulatorClient, text: string): Promise<void> {
    await client.sendCommand(client.makeCommand(text));
  }

  /** A person in a private chat with the bot (chat id = user id, as Telegram has it). */
  privateClient(userId: number, userName = `user${userId}`): EmulatorClient {
    return this.client(userId, { chatId: userId, type: 'private', userName });
  }

  /**
   * Each of `userIds` sends `text` from a private chat, `concurrency` at a time; resolves once
   * the emulator holds every one of them (so an update sent afterwards comes after them all).
   */
  async flood(userIds: number[], text: string, concurrency = 10): Promise<void> {
    for (let i = 0; i < userIds.length; i += concurrency) {
      await Promise.all(userIds.slice(i, i + concurrency).map((id) => this.command(this.privateClient(id), text)));
    }
  }

  /** `sendMessage` calls the emulator accepted for any of `chatIds`, in the order they were made. */
  sendsTo(chatIds: ReadonlySet<string>): BotCall[] {
    return this.accepted('sendMessage').filter((c) => chatIds.has(String(c.params['chat_id'])));
  }

  /**
   * How many calls matching `match` the emulator had finished before `call` (one of `calls`):
   * the recorder's order is the order the bot's calls completed, with no clock involved.
   */
  countBefore(call: BotCall, match: (c: BotCall) => boolean): number {
    const index = this.calls.indexOf(call);
    if (index < 0) throw new Error(`${call.method} is not a recorded call`);
    return this.calls.slice(0, index).filter(match).length;
  }

  /** Every message the bot has in the emulator now, copied. */
  messages(): BotMessage[] {
    return this.server.storage.botMessages.map((u) => {
      const msg = u.message as unknown as { chat_id: number | string; text: string; reply_markup?: { inline_keyboard?: Keyboard } };
      return {
        messageId: u.messageId,
        chatId: String(msg.chat_id),
        text: msg.text,
        keyboard: msg.reply_markup?.inline_keyboard ? structuredClone(msg.reply_markup.inline_keyboard) : undefined,
      };
    });
  }

  /** The card of a proposal as it is now (its first line names the proposal id). */
  card(proposalId: string): BotMessage | undefined {
    return this.messages().find((m) => m.text.startsWith('<b>') && m.text.includes(`<code>${proposalId}</code>`));
  }

  /** Bot messages sent after `since` (messages already there are excluded by id). */
  messagesAfter(seen: Set<number>): BotMessage[] {
    return this.messages().filter((m) => !seen.has(m.messageId));
  }

  /** Calls of one method that the emulator accepted (HTTP 200). */
  accepted(method: string): BotCall[] {
    return this.calls.filter((c) => c.method === method && c.status === 200);
  }

  /** `sendMessage` calls that carried a proposal's card (its Approve button). */
  cardSends(proposalId: string): BotCall[] {
    return this.accepted('sendMessage').filter((c) => (c.params['reply_markup']?.inline_keyboard as Keyboard | undefined)
      ?.flat().some((b) => b.callback_data === `approve:${proposalId}`));
  }

  /** Answers given to callback queries, in order. */
  answers(): Array<{ id: string; text: string; alert: boolean }> {
    return this.accepted('answerCallbackQuery').map((c) => ({
      id: String(c.params['callback_query_id']), text: String(c.params['text'] ?? ''), alert: String(c.params['show_alert']) === 'true',
    }));
  }

  /** The update the emulator stored for the last callback query (for re-delivery tests). */
  lastCallbackUpdate(): Record<string, any> | undefined {
    const list = this.server.storage.userMessages as unknown as Array<Record<string, any>>;
    return [...list].reverse().find((u) => 'callbackQuery' in u);
  }

  /**
   * Puts an update back into the emulator's queue so `getUpdates` delivers it again, as
   * Telegram does when an offset was not confirmed; with `newUpdateId`, the same callback query
   * arrives in a new update.
   */
  redeliver(update: Record<string, any>, opts: { newUpdateId?: boolean } = {}): void {
    const copy: Record<string, any> = { ...update, isRead: false };
    if (opts.newUpdateId) {
      // The emulator numbers updates with a private counter; take the next number from it.
      const counter = this.server as unknown as { updateId: number };
      copy['updateId'] = counter.updateId;
      counter.updateId += 1;
    }
    (this.server.storage.userMessages as unknown as Array<Record<string, any>>).push(copy);
  }
}
