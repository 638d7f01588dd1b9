/**
 * One book over several live venues (`EXECUTION_VENUE=upbit,kis`): each venue keeps its own
 * `LiveBook`, sourced from its own account; the policies see their sum. All venues settle in
 * QUOTE_CURRENCY, and a symbol belongs to exactly one venue, so positions never overlap.
 */
import type { PortfolioSource } from '../context/portfolio-snapshot';
import type { PortfolioView } from '../proposal/types';

export interface VenueBook {
  venue: string;
  book: PortfolioSource;
  /** Whether the venue trades this symbol: its marks go to this book. */
  trades: (symbol: string) => boolean;
}

export class VenueBooks implements PortfolioSource {
  constructor(private readonly books: readonly VenueBook[]) {
    if (books.length === 0) throw new Error('VenueBooks needs at least one book');
  }

  /**
   * The sum of the venues' books. The loss streak is the sum of each venue's: the streak across
   * venues, in the order trades closed, is never longer, so the breaker trips no later than it
   * would on one book holding everything.
   */
  snapshot(now: number): PortfolioView {
    const views = this.books.map((b) => b.book.snapshot(now));
    const sum = (pick: (v: PortfolioView) => number) => views.reduce((total, v) => total + pick(v), 0);
    return {
      cash: sum((v) => v.cash),
      equity: sum((v) => v.equity),
      dayStartEquity: sum((v) => v.dayStartEquity),
      dailyPnl: sum((v) => v.dailyPnl),
      realizedPnl: sum((v) => v.realizedPnl),
      consecutiveLosses: sum((v) => v.consecutiveLosses),
      tradingDay: views[0]!.tradingDay,
      positions: views.flatMap((v) => v.positions),
      dust: views.flatMap((v) => v.dust),
    };
  }

  /** Each price goes to the book of the venue that trades its symbol; one book's failure fails the call after every book was marked. */
  async mark(prices: Record<string, number>, takenAt: Record<string, number> = {}): Promise<void> {
    const results = await Promise.allSettled(this.books.map((b) => {
      const mine = Object.keys(prices).filter((s) => b.trades(s));
      if (mine.length === 0) return Promise.resolve();
      return b.book.mark(Object.fromEntries(mine.map((s) => [s, prices[s]!])), Object.fromEntries(mine.filter((s) => takenAt[s] !== undefined).map((s) => [s, takenAt[s]!])));
    }));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}
