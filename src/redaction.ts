/**
 * Secrets out of everything stored, answered, carded or sent: every configured secret (webhook
 * secret, API and operator tokens, bot token, venue keys, LLM key) is replaced by `[redacted]`
 * wherever it appears, in any string and any object key, at any depth. A careless alert template
 * that puts the webhook secret into `strategy` or `id` must not store it. Pure.
 */

/** Replaces configured secrets in a value (the same shape comes back). */
export type Redact = <T>(value: T) => T;

/** Secrets shorter than this are not searched for (they would match ordinary text). */
const MIN_SECRET = 8;

/** Replaces each of `secrets` in a text by `[redacted]`, the longest first (one may contain another). */
export function secretText(secrets: readonly string[]): (text: string) => string {
  const sorted = [...new Set(secrets.filter((s) => s !== ''))].sort((a, b) => b.length - a.length);
  return (text) => {
    let out = text;
    for (const secret of sorted) if (out.includes(secret)) out = out.split(secret).join('[redacted]');
    return out;
  };
}

export function secretScrubber(secrets: readonly string[]): Redact {
  const kept = secrets.filter((s) => s.length >= MIN_SECRET);
  if (kept.length === 0) return <T>(value: T) => value;
  const scrub = secretText(kept);
  const walk = (value: unknown): unknown => {
    if (typeof value === 'string') return scrub(value);
    if (value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) return value.map(walk);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[scrub(k)] = walk(v);
    return out;
  };
  return <T>(value: T) => walk(value) as T;
}
