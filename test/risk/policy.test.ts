import { expect } from 'chai';
import { describeRisk, evaluatePortfolioRisk, evaluateRisk, waivedBreakers } from '../../src/risk/policy';
import { InvariantError } from '../../src/errors';
import type { PortfolioView, PositionView, RiskDecision, RiskLimits, RiskRequest } from '../../src/proposal/types';

const limits: RiskLimits = {
  maxConsecutiveLosses: 3,
  dailyLossLimitPct: 5,
  dailyLiquidatePct: 10,
  maxPositionPct: 20,
  maxOpenPositions: 5,
};

// Equity 10,000,000 KRW: 5% = 500,000; 10% = 1,000,000; 20% = 2,000,000.
function portfolio(over: Partial<PortfolioView> = {}): PortfolioView {
  return {
    cash: 10_000_000,
    equity: 10_000_000,
    dayStartEquity: 10_000_000,
    dailyPnl: 0,
    realizedPnl: 0,
    consecutiveLosses: 0,
    tradingDay: '2026-11-26',
    positions: [],
    dust: [],
    ...over,
  };
}

function position(symbol: string, marketValue: number): PositionView {
  return { symbol, quantity: '1', avgPrice: marketValue, marketValue, markPrice: marketValue, markedAt: null };
}

function buy(notional: number, symbol = 'BTC/KRW'): RiskRequest {
  return { symbol, side: 'buy', intent: 'buy', notional };
}

function sell(notional: number, symbol = 'BTC/KRW', intent: 'sell' | 'liquidate' = 'sell'): RiskRequest {
  return { symbol, side: 'sell', intent, notional };
}

function codes(d: RiskDecision): string[] {
  return d.reasons.map((r) => r.code);
}

const held = [position('BTC/KRW', 1_000_000)];

