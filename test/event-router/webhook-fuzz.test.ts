/**
 * Fuzzing `POST /webhook/tradingview` on one real service: thousands of random and mutated bodies
 * (arbitrary JSON, valid alerts with one field broken, truncated or garbled text, random bytes,
 * wrong content types). Each answer is checked against a reference validator written here from
 * INTERFACES.md, independently of src/: never a 5xx, every refusal says what is wrong, and a
 * signal (hence a proposal) is only ever made from a body the reference accepts.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import fs from 'node:fs';
import http from 'node:http';
import { readJournal, startService, tempDir, waitFor, type ServiceHandle } from '../support/service-process';

const SECRET = 'test-webhook-secret-0123456789';
/** Requests in one batch, posted at once over keep-alive connections. */
const BATCH = 8;
/** Batches per run: BATCH × RUNS ≥ 5,000 bodies. */
const RUNS = 640;

// ---------------------------------------------------------------------------------------------
// Reference validator (from INTERFACES.md). Three verdicts for a body's fields: `valid` (the
// contract says it must be accepted), `invalid` (must be refused) and `either` (the contract is
// silent, e.g. a strategy name of 500 characters or a hexadecimal price string: accepting or
// refusing are both fine, as long as the answer is not a 5xx).
// ---------------------------------------------------------------------------------------------

type Verdict = 'valid' | 'either' | 'invalid';
type Expected =
  | { status: 415 }
  | { status: 400; why: string }
  | { status: 401 }
  | { status: 'accepted' | 'accepted-or-400'; verdict: Verdict; why: string };

const worst = (a: Verdict, b: Verdict): Verdict => (a === 'invalid' || b === 'invalid' ? 'invalid' : a === 'either' || b === 'either' ? 'either' : 'valid');

/**
 * Pairs written in every form INTERFACES.md lists; those quoted in QUOTE_CURRENCY (KRW) must be
 * accepted, the others refused (sizes, cash and PnL are in KRW).
 */
const PAIRS: Array<[string, string]> = [['BTC', 'KRW'], ['ETH', 'KRW'], ['XRP', 'KRW']];
const OTHER_QUOTE: Array<[string, string]> = [['BTC', 'USDT'], ['ETH', 'BTC']];
const forms = ([b, q]: [string, string]) => [`${q}-${b}`, `${b}/${q}`, `${b}${q}`, `UPBIT:${b}${q}`, `BINANCE:${b}${q}`];
const STRICT_SYMBOLS = PAIRS.flatMap(forms);
const STRICT_SET = new Set(STRICT_SYMBOLS);
const OTHER_QUOTE_SET = new Set(OTHER_QUOTE.flatMap(forms));

