/**
 * `POST /webhook/tradingview`. TradingView posts JSON (or text holding JSON) with no custom
 * headers, gives up after 3 s and re-sends only after a 5xx. So the secret travels in the body
 * and is compared in constant time, the raw body is durably written before the 202, and all
 * other work happens after the answer. Checks run cheapest first: source address, rate, content
 * type, size, JSON, secret, fields.
 */
import type { Redact } from '../redaction';
import express, { type Request, type Response } from 'express';
import type { Logger } from '../logging';
import type { TradingLoop } from '../runtime/loop';
import type { Metrics } from './metrics';
import { secretsEqual } from '../identity';
import { webhookDedupeKey } from '../runtime/dedupe-window';
import { malformedJson, parseSignal } from './schemas';
import { AppError } from '../errors';

export interface WebhookDeps {
  secret: string;
  allowedIps: string[];
  maxBodyBytes: number;
  rateLimitPerMinute: number;
  quoteCurrency: string;
  loop: TradingLoop;
  metrics: Metrics;
  logger: Logger;
  /** Takes every configured secret out of an answer (a 400 may quote the body). */
  redact?: Redact;
  now?: () => number;
}

/** Fixed one-minute windows per source address. */
export class RateLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(private readonly perMinute: number, private readonly now: () => number = Date.now) {}

  /** Seconds until the source may post again, or 0 when this request is allowed. */
  take(source: string): number {
    if (this.perMinute <= 0) return 0;
    const now = this.now();
    let w = this.windows.get(source);
    if (!w || now - w.start >= 60_000) {
      w = { start: now, count: 0 };
      this.windows.set(source, w);
      if (this.windows.size > 10_000) this.sweep(now);
    }
    w.count += 1;
    return w.count > this.perMinute ? Math.ceil((w.start + 60_000 - now) / 1000) : 0;
  }

  private sweep(now: number): void {
    for (const [k, w] of this.windows) if (now - w.start >= 60_000) this.windows.delete(k);
  }
}

/** `::ffff:1.2.3.4` → `1.2.3.4`, so IPv4 allow lists match on dual-stack listeners. */
export function normaliseAddress(addr: string | undefined): string {
  if (!addr) return '';
  return addr.startsWith('::ffff:') ? addr.slice(7) : addr;
}

/** The body as stored: the secret field, and the secret wherever else it appears, redacted. */
function redactBody(body: Record<string, unknown>, secret: string): Record<string, unknown> {
  const scrub = (v: unknown): unknown => {
    if (typeof v === 'string') return secret.length > 0 ? v.split(secret).join('[redacted]') : v;
    if (Array.isArray(v)) return v.map(scrub);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, scrub(x)]));
    return v;
  };
  const copy = scrub(body) as Record<string, unknown>;
  if ('secret' in copy) copy['secret'] = '[redacted]';
  return copy;
}

export function tradingViewRoute(deps: WebhookDeps): express.Router {
  const router = express.Router();
  const clean = deps.redact ?? (<T>(v: T) => v);
  const limiter = new RateLimiter(deps.rateLimitPerMinute, deps.now);
  const allowed = new Set(deps.allowedIps.map(normaliseAddress));

  router.post('/webhook/tradingview',
    (req: Request, res: Response, next) => {
      const source = normaliseAddress(req.ip ?? req.socket.remoteAddress);
      if (allowed.size > 0 && !allowed.has(source)) {
        deps.metrics.signal('tradingview', 'forbidden_source');
        return void res.status(403).json({ error: 'forbidden_source', message: `source address ${source} is not in WEBHOOK_ALLOWED_IPS` });
      }
      const wait = limiter.take(source);
      if (wait > 0) {
        deps.metrics.signal('tradingview', 'rate_limited');
        res.setHeader('Retry-After', String(wait));
        return void res.status(429).json({ error: 'rate_limited', message: `more than ${deps.rateLimitPerMinute} webhook requests a minute from ${source}; retry in ${wait} s` });
      }
      const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
      if (encoding !== 'identity') {
        return void res.status(415).json({ error: 'unsupported_media_type', message: `content encoding ${encoding} is not accepted; send the body uncompressed` });
      }
      const type = req.headers['content-type'];
      if (!type || !(req.is('application/json') || req.is('text/plain'))) {
        return void res.status(415).json({ error: 'unsupported_media_type', message: `content type ${type ?? '(none)'} is not accepted; send application/json or text/plain holding JSON` });
      }
      const length = Number(req.headers['content-length']);
      if (Number.isFinite(length) && length > deps.maxBodyBytes) {
        return void res.status(413).json({ error: 'payload_too_large', message: `the body is larger than ${deps.maxBodyBytes} bytes` });
      }
      next();
    },
    express.text({ type: () => true, limit: deps.maxBodyBytes }),
    async (req: Request, res: Response) => {
      const raw = typeof req.body === 'string' ? req.body : '';
      let body: unknown;
      try {
        body = JSON.parse(raw.replace(/^\uFEFF/, ''));
      } catch (err) {
        deps.metrics.signal('tradingview', 'invalid');
        return void res.status(400).json(clean({ error: 'invalid_payload', message: 'the body is not JSON', issues: [{ path: '', message: malformedJson(err) }] }));
      }
      if (body === null || typeof body !== 'object' || Array.isArray(body)) {
        deps.metrics.signal('tradingview', 'invalid');
        return void res.status(400).json(clean({ error: 'invalid_payload', message: 'the body must be a JSON object', issues: [{ path: '', message: 'the body must be a JSON object' }] }));
      }
      const fields = body as Record<string, unknown>;
      const secret = fields['secret'];
      if (typeof secret !== 'string' || !secretsEqual(secret, deps.secret)) {
        deps.metrics.signal('tradingview', 'unauthorized');
        const why = secret === undefined ? 'the body has no "secret" field' : typeof secret !== 'string' ? '"secret" must be a string' : 'the secret does not match WEBHOOK_SECRET';
        return void res.status(401).json({ error: 'unauthorized', message: why });
      }
      const parsed = parseSignal(fields, { quoteCurrency: deps.quoteCurrency });
      if (!parsed.ok) {
        deps.metrics.signal('tradingview', 'invalid');
        return void res.status(400).json(clean({ error: 'invalid_payload', message: parsed.issues.map((i) => `${i.path || 'body'}: ${i.message}`).join('; '), issues: parsed.issues }));
      }
      const s = parsed.value;
      const key = webhookDedupeKey(s);
      const ack = await deps.loop.receive(s, 'tradingview', key, { raw: redactBody(fields, deps.secret) }).catch((err: unknown) => {
        // Nothing was acknowledged (backlog_full, storage_unavailable): counted by the answer's code.
        deps.metrics.signal('tradingview', err instanceof AppError ? err.code : 'error');
        throw err;
      });
      deps.metrics.signal('tradingview', ack.status);
      res.status(ack.status === 'accepted' ? 202 : 200).json(ack);
    });
  return router;
}
