import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { JsonDocument } from '../../src/persistence/json-document';
import { EMPTY_PAPER_VENUE, PaperExecutor, type PaperVenueState } from '../../src/execution/paper-executor';
import { describeVenueContract } from './venue-contract';

async function makePaper(opts: { fillDelayMs?: number; dir?: string; slippagePct?: number } = {}) {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'paper-venue-'));
  const doc = await JsonDocument.open<PaperVenueState>(path.join(dir, 'paper-venue.json'), structuredClone(EMPTY_PAPER_VENUE));
  const venue = new PaperExecutor(doc, {
    initialCash: 10_000_000, feeRate: 0.0005, slippagePct: opts.slippagePct ?? 0, fillDelayMs: opts.fillDelayMs ?? 0, quoteCurrency: 'KRW', timeZone: 'Asia/Seoul',
  });
  return { dir, doc, venue };
}

describeVenueContract('paper (fills at once)', async () => {
  const { dir, doc, venue } = await makePaper();
  return {
    venue, symbol: 'BTC/KRW', price: 100_000_000,
    ordersSeen: () => Object.keys(doc.data.orders).length,
    close: async () => { await venue.close(); fs.rmSync(dir, { recursive: true, force: true }); },
  };
});

describeVenueContract('paper (fills after a delay)', async () => {
  const { dir, doc, venue } = await makePaper({ fillDelayMs: 30 });
  return {
    venue, symbol: 'BTC/KRW', price: 100_000_000,
    ordersSeen: () => Object.keys(doc.data.orders).length,
    close: async () => { await venue.close(); fs.rmSync(dir, { recursive: true, force: true }); },
  };
});

describe('PaperExecutor', () => {
  it('fills at the reference price moved by slippage against the trader, and charges FEE_RATE', async () => {
    const { dir, venue } = await makePaper({ slippagePct: 0.1 });
    const r = await venue.submit({ clientOrderId: 'ct-a', symbol: 'BTC/KRW', side: 'buy', intent: 'buy', notional: 100_000, price: 100_000_000 });
    expect(r.avgPrice).to.equal(100_100_000);
    expect(r.filledQuantity).to.equal(0.00099900);
    expect(r.fee).to.be.closeTo(0.000999 * 100_100_000 * 0.0005, 1e-9);
    await venue.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps an accepted order across a reopen and fills it when it comes due', async () => {
    const first = await makePaper({ fillDelayMs: 50 });
    await first.venue.submit({ clientOrderId: 'ct-b', symbol: 'BTC/KRW', side: 'buy', intent: 'buy', notional: 50_000, price: 100_000_000 });
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
    expect(Object.keys(again.doc.data.orders)).to.deep.equal(['ct-b']);
    await again.venue.close();
    fs.rmSync(first.dir, { recursive: true, force: true });
  });

  it('halts on a NaN price instead of filling (invariant)', async () => {
    const { dir, venue } = await makePaper();
    try {
      await venue.submit({ clientOrderId: 'ct-c', symbol: 'BTC/KRW', side: 'buy', intent: 'buy', notional: 50_000, price: Number.NaN });
      expect.fail('submit should throw');
    } catch (err) {
      expect((err as { category?: string }).category).to.equal('invariant');
    }
    expect(await venue.findByClientId('ct-c')).to.equal(undefined);
    await venue.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
