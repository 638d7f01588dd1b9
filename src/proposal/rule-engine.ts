/**
 * Signal + market/portfolio context → a proposal draft, or a reasoned "no proposal". Pure: the
 * caller supplies the context (quote, candles, portfolio), the time and the settings; nothing
 * here reads a clock, a file or the network. A business "no" is data, never a throw; only
 * corrupt input (a NaN price) throws, as an invariant violation.
 *
 * The engine only proposes: the risk policy caps or blocks what it proposes afterwards.
 */
import type { Candle } from '../context/market-snapshot';
import type { ProposalDraft } from '../../machines/proposal.machine';
import Decimal from 'decimal.js';
import { InvariantError } from '../errors';
import { Dec, amount, isPositive, toDec } from '../amounts';
import { atr, rsi, sma } from './indicators';
import type { Rules } from './rules-config';
import type { PortfolioView, Reason, Side, Signal } from './types';

/** A market quote as the engine sees it. */
export interface QuoteView {
  price: number;
  /** Time of the price, ISO 8601. */
  at: string;
  source: 'exchange' | 'replay';
  /** Base-currency volume of the last 24 hours, when known. */
  volume24h?: number;
}

/** Everything the engine decides from; `src/context/builder.ts` assembles it. */
export interface SignalContext {
  signal: Signal;
  /** The current quote, or null when it could not be had (then `marketError` says why). */
  market: QuoteView | null;
  marketError: string | null;
  /** Recent candles, oldest first (empty when they could not be had; `candlesError` says why). */
  candles: Candle[];
  candlesError: string | null;
  portfolio: PortfolioView;
  /** Epoch ms. */
  now: number;
}

/** The engine's settings: the rules file plus the variables it depends on. */
export interface EngineSettings {
  rules: Rules;
  quoteCurrency: string;
  approvalTimeoutSeconds: number;
  /** MARKET_DATA_ON_FAILURE: `mark` proposes at the signal's price and says so; `drop` does not propose. */
  onMarketFailure: 'mark' | 'drop';
}

/** Codes of a reasoned "no proposal". */
export type NoProposalCode =
  | 'no_position'
  | 'duplicate_position'
  | 'data_too_old'
  | 'no_price'
  | 'market_data_unavailable'
  | 'size_zero'
  | 'low_confidence';

export type ConfirmationName = 'trend' | 'rsi' | 'volume';

/** The result of one enabled confirmation; its reason is also in the draft's reasons. */
export interface ConfirmationResult {
  name: ConfirmationName;
  status: 'agrees' | 'disagrees' | 'unavailable';
  reason: Reason;
}

export type RuleOutcome =
  | { kind: 'proposal'; draft: Omit<ProposalDraft, 'id'>; confirmations: ConfirmationResult[] }
  | { kind: 'none'; code: NoProposalCode; reason: string };

/** A reasoned "no proposal". */
export type NoProposal = Extract<RuleOutcome, { kind: 'none' }>;

/** Reason codes of confirmations that support a proposal on `side`. */
const SUPPORTING: Record<Side, ReadonlySet<string>> = {
  buy: new Set(['trend_up', 'rsi_in_band', 'volume_high']),
  sell: new Set(['trend_down', 'rsi_in_band', 'volume_high']),
};

/** Whether a reason code is a confirmation that supports a proposal on `side`. */
export function isSupportingReason(code: string, side: Side): boolean {
  return SUPPORTING[side].has(code);
}

/**
 * How many recent candles the rules want: enough for every enabled confirmation and for ATR
 * sizing. RSI asks for four periods because Wilder's smoothing needs a warm-up before its value
 * settles; with fewer (but at least period + 1) candles it is still computed.
 */
