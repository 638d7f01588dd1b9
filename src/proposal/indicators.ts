/**
 * Technical indicators the rule engine's confirmations and sizing use. Pure functions of plain
 * numbers: each returns null when there is not enough data, never a guessed value.
 */

/** The high, low and close of one candle (a market-snapshot Candle fits). */
export interface Bar {
  high: number;
  low: number;
  close: number;
}

/** Simple moving average of the last `period` values, or null with fewer values. */
export function sma(values: readonly number[], period: number): number | null {
  if (!Number.isInteger(period) || period < 1 || values.length < period) return null;
  let sum = 0;
  for (let i = values.length - period; i < values.length; i += 1) sum += values[i]!;
  return sum / period;
}

/**
 * Relative strength index with Wilder's smoothing: the first averages of gains and losses are
 * plain means of the first `period` changes, later ones `(prev × (period − 1) + x) / period`.
 * Needs `period + 1` closes. 100 when nothing fell, 50 when nothing moved at all.
 */
export function rsi(closes: readonly number[], period: number): number | null {
  if (!Number.isInteger(period) || period < 1 || closes.length < period + 1) return null;
  let gain = 0;
  let loss = 0;
  for (let i = 1; i <= period; i += 1) {
    const change = closes[i]! - closes[i - 1]!;
    if (change > 0) gain += change;
    else loss -= change;
  }
  gain /= period;
  loss /= period;
  for (let i = period + 1; i < closes.length; i += 1) {
    const change = closes[i]! - closes[i - 1]!;
    gain = (gain * (period - 1) + Math.max(change, 0)) / period;
    loss = (loss * (period - 1) + Math.max(-change, 0)) / period;
  }
  if (loss === 0) return gain === 0 ? 50 : 100;
  return 100 - 100 / (1 + gain / loss);
}

/** True range of a bar given the previous close: the largest of high−low, |high−prev|, |low−prev|. */
export function trueRange(bar: Bar, prevClose: number): number {
  return Math.max(bar.high - bar.low, Math.abs(bar.high - prevClose), Math.abs(bar.low - prevClose));
}

/**
 * Average true range with Wilder's smoothing. The first true range needs a previous close, so
 * `period + 1` bars are needed: the first ATR is the mean of the first `period` true ranges,
 * later ones `(prev × (period − 1) + tr) / period`.
 */
export function atr(bars: readonly Bar[], period: number): number | null {
  if (!Number.isInteger(period) || period < 1 || bars.length < period + 1) return null;
  let value = 0;
  for (let i = 1; i <= period; i += 1) value += trueRange(bars[i]!, bars[i - 1]!.close);
  value /= period;
  for (let i = period + 1; i < bars.length; i += 1) {
    value = (value * (period - 1) + trueRange(bars[i]!, bars[i - 1]!.close)) / period;
  }
  return value;
}