describe('evaluateRisk', () => {
  describe('allow', () => {
    it('allows the full notional with no reasons when nothing fires', () => {
      const d = evaluateRisk(buy(100_000), portfolio(), limits, 'active');
      expect(d).to.deep.equal({ kind: 'allow', notional: 100_000, reasons: [] });
    });
  });

  describe('halted', () => {
    it('blocks an entry when trading is halted', () => {
      const d = evaluateRisk(buy(100_000), portfolio(), limits, 'halted');
      expect(d.kind).to.equal('block');
      expect(d.kind === 'block' && d.code).to.equal('halted');
    });

    it('blocks an exit when trading is halted', () => {
      const d = evaluateRisk(sell(100_000), portfolio({ positions: held }), limits, 'halted');
      expect(d.kind).to.equal('block');
      expect(d.kind === 'block' && d.code).to.equal('halted');
    });

    it('blocks a liquidation sell when trading is halted', () => {
      const d = evaluateRisk(sell(100_000, 'BTC/KRW', 'liquidate'), portfolio({ positions: held }), limits, 'halted');
      expect(d.kind === 'block' && d.code).to.equal('halted');
    });

    it('blocks without a breaker and keeps the loss reasons when halted and past the liquidation loss', () => {
      const d = evaluateRisk(buy(100_000), portfolio({ dailyPnl: -1_000_000 }), limits, 'halted');
      expect(d.kind === 'block' && d.code).to.equal('halted');
      expect(d.breaker).to.equal(undefined);
      expect(codes(d)).to.deep.equal(['halted', 'daily_liquidation', 'daily_loss_limit']);
    });
  });

  describe('invalid size', () => {
    for (const notional of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      it(`blocks invalid_size when the notional is ${notional}`, () => {
        const d = evaluateRisk(buy(notional), portfolio(), limits, 'active');
        expect(d.kind === 'block' && d.code).to.equal('invalid_size');
      });
    }

    it('blocks invalid_size on an exit when the notional is NaN', () => {
      const d = evaluateRisk(sell(Number.NaN), portfolio({ positions: held }), limits, 'active');
      expect(d.kind === 'block' && d.code).to.equal('invalid_size');
    });
  });

  describe('invalid request', () => {
    it('blocks invalid_request when a buy carries a liquidate intent', () => {
      const d = evaluateRisk({ symbol: 'BTC/KRW', side: 'buy', intent: 'liquidate', notional: 1 }, portfolio(), limits, 'active');
      expect(d.kind === 'block' && d.code).to.equal('invalid_request');
    });

    it('blocks invalid_request when a sell carries a buy intent', () => {
      const d = evaluateRisk({ symbol: 'BTC/KRW', side: 'sell', intent: 'buy', notional: 1 }, portfolio({ positions: held }), limits, 'active');
      expect(d.kind === 'block' && d.code).to.equal('invalid_request');
    });
  });

  describe('exits', () => {
    it('blocks no_position when selling a symbol that is not held', () => {
      const d = evaluateRisk(sell(100_000, 'ETH/KRW'), portfolio({ positions: held }), limits, 'active');
      expect(d.kind === 'block' && d.code).to.equal('no_position');
    });

    it('blocks no_position when the only entry for the symbol has zero quantity', () => {
      const empty: PositionView = { symbol: 'BTC/KRW', quantity: '0', avgPrice: 1, marketValue: 0, markPrice: 1, markedAt: null };
      const d = evaluateRisk(sell(100_000), portfolio({ positions: [empty] }), limits, 'active');
      expect(d.kind === 'block' && d.code).to.equal('no_position');
    });

    it('allows an exit when the trading state is reducing', () => {
      const d = evaluateRisk(sell(100_000), portfolio({ positions: held }), limits, 'reducing');
      expect(d).to.deep.equal({ kind: 'allow', notional: 100_000, reasons: [] });
    });

    it('allows an exit with a breaker when consecutive losses are at the maximum', () => {
      const d = evaluateRisk(sell(100_000), portfolio({ positions: held, consecutiveLosses: 3 }), limits, 'active');
      expect(d.kind).to.equal('allow');
      expect(d.breaker).to.equal('reducing');
      expect(codes(d)).to.deep.equal(['consecutive_losses']);
    });

    it('allows an exit with a breaker when the daily loss limit is reached', () => {
      const d = evaluateRisk(sell(100_000), portfolio({ positions: held, dailyPnl: -500_000 }), limits, 'active');
      expect(d.kind).to.equal('allow');
      expect(d.breaker).to.equal('reducing');
      expect(codes(d)).to.deep.equal(['daily_loss_limit']);
    });

    it('allows a sell with the reducing breaker when the liquidation loss is reached', () => {
      const d = evaluateRisk(sell(100_000), portfolio({ positions: held, dailyPnl: -1_000_000 }), limits, 'active');
      expect(d.kind).to.equal('allow');
      expect(d.kind === 'allow' && d.notional).to.equal(100_000);
      expect(d.breaker).to.equal('reducing');
      expect(codes(d)).to.deep.equal(['daily_liquidation', 'daily_loss_limit']);
    });

    it('allows a liquidate-intent sell when in reducing state past the liquidation loss', () => {
      const d = evaluateRisk(sell(100_000, 'BTC/KRW', 'liquidate'), portfolio({ positions: held, dailyPnl: -2_000_000 }), limits, 'reducing');
      expect(d.kind).to.equal('allow');
    });

    it('is not capped by max position when the exit is larger than the position limit', () => {
      const big = [position('BTC/KRW', 9_000_000)];
      const d = evaluateRisk(sell(9_000_000), portfolio({ positions: big }), limits, 'active');
      expect(d).to.deep.equal({ kind: 'allow', notional: 9_000_000, reasons: [] });
    });

    it('is not blocked by max open positions when all slots are taken', () => {
      const five = ['A', 'B', 'C', 'D', 'E'].map((s) => position(`${s}/KRW`, 100_000));
      const d = evaluateRisk(sell(100_000, 'A/KRW'), portfolio({ positions: five }), limits, 'active');
      expect(d.kind).to.equal('allow');
    });
  });

  describe('daily liquidation', () => {
    it('returns liquidate with the reducing breaker when the daily loss is exactly 10%', () => {
      const d = evaluateRisk(buy(100_000), portfolio({ dailyPnl: -1_000_000 }), limits, 'active');
      expect(d.kind).to.equal('liquidate');
      expect(d.kind === 'liquidate' && d.code).to.equal('daily_liquidation');
      expect(d.breaker).to.equal('reducing');
    });

    it('blocks with daily_loss_limit but does not liquidate when the loss is one KRW under 10%', () => {
      const d = evaluateRisk(buy(100_000), portfolio({ dailyPnl: -999_999 }), limits, 'active');
      expect(d.kind).to.equal('block');
      expect(d.kind === 'block' && d.code).to.equal('daily_loss_limit');
    });

    it('takes precedence over the reducing state and lists every check that fired', () => {
      const d = evaluateRisk(buy(100_000), portfolio({ dailyPnl: -1_000_000, consecutiveLosses: 3 }), limits, 'reducing');
      expect(d.kind).to.equal('liquidate');
      expect(codes(d)).to.deep.equal(['daily_liquidation', 'reducing', 'consecutive_losses', 'daily_loss_limit']);
    });

    it('writes the loss, percentage and day-start equity into the message', () => {
      const d = evaluateRisk(buy(100_000), portfolio({ dailyPnl: -1_000_000 }), limits, 'active');
      expect(d.reasons[0]!.message).to.contain('1000000 KRW').and.contain('10%').and.contain('10000000 KRW');
    });
  });

  describe('reducing', () => {
    it('blocks a buy when the trading state is reducing', () => {
      const d = evaluateRisk(buy(100_000), portfolio(), limits, 'reducing');
      expect(d.kind === 'block' && d.code).to.equal('reducing');
      expect(d.breaker).to.equal(undefined);
    });
  });

  describe('consecutive losses', () => {
    it('allows a buy when consecutive losses are 2 with a maximum of 3', () => {
      const d = evaluateRisk(buy(100_000), portfolio({ consecutiveLosses: 2 }), limits, 'active');
      expect(d.kind).to.equal('allow');
      expect(d.breaker).to.equal(undefined);
    });

    it('blocks with the reducing breaker when consecutive losses are exactly 3 with a maximum of 3', () => {
      const d = evaluateRisk(buy(100_000), portfolio({ consecutiveLosses: 3 }), limits, 'active');
      expect(d.kind === 'block' && d.code).to.equal('consecutive_losses');
      expect(d.breaker).to.equal('reducing');
      expect(d.reasons[0]!.message).to.contain('3').and.contain('maximum of 3');
    });
  });

  describe('daily loss limit', () => {
    it('blocks with the reducing breaker when the daily loss is exactly 5%', () => {
      const d = evaluateRisk(buy(100_000), portfolio({ dailyPnl: -500_000, equity: 9_500_000 }), limits, 'active');
      expect(d.kind === 'block' && d.code).to.equal('daily_loss_limit');
      expect(d.breaker).to.equal('reducing');
      expect(d.kind === 'block' && d.reason).to.equal('daily loss 500000 KRW is at or above 5% of day-start equity 10000000 KRW');
    });

    it('allows when the daily loss is one KRW under 5%', () => {
      const d = evaluateRisk(buy(100_000), portfolio({ dailyPnl: -499_999, equity: 9_500_001 }), limits, 'active');
      expect(d.kind).to.equal('allow');
      expect(d.breaker).to.equal(undefined);
    });

    it('decides exactly at 5% when the amounts are fractional', () => {
      // 5% of 2.97 is 0.1485; in floating point 2.97 * 5 / 100 = 0.14850000000000002, above the loss.
      const d = evaluateRisk(buy(0.01), portfolio({ dayStartEquity: 2.97, equity: 2.8215, dailyPnl: -0.1485 }), limits, 'active');
      expect(d.kind === 'block' && d.code).to.equal('daily_loss_limit');
    });

    it('does not fire when there is no loss and the day-start equity is zero', () => {
      const d = evaluateRisk(buy(1), portfolio({ dayStartEquity: 0, equity: 10, dailyPnl: 10 }), limits, 'active');
      expect(codes(d)).to.not.include('daily_loss_limit');
      expect(codes(d)).to.not.include('daily_liquidation');
    });
  });

  describe('max open positions', () => {
    const four = ['A', 'B', 'C', 'D'].map((s) => position(`${s}/KRW`, 100_000));
    const five = [...four, position('E/KRW', 100_000)];

    it('allows a new symbol when 4 positions are open with a maximum of 5', () => {
      const d = evaluateRisk(buy(100_000), portfolio({ positions: four }), limits, 'active');
      expect(d.kind).to.equal('allow');
    });

    it('blocks a new symbol without a breaker when 5 positions are open with a maximum of 5', () => {
      const d = evaluateRisk(buy(100_000), portfolio({ positions: five }), limits, 'active');
      expect(d.kind === 'block' && d.code).to.equal('max_open_positions');
      expect(d.breaker).to.equal(undefined);
    });

    it('allows adding to a held symbol when 5 positions are open with a maximum of 5', () => {
      const d = evaluateRisk(buy(100_000, 'A/KRW'), portfolio({ positions: five }), limits, 'active');
      expect(d.kind).to.equal('allow');
    });

    it('does not count zero-quantity entries as open positions', () => {
      const withEmpty = [...four, { symbol: 'E/KRW', quantity: '0', avgPrice: 1, marketValue: 0, markPrice: 1, markedAt: null }];
      const d = evaluateRisk(buy(100_000), portfolio({ positions: withEmpty }), limits, 'active');
      expect(d.kind).to.equal('allow');
    });
  });

  describe('max position', () => {
    it('allows a buy that lands exactly at 20% of equity', () => {
      const d = evaluateRisk(buy(1_000_000), portfolio({ positions: held }), limits, 'active');
      expect(d).to.deep.equal({ kind: 'allow', notional: 1_000_000, reasons: [] });
    });

    it('caps to the room left when the buy is one KRW over 20% of equity', () => {
      const d = evaluateRisk(buy(1_000_001), portfolio({ positions: held }), limits, 'active');
      expect(d.kind).to.equal('cap');
      expect(d.kind === 'cap' && d.code).to.equal('max_position');
      expect(d.kind === 'cap' && d.notional).to.equal(1_000_000);
      expect(d.breaker).to.equal(undefined);
    });

    it('caps a fresh position to 20% of equity when nothing is held', () => {
      const d = evaluateRisk(buy(5_000_000), portfolio(), limits, 'active');
      expect(d.kind === 'cap' && d.notional).to.equal(2_000_000);
    });

    it('blocks when the held value is exactly at the limit so the room is zero', () => {
      const d = evaluateRisk(buy(1), portfolio({ positions: [position('BTC/KRW', 2_000_000)] }), limits, 'active');
      expect(d.kind === 'block' && d.code).to.equal('max_position');
    });

    it('blocks when the held value is already above the limit', () => {
      const d = evaluateRisk(buy(1), portfolio({ positions: [position('BTC/KRW', 3_000_000)] }), limits, 'active');
      expect(d.kind === 'block' && d.code).to.equal('max_position');
    });

    it('blocks when equity is not positive', () => {
      const d = evaluateRisk(buy(1), portfolio({ equity: 0, dayStartEquity: 0 }), limits, 'active');
      expect(d.kind === 'block' && d.code).to.equal('max_position');
    });

    it('computes the room exactly when amounts are fractional', () => {
      // equity 0.3: 20% = 0.06; held 0.01 → room 0.05 exactly (floating point gives 0.049999...).
      const p = portfolio({ equity: 0.3, dayStartEquity: 0.3, positions: [position('BTC/KRW', 0.01)] });
      const d = evaluateRisk(buy(0.1), p, limits, 'active');
      expect(d.kind === 'cap' && d.notional).to.equal(0.05);
    });

    it('never raises the notional for any size asked for', () => {
      for (const notional of [1, 999_999, 1_000_000, 1_000_001, 1_500_000, 50_000_000]) {
        const d = evaluateRisk(buy(notional), portfolio({ positions: held }), limits, 'active');
        if (d.kind === 'allow' || d.kind === 'cap') expect(d.notional).to.be.at.most(notional);
        if (d.kind === 'cap') expect(d.notional).to.be.below(notional);
      }
    });

    it('reports the capped amount in the reason', () => {
      const d = evaluateRisk(buy(1_000_001), portfolio({ positions: held }), limits, 'active');
      expect(d.kind === 'cap' && d.reason).to.contain('capped to 1000000 KRW').and.contain('20%');
    });

    it('lists the cap among the reasons of a block decided by an earlier check', () => {
      const d = evaluateRisk(buy(5_000_000), portfolio({ consecutiveLosses: 3 }), limits, 'active');
      expect(d.kind === 'block' && d.code).to.equal('consecutive_losses');
      expect(codes(d)).to.deep.equal(['consecutive_losses', 'max_position']);
    });
  });

  describe('corrupt input', () => {
    it('throws InvariantError when equity is NaN', () => {
      expect(() => evaluateRisk(buy(1), portfolio({ equity: Number.NaN }), limits, 'active')).to.throw(InvariantError, /equity/);
    });

    it('throws InvariantError when a position value is negative', () => {
      expect(() => evaluateRisk(buy(1), portfolio({ positions: [position('BTC/KRW', -5)] }), limits, 'active')).to.throw(InvariantError);
    });

    it('throws InvariantError when a limit is NaN', () => {
      expect(() => evaluateRisk(buy(1), portfolio(), { ...limits, maxPositionPct: Number.NaN }, 'active')).to.throw(InvariantError, /maxPositionPct/);
    });
  });
});