export function requiredCandles(rules: Rules): number {
  const c = rules.confirmations;
  const wants = [0];
  if (c.trend.enabled) wants.push(c.trend.period);
  if (c.rsi.enabled) wants.push(c.rsi.period * 4 + 1);
  if (c.volume.enabled) wants.push(c.volume.period + 1);
  if (rules.sizing.mode === 'atr') wants.push(rules.sizing.atrPeriod + 1);
  return Math.max(...wants);
}

/** Makes the draft of a proposal from a signal and its context, or says why not. */
export function evaluateSignal(ctx: SignalContext, settings: EngineSettings): RuleOutcome {
  const { signal, market, portfolio, now } = ctx;
  const { rules, quoteCurrency: ccy } = settings;
  const side: Side = signal.action === 'buy' ? 'buy' : 'sell';
  const base = signal.symbol.split('/')[0] ?? signal.symbol;
  assertPrice(market?.price, 'market price');
  assertPrice(signal.price, 'signal price');

  // Dust (below the venue's minimum) is not a position: it can be neither sold nor added to as one.
  const held = portfolio.positions.find((p) => p.symbol === signal.symbol && isPositive(p.quantity));
  if (side === 'sell' && !held) {
    const dust = portfolio.dust.find((d) => d.symbol === signal.symbol);
    const why = dust ? `only dust of ${fmtExact(dust.quantity)} ${base} is held, below the venue's minimum order` : 'no position is held';
    return none('no_position', `${signal.action} signal for ${signal.symbol}, but ${why}`);
  }
  if (side === 'buy' && held && !rules.allowAddToPosition) {
    return none('duplicate_position', `buy signal for ${signal.symbol}, but a position of ${fmtExact(held.quantity)} ${base} is already held (allowAddToPosition is off)`);
  }

  const reasons: Reason[] = [];
  const origin = [signal.source, signal.strategy, signal.timeframe].filter(Boolean).join(', ');
  reasons.push({ code: 'signal', message: `${signal.action} signal for ${signal.symbol} (${origin})` });

  // Price: the current quote, checked for age; or, when market data failed, the signal's own
  // price if MARKET_DATA_ON_FAILURE=mark (the card then says so), never a stale price silently.
  let price: number;
  let priceSource: 'signal' | 'market';
  if (market) {
    // A replay quote is historical by nature (the last candle of a file), so its age says
    // nothing about freshness; only exchange quotes are held to maxDataAgeSeconds.
    if (market.source !== 'replay') {
      const at = Date.parse(market.at);
      const ageSeconds = (now - at) / 1000;
      if (Number.isNaN(at)) {
        return none('data_too_old', `the ${signal.symbol} quote has no readable time ("${market.at}")`);
      }
      if (ageSeconds > rules.maxDataAgeSeconds) {
        return none('data_too_old', `the ${signal.symbol} quote is ${Math.round(ageSeconds)} s old (from ${market.at}; limit ${rules.maxDataAgeSeconds} s)`);
      }
    }
    price = market.price;
    priceSource = 'market';
    const vsSignal = signal.price !== undefined ? `; the signal said ${fmt(signal.price)}` : '';
    const volume = market.volume24h !== undefined ? `, 24h volume ${fmt(market.volume24h)} ${base}` : '';
    reasons.push({ code: 'market_price', message: `${signal.symbol} at ${fmt(market.price)} ${ccy} (${market.source}, ${market.at}${vsSignal}${volume})` });
  } else {
    const why = ctx.marketError ?? 'unavailable';
    if (settings.onMarketFailure === 'drop') {
      return none('market_data_unavailable', `no market data for ${signal.symbol} (${why}); MARKET_DATA_ON_FAILURE=drop`);
    }
    if (signal.price === undefined) {
      return none('no_price', `no price for ${signal.symbol}: the signal has none and market data failed (${why})`);
    }
    price = signal.price;
    priceSource = 'signal';
    reasons.push({ code: 'market_data_missing', message: `no fresh market data (${why}); using the signal's price ${fmt(signal.price)} ${ccy}` });
  }

  const confirmations = confirm(side, ctx.candles, rules);
  for (const c of confirmations) reasons.push(c.reason);
  const agreeing = confirmations.filter((c) => c.status === 'agrees');
  const against = confirmations.filter((c) => c.status !== 'agrees').map((c) => c.name);
  const fromConfirmations = confirmations.length === 0 || ctx.candles.length === 0 ? 0 : agreeing.length / confirmations.length;
  let summary: string;
  if (confirmations.length === 0) summary = 'no confirmation is enabled';
  else if (ctx.candles.length === 0) summary = `no candles (${ctx.candlesError ?? 'none returned'}), so no confirmation could be checked`;
  else summary = `${agreeing.length} of ${confirmations.length} confirmations agree with the ${side}${agreeing.length > 0 ? ` (${agreeing.map((c) => c.name).join(', ')})` : ''}${against.length > 0 ? `; not: ${against.join(', ')}` : ''}`;

  let confidence: number;
  if (signal.confidence !== undefined) {
    confidence = signal.confidence;
    reasons.push({ code: 'confidence_from_signal', message: `confidence ${fmtConfidence(confidence)} from the signal (${summary})` });
  } else {
    confidence = fromConfirmations;
    reasons.push({ code: 'confidence_from_confirmations', message: `confidence ${fmtConfidence(confidence)}: ${summary}` });
  }
  if (side === 'buy' && rules.minConfidence !== undefined && confidence < rules.minConfidence) {
    // Only entries: an exit reduces risk, so a low confidence never keeps a position open.
    return none('low_confidence', `confidence ${fmtConfidence(confidence)} is below the rules' minConfidence ${rules.minConfidence} (${summary})`);
  }

  let notional: number;
  let quantity: string | null = null;
  if (side === 'buy') {
    const sized = sizeEntry(signal, price, ctx, rules, ccy, base);
    if (sized.kind === 'none') return sized;
    notional = sized.notional;
    reasons.push(sized.reason);
  } else {
    // Exact: a whole-position exit sells what is held to the last place, never a rounded number.
    const heldQuantity = toDec('held quantity', held!.quantity);
    let exact = heldQuantity;
    if (signal.size !== undefined && new Dec(signal.size).lt(heldQuantity.times(price))) {
      exact = new Dec(signal.size).div(price).toDecimalPlaces(PARTIAL_EXIT_DECIMALS, Decimal.ROUND_DOWN);
      reasons.push({ code: 'partial_exit', message: `sell ${fmt(signal.size)} ${ccy} of the position (${fmtExact(amount(exact))} of ${fmtExact(held!.quantity)} ${base})` });
    } else {
      reasons.push({ code: 'full_exit', message: `sell the whole position of ${fmtExact(held!.quantity)} ${base}` });
    }
    quantity = amount(exact);
    notional = exact.times(price).toNumber();
  }
  if (!(notional > 0)) {
    return none('size_zero', `the proposal size is ${fmt(notional)} ${ccy}`);
  }

  const draft: Omit<ProposalDraft, 'id'> = {
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
    explanation: '',
    createdAt: now,
    deadline: now + settings.approvalTimeoutSeconds * 1000,
  };
  draft.explanation = templateExplanation(draft, ccy);
  return { kind: 'proposal', draft, confirmations };
}

