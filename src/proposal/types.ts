/**
 * Domain types shared by the pure core (machines, policies, portfolio) and the adapters.
 * Everything here is JSON-safe: it is persisted inside actor snapshots and journal lines.
 * Quantities and everything sent to or reported by a venue are exact `Amount`s (decimal text);
 * numbers are kept for targets, limits and values the policies compare.
 */
import type { Amount } from '../amounts';

export type { Amount } from '../amounts';

/** What a signal asks for. `exit` closes a held position. */
export type SignalAction = 'buy' | 'sell' | 'exit';

/** Where a signal came from. */
export type SignalSource = 'tradingview' | 'api' | 'scan' | 'scheduler';

/** Direction of an order at the venue. */
export type Side = 'buy' | 'sell';

/** Why an order exists: an entry, an exit, or a forced liquidation. */
export type OrderIntent = 'buy' | 'sell' | 'liquidate';

/** A decision or observation as data: a stable code plus words for people. */
export interface Reason {
  code: string;
  message: string;
}

/** A normalised signal. `symbol` is canonical `BASE/QUOTE` (e.g. `BTC/KRW`). */
export interface Signal {
  id: string;
  receivedAt: string;
  source: SignalSource;
  symbol: string;
  action: SignalAction;
  price?: number;
  confidence?: number;
  /** Quote-currency notional the signal asks for. */
  size?: number;
  strategy?: string;
  timeframe?: string;
  time?: string;
  /** The sender's own id (dedupe key). */
  externalId?: string;
}

/** A validated signal body: a Signal before it is given an id, a time and a source. */
export type ParsedSignal = Omit<Signal, 'id' | 'receivedAt' | 'source'>;

/** Global trading state (NautilusTrader style). */
export type TradingState = 'active' | 'reducing' | 'halted';

export type TradingMode = 'paper' | 'live';

/** One open position as the policies see it. Values are in the quote currency. */
export interface PositionView {
  symbol: string;
  /** Exactly what is held (a whole-position exit sells this). */
  quantity: Amount;
  avgPrice: number;
  /** quantity × current mark price. */
  marketValue: number;
  /** The mark's price and time (epoch ms; null: never marked, valued at the average price). */
  markPrice: number;
  markedAt: number | null;
}

/** A holding too small to trade (below the venue's minimum): shown, valued, never a position. */
export interface DustView {
  symbol: string;
  quantity: Amount;
  marketValue: number;
}

/** The portfolio as the risk policy sees it, already rolled over to the current trading day. */
export interface PortfolioView {
  cash: number;
  equity: number;
  /** Equity at the start of the current trading day (in TRADING_DAY_TZ). */
  dayStartEquity: number;
  /** equity − dayStartEquity (realised and unrealised). */
  dailyPnl: number;
  realizedPnl: number;
  consecutiveLosses: number;
  tradingDay: string;
  /** Positions that can be traded; dust is listed apart and never counts for limits or rules. */
  positions: PositionView[];
  dust: DustView[];
}

/** Sizes and limits of the risk policy (RISK_* variables). */
export interface RiskLimits {
  maxConsecutiveLosses: number;
  dailyLossLimitPct: number;
  dailyLiquidatePct: number;
  maxPositionPct: number;
  maxOpenPositions: number;
}

/** An order the risk policy is asked about. */
export interface RiskRequest {
  symbol: string;
  side: Side;
  intent: OrderIntent;
  /** Quote-currency notional asked for. */
  notional: number;
}

/**
 * The risk verdict. A business "no" is data, never a throw. `breaker` says that the
 * persisted trading state must move to `reducing`.
 */
export type RiskDecision =
  | { kind: 'allow'; notional: number; reasons: Reason[]; breaker?: 'reducing' }
  | { kind: 'cap'; code: string; reason: string; notional: number; reasons: Reason[]; breaker?: 'reducing' }
  | { kind: 'block'; code: string; reason: string; reasons: Reason[]; breaker?: 'reducing' }
  | { kind: 'liquidate'; code: string; reason: string; reasons: Reason[]; breaker: 'reducing' };

/** Settings of the approval policy (APPROVAL_* variables and the trading mode). */
export interface ApprovalLimits {
  mode: TradingMode;
  minConfidence: number;
  autoMaxNotional: number;
  twoPersonNotional: number;
}

/** What the approval policy demands of a proposal. */
export interface ApprovalRequirement {
  /** Number of distinct people who must approve (0: auto-approve). */
  approvers: number;
  /** Whether an approver may shrink the order (e.g. "Approve 50%"). */
  allowPartial: boolean;
  reasons: Reason[];
}

/** An approval given by one person. */
export interface ApprovalRecord {
  /** The principal: an operator's name, `tg:<user id>`, or `api` for the shared token. */
  by: string;
  at: number;
  sizeFactor: number;
  /** What a shared-token caller said its name was (a label; `by` stays `api`). */
  label?: string;
}

/** Status of an order at a venue, mapped inside each adapter. */
export type OrderStatus = 'open' | 'partially_filled' | 'filled' | 'cancelled' | 'rejected';

/** What the execution router asks a venue to do. */
export interface OrderRequest {
  clientOrderId: string;
  symbol: string;
  side: Side;
  intent: OrderIntent;
  /** Quote-currency notional for buys. */
  notional: Amount;
  /** Base-currency quantity for sells (and liquidations). */
  quantity?: Amount;
  /** Reference price (the snapshot the approval was checked against). */
  price: Amount;
}

/** An order as a venue reports it. */
export interface OrderReport {
  clientOrderId: string;
  venueOrderId: string;
  venue: string;
  symbol: string;
  side: Side;
  status: OrderStatus;
  filledQuantity: Amount;
  /** Average fill price ("0" when nothing filled). */
  avgPrice: Amount;
  /** Fee in the quote currency. */
  fee: Amount;
  submittedAt: string;
  updatedAt: string;
  dryRun?: boolean;
  /**
   * The venue itself only simulated this order (a Freqtrade bot running in its own `dry_run`
   * mode): nothing reached an exchange, whatever the report says it filled.
   */
  simulatedByVenue?: boolean;
  /** The fill's place in the order the venue booked fills, when it numbers them (the paper venue does). */
  fillSequence?: number;
  /** Venue's words when it rejected the order. */
  rejectReason?: string;
}

/** A completed execution as the proposal records it. */
export interface Fill {
  quantity: Amount;
  price: Amount;
  fee: Amount;
  notional: Amount;
  at: string;
}
