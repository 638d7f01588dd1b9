/**
 * The Telegram gate: proposal cards (see cards.ts), commands and button taps from allowed users,
 * notices. Every update passes one authorisation check; an allowed person's update goes through
 * the command or tap table (command-table.ts) inside one error boundary that renders typed
 * errors; a stranger's costs O(1) and never waits in front of allowed users' work (at most one
 * reply per chat per hour, in the lowest outbound lane). The update offset, card records and
 * display names are persisted in `telegram.json`.
 */
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { CallbackQuery, Message, Update } from 'node-telegram-bot-api';
import { AppError } from '../errors';
import { JsonDocument } from '../persistence/json-document';
import type { StorageIo } from '../persistence/storage-io';
import type { Logger } from '../logging';
import type { TradeLog } from '../journal/trade-log';
import type { Commands } from '../runtime/commands';
import type { Orchestrator } from '../runtime/orchestrator';
import type { ScanReport } from '../runtime/scheduler';
import type { ProposalView } from '../proposal/view';
import { escapeHtml, parseCallbackData, renderCard, type CardAction } from '../proposal/card-renderer';
import type { PriceRule } from '../proposal/price-on-approval';
import type { Notice, NoticeSink } from '../notifications/notice';
import type { Lane, TelegramClient } from '../notifications/telegram';
import { COMMANDS, renderLiquidation, renderNotice } from './format';
import { CardDesk, type TelegramFile } from './cards';
import { commandTable, tapTable, type CommandHandler, type TapOutcome, type TapPlace, type TapTable } from './command-table';
import { StrangerLimiter } from './strangers';

export interface TelegramGateDeps {
  client: TelegramClient;
  io: StorageIo;
  dataDir: string;
  commands: Commands;
  orchestrator: Orchestrator;
  journal: TradeLog;
  logger: Logger;
  chatId: string;
  allowedUserIds: string[];
  timeZone: string;
  quoteCurrency: string;
  /** Shown on cards: until when an entry's price stands at approval. */
  priceRule?: PriceRule;
  scan?: (symbol?: string) => Promise<ScanReport>;
  now?: () => number;
}

const LIQUIDATION_CONFIRM_MS = 60_000;
/** Taps remembered so that a re-delivered tap has no second effect. */
const RECENT_TAPS = 500;

/** Who sent an update and where, as the one authorisation check reads it. */
interface Sender {
  userId: number | undefined;
  chat: { id: number | string; type?: string } | undefined;
}

export class TelegramGate implements NoticeSink {
  readonly name = 'telegram';
  private doc!: JsonDocument<TelegramFile>;
  private cards!: CardDesk;
  private readonly now: () => number;
  private readonly liquidationNonces = new Map<string, { expires: number; messageId?: number }>();
  private readonly handlingCallbacks = new Set<string>();
  private readonly strangers: StrangerLimiter;
  private readonly commandHandlers: Record<string, CommandHandler>;
  private readonly tapHandlers: TapTable;

  constructor(private readonly deps: TelegramGateDeps) {
    this.now = deps.now ?? Date.now;
    this.strangers = new StrangerLimiter(this.now);
    const tableDeps = {
      commands: deps.commands, timeZone: deps.timeZone, ...(deps.scan ? { scan: deps.scan } : {}),
      liquidationPrompt: () => this.liquidationPrompt(),
      confirmLiquidation: (nonce: string, by: string, where: TapPlace) => this.confirmLiquidation(nonce, by, where),
    };
    this.commandHandlers = commandTable(tableDeps);
    this.tapHandlers = tapTable(tableDeps);
  }

  /** Opens the card store and subscribes to proposal changes (call before restore). */
  async open(): Promise<void> {
    this.doc = await JsonDocument.open<TelegramFile>(this.deps.io, path.join(this.deps.dataDir, 'telegram.json'), {
      version: 1, offset: 0, cards: {}, recentCallbacks: [], names: {},
    });
    this.cards = new CardDesk({
      client: this.deps.client, doc: this.doc, orchestrator: this.deps.orchestrator, journal: this.deps.journal,
      logger: this.deps.logger, chatId: this.deps.chatId, render: (view) => this.render(view), now: this.now,
    });
    this.deps.orchestrator.onChange((change) => this.cards.onProposalChange(change));
  }

