/**
 * First start on a fresh DATA_DIR with no API_TOKEN or WEBHOOK_SECRET: the generated secrets are
 * printed by the first start that succeeds (listening and ready), never by one that fails, and
 * never again after that (INTERFACES.md, "Starting it").
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { expect } from 'chai';
import { startService, tempDir, waitFor, type ServiceHandle } from '../support/service-process';

/** Unset, so the service generates both. */
const NO_SECRETS = { API_TOKEN: '', WEBHOOK_SECRET: '' };

interface StoredSecrets { API_TOKEN: string; WEBHOOK_SECRET: string; shown?: Record<string, boolean> }

describe('first start', function () {
  // Three service starts per test; a start takes 1-2 s, much more on a loaded machine.
  this.timeout(120_000);

  let handles: ServiceHandle[] = [];
  let dirs: string[] = [];
  let blockers: net.Server[] = [];

  function dataDir(): string {
    const dir = tempDir('chatops-first-start-');
    dirs.push(dir);
    return dir;
  }

  /** Starts the service without waiting; `closed` resolves with the exit code once all output has arrived. */
  async function launch(dir: string, env: Record<string, string>): Promise<{ h: ServiceHandle; closed: Promise<number | null> }> {
    const h = await startService({ dataDir: dir, env: { ...NO_SECRETS, ...env }, waitReady: false });
    handles.push(h);
    // 'close' (not 'exit'): every byte of stdout and stderr has arrived by then.
    const closed = new Promise<number | null>((resolve) => h.child.once('close', (code) => resolve(code)));
    return { h, closed };
  }

  /** Starts, waits until ready, stops with SIGTERM, and returns the whole output. */
  async function runOnce(dir: string): Promise<{ h: ServiceHandle; output: string }> {
    const { h, closed } = await launch(dir, {});
    await h.waitReady(45_000);
    // The secrets are printed after readiness; the status proves the service really answers.
    expect((await h.api('GET', '/healthz')).status).to.equal(200);
    h.child.kill('SIGTERM');
    expect(await closed).to.equal(0);
    return { h, output: h.output() };
  }

  /** A plain TCP server holding a loopback port, so the service cannot listen on it. */
  async function occupyPort(): Promise<number> {
    const srv = net.createServer();
    blockers.push(srv);
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => resolve());
    });
    return (srv.address() as net.AddressInfo).port;
  }

  const readSecrets = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'secrets.json'), 'utf8')) as StoredSecrets;

  afterEach(async function () {
    const failed = this.currentTest?.state === 'failed';
    await Promise.all(handles.map((h) => h.kill()));
    if (failed) {
      for (const h of handles) process.stderr.write(`\n--- service output (${h.url}) ---\n${h.output().slice(-4000)}\n`);
    }
    await Promise.all(blockers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    handles = [];
    dirs = [];
    blockers = [];
  });

  /** Asserts the next start prints the secrets and next steps, and the one after prints neither. */
  async function expectShownOnceFromNow(dir: string, secrets: StoredSecrets): Promise<void> {
    const second = await runOnce(dir);
    const port = new URL(second.h.url).port;
    expect(second.output).to.include(`API_TOKEN=${secrets.API_TOKEN}`);
    expect(second.output).to.include(`WEBHOOK_SECRET=${secrets.WEBHOOK_SECRET}`);
    expect(second.output).to.include('Next steps');
    expect(second.output).to.include(`http://127.0.0.1:${port}/`);
    expect(second.output).to.include(path.join(dir, 'secrets.json'));
    expect(second.output).to.match(/First signal.*\/webhook\/tradingview/);
    expect(readSecrets(dir).shown).to.deep.equal({ WEBHOOK_SECRET: true, API_TOKEN: true });
    const logs = fs.readdirSync(path.join(dir, 'logs')).map((f) => fs.readFileSync(path.join(dir, 'logs', f), 'utf8')).join('\n');
    expect(logs).not.to.include(secrets.API_TOKEN);
    expect(logs).not.to.include(secrets.WEBHOOK_SECRET);

    const third = await runOnce(dir);
    expect(third.output).not.to.include(secrets.API_TOKEN);
    expect(third.output).not.to.include(secrets.WEBHOOK_SECRET);
    expect(third.output).not.to.include('Next steps');
  }

  it('prints the generated secrets only when a start succeeds when the first start finds its port taken', async () => {
    const dir = dataDir();
    const busy = await occupyPort();
    const first = await launch(dir, { PORT: String(busy) });
    const code = await first.closed;
    expect(code).to.be.a('number').and.not.equal(0);
    const out = first.h.output();
    expect(out).to.match(/EADDRINUSE|address already in use/i);
    expect(out).not.to.match(/listening on/);

    const secrets = readSecrets(dir);
    expect(secrets.API_TOKEN.length).to.be.at.least(24);
    expect(secrets.shown).to.deep.equal({ WEBHOOK_SECRET: false, API_TOKEN: false });
    expect(out).not.to.include(secrets.API_TOKEN);
    expect(out).not.to.include(secrets.WEBHOOK_SECRET);
    expect(out).not.to.include('Next steps');

    await expectShownOnceFromNow(dir, secrets);
  });

  it('prints the generated secrets only when a start succeeds when the first start is refused in live mode', async () => {
    const dir = dataDir();
    // KIS cannot be reached: the start fails after the secrets were generated.
    const first = await launch(dir, { TRADING_MODE: 'live', EXECUTION_VENUE: 'kis', KIS_API_URL: 'http://127.0.0.1:9', KIS_APP_KEY: 'a-kis-app-key', KIS_APP_SECRET: 'a-kis-app-secret', KIS_ACCOUNT_NO: '50123456-01' });
    const code = await first.closed;
    expect(code).to.be.a('number').and.not.equal(0);
    const out = first.h.output();
    expect(out).to.match(/KIS/);
    const secrets = readSecrets(dir);
    expect(out).not.to.include(secrets.API_TOKEN);
    expect(out).not.to.include(secrets.WEBHOOK_SECRET);

    await expectShownOnceFromNow(dir, secrets);
  });

  it('accepts the printed API_TOKEN when the first successful start has printed it', async () => {
    const dir = dataDir();
    const { h, closed } = await launch(dir, {});
    await h.waitReady(45_000);
    const printed = await waitFor(() => /API_TOKEN=(\S+)/.exec(h.output())?.[1], 'the generated API_TOKEN to be printed', 10_000);
    expect(printed).to.equal(readSecrets(dir).API_TOKEN);
    const state = (token: string) => fetch(`${h.url}/api/state`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);
    expect(await state(printed)).to.equal(200);
    expect(await state(h.token)).to.equal(401);
    h.child.kill('SIGTERM');
    expect(await closed).to.equal(0);
  });
});
