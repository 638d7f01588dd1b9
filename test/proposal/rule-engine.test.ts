import { expect } from 'chai';
import type { Candle } from '../../src/context/market-snapshot';
import { InvariantError } from '../../src/errors';
import {
  evaluateSignal, isSupportingReason, requiredCandles, templateExplanation, type EngineSettings, type RuleOutcome, type SignalContext,
} from '../../src/proposal/rule-engine';
import { defaultRules, loadRules, type Rules } from '../../src/proposal/rules-config';
import type { PortfolioView, Signal } from '../../src/proposal/types';

const T0 = Date.parse('2026-03-02T09:00:00.000Z');

function signal(over: Partial<Signal> = {}): Signal {
  return { id: 'sig-1', receivedAt: new Date(T0).toISOString(), source: 'tradingview', symbol: 'BTC/KRW', action: 'buy', strategy: 'ema-cross', timeframe: '1h', ...over };
}

function portfolio(over: Partial<PortfolioView> = {}): PortfolioView {
  return { cash: 10_000_000, equity: 10_000_000, dayStartEquity: 10_000_000, dailyPnl: 0, realizedPnl: 0, consecutiveLosses: 0, tradingDay: '2026-03-02', positions: [], dust: [], ...over };
}

const holding = (quantity = '0.05', symbol = 'BTC/KRW') => portfolio({
  positions: [{ symbol, quantity, avgPrice: 90_000_000, marketValue: Number(quantity) * 100_000_000, markPrice: 100_000_000, markedAt: T0 - 5_000 }],
});

/** Candles from closes: high/low one above/below the close, volume 10 unless given. */
function bars(closes: number[], volumes: number[] = []): Candle[] {
  return closes.map((close, i) => ({
    time: new Date(T0 - (closes.length - i) * 3_600_000).toISOString(),
    open: close, high: close + 1, low: close - 1, close, volume: volumes[i] ?? 10,
  }));
}

// Period-3 fixtures (hand-computed):
// RISING: SMA3 (100+101+102)/3 = 101 < close 102 → trend_up; RSI3: changes +3,−3,+1,+1 → gain 11/9,
//   loss 2/3 → RSI 100 − 600/17 = 64.7 (inside 30–70); volume 20 ≥ 1.5 × 10 → volume_high.
const RISING = bars([100, 103, 100, 101, 102], [10, 10, 10, 10, 20]);
// FALLING: SMA3 106 > close 104 → trend_down; RSI3 = 100 − 1500/17 = 11.8 (below both bands);
//   volume 5 < 15 → volume_low.
const FALLING = bars([110, 108, 109, 105, 104], [10, 10, 10, 10, 5]);
// OVERBOUGHT: RSI3 = 81.8 (above the buy band).
const OVERBOUGHT = bars([100, 110, 100, 120, 130]);

function rules(over: Record<string, unknown> = {}): Rules {
  return loadRules(JSON.stringify({
    confirmations: { trend: { period: 3 }, rsi: { period: 3 }, volume: { period: 3, factor: 1.5 } },
    ...over,
  }));
}

function settings(over: Partial<EngineSettings> = {}): EngineSettings {
  return { rules: rules(), quoteCurrency: 'KRW', approvalTimeoutSeconds: 300, onMarketFailure: 'mark', ...over };
}

function context(over: Partial<SignalContext> = {}): SignalContext {
  return {
    signal: signal(),
    market: { price: 100_000_000, at: new Date(T0 - 5_000).toISOString(), source: 'exchange' },
    marketError: null,
    candles: RISING,
    candlesError: null,
    portfolio: portfolio(),
    now: T0,
    ...over,
  };
}

function proposal(outcome: RuleOutcome) {
  if (outcome.kind !== 'proposal') throw new Error(`expected a proposal, got ${outcome.code}: ${outcome.reason}`);
  return outcome;
}

function codes(outcome: RuleOutcome): string[] {
  return proposal(outcome).draft.reasons.map((r) => r.code);
}

function reason(outcome: RuleOutcome, code: string): string {
  const r = proposal(outcome).draft.reasons.find((x) => x.code === code);
  if (!r) throw new Error(`no reason ${code} in ${codes(outcome).join(', ')}`);
  return r.message;
}

