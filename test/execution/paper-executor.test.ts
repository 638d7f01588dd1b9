import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { NodeStorageIo } from '../../src/persistence/storage-io';
import { PaperExecutor } from '../../src/execution/paper-executor';
import { describeVenueContract } from './venue-contract';

async function makePaper(opts: { fillDelayMs?: number; dir?: string; slippagePct?: number; now?: () => number } = {}) {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'paper-venue-'));
  const venue = await PaperExecutor.open(new NodeStorageIo(), dir, {
    initialCash: 10_000_000, feeRate: 0.0005, slippagePct: opts.slippagePct ?? 0, fillDelayMs: opts.fillDelayMs ?? 0, quoteCurrency: 'KRW', timeZone: 'Asia/Seoul',
    ...(opts.now ? { now: opts.now } : {}),
  });
  return { dir, venue };
}

describeVenueContract('paper (fills at once)', async () => {
  const { dir, venue } = await makePaper();
  return {
    venue, symbol: 'BTC/KRW', price: 100_000_000,
    ordersSeen: () => venue.orderCount,
    close: async () => { await venue.close(); fs.rmSync(dir, { recursive: true, force: true }); },
  };
});

describeVenueContract('paper (fills after a delay)', async () => {
  const { dir, venue } = await makePaper({ fillDelayMs: 30 });
  return {
    venue, symbol: 'BTC/KRW', price: 100_000_000,
    ordersSeen: () => venue.orderCount,
    close: async () => { await venue.close(); fs.rmSync(dir, { recursive: true, force: true }); },
  };
});

describe('PaperExecutor', () => {
  it('fills at the reference price moved by slippage against the trader, and charges FEE_RATE', async () => {
    const { dir, venue } = await makePaper({ slippagePct: 0.1 });
    const r = await venue.submit({ clientOrderId: 'ct-a', symbol: 'BTC/KRW', side: 'buy', intent: 'buy', notional: '100000', price: '100000000' });
    expect(r.avgPrice).to.equal('100100000');
    // 100 000 / 100 100 000 = 0.000999000999…, cut down to 8 places; fee 0.000999 × 100 100 000 × 0.0005.
    expect(r.filledQuantity).to.equal('0.000999');
    expect(r.fee).to.equal('49.99995');
    await venue.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps an accepted order across a reopen and fills it when it comes due', async () => {
    const first = await makePaper({ fillDelayMs: 50 });
    await first.venue.submit({ clientOrderId: 'ct-b', symbol: 'BTC/KRW', side: 'buy', intent: 'buy', notional: '50000', price: '100000000' });
    await first.venue.close();
    const again = await makePaper({ fillDelayMs: 50, dir: first.dir });
    const seen = await again.venue.findByClientId('ct-b');
    expect(seen?.clientOrderId).to.equal('ct-b');
    let final = seen!;
    for (let i = 0; i < 100 && final.status !== 'filled'; i++) {
      await new Promise((r) => setTimeout(r, 10));
      final = (await again.venue.findByClientId('ct-b'))!;
    }
    expect(final.status).to.equal('filled');
    // The reopened venue holds exactly the one order placed before the reopen.
    expect(again.venue.orderCount).to.equal(1);
    await again.venue.close();
    fs.rmSync(first.dir, { recursive: true, force: true });
  });

  for (const crash of [false, true]) {
    it(`keeps marks and the day-start equity across a restart at a day boundary (${crash ? 'killed' : 'clean stop'})`, async () => {
      // 23:59:30 and 00:00:30 in Asia/Seoul (UTC+9).
      let now = Date.parse('2026-11-26T14:59:30Z');
      const clock = { now: () => now };
      const first = await makePaper({ now: clock.now });
      await first.venue.submit({ clientOrderId: 'ct-d', symbol: 'BTC/KRW', side: 'buy', intent: 'buy', notional: '1000000', price: '100000000' });
      await first.venue.mark({ 'BTC/KRW': 90_000_000 });
      now += 60_000; // past midnight: the first mark of the new day rolls it over at the last marks
      await first.venue.mark({ 'BTC/KRW': 80_000_000 });
      const before = first.venue.snapshot(now);
      expect(before.tradingDay).to.equal('2026-11-27');
      if (!crash) await first.venue.close(); // a kill leaves the store as it is
      const again = await makePaper({ now: clock.now, dir: first.dir });
      const after = again.venue.snapshot(now);
      expect({ dayStartEquity: after.dayStartEquity, dailyPnl: after.dailyPnl, equity: after.equity, tradingDay: after.tradingDay })
        .to.deep.equal({ dayStartEquity: before.dayStartEquity, dailyPnl: before.dailyPnl, equity: before.equity, tradingDay: before.tradingDay });
      expect(after.dailyPnl, 'the day started at the 90M mark; BTC now at 80M').to.be.lessThan(0);
      await again.venue.close();
      fs.rmSync(first.dir, { recursive: true, force: true });
    });
  }

  it('halts on a NaN price instead of filling (invariant)', async () => {
    const { dir, venue } = await makePaper();
    try {
      await venue.submit({ clientOrderId: 'ct-c', symbol: 'BTC/KRW', side: 'buy', intent: 'buy', notional: '50000', price: 'NaN' });
      expect.fail('submit should throw');
    } catch (err) {
      expect((err as { category?: string }).category).to.equal('invariant');
    }
    expect(await venue.findByClientId('ct-c')).to.equal(undefined);
    await venue.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('imports the orders of a legacy paper-venue.json once and removes the file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paper-venue-'));
    const at = '2026-11-26T00:00:00.000Z';
    const legacy = {
      version: 1, portfolio: null, sequence: 7,
      orders: {
        'ct-old': {
          clientOrderId: 'ct-old', venueOrderId: 'paper-7', venue: 'paper', symbol: 'BTC/KRW', side: 'buy', status: 'filled',
          filledQuantity: 0.001, avgPrice: 100_000_000, fee: 50, submittedAt: at, updatedAt: at,
          plannedQuantity: '0.001', plannedPrice: '100000000', plannedFee: '50', fillAt: null,
        },
      },
    };
    fs.writeFileSync(path.join(dir, 'paper-venue.json'), JSON.stringify(legacy));
    const first = await makePaper({ dir });
    expect(fs.existsSync(path.join(dir, 'paper-venue.json'))).to.equal(false);
    expect(first.venue.orderCount).to.equal(1);
    expect(await first.venue.findByClientId('ct-old')).to.deep.include({ venueOrderId: 'paper-7', status: 'filled' });
    const next = await first.venue.submit({ clientOrderId: 'ct-new', symbol: 'BTC/KRW', side: 'buy', intent: 'buy', notional: '50000', price: '100000000' });
    expect(next.venueOrderId).to.equal('paper-8');
    await first.venue.close();
    const again = await makePaper({ dir });
    expect(again.venue.orderCount).to.equal(2);
    expect((await again.venue.findByClientId('ct-old'))?.venueOrderId).to.equal('paper-7');
    await again.venue.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to start, naming the file, when a legacy paper-venue.json is not valid JSON', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paper-venue-'));
    const file = path.join(dir, 'paper-venue.json');
    fs.writeFileSync(file, '{"version":1,"ord');
    try {
      await makePaper({ dir });
      expect.fail('open should throw');
    } catch (err) {
      expect(err).to.include({ code: 'corrupt_store' });
      expect((err as Error).message).to.include(file);
    }
    expect(fs.readFileSync(file, 'utf8')).to.equal('{"version":1,"ord');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
