/**
 * `npm run demo`: an offline demonstration. Starts the service on recorded (replay) candles in a
 * temporary DATA_DIR, posts the sample TradingView alerts from docs/samples/, and prints the
 * proposals they made. Nothing leaves this machine.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { pathToFileURL } from 'node:url';

const ROOT = path.resolve(import.meta.dirname, '..');
const SECRET = 'demo-webhook-secret-0123456789';
const TOKEN = 'demo-api-token-0123456789';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** 60 hourly candles per symbol, gently rising with growing volume, ending at `last`. */
function writeCandles(file: string, symbols: Record<string, number>): void {
  const lines: string[] = [];
  const end = Date.parse('2026-11-26T00:00:00Z');
  for (const [symbol, last] of Object.entries(symbols)) {
    for (let i = 59; i >= 0; i--) {
      const close = Math.round(last * (1 - i * 0.002 + (i % 4 === 0 ? 0.005 : 0)));
      const open = Math.round(close * 0.999);
      lines.push(JSON.stringify({
        symbol, time: new Date(end - i * 3_600_000).toISOString(), open, high: Math.round(close * 1.003), low: Math.round(open * 0.997), close,
        volume: i === 0 ? 40 : 10 + (i % 5),
      }));
    }
  }
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatops-demo-'));
  const candles = path.join(dir, 'candles.jsonl');
  writeCandles(candles, { 'KRW-BTC': 100_000_000, 'KRW-ETH': 5_000_000, 'KRW-XRP': 800 });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, ['--import', pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href, path.join(ROOT, 'src/main.ts')], {
    cwd: dir,
    env: {
      ...process.env, DATA_DIR: path.join(dir, 'data'), PORT: String(port), MARKET_DATA_SOURCE: 'replay', MARKET_DATA_REPLAY_FILE: candles,
      WEBHOOK_SECRET: SECRET, API_TOKEN: TOKEN, LOG_LEVEL: 'warn', TELEGRAM_BOT_TOKEN: '', DISCORD_WEBHOOK_URL: '', LLM_BASE_URL: '',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${url}/readyz`)).status === 200) break;
      } catch { /* not up yet */ }
      if (i > 300) throw new Error('the service did not become ready');
      await new Promise((r) => setTimeout(r, 50));
    }
    console.log(`chatops-trading demo: service on ${url} (paper, replay candles, data in ${dir})\n`);
    const sampleDir = path.join(ROOT, 'docs/samples');
    const samples = fs.readdirSync(sampleDir).filter((f) => f.endsWith('.json')).sort();
    const signalIds: Array<{ file: string; id: string | undefined; status: number; answer: unknown }> = [];
    for (const file of samples) {
      const body = JSON.parse(fs.readFileSync(path.join(sampleDir, file), 'utf8')) as Record<string, unknown>;
      body['secret'] = SECRET;
      const res = await fetch(`${url}/webhook/tradingview`, { method: 'POST', headers: { 'content-type': 'text/plain; charset=utf-8' }, body: JSON.stringify(body) });
      const answer = (await res.json()) as { signalId?: string };
      signalIds.push({ file, id: answer.signalId, status: res.status, answer });
      console.log(`POST ${file} → ${res.status} ${JSON.stringify(answer)}`);
    }
    const auth = { authorization: `Bearer ${TOKEN}` };
    await new Promise((r) => setTimeout(r, 1500));
    console.log('\nWhat became of each alert:');
    for (const s of signalIds) {
      if (!s.id) continue;
      const sig = (await (await fetch(`${url}/api/signals/${s.id}`, { headers: auth })).json()) as { status: string; proposalId?: string; reason?: string };
      if (!sig.proposalId) {
        console.log(`- ${s.file}: ${sig.status}${sig.reason ? ` (${sig.reason})` : ''}`);
        continue;
      }
      const p = (await (await fetch(`${url}/api/proposals/${sig.proposalId}`, { headers: auth })).json()) as { id: string; side: string; symbol: string; notional: number; confidence: number; state: string; reasons: Array<{ message: string }>; explanation: string };
      console.log(`- ${s.file}: proposal ${p.id} ${String(p.side).toUpperCase()} ${p.symbol} ${Math.round(p.notional)} KRW, confidence ${p.confidence}, state ${p.state}`);
      for (const r of (p.reasons as Array<{ message: string }>).slice(0, 6)) console.log(`    • ${r.message}`);
      console.log(`    ${p.explanation}`);
    }
    const portfolio = await (await fetch(`${url}/api/portfolio`, { headers: auth })).json();
    console.log(`\nPortfolio: ${JSON.stringify(portfolio)}`);
    console.log('\nProposals awaiting approval can be approved with:');
    console.log(`  curl -X POST ${url}/api/proposals/<id>/approve -H 'Authorization: Bearer ${TOKEN}' -H 'content-type: application/json' -d '{"by":"you"}'`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
