/**
 * The edges of `npm run replay`: its arguments, and what it prints (a table for people, or with
 * `--json` one document for programs). Pure: no I/O here.
 */
import { InputError } from '../errors';
import { APPROVE_MODES, type ApproveMode, type ReplayResult } from './runner';

export const USAGE = 'usage: npm run replay -- FILE [FILE …] [--approve policy|all|none] [--json]';

export interface ReplayArgs {
  files: string[];
  approve: ApproveMode;
  json: boolean;
  help: boolean;
}

/** Parses the arguments after `--`; a bad one is an InputError whose message says which and why. */
export function parseReplayArgs(argv: readonly string[]): ReplayArgs {
  const out: ReplayArgs = { files: [], approve: 'policy', json: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') out.help = true;
    else if (arg === '--json') out.json = true;
    else if (arg === '--approve' || arg.startsWith('--approve=')) {
      const value = arg === '--approve' ? argv[++i] : arg.slice('--approve='.length);
      if (value === undefined || !APPROVE_MODES.includes(value as ApproveMode)) {
        throw new InputError('replay_usage', `--approve must be policy, all or none, got ${value === undefined ? 'nothing' : JSON.stringify(value)}`);
      }
      out.approve = value as ApproveMode;
    } else if (arg.startsWith('-') && arg !== '-') throw new InputError('replay_usage', `unknown option ${JSON.stringify(arg)}`);
    else out.files.push(arg);
  }
  if (out.files.length === 0 && !out.help) throw new InputError('replay_usage', 'no FILE given: name a journal file (DATA_DIR/journal/YYYY-MM-DD.jsonl) or a JSON-lines file of webhook bodies');
  return out;
}

/** The `--json` document: `{proposals: [{signalId, symbol, side, state, notional, …}], portfolio: {…}, …}`. */
export function replayDocument(result: ReplayResult): Record<string, unknown> {
  return {
    proposals: result.proposals, portfolio: result.portfolio,
    approve: result.approve, source: result.kind, from: result.from, to: result.to,
  };
}

const number = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 8 });

/** The table a person reads: one line per signal, what the original run did beside it, then the portfolio. */
export function renderReplay(result: ReplayResult, files: readonly string[]): string {
  const ccy = result.portfolio.quoteCurrency;
  const journal = result.kind === 'journal';
  const span = result.from === null ? 'nothing to replay' : `simulated ${result.from} → ${result.to}`;
  const lines = [`Replay of ${files.join(', ')} (${result.kind}, --approve ${result.approve}): ${result.proposals.length} signal${result.proposals.length === 1 ? '' : 's'}, ${span}`, ''];
  const header = ['SIGNAL', 'SYMBOL', 'SIDE', 'OUTCOME', `NOTIONAL ${ccy}`, ...(journal ? ['ORIGINAL'] : []), 'WHY'];
  const rows = result.proposals.map((p) => {
    const why = p.fill ? `filled ${number(p.fill.quantity)} at ${number(p.fill.price)}` : (p.reason ?? '');
    const was = p.original ? `${p.original.state}${p.original.state !== p.state ? ' (differs)' : ''}` : '-';
    return [p.signalId, p.symbol, p.side, p.state, p.notional === null ? '-' : number(p.notional), ...(journal ? [was] : []), why || '-'];
  });
  lines.push(...table([header, ...rows]), '');
  if (journal) {
    const compared = result.proposals.filter((p) => p.original);
    const differ = compared.filter((p) => p.original!.state !== p.state).length;
    lines.push(differ === 0 ? `All ${compared.length} outcomes are the original run's.` : `${differ} of ${compared.length} outcomes differ from the original run's.`, '');
  }
  const p = result.portfolio;
  lines.push(`Portfolio (${ccy}): cash ${number(p.cash)}, equity ${number(p.equity)}, daily PnL ${number(p.dailyPnl)}, realised PnL ${number(p.realizedPnl)}, consecutive losses ${p.consecutiveLosses}`);
  for (const x of p.positions) lines.push(`  ${x.symbol}  ${x.exactQuantity} at ${number(x.avgPrice)} (value ${number(x.marketValue)})`);
  if (p.positions.length === 0) lines.push('  no positions');
  return `${lines.join('\n')}\n`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  '));
}