describe('evaluateSignal', () => {
  describe('a proposal', () => {
    it('makes a buy draft at the market price with a deadline when everything is in order', () => {
      const o = proposal(evaluateSignal(context(), settings()));
      expect(o.draft).to.include({ signalId: 'sig-1', symbol: 'BTC/KRW', side: 'buy', intent: 'buy', price: 100_000_000, priceSource: 'market', quantity: null, createdAt: T0, deadline: T0 + 300_000 });
      expect(codes(o)).to.deep.equal(['signal', 'market_price', 'trend_up', 'rsi_in_band', 'volume_high', 'confidence_from_confirmations', 'size_fixed_pct']);
    });

    it('sizes a buy at the default position % of equity when the signal gives no size', () => {
      const o = evaluateSignal(context(), settings());
      expect(proposal(o).draft.notional).to.equal(500_000);
      expect(reason(o, 'size_fixed_pct')).to.equal('size 5% of equity 10,000,000 = 500,000 KRW');
    });

    it("takes the signal's size when it gives one", () => {
      const o = evaluateSignal(context({ signal: signal({ size: 123_456 }) }), settings({ rules: rules({ sizing: { mode: 'atr' } }) }));
      expect(proposal(o).draft.notional).to.equal(123_456);
      expect(codes(o)).to.include('size_from_signal');
    });

    it('sells the whole position when an exit gives no size', () => {
      const o = proposal(evaluateSignal(context({ signal: signal({ action: 'exit' }), portfolio: holding('0.05') }), settings()));
      expect(o.draft).to.include({ side: 'sell', intent: 'sell', quantity: '0.05', notional: 5_000_000 });
      expect(reason(o, 'full_exit')).to.equal('sell the whole position of 0.05 BTC');
    });

    it('sells part of the position when a sell asks for less than it is worth', () => {
      const o = proposal(evaluateSignal(context({ signal: signal({ action: 'sell', size: 1_000_000 }), portfolio: holding('0.05') }), settings()));
      expect(o.draft.quantity).to.equal('0.01');
      expect(o.draft.notional).to.equal(1_000_000);
      expect(codes(o)).to.include('partial_exit');
    });

    it('adds to a held position when allowAddToPosition is on', () => {
      const o = evaluateSignal(context({ portfolio: holding() }), settings({ rules: rules({ allowAddToPosition: true }) }));
      expect(o.kind).to.equal('proposal');
    });

    it('writes the template explanation into the draft', () => {
      const o = proposal(evaluateSignal(context(), settings()));
      expect(o.draft.explanation).to.equal(
        'Buy BTC/KRW for about 500,000 KRW at 100,000,000 KRW, confidence 1. Supported by: close 102 above SMA3 101; RSI3 64.7 within the buy band 30–70.',
      );
    });
  });

  describe('no proposal', () => {
    it('says no_position when a sell comes with no position held', () => {
      const o = evaluateSignal(context({ signal: signal({ action: 'sell' }) }), settings());
      expect(o).to.deep.equal({ kind: 'none', code: 'no_position', reason: 'sell signal for BTC/KRW, but no position is held' });
    });

    it('says no_position when an exit comes and only another symbol is held', () => {
      const o = evaluateSignal(context({ signal: signal({ action: 'exit' }), portfolio: holding('1', 'ETH/KRW') }), settings());
      expect(o.kind === 'none' && o.code).to.equal('no_position');
    });

    it('says duplicate_position when a buy comes while the symbol is held', () => {
      const o = evaluateSignal(context({ portfolio: holding('0.05') }), settings());
      expect(o.kind === 'none' && o.code).to.equal('duplicate_position');
      expect(o.kind === 'none' && o.reason).to.contain('0.05 BTC is already held');
    });

    it('says data_too_old when the exchange quote is older than maxDataAgeSeconds', () => {
      const at = new Date(T0 - 300_000).toISOString();
      const o = evaluateSignal(context({ market: { price: 100_000_000, at, source: 'exchange' } }), settings());
      expect(o).to.deep.equal({ kind: 'none', code: 'data_too_old', reason: `the BTC/KRW quote is 300 s old (from ${at}; limit 120 s)` });
    });

    it('says data_too_old when the quote time cannot be read', () => {
      const o = evaluateSignal(context({ market: { price: 100_000_000, at: 'yesterday', source: 'exchange' } }), settings());
      expect(o.kind === 'none' && o.code).to.equal('data_too_old');
    });

    it('says no_price when market data failed, the policy is mark and the signal has no price', () => {
      const o = evaluateSignal(context({ market: null, marketError: 'upbit did not answer within 3000 ms' }), settings());
      expect(o).to.deep.equal({ kind: 'none', code: 'no_price', reason: 'no price for BTC/KRW: the signal has none and market data failed (upbit did not answer within 3000 ms)' });
    });

    it('says market_data_unavailable when market data failed and the policy is drop', () => {
      const o = evaluateSignal(context({ signal: signal({ price: 99_000_000 }), market: null, marketError: 'exchange error' }), settings({ onMarketFailure: 'drop' }));
      expect(o).to.deep.equal({ kind: 'none', code: 'market_data_unavailable', reason: 'no market data for BTC/KRW (exchange error); MARKET_DATA_ON_FAILURE=drop' });
    });

    it('says size_zero when the sizing mode is signal and the signal gives no size', () => {
      const o = evaluateSignal(context(), settings({ rules: rules({ sizing: { mode: 'signal' } }) }));
      expect(o.kind === 'none' && o.code).to.equal('size_zero');
    });

    it('says size_zero when equity is zero', () => {
      const o = evaluateSignal(context({ portfolio: portfolio({ equity: 0, cash: 0 }) }), settings());
      expect(o).to.deep.equal({ kind: 'none', code: 'size_zero', reason: 'the proposal size is 0 KRW' });
    });

    it('says low_confidence when a buy is below the minConfidence of the rules', () => {
      const o = evaluateSignal(context({ candles: FALLING }), settings({ rules: rules({ minConfidence: 0.5 }) }));
      expect(o.kind === 'none' && o.code).to.equal('low_confidence');
    });

    it('still proposes an exit below minConfidence, since an exit reduces risk', () => {
      const o = evaluateSignal(context({ signal: signal({ action: 'exit', confidence: 0.1 }), portfolio: holding() }), settings({ rules: rules({ minConfidence: 0.9 }) }));
      expect(o.kind).to.equal('proposal');
    });
  });

  describe('market data', () => {
    it('ignores the age of a replay quote, which is historical by nature', () => {
      const o = evaluateSignal(context({ market: { price: 100_000_000, at: '2020-01-01T00:00:00.000Z', source: 'replay' } }), settings());
      expect(o.kind).to.equal('proposal');
    });

    it('accepts an exchange quote younger than maxDataAgeSeconds', () => {
      const o = evaluateSignal(context({ market: { price: 100_000_000, at: new Date(T0 - 60_000).toISOString(), source: 'exchange' } }), settings());
      expect(o.kind).to.equal('proposal');
    });

    it("proposes at the signal's price and says market data is missing when the policy is mark", () => {
      const o = proposal(evaluateSignal(context({ signal: signal({ price: 99_000_000 }), market: null, marketError: 'timeout' }), settings()));
      expect(o.draft).to.include({ price: 99_000_000, priceSource: 'signal' });
      expect(reason(o, 'market_data_missing')).to.equal("no fresh market data (timeout); using the signal's price 99,000,000 KRW");
      expect(o.draft.explanation).to.contain("the signal's price because market data was missing");
    });

    it('throws an InvariantError when the quote price is not a positive number', () => {
      expect(() => evaluateSignal(context({ market: { price: Number.NaN, at: new Date(T0).toISOString(), source: 'exchange' } }), settings())).to.throw(InvariantError);
    });
  });

  describe('confirmations', () => {
    it('records trend_up agreeing with a buy when the close is above the SMA', () => {
      const o = proposal(evaluateSignal(context(), settings()));
      expect(o.confirmations.find((c) => c.name === 'trend')).to.deep.include({ status: 'agrees', reason: { code: 'trend_up', message: 'close 102 above SMA3 101' } });
    });

    it('records trend_up against a sell when the close is above the SMA', () => {
      const o = proposal(evaluateSignal(context({ signal: signal({ action: 'exit' }), portfolio: holding() }), settings()));
      expect(o.confirmations.find((c) => c.name === 'trend')?.status).to.equal('disagrees');
    });

    it('records trend_down against a buy and for a sell when the close is below the SMA', () => {
      const buy = proposal(evaluateSignal(context({ candles: FALLING }), settings()));
      const sell = proposal(evaluateSignal(context({ candles: FALLING, signal: signal({ action: 'exit' }), portfolio: holding() }), settings()));
      expect(buy.confirmations.find((c) => c.name === 'trend')).to.deep.include({ status: 'disagrees', reason: { code: 'trend_down', message: 'close 104 below SMA3 106' } });
      expect(sell.confirmations.find((c) => c.name === 'trend')?.status).to.equal('agrees');
    });

    it('records rsi_in_band when the RSI is inside the buy band', () => {
      const o = evaluateSignal(context(), settings());
      expect(reason(o, 'rsi_in_band')).to.equal('RSI3 64.7 within the buy band 30–70');
    });

    it('records rsi_out_of_band against a buy when the RSI is above the buy band', () => {
      const o = evaluateSignal(context({ candles: OVERBOUGHT }), settings());
      expect(reason(o, 'rsi_out_of_band')).to.equal('RSI3 81.8 above the buy band 30–70');
    });

    it('judges a sell against the sell band, where an overbought RSI agrees', () => {
      const o = proposal(evaluateSignal(context({ candles: OVERBOUGHT, signal: signal({ action: 'exit' }), portfolio: holding() }), settings()));
      expect(o.confirmations.find((c) => c.name === 'rsi')).to.deep.include({ status: 'agrees', reason: { code: 'rsi_in_band', message: 'RSI3 81.8 within the sell band 30–100' } });
    });

    it('records volume_high when the last volume reaches the average × factor', () => {
      const o = evaluateSignal(context(), settings());
      expect(reason(o, 'volume_high')).to.equal('last volume 20 ≥ 1.5 × 3-candle average 10 (15)');
    });

    it('records volume_low when the last volume is below the average × factor', () => {
      const o = evaluateSignal(context({ candles: FALLING }), settings());
      expect(reason(o, 'volume_low')).to.equal('last volume 5 < 1.5 × 3-candle average 10 (15)');
    });

    it('records each confirmation as unavailable when there are too few candles', () => {
      const o = evaluateSignal(context({ candles: RISING.slice(0, 2) }), settings());
      expect(codes(o)).to.include.members(['trend_unavailable', 'rsi_unavailable', 'volume_unavailable']);
      expect(reason(o, 'trend_unavailable')).to.equal('trend: SMA3 needs 3 candles, have 2');
    });

    it('skips a disabled confirmation entirely', () => {
      const o = proposal(evaluateSignal(context(), settings({ rules: rules({ confirmations: { trend: { enabled: false }, rsi: { period: 3 }, volume: { period: 3, factor: 1.5 } } }) })));
      expect(o.confirmations.map((c) => c.name)).to.deep.equal(['rsi', 'volume']);
    });
  });

  describe('confidence', () => {
    it('is 1 when every enabled confirmation agrees', () => {
      expect(proposal(evaluateSignal(context(), settings())).draft.confidence).to.equal(1);
    });

    it('is agreeing / enabled when some disagree', () => {
      const o = evaluateSignal(context({ signal: signal({ action: 'exit' }), portfolio: holding() }), settings());
      expect(proposal(o).draft.confidence).to.equal(2 / 3);
      expect(reason(o, 'confidence_from_confirmations')).to.equal('confidence 0.67: 2 of 3 confirmations agree with the sell (rsi, volume); not: trend');
    });

    it('is 0 when none agrees', () => {
      expect(proposal(evaluateSignal(context({ candles: FALLING }), settings())).draft.confidence).to.equal(0);
    });

    it('counts an unavailable confirmation as not agreeing', () => {
      // 4 candles: SMA3 101 < close 102 and RSI3 40 (inside 30–70) agree; a 4-candle volume
      // average needs 5 candles.
      const r = rules({ confirmations: { trend: { period: 3 }, rsi: { period: 3 }, volume: { period: 4 } } });
      const o = proposal(evaluateSignal(context({ candles: RISING.slice(1) }), settings({ rules: r })));
      expect(o.confirmations.map((c) => c.status)).to.deep.equal(['agrees', 'agrees', 'unavailable']);
      expect(o.draft.confidence).to.equal(2 / 3);
    });

    it('is 0 when no confirmation is enabled', () => {
      const off = { trend: { enabled: false }, rsi: { enabled: false }, volume: { enabled: false } };
      const o = evaluateSignal(context(), settings({ rules: rules({ confirmations: off }) }));
      expect(proposal(o).draft.confidence).to.equal(0);
      expect(reason(o, 'confidence_from_confirmations')).to.equal('confidence 0: no confirmation is enabled');
    });

    it('is 0 when there are no candles, and says why', () => {
      const o = evaluateSignal(context({ candles: [], candlesError: 'upbit timed out' }), settings());
      expect(proposal(o).draft.confidence).to.equal(0);
      expect(reason(o, 'confidence_from_confirmations')).to.equal('confidence 0: no candles (upbit timed out), so no confirmation could be checked');
    });

    it("takes the signal's own confidence when it gives one, still recording the confirmations", () => {
      const o = evaluateSignal(context({ signal: signal({ confidence: 0.8 }), candles: FALLING }), settings());
      expect(proposal(o).draft.confidence).to.equal(0.8);
      expect(codes(o)).to.include.members(['trend_down', 'rsi_out_of_band', 'volume_low', 'confidence_from_signal']);
    });
  });

  describe('ATR sizing', () => {
    // True ranges 2, 3, 1, 4, 7 → ATR3 37/9. Equity 1,000,000 × 2% = 20,000 per ATR →
    // 20,000 / (37/9) = 4,864.86… units × price 19.5 = 94,864.86… → 94,864.
    const ATR_BARS: Candle[] = [
      [10, 8, 9], [11, 9, 10], [12, 9, 11], [11, 10, 10], [14, 10, 13], [20, 19, 19.5],
    ].map(([high, low, close], i) => ({ time: new Date(T0 - (6 - i) * 3_600_000).toISOString(), open: close!, high: high!, low: low!, close: close!, volume: 10 }));
    const atrContext = (over: Partial<SignalContext> = {}) => context({
      market: { price: 19.5, at: new Date(T0).toISOString(), source: 'exchange' },
      candles: ATR_BARS,
      portfolio: portfolio({ equity: 1_000_000, cash: 1_000_000 }),
      ...over,
    });
    const atrRules = (sizing: Record<string, unknown>) => rules({ sizing: { mode: 'atr', atrPeriod: 3, riskPctPerAtr: 2, ...sizing } });

    it('risks riskPctPerAtr % of equity per ATR of recent candles', () => {
      const o = evaluateSignal(atrContext(), settings({ rules: atrRules({}) }));
      expect(proposal(o).draft.notional).to.equal(94_864);
      expect(reason(o, 'size_atr')).to.equal('ATR3 4.11 (21.08% of price); risk 2% of equity 1,000,000 = 20,000 KRW per ATR → 4,865 BTC = 94,865 KRW: 94,864 KRW');
    });

    it('caps the size at maxNotional', () => {
      const o = evaluateSignal(atrContext(), settings({ rules: atrRules({ maxNotional: 50_000 }) }));
      expect(proposal(o).draft.notional).to.equal(50_000);
      expect(reason(o, 'size_atr')).to.contain('capped at maxNotional 50,000');
    });

    it('raises the size to minNotional', () => {
      const o = evaluateSignal(atrContext(), settings({ rules: atrRules({ minNotional: 200_000 }) }));
      expect(proposal(o).draft.notional).to.equal(200_000);
      expect(reason(o, 'size_atr')).to.contain('raised to minNotional 200,000');
    });

    it('falls back to the default position % when there are too few candles for the ATR', () => {
      const o = evaluateSignal(atrContext({ candles: ATR_BARS.slice(0, 3) }), settings({ rules: atrRules({}) }));
      expect(proposal(o).draft.notional).to.equal(50_000);
      expect(reason(o, 'size_fixed_pct')).to.equal('ATR3 unavailable (needs 4 candles, have 3); size 5% of equity 1,000,000 = 50,000 KRW');
    });
  });
});

