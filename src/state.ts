/**
 * Runtime state: paused, the global trading state (active | reducing | halted), the mode and
 * live arming. Persisted, so a pause or a breaker survives a restart; a change is announced
 * (and its promise resolves) only once it is durable, and one that cannot be written is rolled back.
 */
import path from 'node:path';
import type { TradingMode, TradingState } from './proposal/types';
import type { BreakerWaiver } from './risk/policy';
import { JsonDocument } from './persistence/json-document';
import type { StorageIo } from './persistence/storage-io';

export interface RuntimeStateData {
  version: 1;
  paused: boolean;
  tradingState: TradingState;
  /** Why the trading state is what it is (breaker code, operator). */
  tradingStateReason: string | null;
  armedUntil: string | null;
  armedBy: string | null;
  /** A liquidation that stands until every position is closed (retried by the risk clock); absent in older files. */
  liquidation?: LiquidationOrder | null;
  /** What the last operator who cleared a breaker accepted (the breakers do not trip again for it). */
  breakerWaiver?: (BreakerWaiver & { by: string; at: string }) | null;
  updatedAt: string | null;
}

/** Who ordered a liquidation of everything, why and when. */
export interface LiquidationOrder {
  by: string;
  reason: string;
  since: string;
}

export interface RuntimeStateView {
  mode: TradingMode;
  tradingState: TradingState;
  tradingStateReason: string | null;
  paused: boolean;
  armedUntil: string | null;
  liquidation: LiquidationOrder | null;
}

export type StateChange =
  | { kind: 'paused'; by: string }
  | { kind: 'resumed'; by: string }
  | { kind: 'trading_state'; from: TradingState; to: TradingState; by: string; reason: string }
  | { kind: 'armed'; by: string; until: string }
  | { kind: 'disarmed'; by: string }
  | { kind: 'liquidation_ordered'; by: string; reason: string }
  | { kind: 'liquidation_done'; by: string; reason: string };

const INITIAL: RuntimeStateData = {
  version: 1, paused: false, tradingState: 'active', tradingStateReason: null, armedUntil: null, armedBy: null, updatedAt: null,
};

export class RuntimeState {
  private readonly listeners: Array<(change: StateChange) => void> = [];

  private constructor(private readonly doc: JsonDocument<RuntimeStateData>, readonly mode: TradingMode, private readonly now: () => number) {}

  static async open(io: StorageIo, dataDir: string, mode: TradingMode, now: () => number = Date.now): Promise<RuntimeState> {
    const doc = await JsonDocument.open<RuntimeStateData>(io, path.join(dataDir, 'state.json'), { ...INITIAL });
    return new RuntimeState(doc, mode, now);
  }

  onChange(listener: (change: StateChange) => void): void {
    this.listeners.push(listener);
  }

  view(): RuntimeStateView {
    const d = this.doc.data;
    return { mode: this.mode, tradingState: d.tradingState, tradingStateReason: d.tradingStateReason, paused: d.paused, armedUntil: this.isArmed() ? d.armedUntil : null, liquidation: d.liquidation ?? null };
  }

  /** The liquidation that stands, if any. */
  get liquidation(): LiquidationOrder | null {
    return this.doc.data.liquidation ?? null;
  }

  /** Orders a liquidation of everything; it stands (and failed symbols are retried) until nothing is held. */
  async orderLiquidation(by: string, reason: string): Promise<boolean> {
    if (this.doc.data.liquidation) return false;
    const since = new Date(this.now()).toISOString();
    await this.change((d) => { d.liquidation = { by, reason, since }; }, { kind: 'liquidation_ordered', by, reason });
    return true;
  }

  /** The loss an operator accepted when clearing a breaker (null: none). */
  get breakerWaiver(): BreakerWaiver | null {
    return this.doc.data.breakerWaiver ?? null;
  }

  /**
   * Sets the trading state back to active by an operator's decision, recording what was accepted
   * (the breakers trip again only if it gets worse) and ending a standing liquidation.
   */
  async clearBreakers(by: string, reason: string, accepted: BreakerWaiver): Promise<{ changed: boolean; liquidationEnded: boolean }> {
    const from = this.doc.data.tradingState;
    const liquidationEnded = this.doc.data.liquidation != null;
    const at = new Date(this.now()).toISOString();
    const changes: StateChange[] = [];
    if (from !== 'active') changes.push({ kind: 'trading_state', from, to: 'active', by, reason });
    if (liquidationEnded) changes.push({ kind: 'liquidation_done', by, reason });
    await this.change((d) => {
      d.tradingState = 'active';
      d.tradingStateReason = reason;
      d.liquidation = null;
      d.breakerWaiver = { ...accepted, by, at };
    }, ...changes);
    return { changed: from !== 'active', liquidationEnded };
  }

  /** Ends the standing liquidation: nothing is held any more, or an operator cleared the breaker. */
  async endLiquidation(by: string, reason: string): Promise<boolean> {
    if (!this.doc.data.liquidation) return false;
    await this.change((d) => { d.liquidation = null; }, { kind: 'liquidation_done', by, reason });
    return true;
  }

  get paused(): boolean {
    return this.doc.data.paused;
  }

  get tradingState(): TradingState {
    return this.doc.data.tradingState;
  }

  /** Whether live orders may reach the venue's real order book now. */
  isArmed(): boolean {
    const until = this.doc.data.armedUntil;
    return until !== null && Date.parse(until) > this.now();
  }

  async pause(by: string): Promise<boolean> {
    if (this.doc.data.paused) return false;
    await this.change((d) => { d.paused = true; }, { kind: 'paused', by });
    return true;
  }

  async resume(by: string): Promise<boolean> {
    if (!this.doc.data.paused) return false;
    await this.change((d) => { d.paused = false; }, { kind: 'resumed', by });
    return true;
  }

  /** Moves the trading state; a breaker never relaxes it (reducing stays reducing, halted stays halted). */
  async setTradingState(to: TradingState, by: string, reason: string, opts: { relax?: boolean } = {}): Promise<boolean> {
    const from = this.doc.data.tradingState;
    const rank: Record<TradingState, number> = { active: 0, reducing: 1, halted: 2 };
    if (from === to || (!opts.relax && rank[to] < rank[from])) return false;
    await this.change((d) => {
      d.tradingState = to;
      d.tradingStateReason = reason;
    }, { kind: 'trading_state', from, to, by, reason });
    return true;
  }

  async arm(by: string, minutes: number): Promise<string> {
    const until = new Date(this.now() + minutes * 60_000).toISOString();
    await this.change((d) => { d.armedUntil = until; d.armedBy = by; }, { kind: 'armed', by, until });
    return until;
  }

  async disarm(by: string): Promise<void> {
    await this.change((d) => { d.armedUntil = null; d.armedBy = null; }, { kind: 'disarmed', by });
  }

  flush(): Promise<void> {
    return this.doc.flush();
  }

  private async change(mutate: (d: RuntimeStateData) => void, ...changes: StateChange[]): Promise<void> {
    await this.doc.update((d) => {
      mutate(d);
      d.updatedAt = new Date(this.now()).toISOString();
    });
    for (const change of changes) for (const l of this.listeners) l(change);
  }
}
