import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { nextRollover, Scheduler, summaryNotice } from '../../src/runtime/scheduler';
import { tradingDayOf } from '../../src/portfolio/paper-portfolio';
import { startService, tempDir, type ServiceHandle } from '../support/service-process';

/**
 * 60 hourly candles: a zigzag that rises overall (close above SMA20, RSI inside 30–70) with a
 * last candle of high volume, so every default confirmation agrees with a buy.
 */
function agreeingCandles(symbol: string, last: number): string[] {
  const lines: string[] = [];
  const end = Date.parse('2026-11-26T00:00:00Z');
  let close = last;
  for (let i = 59; i >= 0; i--) {
    close *= i % 2 === 0 ? 1.005 : 0.9965;
    lines.push(JSON.stringify({ symbol, time: new Date(end - i * 3_600_000).toISOString(), open: close, high: close * 1.001, low: close * 0.999, close, volume: i === 0 ? 50 : 10 }));
  }
  return lines;
}

/** Falling candles: close below SMA20, so the trend confirmation disagrees. */
function fallingCandles(symbol: string, last: number): string[] {
  const end = Date.parse('2026-11-26T00:00:00Z');
  return Array.from({ length: 60 }, (_, k) => {
    const i = 59 - k;
    const close = last * (1 + i * 0.003);
    return JSON.stringify({ symbol, time: new Date(end - i * 3_600_000).toISOString(), open: close, high: close, low: close, close, volume: 10 });
  });
}

describe('nextRollover', () => {
  it('finds the first instant of the next trading day in the zone', () => {
    const t = Date.parse('2026-11-26T10:00:00Z'); // 19:00 in Seoul
    expect(new Date(nextRollover(t, 'Asia/Seoul')).toISOString()).to.equal('2026-11-26T15:00:00.000Z');
    expect(tradingDayOf(nextRollover(t, 'Asia/Seoul') - 1, 'Asia/Seoul')).to.equal('2026-11-26');
  });

  it('follows a DST change (New York, 2026-11-01)', () => {
    const t = Date.parse('2026-11-01T12:00:00Z');
    expect(new Date(nextRollover(t, 'America/New_York')).toISOString()).to.equal('2026-11-02T05:00:00.000Z');
  });
});

describe('Scheduler.summary', () => {
  it('summarises the day that ends at the rollover: equity, daily PnL and outcomes of that day', () => {
    const end = Date.parse('2026-11-26T15:00:00Z');
    const deps = {
      orchestrator: {
        list: () => [
          { state: 'settled', createdAt: '2026-11-26T01:00:00Z' },
          { state: 'settled', createdAt: '2026-11-26T02:00:00Z' },
          { state: 'timed-out', createdAt: '2026-11-26T03:00:00Z' },
          { state: 'settled', createdAt: '2026-11-25T03:00:00Z' },
        ],
      },
      portfolio: {
        snapshot: (now: number) => ({ tradingDay: tradingDayOf(now, 'Asia/Seoul'), equity: 10_100_000, dailyPnl: 100_000, realizedPnl: 40_000, positions: [{}] }),
      },
      timeZone: 'Asia/Seoul',
    };
    const s = new Scheduler(deps as unknown as ConstructorParameters<typeof Scheduler>[0]).summary(end);
    expect(s).to.deep.equal({ day: '2026-11-26', equity: 10_100_000, dailyPnl: 100_000, realizedPnl: 40_000, openPositions: 1, outcomes: { settled: 2, 'timed-out': 1 } });
    const notice = summaryNotice(s, 'KRW');
    expect(notice.kind).to.equal('daily_summary');
    expect(notice.title).to.equal('Daily summary 2026-11-26');
    expect(notice.fields).to.deep.include({ name: 'Daily PnL', value: '+100,000 KRW' });
  });
});

describe('scan (POST /api/scan, real process)', function () {
  this.timeout(90_000);
  let svc: ServiceHandle;
  after(async () => {
    await svc?.stop();
    if (svc) fs.rmSync(svc.dataDir, { recursive: true, force: true });
  });

  it('proposes where every confirmation agrees, skips the others with reasons, and does nothing while paused', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'scan-candles.jsonl');
    fs.writeFileSync(file, `${[...agreeingCandles('KRW-BTC', 100_000_000), ...fallingCandles('KRW-ETH', 5_000_000)].join('\n')}\n`);
    svc = await startService({ dataDir: dir, env: { MARKET_DATA_SOURCE: 'replay', MARKET_DATA_REPLAY_FILE: file, SCAN_WATCHLIST: 'KRW-BTC,KRW-ETH' } });

    const paused = await svc.api('POST', '/api/pause', { by: 'test' });
    expect(paused.body.paused).to.equal(true);
    const none = await svc.api('POST', '/api/scan', {});
    expect(none.body.proposals).to.deep.equal([]);
    expect(none.body.skipped.map((s: { reason: string }) => s.reason)).to.deep.equal(['trading is paused', 'trading is paused']);
    await svc.api('POST', '/api/resume', { by: 'test' });

    const res = await svc.api('POST', '/api/scan', {});
    expect(res.status).to.equal(200);
    expect(res.body.scanned).to.deep.equal(['BTC/KRW', 'ETH/KRW']);
    expect(res.body.proposals, JSON.stringify(res.body)).to.have.length(1);
    const eth = res.body.skipped.find((s: { symbol: string }) => s.symbol === 'ETH/KRW');
    expect(eth.reason).to.match(/confirmations agree|no proposal|trend/);
    const p = (await svc.api('GET', `/api/proposals/${res.body.proposals[0]}`)).body;
    expect(p.symbol).to.equal('BTC/KRW');
    expect(p.side).to.equal('buy');
    expect(p.confidence).to.equal(1);
    const signal = (await svc.api('GET', `/api/signals/${p.signalId}`)).body;
    expect(signal.signal.source).to.equal('scan');

    const one = await svc.api('POST', '/api/scan', { symbol: 'not a symbol!' });
    expect(one.body.skipped[0].reason).to.equal('not a recognised symbol');
  });
});
