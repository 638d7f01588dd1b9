/**
 * `npm run vault -- --rebuild [--data-dir <dir>] [--out <dir>]`: makes the vault's markdown notes
 * again from the journal alone (`DATA_DIR/journal/`: its day files and the archive of finished
 * proposals), byte for byte what the service writes. Exit 0: rebuilt; 1: refused (a running
 * service holds DATA_DIR); 2: bad arguments or configuration.
 *
 * In place, it takes the DATA_DIR lock (so no service starts meanwhile, and none may be running:
 * the service writes the vault itself), builds into a new folder beside the vault and swaps it in
 * with two renames, so a failure leaves the old vault whole. With `--out <dir>` it writes the
 * notes into that (new or empty) folder instead and only reads DATA_DIR, also while a service runs.
 * Prints no secret: what is written has configured secrets taken out.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig, parseDotEnv, secretValues, type Config } from '../src/config';
import { AppError, ConfigError } from '../src/errors';
import { rebuildVault, type RebuildReport, type VaultLog } from '../src/journal/vault';
import { acquireDataDirLock, lockHolder } from '../src/persistence/lock-file';
import { secretScrubber } from '../src/redaction';

const USAGE = 'usage: npm run vault -- --rebuild [--data-dir <dir>] [--out <dir>]   (default: DATA_DIR from the environment or .env, else ./data)';

/** A reason to stop with exit 2, in words for the operator. */
class Usage extends Error {}
/** A reason to refuse with exit 1. */
class Refused extends Error {}

interface Args {
  dataDir?: string;
  out?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {};
  let rebuild = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (name: string) => {
      if (arg.startsWith(`${name}=`)) return arg.slice(name.length + 1);
      const next = argv[++i];
      if (next === undefined) throw new Usage(`${name} needs a folder\n${USAGE}`);
      return next;
    };
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else if (arg === '--rebuild') rebuild = true;
    else if (arg === '--data-dir' || arg.startsWith('--data-dir=')) args.dataDir = value('--data-dir');
    else if (arg === '--out' || arg.startsWith('--out=')) args.out = value('--out');
    else throw new Usage(`unknown argument ${JSON.stringify(arg)}\n${USAGE}`);
  }
  if (!rebuild) throw new Usage(`nothing to do: give --rebuild\n${USAGE}`);
  for (const [name, v] of Object.entries(args)) if (typeof v === 'string' && v.trim() === '') throw new Usage(`--${name === 'dataDir' ? 'data-dir' : name} must name a folder\n${USAGE}`);
  return args;
}

/** Environment as the service reads it: `.env` in the working directory, overridden by real variables. */
function readEnvironment(): Record<string, string | undefined> {
  const file = path.resolve('.env');
  const fromFile = fs.existsSync(file) ? parseDotEnv(fs.readFileSync(file, 'utf8')) : {};
  return { ...fromFile, ...process.env };
}

/** Secrets the service would take out: the configured ones and those it generated (read, never created). */
function secretsOf(config: Config): string[] {
  const dataDir = config.dataDir;
  const generated: string[] = [];
  try {
    const stored = JSON.parse(fs.readFileSync(path.join(dataDir, 'secrets.json'), 'utf8')) as Record<string, unknown>;
    for (const name of ['WEBHOOK_SECRET', 'API_TOKEN']) if (typeof stored[name] === 'string') generated.push(stored[name]);
  } catch {
    // none generated, or unreadable: the configured ones still count
  }
  return [...secretValues(config), ...generated];
}

const log: VaultLog = {
  warn: (message, meta) => process.stderr.write(`${message}${meta ? ` ${JSON.stringify(meta)}` : ''}\n`),
  error: (message, meta) => process.stderr.write(`${message}${meta ? ` ${JSON.stringify(meta)}` : ''}\n`),
};

function summary(report: RebuildReport, where: string): string {
  return `vault: ${report.notes} proposal note${report.notes === 1 ? '' : 's'} and ${report.days} daily note${report.days === 1 ? '' : 's'} from ${report.records} journal record${report.records === 1 ? '' : 's'}, in ${where}\n`;
}

/** Builds into `--out`: a new or empty folder, DATA_DIR only read. */
function buildElsewhere(journalDir: string, out: string, redact: ReturnType<typeof secretScrubber>): RebuildReport {
  if (fs.existsSync(out) && fs.readdirSync(out).length > 0) throw new Usage(`--out ${out} is not empty: give a new or empty folder`);
  return rebuildVault({ journalDir, outDir: out, log, redact });
}

/** Builds beside the vault under the lock, then swaps the new folder in. */
function buildInPlace(dataDir: string, journalDir: string, redact: ReturnType<typeof secretScrubber>): RebuildReport {
  let release: () => void;
  try {
    release = acquireDataDirLock(dataDir);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const pid = lockHolder(dataDir);
    throw new Refused(`${dataDir} is in use${pid !== undefined ? ` by process ${pid}` : ''}: a running service writes the vault itself. Stop it first, or build a copy with --out <dir>.`);
  }
  const vault = path.join(dataDir, 'vault');
  const fresh = path.join(dataDir, `.vault-rebuild-${process.pid}`);
  const old = path.join(dataDir, `.vault-old-${process.pid}`);
  try {
    // Folders a rebuild that was cut short left behind (the lock says none is running now).
    for (const name of fs.readdirSync(dataDir)) if (/^\.vault-(rebuild|old)-\d+$/.test(name)) fs.rmSync(path.join(dataDir, name), { recursive: true, force: true });
    const report = rebuildVault({ journalDir, outDir: fresh, log, redact });
    const had = fs.existsSync(vault);
    if (had) fs.renameSync(vault, old);
    try {
      fs.renameSync(fresh, vault);
    } catch (err) {
      if (had) fs.renameSync(old, vault);
      throw err;
    }
    fs.rmSync(old, { recursive: true, force: true });
    return report;
  } finally {
    fs.rmSync(fresh, { recursive: true, force: true });
    release();
  }
}

function main(): number {
  const args = parseArgs(process.argv.slice(2));
  const env = readEnvironment();
  const config = loadConfig(args.dataDir === undefined ? env : { ...env, DATA_DIR: args.dataDir });
  const dataDir = config.dataDir;
  const journalDir = path.join(dataDir, 'journal');
  if (!fs.existsSync(journalDir)) throw new Usage(`${dataDir} has no journal: ${journalDir} does not exist`);
  const redact = secretScrubber(secretsOf(config));
  if (args.out !== undefined) {
    const out = path.resolve(args.out);
    process.stdout.write(summary(buildElsewhere(journalDir, out, redact), out));
  } else {
    process.stdout.write(summary(buildInPlace(dataDir, journalDir, redact), path.join(dataDir, 'vault')));
  }
  return 0;
}

try {
  process.exitCode = main();
} catch (err) {
  // Configuration errors never echo secret values (see loadConfig).
  if (err instanceof Refused) {
    process.stderr.write(`vault: ${err.message}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`vault: ${err instanceof Usage || err instanceof AppError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 2;
  }
}
