/**
 * Proposal cards: one per proposal, across crashes. The intent to send is written durably before
 * the card goes out and its message id after, so a restart re-sends only a card whose send may
 * not have happened, never one that is recorded. The Bot API cannot search a chat: a card that a
 * crash left unrecorded (sent, its id lost) is mended when someone taps it (the tap carries its
 * message id): adopted as the proposal's card when none is recorded, otherwise edited to the
 * proposal's state with its buttons removed. Every exit from awaiting-approval edits the card in
 * place; decisions taken while the service was down are shown after a restart.
 */
import type { Message } from 'node-telegram-bot-api';
import type { JsonDocument } from '../persistence/json-document';
import type { Logger } from '../logging';
import type { TradeLog } from '../journal/trade-log';
import type { Orchestrator, ProposalChange } from '../runtime/orchestrator';
import type { ProposalView } from '../proposal/view';
import type { RenderedCard } from '../proposal/card-renderer';
import { TelegramRefusedError, type TelegramClient } from '../notifications/telegram';
import { FINAL_STATES, type ProposalState } from '../../machines/proposal.machine';

/** What `telegram.json` knows of one proposal's card. */
export interface CardRecord {
  chatId: string;
  /** Null while the send may or may not have happened. */
  messageId: number | null;
  status: 'sending' | 'sent' | 'undelivered';
  /** The proposal state the card shows. */
  renderedState: ProposalState | null;
  renderedApprovals: number;
  sentAt: string | null;
  updatedAt: string;
}

/** `telegram.json`: the update offset, card records, recent taps and display names. */
export interface TelegramFile {
  version: 1;
  offset: number;
  cards: Record<string, CardRecord>;
  recentCallbacks: string[];
  names: Record<string, string>;
}

/** What the card desk needs: the transport, the card store, proposals, and how a card looks. */
export interface CardDeskDeps {
  client: TelegramClient;
  doc: JsonDocument<TelegramFile>;
  orchestrator: Orchestrator;
  journal: TradeLog;
  logger: Logger;
  chatId: string;
  render: (view: ProposalView) => RenderedCard;
  now: () => number;
}

/** How long a card whose intent could not be written waits before it is tried again. */
const INTENT_RETRY_MS = 5_000;
/** Finished cards older than this are forgotten. */
const CARD_RETENTION_MS = 2 * 86_400_000;

/** The cards of proposals: sent once, edited in place, mended after a crash (see above). */
export class CardDesk {
  /** Cards being sent, by proposal: a tap on another copy waits for the send to settle. */
  private readonly inFlight = new Map<string, Promise<void>>();

  constructor(private readonly deps: CardDeskDeps) {}

  private get cards(): Record<string, CardRecord> {
    return this.deps.doc.data.cards;
  }

  /** Sends the card of a proposal that now waits for a person; edits it on every later change that shows. */
  onProposalChange(change: ProposalChange): void {
    const { view } = change;
    const record = this.cards[view.id];
    if (view.state === 'awaiting-approval') {
      if (!record) this.sendLogged(view);
      else if (record.renderedApprovals !== view.approvals.length) this.updateLogged(view);
      return;
    }
    if (record && (change.from === 'awaiting-approval' || FINAL_STATES.includes(view.state))) this.updateLogged(view);
  }

  /** After a restart: send cards that may never have gone out; show decisions taken while down. */
  reconcile(): void {
    for (const view of this.deps.orchestrator.liveViews({ state: 'awaiting-approval', limit: Number.MAX_SAFE_INTEGER })) {
      const record = this.cards[view.id];
      // A `sending` record without a message id: the send may not have happened. Sending again
      // may make a second card; the first is then unrecorded and mended when tapped.
      if (!record || (record.status === 'sending' && record.messageId === null)) this.sendLogged(view, true);
      else if (record.renderedApprovals !== view.approvals.length) this.updateLogged(view);
    }
    for (const [id, record] of Object.entries(this.cards)) {
      const view = this.deps.orchestrator.view(id);
      if (!view) continue;
      if (record.status === 'sending' && view.state !== 'awaiting-approval' && !this.inFlight.has(id)) {
        this.reportUndelivered(view);
      } else if (record.messageId !== null && record.renderedState !== view.state && view.state !== 'awaiting-approval') {
        this.updateLogged(view);
      }
    }
    this.prune();
  }

