/**
 * The Telegram gate: proposal cards with Approve/Reject buttons, edited in place on every exit
 * from awaiting-approval; commands; notices. Only allowed users in the configured chat (or
 * a private chat with an allowed user) may act; every button press is checked. Card records and
 * the update offset are persisted, so after a restart a sent card is not sent again, a card that
 * was never sent is sent, and decisions taken while down are shown on the card.
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
import type { Orchestrator, ProposalChange } from '../runtime/orchestrator';
import type { ScanReport } from '../runtime/scheduler';
import type { ProposalView } from '../proposal/view';
import { parseCallbackData, renderCard, escapeHtml, type PriceRule } from '../proposal/card-renderer';
import type { Notice, NoticeSink } from '../notifications/notice';
import { TelegramRefusedError, type TelegramClient } from '../notifications/telegram';
import { COMMANDS, renderHelp, renderLiquidation, renderNotice, renderPending, renderPnl, renderPositions, renderStatus } from '../notifications/telegram-format';
import { FINAL_STATES, type ProposalState } from '../../machines/proposal.machine';

interface CardRecord {
  chatId: string;
  messageId: number | null;
  status: 'sending' | 'sent' | 'undelivered';
  /** The proposal state the card shows. */
  renderedState: ProposalState | null;
  renderedApprovals: number;
  sentAt: string | null;
  updatedAt: string;
}

interface TelegramFile {
  version: 1;
  offset: number;
  cards: Record<string, CardRecord>;
  recentCallbacks: string[];
  names: Record<string, string>;
}

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

export class TelegramGate implements NoticeSink {
  readonly name = 'telegram';
  private doc!: JsonDocument<TelegramFile>;
  private readonly now: () => number;
  private readonly liquidationNonces = new Map<string, { expires: number; chatId: string; messageId?: number }>();
  private readonly inFlightCards = new Set<string>();
  private readonly handlingCallbacks = new Set<string>();

