/**
 * XSTATE_INSPECT: the inspection stream of every proposal actor, sanitised, in two places:
 * - a WebSocket relay on 127.0.0.1:XSTATE_INSPECT_PORT that serves the bridge page of the Stately
 *   inspector and broadcasts the messages of @statelyai/inspect 0.7.2 to every page connected;
 * - DATA_DIR/logs/xstate-inspect.jsonl, one compact line per event, for reading offline.
 *
 * @statelyai/inspect's `createInspectorServer` listens on every interface (it takes no host) and
 * re-broadcasts whatever any client sends; its `createWebSocketInspector` would send every event
 * through a socket back into this same process. So the relay is ours and in-process, while the
 * messages come from the library's own converter (`createInspector`), so they are exactly what the
 * inspector expects. Nothing here can stop an actor: every step is guarded, memory is bounded
 * (the last messages for a page that connects later; a page too far behind is dropped and
 * reconnects), and nothing listens when XSTATE_INSPECT is off (this module is not opened).
 */
import fs from 'node:fs';
import http from 'node:http';
import type { Duplex } from 'node:stream';
import path from 'node:path';
import { WebSocket, WebSocketServer } from 'ws';
import type { InspectionEvent } from 'xstate';
import type { StatelyInspectionEvent } from '@statelyai/inspect';
import { describeError } from '../errors';
import type { Logger } from '../logging';
import type { Redact } from '../redaction';

/** The hosted inspector the bridge page embeds (the default of createInspectorServer). */
export const INSPECTOR_UI = 'https://stately.ai/inspect';
/** The relay only ever binds here: the inspection stream shows every proposal's context. */
export const RELAY_HOST = '127.0.0.1';

/** Messages kept for a page that connects later (createInspectorServer keeps 200). */
const REPLAY_MESSAGES = 200;
const REPLAY_BYTES = 4 * 1024 * 1024;
/** A page whose socket holds more than this unsent is dropped; its bridge reconnects and replays. */
const CLIENT_BACKLOG_BYTES = 4 * 1024 * 1024;
const MAX_CLIENTS = 8;
/** Pages send nothing the relay needs; a larger frame closes the socket. */
const MAX_INBOUND_BYTES = 4096;
/** Lines waiting for the disk beyond this are dropped (and counted) rather than held in memory. */
const FILE_BACKLOG_BYTES = 1024 * 1024;
const FILE_RETRY_MS = 60_000;

/** Keys whose values never leave: raw request bodies and headers, whatever carries them. */
const OMITTED_KEYS = new Set(['raw', 'rawBody', 'body', 'headers']);
/** Secret-looking keys, as the logger treats them: their string values are replaced. */
const SECRET_KEYS = /secret|token|password|api[_-]?key|authorization|access[_-]?key/i;

/**
 * A JSON-safe, sanitised copy of an inspection message: snapshots reduced by their own `toJSON`,
 * errors to name and message, raw bodies and headers omitted, secret-keyed strings replaced, then
 * every configured secret scrubbed by `redact`. Throws only on what JSON cannot hold (a cycle).
 */
export function sanitiseInspection<T>(value: T, redact: Redact): unknown {
  const json = JSON.stringify(value, (_key, v: unknown) => {
    if (v instanceof Error) return { name: v.name, message: v.message, ...('code' in v ? { code: (v as { code: unknown }).code } : {}) };
    if (typeof v === 'bigint') return v.toString();
    return v;
  });
  if (json === undefined) return null;
  return redact(omitRaw(JSON.parse(json) as unknown));
}

function omitRaw(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(omitRaw);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (OMITTED_KEYS.has(k)) out[k] = '[omitted]';
    else if (SECRET_KEYS.test(k) && typeof v === 'string' && v !== '') out[k] = '[redacted]';
    else out[k] = omitRaw(v);
  }
  return out;
}

