/**
 * `npm run ledger [-- --data-dir <dir>]`: recounts cash, positions, fees and realised PnL from
 * the journal (`DATA_DIR/journal/`: the opening, fills and book adjustments) and compares them
 * with the book: the paper venue's (`DATA_DIR/paper-venue/`), or in live mode the venue's
 * (`DATA_DIR/live-book/<venue>/`), to the smallest unit. Exit 0: the book matches; 1: a
 * difference, or a journal line that cannot be counted; 2: nothing to compare (no book, no
 * journal, bad configuration). Reads only, and prints no secret (configuration errors never echo
 * one). Run it on a stopped service, or when no order is in flight: a fill is journalled just
 * after the venue books it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig, parseDotEnv } from '../src/config';
import { AppError } from '../src/errors';
import { compareWithBook, readJournalRecords, recountJournal, type Difference, type Recount } from '../src/journal/ledger';
import { readLogStore } from '../src/persistence/store-reader';
import { lockHolder } from '../src/persistence/lock-file';

const USAGE = 'usage: npm run ledger [-- --data-dir <dir>]   (default: DATA_DIR from the environment or .env, else ./data)';

/** A reason to stop before comparing (exit 2), in words for the operator. */
class CannotCompare extends Error {}

/** `--data-dir <dir>` or `--data-dir=<dir>`; undefined when not given. */
function parseArgs(argv: string[]): string | undefined {
  let dataDir: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (arg === '--data-dir' && argv[i + 1] !== undefined) dataDir = argv[++i];
    else if (arg.startsWith('--data-dir=')) dataDir = arg.slice('--data-dir='.length);
    else throw new CannotCompare(`unknown argument ${JSON.stringify(arg)}\n${USAGE}`);
  }
  if (dataDir !== undefined && dataDir.trim() === '') throw new CannotCompare(`--data-dir must name a folder\n${USAGE}`);
  return dataDir;
}

/** Environment as the service reads it: `.env` in the working directory, overridden by real variables. */
function readEnvironment(): Record<string, string | undefined> {
  const file = path.resolve('.env');
  const fromFile = fs.existsSync(file) ? parseDotEnv(fs.readFileSync(file, 'utf8')) : {};
  return { ...fromFile, ...process.env };
}

/** The book's store folder: the paper venue's, or in live mode the live venue's book; stops when there is none. */
function bookDir(dataDir: string, venue: string): string {
  if (venue !== 'paper') {
    const live = path.join(dataDir, 'live-book', venue);
    if (!fs.existsSync(live)) throw new CannotCompare(`${dataDir} has no live book of ${venue}: ${live} does not exist`);
    return live;
  }
  const dir = path.join(dataDir, 'paper-venue');
  if (!fs.existsSync(dir)) {
    const legacy = fs.existsSync(path.join(dataDir, 'paper-venue.json')) ? ' (paper-venue.json of an older version is there: start the service once to import it)' : '';
    throw new CannotCompare(`${dataDir} has no paper book: ${dir} does not exist${legacy}`);
  }
  return dir;
}

/** The paper portfolio as stored; a book with no portfolio yet (no order placed) is a fresh account. */
function readBook(dir: string, recount: Recount): { book: unknown; fresh: boolean } {
  const portfolio = readLogStore(dir).get('portfolio');
  if (portfolio !== undefined) return { book: portfolio, fresh: false };
  return { book: { cash: recount.initialCash ?? '0', positions: {}, feesPaid: '0', realizedPnl: '0', consecutiveLosses: 0 }, fresh: true };
}