  constructor(private readonly deps: TelegramGateDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Opens the card store and subscribes to proposal changes (call before restore). */
  async open(): Promise<void> {
    this.doc = await JsonDocument.open<TelegramFile>(this.deps.io, path.join(this.deps.dataDir, 'telegram.json'), {
      version: 1, offset: 0, cards: {}, recentCallbacks: [], names: {},
    });
    this.deps.orchestrator.onChange((change) => this.onProposalChange(change));
  }

  /** Registers the command menu, reconciles cards with proposals, and starts polling. */
  async start(): Promise<void> {
    this.deps.client.send({ method: 'setMyCommands', params: { commands: COMMANDS }, maxAttempts: 1 }).catch((err: unknown) => {
      // Optional: real Telegram can refuse it too; the bot works without the menu.
      this.deps.logger.warn('setMyCommands was refused; the command menu is not shown', { error: (err as Error).message });
    });
    this.reconcile();
    this.deps.client.startPolling(this.doc.data.offset, (updates) => this.handleUpdates(updates));
  }

  async stop(): Promise<void> {
    await this.deps.client.stop();
    await this.doc.flush();
  }

  /** NoticeSink: notices go to the chat after everything queued before them. */
  notify(notice: Notice): void {
    this.deps.client.send({ method: 'sendMessage', params: { chat_id: this.deps.chatId, text: renderNotice(notice), parse_mode: 'HTML' } })
      .catch((err: unknown) => this.deps.logger.warn('telegram notice not delivered', { kind: notice.kind, error: (err as Error).message }));
  }

  async close(): Promise<void> {
    await this.stop();
  }

  // ---- cards

  private onProposalChange(change: ProposalChange): void {
    const { view } = change;
    const record = this.doc.data.cards[view.id];
    if (view.state === 'awaiting-approval') {
      if (!record) this.sendCard(view);
      else if (record.renderedApprovals !== view.approvals.length) this.updateCardLogged(view);
      return;
    }
    if (record && (change.from === 'awaiting-approval' || FINAL_STATES.includes(view.state))) this.updateCardLogged(view);
  }

  /** After a restart: send cards never sent; show decisions taken while down. */
  private reconcile(): void {
    for (const view of this.deps.orchestrator.liveViews({ state: 'awaiting-approval', limit: Number.MAX_SAFE_INTEGER })) {
      const record = this.doc.data.cards[view.id];
      if (!record || (record.status === 'sending' && !this.inFlightCards.has(view.id))) this.sendCard(view, true);
      else if (record.renderedApprovals !== view.approvals.length) this.updateCardLogged(view);
    }
    for (const [id, record] of Object.entries(this.doc.data.cards)) {
      const view = this.deps.orchestrator.view(id);
      if (!view) continue;
      if (record.status === 'sending' && view.state !== 'awaiting-approval' && !this.inFlightCards.has(id)) {
        this.reportUndelivered(view);
      } else if (record.messageId !== null && record.renderedState !== view.state && view.state !== 'awaiting-approval') {
        this.updateCardLogged(view);
      }
    }
    this.prune();
  }

  private render(view: ProposalView) {
    return renderCard(view, { timeZone: this.deps.timeZone, quoteCurrency: this.deps.quoteCurrency, names: this.doc.data.names, ...(this.deps.priceRule ? { priceRule: this.deps.priceRule } : {}) });
  }

  private sendCard(view: ProposalView, force = false): void {
    if (this.inFlightCards.has(view.id) || (!force && this.doc.data.cards[view.id])) return;
    this.inFlightCards.add(view.id);
    const card = this.render(view);
    const nowIso = new Date(this.now()).toISOString();
    this.doc.update((d) => {
      d.cards[view.id] = { chatId: this.deps.chatId, messageId: null, status: 'sending', renderedState: null, renderedApprovals: 0, sentAt: null, updatedAt: nowIso };
    }).catch((err: unknown) => this.storeFailed(err));
    const stillWanted = () => this.deps.orchestrator.view(view.id)?.state === 'awaiting-approval';
    this.deps.client.send<Message>({
      method: 'sendMessage',
      params: { chat_id: this.deps.chatId, text: card.text, parse_mode: 'HTML', reply_markup: { inline_keyboard: card.keyboard } },
      stillWanted,
    }).then(async (message) => {
      this.inFlightCards.delete(view.id);
      await this.doc.update((d) => {
        const r = d.cards[view.id];
        if (r) Object.assign(r, { messageId: message.message_id, status: 'sent', renderedState: view.state, renderedApprovals: view.approvals.length, sentAt: new Date(this.now()).toISOString() });
      });
      this.deps.journal.append({ type: 'card.sent', proposalId: view.id, chatId: this.deps.chatId, messageId: message.message_id });
      // The proposal may have moved on while the card was in flight.
      const current = this.deps.orchestrator.view(view.id);
      if (current && (current.state !== view.state || current.approvals.length !== view.approvals.length)) await this.updateCard(current);
    }, (err: unknown) => {
      this.inFlightCards.delete(view.id);
      const current = this.deps.orchestrator.view(view.id);
      if (current && current.state !== 'awaiting-approval') this.reportUndelivered(current);
      else this.deps.logger.error('proposal card could not be sent', { proposalId: view.id, error: (err as Error).message });
    }).catch((err: unknown) => this.storeFailed(err));
  }

  /** A card that could not be delivered before the proposal was decided: say so, once. */
  private reportUndelivered(view: ProposalView): void {
    const record = this.doc.data.cards[view.id];
    if (record?.status === 'undelivered') return;
    this.doc.update((d) => {
      const r = d.cards[view.id];
      if (r) Object.assign(r, { status: 'undelivered', renderedState: view.state, updatedAt: new Date(this.now()).toISOString() });
    }).catch((err: unknown) => this.storeFailed(err));
    this.deps.journal.append({ type: 'card.undelivered', proposalId: view.id, state: view.state });
    const card = this.render(view);
    const text = `⚠️ <b>This card could not be delivered before the proposal was decided (Telegram was unreachable).</b>\n\n${card.text}`;
    this.deps.client.send({ method: 'sendMessage', params: { chat_id: this.deps.chatId, text, parse_mode: 'HTML' } })
      .catch((err: unknown) => this.deps.logger.warn('undelivered-card notice failed', { proposalId: view.id, error: (err as Error).message }));
  }

  private storeFailed(err: unknown): void {
    this.deps.logger.error('telegram card store write failed', { error: (err as Error).message });
  }

  private updateCardLogged(view: ProposalView): void {
    this.updateCard(view).catch((err: unknown) => this.deps.logger.error('card update failed', { proposalId: view.id, error: (err as Error).message }));
  }

  private async updateCard(view: ProposalView): Promise<void> {
    const record = this.doc.data.cards[view.id];
    if (!record || record.messageId === null || record.status !== 'sent') return;
    if (record.renderedState === view.state && record.renderedApprovals === view.approvals.length) return;
    const card = this.render(view);
    try {
      await this.deps.client.send({
        method: 'editMessageText',
        params: {
          chat_id: record.chatId, message_id: record.messageId, text: card.text, parse_mode: 'HTML',
          // An empty keyboard must be sent explicitly to remove the buttons.
          reply_markup: { inline_keyboard: card.keyboard },
        },
      });
    } catch (err) {
      if (!(err instanceof TelegramRefusedError && /not modified/i.test(err.message))) {
        this.deps.logger.warn('card edit failed', { proposalId: view.id, error: (err as Error).message });
        return;
      }
    }
    await this.doc.update((d) => {
      const r = d.cards[view.id];
      if (r) Object.assign(r, { renderedState: view.state, renderedApprovals: view.approvals.length, updatedAt: new Date(this.now()).toISOString() });
    });
  }

  /** Keeps the card store bounded: finished cards older than two days are forgotten. */
  private prune(): void {
    const cutoff = this.now() - 2 * 86_400_000;
    this.doc.update((d) => {
      for (const [id, r] of Object.entries(d.cards)) {
        if (r.renderedState && FINAL_STATES.includes(r.renderedState) && Date.parse(r.updatedAt) < cutoff) delete d.cards[id];
      }
    }).catch((err: unknown) => this.storeFailed(err));
  }

  // ---- updates

  private async handleUpdates(updates: Update[]): Promise<number> {
    let offset = this.doc.data.offset;
    // Taps are handled side by side (an approval's answer waits for its re-check, and one person's
    // tap must not wait for another's); messages (commands) in order, one after another.
    const taps: Array<Promise<void>> = [];
    for (const update of updates) {
      if (update.update_id < offset) continue; // a duplicate delivery
      // The client types an update as a union of one-field shapes; read it as optional fields.
      const u = update as { callback_query?: CallbackQuery; message?: Message };
      const failed = (err: unknown): void => {
        this.deps.logger.error('telegram update failed', { updateId: update.update_id, error: (err as Error).message });
      };
      if (u.callback_query) taps.push(this.handleCallback(u.callback_query).catch(failed));
      else if (u.message?.text) await this.handleMessage(u.message).catch(failed);
      offset = update.update_id + 1;
    }
    await Promise.all(taps);
    this.doc.data.offset = offset;
    // One write per batch for the offset and the handled callbacks. Each decision was made
    // durable before it was answered; a crash before this write only makes Telegram deliver the
    // batch again, and repeats are harmless (an approval counts once, a second reject is a 409).
    await this.doc.update(() => undefined);
    return offset;
  }

  private isAllowedUser(userId: number | undefined): boolean {
    return userId !== undefined && this.deps.allowedUserIds.includes(String(userId));
  }

  private isAllowedChat(chat: { id: number | string; type?: string } | undefined, userId: number | undefined): boolean {
    if (!chat) return true; // callback queries may come without their message
    if (String(chat.id) === this.deps.chatId) return true;
    return chat.type === 'private' && this.isAllowedUser(userId);
  }

  private approver(from: { id: number; username?: string; first_name?: string }): string {
    const by = `tg:${from.id}`;
    const name = from.username ? `@${from.username}` : from.first_name;
    if (name && this.doc.data.names[by] !== name) this.doc.update((d) => { d.names[by] = name; }).catch((err: unknown) => this.storeFailed(err));
    return by;
  }

  private reply(chatId: number | string, text: string, extra: Record<string, unknown> = {}): Promise<unknown> {
    return this.deps.client.send({ method: 'sendMessage', params: { chat_id: chatId, text, parse_mode: 'HTML', ...extra } })
      .catch((err: unknown) => this.deps.logger.warn('telegram reply failed', { error: (err as Error).message }));
  }

  private answer(query: CallbackQuery, text: string, alert = false): void {
    this.deps.client.send({ method: 'answerCallbackQuery', params: { callback_query_id: query.id, text, show_alert: alert }, maxAttempts: 3 })
      .catch((err: unknown) => this.deps.logger.debug('answerCallbackQuery failed', { error: (err as Error).message }));
  }

  private async handleCallback(query: CallbackQuery): Promise<void> {
    if (this.doc.data.recentCallbacks.includes(query.id) || this.handlingCallbacks.has(query.id)) return; // the same tap delivered twice
    this.handlingCallbacks.add(query.id);
    try {
      await this.handleCallbackOnce(query);
    } finally {
      this.handlingCallbacks.delete(query.id);
      // Recorded after the effect (written with the batch's offset): a crash in between makes
      // Telegram deliver the tap again, and a repeated approval or rejection is harmless.
      const d = this.doc.data;
      d.recentCallbacks.push(query.id);
      if (d.recentCallbacks.length > 500) d.recentCallbacks.splice(0, d.recentCallbacks.length - 500);
    }
  }

  private async handleCallbackOnce(query: CallbackQuery): Promise<void> {
    const userId = query.from?.id;
    if (!this.isAllowedUser(userId) || !this.isAllowedChat(query.message?.chat, userId)) {
      this.deps.journal.append({ type: 'telegram.unauthorized', userId, kind: 'callback', data: query.data });
      this.answer(query, 'You are not authorized to do this.', true);
      return;
    }
    const action = parseCallbackData(query.data);
    if (!action) return this.answer(query, 'Unknown button.');
    const by = this.approver(query.from);
    try {
      if (action.action === 'liquidate') return await this.confirmLiquidation(query, action.nonce, by);
      if (action.action === 'reject') {
        await this.deps.commands.reject(action.proposalId, by, 'rejected in Telegram');
        return this.answer(query, 'Rejected.');
      }
      const result = await this.deps.commands.approve(action.proposalId, by, action.action === 'half' ? 0.5 : undefined);
      if (!result.counted) return this.answer(query, 'You have already approved this proposal.');
      const v = result.view;
      this.answer(query, v.state === 'awaiting-approval' ? `Approval recorded (${v.approvals.length}/${v.requiredApprovals}); another person must approve.` : 'Approved.');
    } catch (err) {
      this.answer(query, this.words(err), true);
    }
  }

  private async confirmLiquidation(query: CallbackQuery, nonce: string, by: string): Promise<void> {
    const pending = this.liquidationNonces.get(nonce);
    this.liquidationNonces.delete(nonce);
    const chatId = query.message?.chat.id ?? this.deps.chatId;
    const messageId = query.message?.message_id ?? pending?.messageId;
    if (!pending || pending.expires < this.now()) {
      this.answer(query, 'This confirmation has expired. Send /liquidate again.', true);
      if (messageId !== undefined) {
        void this.deps.client.send({ method: 'editMessageText', params: { chat_id: chatId, message_id: messageId, text: 'Liquidation confirmation expired.', reply_markup: { inline_keyboard: [] } } }).catch(() => undefined);
      }
      return;
    }
    const result = await this.deps.commands.liquidate(by);
    const failed = result.failed.length > 0 ? `; ${result.failed.length} could not start (retried)` : '';
    this.answer(query, `Liquidation started: ${result.started.length} position(s)${failed}.`);
    const text = renderLiquidation(this.doc.data.names[by] ?? by, result);
    if (messageId !== undefined) {
      void this.deps.client.send({ method: 'editMessageText', params: { chat_id: chatId, message_id: messageId, text, parse_mode: 'HTML', reply_markup: { inline_keyboard: [] } } }).catch(() => undefined);
    }
  }

  private async handleMessage(message: Message): Promise<void> {
    const text = message.text?.trim() ?? '';
    if (!text.startsWith('/')) return;
    const [head, ...rest] = text.split(/\s+/);
    const command = head!.slice(1).split('@')[0]!.toLowerCase();
    const userId = message.from?.id;
    if (!this.isAllowedUser(userId) || !this.isAllowedChat(message.chat, userId)) {
      this.deps.journal.append({ type: 'telegram.unauthorized', userId, chatId: message.chat.id, kind: 'command', command });
      await this.reply(message.chat.id, 'You are not authorized to use this bot.');
      return;
    }
    const by = this.approver(message.from!);
    this.deps.journal.append({ type: 'telegram.command', userId, command, args: rest.slice(0, 3) });
    const chat = message.chat.id;
    try {
      switch (command) {
        case 'help':
        case 'start':
          return void (await this.reply(chat, renderHelp()));
        case 'status':
          return void (await this.reply(chat, renderStatus(this.deps.commands.status())));
        case 'pending':
          return void (await this.reply(chat, renderPending(this.deps.commands.pending(), this.deps.timeZone)));
        case 'positions':
          return void (await this.reply(chat, renderPositions(this.deps.commands.portfolio())));
        case 'pnl':
          return void (await this.reply(chat, renderPnl(this.deps.commands.portfolio())));
        case 'pause': {
          const r = await this.deps.commands.pause(by);
          return void (await this.reply(chat, r.changed ? '⏸ Paused: new signals are recorded and dropped until /resume.' : 'Already paused.'));
        }
        case 'resume': {
          const r = await this.deps.commands.resume(by);
          return void (await this.reply(chat, r.changed ? '▶️ Resumed: signals make proposals again.' : 'Not paused.'));
        }
        case 'scan': {
          if (!this.deps.scan) return void (await this.reply(chat, 'Scanning is not configured.'));
          const report = await this.deps.scan(rest[0]);
          const lines = [`🔎 Scanned ${report.scanned.length} symbol(s): ${escapeHtml(report.scanned.join(', ') || 'none')}`];
          lines.push(report.proposals.length > 0 ? `Proposals: ${report.proposals.map((p) => `<code>${p}</code>`).join(', ')}` : 'No proposals.');
          for (const s of report.skipped.slice(0, 10)) lines.push(`• ${escapeHtml(s.symbol)}: ${escapeHtml(s.reason)}`);
          return void (await this.reply(chat, lines.join('\n')));
        }
        case 'approve': {
          const id = rest[0];
          if (!id) return void (await this.reply(chat, 'Usage: /approve &lt;proposal id&gt;'));
          const r = await this.deps.commands.approve(id, by);
          return void (await this.reply(chat, r.counted ? `Approved <code>${escapeHtml(id)}</code> (${r.view.state}).` : 'You have already approved this proposal.'));
        }
        case 'reject': {
          const id = rest[0];
          if (!id) return void (await this.reply(chat, 'Usage: /reject &lt;proposal id&gt; [reason]'));
          const reason = rest.slice(1).join(' ').slice(0, 300) || 'rejected in Telegram';
          await this.deps.commands.reject(id, by, reason);
          return void (await this.reply(chat, `Rejected <code>${escapeHtml(id)}</code>.`));
        }
        case 'liquidate': {
          const nonce = randomBytes(8).toString('hex');
          const expires = this.now() + LIQUIDATION_CONFIRM_MS;
          this.liquidationNonces.set(nonce, { expires, chatId: String(chat) });
          const sent = await this.deps.client.send<Message>({
            method: 'sendMessage',
            params: {
              chat_id: chat, parse_mode: 'HTML',
              text: `🚨 <b>Sell every open position?</b>\nThis confirmation expires in ${LIQUIDATION_CONFIRM_MS / 1000} s.`,
              reply_markup: { inline_keyboard: [[{ text: '⚠️ Confirm liquidation', callback_data: `liquidate:${nonce}` }]] },
            },
          }).catch(() => undefined);
          if (sent) this.liquidationNonces.set(nonce, { expires, chatId: String(chat), messageId: sent.message_id });
          return;
        }
        default:
          return void (await this.reply(chat, `Unknown command /${escapeHtml(command)}. Send /help for the list.`));
      }
    } catch (err) {
      await this.reply(chat, `⚠️ ${escapeHtml(this.words(err))}`);
    }
  }

  /** Typed errors in words for people. */
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
