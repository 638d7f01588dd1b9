/**
 * A local stand-in for Discord's Execute Webhook endpoint (`POST /api/webhooks/:id/:token`) on
 * 127.0.0.1. It validates the body as Discord does (400 with code 50035 "Invalid Form Body" and
 * the nested `errors` object), records every request with its arrival time, and can be told to
 * answer the next request with a 429, a 5xx, an exhausted bucket (`X-RateLimit-Remaining: 0`) or
 * any status. While a rate limit it announced is in force, a request that arrives anyway is
 * answered 429 and counted in `violations`.
 *
 * Lengths are counted in UTF-16 units, which is never more lenient than Discord's count.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';

export interface RecordedRequest {
  /** Arrival time (performance.now(), ms): compare requests with each other, not with a wall clock. */
  at: number;
  method: string;
  path: string;
  query: Record<string, string>;
  headers: http.IncomingHttpHeaders;
  raw: string;
  body: unknown;
  status: number;
}

export type ScriptedReply =
  /** 429; `retryAfter` seconds (default 0.2). `jsonBody: false` answers like a proxy: no JSON, only the `Retry-After` header. */
  | { kind: 'rate_limited'; retryAfter?: number; global?: boolean; scope?: 'user' | 'global' | 'shared'; jsonBody?: boolean }
  /** A 5xx (default 500). */
  | { kind: 'server_error'; status?: number }
  /** Accepts the message but reports the bucket empty for `resetAfter` seconds. */
  | { kind: 'bucket_exhausted'; resetAfter: number }
  /** Any status and JSON body. */
  | { kind: 'status'; status: number; body?: unknown };

type ErrorTree = { _errors?: Array<{ code: string; message: string }>; [key: string]: ErrorTree | Array<{ code: string; message: string }> | undefined };

const LIMITS = { embeds: 10, title: 256, description: 4096, fields: 25, fieldName: 256, fieldValue: 1024, footer: 2048, author: 256, total: 6000, content: 2000, username: 80 };
const BUCKET = 'f4ke0b0c4e7';
const RATE_LIMIT = 5;

