/**
 * Marks given while one write waits in line share it: a burst of re-checks costs one sync, not
 * one each. Each price is checked before it joins a shared write, so one bad price fails its
 * caller only; a price older than one already waiting for its symbol does not replace it. Used by
 * both books (the paper venue's and the live one).
 */
import { toDec } from '../amounts';
import { InvariantError } from '../errors';

export type MarkPrices = Record<string, number | string>;
export type MarkTimes = Record<string, number>;

export class MarkBatch {
  private marks: MarkPrices = {};
  private times: MarkTimes = {};
  private write: Promise<void> | null = null;

  constructor(private readonly now: () => number) {}

  /**
   * Adds `prices` (each taken at `takenAt[symbol]`, default now) to the write waiting in line, or
   * queues one with `schedule` that hands every waiting mark to `record`. Resolves once written.
   */
  add(prices: MarkPrices, takenAt: MarkTimes, schedule: (work: () => Promise<void>) => Promise<void>, record: (marks: MarkPrices, times: MarkTimes) => Promise<void>): Promise<void> {
    for (const [symbol, price] of Object.entries(prices)) {
      try {
        if (!toDec(`mark ${symbol}`, price).gt(0)) throw new InvariantError('invalid_amount', `mark ${symbol} must be above 0, got ${String(price)}`, { symbol });
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const now = this.now();
    for (const [symbol, price] of Object.entries(prices)) {
      const at = takenAt[symbol] ?? now;
      const waiting = this.times[symbol];
      if (waiting !== undefined && waiting > at) continue;
      this.marks[symbol] = price;
      this.times[symbol] = at;
    }
    this.write ??= schedule(async () => {
      const marks = this.marks;
      const times = this.times;
      this.marks = {};
      this.times = {};
      this.write = null;
      await record(marks, times);
    });
    return this.write;
  }
}
