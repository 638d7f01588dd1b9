/**
 * Runs the real service as a child process (node + tsx, no npm in between, so SIGKILL hits the
 * service itself) with its own DATA_DIR and a free port, and talks to it over HTTP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = path.resolve(import.meta.dirname, '../..');
/** tsx's ESM loader by absolute URL (the child's cwd is its DATA_DIR, where `tsx` does not resolve). */
const TSX_LOADER = pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix = 'chatops-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Writes a replay candle file with one candle per symbol at the given prices. */
export function writeCandles(dir: string, prices: Record<string, number>, file = 'candles.jsonl'): string {
  const p = path.join(dir, file);
  const lines = Object.entries(prices).map(([symbol, close]) => JSON.stringify({ symbol, time: '2026-11-26T00:00:00Z', open: close, high: close, low: close, close, volume: 10 }));
  fs.writeFileSync(p, `${lines.join('\n')}\n`);
  return p;
}

export interface ServiceHandle {
  url: string;
  token: string;
  dataDir: string;
  env: Record<string, string>;
  child: ChildProcess;
  output: () => string;
  /** JSON request against the service with the bearer token. */
  api: (method: string, p: string, body?: unknown, headers?: Record<string, string>) => Promise<{ status: number; body: any }>;
  waitReady: (timeoutMs?: number) => Promise<void>;
  kill: () => Promise<void>;
  stop: () => Promise<number | null>;
}

/** Starts the service; `env` adds to a test baseline (replay data, paper, free port). */
export async function startService(opts: { dataDir?: string; env?: Record<string, string>; waitReady?: boolean } = {}): Promise<ServiceHandle> {
  const dataDir = opts.dataDir ?? tempDir();
  const port = await freePort();
  const token = 'test-token-0123456789abcdef';
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '',
    HOME: process.env['HOME'] ?? os.tmpdir(),
    DATA_DIR: dataDir,
    PORT: String(port),
    HOST: '127.0.0.1',
    API_TOKEN: token,
    WEBHOOK_SECRET: 'test-webhook-secret-0123456789',
    LOG_LEVEL: 'info',
    ...opts.env,
  };
  if (!env['MARKET_DATA_SOURCE']) {
    env['MARKET_DATA_SOURCE'] = 'replay';
    env['MARKET_DATA_REPLAY_FILE'] = env['MARKET_DATA_REPLAY_FILE'] ?? writeCandles(dataDir, { 'KRW-BTC': 100_000_000, 'KRW-ETH': 5_000_000 }, '.candles.jsonl');
  }
  // tsx is resolved from this repository, not from the child's working directory (DATA_DIR).
  const child = spawn(process.execPath, ['--import', TSX_LOADER, path.join(ROOT, 'src/main.ts')], {
    cwd: dataDir, env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const handle: ServiceHandle = {
    url, token, dataDir, env, child,
    output: () => out,
    api: async (method, p, body, headers = {}) => {
      const res = await fetch(`${url}${p}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
        ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try { parsed = JSON.parse(text); } catch { /* not JSON */ }
      return { status: res.status, body: parsed };
    },
    waitReady: async (timeoutMs = 15000) => {
      const until = Date.now() + timeoutMs;
      while (Date.now() < until) {
        if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode}:\n${out}`);
        try {
          const res = await fetch(`${url}/readyz`);
          if (res.status === 200) return;
        } catch { /* not listening yet */ }
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`service not ready within ${timeoutMs} ms:\n${out}`);
    },
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
  if (opts.waitReady !== false) await handle.waitReady();
  return handle;
}

/** Polls `check` until it returns a value (not undefined) or the bound passes. */
export async function waitFor<T>(check: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 10000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Every journal record of the data dir, oldest day first. */
export function readJournal(dataDir: string): Array<Record<string, any>> {
  const dir = path.join(dataDir, 'journal');
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort()
    .flatMap((f) => fs.readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>));
}
