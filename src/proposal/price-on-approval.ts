/**
 * What approving does to a proposal's price, as the re-check at approval applies it: an entry
 * needs a fresh quote within MAX_PRICE_DRIFT_PCT of the proposal's price, and without market data
 * its price is accepted only until it is MARKET_DATA_MAX_AGE_SECONDS old; an exit or a
 * liquidation goes out at the fresh market price however far it moved. The Telegram card and the
 * console both show this.
 */
import type { ProposalView } from './view';

/** MARKET_DATA_MAX_AGE_SECONDS and MAX_PRICE_DRIFT_PCT. */
export interface PriceRule {
  maxAgeSeconds: number;
  maxDriftPct: number;
}

export type PriceOnApproval =
  | { kind: 'exit_at_market' }
  | { kind: 'entry_checked'; maxDriftPct: number; standsUntil: string };

export function priceOnApproval(view: Pick<ProposalView, 'side' | 'createdAt'>, rule: PriceRule): PriceOnApproval {
  if (view.side === 'sell') return { kind: 'exit_at_market' };
  return { kind: 'entry_checked', maxDriftPct: rule.maxDriftPct, standsUntil: new Date(Date.parse(view.createdAt) + rule.maxAgeSeconds * 1000).toISOString() };
}