/** The fields of a draft an explanation is made from. */
export type ExplainableDraft = Pick<ProposalDraft, 'symbol' | 'side' | 'notional' | 'quantity' | 'price' | 'priceSource' | 'confidence' | 'reasons'>;

/**
 * The deterministic explanation: one or two sentences with side, symbol, size, price,
 * confidence and the top supporting reasons (at most two).
 */
export function templateExplanation(draft: ExplainableDraft, quoteCurrency: string): string {
  const base = draft.symbol.split('/')[0] ?? draft.symbol;
  const what = draft.side === 'buy'
    ? `Buy ${draft.symbol} for about ${fmt(draft.notional)} ${quoteCurrency}`
    : `Sell ${draft.quantity !== null ? `${fmtExact(draft.quantity)} ${base}` : draft.symbol} (about ${fmt(draft.notional)} ${quoteCurrency})`;
  const at = draft.priceSource === 'market'
    ? `at ${fmt(draft.price)} ${quoteCurrency}`
    : `at ${fmt(draft.price)} ${quoteCurrency}, the signal's price because market data was missing`;
  const first = `${what} ${at}, confidence ${fmtConfidence(draft.confidence)}.`;
  const top = draft.reasons.filter((r) => isSupportingReason(r.code, draft.side)).slice(0, 2).map((r) => r.message);
  return top.length > 0 ? `${first} Supported by: ${top.join('; ')}.` : first;
}