/** What the composition root holds: the `inspect` option for createActor, where to look, and stop. */
export interface Inspector {
  inspect: (event: InspectionEvent) => void;
  /** The bridge page to open in a browser; null when the port could not be taken. */
  url: string | null;
  /** Address the relay listens on (null when it does not). */
  address: { host: string; port: number } | null;
  close(): Promise<void>;
}

export interface InspectorOptions {
  port: number;
  dataDir: string;
  redact: Redact;
  logger: Logger;
}

/**
 * Opens the relay and the JSON-lines file and logs the URL. A port that cannot be taken is logged
 * and leaves the file alone running: a debugging aid never stops the service supervising trades.
 */
export async function openInspector(opts: InspectorOptions): Promise<Inspector> {
  const logger = opts.logger.child({ component: 'inspector' });
  const file = new InspectionFile(path.join(opts.dataDir, 'logs', 'xstate-inspect.jsonl'), opts.redact, logger);
  const relay = new Relay(opts.redact, logger);
  let address: { host: string; port: number } | null = null;
  try {
    address = await relay.listen(opts.port);
  } catch (err) {
    logger.error(`XSTATE_INSPECT_PORT ${opts.port} cannot be used on ${RELAY_HOST}: the inspector relay is not running (the JSON-lines file is still written)`, { error: describeError(err) });
  }
  // Imported only when inspection is on: the library brings its own socket clients along.
  const { createInspector } = await import('@statelyai/inspect');
  const stately = createInspector(relay);
  const url = address ? `http://${RELAY_HOST}:${address.port}/` : null;
  if (url) logger.info(`XState inspector on ${url} (open it in a browser on this machine; the page loads the inspector from stately.ai)`, { port: address!.port });
  return {
    url, address,
    inspect: (event) => {
      // XState calls this inside an actor's step: nothing may throw back into it.
      try {
        file.write(event);
      } catch (err) {
        file.failed(err);
      }
      if (!address) return;
      try {
        stately.inspect.next?.(event);
      } catch (err) {
        relay.failed(err);
      }
    },
    close: async () => {
      await relay.close();
      await file.close();
    },
  };
}

/**
 * The relay: an HTTP server on loopback that serves the bridge page at `/` and takes WebSocket
 * connections from it (same-machine origins only), and the adapter @statelyai/inspect's
 * converter hands each message to.
 */
class Relay {
  private readonly server = http.createServer((req, res) => this.page(req, res));
  private readonly sockets = new WebSocketServer({ noServer: true, maxPayload: MAX_INBOUND_BYTES });
  private readonly replay: string[] = [];
  private replayBytes = 0;
  private listening = false;
  private closed = false;
  /** Prefixed to session ids: a page that stays open across a restart sees new actors, not old ids reused. */
  private readonly boot = Date.now().toString(36);
  private readonly warned = new Set<string>();

  constructor(private readonly redact: Redact, private readonly logger: Logger) {
    this.server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
    this.server.on('clientError', (_err, socket) => socket.destroy());
  }

