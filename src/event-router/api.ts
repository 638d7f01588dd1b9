/**
 * The HTTP edge: health, readiness, metrics and the operator API (`/api/*`, bearer token).
 * Handlers parse and authorise, call the command core or the trading loop, and render typed
 * errors into `{"error": code, "message": words}` with the matching status.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { AppError, OverloadedError, StorageError } from '../errors';
import type { Logger } from '../logging';
import type { VenueProfile } from '../execution/router';
import type { Commands } from '../runtime/commands';
import type { TradingLoop } from '../runtime/loop';
import type { Orchestrator } from '../runtime/orchestrator';
import type { SignalRegistry } from '../journal/tracker';
import { PROPOSAL_STATES, type ProposalState } from '../../machines/proposal.machine';
import { isWellFormedId } from '../proposal/ids';
import { machineStructure, mermaidDiagram } from '../proposal/diagram';
import { proposalJson } from '../proposal/view';
import type { Redact } from '../redaction';
import { SHARED_PRINCIPAL, deciderOf, describeDecider, principalOfToken, type Decider, type OperatorToken } from '../identity';
import { approveBody, armBody, malformedJson, parseSignal, parseWith, rejectBody, tradingStateBody, type FieldIssue } from './schemas';
import { dedupeKey } from '../runtime/dedupe-window';
import type { Metrics } from './metrics';
import { consoleAssets } from './console';
import { RECENT_SIGNALS, type LiveEvents } from './live-events';

export interface ApiDeps {
  apiToken: string;
  /** Takes every configured secret out of an answer that may quote the request. */
  redact?: Redact;
  /** OPERATOR_TOKENS: named tokens whose principal is their name. */
  operatorTokens?: readonly OperatorToken[];
  quoteCurrency: string;
  maxBodyBytes: number;
  trustProxy: boolean;
  commands: Commands;
  loop: TradingLoop;
  orchestrator: Orchestrator;
  registry: SignalRegistry;
  metrics: Metrics;
  logger: Logger;
  isReady: () => boolean;
  /** Why DATA_DIR cannot be written right now, or null while it can. */
  storageProblem: () => string | null;
  /** Each configured venue with what it can do (order types, dry run, client ids, minimum). */
  venues?: () => VenueProfile[];
  /** The console's live stream and views (`/api/events`, `/api/pending`, `/api/signals`). */
  live?: LiveEvents;
  /** Routes added by later layers (webhooks, console) before the error handler. */
  extraRoutes?: (app: express.Express) => void;
}


const STATUS_BY_CATEGORY: Record<string, number> = {
  input: 400, conflict: 409, not_found: 404, venue_rejected: 502, venue_auth: 502, transient: 503, invariant: 500, configuration: 500, storage: 503, overloaded: 503,
};