function symbolVerdict(v: unknown): Verdict {
  if (v === null) return 'either';
  if (typeof v !== 'string') return 'invalid';
  const upper = v.toUpperCase();
  if (STRICT_SET.has(upper)) return 'valid';
  if (OTHER_QUOTE_SET.has(upper)) return 'invalid';
  // A superset of every plausible spelling (exchange prefix, separators, perpetual suffix).
  return /^([A-Z0-9_]{1,20}:)?[A-Z0-9]+([/_-][A-Z0-9]+)?(\.P)?$/.test(upper.trim()) ? 'either' : 'invalid';
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** A number or numeric string within `ok`. */
function numericVerdict(v: unknown, ok: (n: number) => boolean): Verdict {
  if (v === undefined) return 'valid';
  if (v === null) return 'either';
  if (typeof v === 'number') return Number.isFinite(v) && ok(v) ? 'valid' : 'invalid';
  if (typeof v !== 'string') return 'invalid';
  const t = v.trim();
  const n = Number(t);
  if (t === '' || !Number.isFinite(n) || !ok(n)) return 'invalid';
  return DECIMAL.test(v) ? 'valid' : 'either'; // "0x10", " 5 ": JS reads them, the contract does not say
}

/** Free text (strategy, timeframe, time, id): a string or a number; very long or blank is unspecified. */
function textVerdict(v: unknown, max: number): Verdict {
  if (v === undefined) return 'valid';
  if (v === null) return 'either';
  if (typeof v !== 'string' && typeof v !== 'number') return 'invalid';
  if (typeof v === 'number' && !Number.isFinite(v)) return 'either'; // 1e999 in the JSON text
  const t = String(v).trim();
  return t === '' || t.length > max || t !== String(v) ? 'either' : 'valid';
}

function actionVerdict(v: unknown): Verdict {
  if (typeof v !== 'string') return 'invalid';
  if (['buy', 'sell', 'exit'].includes(v.toLowerCase())) return 'valid';
  return ['buy', 'sell', 'exit'].includes(v.trim().toLowerCase()) ? 'either' : 'invalid';
}

function fieldsVerdict(body: Record<string, unknown>): { verdict: Verdict; why: string } {
  const parts: Array<[string, Verdict]> = [];
  parts.push(['action', actionVerdict(body['action'])]);
  const chosen = body['symbol'] !== undefined ? 'symbol' : 'ticker';
  const other = chosen === 'symbol' ? 'ticker' : 'symbol';
  parts.push([chosen, body[chosen] === undefined ? 'invalid' : symbolVerdict(body[chosen])]);
  if (body[other] !== undefined && typeof body[other] !== 'string') parts.push([other, 'either']);
  parts.push(['price', numericVerdict(body['price'], (n) => n >= 1e-8 && n <= 1e15)]);
  parts.push(['size', numericVerdict(body['size'], (n) => n >= 1e-8 && n <= 1e15)]);
  parts.push(['confidence', numericVerdict(body['confidence'], (n) => n >= 0 && n <= 1)]);
  parts.push(['strategy', textVerdict(body['strategy'], 100)]);
  parts.push(['timeframe', textVerdict(body['timeframe'], 20)]);
  parts.push(['time', textVerdict(body['time'], 40)]);
  parts.push(['id', textVerdict(body['id'], 128)]);
  const verdict = parts.reduce<Verdict>((acc, [, v]) => worst(acc, v), 'valid');
  return { verdict, why: parts.filter(([, v]) => v !== 'valid').map(([k, v]) => `${k}:${v}`).join(',') };
}

const ACCEPTED_TYPES = ['application/json', 'text/plain'];

/** What the webhook must answer to this request, by the contract. */
function reference(body: Buffer, contentType: string | null): Expected {
  const media = contentType?.split(';')[0]!.trim().toLowerCase() ?? '';
  if (!ACCEPTED_TYPES.includes(media)) return { status: 415 };
  const text = new TextDecoder('utf-8').decode(body); // replaces bad bytes, drops a BOM
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { status: 400, why: 'not JSON' };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { status: 400, why: 'not an object' };
  const fields = parsed as Record<string, unknown>;
  if (typeof fields['secret'] !== 'string' || fields['secret'] !== SECRET) return { status: 401 };
  const { verdict, why } = fieldsVerdict(fields);
  if (verdict === 'invalid') return { status: 400, why };
  return { status: verdict === 'valid' ? 'accepted' : 'accepted-or-400', verdict, why };
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

interface Case {
  kind: string;
  body: Buffer;
  contentType: string | null;
}

/** A case that fast-check prints readably in a counterexample. */
function makeCase(kind: string, body: Buffer, contentType: string | null): Case {
  return { kind, body, contentType, [fc.toStringMethod]: () => show({ kind, body, contentType }) } as Case;
}

const GOOD_TYPES = ['text/plain; charset=utf-8', 'text/plain; charset=utf-8', 'application/json', 'text/plain', 'application/json; charset=utf-8', 'TEXT/PLAIN;charset=UTF-8', 'Application/JSON'];
const BAD_TYPES: Array<string | null> = [
  null, '', 'application/xml', 'text/xml', 'text/html', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=abc',
  'application/octet-stream', 'text/csv', 'application/vnd.api+json', 'application/jsonl', 'text/json5', 'image/png',
];

const goodType = fc.constantFrom(...GOOD_TYPES);
const badType = fc.constantFrom(...BAD_TYPES);

const numberOrString = (arb: fc.Arbitrary<number>) => fc.oneof(arb, arb.map(String));

/** A body the contract accepts (symbol or ticker in any listed form, optional fields in range). */
const validBody: fc.Arbitrary<Record<string, unknown>> = fc.record({
  symbolKey: fc.constantFrom('symbol', 'ticker'),
  symbol: fc.mixedCase(fc.constantFrom(...STRICT_SYMBOLS)),
  action: fc.mixedCase(fc.constantFrom('buy', 'sell', 'exit')),
  price: fc.option(numberOrString(fc.integer({ min: 1, max: 200_000_000 })), { nil: undefined }),
  confidence: fc.option(numberOrString(fc.double({ min: 0, max: 1, noNaN: true, noDefaultInfinity: true }).map((n) => (Object.is(n, -0) ? 0 : n))), { nil: undefined }),
  size: fc.option(numberOrString(fc.integer({ min: 5_000, max: 3_000_000 })), { nil: undefined }),
  strategy: fc.option(fc.stringMatching(/^[a-z][a-z0-9-]{0,30}$/), { nil: undefined }),
  timeframe: fc.option(fc.oneof(fc.constantFrom('1', '5', '15', '60', '240', '1D', '1W'), fc.integer({ min: 1, max: 1440 })), { nil: undefined }),
  time: fc.option(fc.date({ min: new Date('2020-01-01T00:00:00Z'), max: new Date('2030-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString().replace(/\.\d{3}Z$/, 'Z')), { nil: undefined }),
  id: fc.option(fc.uuid(), { nil: undefined }),
}).map(({ symbolKey, symbol, ...rest }) => {
  const out: Record<string, unknown> = { secret: SECRET, [symbolKey]: symbol };
  for (const [k, v] of Object.entries(rest)) if (v !== undefined) out[k] = v;
  return out;
});

/** Raw number tokens JSON.stringify cannot write (they parse to Infinity, 0 or lose precision). */
const RAW_TOKENS = ['1e999', '-1e999', '1E400', '1e-400', '123456789012345678901234567890', '-0', '0.0000000000000000000000001'];
const RAW = (i: number) => `\u0000raw${i}\u0000`;

const DELETE = Symbol('delete');
const weirdStrings = fc.constantFrom(
  'NaN', 'Infinity', '-Infinity', '1e999', '-1', '0', '-0', '0x10', '0b101', '1,000', '1_000', '١٢٣', '１２３', '', ' ', '\t\n', '1e-400',
  '00012', '+5', '.5', '5.', 'null', 'true', 'undefined', 'buy', 'BUY ', ' exit', 'sell\n', 'hold', 'long', 'KRW-BTC', 'UPBIT:', ':BTCKRW',
  'BTC//KRW', 'KRW-KRW', 'BTC-', '-BTC', 'BTC/KRW/USDT', 'UPBIT:BTCKRW:X', 'BTCUSDT.P', 'ßKRW', 'btc_krw', '💥', '\u0000', '\uFEFF', '<script>',
  '{{ticker}}', '{{close}}', '{{strategy.order.action}}', SECRET, `${SECRET}\u0000`, 'x'.repeat(129), 'B'.repeat(300),
);
const mutationValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.constant(DELETE), weight: 3 },
  { arbitrary: fc.constant(null), weight: 2 },
  { arbitrary: fc.boolean(), weight: 1 },
  { arbitrary: fc.integer(), weight: 1 },
  { arbitrary: fc.double(), weight: 2 }, // NaN and ±Infinity are written as null by JSON.stringify
  { arbitrary: fc.constantFrom(1e308, -1e308, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 2, Number.MIN_VALUE, -Number.MIN_VALUE, -1, 0), weight: 2 },
  { arbitrary: fc.integer({ min: 0, max: RAW_TOKENS.length - 1 }).map(RAW), weight: 2 },
  { arbitrary: weirdStrings, weight: 6 },
  { arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }), weight: 2 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 40 }), weight: 2 },
  { arbitrary: fc.string({ minLength: 100, maxLength: 400 }), weight: 1 },
  { arbitrary: fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }), weight: 1 },
  { arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }), weight: 1 },
);
const FIELDS = ['secret', 'symbol', 'ticker', 'action', 'price', 'confidence', 'size', 'strategy', 'timeframe', 'time', 'id'];
const fieldName = fc.oneof(
  { arbitrary: fc.constantFrom(...FIELDS), weight: 10 },
  { arbitrary: fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'SECRET', 'Action', 'exchange', ''), weight: 2 },
  { arbitrary: fc.string({ maxLength: 12 }), weight: 1 },
);

