/**
 * Principals: who decides. Every decision is made by an authenticated principal, never by free
 * text: an operator token's name (OPERATOR_TOKENS), a Telegram user (`tg:<user id>`), or `api`
 * for the shared API_TOKEN (whose callers' `by` is a label only). The two-person rule counts
 * principals. Pure: no I/O.
 */
import { timingSafeEqual, createHash } from 'node:crypto';

/** The principal of the shared API_TOKEN. */
export const SHARED_PRINCIPAL = 'api';

/** Longest `by` (a name or a label). */
export const MAX_LABEL = 64;

/**
 * Characters that show nothing or steer the text: controls, format characters (zero-width
 * space, joiners, bidi marks), private use, unassigned, line and paragraph separators, fillers
 * that render as blanks, and every space but the plain one.
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Zl}\p{Zp}\u115F\u1160\u3164\uFFA0\u2800]|(?! )\p{Zs}/u;

/** An identity in the one form compared: NFKC, trimmed, lower case (`ＡＬＩＣＥ ` is `alice`). */
export function normaliseIdentity(value: string): string {
  return value.normalize('NFKC').trim().toLowerCase();
}

/** Why `value` cannot be a name or a label (1–64 visible characters), or null when it can. */
export function labelProblem(value: string): string | null {
  const text = value.normalize('NFKC').trim();
  if (text.length === 0) return 'must not be empty';
  if ([...text].length > MAX_LABEL) return `must be at most ${MAX_LABEL} characters`;
  if (INVISIBLE.test(text)) return 'must not contain control or invisible characters';
  return null;
}

/** `name:token` pairs of OPERATOR_TOKENS, checked. */
export interface OperatorToken {
  name: string;
  token: string;
}

/**
 * Parses OPERATOR_TOKENS (`alice:<token>,bob:<token>`). Returns the tokens, or the problems
 * (never quoting a token). Names are principals: valid labels, unique after normalisation, and
 * neither `api` nor `tg:…` (those belong to the shared token and to Telegram).
 */
export function parseOperatorTokens(text: string, minTokenLength: number): { tokens: OperatorToken[]; problems: string[] } {
  const tokens: OperatorToken[] = [];
  const problems: string[] = [];
  const names = new Set<string>();
  const seen = new Set<string>();
  const entries = text.split(',').map((e) => e.trim()).filter((e) => e !== '');
  entries.forEach((entry, i) => {
    const at = entry.indexOf(':');
    const where = `entry ${i + 1}`;
    if (at <= 0) {
      problems.push(`${where} must be name:token`);
      return;
    }
    const name = normaliseIdentity(entry.slice(0, at));
    const token = entry.slice(at + 1).trim();
    const bad = labelProblem(name);
    if (bad) problems.push(`${where}: the name ${bad}`);
    else if (name === SHARED_PRINCIPAL || name.startsWith('tg:')) problems.push(`${where}: the name "${name}" is reserved (api is the shared token, tg: names are Telegram users)`);
    else if (names.has(name)) problems.push(`${where}: the name "${name}" is given twice`);
    if (token.length < minTokenLength) problems.push(`${where} (${name || 'no name'}): the token must be at least ${minTokenLength} characters`);
    else if (seen.has(token)) problems.push(`${where} (${name}): the token is the same as another one's`);
    names.add(name);
    seen.add(token);
    tokens.push({ name, token });
  });
  return { tokens, problems };
}

/** Compares secrets of any length in time that does not depend on where they differ. */
export function secretsEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b) && given.length === expected.length;
}

/**
 * The principal a bearer token authenticates: `api` for the shared token, an operator's name for
 * theirs, null for anything else. Every token is compared, so the time does not tell which matched.
 */
export function principalOfToken(given: string, apiToken: string, operators: readonly OperatorToken[]): string | null {
  const candidates = [...(apiToken !== '' ? [{ name: SHARED_PRINCIPAL, token: apiToken }] : []), ...operators];
  const matches = candidates.map((c) => (secretsEqual(given, c.token) ? c.name : null));
  return matches.find((m) => m !== null) ?? null;
}

/** Who decides, as recorded: the principal, and the shared-token caller's label when given. */
export interface Decider {
  principal: string;
  label?: string;
}

/** Why a caller's `by` cannot stand for its principal. */
export type DeciderProblem =
  | { status: 400; field: 'by'; message: string }
  | { status: 403; code: 'identity_mismatch'; message: string };

/**
 * The decider of an HTTP call: a named token's principal is its name, and a `by` other than that
 * name is refused (403 identity_mismatch); the shared token's principal is `api` and its `by` a
 * label, required where `labelRequired` (a decision on a proposal or on the trading state says
 * who took it). A `by` must be a valid label and never `tg:…` (Telegram users act through Telegram).
 */
export function deciderOf(principal: string, by: string | undefined, labelRequired = false): { ok: true; decider: Decider } | { ok: false; problem: DeciderProblem } {
  if (by === undefined && labelRequired && principal === SHARED_PRINCIPAL) {
    return { ok: false, problem: { status: 400, field: 'by', message: 'is required with the shared API_TOKEN: who decides (a named operator token needs none)' } };
  }
  if (by !== undefined) {
    const bad = labelProblem(by);
    if (bad) return { ok: false, problem: { status: 400, field: 'by', message: bad } };
    if (normaliseIdentity(by).startsWith('tg:')) return { ok: false, problem: { status: 400, field: 'by', message: 'must not start with "tg:" (reserved for Telegram users)' } };
  }
  if (principal === SHARED_PRINCIPAL) {
    return { ok: true, decider: by === undefined ? { principal } : { principal, label: by.normalize('NFKC').trim() } };
  }
  if (by !== undefined && normaliseIdentity(by) !== principal) {
    return { ok: false, problem: { status: 403, code: 'identity_mismatch', message: `this token belongs to ${principal}; it cannot act as ${by.normalize('NFKC').trim()}` } };
  }
  return { ok: true, decider: { principal } };
}

/** How a decider is shown in texts (notices, state reasons): `api (alice)`, `bob`, `tg:1001`. */
export function describeDecider(d: Decider): string {
  return d.label !== undefined ? `${d.principal} (${d.label})` : d.principal;
}