// ---------------------------------------------------------------------------------------------

function none(code: NoProposalCode, reason: string): NoProposal {
  return { kind: 'none', code, reason };
}

function assertPrice(price: number | undefined, what: string): void {
  if (price !== undefined && !(Number.isFinite(price) && price > 0)) {
    throw new InvariantError('corrupt_price', `the ${what} is ${price}; refusing to propose on corrupt data`, { price });
  }
}

/** A partial exit's quantity is cut (down) to this many places; venues round further to their own step. */
const PARTIAL_EXIT_DECIMALS = 12;

type Sized = { kind: 'size'; notional: number; reason: Reason } | NoProposal;

function sizeEntry(signal: Signal, price: number, ctx: SignalContext, rules: Rules, ccy: string, base: string): Sized {
  const s = rules.sizing;
  const equity = ctx.portfolio.equity;
  if (signal.size !== undefined) {
    return { kind: 'size', notional: signal.size, reason: { code: 'size_from_signal', message: `size ${fmt(signal.size)} ${ccy} from the signal` } };
  }
  const fixed = (prefix: string): Sized => {
    const notional = Math.floor((equity * s.defaultPositionPct) / 100);
    return { kind: 'size', notional, reason: { code: 'size_fixed_pct', message: `${prefix}size ${s.defaultPositionPct}% of equity ${fmt(equity)} = ${fmt(notional)} ${ccy}` } };
  };
  if (s.mode === 'signal') {
    return none('size_zero', `sizing mode "signal" needs a size in the signal, and this ${signal.symbol} signal gives none`);
  }
  if (s.mode === 'fixed_pct') return fixed('');
  const range = atr(ctx.candles, s.atrPeriod);
  if (range === null || !(range > 0)) {
    const why = range === null ? `needs ${s.atrPeriod + 1} candles, have ${ctx.candles.length}` : 'the range is 0';
    return fixed(`ATR${s.atrPeriod} unavailable (${why}); `);
  }
  // Volatility sizing: a move of one ATR against the position should cost riskPctPerAtr % of equity.
  const risk = (equity * s.riskPctPerAtr) / 100;
  const qty = risk / range;
  const raw = qty * price;
  let notional = raw;
  let clamp = '';
  if (s.maxNotional !== null && notional > s.maxNotional) {
    notional = s.maxNotional;
    clamp = `, capped at maxNotional ${fmt(s.maxNotional)}`;
  }
  if (notional < s.minNotional) {
    notional = s.minNotional;
    clamp = `, raised to minNotional ${fmt(s.minNotional)}`;
  }
  notional = Math.floor(notional);
  return {
    kind: 'size',
    notional,
    reason: {
      code: 'size_atr',
      message: `ATR${s.atrPeriod} ${fmt(range)} (${fmt((range / price) * 100)}% of price); risk ${s.riskPctPerAtr}% of equity ${fmt(equity)} = ${fmt(risk)} ${ccy} per ATR → ${fmt(qty)} ${base} = ${fmt(raw)} ${ccy}${clamp}: ${fmt(notional)} ${ccy}`,
    },
  };
}