/** JSON text of an object; raw markers become raw number tokens; own `__proto__` keys survive. */
function writeJson(obj: Record<string, unknown>): string {
  let text = JSON.stringify(obj);
  RAW_TOKENS.forEach((tok, i) => {
    text = text.split(JSON.stringify(RAW(i))).join(tok);
  });
  return text;
}

/** A valid body with one field deleted, retyped or replaced (including new keys). */
const mutatedBody = fc.tuple(validBody, fc.array(fc.tuple(fieldName, mutationValue), { minLength: 1, maxLength: 2 })).map(([body, edits]) => {
  const out: Record<string, unknown> = { ...body };
  for (const [key, value] of edits) {
    if (value === DELETE) delete out[key];
    else Object.defineProperty(out, key, { value, enumerable: true, configurable: true, writable: true });
  }
  return writeJson(out);
});

/** Text edits of a valid body's JSON: truncation, one character changed, wrapping, BOM, noise. */
const garbledText = fc.tuple(validBody.map(writeJson), fc.nat(), fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }), fc.constantFrom(
  'truncate', 'delete', 'insert', 'replace', 'wrap-array', 'wrap-string', 'bom', 'trailing-space', 'trailing-garbage', 'double', 'single-quotes', 'no-close',
)).map(([text, n, noise, how]) => {
  const i = n % Math.max(1, text.length);
  switch (how) {
    case 'truncate': return text.slice(0, i);
    case 'delete': return text.slice(0, i) + text.slice(i + 1);
    case 'insert': return text.slice(0, i) + noise + text.slice(i);
    case 'replace': return text.slice(0, i) + noise + text.slice(i + noise.length);
    case 'wrap-array': return `[${text}]`;
    case 'wrap-string': return JSON.stringify(text);
    case 'bom': return `\uFEFF${text}`;
    case 'trailing-space': return `\n ${text} \r\n`;
    case 'trailing-garbage': return `${text}${noise}`;
    case 'double': return `${text}${text}`;
    case 'single-quotes': return text.replace(/"/g, "'");
    default: return text.slice(0, -1);
  }
});

const anyJson = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? 'null'),
  fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 8 }).map((d) => JSON.stringify({ ...d, secret: SECRET })),
);

