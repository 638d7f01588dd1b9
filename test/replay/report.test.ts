import { expect } from 'chai';
import { InputError } from '../../src/errors';
import { parseReplayArgs, renderReplay, replayDocument } from '../../src/replay/report';
import type { ReplayResult } from '../../src/replay/runner';

function refusal(argv: string[]): string {
  try {
    parseReplayArgs(argv);
  } catch (err) {
    if (err instanceof InputError && err.code === 'replay_usage') return err.message;
    throw err;
  }
  throw new Error(`${argv.join(' ')} was accepted`);
}

const result: ReplayResult = {
  kind: 'journal', approve: 'policy', from: '2026-11-26T01:00:00.000Z', to: '2026-11-26T01:05:00.000Z',
  proposals: [
    {
      signalId: 'sig-20261126-aaaaaaaaaaaa', symbol: 'BTC/KRW', side: 'buy', state: 'settled', notional: 50_000, reason: 'filled',
      fill: { price: 100_000_000, quantity: 0.0005, fee: 25, exact: { price: '100000000', quantity: '0.0005', fee: '25' } },
      original: { state: 'settled', reason: 'filled', fillPrice: '100000000' },
    },
    { signalId: 'sig-20261126-bbbbbbbbbbbb', symbol: 'ETH/KRW', side: 'buy', state: 'timed-out', notional: 300_000, reason: 'timeout', original: { state: 'settled' } },
    { signalId: 'sig-20261126-cccccccccccc', symbol: 'BTC/KRW', side: 'buy', state: 'dropped', notional: null, reason: 'duplicate_position', original: { state: 'dropped' } },
  ],
  portfolio: {
    cash: 9_949_975, equity: 9_999_975, dailyPnl: -25, dayStartEquity: 10_000_000, realizedPnl: 0, consecutiveLosses: 0, tradingDay: '2026-11-26', quoteCurrency: 'KRW', markMaxAgeSeconds: 60, dust: [],
    positions: [{ symbol: 'BTC/KRW', quantity: 0.0005, exactQuantity: '0.0005', avgPrice: 100_000_000, marketValue: 50_000, markPrice: 100_000_000, markedAt: null, markAgeSeconds: null, markStale: true }],
  },
};

describe('replay report', () => {
  it('reads the files, the approval mode and --json, in any order', () => {
    expect(parseReplayArgs(['a.jsonl'])).to.deep.equal({ files: ['a.jsonl'], approve: 'policy', json: false, help: false });
    expect(parseReplayArgs(['--json', 'a.jsonl', '--approve', 'all', 'b.jsonl'])).to.deep.equal({ files: ['a.jsonl', 'b.jsonl'], approve: 'all', json: true, help: false });
    expect(parseReplayArgs(['--approve=none', 'a.jsonl']).approve).to.equal('none');
    expect(parseReplayArgs(['--help']).help).to.equal(true);
  });

  it('refuses a bad flag, a bad mode and no file, saying which', () => {
    expect(refusal(['a.jsonl', '--approve', 'maybe'])).to.equal('--approve must be policy, all or none, got "maybe"');
    expect(refusal(['a.jsonl', '--approve'])).to.equal('--approve must be policy, all or none, got nothing');
    expect(refusal(['a.jsonl', '--fast'])).to.equal('unknown option "--fast"');
    expect(refusal(['--json'])).to.match(/^no FILE given/);
  });

  it('prints the document INTERFACES.md fixes: proposals with signalId, symbol, side, state, notional, and the portfolio', () => {
    const doc = JSON.parse(JSON.stringify(replayDocument(result))) as { proposals: Array<Record<string, unknown>>; portfolio: Record<string, unknown> };
    for (const p of doc.proposals) expect(p).to.include.all.keys('signalId', 'symbol', 'side', 'state', 'notional');
    expect(doc.portfolio).to.include.all.keys('cash', 'equity', 'positions', 'dailyPnl', 'consecutiveLosses');
  });

  it('shows each outcome beside the original run and counts the differences', () => {
    const text = renderReplay(result, ['2026-11-26.jsonl']);
    const lines = text.split('\n');
    expect(lines[0]).to.equal('Replay of 2026-11-26.jsonl (journal, --approve policy): 3 signals, simulated 2026-11-26T01:00:00.000Z → 2026-11-26T01:05:00.000Z');
    expect(lines.find((l) => l.startsWith('sig-20261126-aaaaaaaaaaaa'))).to.match(/settled\s+50,000\s+settled\s+filled 0\.0005 at 100,000,000$/);
    expect(lines.find((l) => l.startsWith('sig-20261126-bbbbbbbbbbbb'))).to.match(/timed-out\s+300,000\s+settled \(differs\)\s+timeout$/);
    expect(text).to.include('1 of 3 outcomes differ from the original run\'s.');
    expect(text).to.include('  BTC/KRW  0.0005 at 100,000,000 (value 50,000)');
  });
});