function render(dataDir: string, recount: Recount, ccy: string, fresh: boolean, differences: Difference[]): string {
  const money = (v: string | null) => (v === null ? 'unknown' : `${v} ${ccy}`);
  const from = recount.initialCashFrom === 'account.opened' ? 'account.opened in the journal'
    : recount.initialCashFrom === 'option' ? 'PAPER_INITIAL_CASH: the journal has no account.opened record' : 'not known';
  const positions = Object.entries(recount.positions).map(([s, p]) => `${s} ${p.quantity} (cost ${money(p.costBasis)})`);
  const lines = [
    `Ledger of ${dataDir}: ${recount.fills} fill${recount.fills === 1 ? '' : 's'} counted from the journal`,
    `  initial cash   ${money(recount.initialCash)} (${from})`,
    `  cash           ${money(recount.cash)}`,
    `  fees paid      ${money(recount.feesPaid)}`,
    `  realised PnL   ${money(recount.realizedPnl)}`,
    `  losses in a row ${recount.consecutiveLosses}`,
    `  positions      ${positions.length === 0 ? 'none' : positions.join('\n                 ')}`,
  ];
  if (fresh) lines.push('The paper book holds no portfolio yet (no order placed): compared with a fresh account.');
  if (recount.warnings.length > 0) lines.push(`Warnings (${recount.warnings.length}):`, ...recount.warnings.map((w) => `  - ${w}`));
  if (recount.errors.length > 0) lines.push(`Errors (${recount.errors.length}): the recount cannot be trusted`, ...recount.errors.map((e) => `  - ${e}`));
  if (differences.length === 0) lines.push(recount.errors.length === 0 ? 'The book matches the journal.' : 'The book matches the recount, but the journal has errors (above).');
  else lines.push(`The book differs from the journal in ${differences.length} field${differences.length === 1 ? '' : 's'}:`, ...differences.map((d) => `  ${d.field}: journal ${d.journal ?? 'none'}, book ${d.book ?? 'none'}`));
  return `${lines.join('\n')}\n`;
}

function main(): number {
  const given = parseArgs(process.argv.slice(2));
  const env = readEnvironment();
  const config = loadConfig(given === undefined ? env : { ...env, DATA_DIR: given });
  const dataDir = config.dataDir;
  const journalDir = path.join(dataDir, 'journal');
  // Live mode keeps one book per venue: each is recounted from its own fills and adjustments.
  const venues: string[] = config.trading.mode === 'live' ? [...config.trading.venues] : ['paper'];
  const dirs = new Map(venues.map((venue) => [venue, bookDir(dataDir, venue)]));
  const lines = fs.existsSync(journalDir) ? readJournalRecords(journalDir) : [];
  if (lines.length === 0) throw new CannotCompare(`${dataDir} has no journal: no YYYY-MM-DD.jsonl day file with a line in ${journalDir}`);
  let exit = 0;
  const out: string[] = [];
  for (const venue of venues) {
    const dir = dirs.get(venue)!;
    const recount = recountJournal(lines, { venue, countedElsewhere: venues.filter((v) => v !== venue), ...(venue === 'paper' ? { initialCash: config.paper.initialCash } : {}) });
    const { book, fresh } = readBook(dir, recount);
    const differences = compareWithBook(recount, book);
    const heading = venues.length > 1 ? `${venue}: ` : '';
    out.push(heading + render(dataDir, recount, recount.quoteCurrency ?? config.trading.quoteCurrency, fresh, differences));
    if (differences.length > 0 || recount.errors.length > 0) exit = 1;
  }
  // The lock's own test of its holder: a zombie or a reused pid is no running service.
  const pid = lockHolder(dataDir);
  if (pid !== undefined) {
    process.stderr.write(`Note: a service (process ${pid}) holds ${dataDir}: an order in flight can show as a difference; run again once it is stopped or idle.\n`);
  }
  process.stdout.write(out.join('\n'));
  return exit;
}

try {
  process.exitCode = main();
} catch (err) {
  // Configuration errors never echo secret values (see loadConfig); nothing else here reads one.
  if (err instanceof CannotCompare || err instanceof AppError) process.stderr.write(`ledger: ${err.message}\n`);
  else process.stderr.write(`ledger: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 2;
}
