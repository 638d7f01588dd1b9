/**
 * Orders that passed their approval re-check but have not been booked yet still use risk
 * capacity: the policies see the portfolio as if they had filled, so two proposals checked at
 * the same moment cannot together break a limit that each alone respects. Pure.
 */
import Decimal from 'decimal.js';
import type { PortfolioView, Side } from '../proposal/types';

export interface Reservation {
  symbol: string;
  side: Side;
  /** Quote-currency notional of the order. */
  notional: number;
  /** Reference price, to express a new position's quantity. */
  price: number;
}

/** What the reservations of one symbol add up to. */
interface SymbolTotals {
  buyNotional: Decimal;
  buyQuantity: Decimal;
  sellNotional: Decimal;
  sellQuantity: Decimal;
  /** Reference price of the latest buy (a new position's average price). */
  lastBuyPrice: number;
  count: number;
}

const ZERO = new Decimal(0);

function usable(r: Reservation): boolean {
  return r.notional > 0 && r.price > 0 && Number.isFinite(r.notional) && Number.isFinite(r.price);
}

/**
 * The one owner of reservations. A proposal may hold one only while it is live: the
 * orchestrator admits it when it becomes live and closes it when it finishes, is forgotten or
 * loses its actor, so no path (a cancel during the re-check, a failed write, a crash) can leave
 * capacity held; a re-check that completes after its proposal was closed reserves nothing.
 * Totals are kept per symbol, so applying them costs what the reserved symbols do, not what the
 * number of reservations does.
 */
export class ReservationBook {
  private readonly live = new Set<string>();
  private readonly held = new Map<string, Reservation>();
  private readonly totals = new Map<string, SymbolTotals>();

  /** The proposal is live: it may reserve. */
  admit(proposalId: string): void {
    this.live.add(proposalId);
  }

  /** Holds `reservation` for the proposal (the first one stands); false when it is not live. */
  reserve(proposalId: string, reservation: Reservation): boolean {
    if (!this.live.has(proposalId)) return false;
    if (this.held.has(proposalId)) return true;
    this.held.set(proposalId, reservation);
    this.count(reservation, 1);
    return true;
  }

  /** Gives back what the proposal holds; it stays live (its next re-check may reserve again). */
  release(proposalId: string): void {
    const r = this.held.get(proposalId);
    if (!r) return;
    this.held.delete(proposalId);
    this.count(r, -1);
  }

  /** The proposal is no longer live: what it holds is given back and it cannot reserve again. */
  close(proposalId: string): void {
    this.release(proposalId);
    this.live.delete(proposalId);
  }

  /** Proposals holding a reservation now. */
  get size(): number {
    return this.held.size;
  }

  /** The portfolio as if every reservation but `proposalId`'s had filled at its reference price. */
  applyTo(view: PortfolioView, proposalId: string): PortfolioView {
    if (this.totals.size === 0) return view;
    const own = this.held.get(proposalId);
    const positions = view.positions.map((p) => ({ ...p }));
    let cash = new Decimal(view.cash);
    for (const [symbol, t] of this.totals) {
      const ownHere = own && own.symbol === symbol && usable(own) ? own : undefined;
      const mine = (side: Side) => (ownHere?.side === side ? { n: new Decimal(ownHere.notional), q: new Decimal(ownHere.notional).div(ownHere.price) } : { n: ZERO, q: ZERO });
      const buy = mine('buy');
      const sell = mine('sell');
      const buyNotional = t.buyNotional.minus(buy.n);
      const buyQuantity = t.buyQuantity.minus(buy.q);
      const sellNotional = t.sellNotional.minus(sell.n);
      const sellQuantity = t.sellQuantity.minus(sell.q);
      let position = positions.find((p) => p.symbol === symbol);
      if (buyNotional.gt(0)) {
        cash = cash.minus(buyNotional);
        if (position) {
          position.quantity = buyQuantity.plus(position.quantity).toFixed();
          position.marketValue = buyNotional.plus(position.marketValue).toNumber();
        } else {
          position = { symbol, quantity: buyQuantity.toFixed(), avgPrice: t.lastBuyPrice, marketValue: buyNotional.toNumber(), markPrice: t.lastBuyPrice, markedAt: null };
          positions.push(position);
        }
      }
      if (position && sellNotional.gt(0)) {
        cash = cash.plus(sellNotional);
        position.quantity = Decimal.max(0, new Decimal(position.quantity).minus(sellQuantity)).toFixed();
        position.marketValue = Decimal.max(0, new Decimal(position.marketValue).minus(sellNotional)).toNumber();
      }
    }
    // The policies compare these values against number-typed limits; quantities stay exact.
    return { ...view, cash: cash.toNumber(), positions: positions.filter((p) => new Decimal(p.quantity).gt(0)).sort((a, b) => a.symbol.localeCompare(b.symbol)) };
  }

  private count(r: Reservation, sign: 1 | -1): void {
    if (!usable(r)) return;
    const t = this.totals.get(r.symbol) ?? { buyNotional: ZERO, buyQuantity: ZERO, sellNotional: ZERO, sellQuantity: ZERO, lastBuyPrice: r.price, count: 0 };
    const notional = new Decimal(r.notional).mul(sign);
    const quantity = new Decimal(r.notional).div(r.price).mul(sign);
    if (r.side === 'buy') {
      t.buyNotional = t.buyNotional.plus(notional);
      t.buyQuantity = t.buyQuantity.plus(quantity);
      if (sign > 0) t.lastBuyPrice = r.price;
    } else {
      t.sellNotional = t.sellNotional.plus(notional);
      t.sellQuantity = t.sellQuantity.plus(quantity);
    }
    t.count += sign;
    if (t.count === 0) this.totals.delete(r.symbol);
    else this.totals.set(r.symbol, t);
  }
}
