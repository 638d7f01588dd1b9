/**
 * The portfolio as the policies see it. A source is whatever keeps the account's book (the
 * paper venue in paper mode); the snapshot is taken with current marks and the trading day
 * already rolled over.
 */
import type { PortfolioView } from '../proposal/types';

export interface PortfolioSource {
  /** The portfolio at `now`, valuing positions at the latest known marks. */
  snapshot(now: number): PortfolioView;
  /** Records current prices so equity and daily PnL use them; `takenAt` is each price's time (epoch ms; default now). */
  mark(prices: Record<string, number>, takenAt?: Record<string, number>): Promise<void>;
}
