/**
 * `npm start` as an operator runs it: npm in the repository root, the service under it. SIGTERM
 * to npm's pid (what a supervisor sends) must stop the service itself, and a SIGKILL of npm's
 * whole process group must leave nothing that blocks a restart on the same DATA_DIR.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { freePort, tempDir, waitFor, writeCandles } from '../support/service-process';

const ROOT = path.resolve(import.meta.dirname, '../..');

interface NpmStart {
  npm: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** `npm start` in the repository root, in its own process group (so a test can kill the group). */
function npmStart(env: Record<string, string>): NpmStart {
  const npm = spawn('npm', ['start'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  npm.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  npm.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
  return { npm, output: () => out, exited };
}

/** /proc/<pid>/stat: parent pid and state letter; undefined once the pid is gone. */
function procStat(pid: number): { ppid: number; state: string } | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, ppid: Number(fields[1]) };
  } catch {
    return undefined;
  }
}

function pids(): number[] {
  return fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);
}

/** Running processes (zombies have no environment) started with this DATA_DIR. */
function processesWithDataDir(dataDir: string): number[] {
  const needle = `DATA_DIR=${dataDir}`;
  return pids().filter((p) => {
    try {
      return fs.readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').includes(needle);
    } catch {
      return false; // gone, or not ours to read
    }
  });
}

function cmdline(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** Resolves true when a connection to the port is refused. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => { socket.destroy(); resolve(false); });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

async function waitReady(port: number, run: NpmStart, timeoutMs = 45_000): Promise<void> {
  await waitFor(async () => {
    if (run.npm.exitCode !== null || run.npm.signalCode !== null) throw new Error(`npm start exited (${run.npm.exitCode ?? run.npm.signalCode}):\n${run.output()}`);
    try {
      return (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200 ? true : undefined;
    } catch {
      return undefined; // not listening yet
    }
  }, 'GET /readyz 200 from npm start', timeoutMs);
}

function lockPid(dataDir: string): number | undefined {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dataDir, 'service.lock'), 'utf8')) as { pid: number }).pid;
  } catch {
    return undefined;
  }
}

describe('npm start', function () {
  // npm plus tsx take a few seconds to start, more on a loaded machine.
  this.timeout(120_000);

  let runs: NpmStart[] = [];
  let dataDir: string;
  let port: number;
  let env: Record<string, string>;

  before(function () {
    if (process.platform !== 'linux') this.skip(); // reads /proc
  });

  beforeEach(async () => {
    dataDir = tempDir('chatops-npm-start-');
    port = await freePort();
    env = {
      PATH: process.env['PATH'] ?? '',
      HOME: process.env['HOME'] ?? os.tmpdir(),
      NPM_CONFIG_UPDATE_NOTIFIER: 'false',
      DATA_DIR: dataDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      API_TOKEN: 'npm-start-token-0123456789abcdef',
      WEBHOOK_SECRET: 'npm-start-webhook-secret-0123456789',
      MARKET_DATA_SOURCE: 'replay',
      MARKET_DATA_REPLAY_FILE: writeCandles(dataDir, { 'KRW-BTC': 100_000_000 }, '.candles.jsonl'),
    };
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') {
      for (const run of runs) process.stderr.write(`\n--- npm start output ---\n${run.output().slice(-4000)}\n`);
    }
    for (const run of runs) {
      try {
        process.kill(-run.npm.pid!, 'SIGKILL');
      } catch {
        // the group is gone
      }
    }
    await Promise.all(runs.map((r) => r.exited));
    // An orphaned service (a failed test) is in no group of ours any more.
    for (const pid of processesWithDataDir(dataDir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
    runs = [];
  });

  function start(): NpmStart {
    const run = npmStart(env);
    runs.push(run);
    return run;
  }

  it('stops the service within 10 s, port closed and lock released, when npm gets SIGTERM', async () => {
    const run = start();
    await waitReady(port, run);
    const service = lockPid(dataDir);
    expect(service, 'the service holds the lock').to.be.a('number');
    const parent = procStat(service!)?.ppid;
    const launchedAs = cmdline(service!).slice(1);

    process.kill(run.npm.pid!, 'SIGTERM');

    const deadline = 10_000;
    const started = Date.now();
    const code = await waitFor(() => run.npm.exitCode ?? (run.npm.signalCode !== null ? run.npm.signalCode : undefined), 'npm to exit', deadline);
    await waitFor(() => (procStat(service!) === undefined ? true : undefined), `the service (pid ${service}) to be gone`, Math.max(0, deadline - (Date.now() - started)));
    expect(Date.now() - started, 'stopped within 10 s').to.be.below(deadline);
    expect(await refused(port), 'the port is closed').to.equal(true);
    expect(fs.existsSync(path.join(dataDir, 'service.lock')), 'the lock is released').to.equal(false);
    expect(processesWithDataDir(dataDir), 'no process with this DATA_DIR remains').to.deep.equal([]);
    expect(run.output()).to.include('SIGTERM received');
    expect(code, 'npm passes on the service\'s clean exit').to.equal(0);
    // One process: npm's own child is the service (no shell or tsx launcher in between).
    expect(parent, 'the service is npm\'s child').to.equal(run.npm.pid);
    expect(launchedAs).to.deep.equal(['--import', 'tsx', 'src/main.ts']);
  });

  it('starts again at once on the same DATA_DIR when npm\'s whole process group was SIGKILLed', async () => {
    const first = start();
    await waitReady(port, first);
    const killed = lockPid(dataDir);
    expect(killed, 'the service holds the lock').to.be.a('number');

    process.kill(-first.npm.pid!, 'SIGKILL');
    const second = start();

    await waitReady(port, second);
    const service = lockPid(dataDir);
    expect(service, 'the new service holds the lock').to.not.equal(killed);
    expect(processesWithDataDir(dataDir), 'the lock names a running process of this DATA_DIR').to.include(service);
    const old = procStat(killed!);
    expect(old === undefined || old.state === 'Z', `the killed service (pid ${killed}) is not running`).to.equal(true);
    expect(second.output()).to.not.include('in use by process');

    process.kill(second.npm.pid!, 'SIGTERM');
    expect(await second.exited, 'the restarted service stops cleanly').to.equal(0);
  });

  // A terminal's Ctrl-C reaches the service directly and again through npm: the repeat must not
  // cut the one shutdown short (it once did: npm exited 130 and the lock stayed behind).
  it('stops cleanly when Ctrl-C sends SIGINT to the whole process group', async () => {
    const run = start();
    await waitReady(port, run);
    const service = lockPid(dataDir);

    process.kill(-run.npm.pid!, 'SIGINT');

    const code = await waitFor(() => run.npm.exitCode ?? (run.npm.signalCode !== null ? run.npm.signalCode : undefined), 'npm to exit', 10_000);
    await waitFor(() => (procStat(service!) === undefined ? true : undefined), `the service (pid ${service}) to be gone`, 10_000);
    expect(fs.existsSync(path.join(dataDir, 'service.lock')), 'the lock is released').to.equal(false);
    expect(run.output()).to.include('stopped');
    expect(code, 'a clean exit').to.equal(0);
  });
});
