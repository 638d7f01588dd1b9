import { expect } from 'chai';
import { TradingLoop, type TradingLoopDeps } from '../../src/runtime/loop';
import { silentLogger } from '../../src/logging';
import { StorageError } from '../../src/errors';
import type { PortfolioView } from '../../src/proposal/types';
import type { ProposalDraft } from '../../machines/proposal.machine';

/** A book with three positions (one with a quantity no JS number holds) and one dust holding. */
const BOOK: PortfolioView = {
  cash: 1_000_000, equity: 4_000_000, dayStartEquity: 4_000_000, dailyPnl: 0, realizedPnl: 0, consecutiveLosses: 0, tradingDay: '2026-12-02',
  positions: [
    { symbol: 'BTC/KRW', quantity: '0.01', avgPrice: 100_000_000, marketValue: 1_000_000, markPrice: 100_000_000, markedAt: 1 },
    { symbol: 'ETH/KRW', quantity: '0.2', avgPrice: 5_000_000, marketValue: 1_000_000, markPrice: 5_000_000, markedAt: 1 },
    { symbol: 'PEPE/KRW', quantity: '1215000011.05650013', avgPrice: 0.00123456789, marketValue: 1_500_000, markPrice: 0.00123456789, markedAt: 1 },
  ],
  dust: [{ symbol: 'XRP/KRW', quantity: '0.00000123', marketValue: 0.001 }],
} as PortfolioView;

describe('TradingLoop.liquidateAll', () => {
  function loop(opts: { failing?: string; underWay?: string; closed?: string } = {}) {
    const drafts: ProposalDraft[] = [];
    // A symbol counts as being liquidated once its proposal started (as the orchestrator says).
    const live = new Set<string>(opts.underWay ? [opts.underWay] : []);
    const fsync = () => new Promise((r) => setTimeout(r, 5));
    const deps = {
      orchestrator: {
        liquidating: (symbol: string) => live.has(symbol),
        start: async (draft: ProposalDraft) => {
          await fsync();
          if (draft.symbol === opts.failing) throw new StorageError('ENOSPC', 'live/wal.log');
          drafts.push(draft);
          live.add(draft.symbol);
        },
      },
      registry: { add: fsync, update: fsync },
      journal: { append: async () => undefined },
      portfolio: { snapshot: () => BOOK, mark: async () => undefined },
      logger: silentLogger(),
      rules: { approvalTimeoutSeconds: 300 },
      venueClosed: (symbol: string) => (symbol === opts.closed ? 'KRX is closed (Mon-Fri 09:00-15:30 Asia/Seoul)' : undefined),
    } as unknown as TradingLoopDeps;
    return { loop: new TradingLoop(deps), drafts };
  }

  it('starts one liquidation per position, selling exactly what is held, and reports dust apart', async () => {
    const { loop: l, drafts } = loop();
    const report = await l.liquidateAll('op', 'test');
    expect(report.started.map((s) => s.symbol)).to.deep.equal(['BTC/KRW', 'ETH/KRW', 'PEPE/KRW']);
    expect(report.failed).to.deep.equal([]);
    expect(report.dust).to.deep.equal([{ symbol: 'XRP/KRW', quantity: '0.00000123' }]);
    expect(drafts.find((d) => d.symbol === 'PEPE/KRW')!.quantity).to.equal('1215000011.05650013');
    expect(drafts.every((d) => d.intent === 'liquidate' && d.side === 'sell')).to.equal(true);
  });

  it('runs passes one at a time: a breaker, the risk clock and an operator at once start one sell per symbol', async () => {
    const { loop: l, drafts } = loop();
    const [a, b, c] = await Promise.all([l.liquidateAll('risk:daily_liquidation', 'x'), l.liquidateAll('risk-clock', 'y'), l.liquidateAll('op', 'z')]);
    expect(drafts.map((d) => d.symbol).sort()).to.deep.equal(['BTC/KRW', 'ETH/KRW', 'PEPE/KRW']);
    expect(a.started).to.have.length(3);
    expect(b.underWay).to.deep.equal(['BTC/KRW', 'ETH/KRW', 'PEPE/KRW']);
    expect(c.started).to.deep.equal([]);
  });

  it('goes on with the other symbols when one cannot start, and names it with the error', async () => {
    const { loop: l, drafts } = loop({ failing: 'ETH/KRW', underWay: 'BTC/KRW' });
    const report = await l.liquidateAll('op', 'test');
    expect(report.underWay).to.deep.equal(['BTC/KRW']);
    expect(report.started.map((s) => s.symbol)).to.deep.equal(['PEPE/KRW']);
    expect(report.failed).to.have.length(1);
    expect(report.failed[0]!.symbol).to.equal('ETH/KRW');
    expect(report.failed[0]!.error).to.contain('ENOSPC');
    expect(drafts.map((d) => d.symbol)).to.deep.equal(['PEPE/KRW']);
  });

  it('starts no sell where the venue takes no orders now (a closed market), reporting it as waiting, and sells the others', async () => {
    const { loop: l, drafts } = loop({ closed: 'ETH/KRW' });
    const report = await l.liquidateAll('op', 'test');
    expect(report.waiting).to.deep.equal([{ symbol: 'ETH/KRW', reason: 'KRX is closed (Mon-Fri 09:00-15:30 Asia/Seoul)' }]);
    expect(report.failed).to.deep.equal([]);
    expect(drafts.map((d) => d.symbol)).to.deep.equal(['BTC/KRW', 'PEPE/KRW']);
  });
});
