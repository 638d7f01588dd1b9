/**
 * Ids that carry their UTC creation day (`p-20261126-…`), so a finished record can be found in
 * the journal's day files without an index that grows with history.
 */
import { randomBytes } from 'node:crypto';

function make(prefix: string, now: number): string {
  const day = new Date(now).toISOString().slice(0, 10).replace(/-/g, '');
  return `${prefix}-${day}-${randomBytes(6).toString('hex')}`;
}

export const newSignalId = (now: number): string => make('sig', now);
export const newProposalId = (now: number): string => make('p', now);

/** `YYYY-MM-DD` encoded in an id, or undefined for a malformed one or a day no calendar has. */
export function dayOfId(id: string): string | undefined {
  const m = /^[a-z]+-(\d{4})(\d{2})(\d{2})-[0-9a-f]{12}$/.exec(id);
  if (!m) return undefined;
  const day = `${m[1]}-${m[2]}-${m[3]}`;
  // `p-00000000-…` and `sig-20261200-…` have the shape but no day: they name nothing.
  const t = Date.parse(`${day}T00:00:00Z`);
  return Number.isNaN(t) || new Date(t).toISOString().slice(0, 10) !== day || t < Date.UTC(2000, 0, 1) ? undefined : day;
}

/** Whether a string has the shape of one of our ids (route parameters are checked with it). */
export function isWellFormedId(id: string): boolean {
  return dayOfId(id) !== undefined;
}