  listen(port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen({ port, host: RELAY_HOST, exclusive: true }, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.failed(err));
        this.listening = true;
        const a = this.server.address();
        resolve({ host: RELAY_HOST, port: typeof a === 'object' && a ? a.port : port });
      });
    });
  }

  /** One message from @statelyai/inspect's converter: sanitised, kept for late pages, sent to every page. */
  send(event: StatelyInspectionEvent): void {
    if (this.closed || !this.listening) return;
    let text: string;
    try {
      const message = sanitiseInspection(event, this.redact) as Record<string, unknown>;
      for (const key of ['sessionId', 'parentId', 'rootId', 'sourceId']) {
        if (typeof message[key] === 'string') message[key] = `${this.boot}.${message[key] as string}`;
      }
      text = JSON.stringify(message);
    } catch (err) {
      this.failed(err);
      return;
    }
    this.replay.push(text);
    this.replayBytes += text.length;
    while (this.replay.length > REPLAY_MESSAGES || this.replayBytes > REPLAY_BYTES) this.replayBytes -= this.replay.shift()!.length;
    for (const client of this.sockets.clients) this.deliver(client, text);
  }

  failed(err: unknown): void {
    this.warnOnce('relay', 'an inspection message could not be relayed; the inspector may miss events', err);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const client of this.sockets.clients) client.terminate();
    this.sockets.close();
    if (!this.listening) return;
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private deliver(client: WebSocket, text: string): void {
    if (client.readyState !== WebSocket.OPEN) return;
    if (client.bufferedAmount > CLIENT_BACKLOG_BYTES) {
      this.warnOnce('slow', 'an inspector page fell too far behind and was disconnected; it reconnects by itself');
      client.terminate();
      return;
    }
    client.send(text, (err) => {
      if (err) client.terminate();
    });
  }

  private upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const refuse = (status: string) => {
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    socket.on('error', () => socket.destroy());
    // Any web page in the operator's browser may open a socket to loopback: only pages served
    // from this machine (this bridge, or a tunnel to it) may read the stream.
    if (!sameMachineOrigin(req.headers.origin)) return refuse('403 Forbidden');
    if (this.closed || this.sockets.clients.size >= MAX_CLIENTS) return refuse('503 Service Unavailable');
    this.sockets.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => ws.terminate());
      // Pages have nothing to say to the relay (unlike createInspectorServer, nothing is re-broadcast).
      ws.on('message', () => undefined);
      for (const text of this.replay) this.deliver(ws, text);
    });
  }

  private page(req: http.IncomingMessage, res: http.ServerResponse): void {
    const pathname = (req.url ?? '/').split('?')[0];
    if ((req.method !== 'GET' && req.method !== 'HEAD') || pathname !== '/') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store',
      'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer', 'x-content-type-options': 'nosniff',
    });
    res.end(req.method === 'HEAD' ? undefined : BRIDGE_PAGE);
  }

  private warnOnce(kind: string, message: string, err?: unknown): void {
    if (this.warned.has(kind)) return;
    this.warned.add(kind);
    this.logger.warn(message, err === undefined ? {} : { error: describeError(err) });
  }
}

/** True for no Origin (a program, not a browser page) or a page served from a loopback host. */
function sameMachineOrigin(origin: string | undefined): boolean {
  if (origin === undefined) return true;
  try {
    const host = new URL(origin).hostname;
    return host === 'localhost' || host === '127.0.0.1' || host === '[::1]';
  } catch {
    return false;
  }
}

/**
 * The page at `/`: the bridge createInspectorServer serves (the hosted inspector in a frame, fed
 * each relayed message by postMessage once it says `@statelyai.connected`), with a bounded buffer,
 * a socket back to whatever host served it (so an SSH tunnel on another port works), reconnection,
 * and a status line.
 */
export const BRIDGE_PAGE = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Proposal actors · Stately inspector</title>
<link rel="icon" href="data:,">
<style>
  * { margin: 0; padding: 0; box-sizing: border-box; }
  html, body { height: 100%; }
  body { display: flex; flex-direction: column; font: 13px system-ui, sans-serif; }
  #status { padding: 4px 8px; background: #f3f4f6; border-bottom: 1px solid #d1d5db; }
  iframe { flex: 1; width: 100%; border: none; }
</style>
</head>
<body>
<div id="status" role="status">relay: connecting · inspector: loading from ${new URL(INSPECTOR_UI).host}</div>
<iframe id="inspector" title="Stately inspector" src="${INSPECTOR_UI}"></iframe>
<script>
  const INSPECTOR_ORIGIN = ${JSON.stringify(new URL(INSPECTOR_UI).origin)};
  const MAX_BUFFER = 1000;
  const iframe = document.getElementById('inspector');
  const status = document.getElementById('status');
  const buffer = [];
  let connected = false;
  let relay = 'connecting';
  let received = 0;
  function show() {
    status.textContent = 'relay: ' + relay + ' · inspector: ' + (connected ? 'connected' : 'loading from ' + new URL(INSPECTOR_ORIGIN).host + ' (needs internet)') + ' · messages: ' + received;
  }
  function post(data) {
    iframe.contentWindow.postMessage(data, INSPECTOR_ORIGIN);
  }
  window.addEventListener('message', (e) => {
    if (e.origin === INSPECTOR_ORIGIN && e.data && e.data.type === '@statelyai.connected') {
      connected = true;
      for (const data of buffer.splice(0)) post(data);
      show();
    }
  });
  function connect() {
    const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/');
    ws.onopen = () => { relay = 'connected'; show(); };
    ws.onmessage = (event) => {
      received += 1;
      const data = JSON.parse(event.data);
      if (connected) post(data);
      else {
        buffer.push(data);
        if (buffer.length > MAX_BUFFER) buffer.shift();
      }
      show();
    };
    ws.onclose = () => { relay = 'reconnecting'; show(); setTimeout(connect, 2000); };
  }
  connect();