export function createHttpApp(deps: ApiDeps): express.Express {
  const redact = deps.redact ?? (<T>(v: T) => v);
  // An issue may quote what was sent: configured secrets never go back out in it.
  const invalid = (res: Response, issues: FieldIssue[]): void => {
    res.status(400).json(redact({ error: 'invalid_payload', message: issues.map((i) => `${i.path || 'body'}: ${i.message}`).join('; '), issues }));
  };
  const app = express();
  app.disable('x-powered-by');
  // Trust exactly one proxy hop: the left-most X-Forwarded-For entries are the caller's to forge.
  app.set('trust proxy', deps.trustProxy ? 1 : false);
  app.use((req, res, next) => {
    res.on('finish', () => deps.metrics.httpRequest(req.method, res.statusCode));
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req, res) => {
    const storage = deps.storageProblem();
    if (storage) res.status(503).json({ status: 'unavailable', error: 'storage_unavailable', message: storage });
    else if (deps.isReady()) res.json({ status: 'ready' });
    else res.status(503).json({ status: 'starting', error: 'not_ready', message: 'restoring persisted proposals' });
  });
  app.get('/metrics', async (_req, res) => {
    const text = await deps.metrics.render();
    res.set('Content-Type', deps.metrics.contentType).send(text);
  });

  // The console: one page, its script and its style, all from this origin and nothing else.
  const assets = consoleAssets();
  for (const asset of assets) {
    app.get(asset.path, (_req, res) => {
      res.set({ 'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'", 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-cache' });
      res.type(asset.type).send(asset.body);
    });
  }

  deps.extraRoutes?.(app);

  const api = express.Router();
  api.use((req, res, next) => {
    const header = req.get('authorization') ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(header);
    const principal = m ? principalOfToken(m[1]!.trim(), deps.apiToken, deps.operatorTokens ?? []) : null;
    if (principal === null) {
      res.status(401).json({ error: 'unauthorized', message: 'a valid Authorization: Bearer <API_TOKEN or an operator token> header is required' });
      return;
    }
    res.locals['principal'] = principal;
    next();
  });
  api.use((req, res, next) => {
    if (req.method === 'POST' && req.headers['content-length'] !== '0' && req.headers['content-type'] !== undefined && !req.is('application/json')) {
      res.status(415).json({ error: 'unsupported_media_type', message: `content type ${req.headers['content-type']} is not accepted; send application/json` });
      return;
    }
    next();
  });
  api.use(express.json({ limit: deps.maxBodyBytes, strict: false, type: 'application/json' }));

  const body = (req: Request): unknown => (req.body === undefined ? {} : req.body);
  /**
   * Who decides: the token's principal, with a shared-token caller's `by` as its label. Answers
   * 400 for a bad `by` and 403 identity_mismatch for a named token's `by` naming someone else.
   */
  const decider = (res: Response, by: unknown, labelRequired = true): Decider | undefined => {
    if (by !== undefined && typeof by !== 'string') {
      invalid(res, [{ path: 'by', message: 'must be a string' }]);
      return undefined;
    }
    const found = deciderOf(String(res.locals['principal']), by, labelRequired);
    if (found.ok) return found.decider;
    const p = found.problem;
    if (p.status === 400) invalid(res, [{ path: p.field, message: p.message }]);
    else res.status(403).json({ error: p.code, message: p.message });
    return undefined;
  };
  const byOf = (req: Request): unknown => (req.body as { by?: unknown } | undefined)?.by;
  const idParam = (req: Request, res: Response): string | undefined => {
    const id = String(req.params['id']);
    if (!isWellFormedId(id)) {
      res.status(404).json({ error: 'not_found', message: `no such id: ${id.slice(0, 80)}` });
      return undefined;
    }
    return id;
  };

  api.post('/signals', async (req, res) => {
    const parsed = parseSignal(req.body, { quoteCurrency: deps.quoteCurrency });
    if (!parsed.ok) {
      deps.metrics.signal('api', 'invalid');
      return invalid(res, parsed.issues);
    }
    // A manual signal is a duplicate only when it repeats an `id`.
    const key = parsed.value.externalId !== undefined ? dedupeKey('api', {}, parsed.value.externalId) : null;
    const ack = await deps.loop.receive(parsed.value, 'api', key).catch((err: unknown) => {
      deps.metrics.signal('api', err instanceof AppError ? err.code : 'error');
      throw err;
    });
    deps.metrics.signal('api', ack.status);
    res.status(ack.status === 'accepted' ? 202 : 200).json(ack);
  });

  api.get('/whoami', (_req, res) => {
    const principal = String(res.locals['principal']);
    // The shared token's decisions count as `api` and carry a name only as a label, which it must give.
    res.json({ principal, shared: principal === SHARED_PRINCIPAL, labelRequired: principal === SHARED_PRINCIPAL });
  });

  api.get('/events', (_req, res) => {
    if (!deps.live) return void res.status(404).json({ error: 'not_found', message: 'the live stream is not running' });
    deps.live.open(res, String(res.locals['principal']));
  });

  api.get('/pending', (_req, res) => {
    if (!deps.live) return void res.status(404).json({ error: 'not_found', message: 'the console views are not running' });
    res.json(deps.live.pending());
  });

  api.get('/signals', (req, res) => {
    if (!deps.live) return void res.status(404).json({ error: 'not_found', message: 'the console views are not running' });
    const limit = typeof req.query['limit'] === 'string' ? Number(req.query['limit']) : 50;
    if (!Number.isInteger(limit) || limit < 1 || limit > RECENT_SIGNALS) return invalid(res, [{ path: 'limit', message: `must be a whole number from 1 to ${RECENT_SIGNALS}` }]);
    res.json({ signals: deps.live.recentSignals(limit) });
  });

  api.get('/signals/:id', (req, res) => {
    const id = idParam(req, res);
    if (!id) return;
    const rec = deps.registry.get(id);
    if (!rec) return void res.status(404).json({ error: 'not_found', message: `no signal with id ${id}` });
    res.json({
      id: rec.id, receivedAt: rec.receivedAt, status: rec.status,
      ...(rec.proposalId ? { proposalId: rec.proposalId } : {}), ...(rec.reason ? { reason: rec.reason } : {}), ...(rec.detail ? { detail: rec.detail } : {}),
      ...(rec.signal ? { signal: rec.signal } : {}),
    });
  });

  api.get('/proposals', (req, res) => {
    if (req.query['state'] !== undefined && typeof req.query['state'] !== 'string') {
      return invalid(res, [{ path: 'state', message: 'give one state' }]);
    }
    const state = typeof req.query['state'] === 'string' ? req.query['state'] : undefined;
    if (state !== undefined && !PROPOSAL_STATES.includes(state as ProposalState)) {
      return invalid(res, [{ path: 'state', message: `must be one of ${PROPOSAL_STATES.join(', ')}` }]);
    }
    const limitRaw = typeof req.query['limit'] === 'string' ? Number(req.query['limit']) : 100;
    if (!Number.isInteger(limitRaw) || limitRaw < 1 || limitRaw > 1000) return invalid(res, [{ path: 'limit', message: 'must be a whole number from 1 to 1000' }]);
    res.json({ proposals: deps.orchestrator.list({ ...(state ? { state } : {}), limit: limitRaw }).map(proposalJson) });
  });

  api.get('/proposals/:id', (req, res) => {
    const id = idParam(req, res);
    if (!id) return;
    const view = deps.orchestrator.view(id);
    if (!view) return void res.status(404).json({ error: 'not_found', message: `no proposal with id ${id}` });
    res.json(proposalJson(view));
  });

  api.get('/proposals/:id/diagram', (req, res) => {
    const id = idParam(req, res);
    if (!id) return;
    const view = deps.orchestrator.view(id);
    if (!view) return void res.status(404).json({ error: 'not_found', message: `no proposal with id ${id}` });
    const mermaid = mermaidDiagram({ visited: view.history.map((h) => h.state), current: view.state });
    if (req.accepts(['text/plain', 'application/json']) === 'application/json') res.json({ id, state: view.state, mermaid });
    else res.type('text/plain').send(mermaid);
  });

  api.get('/machines/proposal', (_req, res) => {
    res.json({ machine: machineStructure(), mermaid: mermaidDiagram() });
  });

  api.post('/proposals/:id/approve', async (req, res) => {
    const id = idParam(req, res);
    if (!id) return;
    const parsed = parseWith(approveBody, body(req));
    if (!parsed.ok) return invalid(res, parsed.issues);
    const who = decider(res, parsed.value.by);
    if (!who) return;
    const { view, counted } = await deps.commands.approve(id, who.principal, parsed.value.sizeFactor, who.label);
    res.json({ ...proposalJson(view), approvalCounted: counted });
  });

  api.post('/proposals/:id/reject', async (req, res) => {
    const id = idParam(req, res);
    if (!id) return;
    const parsed = parseWith(rejectBody, body(req));
    if (!parsed.ok) return invalid(res, parsed.issues);
    const who = decider(res, parsed.value.by);
    if (!who) return;
    res.json(proposalJson(await deps.commands.reject(id, who.principal, parsed.value.reason, who.label)));
  });

  api.get('/portfolio', (_req, res) => {
    res.json(deps.commands.portfolio());
  });
  api.get('/status', (_req, res) => {
    res.json(deps.commands.status());
  });
  api.get('/venues', (_req, res) => {
    res.json({ venues: deps.venues?.() ?? [] });
  });
  api.get('/state', (_req, res) => {
    res.json(deps.commands.state());
  });
  api.post('/pause', async (req, res) => {
    const who = decider(res, byOf(req), false);
    if (!who) return;
    res.json((await deps.commands.pause(describeDecider(who))).state);
  });
  api.post('/resume', async (req, res) => {
    const who = decider(res, byOf(req), false);
    if (!who) return;
    res.json((await deps.commands.resume(describeDecider(who))).state);
  });
  api.post('/arm', async (req, res) => {
    const parsed = parseWith(armBody, body(req));
    if (!parsed.ok) return invalid(res, parsed.issues);
    const who = decider(res, parsed.value.by);
    if (!who) return;
    res.json(await deps.commands.arm(describeDecider(who), parsed.value.minutes));
  });
  api.post('/disarm', async (req, res) => {
    const who = decider(res, byOf(req), false);
    if (!who) return;
    res.json(await deps.commands.disarm(describeDecider(who)));
  });
  api.post('/trading-state', async (req, res) => {
    const parsed = parseWith(tradingStateBody, body(req));
    if (!parsed.ok) return invalid(res, parsed.issues);
    const who = decider(res, parsed.value.by);
    if (!who) return;
    const v = parsed.value;
    const by = describeDecider(who);
    res.json(await deps.commands.setTradingState(v.state, by, v.reason ?? `set by ${by}`));
  });
  api.post('/scan', async (req, res) => {
    const symbol = (req.body as { symbol?: unknown } | undefined)?.symbol;
    if (symbol !== undefined && typeof symbol !== 'string') return invalid(res, [{ path: 'symbol', message: 'must be a string such as KRW-BTC' }]);
    res.json(await deps.commands.scan(symbol));
  });
  api.post('/liquidate', async (req, res) => {
    const who = decider(res, byOf(req));
    if (!who) return;
    res.json(await deps.commands.liquidate(describeDecider(who)));
  });
  app.use('/api', api);

  app.use((_req, res) => {
    res.status(404).json({ error: 'not_found', message: 'no such endpoint' });
  });

  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = err as { type?: string; status?: number; message?: string };
    if (e.type === 'entity.too.large') {
      return void res.status(413).json({ error: 'payload_too_large', message: `the body is larger than ${deps.maxBodyBytes} bytes` });
    }
    if (e.type === 'entity.parse.failed') {
      return invalid(res, [{ path: '', message: malformedJson(e) }]);
    }
    if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') {
      return void res.status(415).json({ error: 'unsupported_media_type', message: String(e.message) });
    }
    // Other body-reading failures (a body that does not match its Content-Encoding, an aborted
    // upload) are the client's: answer with their 4xx, never a 500 that TradingView would re-send.
    const status = (err as { status?: unknown; statusCode?: unknown }).status ?? (err as { statusCode?: unknown }).statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return void res.status(status).json({ error: 'bad_request', message: `the request body could not be read: ${String(e.message).slice(0, 120)}` });
    }
    if (err instanceof AppError) {
      const status = STATUS_BY_CATEGORY[err.category] ?? 500;
      if (err instanceof OverloadedError) res.setHeader('Retry-After', String(err.retryAfterSeconds));
      if (err instanceof StorageError) res.setHeader('Retry-After', '5');
      const extra = err.category === 'input' ? { issues: (err.details['issues'] as FieldIssue[] | undefined) ?? [] } : {};
      return void res.status(status).json({ error: err.code, message: err.message, ...extra });
    }
    deps.logger.error('unhandled HTTP error', { error: err instanceof Error ? err.message : String(err) });
    res.status(500).json({ error: 'internal_error', message: 'internal error; see the service log' });
  });
  return app;
}