  /** Registers the command menu, reconciles cards with proposals, and starts polling. */
  async start(): Promise<void> {
    this.deps.client.send({ method: 'setMyCommands', lane: 'notice', params: { commands: COMMANDS }, maxAttempts: 1 }).catch((err: unknown) => {
      // Optional: real Telegram can refuse it too; the bot works without the menu.
      this.deps.logger.warn('setMyCommands was refused; the command menu is not shown', { error: (err as Error).message });
    });
    this.cards.reconcile();
    this.deps.client.startPolling(this.doc.data.offset, (updates) => this.handleUpdates(updates));
  }

  async stop(): Promise<void> {
    await this.deps.client.stop();
    await this.doc.flush();
  }

  async close(): Promise<void> {
    await this.stop();
  }

  /** NoticeSink: critical notices (breakers, storage) go with the cards, the rest after them. */
  notify(notice: Notice): void {
    this.deps.client.send({ method: 'sendMessage', lane: notice.severity === 'critical' ? 'card' : 'notice', params: { chat_id: this.deps.chatId, text: renderNotice(notice), parse_mode: 'HTML' } })
      .catch((err: unknown) => this.deps.logger.warn('telegram notice not delivered', { kind: notice.kind, error: (err as Error).message }));
  }

  private render(view: ProposalView) {
    return renderCard(view, { timeZone: this.deps.timeZone, quoteCurrency: this.deps.quoteCurrency, names: this.doc.data.names, ...(this.deps.priceRule ? { priceRule: this.deps.priceRule } : {}) });
  }

  // ---- updates

  private async handleUpdates(updates: Update[]): Promise<number> {
    let offset = this.doc.data.offset;
    // Taps are handled side by side (an approval's answer waits for its re-check, and one person's
    // tap must not wait for another's); commands in order, each waiting for its effect but not for
    // its reply to be delivered; strangers at once, with no wait at all.
    const taps: Array<Promise<void>> = [];
    let allowedWork = false;
    for (const update of updates) {
      if (update.update_id < offset) continue; // a duplicate delivery
      // The client types an update as a union of one-field shapes; read it as optional fields.
      const u = update as { callback_query?: CallbackQuery; message?: Message };
      const failed = (err: unknown): void => {
        this.deps.logger.error('telegram update failed', { updateId: update.update_id, error: (err as Error).message });
      };
      if (u.callback_query) {
        const q = u.callback_query;
        if (this.authorised({ userId: q.from?.id, chat: q.message?.chat })) {
          allowedWork = true;
          taps.push(this.handleTap(q).catch(failed));
        } else this.strangerTap(q);
      } else if (u.message?.text?.trim().startsWith('/')) {
        const m = u.message;
        if (this.authorised({ userId: m.from?.id, chat: m.chat })) {
          allowedWork = true;
          await this.handleCommand(m).catch(failed);
        } else this.strangerCommand(m);
      }
      offset = update.update_id + 1;
    }
    await Promise.all(taps);
    this.doc.data.offset = offset;
    // One write per batch for the offset and the handled callbacks. Each decision was made
    // durable before it was answered; a crash before this write only makes Telegram deliver the
    // batch again, and repeats are harmless (an approval counts once, a second reject is a 409).
    // A batch of strangers only is not worth a write: the offset goes with the next one.
    if (allowedWork) await this.doc.update(() => undefined);
    return offset;
  }

  /**
   * The one authorisation check: an allowed user, in the configured chat or in a private chat
   * with the bot (a tap may come without its message, so without a chat).
   */
  private authorised({ userId, chat }: Sender): boolean {
    if (userId === undefined || !this.deps.allowedUserIds.includes(String(userId))) return false;
    return !chat || String(chat.id) === this.deps.chatId || chat.type === 'private';
  }

  private strangerTap(query: CallbackQuery): void {
    this.journalStranger('callback', query.from?.id, query.message?.chat.id, { data: query.data?.slice(0, 64) });
    // Every tap is answered (the client shows a spinner until then), from the bounded lane.
    this.send('stranger', 'answerCallbackQuery', { callback_query_id: query.id, text: 'You are not authorized to do this.', show_alert: true });
  }

