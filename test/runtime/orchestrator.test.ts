import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { Orchestrator, type ProposalServices } from '../../src/runtime/orchestrator';
import { WalProposalStore } from '../../src/persistence/proposal-store';
import { NodeStorageIo } from '../../src/persistence/storage-io';
import { ProposalArchive } from '../../src/journal/tracker';
import { TradeLog } from '../../src/journal/trade-log';
import { silentLogger } from '../../src/logging';
import { newProposalId } from '../../src/proposal/ids';
import type { ProposalDraft } from '../../machines/proposal.machine';
import { waitFor } from '../support/service-process';
import { ReservationBook } from '../../src/portfolio/reservations';
import { amount } from '../../src/amounts';

/** Services whose person-approval assessment and paper-like fill are instant; counts submits. */
function services(counter: { submits: number }): ProposalServices {
  return {
    assess: async (ctx) => ({ at: Date.now(), risk: { kind: 'allow', notional: ctx.notional, reasons: [] }, approval: { approvers: 1, allowPartial: true, reasons: [] } }),
    recheck: async (ctx) => ({ at: Date.now(), ok: true, price: ctx.price, driftPct: 0 }),
    execute: async (ctx) => {
      counter.submits += 1;
      const at = new Date().toISOString();
      return {
        at: Date.now(),
        order: { clientOrderId: ctx.clientOrderId, venueOrderId: 'v', venue: 'paper', symbol: ctx.symbol, side: ctx.side, status: 'filled', filledQuantity: '1', avgPrice: amount(ctx.price), fee: '0', submittedAt: at, updatedAt: at },
        fill: { quantity: '1', price: amount(ctx.price), fee: '0', notional: amount(ctx.price), at },
      };
    },
  };
}

function draft(deadlineInMs: number): ProposalDraft {
  const now = Date.now();
  return {
    id: newProposalId(now), signalId: 'sig', symbol: 'BTC/KRW', side: 'buy', intent: 'buy', notional: 50_000, quantity: null,
    price: 100, priceSource: 'market', confidence: 0.5, reasons: [], explanation: '', createdAt: now, deadline: now + deadlineInMs,
  };
}

async function open(dir: string, counter: { submits: number }, opts: { services?: ProposalServices; reservations?: ReservationBook; recheckWaitMs?: number } = {}) {
  const io = new NodeStorageIo();
  const { store } = await WalProposalStore.open(io, dir);
  const journalDir = path.join(dir, 'journal');
  const archive = new ProposalArchive(io, journalDir);
  const journal = new TradeLog(io, journalDir);
  const o = new Orchestrator({
    store, archive, journal, logger: silentLogger(), services: opts.services ?? services(counter), reservations: opts.reservations ?? new ReservationBook(),
    ...(opts.recheckWaitMs !== undefined ? { recheckWaitMs: opts.recheckWaitMs } : {}),
  });
  /** Stops the orchestrator and closes its files (as the service does on shutdown). */
  const close = async () => {
    await o.stop();
    await store.close();
    await Promise.all([archive.close(), journal.close()]);
  };
  return { o, store, close };
}

/** Every live proposal, newest first. */
const allLive = (o: Orchestrator) => o.liveViews({ limit: Number.MAX_SAFE_INTEGER });

