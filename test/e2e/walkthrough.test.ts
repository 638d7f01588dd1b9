import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { ReplayMarketData } from '../../src/context/market-snapshot';
import { normaliseSymbol } from '../../src/symbols';
import { evaluateSignal, requiredCandles } from '../../src/proposal/rule-engine';
import { defaultRules } from '../../src/proposal/rules-config';
import { startService, tempDir, waitFor, type ServiceHandle } from '../support/service-process';

/**
 * The newcomer's path, as documented: the README walk-through and `npm run demo` are run as a
 * reader would run them (bash and curl, against a real process on docs/samples/candles.jsonl), and
 * each step must answer what the README says it answers. `.env.example` must describe every
 * variable the service reads.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const README = path.join(ROOT, 'README.md');
const CANDLES = path.join(ROOT, 'docs/samples/candles.jsonl');
const TSX_LOADER = pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;
/** The address the README's commands use; the test's service listens on a free port instead. */
const README_API = 'http://127.0.0.1:8080';
/** States a proposal leaves on its own, without a person. */
const MOVING = new Set(['pending', 'approved', 'executing']);

// ---------------------------------------------------------------------------------------------
// The README: its walk-through section, fenced blocks, steps and documented answers.

/** The text of the `## <heading…>` section, up to the next `## ` heading. */
function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n## ${heading}`);
  if (start < 0) throw new Error(`README.md has no "## ${heading}" section`);
  const end = markdown.indexOf('\n## ', start + 1);
  return markdown.slice(start, end < 0 ? undefined : end);
}