  /**
   * A tap arrived on message `messageId` in `chatId` for proposal `proposalId`. When that message
   * is not the proposal's recorded card, a crash left it unrecorded: mend it.
   */
  async mend(proposalId: string, chatId: string, messageId: number): Promise<void> {
    // A send under way decides which card is recorded: wait for it before judging this one.
    await this.inFlight.get(proposalId);
    const record = this.cards[proposalId];
    if (record && record.messageId === messageId && record.chatId === chatId) return;
    const view = this.deps.orchestrator.view(proposalId);
    if (!view) return;
    if (!record || record.messageId === null) {
      // No card is recorded: this one is it.
      const at = new Date(this.deps.now()).toISOString();
      await this.deps.doc.update((d) => {
        d.cards[proposalId] = { chatId, messageId, status: 'sent', renderedState: null, renderedApprovals: -1, sentAt: at, updatedAt: at };
      });
      this.deps.journal.append({ type: 'card.adopted', proposalId, chatId, messageId });
      await this.update(view, 'answer');
      return;
    }
    // Another card is the recorded one: this copy shows the state and loses its buttons.
    const card = this.deps.render(view);
    const text = view.state === 'awaiting-approval'
      ? `<i>A copy of this proposal's card: decide on the other card.</i>\n\n${card.text}`
      : card.text;
    await this.deps.client.send({
      method: 'editMessageText', lane: 'answer',
      params: { chat_id: chatId, message_id: messageId, text, parse_mode: 'HTML', reply_markup: { inline_keyboard: [] } },
      maxAttempts: 3,
    });
    this.deps.journal.append({ type: 'card.mended', proposalId, chatId, messageId, state: view.state });
  }

  private stillAwaiting(id: string): ProposalView | undefined {
    const view = this.deps.orchestrator.view(id);
    return view?.state === 'awaiting-approval' ? view : undefined;
  }

  private sendLogged(view: ProposalView, force = false): void {
    this.send(view, force).catch((err: unknown) => this.deps.logger.error('proposal card could not be sent', { proposalId: view.id, error: (err as Error).message }));
  }

  private send(view: ProposalView, force = false): Promise<void> {
    if (this.inFlight.has(view.id) || (!force && this.cards[view.id])) return Promise.resolve();
    const sending = this.sendOnce(view).finally(() => this.inFlight.delete(view.id));
    this.inFlight.set(view.id, sending.catch(() => undefined));
    return sending;
  }

  private async sendOnce(view: ProposalView): Promise<void> {
    const at = new Date(this.deps.now()).toISOString();
    try {
      // The intent is on disk before the card leaves: a crash after the send leaves a record.
      await this.deps.doc.update((d) => {
        d.cards[view.id] = { chatId: this.deps.chatId, messageId: null, status: 'sending', renderedState: null, renderedApprovals: 0, sentAt: null, updatedAt: at };
      });
    } catch (err) {
      this.storeFailed(err);
      this.retryLater(view.id);
      return;
    }
    const current = this.stillAwaiting(view.id);
    if (!current) {
      // Decided while the intent was written: no card was tried, so there is none to report.
      await this.deps.doc.update((d) => { delete d.cards[view.id]; }).catch((err: unknown) => this.storeFailed(err));
      this.deps.journal.append({ type: 'card.skipped', proposalId: view.id, state: this.deps.orchestrator.view(view.id)?.state ?? null });
      return;
    }
    await this.deliver(current);
  }