describe('describeRisk', () => {
  it('names the code and the capped notional when the decision is a cap', () => {
    const d = evaluateRisk(buy(1_000_001), portfolio({ positions: held }), limits, 'active');
    expect(describeRisk(d)).to.match(/^cap to 1000000 \(max_position\)/);
  });

  it('names the code when the decision is a block', () => {
    const d = evaluateRisk(buy(1), portfolio(), limits, 'halted');
    expect(describeRisk(d)).to.match(/^block \(halted\)/);
  });

  it('names the breaker codes when an allowed exit sets a breaker', () => {
    const d = evaluateRisk(sell(1), portfolio({ positions: held, consecutiveLosses: 3 }), limits, 'active');
    expect(describeRisk(d)).to.equal('allow 1 (breaker: consecutive_losses)');
  });

  it('is one line for every kind', () => {
    const ds = [
      evaluateRisk(buy(1), portfolio(), limits, 'active'),
      evaluateRisk(buy(1), portfolio({ dailyPnl: -2_000_000 }), limits, 'active'),
    ];
    expect(ds.map((d) => d.kind)).to.deep.equal(['allow', 'liquidate']);
    for (const d of ds) expect(describeRisk(d)).to.not.contain('\n');
  });
});

describe('evaluatePortfolioRisk and breaker waivers', () => {
  it('fires the loss breakers on the portfolio alone, and liquidates past the liquidation threshold', () => {
    expect(evaluatePortfolioRisk(portfolio(), limits, 'active')).to.deep.equal({ breaker: null, liquidate: null, reasons: [] });
    const limit = evaluatePortfolioRisk(portfolio({ dailyPnl: -500_000 }), limits, 'active');
    expect(limit.breaker).to.equal('reducing');
    expect(limit.liquidate).to.equal(null);
    expect(limit.reasons.map((r) => r.code)).to.deep.equal(['daily_loss_limit']);
    const liq = evaluatePortfolioRisk(portfolio({ dailyPnl: -1_000_000 }), limits, 'active');
    expect(liq.liquidate!.code).to.equal('daily_liquidation');
    expect(evaluatePortfolioRisk(portfolio({ consecutiveLosses: 3 }), limits, 'active').breaker).to.equal('reducing');
    // Halted is stronger than any breaker: it is never moved to reducing.
    expect(evaluatePortfolioRisk(portfolio({ dailyPnl: -1_000_000 }), limits, 'halted').breaker).to.equal(null);
  });

  it('waives what an operator accepted until the loss grows by another threshold or another trade loses', () => {
    const accepted = { tradingDay: '2026-11-26', dailyPnl: -1_200_000, consecutiveLosses: 3 };
    const now = (over: Partial<PortfolioView>) => evaluatePortfolioRisk(portfolio({ dailyPnl: -1_200_000, consecutiveLosses: 3, ...over }), limits, 'active', accepted);
    expect(now({})).to.deep.include({ breaker: null, liquidate: null });
    expect(now({ dailyPnl: -1_699_999 }).breaker).to.equal(null);
    expect(now({ dailyPnl: -1_700_000 }).reasons.map((r) => r.code)).to.deep.equal(['daily_loss_limit']);
    expect(now({ dailyPnl: -2_200_000 }).liquidate).not.to.equal(null);
    expect(now({ consecutiveLosses: 4 }).reasons.map((r) => r.code)).to.deep.equal(['consecutive_losses']);
    // Another trading day: its own loss counts again from nothing accepted.
    expect(now({ tradingDay: '2026-11-27', dailyPnl: -600_000 }).reasons.map((r) => r.code)).to.deep.equal(['daily_loss_limit']);
    expect([...waivedBreakers(portfolio(), limits, null)]).to.deep.equal([]);
  });
});
