import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { FakeUpbit } from '../fakes/fake-upbit';
import { readJournal, startService, waitFor, type ServiceHandle } from '../support/service-process';

const ROOT = path.resolve(import.meta.dirname, '../..');

/**
 * The risk clock in a real process on exchange market data (ccxt → a local Upbit): held
 * positions are marked and the loss breakers run without any signal; a daily-loss liquidation
 * sells every position; marks that stop coming show as stale in /api/portfolio.
 */
describe('risk clock (real process, local Upbit)', function () {
  this.timeout(120_000);
  let upbit: FakeUpbit;
  let svc: ServiceHandle | undefined;

  beforeEach(async () => {
    upbit = await FakeUpbit.start();
    upbit.setTicker('KRW-BTC', { price: 100_000_000, volume24h: 1000 });
    upbit.setTicker('KRW-ETH', { price: 5_000_000, volume24h: 1000 });
  });
  afterEach(async () => {
    await svc?.kill();
    if (svc) fs.rmSync(svc.dataDir, { recursive: true, force: true });
    svc = undefined;
    await upbit.stop();
  });

  const env = (extra: Record<string, string> = {}) => ({
    MARKET_DATA_SOURCE: 'exchange', MARKET_DATA_EXCHANGE: 'upbit', UPBIT_API_URL: upbit.url, MARKET_DATA_TIMEOUT_MS: '5000',
    WEBHOOK_RATE_LIMIT_PER_MINUTE: '0', APPROVAL_AUTO_MAX_NOTIONAL: '5000000', RISK_CHECK_INTERVAL_SECONDS: '1', ...extra,
  });
  const buy = async (ticker: string, price: number, id: string) => {
    const res = await fetch(`${svc!.url}/webhook/tradingview`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ secret: 'test-webhook-secret-0123456789', id, ticker, action: 'buy', price: String(price), size: '2000000', confidence: '0.9' }),
    });
    expect(res.status).to.equal(202);
  };
  const portfolio = async () => (await svc!.api('GET', '/api/portfolio')).body;

  it('liquidates every position on the daily loss with no signal arriving, and the ledger matches the book', async () => {
    svc = await startService({ env: env() });
    await buy('UPBIT:BTCKRW', 100_000_000, 'rc-btc');
    await buy('UPBIT:ETHKRW', 5_000_000, 'rc-eth');
    await waitFor(async () => ((await portfolio()).positions.length === 2 ? true : undefined), 'both buys to settle', 30_000);
    expect((await svc.api('GET', '/api/state')).body.tradingState).to.equal('active');

    // A 60 % fall: ~2.4M of ~10M lost, past RISK_DAILY_LIQUIDATE_PCT 10. No signal follows.
    upbit.setTicker('KRW-BTC', { price: 40_000_000, volume24h: 1000 });
    upbit.setTicker('KRW-ETH', { price: 2_000_000, volume24h: 1000 });
    const after = await waitFor(async () => {
      const p = await portfolio();
      return p.positions.length === 0 && p.dust.length === 0 ? p : undefined;
    }, 'every position to be sold', 30_000);
    // At least the liquidation threshold was lost (a symbol whose quote was still cached, up to
    // 2 s, may have been sold at its price before the fall).
    expect(after.dailyPnl).to.be.below(-1_000_000);
    expect((await svc.api('GET', '/api/state')).body.tradingState).to.equal('reducing');
    await waitFor(async () => ((await svc!.api('GET', '/api/state')).body.liquidation === null ? true : undefined), 'the liquidation to end', 10_000);

    // The journal line follows the state change that ended the liquidation.
    const journal = await waitFor(() => {
      const records = readJournal(svc!.dataDir);
      return records.some((r) => r['type'] === 'liquidation.done') ? records : undefined;
    }, 'liquidation.done in the journal', 10_000);
    expect(journal.some((r) => r['type'] === 'risk.breaker' && r['source'] === 'risk-clock'), JSON.stringify(journal.filter((r) => r['type'] === 'risk.breaker' || r['type'] === 'state.changed'))).to.equal(true);
    const sells = journal.filter((r) => r['type'] === 'order.filled' && r['order']?.['side'] === 'sell');
    expect(sells.map((r) => r['order']['symbol']).sort()).to.deep.equal(['BTC/KRW', 'ETH/KRW']);
    // Exact decimal text in the journal, never numbers.
    for (const r of journal.filter((x) => x['type'] === 'order.filled')) {
      for (const k of ['quantity', 'price', 'fee']) expect(r['fill'][k], k).to.be.a('string');
    }

    expect(await svc.stop()).to.equal(0);
    const ledger = spawnSync(process.execPath, ['--import', pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href, path.join(ROOT, 'scripts/ledger.ts'), '--data-dir', svc.dataDir], {
      cwd: svc.dataDir, env: { PATH: process.env['PATH'] ?? '' }, encoding: 'utf8',
    });
    expect(ledger.status, ledger.stdout + ledger.stderr).to.equal(0);
    expect(ledger.stdout).to.contain('4 fills counted').and.contain('The book matches the journal.').and.contain('(account.opened in the journal)');
  });

  it('shows a held position\'s mark as stale in /api/portfolio once quotes stop coming', async () => {
    svc = await startService({ env: env({ MARKET_DATA_MAX_AGE_SECONDS: '2' }) });
    await buy('UPBIT:BTCKRW', 100_000_000, 'st-btc');
    const fresh = await waitFor(async () => (await portfolio()).positions[0], 'the buy to settle', 30_000);
    expect(fresh.markStale).to.equal(false);
    expect(fresh.exactQuantity).to.be.a('string');
    // The risk clock keeps marking while quotes come: the mark's age stays small.
    upbit.setTicker('KRW-BTC', { price: 101_000_000, volume24h: 1000 });
    await waitFor(async () => ((await portfolio()).positions[0].markPrice === 101_000_000 ? true : undefined), 'the clock to mark the new price', 10_000);

    upbit.failNext(10_000, 500, { error: { name: 'server_error', message: 'down' } });
    const stale = await waitFor(async () => {
      const p = (await portfolio()).positions[0];
      return p.markStale ? p : undefined;
    }, 'the mark to go stale', 15_000);
    expect(stale.markAgeSeconds).to.be.greaterThan(2);
    expect(stale.markPrice).to.equal(101_000_000);
  });
});