function confirm(side: Side, candles: readonly Candle[], rules: Rules): ConfirmationResult[] {
  const c = rules.confirmations;
  const closes = candles.map((k) => k.close);
  const out: ConfirmationResult[] = [];
  const have = `have ${candles.length}`;

  if (c.trend.enabled) {
    const avg = sma(closes, c.trend.period);
    const close = closes[closes.length - 1];
    if (avg === null || close === undefined) {
      out.push({ name: 'trend', status: 'unavailable', reason: { code: 'trend_unavailable', message: `trend: SMA${c.trend.period} needs ${c.trend.period} candles, ${have}` } });
    } else {
      const code = close > avg ? 'trend_up' : close < avg ? 'trend_down' : 'trend_flat';
      const rel = close > avg ? 'above' : close < avg ? 'below' : 'at';
      out.push({ name: 'trend', status: isSupportingReason(code, side) ? 'agrees' : 'disagrees', reason: { code, message: `close ${fmt(close)} ${rel} SMA${c.trend.period} ${fmt(avg)}` } });
    }
  }

  if (c.rsi.enabled) {
    const value = rsi(closes, c.rsi.period);
    const b = side === 'buy' ? c.rsi.buyBand : c.rsi.sellBand;
    if (value === null) {
      out.push({ name: 'rsi', status: 'unavailable', reason: { code: 'rsi_unavailable', message: `RSI${c.rsi.period} needs ${c.rsi.period + 1} candles, ${have}` } });
    } else {
      const inBand = value >= b.min && value <= b.max;
      const note = inBand ? 'within' : value > b.max ? 'above' : 'below';
      out.push({
        name: 'rsi',
        status: inBand ? 'agrees' : 'disagrees',
        reason: { code: inBand ? 'rsi_in_band' : 'rsi_out_of_band', message: `RSI${c.rsi.period} ${value.toFixed(1)} ${note} the ${side} band ${b.min}–${b.max}` },
      });
    }
  }

  if (c.volume.enabled) {
    const n = c.volume.period;
    if (candles.length < n + 1) {
      out.push({ name: 'volume', status: 'unavailable', reason: { code: 'volume_unavailable', message: `volume: the ${n}-candle average needs ${n + 1} candles, ${have}` } });
    } else {
      // The last candle against the average of the n candles before it.
      const last = candles[candles.length - 1]!.volume;
      const avg = sma(candles.slice(candles.length - 1 - n, candles.length - 1).map((k) => k.volume), n)!;
      const threshold = avg * c.volume.factor;
      const high = avg > 0 ? last >= threshold : last > 0;
      out.push({
        name: 'volume',
        status: high ? 'agrees' : 'disagrees',
        reason: { code: high ? 'volume_high' : 'volume_low', message: `last volume ${fmt(last)} ${high ? '≥' : '<'} ${c.volume.factor} × ${n}-candle average ${fmt(avg)} (${fmt(threshold)})` },
      });
    }
  }
  return out;
}

/** 101000000 → "101,000,000"; 1.5 → "1.5"; 0.0123456 → "0.01235". For messages only. */
function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  let text: string;
  if (abs >= 1000) text = n.toFixed(0);
  else if (abs >= 1) text = n.toFixed(2);
  else if (abs === 0) return '0';
  else text = n.toPrecision(4);
  if (text.includes('e')) return text;
  if (text.includes('.')) text = text.replace(/0+$/, '').replace(/\.$/, '');
  const [int, frac] = text.split('.');
  const grouped = int!.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return frac !== undefined ? `${grouped}.${frac}` : grouped;
}

/** An exact quantity in a message: every digit kept, thousands grouped. */
function fmtExact(quantity: string): string {
  const [int, frac] = quantity.split('.');
  const grouped = (int ?? '').replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return frac !== undefined ? `${grouped}.${frac}` : grouped;
}

function fmtConfidence(c: number): string {
  return String(Math.round(c * 100) / 100);
}
