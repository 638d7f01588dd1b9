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

/** The portfolio with every reservation applied as if filled at its reference price. */
export function withReservations(view: PortfolioView, reservations: Reservation[]): PortfolioView {
  if (reservations.length === 0) return view;
  const positions = view.positions.map((p) => ({ ...p }));
  let cash = new Decimal(view.cash);
  for (const r of reservations) {
    if (!(r.notional > 0) || !(r.price > 0)) continue;
    const held = positions.find((p) => p.symbol === r.symbol);
    const quantity = new Decimal(r.notional).div(r.price);
    if (r.side === 'buy') {
      cash = cash.minus(r.notional);
      if (held) {
        held.quantity = quantity.plus(held.quantity).toNumber();
        held.marketValue = new Decimal(held.marketValue).plus(r.notional).toNumber();
      } else {
        positions.push({ symbol: r.symbol, quantity: quantity.toNumber(), avgPrice: r.price, marketValue: r.notional });
      }
    } else if (held) {
      cash = cash.plus(r.notional);
      held.quantity = Decimal.max(0, new Decimal(held.quantity).minus(quantity)).toNumber();
      held.marketValue = Decimal.max(0, new Decimal(held.marketValue).minus(r.notional)).toNumber();
    }
  }
  return { ...view, cash: cash.toNumber(), positions: positions.filter((p) => p.quantity > 0).sort((a, b) => a.symbol.localeCompare(b.symbol)) };
}

/**
 * The one owner of reservations. A proposal may hold one only while it is live: the
 * orchestrator admits it when it becomes live and closes it when it finishes, is forgotten or
 * loses its actor, so no path (a cancel during the re-check, a failed write, a crash) can leave
 * capacity held; a re-check that completes after its proposal was closed reserves nothing.
 */
export class ReservationBook {
  private readonly live = new Set<string>();
  private readonly held = new Map<string, Reservation>();

  /** The proposal is live: it may reserve. */
  admit(proposalId: string): void {
    this.live.add(proposalId);
  }

  /** Holds `reservation` for the proposal (the first one stands); false when it is not live. */
  reserve(proposalId: string, reservation: Reservation): boolean {
    if (!this.live.has(proposalId)) return false;
    if (!this.held.has(proposalId)) this.held.set(proposalId, reservation);
    return true;
  }

  /** Gives back what the proposal holds; it stays live (its next re-check may reserve again). */
  release(proposalId: string): void {
    this.held.delete(proposalId);
  }

  /** The proposal is no longer live: what it holds is given back and it cannot reserve again. */
  close(proposalId: string): void {
    this.held.delete(proposalId);
    this.live.delete(proposalId);
  }

  /** Reservations of every proposal but `proposalId`. */
  others(proposalId: string): Reservation[] {
    return [...this.held.entries()].filter(([id]) => id !== proposalId).map(([, r]) => r);
  }

  /** Proposals holding a reservation now. */
  get size(): number {
    return this.held.size;
  }
}
