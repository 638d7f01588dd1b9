/**
 * Signal + market/portfolio context → a proposal draft, or a reasoned "no proposal". Pure: the
 * caller supplies the context, the time and the new id.
 */
import type { PortfolioView, Reason, Signal } from './types';
import type { ProposalDraft } from '../../machines/proposal.machine';

export interface ProposalContextInput {
  signal: Signal;
  /** Current market price, or null when it could not be had. */
  market: { price: number; at: string; source: 'exchange' | 'replay' } | null;
  marketError: string | null;
  portfolio: PortfolioView;
  now: number;
}

export interface RuleSettings {
  /** Default entry size as % of equity when a signal gives no size. */
  defaultPositionPct: number;
  approvalTimeoutSeconds: number;
  quoteCurrency: string;
}

export type RuleOutcome =
  | { kind: 'proposal'; draft: Omit<ProposalDraft, 'id'> }
  | { kind: 'none'; code: string; reason: string };

/** Makes the draft of a proposal from a signal, or says why not. */
export function buildProposal(input: ProposalContextInput, settings: RuleSettings): RuleOutcome {
  const { signal, market, portfolio, now } = input;
  const reasons: Reason[] = [];
  const side = signal.action === 'buy' ? 'buy' : 'sell';

  let price: number;
  let priceSource: 'signal' | 'market';
  if (market) {
    price = market.price;
    priceSource = 'market';
    reasons.push({ code: 'market_price', message: `${signal.symbol} at ${market.price} ${settings.quoteCurrency} (${market.source}, ${market.at})` });
  } else if (signal.price !== undefined) {
    price = signal.price;
    priceSource = 'signal';
    reasons.push({ code: 'market_data_missing', message: `no fresh market data (${input.marketError ?? 'unavailable'}); using the signal's price ${signal.price}` });
  } else {
    return { kind: 'none', code: 'no_price', reason: `no price for ${signal.symbol}: the signal has none and market data failed (${input.marketError ?? 'unavailable'})` };
  }

  const origin = [signal.source, signal.strategy, signal.timeframe].filter(Boolean).join(', ');
  reasons.unshift({ code: 'signal', message: `${signal.action} signal for ${signal.symbol} (${origin})` });

  let notional: number;
  let quantity: number | null = null;
  if (side === 'buy') {
    if (signal.size !== undefined) {
      notional = signal.size;
      reasons.push({ code: 'size_from_signal', message: `size ${signal.size} ${settings.quoteCurrency} from the signal` });
    } else {
      notional = Math.floor((portfolio.equity * settings.defaultPositionPct) / 100);
      reasons.push({ code: 'size_default', message: `size ${settings.defaultPositionPct}% of equity ${Math.round(portfolio.equity)} = ${notional} ${settings.quoteCurrency}` });
    }
  } else {
    const held = portfolio.positions.find((p) => p.symbol === signal.symbol);
    if (!held || held.quantity <= 0) {
      return { kind: 'none', code: 'no_position', reason: `${signal.action} signal for ${signal.symbol}, but no position is held` };
    }
    quantity = held.quantity;
    if (signal.size !== undefined && signal.size < held.quantity * price) {
      quantity = signal.size / price;
      reasons.push({ code: 'partial_exit', message: `sell ${signal.size} ${settings.quoteCurrency} of the position` });
    } else {
      reasons.push({ code: 'full_exit', message: `sell the whole position of ${held.quantity} ${signal.symbol.split('/')[0]}` });
    }
    notional = quantity * price;
  }
  if (!(notional > 0)) {
    return { kind: 'none', code: 'size_zero', reason: `the proposal size is ${notional} ${settings.quoteCurrency}` };
  }

  const confidence = signal.confidence ?? 0;
  if (signal.confidence === undefined) reasons.push({ code: 'confidence_unknown', message: 'the signal gives no confidence; taken as 0' });

  const explanation = `${side === 'buy' ? 'Buy' : 'Sell'} ${signal.symbol} for about ${Math.round(notional)} ${settings.quoteCurrency} at ${price} (${priceSource} price), confidence ${confidence}.`;
  return {
    kind: 'proposal',
    draft: {
      signalId: signal.id,
      symbol: signal.symbol,
      side,
      intent: side,
      notional,
      quantity,
      price,
      priceSource,
      confidence,
      reasons,
      explanation,
      createdAt: now,
      deadline: now + settings.approvalTimeoutSeconds * 1000,
    },
  };
}
