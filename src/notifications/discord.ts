/**
 * Discord notifier: delivers notices (never approvals) to a Discord webhook as one embed per
 * message. `notify` only renders and enqueues; a single worker posts in order, honours Discord's
 * rate limits (429 `retry_after`, `X-RateLimit-Remaining: 0` + `X-RateLimit-Reset-After`), retries
 * 5xx and network failures with exponential backoff and drops a notice it cannot deliver (a
 * notice is not worth blocking the queue forever).
 *
 * The webhook URL carries a secret token: it never appears in a log line; logs say "discord
 * webhook" and every error text passes through a scrubber first.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { ConfigError, describeError } from '../errors';
import type { Logger } from '../logging';
import type { Notice, NoticeSeverity, NoticeSink } from './notice';

/** Discord's documented embed limits (Execute Webhook / Embed Limits). */
export const DISCORD_LIMITS = {
  embedsPerMessage: 10,
  title: 256,
  description: 4096,
  fields: 25,
  fieldName: 256,
  fieldValue: 1024,
  footerText: 2048,
  authorName: 256,
  /** Sum of title, description, field names and values, footer text and author name. */
  embedTotal: 6000,
} as const;

/** Embed colours by severity: info blue, warning amber, critical red. */
export const SEVERITY_COLORS: Readonly<Record<NoticeSeverity, number>> = {
  info: 0x3498db,
  warning: 0xffbf00,
  critical: 0xe74c3c,
};

export interface DiscordEmbedField {
  name: string;
  value: string;
  inline: boolean;
}

/** The subset of Discord's embed object this notifier sends. */
export interface DiscordEmbed {
  title: string;
  description?: string;
  color: number;
  fields: DiscordEmbedField[];
  footer: { text: string };
  timestamp?: string;
}

/** The JSON body of an Execute Webhook request. */
export interface DiscordWebhookPayload {
  username: string;
  embeds: DiscordEmbed[];
  allowed_mentions: { parse: string[] };
}

export interface DiscordNotifierOptions {
  /** `https://discord.com/api/webhooks/<id>/<token>`; the token is a secret. */
  webhookUrl: string;
  logger: Logger;
  fetch?: typeof fetch;
  /** Clock (epoch ms) for rate-limit bookkeeping. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** HTTP attempts for one notice on 5xx or network failures (429s do not count). Default 5. */
  maxAttempts?: number;
  /** First backoff delay after a 5xx or network failure; doubles each time. Default 500 ms. */
  baseDelayMs?: number;
  /** Ceiling of the backoff delay. Default 30 s. */
  maxDelayMs?: number;
  /** How many 429s one notice may meet before it is dropped. Default 10. */
  maxRateLimitRetries?: number;
  /** Timeout of one HTTP request. Default 10 s. */
  requestTimeoutMs?: number;
  /** How long `close()` waits for the queue to drain. Default 5 s. */
  closeTimeoutMs?: number;
  /** Queued notices kept at most; beyond it the oldest is dropped. Default 500. */
  maxQueue?: number;
}

const USERNAME = 'chatops-trading';
const LABEL = 'discord webhook';
/** A 429 asking for longer than this is treated as this long (a broken header must not park the queue). */
const MAX_RATE_LIMIT_WAIT_MS = 5 * 60_000;
/** Discord refuses an empty field name or value. */
const EMPTY_FIELD = '-';

// ---------------------------------------------------------------------------------------------
// Rendering (pure)

/**
 * Escapes Discord markdown so plain notice text renders as written (`max_position` must not turn
 * italic, `[x](y)` must not become a link, `<@id>` must not render as a mention).
 */