const utf8 = (s: string) => Buffer.from(s, 'utf8');

function show(c: Case): string {
  return `${c.kind} ${JSON.stringify(c.contentType)} ${JSON.stringify(c.body.toString('utf8').slice(0, 300))}`;
}

const caseArb: fc.Arbitrary<Case> = fc.oneof(
  { arbitrary: fc.tuple(validBody, goodType).map(([b, t]) => makeCase('valid', utf8(writeJson(b)), t)), weight: 20 },
  { arbitrary: fc.tuple(mutatedBody, goodType).map(([b, t]) => makeCase('mutated', utf8(b), t)), weight: 40 },
  { arbitrary: fc.tuple(anyJson, goodType).map(([b, t]) => makeCase('any-json', utf8(b), t)), weight: 10 },
  { arbitrary: fc.tuple(garbledText, goodType).map(([b, t]) => makeCase('garbled', utf8(b), t)), weight: 12 },
  { arbitrary: fc.tuple(fc.uint8Array({ maxLength: 2048 }), goodType).map(([b, t]) => makeCase('bytes', Buffer.from(b), t)), weight: 6 },
  { arbitrary: fc.tuple(validBody, badType).map(([b, t]) => makeCase('wrong-type', utf8(writeJson(b)), t)), weight: 12 },
);

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

interface Answer {
  status: number;
  text: string;
  body: any;
  ms: number;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: BATCH });

