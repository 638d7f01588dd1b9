/**
 * A local OpenAI-compatible chat-completions server (node:http on 127.0.0.1, a free port) whose
 * behaviour a test sets: a normal answer, a slow one, an HTTP error, an oversize answer, a body
 * that is not JSON, or one with empty content. It records every request (path, headers, body)
 * and whether it has been answered yet.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type FakeLlmBehaviour =
  | { kind: 'success'; content: string; model?: string }
  /** Answers `content` after `delayMs` (longer than the client's timeout, in timeout tests). */
  | { kind: 'slow'; delayMs: number; content: string }
  | { kind: 'status'; status: number; body?: string }
  /** A successful answer whose content is `chars` characters of words. */
  | { kind: 'oversize'; chars: number }
  | { kind: 'malformed'; body: string }
  | { kind: 'empty' };

export interface RecordedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  /** The parsed JSON body (undefined when it was not JSON). */
  body: any;
  /** Whether the fake has sent its answer. */
  answered: boolean;
}

export class FakeLlm {
  readonly requests: RecordedRequest[] = [];
  private behaviour: FakeLlmBehaviour = { kind: 'success', content: 'A fake explanation.' };
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly waiters: Array<() => void> = [];

  private constructor(private readonly server: http.Server, readonly baseUrl: string) {}

  /** Starts a fake on a free port; `baseUrl` ends in `/v1` (the client adds `/chat/completions`). */
  static async start(): Promise<FakeLlm> {
    const holder: { fake?: FakeLlm } = {};
    const server = http.createServer((req, res) => holder.fake!.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    holder.fake = new FakeLlm(server, `http://127.0.0.1:${port}/v1`);
    return holder.fake;
  }

  /** Sets how the next requests are answered. */
  behave(behaviour: FakeLlmBehaviour): void {
    this.behaviour = behaviour;
  }

  /** Resolves once `n` requests have arrived (bounded by the test's own timeout). */
  async waitForRequests(n: number): Promise<void> {
    while (this.requests.length < n) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      const record: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body, answered: false };
      this.requests.push(record);
      for (const w of this.waiters.splice(0)) w();
      const send = (status: number, payload: string) => {
        record.answered = true;
        res.writeHead(status, { 'content-type': 'application/json' }).end(payload);
      };
      if (req.method !== 'POST' || req.url !== '/v1/chat/completions') return send(404, JSON.stringify({ error: { message: 'not found' } }));
      const model = typeof (body as { model?: unknown })?.model === 'string' ? (body as { model: string }).model : 'fake-model';
      const b = this.behaviour;
      switch (b.kind) {
        case 'success':
          return send(200, completion(b.content, b.model ?? model));
        case 'oversize':
          return send(200, completion(words(b.chars), model));
        case 'empty':
          return send(200, completion('   ', model));
        case 'malformed':
          return send(200, b.body);
        case 'status':
          return send(b.status, b.body ?? JSON.stringify({ error: { message: 'fake failure' } }));
        case 'slow': {
          const t = setTimeout(() => {
            this.timers.delete(t);
            if (!res.destroyed) send(200, completion(b.content, model));
          }, b.delayMs);
          this.timers.add(t);
          return;
        }
      }
    });
  }
}

function completion(content: string, model: string): string {
  return JSON.stringify({
    id: 'chatcmpl-fake',
    object: 'chat.completion',
    created: 1_700_000_000,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 10, completion_tokens: 10, total_tokens: 20 },
  });
}

/** `chars` characters of ordinary words ("lorem ipsum …"). */
function words(chars: number): string {
  const vocabulary = ['price', 'trend', 'volume', 'confirms', 'the', 'entry', 'above', 'average', 'momentum', 'risk'];
  let out = '';
  for (let i = 0; out.length < chars; i += 1) out += `${out ? ' ' : ''}${vocabulary[i % vocabulary.length]}`;
  return out.slice(0, chars);
}