function addError(tree: ErrorTree, path: Array<string | number>, code: string, message: string): void {
  let node = tree;
  for (const key of path) {
    const k = String(key);
    node[k] ??= {};
    node = node[k] as ErrorTree;
  }
  (node._errors ??= []).push({ code, message });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function checkString(tree: ErrorTree, path: Array<string | number>, value: unknown, max: number, required: boolean): number {
  if (value === undefined || value === null) {
    if (required) addError(tree, path, 'BASE_TYPE_REQUIRED', 'This field is required');
    return 0;
  }
  if (typeof value !== 'string') {
    addError(tree, path, 'STRING_TYPE_CONVERT', 'Could not interpret value as string.');
    return 0;
  }
  if (required && value.trim() === '') addError(tree, path, 'BASE_TYPE_REQUIRED', 'This field is required');
  if (value.length > max) addError(tree, path, 'BASE_TYPE_MAX_LENGTH', `Must be ${max} or fewer in length.`);
  return value.length;
}

/** Checks an Execute Webhook body; returns Discord's `errors` tree, or null when it is valid. */
export function validateWebhookBody(body: unknown): ErrorTree | null {
  const errors: ErrorTree = {};
  if (!isObject(body)) {
    addError(errors, [], 'DICT_TYPE_CONVERT', 'Only dictionaries may be used in a DictType');
    return errors;
  }
  checkString(errors, ['content'], body.content, LIMITS.content, false);
  if (body.username !== undefined) {
    checkString(errors, ['username'], body.username, LIMITS.username, false);
    if (typeof body.username === 'string' && /discord|clyde/i.test(body.username)) addError(errors, ['username'], 'USERNAME_INVALID_CONTAINS', 'Username cannot contain "discord"');
  }
  if (body.allowed_mentions !== undefined) {
    const am = body.allowed_mentions;
    if (!isObject(am)) addError(errors, ['allowed_mentions'], 'DICT_TYPE_CONVERT', 'Only dictionaries may be used in a DictType');
    else if (am.parse !== undefined) {
      if (!Array.isArray(am.parse)) addError(errors, ['allowed_mentions', 'parse'], 'LIST_TYPE_CONVERT', 'Only iterables may be used in a ListType');
      else am.parse.forEach((p, i) => {
        if (!['roles', 'users', 'everyone'].includes(p as string)) addError(errors, ['allowed_mentions', 'parse', i], 'ENUM_TYPE_COERCE', `Value "${String(p)}" is not a valid enum value.`);
      });
    }
  }
  if (body.embeds !== undefined) {
    if (!Array.isArray(body.embeds)) addError(errors, ['embeds'], 'LIST_TYPE_CONVERT', 'Only iterables may be used in a ListType');
    else {
      if (body.embeds.length > LIMITS.embeds) addError(errors, ['embeds'], 'BASE_TYPE_MAX_LENGTH', `Must be ${LIMITS.embeds} or fewer in length.`);
      let total = 0;
      body.embeds.forEach((embed, i) => {
        const at = ['embeds', i];
        if (!isObject(embed)) return addError(errors, at, 'DICT_TYPE_CONVERT', 'Only dictionaries may be used in a DictType');
        total += checkString(errors, [...at, 'title'], embed.title, LIMITS.title, false);
        total += checkString(errors, [...at, 'description'], embed.description, LIMITS.description, false);
        if (embed.color !== undefined && !(Number.isInteger(embed.color) && (embed.color as number) >= 0 && (embed.color as number) <= 0xffffff)) {
          addError(errors, [...at, 'color'], 'NUMBER_TYPE_MAX', 'int value should be less than or equal to 16777215.');
        }
        if (embed.timestamp !== undefined && (typeof embed.timestamp !== 'string' || Number.isNaN(Date.parse(embed.timestamp)))) {
          addError(errors, [...at, 'timestamp'], 'DATE_TYPE_PARSE', `Could not parse ${String(embed.timestamp)}. Should be ISO8601.`);
        }
        if (embed.footer !== undefined) total += checkString(errors, [...at, 'footer', 'text'], isObject(embed.footer) ? embed.footer.text : undefined, LIMITS.footer, true);
        if (embed.author !== undefined) total += checkString(errors, [...at, 'author', 'name'], isObject(embed.author) ? embed.author.name : undefined, LIMITS.author, true);
        if (embed.fields !== undefined) {
          if (!Array.isArray(embed.fields)) return addError(errors, [...at, 'fields'], 'LIST_TYPE_CONVERT', 'Only iterables may be used in a ListType');
          if (embed.fields.length > LIMITS.fields) addError(errors, [...at, 'fields'], 'BASE_TYPE_MAX_LENGTH', `Must be ${LIMITS.fields} or fewer in length.`);
          embed.fields.forEach((field, j) => {
            const fat = [...at, 'fields', j];
            if (!isObject(field)) return addError(errors, fat, 'DICT_TYPE_CONVERT', 'Only dictionaries may be used in a DictType');
            total += checkString(errors, [...fat, 'name'], field.name, LIMITS.fieldName, true);
            total += checkString(errors, [...fat, 'value'], field.value, LIMITS.fieldValue, true);
            if (field.inline !== undefined && typeof field.inline !== 'boolean') addError(errors, [...fat, 'inline'], 'BASE_TYPE_BAD_BOOLEAN', 'Must be either true or false.');
          });
        }
      });
      if (total > LIMITS.total) addError(errors, ['embeds'], 'MAX_EMBED_SIZE_EXCEEDED', `Embed size exceeds maximum size of ${LIMITS.total}`);
    }
  }
  return Object.keys(errors).length > 0 ? errors : null;
}

/** A running fake webhook endpoint. */
export class FakeDiscord {
  readonly requests: RecordedRequest[] = [];
  /** Requests that arrived while a rate limit announced by this fake was still in force. */
  readonly violations: Array<{ at: number; earlyByMs: number }> = [];
  private readonly script: ScriptedReply[] = [];
  /** performance.now() before which requests are refused with 429. */
  private blockedUntil = 0;
  private nextMessageId = 1_000_000_000_000_000_000n;

  private readonly server: http.Server;

  private constructor(
    readonly webhookId: string,
    readonly token: string,
    /** Timer granularity tolerated before an early request counts as a violation. */
    private readonly leewayMs: number,
  ) {
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  /** Starts a fake on 127.0.0.1 with a free port. */
  static async start(opts: { webhookId?: string; token?: string; leewayMs?: number } = {}): Promise<FakeDiscord> {
    const fake = new FakeDiscord(opts.webhookId ?? '1234567890123456789', opts.token ?? 'fAkE-t0ken_S3cret-Zq9vXw7yRt5uIo3pLk1jHg', opts.leewayMs ?? 2);
    await new Promise<void>((resolve, reject) => {
      fake.server.once('error', reject);
      fake.server.listen(0, '127.0.0.1', () => resolve());
    });
    return fake;
  }

  /** `http://127.0.0.1:<port>` */
  get origin(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The webhook URL a client is configured with (contains the secret token). */
  get webhookUrl(): string {
    return `${this.origin}/api/webhooks/${this.webhookId}/${this.token}`;
  }

  /** Bodies of the requests that were accepted (2xx), in arrival order. */
  get messages(): Array<Record<string, unknown>> {
    return this.requests.filter((r) => r.status >= 200 && r.status < 300).map((r) => r.body as Record<string, unknown>);
  }

  /** Queues a reply for the next request that is not itself a rate-limit violation. */
  replyNext(reply: ScriptedReply): this {
    this.script.push(reply);
    return this;
  }

  rateLimitNext(opts: { retryAfter?: number; global?: boolean; scope?: 'user' | 'global' | 'shared'; jsonBody?: boolean } = {}): this {
    return this.replyNext({ kind: 'rate_limited', ...opts });
  }

  failNext(status = 500): this {
    return this.replyNext({ kind: 'server_error', status });
  }

  exhaustBucketNext(resetAfter: number): this {
    return this.replyNext({ kind: 'bucket_exhausted', resetAfter });
  }

  /** Resolves when `count` messages were accepted; rejects after `timeoutMs`. */
  async waitForMessages(count: number, timeoutMs = 5000): Promise<Array<Record<string, unknown>>> {
    const deadline = performance.now() + timeoutMs;
    while (this.messages.length < count) {
      if (performance.now() > deadline) throw new Error(`fake discord: ${this.messages.length} of ${count} messages after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return this.messages;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const at = performance.now();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const url = new URL(req.url ?? '/', this.origin);
      const record: RecordedRequest = { at, method: req.method ?? '', path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, raw, body: undefined, status: 0 };
      this.requests.push(record);
      const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        record.status = status;
        const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
        res.writeHead(status, { ...(typeof body === 'string' ? { 'content-type': 'text/html' } : body === undefined ? {} : { 'content-type': 'application/json' }), ...headers });
        res.end(text);
      };
      this.respond(record, url, send, at);
    });
  }

  private respond(record: RecordedRequest, url: URL, send: (status: number, body: unknown, headers?: Record<string, string>) => void, at: number): void {
    const match = /^\/api\/webhooks\/([^/]+)\/([^/]+)\/?$/.exec(url.pathname);
    if (!match) return send(404, { message: '404: Not Found', code: 0 });
    if (record.method !== 'POST') return send(405, { message: '405: Method Not Allowed', code: 0 });
    if (match[1] !== this.webhookId) return send(404, { message: 'Unknown Webhook', code: 10015 });
    if (match[2] !== this.token) return send(401, { message: 'Invalid Webhook Token', code: 50027 });

    // A rate limit this fake announced is still running: Discord refuses the request.
    const early = this.blockedUntil - at;
    if (early > this.leewayMs) {
      this.violations.push({ at, earlyByMs: early });
      const after = (early / 1000).toFixed(3);
      return send(429, { message: 'You are being rate limited.', retry_after: Number(after), global: false }, this.limitHeaders(0, Number(after), { 'retry-after': String(Math.ceil(Number(after))), 'x-ratelimit-scope': 'user' }));
    }

    const scripted = this.script.shift();
    if (scripted?.kind === 'rate_limited') {
      const retryAfter = scripted.retryAfter ?? 0.2;
      this.blockedUntil = at + retryAfter * 1000;
      const headers = this.limitHeaders(0, retryAfter, {
        'retry-after': String(Math.ceil(retryAfter)),
        'x-ratelimit-scope': scripted.scope ?? (scripted.global ? 'global' : 'user'),
        ...(scripted.global ? { 'x-ratelimit-global': 'true' } : {}),
      });
      if (scripted.jsonBody === false) return send(429, '<html><body>rate limited</body></html>', headers);
      return send(429, { message: 'You are being rate limited.', retry_after: retryAfter, global: scripted.global ?? false }, headers);
    }
    if (scripted?.kind === 'server_error') return send(scripted.status ?? 500, { message: '500: Internal Server Error', code: 0 }, this.limitHeaders(RATE_LIMIT - 1, 1));
    if (scripted?.kind === 'status') return send(scripted.status, scripted.body ?? { message: `HTTP ${scripted.status}`, code: 0 }, this.limitHeaders(RATE_LIMIT - 1, 1));

    if (!/^application\/json\b/i.test(record.headers['content-type'] ?? '')) {
      return send(400, { message: 'Cannot send an empty message', code: 50006 });
    }
    try {
      record.body = JSON.parse(record.raw);
    } catch {
      return send(400, { message: 'The request body contains invalid JSON.', code: 50109 });
    }
    const errors = validateWebhookBody(record.body);
    if (errors) return send(400, { code: 50035, message: 'Invalid Form Body', errors });
    const body = record.body as Record<string, unknown>;
    const hasEmbeds = Array.isArray(body.embeds) && body.embeds.length > 0;
    if (!hasEmbeds && (typeof body.content !== 'string' || body.content.trim() === '')) return send(400, { message: 'Cannot send an empty message', code: 50006 });

    let headers = this.limitHeaders(RATE_LIMIT - 1, 1);
    if (scripted?.kind === 'bucket_exhausted') {
      this.blockedUntil = at + scripted.resetAfter * 1000;
      headers = this.limitHeaders(0, scripted.resetAfter);
    }
    if (record.query.wait !== 'true') return send(204, undefined, headers);
    const id = String(this.nextMessageId++);
    return send(200, {
      id,
      type: 0,
      content: body.content ?? '',
      channel_id: '987654321098765432',
      author: { id: this.webhookId, username: body.username ?? 'Captain Hook', bot: true },
      embeds: body.embeds ?? [],
      webhook_id: this.webhookId,
      timestamp: new Date().toISOString(),
    }, headers);
  }

  private limitHeaders(remaining: number, resetAfter: number, extra: Record<string, string> = {}): Record<string, string> {
    return {
      'x-ratelimit-limit': String(RATE_LIMIT),
      'x-ratelimit-remaining': String(remaining),
      'x-ratelimit-reset': ((Date.now() / 1000) + resetAfter).toFixed(3),
      'x-ratelimit-reset-after': resetAfter.toFixed(3),
      'x-ratelimit-bucket': BUCKET,
      ...extra,
    };
  }
}