describe('requiredCandles', () => {
  it('asks for four RSI periods by default, the most any default rule needs', () => {
    expect(requiredCandles(defaultRules())).to.equal(57);
  });

  it('asks for the ATR period + 1 when sizing by ATR with confirmations off', () => {
    const r = loadRules(JSON.stringify({ confirmations: { trend: { enabled: false }, rsi: { enabled: false }, volume: { enabled: false } }, sizing: { mode: 'atr', atrPeriod: 30 } }));
    expect(requiredCandles(r)).to.equal(31);
  });

  it('asks for none when nothing uses candles', () => {
    const r = loadRules(JSON.stringify({ confirmations: { trend: { enabled: false }, rsi: { enabled: false }, volume: { enabled: false } } }));
    expect(requiredCandles(r)).to.equal(0);
  });
});

describe('isSupportingReason', () => {
  it('counts trend_down as support for a sell but not for a buy', () => {
    expect(isSupportingReason('trend_down', 'sell')).to.equal(true);
    expect(isSupportingReason('trend_down', 'buy')).to.equal(false);
  });
});

describe('templateExplanation', () => {
  it('names the quantity of a sell and leaves out the support sentence when nothing supports it', () => {
    const text = templateExplanation({ symbol: 'ETH/KRW', side: 'sell', notional: 1_500_000, quantity: '0.5', price: 3_000_000, priceSource: 'market', confidence: 0.333, reasons: [{ code: 'trend_up', message: 'x' }] }, 'KRW');
    expect(text).to.equal('Sell 0.5 ETH (about 1,500,000 KRW) at 3,000,000 KRW, confidence 0.33.');
  });
});
