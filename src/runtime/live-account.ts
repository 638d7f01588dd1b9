/**
 * The live account: in live mode, the book follows the venue (`LiveBook`). This keeper follows
 * the book's ordering contract for the proposal services (an order is expected before it is
 * sent, each partial fill and final report is booked once, the book is reconciled after every
 * final report), reconciles at start and on the risk clock, and journals what the book found (`account.opened`,
 * `book.adjusted`) before it counts as journalled, telling the operators about every adjustment.
 */
import type { ExecutionVenue } from '../execution/base';
import type { TradeLog } from '../journal/trade-log';
import type { Logger } from '../logging';
import type { Notice } from '../notifications/notice';
import { accountOpenedRecord, type BookAdjustedRecord, type BookedPartLine, type FillDelta, type LiveBook } from '../portfolio/live-book';
import type { OrderReport } from '../proposal/types';
import { isTerminal } from '../execution/base';
import { describeError } from '../errors';
import type { LiveAccountHooks } from './proposal-services';

export interface LiveAccountDeps {
  book: LiveBook;
  venue: ExecutionVenue;
  journal: TradeLog;
  logger: Logger;
  notify: (notice: Notice) => void;
}

export class LiveAccount implements LiveAccountHooks {
  constructor(private readonly deps: LiveAccountDeps) {}

  /** Journals what an earlier run left unjournalled, then reconciles with the venue. */
  async start(): Promise<void> {
    const { book, journal } = this.deps;
    const opening = book.unjournalledOpening;
    if (opening) {
      await journal.append(accountOpenedRecord(opening));
      await book.openingJournalled();
    }
    const pending = book.unjournalledAdjustments;
    for (const record of pending) await journal.append({ ...record });
    if (pending.length > 0) await book.adjustmentsJournalled(pending.map((r) => r.id));
    await this.reconcile('start');
  }

  async orderStarted(clientOrderId: string, symbol: string): Promise<void> {
    await this.deps.book.expectOrder(clientOrderId, symbol);
  }

  /** The order never reached the venue (refused before it was sent). */
  async orderAbandoned(clientOrderId: string): Promise<void> {
    await this.deps.book.forgetOrder(clientOrderId);
  }

  /**
   * Books what a report that is not final yet filled beyond what was booked (a partial fill);
   * returns that part and its place in the book's order, or null when nothing new filled. No
   * reconcile follows: the order is in flight, so its symbol and the cash are held back anyway.
   */
  async bookPart(order: OrderReport): Promise<{ fill: FillDelta; fillSequence: number } | null> {
    if (isTerminal(order)) return null;
    const booked = await this.deps.book.bookFill(order);
    if (booked.record) await this.journalAdjustments(booked.record, 'an order');
    return booked.fill && booked.fillSequence !== null ? { fill: booked.fill, fillSequence: booked.fillSequence } : null;
  }

  /** The partial fills booked for an order not final yet (to journal again after a restart). */
  partsBooked(clientOrderId: string): BookedPartLine[] {
    return this.deps.book.partsOf(clientOrderId);
  }

  /** Books a final report (its fill, or what its parts left, if any) and returns the fill's place in the book's order. */
  async bookFill(order: OrderReport): Promise<number | null> {
    if (!isTerminal(order)) return null;
    const booked = await this.deps.book.bookFill(order);
    if (booked.record) await this.journalAdjustments(booked.record, 'an order');
    // Best effort: the fill is booked whatever the venue answers now (the risk clock reconciles
    // again), so a refused balance call never turns a filled order into a failed one.
    await this.reconcile('fill').catch((err: unknown) => {
      this.deps.logger.error('the book could not be reconciled after a fill; the risk clock tries again', { venue: this.deps.venue.name, error: describeError(err) });
    });
    return booked.fillSequence;
  }

  /** Makes the book equal to the venue's balances; journals and reports what differed. */
  async reconcile(cause: 'start' | 'fill' | 'risk-clock'): Promise<void> {
    const { book, venue, journal, logger } = this.deps;
    const result = await book.reconcile(() => venue.balances());
    if (result.opening) {
      await journal.append(accountOpenedRecord(result.opening));
      await book.openingJournalled();
      logger.info('live account opened from the venue', { venue: venue.name, cash: result.opening.cash, holdings: result.opening.positions.length });
    }
    if (result.record) await this.journalAdjustments(result.record, cause);
  }

  private async journalAdjustments(record: BookAdjustedRecord, cause: string): Promise<void> {
    await this.deps.journal.append({ ...record, cause });
    await this.deps.book.adjustmentsJournalled([record.id]);
    this.deps.logger.warn('the book was adjusted to the venue', { venue: record.venue, adjustments: record.adjustments.length, cause });
    this.deps.notify({
      kind: 'book_adjusted', severity: 'warning', title: `Book adjusted to ${record.venue}`,
      lines: [
        'The venue holds something this service did not trade (a deposit, a withdrawal, or a trade made elsewhere). Not counted as trading PnL.',
        ...record.adjustments.map((a) => `${a.kind}${a.symbol ? ` ${a.symbol}` : ''}: ${a.cause}`),
      ],
      fields: [], at: record.at,
    });
  }
}
