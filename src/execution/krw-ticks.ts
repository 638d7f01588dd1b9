/**
 * Upbit's KRW-market price ticks (the table in force since 2025-07-31 for prices of 100 KRW and
 * more): a limit price must be a multiple of the tick of its price band, or Upbit refuses the
 * order (`invalid_price_bid|ask`). Pure; used by the Upbit adapter to put limit prices on the tick
 * before anything is sent.
 */
import Decimal from 'decimal.js';
import { Dec } from '../amounts';

/** Lower bound of each price band and its tick, highest band first. */
const KRW_TICKS: ReadonlyArray<readonly [Dec, Dec]> = ([
  ['1000000', '1000'], ['500000', '500'], ['100000', '100'], ['50000', '50'], ['10000', '10'], ['5000', '5'],
  ['100', '1'], ['10', '0.01'], ['1', '0.001'], ['0.1', '0.0001'], ['0.01', '0.00001'], ['0.001', '0.000001'], ['0.0001', '0.0000001'],
] as const).map(([from, tick]) => [new Dec(from), new Dec(tick)] as const);

/** The smallest tick, below every band. */
const SMALLEST_TICK = new Dec('0.00000001');

/** The tick of the band `price` falls in. */
export function krwTickSize(price: Dec): Dec {
  for (const [from, tick] of KRW_TICKS) if (price.gte(from)) return tick;
  return SMALLEST_TICK;
}

/** Whether `price` is a multiple of its tick. */
export function isOnKrwTick(price: Dec): boolean {
  return price.mod(krwTickSize(price)).isZero();
}

/**
 * `price` moved onto its tick in the trader's favour: a buy's limit down (never pay more than
 * approved), a sell's limit up (never sell for less). Band boundaries are multiples of the higher
 * band's tick, so rounding up across a boundary still lands on a tick.
 */
export function roundToKrwTick(price: Dec, side: 'buy' | 'sell'): Dec {
  const tick = krwTickSize(price);
  return price.div(tick).toDecimalPlaces(0, side === 'buy' ? Decimal.ROUND_DOWN : Decimal.ROUND_UP).times(tick);
}