function escapeMarkdown(text: string): string {
  return text
    .replace(/[\\*_~`|<>[\]()]/g, (c) => `\\${c}`)
    .replace(/^(\s*)([#-])/gm, '$1\\$2');
}

/**
 * Cuts `text` to at most `max` UTF-16 units with a trailing ellipsis. Counting UTF-16 units is
 * never more lenient than counting code points, so the result fits whichever Discord counts. The
 * cut never splits a surrogate pair or leaves a lone escaping backslash.
 */
export function fitText(text: string, max: number): string {
  if (text.length <= max) return text;
  if (max <= 0) return '';
  let cut = text.slice(0, max - 1);
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1);
  const trailing = /\\+$/.exec(cut)?.[0].length ?? 0;
  if (trailing % 2 === 1) cut = cut.slice(0, -1);
  return `${cut}…`;
}

function plain(text: unknown, max: number): string {
  return fitText(escapeMarkdown(String(text ?? '')), max);
}

/** Characters of an embed that count toward Discord's 6000 total. */
export function embedLength(embed: { title?: string; description?: string; fields?: Array<{ name: string; value: string }>; footer?: { text?: string }; author?: { name?: string } }): number {
  let n = (embed.title?.length ?? 0) + (embed.description?.length ?? 0) + (embed.footer?.text?.length ?? 0) + (embed.author?.name?.length ?? 0);
  for (const f of embed.fields ?? []) n += f.name.length + f.value.length;
  return n;
}

/**
 * Renders a notice as one Discord embed: title, detail lines as the description, labelled values
 * as inline fields, colour by severity, the notice time as the timestamp. Markdown is escaped and
 * every text is cut to Discord's limits; when the 6000-character total would be exceeded, fields
 * keep priority over the description (a share of it is reserved) and surplus fields are counted
 * in a last field.
 */
export function renderDiscordEmbed(notice: Notice): DiscordEmbed {
  const title = plain(notice.title.trim() === '' ? notice.kind : notice.title, DISCORD_LIMITS.title);
  const footerText = fitText(notice.proposalId ? `${notice.kind} · proposal ${notice.proposalId}` : notice.kind, DISCORD_LIMITS.footerText);
  const rawDescription = escapeMarkdown(notice.lines.join('\n'));
  const budget = DISCORD_LIMITS.embedTotal - title.length - footerText.length;
  // The description keeps at least this much when fields are huge.
  const reserved = Math.min(rawDescription.length, 1024);

  const candidates = notice.fields.map((f) => ({
    name: plain(f.name, DISCORD_LIMITS.fieldName) || EMPTY_FIELD,
    value: plain(f.value, DISCORD_LIMITS.fieldValue) || EMPTY_FIELD,
    inline: true,
  }));
  const fieldBudget = budget - reserved;
  const fields: DiscordEmbedField[] = [];
  let used = 0;
  for (const [i, f] of candidates.entries()) {
    const size = f.name.length + f.value.length;
    const lastSlotWithMore = fields.length === DISCORD_LIMITS.fields - 1 && i < candidates.length - 1;
    if (lastSlotWithMore || used + size > fieldBudget) {
      const more = { name: '…', value: `${candidates.length - i} more not shown`, inline: false };
      const moreSize = more.name.length + more.value.length;
      if (used + moreSize <= fieldBudget) {
        fields.push(more);
        used += moreSize;
      }
      break;
    }
    fields.push(f);
    used += size;
  }

  const description = fitText(rawDescription, Math.min(DISCORD_LIMITS.description, budget - used));
  const at = Date.parse(notice.at);
  return {
    title,
    ...(description === '' ? {} : { description }),
    color: SEVERITY_COLORS[notice.severity] ?? SEVERITY_COLORS.critical,
    fields,
    footer: { text: footerText },
    ...(Number.isNaN(at) ? {} : { timestamp: new Date(at).toISOString() }),
  };
}

/** The Execute Webhook body for one notice; `allowed_mentions` is empty so nothing can ping. */
export function renderDiscordPayload(notice: Notice): DiscordWebhookPayload {
  return { username: USERNAME, embeds: [renderDiscordEmbed(notice)], allowed_mentions: { parse: [] } };
}

// ---------------------------------------------------------------------------------------------
// Delivery

type Outcome =
  | { kind: 'sent'; status: number }
  | { kind: 'rate_limited'; waitMs: number; global: boolean; scope: string | null }
  | { kind: 'transient'; status: number | null; reason: string }
  | { kind: 'rejected'; status: number; discordCode: number | null; reason: string }
  | { kind: 'stopped' };

interface Job {
  payload: DiscordWebhookPayload;
  kind: Notice['kind'];
  title: string;
}

function seconds(value: unknown): number | null {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  return Number.isFinite(n) && n >= 0 ? n : null;
}

/** Sends notices to a Discord webhook; see the module comment. */
export class DiscordNotifier implements NoticeSink {
  readonly name = 'discord';

  private readonly url: string;
  private readonly secrets: string[];
  private readonly logger: Logger;
  private readonly fetch: typeof fetch;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly maxRateLimitRetries: number;
  private readonly requestTimeoutMs: number;
  private readonly closeTimeoutMs: number;
  private readonly maxQueue: number;

  private readonly queue: Job[] = [];
  private worker: Promise<void> | null = null;
  private current: Job | null = null;
  private closing = false;
  private readonly stop = new AbortController();
  private readonly stopped: Promise<void>;
  /** No request leaves before this time (epoch ms of `now`): the bucket is empty or a 429 asked to wait. */
  private blockedUntil = 0;

  constructor(options: DiscordNotifierOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.webhookUrl);
    } catch {
      // The value is a secret: name the variable, never the value.
      throw new ConfigError('the Discord webhook URL is not a valid URL', [{ variable: 'DISCORD_WEBHOOK_URL', message: 'not a valid URL (value not shown: it contains a token)' }]);
    }
    const token = /\/webhooks\/[^/]+\/([^/?#]+)/.exec(parsed.pathname)?.[1];
    this.secrets = [options.webhookUrl, parsed.href, `${parsed.origin}${parsed.pathname}`, ...(token ? [token] : [])]
      .filter((s) => s.length >= 4)
      .sort((a, b) => b.length - a.length);
    parsed.searchParams.set('wait', 'true');
    this.url = parsed.href;
    this.secrets.unshift(this.url);

    this.logger = options.logger;
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.now = options.now ?? Date.now;
    // The default sleep ends early on close, so a long rate-limit wait does not keep the process alive.
    this.sleep = options.sleep ?? ((ms) => delay(ms, undefined, { signal: this.stop.signal }).catch(() => undefined));
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 5);
    this.baseDelayMs = options.baseDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 30_000;
    this.maxRateLimitRetries = options.maxRateLimitRetries ?? 10;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.closeTimeoutMs = options.closeTimeoutMs ?? 5_000;
    this.maxQueue = Math.max(1, options.maxQueue ?? 500);
    this.stopped = new Promise((resolve) => this.stop.signal.addEventListener('abort', () => resolve(), { once: true }));
  }

  /** Notices waiting to be sent (the one in flight excluded). */
  get pending(): number {
    return this.queue.length;
  }

  /** Renders and enqueues `notice`; returns at once and never throws. */
  notify(notice: Notice): void {
    try {
      if (this.closing) {
        this.logger.warn(`${LABEL}: closed, notice not sent`, { code: 'discord_closed', kind: notice.kind });
        return;
      }
      // Rendered now, so a caller that later mutates the notice changes nothing.
      this.queue.push({ payload: renderDiscordPayload(notice), kind: notice.kind, title: notice.title });
      if (this.queue.length > this.maxQueue) {
        const dropped = this.queue.shift()!;
        this.logger.error(`${LABEL}: queue full, oldest notice dropped`, { code: 'discord_queue_full', kind: dropped.kind, title: this.scrub(dropped.title), maxQueue: this.maxQueue });
      }
      this.worker ??= this.drain().finally(() => {
        this.worker = null;
      });
    } catch (err) {
      try {
        this.logger.error(`${LABEL}: notice could not be queued`, { code: 'discord_render_failed', error: this.scrub(describeError(err).message) });
      } catch {
        // A logger that throws must not break the caller either.
      }
    }
  }

  /** Waits (at most `closeTimeoutMs`) for queued notices to go out, then stops the worker. */
  async close(): Promise<void> {
    this.closing = true;
    const worker = this.worker;
    if (worker) {
      const timer = new AbortController();
      const timedOut = await Promise.race([
        worker.then(() => false),
        delay(this.closeTimeoutMs, true, { signal: timer.signal }).catch(() => false),
      ]);
      timer.abort();
      if (timedOut) {
        const left = this.queue.length + (this.current ? 1 : 0);
        this.logger.warn(`${LABEL}: close timed out, notices not sent`, { code: 'discord_close_timeout', notSent: left, kinds: [this.current, ...this.queue].filter(Boolean).map((j) => j!.kind) });
      }
    }
    this.stop.abort();
    this.queue.length = 0;
    await worker;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.stop.signal.aborted) {
      const job = this.queue.shift()!;
      this.current = job;
      try {
        await this.deliver(job);
      } catch (err) {
        this.logger.error(`${LABEL}: unexpected failure, notice dropped`, { code: 'discord_internal', kind: job.kind, error: this.scrub(describeError(err).message) });
      } finally {
        this.current = null;
      }
    }
  }

  private async deliver(job: Job): Promise<void> {
    let failures = 0;
    let rateLimits = 0;
    for (;;) {
      await this.waitForBucket();
      if (this.stop.signal.aborted) return;
      const outcome = await this.post(job.payload);
      switch (outcome.kind) {
        case 'sent':
          this.logger.debug(`${LABEL}: notice sent`, { kind: job.kind, status: outcome.status });
          return;
        case 'stopped':
          return;
        case 'rate_limited':
          rateLimits += 1;
          if (rateLimits > this.maxRateLimitRetries) {
            this.logger.error(`${LABEL}: still rate limited, notice dropped`, { code: 'discord_rate_limited', kind: job.kind, rateLimits });
            return;
          }
          this.logger.warn(`${LABEL}: rate limited, retrying the same notice`, { code: 'discord_rate_limited', kind: job.kind, waitMs: outcome.waitMs, global: outcome.global, scope: outcome.scope });
          this.blockFor(outcome.waitMs);
          break;
        case 'transient':
          failures += 1;
          if (failures >= this.maxAttempts) {
            this.logger.error(`${LABEL}: unreachable, notice dropped`, { code: 'discord_unavailable', kind: job.kind, attempts: failures, status: outcome.status, reason: outcome.reason });
            return;
          }
          {
            // Backoff for a notice lives here: it is the only retry loop in this transport.
            const waitMs = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (failures - 1));
            this.logger.warn(`${LABEL}: send failed, retrying`, { code: 'discord_unavailable', kind: job.kind, attempt: failures, status: outcome.status, reason: outcome.reason, waitMs });
            await this.pause(waitMs);
          }
          break;
        case 'rejected':
          this.logger.error(`${LABEL}: notice refused, dropped`, { code: 'discord_rejected', kind: job.kind, status: outcome.status, discordCode: outcome.discordCode, reason: outcome.reason });
          return;
      }
    }
  }

  /**
   * One POST. A request that timed out may have been delivered; resending it risks a duplicate
   * notice, which is harmless, unlike an order.
   */
  private async post(payload: DiscordWebhookPayload): Promise<Outcome> {
    let res: Response;
    try {
      res = await this.fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(payload),
        signal: AbortSignal.any([this.stop.signal, AbortSignal.timeout(this.requestTimeoutMs)]),
      });
    } catch (err) {
      if (this.stop.signal.aborted) return { kind: 'stopped' };
      return { kind: 'transient', status: null, reason: this.describeFailure(err) };
    }
    const text = await res.text().catch(() => '');
    this.noteBucket(res.headers);
    if (res.ok) return { kind: 'sent', status: res.status };

    let body: Record<string, unknown> = {};
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed && typeof parsed === 'object') body = parsed as Record<string, unknown>;
    } catch {
      // Not JSON (a proxy's HTML page, for example): the headers have to do.
    }
    if (res.status === 429) {
      const after = seconds(body.retry_after) ?? seconds(res.headers.get('retry-after')) ?? seconds(res.headers.get('x-ratelimit-reset-after')) ?? 1;
      return {
        kind: 'rate_limited',
        waitMs: Math.min(MAX_RATE_LIMIT_WAIT_MS, Math.ceil(after * 1000)),
        global: body.global === true || res.headers.get('x-ratelimit-global') === 'true',
        scope: res.headers.get('x-ratelimit-scope'),
      };
    }
    const message = typeof body.message === 'string' ? body.message : text.slice(0, 200);
    const reason = this.scrub(`HTTP ${res.status}${message ? `: ${message}` : ''}`);
    if (res.status >= 500) return { kind: 'transient', status: res.status, reason };
    return { kind: 'rejected', status: res.status, discordCode: typeof body.code === 'number' ? body.code : null, reason };
  }

  /** Remembers an exhausted bucket so the next request waits for its reset. */
  private noteBucket(headers: Headers): void {
    if (headers.get('x-ratelimit-remaining')?.trim() !== '0') return;
    const resetAfter = seconds(headers.get('x-ratelimit-reset-after'));
    if (resetAfter === null) return;
    this.blockFor(Math.min(MAX_RATE_LIMIT_WAIT_MS, Math.ceil(resetAfter * 1000)));
  }

  private blockFor(ms: number): void {
    this.blockedUntil = Math.max(this.blockedUntil, this.now() + ms);
  }

  private async waitForBucket(): Promise<void> {
    const wait = this.blockedUntil - this.now();
    if (wait > 0) await this.pause(wait);
  }

  /** Sleeps, but wakes up when the notifier is closed. */
  private async pause(ms: number): Promise<void> {
    if (this.stop.signal.aborted) return;
    await Promise.race([this.sleep(ms), this.stopped]);
  }

  private describeFailure(err: unknown): string {
    const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
    const parts = [e?.name === 'TimeoutError' ? `timed out after ${this.requestTimeoutMs} ms` : describeError(err).message];
    if (e?.cause?.code) parts.push(e.cause.code);
    else if (e?.cause?.message) parts.push(e.cause.message);
    return this.scrub(parts.join(': '));
  }

  /** Removes the webhook URL and its token from any text bound for a log. */
  private scrub(text: string): string {
    let out = text;
    for (const secret of this.secrets) out = out.split(secret).join('[discord webhook]');
    return out;
  }
}