function post(url: string, c: Case, extraHeaders: Record<string, string> = {}): Promise<Answer> {
  const u = new URL('/webhook/tradingview', url);
  const headers: Record<string, string | number> = { 'content-length': c.body.length, ...extraHeaders };
  if (c.contentType !== null) headers['content-type'] = c.contentType;
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers, agent, timeout: 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try { body = JSON.parse(text); } catch { /* checked below */ }
        resolve({ status: res.statusCode ?? 0, text, body, ms: performance.now() - t0 });
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 15 s')));
    req.on('error', reject);
    req.end(c.body);
  });
}


/** Checks one answer against the reference; records accepted and duplicate ids. */
function check(c: Case, a: Answer, seen: { accepted: Set<string>; duplicateOf: string[]; fromEither: number }): void {
  const where = `${show(c)} → ${a.status} ${a.text.slice(0, 300)}`;
  expect(a.status, where).to.be.below(500);
  if (a.status >= 400) {
    expect(a.body, where).to.be.an('object');
    expect(a.body.error, where).to.be.a('string').and.not.equal('');
    expect(a.body.message, where).to.be.a('string').and.not.equal('');
    if (a.status === 400) {
      expect(a.body.error, where).to.equal('invalid_payload');
      expect(a.body.issues, where).to.be.an('array').that.is.not.empty;
      for (const issue of a.body.issues as unknown[]) {
        expect(issue, where).to.have.property('path').that.is.a('string');
        expect(issue, where).to.have.property('message').that.is.a('string').and.not.equal('');
      }
    }
  }
  const want = reference(c.body, c.contentType);
  switch (want.status) {
    case 415:
      expect(a.status, where).to.equal(415);
      break;
    case 401:
      expect(a.status, where).to.equal(401);
      expect(a.body.error, where).to.equal('unauthorized');
      break;
    case 400:
      expect(a.status, `${where} (reference: ${want.why})`).to.equal(400);
      break;
    default: {
      const allowed = want.status === 'accepted' ? [200, 202] : [200, 202, 400];
      expect(a.status, `${where} (reference: ${want.verdict} ${want.why})`).to.be.oneOf(allowed);
      if (a.status === 202) {
        expect(a.body.status, where).to.equal('accepted');
        seen.accepted.add(a.body.signalId as string);
        if (want.verdict === 'either') seen.fromEither += 1;
      }
      if (a.status === 200) {
        expect(a.body.status, where).to.equal('duplicate');
        seen.duplicateOf.push(a.body.signalId as string);
      }
    }
  }
}