describe('Orchestrator', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orchestrator-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('restores proposals awaiting approval without actors, and they behave as before: listed, approvable, timing out', async () => {
    const counter = { submits: 0 };
    const first = await open(dir, counter);
    await first.o.restore();
    const approveMe = await first.o.start(draft(60_000));
    const expireMe = await first.o.start(draft(300));
    const keep = await first.o.start(draft(60_000));
    await waitFor(() => (allLive(first.o).every((p) => p.state === 'awaiting-approval') ? true : undefined), 'all awaiting');
    await first.close();

    const second = await open(dir, counter);
    const restored = await second.o.restore();
    expect(restored.restored).to.equal(3);
    expect(allLive(second.o).map((p) => p.id).sort()).to.deep.equal([approveMe.id, expireMe.id, keep.id].sort());
    expect(second.o.view(keep.id)?.state).to.equal('awaiting-approval');
    expect(second.o.isLive(keep.id)).to.equal(true);

    const approved = await second.o.approve(approveMe.id, 'alice');
    expect(approved.counted).to.equal(true);
    await waitFor(() => (second.o.view(approveMe.id)?.state === 'settled' ? true : undefined), 'approved proposal settled');
    expect(counter.submits).to.equal(1);

    await waitFor(() => (second.o.view(expireMe.id)?.state === 'timed-out' ? true : undefined), 'deadline of a dormant proposal', 5000);
    const timedOut = second.o.view(expireMe.id)!;
    expect(Date.parse(timedOut.outcome!.at)).to.be.at.least(Date.parse(timedOut.deadline));
    expect(second.o.view(keep.id)?.state).to.equal('awaiting-approval');
    // A settled proposal leaves the live store once it is archived.
    await waitFor(() => ([...second.store.all()].every((r) => r.id !== approveMe.id) ? true : undefined), 'settled proposal removed from the live store');
    expect([...second.store.all()].map((r) => r.id)).to.not.include(approveMe.id);
    expect(second.o.view(approveMe.id)?.state).to.equal('settled');
    await second.close();
  });

  it('rejects a decision on a proposal whose deadline has passed, even before its timer fired', async () => {
    const counter = { submits: 0 };
    const { o, close } = await open(dir, counter);
    await o.restore();
    const p = await o.start(draft(150));
    await waitFor(() => (o.view(p.id)?.state === 'awaiting-approval' ? true : undefined), 'awaiting');
    const deadline = Date.parse(o.view(p.id)!.deadline);
    await waitFor(() => (Date.now() > deadline ? true : undefined), 'deadline passed');
    let code: string | undefined;
    try {
      await o.approve(p.id, 'alice');
    } catch (err) {
      code = (err as { code?: string }).code;
    }
    if (o.view(p.id)?.state === 'awaiting-approval') expect(code).to.equal('not_awaiting_approval');
    await waitFor(() => (o.view(p.id)?.state === 'timed-out' ? true : undefined), 'timed out');
    expect(counter.submits).to.equal(0);
    await close();
  });

  it('answers an approval with the outcome of the re-check that follows it', async () => {
    const counter = { submits: 0 };
    const stale: ProposalServices = {
      ...services(counter),
      recheck: async () => {
        await new Promise((resolve) => setImmediate(resolve));
        return { at: Date.now(), ok: false, code: 'stale_price', reason: 'price moved 3.00% since the card' };
      },
    };
    const { o, close } = await open(dir, counter, { services: stale, recheckWaitMs: 5000 });
    await o.restore();
    const p = await o.start(draft(60_000));
    await waitFor(() => (o.view(p.id)?.state === 'awaiting-approval' ? true : undefined), 'awaiting');
    const answer = await o.approve(p.id, 'alice');
    expect(answer.view.state, 'the answer tells the re-check outcome').to.equal('rejected');
    expect(answer.view.outcome?.code).to.equal('stale_price');
    expect(counter.submits).to.equal(0);
    await close();
  });

  it('gives back reserved capacity when the kill switch cancels a proposal during its re-check', async () => {
    const counter = { submits: 0 };
    const book = new ReservationBook();
    let answer!: () => void;
    const slow = new Promise<void>((resolve) => { answer = resolve; });
    const reserving: ProposalServices = {
      ...services(counter),
      recheck: async (ctx) => {
        book.reserve(ctx.id, { symbol: ctx.symbol, side: ctx.side, notional: ctx.notional, price: ctx.price });
        await slow;
        book.reserve(ctx.id, { symbol: ctx.symbol, side: ctx.side, notional: ctx.notional, price: ctx.price });
        return { at: Date.now(), ok: true, price: ctx.price, driftPct: 0 };
      },
    };
    const { o, close } = await open(dir, counter, { services: reserving, reservations: book });
    await o.restore();
    const p = await o.start(draft(60_000));
    await waitFor(() => (o.view(p.id)?.state === 'awaiting-approval' ? true : undefined), 'awaiting');
    await o.approve(p.id, 'alice');
    expect(book.size, 'the re-check holds capacity').to.equal(1);
    const { cancelled } = await o.cancelAll('kill switch', 'ops');
    expect(cancelled).to.equal(1);
    await waitFor(() => (o.view(p.id)?.state === 'rejected' ? true : undefined), 'cancelled');
    expect(book.size, 'released when the proposal finished').to.equal(0);
    answer();
    await new Promise((resolve) => setImmediate(resolve));
    expect(book.size, 'a re-check finishing late reserves nothing').to.equal(0);
    expect(counter.submits).to.equal(0);
    await close();
  });
});