  private strangerCommand(message: Message): void {
    const command = commandName(message.text ?? '');
    this.journalStranger('command', message.from?.id, message.chat.id, { command: command.slice(0, 32) });
    if (this.strangers.admit(`reply:${message.chat.id}`)) {
      this.send('stranger', 'sendMessage', { chat_id: message.chat.id, text: 'You are not authorized to use this bot.', parse_mode: 'HTML' });
    }
  }

  /** A stranger's attempt is journalled once an hour per person, chat and kind. */
  private journalStranger(kind: 'callback' | 'command', userId: number | undefined, chatId: number | string | undefined, extra: Record<string, unknown>): void {
    if (!this.strangers.admit(`journal:${userId}:${chatId}:${kind}`)) return;
    this.deps.journal.append({ type: 'telegram.unauthorized', userId, chatId, kind, ...extra });
  }

  private send(lane: Lane, method: 'sendMessage' | 'answerCallbackQuery' | 'editMessageText', params: Record<string, unknown>): Promise<unknown> {
    // A stranger's call is tried once: it never holds the queue with retries.
    const maxAttempts = lane === 'stranger' ? 1 : method === 'sendMessage' ? undefined : 3;
    return this.deps.client.send({ method, lane, params, ...(maxAttempts === undefined ? {} : { maxAttempts }) })
      .catch((err: unknown) => this.deps.logger.debug('telegram call not delivered', { method, lane, error: (err as Error).message }));
  }

  /** The principal of an allowed user; the display name shown on cards is kept up to date. */
  private principal(from: { id: number; username?: string; first_name?: string }): string {
    const by = `tg:${from.id}`;
    const name = from.username ? `@${from.username}` : from.first_name;
    if (name && this.doc.data.names[by] !== name) {
      this.doc.update((d) => { d.names[by] = name; }).catch((err: unknown) => this.deps.logger.error('telegram name store write failed', { error: (err as Error).message }));
    }
    return by;
  }

  private async handleTap(query: CallbackQuery): Promise<void> {
    if (this.doc.data.recentCallbacks.includes(query.id) || this.handlingCallbacks.has(query.id)) return; // the same tap delivered twice
    this.handlingCallbacks.add(query.id);
    try {
      const outcome = await this.dispatchTap(query);
      this.send('answer', 'answerCallbackQuery', { callback_query_id: query.id, text: outcome.text, show_alert: outcome.alert ?? false });
      const action = parseCallbackData(query.data);
      if (action && action.action !== 'liquidate') this.mendTapped(query, action.proposalId);
    } finally {
      this.handlingCallbacks.delete(query.id);
      // Recorded after the effect (written with the batch's offset): a crash in between makes
      // Telegram deliver the tap again, and a repeated approval or rejection is harmless.
      const d = this.doc.data;
      d.recentCallbacks.push(query.id);
      if (d.recentCallbacks.length > RECENT_TAPS) d.recentCallbacks.splice(0, d.recentCallbacks.length - RECENT_TAPS);
    }
  }

  /** A tapped card that a crash left unrecorded is mended, after the answer and off the poll path. */
  private mendTapped(query: CallbackQuery, proposalId: string): void {
    const messageId = query.message?.message_id;
    if (messageId === undefined) return;
    this.cards.mend(proposalId, String(query.message?.chat.id ?? this.deps.chatId), messageId)
      .catch((err: unknown) => this.deps.logger.warn('card could not be mended', { proposalId, error: (err as Error).message }));
  }

  /** The tap table behind the error boundary. */
  private async dispatchTap(query: CallbackQuery): Promise<TapOutcome> {
    const action = parseCallbackData(query.data);
    if (!action) return { text: 'Unknown button.' };
    const by = this.principal(query.from);
    const where: TapPlace = { chatId: query.message?.chat.id ?? this.deps.chatId, ...(query.message?.message_id !== undefined ? { messageId: query.message.message_id } : {}) };
    // Each handler is given the action of its own kind: the table is indexed by that kind.
    const handler = this.tapHandlers[action.action] as (a: CardAction, by: string, where: TapPlace) => Promise<TapOutcome>;
    try {
      return await handler(action, by, where);
    } catch (err) {
      return { text: this.words(err), alert: true };
    }
  }

