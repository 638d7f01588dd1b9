import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { chromium, type Browser, type Page } from 'playwright-core';
import { readJournal, startService, waitFor, type ServiceHandle } from '../support/service-process';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
/** Screenshots of each step, for a person to look at (not committed). */
const SHOTS = path.resolve('test-artifacts', 'console');
const ALICE = 'alice-operator-token-0123456789';
const BOB = 'bob-operator-token-9876543210ab';

/**
 * The console in a real browser (Debian's chromium through playwright-core) against the real
 * service: sign in, a proposal made by a signal with its reasons and countdown, Approve 50%, a
 * two-person approval by two operators, a wrong token, a confirmed liquidation and the kill switch.
 */
describe('operator console in a real browser', function () {
  this.timeout(120_000);
  let svc: ServiceHandle;
  let browser: Browser;

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) {
      // CI installs chromium (.ci/run): there a missing browser is a failure, not a skip.
      if (process.env['CI'] === 'true') throw new Error(`chromium is missing at ${CHROMIUM}; .ci/run installs it`);
      this.skip();
    }
    fs.rmSync(SHOTS, { recursive: true, force: true });
    fs.mkdirSync(SHOTS, { recursive: true });
    svc = await startService({
      env: {
        OPERATOR_TOKENS: `alice:${ALICE},bob:${BOB}`,
        APPROVAL_TWO_PERSON_NOTIONAL: '200000',
        APPROVAL_TIMEOUT_SECONDS: '600',
      },
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  });
  after(async () => {
    await browser?.close();
    await svc?.stop();
    if (svc) fs.rmSync(svc.dataDir, { recursive: true, force: true });
  });

  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

  async function openConsole(token: string, viewport = { width: 1280, height: 900 }): Promise<Page> {
    const page = await (await browser.newContext({ viewport })).newPage();
    await page.goto(svc.url);
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.locator('#link', { hasText: 'live' }).waitFor();
    return page;
  }

  async function signal(body: Record<string, unknown>): Promise<string> {
    const res = await svc.api('POST', '/api/signals', body);
    expect(res.status).to.equal(202);
    return waitFor(async () => {
      const s = (await svc.api('GET', `/api/signals/${res.body.signalId}`)).body;
      return s.proposalId ? (s.proposalId as string) : undefined;
    }, 'a proposal for the signal');
  }

  it('a wrong token shows an error and changes nothing', async () => {
    const stateBefore = (await svc.api('GET', '/api/state')).body;
    const page = await (await browser.newContext()).newPage();
    await page.goto(svc.url);
    await page.getByLabel('API token').fill('not-the-token-at-all');
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.getByRole('alert').filter({ hasText: 'refused (401)' }).waitFor();
    expect(await page.locator('#desk').isHidden()).to.equal(true);
    expect(await page.evaluate(() => (globalThis as unknown as { sessionStorage: { length: number } }).sessionStorage.length)).to.equal(0);
    await shot(page, '01-wrong-token');
    expect((await svc.api('GET', '/api/state')).body).to.deep.equal(stateBefore);
    await page.context().close();
  });

  it('shows a signal\'s proposal with its reasons and countdown, approves it at 50 % and sees it settle and the portfolio change', async () => {
    const page = await openConsole(ALICE);
    expect(await page.locator('#who').textContent()).to.include('alice');
    // Low confidence: a person must approve, and may shrink it.
    const id = await signal({ symbol: 'KRW-ETH', action: 'buy', size: 100_000, confidence: 0.5 });
    const card = page.locator(`article[data-id="${id}"]`);
    await card.waitFor();
    expect(await card.textContent()).to.include(id);
    await card.locator('.reasons li', { hasText: 'confidence' }).first().waitFor();
    const countdown = card.locator('.countdown');
    const first = await countdown.textContent();
    expect(first).to.match(/^(9|10) min \d\d s \(until /);
    // It counts down by itself.
    await page.waitForFunction(([sel, before]) => (globalThis as unknown as { document: { querySelector(s: string): { textContent: string } | null } }).document.querySelector(sel)?.textContent !== before,
      [`article[data-id="${id}"] .countdown`, first] as const);
    expect(await card.textContent()).to.include('Price on approval');
    await shot(page, '02-pending-proposal');

    // Someone typing a reason keeps the focus and the text while other cards come and go: a
    // signal-priced proposal (no market data for XRP) arrives meanwhile.
    const reason = card.getByRole('textbox', { name: `Reject reason for ${id}` });
    await reason.fill('thinking it over');
    await reason.focus();
    const other = await signal({ symbol: 'KRW-XRP', action: 'buy', price: 700, size: 50_000, confidence: 0.9 });
    const otherCard = page.locator(`article[data-id="${other}"]`);
    await otherCard.waitFor();
    expect(await otherCard.textContent()).to.include('from the signal (no fresh market data)');
    expect(await otherCard.textContent()).to.include('the signal\'s price stands until');
    expect(await reason.evaluate((e) => e === (e.ownerDocument as unknown as { activeElement: unknown }).activeElement)).to.equal(true);
    expect(await reason.inputValue()).to.equal('thinking it over');

    // Its diagram: selecting it draws the machine with the path so far.
    await card.locator('h3').click();
    await page.locator('#diagram .state.current', { hasText: 'awaiting-approval' }).waitFor();

    await card.getByRole('button', { name: 'Approve 50%' }).click();
    await card.waitFor({ state: 'detached' });
    const settled = page.locator('#recent tr', { hasText: id });
    await settled.locator('td', { hasText: 'settled' }).waitFor();
    const row = page.locator('#positions tr', { hasText: 'ETH' });
    await row.waitFor();
    await page.locator('#diagram .state.current', { hasText: 'settled' }).waitFor();
    await shot(page, '03-settled-half');

    const view = (await svc.api('GET', `/api/proposals/${id}`)).body;
    expect(view.state).to.equal('settled');
    expect(view.sizeFactor).to.equal(0.5);
    expect(view.fill.exact.notional).to.equal('50000');
    expect(view.approvals.map((a: { by: string; sizeFactor: number }) => [a.by, a.sizeFactor])).to.deep.equal([['alice', 0.5]]);
    const held = (await svc.api('GET', '/api/portfolio')).body.positions.find((p: { symbol: string }) => p.symbol === 'ETH/KRW');
    expect(await row.locator('td').first().textContent()).to.equal(held.exactQuantity);
    await page.context().close();
  });

  it('a second operator completes a two-person approval; a liquidation needs a confirmation; the kill switch halts trading', async () => {
    const alice = await openConsole(ALICE);
    const id = await signal({ symbol: 'KRW-BTC', action: 'buy', size: 300_000, confidence: 0.9 });
    const card = alice.locator(`article[data-id="${id}"]`);
    await card.locator('dd', { hasText: '0 of 2' }).waitFor();
    await card.getByRole('button', { name: 'Approve', exact: true }).click();
    await card.locator('.outcome', { hasText: 'another person must approve' }).waitFor();
    await card.locator('dd', { hasText: '1 of 2 · alice' }).waitFor();
    // The answer to the approval does not blank what the card says of the price.
    expect(await card.locator('dd', { hasText: 'Approval needs a fresh market price' }).count()).to.equal(1);
    // The same person again is not a second approver.
    await card.getByRole('button', { name: 'Approve', exact: true }).click();
    await card.locator('.outcome', { hasText: 'already counted' }).waitFor();
    expect((await svc.api('GET', `/api/proposals/${id}`)).body.state).to.equal('awaiting-approval');
    await shot(alice, '04-first-of-two');

    // Bob, on a phone-sized screen.
    const bob = await openConsole(BOB, { width: 390, height: 844 });
    const bobCard = bob.locator(`article[data-id="${id}"]`);
    await bobCard.locator('dd', { hasText: '1 of 2' }).waitFor();
    await shot(bob, '05-second-approver-phone');
    await bobCard.getByRole('button', { name: 'Approve', exact: true }).click();
    // Alice's screen follows by itself (the live stream).
    await alice.locator('#recent tr', { hasText: id }).locator('td', { hasText: 'settled' }).waitFor();
    expect((await svc.api('GET', `/api/proposals/${id}`)).body.approvals.map((a: { by: string }) => a.by)).to.deep.equal(['alice', 'bob']);
    await alice.locator('#positions tr', { hasText: 'BTC' }).waitFor();
    await shot(alice, '06-two-person-settled');
    await bob.context().close();

    // Liquidate: the first click only asks.
    await alice.getByRole('button', { name: 'Liquidate all…' }).click();
    await alice.getByRole('button', { name: 'Confirm liquidation' }).waitFor();
    await shot(alice, '07-liquidation-confirm');
    expect((await svc.api('GET', '/api/state')).body.liquidation).to.equal(null);
    await alice.getByRole('button', { name: 'Confirm liquidation' }).click();
    await alice.locator('#positions-empty').waitFor({ state: 'visible' });
    expect((await svc.api('GET', '/api/portfolio')).body.positions).to.deep.equal([]);
    await shot(alice, '08-liquidated');
    // Asking again works as the first time, and Cancel sends nothing.
    await alice.getByRole('button', { name: 'Liquidate all…' }).click();
    expect(await alice.getByRole('button', { name: 'Confirm liquidation' }).isEnabled()).to.equal(true);
    await alice.getByRole('button', { name: 'Cancel' }).click();
    await alice.getByRole('button', { name: 'Confirm liquidation' }).waitFor({ state: 'hidden' });

    await alice.getByRole('button', { name: 'Halt trading (kill switch)' }).click();
    await alice.locator('#trading-state', { hasText: 'HALTED' }).waitFor();
    const state = (await svc.api('GET', '/api/state')).body;
    expect(state.tradingState).to.equal('halted');
    expect(readJournal(svc.dataDir).find((r) => r['type'] === 'state.changed' && r['to'] === 'halted')?.['by']).to.equal('alice');
    await shot(alice, '09-halted');
    // Halted: a new entry makes no order.
    const res = await svc.api('POST', '/api/signals', { symbol: 'KRW-ETH', action: 'buy', size: 50_000, confidence: 0.9 });
    const dropped = await waitFor(async () => {
      const s = (await svc.api('GET', `/api/signals/${res.body.signalId}`)).body;
      return s.status === 'received' ? undefined : s;
    }, 'the signal handled');
    if (dropped.proposalId) expect((await waitFor(async () => {
      const p = (await svc.api('GET', `/api/proposals/${dropped.proposalId}`)).body;
      return ['rejected', 'failed'].includes(p.state) ? p : undefined;
    }, 'the proposal refused')).fill).to.equal(undefined);
    await alice.locator('#signals tr', { hasText: 'KRW' }).first().waitFor();
    await shot(alice, '10-signal-while-halted');
    await alice.context().close();
  });
});
