/**
 * The adapter contract: what every execution venue (paper, Upbit, Freqtrade, KIS) must do.
 * An adapter's test file calls `describeVenueContract` with a factory that builds a fresh venue
 * against its local protocol peer, funded with `cash` of the quote currency.
 */
import { expect } from 'chai';
import type { ExecutionVenue } from '../../src/execution/base';
import { isTerminal } from '../../src/execution/base';
import { ExecutionRouter } from '../../src/execution/router';
import { Dec, amount, isPositive } from '../../src/amounts';
import type { Amount, OrderReport, OrderRequest } from '../../src/proposal/types';

export interface VenueUnderTest {
  venue: ExecutionVenue;
  /** Symbol the venue trades, and a price near its market. */
  symbol: string;
  price: number;
  /** How many orders the venue's order book has seen (the peer's own count). */
  ordersSeen: () => Promise<number> | number;
  close: () => Promise<void>;
}

let seq = 0;
const clientId = () => `ct-p-20261126-${(++seq).toString(16).padStart(12, '0')}`;

async function settle(venue: ExecutionVenue, id: string): Promise<OrderReport> {
  for (let i = 0; i < 200; i++) {
    const r = await venue.findByClientId(id);
    if (r && isTerminal(r)) return r;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`order ${id} did not reach a final status`);
}

export function describeVenueContract(name: string, make: () => Promise<VenueUnderTest>): void {
  describe(`venue contract: ${name}`, () => {
    let v: VenueUnderTest;
    beforeEach(async () => { v = await make(); });
    afterEach(async () => { await v.close(); });

    const buy = (notional: number | Amount = 50_000): OrderRequest => ({ clientOrderId: clientId(), symbol: v.symbol, side: 'buy', intent: 'buy', notional: amount(notional), price: amount(v.price) });

    for (const move of [-3, -60, 3]) {
      it(`liquidates a whole position after a ${move}% move: every unit held is sold, none left`, async () => {
        const bought = await settle(v.venue, (await v.venue.submit(buy(100_000))).clientOrderId);
        expect(bought.status).to.equal('filled');
        const held = (await v.venue.balances()).positions.find((p) => p.symbol === v.symbol)?.quantity ?? '0';
        expect(isPositive(held), `held ${held}`).to.equal(true);
        const price = new Dec(v.price).times(100 + move).div(100);
        const sell: OrderRequest = {
          clientOrderId: clientId(), symbol: v.symbol, side: 'sell', intent: 'liquidate', notional: amount(price.times(held)), quantity: held, price: amount(price),
        };
        const sold = await settle(v.venue, (await v.venue.submit(sell)).clientOrderId);
        expect(sold.status, sold.rejectReason).to.equal('filled');
        expect(sold.filledQuantity).to.equal(held);
        expect((await v.venue.balances()).positions.filter((p) => p.symbol === v.symbol && isPositive(p.quantity))).to.deep.equal([]);
      });
    }

    it('reports an order it never saw as undefined', async () => {
      expect(await v.venue.findByClientId(clientId())).to.equal(undefined);
    });

    it('places a buy and reports it by client order id until it is filled', async () => {
      const req = buy();
      const placed = await v.venue.submit(req);
      expect(placed.clientOrderId).to.equal(req.clientOrderId);
      expect(placed.venue).to.equal(v.venue.name);
      expect(placed.side).to.equal('buy');
      const final = await settle(v.venue, req.clientOrderId);
      expect(final.status).to.equal('filled');
      expect(isPositive(final.filledQuantity), `filled ${final.filledQuantity}`).to.equal(true);
      expect(isPositive(final.avgPrice), `avgPrice ${final.avgPrice}`).to.equal(true);
      expect(new Dec(final.filledQuantity).times(final.avgPrice).toNumber()).to.be.closeTo(Number(req.notional), Number(req.notional) * 0.02);
    });

    it('is idempotent on the client order id: a second submit places nothing', async () => {
      const req = buy();
      const first = await v.venue.submit(req);
      const before = await v.ordersSeen();
      const second = await v.venue.submit(req);
      expect(second.venueOrderId).to.equal(first.venueOrderId);
      expect(await v.ordersSeen()).to.equal(before);
    });

    it('sells what a buy filled and shows it in balances', async () => {
      const b = buy();
      await v.venue.submit(b);
      const filled = await settle(v.venue, b.clientOrderId);
      const held = (await v.venue.balances()).positions.find((p) => p.symbol === v.symbol);
      expect(held?.quantity).to.equal(filled.filledQuantity);
      const s: OrderRequest = { clientOrderId: clientId(), symbol: v.symbol, side: 'sell', intent: 'sell', notional: '0', quantity: filled.filledQuantity, price: amount(v.price) };
      await v.venue.submit(s);
      const sold = await settle(v.venue, s.clientOrderId);
      expect(sold.status).to.equal('filled');
      expect((await v.venue.balances()).positions.find((p) => p.symbol === v.symbol)).to.equal(undefined);
    });

    it('refuses an order the account cannot pay for, as a rejected report or a venue error', async () => {
      const cash = (await v.venue.balances()).cash;
      const req = buy(new Dec(cash).times(10).toFixed());
      let report: OrderReport | undefined;
      try {
        report = await v.venue.submit(req);
      } catch (err) {
        expect((err as { category?: string }).category).to.be.oneOf(['venue_rejected', 'invariant']);
        return;
      }
      const final = isTerminal(report) ? report : await settle(v.venue, req.clientOrderId);
      expect(final.status).to.equal('rejected');
      expect(final.filledQuantity).to.equal('0');
    });

    it('cancelling an unknown order answers undefined', async () => {
      expect(await v.venue.cancel(clientId())).to.equal(undefined);
    });

    it('through the router: executes exactly once even when asked twice', async () => {
      const router = new ExecutionRouter(v.venue, { pollIntervalMs: 5, fillTimeoutMs: 5000, fetchAttempts: 3 });
      const req = buy();
      const before = await v.ordersSeen();
      const a = await router.execute(req);
      const b = await router.execute(req);
      expect(a.placed).to.equal(true);
      expect(b.placed).to.equal(false);
      expect(b.order.venueOrderId).to.equal(a.order.venueOrderId);
      expect(await v.ordersSeen()).to.equal(before + 1);
      expect(isPositive(a.fill?.quantity), `fill ${a.fill?.quantity}`).to.equal(true);
    });
  });
}