  /** The command table behind the error boundary; the reply is queued, not waited for. */
  private async handleCommand(message: Message): Promise<void> {
    const [head, ...args] = (message.text ?? '').trim().split(/\s+/);
    const command = commandName(head ?? '');
    const chatId = message.chat.id;
    const by = this.principal(message.from!);
    this.deps.journal.append({ type: 'telegram.command', userId: message.from?.id, command: command.slice(0, 32), args: args.slice(0, 3) });
    const handler = Object.hasOwn(this.commandHandlers, command) ? this.commandHandlers[command] : undefined;
    if (!handler) {
      this.send('answer', 'sendMessage', { chat_id: chatId, text: `Unknown command /${escapeHtml(command.slice(0, 32))}. Send /help for the list.`, parse_mode: 'HTML' });
      return;
    }
    try {
      const outcome = await handler({ chatId, by, args });
      const keyboard = 'keyboard' in outcome ? { reply_markup: { inline_keyboard: outcome.keyboard } } : {};
      const sent = this.deps.client.send<Message>({ method: 'sendMessage', lane: 'answer', params: { chat_id: chatId, text: outcome.reply, parse_mode: 'HTML', ...keyboard } });
      sent.then((m) => { if ('sent' in outcome) outcome.sent?.(m.message_id); }, (err: unknown) => this.deps.logger.warn('telegram reply failed', { command, error: (err as Error).message }));
    } catch (err) {
      this.send('answer', 'sendMessage', { chat_id: chatId, text: `⚠️ ${escapeHtml(this.words(err))}`, parse_mode: 'HTML' });
    }
  }

  private liquidationPrompt(): { nonce: string; seconds: number; sent: (messageId: number) => void } {
    for (const [n, p] of this.liquidationNonces) if (p.expires < this.now()) this.liquidationNonces.delete(n);
    const nonce = randomBytes(8).toString('hex');
    const expires = this.now() + LIQUIDATION_CONFIRM_MS;
    this.liquidationNonces.set(nonce, { expires });
    return { nonce, seconds: LIQUIDATION_CONFIRM_MS / 1000, sent: (messageId) => this.liquidationNonces.set(nonce, { expires, messageId }) };
  }

  private async confirmLiquidation(nonce: string, by: string, where: TapPlace): Promise<TapOutcome> {
    const pending = this.liquidationNonces.get(nonce);
    this.liquidationNonces.delete(nonce);
    const messageId = where.messageId ?? pending?.messageId;
    const edit = (text: string) => {
      if (messageId !== undefined) this.send('answer', 'editMessageText', { chat_id: where.chatId, message_id: messageId, text, parse_mode: 'HTML', reply_markup: { inline_keyboard: [] } });
    };
    if (!pending || pending.expires < this.now()) {
      edit('Liquidation confirmation expired.');
      return { text: 'This confirmation has expired. Send /liquidate again.', alert: true };
    }
    const result = await this.deps.commands.liquidate(by);
    edit(renderLiquidation(this.doc.data.names[by] ?? by, result));
    const failed = result.failed.length > 0 ? `; ${result.failed.length} could not start (retried)` : '';
    return { text: `Liquidation started: ${result.started.length} position(s)${failed}.` };
  }

  /** The error boundary's words: typed errors for people, anything else as a pointer to the log. */
  private words(err: unknown): string {
    if (err instanceof AppError) {
      if (err.code === 'not_awaiting_approval') return `${err.message}.`;
      // Whatever was typed as the id is not echoed back: it names nothing.
      if (err.code === 'proposal_not_found') return 'Unknown proposal: /pending lists the ones waiting for a decision.';
      return err.message;
    }
    this.deps.logger.error('telegram command failed', { error: (err as Error).message });
    return 'Something went wrong; see the service log.';
  }
}

/** `/Status@my_bot now` → `status`. */
function commandName(text: string): string {
  return (text.trim().split(/\s+/)[0] ?? '').replace(/^\//, '').split('@')[0]!.toLowerCase();
}
