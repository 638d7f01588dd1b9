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

/** `YYYY-MM-DD` encoded in an id, or undefined for a malformed one. */
export function dayOfId(id: string): string | undefined {
  const m = /^[a-z]+-(\d{4})(\d{2})(\d{2})-[0-9a-f]{12}$/.exec(id);
  return m ? `${m[1]}-${m[2]}-${m[3]}` : undefined;
}

/** Whether a string has the shape of one of our ids (route parameters are checked with it). */
export function isWellFormedId(id: string): boolean {
  return dayOfId(id) !== undefined;
}
