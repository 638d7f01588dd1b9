/**
 * Exact amounts. Quantities, fills, orders and the journal carry amounts as decimal text
 * (`"0.00012345"`), never as JS numbers: a number cannot hold 10⁸ units of a coin to its last
 * place, so a whole-position exit would ask for more than is held, or leave dust. Numbers remain
 * for what is only compared against limits or shown (notional targets, percentages, displays).
 */
import Decimal from 'decimal.js';
import { InvariantError } from './errors';

/** Decimal arithmetic with room for 1e15 × 1e-8 products and 20-place quotients. */
export const Dec = Decimal.clone({ precision: 40 });
export type Dec = InstanceType<typeof Dec>;

/** Smallest price or size a trading account can mean (INTERFACES: 1e-8 … 1e15); smaller is refused at the edge. */
export const AMOUNT_MIN = 1e-8;
/** Largest price or size a trading account can mean; larger is refused at the edge. */
export const AMOUNT_MAX = 1e15;

/** An exact amount as plain decimal text (`"12.5"`, `"0.00000001"`): no exponent, no sign unless negative. */
export type Amount = string;

/** Plain decimal notation only: Decimal.js would also read hex, binary and octal strings. */
const DECIMAL_TEXT = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/**
 * Reads an amount (decimal text, or a finite number from an older snapshot or an input);
 * anything else throws `InvariantError invalid_amount` naming `field`.
 */
export function toDec(field: string, value: unknown): Dec {
  if ((typeof value === 'number' && Number.isFinite(value)) || (typeof value === 'string' && DECIMAL_TEXT.test(value))) {
    let d: Dec | undefined;
    try {
      d = new Dec(value);
    } catch {
      d = undefined;
    }
    if (d && d.isFinite()) return d;
  }
  if (value instanceof Decimal && value.isFinite()) return new Dec(value);
  throw new InvariantError('invalid_amount', `${field} must be a finite decimal, got ${JSON.stringify(value) ?? String(value)}`, { field, value });
}

/** Normal notation, unrounded: `1e-8` becomes `"0.00000001"`. */
export function amount(d: Dec | Decimal | number | string): Amount {
  return (d instanceof Decimal ? d : toDec('amount', d)).toFixed();
}

/** An amount as a number, for display and for comparisons against number-typed limits only. */
export function displayNumber(value: Amount | number): number {
  return typeof value === 'number' ? value : Number(value);
}

/** Whether an amount is above zero (an unreadable one is not). */
export function isPositive(value: Amount | number | null | undefined): boolean {
  if (value === null || value === undefined) return false;
  try {
    return toDec('amount', value).gt(0);
  } catch {
    return false;
  }
}