/** The contents of the ```sh fenced blocks of a text, in order. */
function shellBlocks(text: string): string[] {
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/** One documented answer: `# → 202 {"status":"accepted",…}`. */
interface Expected {
  line: string;
  status: number | undefined;
  /** `"key":value` pairs the answer must hold somewhere; a string with `…` is a prefix. */
  pairs: Array<[string, unknown]>;
}

interface Step {
  number: number;
  text: string;
  expected: Expected[];
}

function parseExpected(line: string): Expected {
  const body = line.replace(/^#\s*→\s*/, '');
  const status = /^(\d{3})\b/.exec(body);
  const pairs: Array<[string, unknown]> = [...body.matchAll(/"(\w+)":(null|true|false|-?\d+(?:\.\d+)?|"[^"]*")/g)]
    .map((m) => [m[1]!, JSON.parse(m[2]!) as unknown]);
  return { line, status: status ? Number(status[1]) : undefined, pairs };
}

/** Splits the walk-through block at its `# N.` comments; `# →` lines are the documented answers. */
function parseSteps(block: string): Step[] {
  const steps: Step[] = [];
  for (const line of block.split('\n')) {
    const head = /^# (\d+)\. /.exec(line);
    if (head) steps.push({ number: Number(head[1]), text: '', expected: [] });
    const step = steps.at(-1);
    if (!step) throw new Error(`the walk-through block starts with "${line}", not with a "# 0." step`);
    step.text += `${line}\n`;
    if (/^#\s*→/.test(line)) step.expected.push(parseExpected(line));
  }
  return steps;
}

/** `NAME=value …` assignments in front of `npm start` on the start line of a block. */
function startEnvironment(block: string): Record<string, string> {
  const line = block.split('\n').find((l) => /\bnpm start\s*$/.test(l));
  if (!line) throw new Error(`no "… npm start" line in:\n${block}`);
  return Object.fromEntries([...line.replace(/\bnpm start\s*$/, '').matchAll(/([A-Z_]+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
}

/** Whether `value` holds, at any depth, an object whose `key` is `expected` (`…` ends a prefix). */
function holds(value: unknown, key: string, expected: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (Object.prototype.hasOwnProperty.call(value, key)) {
    const actual = (value as Record<string, unknown>)[key];
    if (typeof expected === 'string' && expected.includes('…')) {
      if (typeof actual === 'string' && actual.startsWith(expected.slice(0, expected.indexOf('…')))) return true;
    } else if (actual === expected) return true;
  }
  return Object.values(value).some((v) => holds(v, key, expected));
}

// ---------------------------------------------------------------------------------------------
// A bash session that runs text as a reader pastes it, reporting each curl's HTTP status.

const hasShellTools = ['bash', 'curl'].every((tool) => spawnSync(tool, ['--version'], { stdio: 'ignore' }).status === 0);

/** What one run printed: curl's HTTP statuses and the JSON answers, each in order. */
interface Printed {
  text: string;
  statuses: number[];
  answers: unknown[];
}

class Shell {
  private out = '';
  private runs = 0;
  private readonly child: ChildProcess;

  constructor(cwd: string) {
    this.child = spawn('bash', ['--noprofile', '--norc'], {
      cwd, env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? cwd }, stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (d: Buffer) => { this.out += d.toString(); });
    this.child.stderr!.on('data', (d: Buffer) => { this.out += d.toString(); });
    // One stream in order; every curl also writes its HTTP status (to stderr, so `$(curl …)` keeps the body).
    this.child.stdin!.write(`exec 2>&1\ncurl() { command curl -w '%{stderr}\\n@@http %{http_code}\\n' "$@"; }\n`);
  }

  /** Runs `text` and resolves with what it printed, once bash has finished it. */
  async run(text: string, timeoutMs = 30_000): Promise<Printed> {
    const marker = `@@done-${(this.runs += 1)}`;
    const from = this.out.length;
    this.child.stdin!.write(`${text}\necho; echo "${marker} $?"\n`);
    const printed = await waitFor(() => {
      const at = this.out.indexOf(`${marker} `, from);
      return at < 0 ? undefined : this.out.slice(from, at);
    }, `bash to run:\n${text}\nprinted so far:\n${this.out.slice(from)}`, timeoutMs);
    const statuses = [...printed.matchAll(/@@http (\d{3})/g)].map((m) => Number(m[1]));
    const answers = printed.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as unknown);
    return { text: printed, statuses, answers };
  }

  close(): void {
    this.child.stdin!.end('exit\n');
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

/** Asserts that a run printed one answer per documented `# →` line, each as documented. */
function expectDocumented(printed: Printed, expected: Expected[], where: string): void {
  expect(printed.answers.length, `${where}: answers printed\n${printed.text}`).to.equal(expected.length);
  expect(printed.statuses.length, `${where}: curl statuses\n${printed.text}`).to.equal(expected.length);
  expected.forEach((e, i) => {
    const answer = printed.answers[i];
    if (e.status !== undefined) expect(printed.statuses[i], `${where}: ${e.line}\n${JSON.stringify(answer)}`).to.equal(e.status);
    for (const [key, value] of e.pairs) {
      expect(holds(answer, key, value), `${where}: "${key}":${JSON.stringify(value)} of ${e.line}\nin ${JSON.stringify(answer)}`).to.equal(true);
    }
  });
}

// ---------------------------------------------------------------------------------------------

describe('README walk-through (real process on docs/samples/candles.jsonl, bash and curl)', function () {
  this.timeout(120_000);
  let svc: ServiceHandle | undefined;
  let shell: Shell | undefined;
  let root: string | undefined;

  before(function () {
    if (!hasShellTools) this.skip();
  });
  afterEach(async () => {
    shell?.close();
    await svc?.kill();
    if (root) fs.rmSync(root, { recursive: true, force: true });
    svc = undefined;
    shell = undefined;
    root = undefined;
  });

  const get = async (token: string, p: string): Promise<any> => {
    const res = await fetch(`${svc!.url}${p}`, { headers: { authorization: `Bearer ${token}` } });
    return res.json();
  };

  /** A reader's pace: every signal handled, no proposal still moving on its own. */
  const quiet = (token: string, signalIds: Set<string>) => waitFor(async () => {
    for (const id of signalIds) if ((await get(token, `/api/signals/${id}`)).status === 'received') return undefined;
    const { proposals } = await get(token, '/api/proposals');
    return proposals.some((p: { state: string }) => MOVING.has(p.state)) ? undefined : true;
  }, 'the service to finish what the last step started', 20_000);

  it('answers every step as the README documents it, from the start command to settled paper trades', async () => {
    const walk = section(fs.readFileSync(README, 'utf8'), 'Walk-through with curl');
    const [startBlock, stepsBlock] = shellBlocks(walk);
    expect(stepsBlock, 'the walk-through has a start block and a steps block').to.be.a('string');

    // The documented start command, as written: replay on the sample candles, nothing else needed.
    const env = startEnvironment(startBlock!);
    expect(env).to.deep.equal({ MARKET_DATA_SOURCE: 'replay', MARKET_DATA_REPLAY_FILE: 'docs/samples/candles.jsonl' });
    expect(path.resolve(ROOT, env['MARKET_DATA_REPLAY_FILE']!)).to.equal(CANDLES);
    root = tempDir('chatops-walkthrough-');
    fs.mkdirSync(path.join(root, 'data'));
    svc = await startService({
      dataDir: path.join(root, 'data'),
      // No API_TOKEN or WEBHOOK_SECRET: generated, as on a fresh clone, and read back by step 0.
      env: { ...env, MARKET_DATA_REPLAY_FILE: CANDLES, API_TOKEN: '', WEBHOOK_SECRET: '' },
    });
    const token = JSON.parse(fs.readFileSync(path.join(root, 'data/secrets.json'), 'utf8')).API_TOKEN as string;
    await waitFor(() => (svc!.output().includes(`API_TOKEN=${token}`) ? true : undefined), 'the first start to print the generated API_TOKEN');

    const steps = parseSteps(stepsBlock!);
    expect(steps.map((s) => s.number)).to.deep.equal(steps.map((_, i) => i));
    expect(steps[0]!.text, 'step 0 sets API').to.include(`export API=${README_API}`);
    // The reader's shell runs in the folder that holds ./data, as the repository root does.
    shell = new Shell(root);
    const signals = new Set<string>();
    const proposals = new Set<string>();
    for (const step of steps) {
      await quiet(token, signals);
      const printed = await shell.run(step.text.split(README_API).join(svc.url));
      expectDocumented(printed, step.expected, `step ${step.number}`);
      for (const a of printed.answers as Array<Record<string, unknown>>) {
        if (typeof a['signalId'] === 'string' && a['status'] === 'accepted') signals.add(a['signalId']);
        if (typeof a['proposalId'] === 'string') proposals.add(a['proposalId']);
      }
    }

    // "From signal to settled paper trade": every proposal the walk-through made has settled with a fill.
    await quiet(token, signals);
    expect(signals.size, 'signals sent').to.be.greaterThan(0);
    expect(proposals.size, 'proposals made').to.equal(signals.size);
    for (const id of proposals) {
      const p = await get(token, `/api/proposals/${id}`);
      expect(p.state, JSON.stringify(p.outcome)).to.equal('settled');
      expect(p.priceSource, 'priced from the sample candles, not from the signal').to.equal('market');
      expect(p.fill.exact.quantity).to.be.a('string');
    }
  });
});

describe('npm run demo (scripts/demo.ts)', function () {
  this.timeout(120_000);
  let demo: ChildProcess | undefined;
  let shell: Shell | undefined;
  let shellDir: string | undefined;
  let dataDir: string | undefined;

  before(function () {
    if (!hasShellTools) this.skip();
  });
  afterEach(async () => {
    shell?.close();
    if (demo && demo.exitCode === null && demo.signalCode === null) {
      const exited = new Promise((r) => demo!.once('exit', r));
      demo.kill('SIGINT');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (demo.exitCode === null) demo.kill('SIGKILL');
    }
    for (const dir of [dataDir, shellDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
    demo = undefined;
    shell = undefined;
    shellDir = undefined;
    dataDir = undefined;
  });

  it('prints commands that work while it runs, and deletes its data on Ctrl-C', async () => {
    demo = spawn(process.execPath, ['--import', TSX_LOADER, path.join(ROOT, 'scripts/demo.ts')], {
      cwd: ROOT, env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? ROOT }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    demo.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    demo.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    const exited = new Promise<number | null>((r) => demo!.once('exit', (code) => r(code)));
    await waitFor(() => {
      if (demo!.exitCode !== null) throw new Error(`the demo ended early (${demo!.exitCode}):\n${out}`);
      return /until you press Ctrl-C/.test(out) ? true : undefined;
    }, 'the demo to print its commands', 90_000);
    dataDir = /data in (\S+)\)/.exec(out)?.[1];
    expect(dataDir, out).to.be.a('string');
    expect(fs.existsSync(dataDir!)).to.equal(true);

    // The story the demo tells on one BTC/KRW position: a buy settled by policy, its exit waiting
    // for a person, and two buys dropped because BTC/KRW is held.
    expect(out).to.match(/upbit-sized\.json: proposal \S+ BUY BTC\/KRW 50000 KRW, confidence 0\.8, state settled/);
    expect(out).to.match(/indicator-exit\.json: proposal \S+ SELL BTC\/KRW 50000 KRW, confidence 0\.67, state awaiting-approval/);
    expect(out).to.include('indicator-buy.json: dropped (duplicate_position)');
    expect(out).to.include('strategy-alert.json: dropped (duplicate_position)');

    const block = /Try it from another terminal while the demo runs:\n((?: {2}.*\n)+)/.exec(out)?.[1];
    expect(block, out).to.be.a('string');
    const commands = block!.split('\n').filter(Boolean).map((l) => l.slice(2)).join('\n');
    const curls = commands.split('\n').filter((l) => l.startsWith('curl ')).length;
    shellDir = tempDir('chatops-demo-shell-');
    shell = new Shell(shellDir);
    const printed = await shell.run(commands);
    expect(printed.statuses, printed.text).to.deep.equal(Array(curls).fill(200));
    expect(printed.answers).to.have.length(curls);
    const approved = printed.answers.find((a: any) => a.approvalCounted === true) as { id: string } | undefined;
    expect(approved, `an approval counted\n${printed.text}`).to.not.equal(undefined);
    if (commands.includes('/reject ')) expect(printed.answers.some((a: any) => a.state === 'rejected' && a.id !== approved!.id), printed.text).to.equal(true);

    // The approved proposal settles while the demo still runs.
    const [, url, token] = /export API=(\S+) TOKEN=(\S+)/.exec(commands)!;
    await waitFor(async () => {
      const p = (await (await fetch(`${url}/api/proposals/${approved!.id}`, { headers: { authorization: `Bearer ${token}` } })).json()) as { state: string };
      return MOVING.has(p.state) ? undefined : p.state;
    }, 'the approved proposal to finish').then((state) => expect(state).to.equal('settled'));

    demo.kill('SIGINT');
    expect(await exited).to.equal(0);
    expect(fs.existsSync(dataDir!), 'the temporary data folder is deleted').to.equal(false);
    await fetch(`${url}/healthz`).then(() => expect.fail('the service still answers after Ctrl-C'), () => undefined);
  });
});

describe('.env.example', () => {
  const example = fs.readFileSync(path.join(ROOT, '.env.example'), 'utf8').split(/\r?\n/);
  /** DEFAULTS of src/config.ts: every variable the service reads, with its default. */
  const defaults = (() => {
    const source = fs.readFileSync(path.join(ROOT, 'src/config.ts'), 'utf8');
    const block = /const DEFAULTS = \{([\s\S]*?)\n\} as const;/.exec(source)?.[1];
    if (!block) throw new Error('src/config.ts has no "const DEFAULTS = { … } as const;" block');
    return new Map([...block.matchAll(/^\s*([A-Z][A-Z0-9_]*): '([^']*)',/gm)].map((m) => [m[1]!, m[2]!]));
  })();
  const assignments = example.flatMap((line, index) => {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    return m ? [{ name: m[1]!, value: m[2]!, index }] : [];
  });
  /** A comment that describes the line under it (a `# --- …` line only names a group). */
  const describes = (line: string | undefined) => line !== undefined && /^#(?!\s*---)\s*\S/.test(line);

  it('reads the variables out of src/config.ts DEFAULTS', () => {
    expect(defaults.size).to.be.greaterThan(50);
    expect(defaults.get('PORT')).to.equal('8080');
  });

  it('lists every variable of src/config.ts DEFAULTS with a comment block right above it', () => {
    for (const name of defaults.keys()) {
      const found = assignments.filter((a) => a.name === name);
      expect(found, `${name} appears once in .env.example`).to.have.length(1);
      expect(describes(example[found[0]!.index - 1]), `a comment right above ${name}=`).to.equal(true);
    }
  });

  it('gives each variable its default value', () => {
    for (const { name, value } of assignments) {
      if (defaults.has(name)) expect(value, name).to.equal(defaults.get(name));
    }
  });

  it('has a comment block above every line, and only variables the service reads', () => {
    for (const { name, index } of assignments) {
      expect(describes(example[index - 1]), `a comment right above ${name}=`).to.equal(true);
      expect(defaults.has(name), `${name} is a variable of src/config.ts`).to.equal(true);
    }
  });
});

describe('docs/samples/candles.jsonl', () => {
  const market = ReplayMarketData.load(CANDLES, normaliseSymbol);
  const rules = defaultRules();

  it('holds BTC/KRW and ETH/KRW with enough candles for every default confirmation', async () => {
    expect(market.symbols()).to.include.members(['BTC/KRW', 'ETH/KRW']);
    for (const symbol of market.symbols()) {
      expect((await market.candles(symbol, 1000)).length, symbol).to.be.at.least(requiredCandles(rules));
    }
  });

  it('prices BTC/KRW at 100,000,000 KRW and ETH/KRW at 5,000,000, as the samples and the README say', async () => {
    expect((await market.quote('BTC/KRW')).price).to.equal(100_000_000);
    expect((await market.quote('ETH/KRW')).price).to.equal(5_000_000);
  });

  it('makes every default confirmation agree with a buy, so a buy without confidence gets 1', async () => {
    for (const symbol of market.symbols()) {
      const quote = await market.quote(symbol);
      const outcome = evaluateSignal({
        signal: { id: 'sig-sample', receivedAt: '2026-11-26T12:00:00Z', source: 'api', symbol, action: 'buy' },
        market: quote, marketError: null, candles: await market.candles(symbol, requiredCandles(rules)), candlesError: null,
        portfolio: { cash: 10_000_000, equity: 10_000_000, dayStartEquity: 10_000_000, dailyPnl: 0, realizedPnl: 0, consecutiveLosses: 0, tradingDay: '2026-11-26', positions: [], dust: [] },
        now: Date.parse('2026-11-26T12:00:00Z'),
      }, { rules, quoteCurrency: 'KRW', approvalTimeoutSeconds: 300, onMarketFailure: 'mark' });
      expect(outcome.kind, symbol).to.equal('proposal');
      if (outcome.kind !== 'proposal') continue;
      expect(outcome.confirmations.map((c) => c.status), symbol).to.deep.equal(['agrees', 'agrees', 'agrees']);
      expect(outcome.draft.confidence, symbol).to.equal(1);
    }
  });
});
