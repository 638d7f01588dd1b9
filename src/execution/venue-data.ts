/**
 * Reading amounts at the venue adapters' two edges, the same way for every venue: an order's
 * amounts coming in from the router, and the numbers a venue sends back. Neither is ever coerced:
 * a bad one is an `InvariantError`, which stops trading rather than books a guess.
 */
import { toDec, type Dec } from '../amounts';
import { InvariantError } from '../errors';

/** An order's amount, above zero; anything else is `InvariantError invalid_order` (nothing is sent). */
export function positiveOrderAmount(field: string, value: unknown): Dec {
  let d: Dec | undefined;
  try {
    d = toDec(field, value);
  } catch {
    d = undefined;
  }
  if (!d || !d.gt(0)) throw new InvariantError('invalid_order', `invalid order ${field}: ${String(value)}`, { field });
  return d;
}

/** A number `venue` (its display name, e.g. `KIS`) sent, exactly; unreadable is `InvariantError corrupt_venue_data` naming the field. */
export function venueNumber(venue: string, field: string, value: unknown): Dec {
  try {
    return toDec(field, typeof value === 'string' ? value.trim() : value);
  } catch {
    throw new InvariantError('corrupt_venue_data', `${venue} sent ${field} ${JSON.stringify(value)}, not a number`, { venue: venue.toLowerCase(), field });
  }
}