describe('POST /webhook/tradingview under fuzzing', function () {
  this.timeout(180_000);
  let svc: ServiceHandle;
  let dir: string;

  before(async () => {
    dir = tempDir('chatops-fuzz-');
    svc = await startService({ dataDir: dir, env: { WEBHOOK_RATE_LIMIT_PER_MINUTE: '0', DEDUPE_WINDOW_SECONDS: '2', LOG_LEVEL: 'warn' } });
  });

  after(async () => {
    await svc?.kill();
    agent.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('never answers 5xx, names every refusal and makes signals only from bodies the contract accepts, over 5,000 bodies', async () => {
    const seen = { accepted: new Set<string>(), duplicateOf: [] as string[], fromEither: 0 };
    const statuses = new Map<number, number>();
    const latencies: number[] = [];
    let posted = 0;
    const started = Date.now();

    await fc.assert(fc.asyncProperty(fc.array(caseArb, { minLength: BATCH, maxLength: BATCH }), async (batch) => {
      const answers = await Promise.all(batch.map((c) => post(svc.url, c)));
      posted += batch.length;
      answers.forEach((a, i) => {
        statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
        latencies.push(a.ms);
        check(batch[i]!, a, seen);
      });
    }), { numRuns: RUNS });

    const elapsed = Date.now() - started;
    latencies.sort((a, b) => a - b);
    const p99 = latencies[Math.floor(latencies.length * 0.99)]!;
    console.log(`      ${posted} bodies in ${elapsed} ms; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}; ` +
      `accepted from unspecified bodies ${seen.fromEither}; latency p99 ${p99.toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms`);

    expect(posted).to.be.at.least(5000);
    for (const s of [202, 400, 401, 415]) expect(statuses.get(s) ?? 0, `some answers were ${s}`).to.be.above(50);
    // Latency is printed above, not asserted: speed belongs to `npm run bench`.

    // Still alive and healthy.
    expect(svc.child.exitCode).to.equal(null);
    expect(svc.child.signalCode).to.equal(null);
    const health = await fetch(`${svc.url}/healthz`);
    expect(health.status).to.equal(200);
    expect(await health.json()).to.deep.equal({ status: 'ok' });

    // Every signal in the journal is one the service answered 202 for, and vice versa.
    const journal = readJournal(svc.dataDir);
    const received = journal.filter((r) => r['type'] === 'signal.received').map((r) => r['signalId'] as string);
    expect(received.length, 'signal.received lines = 202 answers').to.equal(seen.accepted.size);
    expect(new Set(received)).to.deep.equal(seen.accepted);
    for (const first of seen.duplicateOf) expect(seen.accepted.has(first), `duplicate of ${first}`).to.equal(true);

    // Processing finishes, and proposals come only from accepted signals.
    await waitFor(() => {
      const j = readJournal(svc.dataDir);
      const decided = new Set(j.filter((r) => r['type'] === 'signal.proposed' || r['type'] === 'signal.dropped').map((r) => r['signalId']));
      return received.every((id) => decided.has(id)) ? true : undefined;
    }, 'every accepted signal to be processed', 60_000);
    const created = readJournal(svc.dataDir).filter((r) => r['type'] === 'proposal.created');
    for (const p of created) expect(seen.accepted.has(p['signalId'] as string), `proposal ${p['proposalId']} from signal ${p['signalId']}`).to.equal(true);
    const listed = (await svc.api('GET', '/api/proposals?limit=1000')).body.proposals as Array<{ signalId: string }>;
    for (const p of listed) expect(seen.accepted.has(p.signalId)).to.equal(true);
    expect((await fetch(`${svc.url}/healthz`)).status).to.equal(200);
  });

  // BUGS (product), see test/event-router/tradingview.test.ts "known product bugs": a
  // Content-Encoding that does not match the body (gzip, deflate, br over plain text) and an extra
  // field nested thousands of levels deep both answer `500 internal_error`. Un-skip once fixed.
  it('never answers 5xx when headers carry random encodings and charsets or a field is deeply nested', async () => {
    const encodings = fc.constantFrom<string | undefined>(undefined, undefined, 'identity', 'gzip', 'deflate', 'br', 'x-bogus', 'gzip, gzip');
    const charsets = fc.constantFrom('', '; charset=utf-8', '; charset=UTF-16LE', '; charset=latin1', '; charset=us-ascii', '; charset=bogus', '; charset=');
    const deep = fc.integer({ min: 1, max: 12_000 }).map((depth) => `{"secret":"${SECRET}","symbol":"KRW-BTC","action":"buy","extra":${'['.repeat(depth)}${']'.repeat(depth)}}`);
    const headerCase = fc.tuple(fc.oneof(caseArb, deep.map((t) => makeCase('deep', utf8(t), 'application/json'))), encodings, charsets).map(([c, encoding, charset]) => ({
      c: makeCase(c.kind, c.body, c.contentType === null ? null : `${c.contentType.split(';')[0]}${charset}`),
      headers: (encoding === undefined ? {} : { 'content-encoding': encoding }) as Record<string, string>,
    }));
    await fc.assert(fc.asyncProperty(fc.array(headerCase, { minLength: BATCH, maxLength: BATCH }), async (batch) => {
      const answers = await Promise.all(batch.map(({ c, headers }) => post(svc.url, c, headers)));
      answers.forEach((a, i) => {
        const where = `${show(batch[i]!.c)} ${JSON.stringify(batch[i]!.headers)} → ${a.status} ${a.text.slice(0, 200)}`;
        expect(a.status, where).to.be.below(500);
        if (a.status >= 400) expect(a.body.message, where).to.be.a('string').and.not.equal('');
      });
    }), { numRuns: 150 });
    expect(svc.child.exitCode).to.equal(null);
    expect((await fetch(`${svc.url}/healthz`)).status).to.equal(200);
  });
});