  private async deliver(view: ProposalView): Promise<void> {
    const card = this.deps.render(view);
    let message: Message;
    try {
      message = await this.deps.client.send<Message>({
        method: 'sendMessage', lane: 'card',
        params: { chat_id: this.deps.chatId, text: card.text, parse_mode: 'HTML', reply_markup: { inline_keyboard: card.keyboard } },
        stillWanted: () => this.stillAwaiting(view.id) !== undefined,
      });
    } catch (err) {
      const current = this.deps.orchestrator.view(view.id);
      if (current && current.state !== 'awaiting-approval') this.reportUndelivered(current);
      else this.deps.logger.error('proposal card could not be sent', { proposalId: view.id, error: (err as Error).message });
      return;
    }
    try {
      await this.deps.doc.update((d) => {
        const r = d.cards[view.id];
        if (r) Object.assign(r, { messageId: message.message_id, status: 'sent', renderedState: view.state, renderedApprovals: view.approvals.length, sentAt: new Date(this.deps.now()).toISOString() });
      });
    } catch (err) {
      // The card is out but unrecorded: a tap on it adopts it.
      this.storeFailed(err);
      return;
    }
    this.deps.journal.append({ type: 'card.sent', proposalId: view.id, chatId: this.deps.chatId, messageId: message.message_id });
    // The proposal may have moved on while the card was in flight.
    const current = this.deps.orchestrator.view(view.id);
    if (current && (current.state !== view.state || current.approvals.length !== view.approvals.length)) await this.update(current).catch((err: unknown) => this.updateFailed(view.id, err));
  }

  private retryLater(id: string): void {
    setTimeout(() => {
      const view = this.stillAwaiting(id);
      const record = this.cards[id];
      if (view && (!record || record.messageId === null)) this.sendLogged(view, true);
    }, INTENT_RETRY_MS).unref();
  }

  /** A card that could not be delivered before the proposal was decided: say so, once. */
  private reportUndelivered(view: ProposalView): void {
    const record = this.cards[view.id];
    if (record?.status === 'undelivered') return;
    this.deps.doc.update((d) => {
      const r = d.cards[view.id];
      if (r) Object.assign(r, { status: 'undelivered', renderedState: view.state, updatedAt: new Date(this.deps.now()).toISOString() });
    }).catch((err: unknown) => this.storeFailed(err));
    this.deps.journal.append({ type: 'card.undelivered', proposalId: view.id, state: view.state });
    const text = `⚠️ <b>This card could not be delivered before the proposal was decided (Telegram was unreachable).</b>\n\n${this.deps.render(view).text}`;
    this.deps.client.send({ method: 'sendMessage', lane: 'notice', params: { chat_id: this.deps.chatId, text, parse_mode: 'HTML' } })
      .catch((err: unknown) => this.deps.logger.warn('undelivered-card notice failed', { proposalId: view.id, error: (err as Error).message }));
  }

  private storeFailed(err: unknown): void {
    this.deps.logger.error('telegram card store write failed', { error: (err as Error).message });
  }

  private updateFailed(id: string, err: unknown): void {
    this.deps.logger.error('card update failed', { proposalId: id, error: (err as Error).message });
  }

  private updateLogged(view: ProposalView): void {
    this.update(view).catch((err: unknown) => this.updateFailed(view.id, err));
  }

  private async update(view: ProposalView, lane: 'card' | 'answer' = 'card'): Promise<void> {
    const record = this.cards[view.id];
    if (!record || record.messageId === null || record.status !== 'sent') return;
    if (record.renderedState === view.state && record.renderedApprovals === view.approvals.length) return;
    const card = this.deps.render(view);
    try {
      await this.deps.client.send({
        method: 'editMessageText', lane,
        // An edit asked for by a tap is not retried forever: the next change edits the card again.
        ...(lane === 'answer' ? { maxAttempts: 3 } : {}),
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
    await this.deps.doc.update((d) => {
      const r = d.cards[view.id];
      if (r) Object.assign(r, { renderedState: view.state, renderedApprovals: view.approvals.length, updatedAt: new Date(this.deps.now()).toISOString() });
    });
  }

  /** Keeps the card store bounded: finished cards older than two days are forgotten. */
  private prune(): void {
    const cutoff = this.deps.now() - CARD_RETENTION_MS;
    this.deps.doc.update((d) => {
      for (const [id, r] of Object.entries(d.cards)) {
        if (r.renderedState && FINAL_STATES.includes(r.renderedState) && Date.parse(r.updatedAt) < cutoff) delete d.cards[id];
      }
    }).catch((err: unknown) => this.storeFailed(err));
  }
}