</script>
</body>
</html>
`;

/**
 * DATA_DIR/logs/xstate-inspect.jsonl: `{at, type, actor, parent?, event?, value?, status?, context?}`
 * per event, sanitised like the relay's messages. Written without blocking; while the disk lags
 * more than FILE_BACKLOG_BYTES, lines are dropped and a `inspect.dropped` line says how many.
 */
class InspectionFile {
  private stream: fs.WriteStream | null = null;
  private failedAt = 0;
  private dropped = 0;

  constructor(private readonly file: string, private readonly redact: Redact, private readonly logger: Logger) {
    this.open();
  }

  write(event: InspectionEvent): void {
    const line = this.lineOf(event);
    if (!line) return;
    if (!this.stream && Date.now() - this.failedAt >= FILE_RETRY_MS) this.open();
    const stream = this.stream;
    if (!stream || stream.writableLength > FILE_BACKLOG_BYTES) {
      this.dropped += 1;
      return;
    }
    if (this.dropped > 0) {
      stream.write(`${JSON.stringify({ at: new Date().toISOString(), type: 'inspect.dropped', count: this.dropped })}\n`);
      this.dropped = 0;
    }
    stream.write(`${JSON.stringify(sanitiseInspection(line, this.redact))}\n`);
  }

  failed(err: unknown): void {
    this.logger.warn('an inspection line could not be written', { error: describeError(err) });
  }

  async close(): Promise<void> {
    const stream = this.stream;
    this.stream = null;
    this.failedAt = Infinity;
    if (stream) await new Promise<void>((resolve) => stream.end(() => resolve()));
  }

  private open(): void {
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true });
      const stream = fs.createWriteStream(this.file, { flags: 'a' });
      stream.on('error', (err) => {
        if (this.stream === stream) this.stream = null;
        this.failedAt = Date.now();
        this.logger.warn(`the inspection file ${this.file} cannot be written; lines are dropped and it is reopened within a minute`, { error: describeError(err) });
      });
      this.stream = stream;
    } catch (err) {
      this.failedAt = Date.now();
      this.logger.warn(`the inspection file ${this.file} cannot be opened; lines are dropped and it is reopened within a minute`, { error: describeError(err) });
    }
  }

  private lineOf(event: InspectionEvent): Record<string, unknown> | null {
    const ref = event.actorRef as { id?: string; sessionId: string; _parent?: { id?: string } };
    const base = { at: new Date().toISOString(), type: event.type, actor: ref.id ?? ref.sessionId, ...(ref._parent?.id ? { parent: ref._parent.id } : {}) };
    switch (event.type) {
      case '@xstate.event': {
        const source = event.sourceRef as { id?: string; sessionId: string } | undefined;
        return { ...base, event: event.event, ...(source ? { source: source.id ?? source.sessionId } : {}) };
      }
      case '@xstate.snapshot': {
        const snap = event.snapshot as { value?: unknown; status?: string; context?: unknown; output?: unknown; error?: unknown };
        return { ...base, event: event.event, value: snap.value, status: snap.status, context: snap.context, ...(snap.error !== undefined ? { error: snap.error } : {}) };
      }
      case '@xstate.actor':
        return base;
      default:
        return null;
    }
  }
}
