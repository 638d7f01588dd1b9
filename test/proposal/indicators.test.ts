import { expect } from 'chai';
import { atr, rsi, sma, trueRange } from '../../src/proposal/indicators';

describe('sma', () => {
  it('averages the last period values when there are more', () => {
    expect(sma([1, 2, 3, 4, 5], 3)).to.equal(4);
  });

  it('returns null when there are fewer values than the period', () => {
    expect(sma([1, 2], 3)).to.equal(null);
  });

  it('returns null when the period is not a positive whole number', () => {
    expect(sma([1, 2, 3], 0)).to.equal(null);
    expect(sma([1, 2, 3], 1.5)).to.equal(null);
  });
});

describe('rsi', () => {
  // Changes +1, −1, +2 → first averages gain 1, loss 1/3; then +1 → gain (1·2+1)/3 = 1,
  // loss (1/3·2+0)/3 = 2/9 → RS 4.5 → RSI 100 − 100/5.5 = 81.818…
  it("applies Wilder's smoothing after the first period when there are more closes", () => {
    expect(rsi([10, 11, 10, 12, 13], 3)).to.be.closeTo(100 - 100 / 5.5, 1e-9);
  });

  // Only the first period: gain (3+0+1)/3, loss (0+3+0)/3 → RS 4/3 → RSI 57.142…
  it('uses plain means when there are exactly period + 1 closes', () => {
    expect(rsi([100, 103, 100, 101], 3)).to.be.closeTo(100 - 100 / (1 + 4 / 3), 1e-9);
  });

  it('is 100 when nothing fell', () => {
    expect(rsi([1, 2, 3, 4], 3)).to.equal(100);
  });

  it('is 50 when nothing moved', () => {
    expect(rsi([5, 5, 5, 5], 3)).to.equal(50);
  });

  it('returns null when there are only period closes', () => {
    expect(rsi([1, 2, 3], 3)).to.equal(null);
  });
});

describe('trueRange', () => {
  it('takes the gap from the previous close when it exceeds the bar', () => {
    expect(trueRange({ high: 20, low: 19, close: 19.5 }, 13)).to.equal(7);
  });

  it('takes high − low when the bar contains the previous close', () => {
    expect(trueRange({ high: 12, low: 9, close: 11 }, 10)).to.equal(3);
  });
});

describe('atr', () => {
  // True ranges from the second bar: 2, 3, 1 (first ATR 2), then 4 → 8/3, then 7 → 37/9.
  const bars = [
    { high: 10, low: 8, close: 9 },
    { high: 11, low: 9, close: 10 },
    { high: 12, low: 9, close: 11 },
    { high: 11, low: 10, close: 10 },
    { high: 14, low: 10, close: 13 },
    { high: 20, low: 19, close: 19.5 },
  ];

  it('is the mean of the first period true ranges when there are period + 1 bars', () => {
    expect(atr(bars.slice(0, 4), 3)).to.equal(2);
  });

  it("smooths later true ranges with Wilder's formula when there are more bars", () => {
    expect(atr(bars.slice(0, 5), 3)).to.be.closeTo(8 / 3, 1e-12);
    expect(atr(bars, 3)).to.be.closeTo(37 / 9, 1e-12);
  });

  it('returns null when there are only period bars', () => {
    expect(atr(bars.slice(0, 3), 3)).to.equal(null);
  });
});
