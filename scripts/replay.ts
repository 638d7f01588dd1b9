/**
 * `npm run replay -- FILE [FILE …] [--approve policy|all|none] [--json]` (docs/replay.md): runs the
 * signals recorded in journal files (DATA_DIR/journal/YYYY-MM-DD.jsonl) or in a JSON-lines file
 * of webhook bodies through the whole lifecycle against the paper venue, in a temporary data
 * folder, with the risk and approval policy configured like the service's (environment, then
 * `.env`), and prints what would have happened. Time and market data come from the records.
 * Exit 0: replayed; 1: the replay failed; 2: bad arguments, an unreadable or unusable file, or a
 * bad configuration. Reads the files only: the service's DATA_DIR is not touched.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig, parseDotEnv } from '../src/config';
import { AppError, ConfigError, describeError } from '../src/errors';
import { readRules } from '../src/proposal/rules-file';
import { readRecording, type ReplayFile } from '../src/replay/recording';
import { runReplay } from '../src/replay/runner';
import { USAGE, parseReplayArgs, renderReplay, replayDocument } from '../src/replay/report';

/** Environment as the service reads it: `.env` in the working directory, overridden by real variables. */
function readEnvironment(): Record<string, string | undefined> {
  const file = path.resolve('.env');
  const fromFile = fs.existsSync(file) ? parseDotEnv(fs.readFileSync(file, 'utf8')) : {};
  return { ...fromFile, ...process.env };
}

function readFile(name: string): ReplayFile {
  try {
    return { name, text: fs.readFileSync(name, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a folder' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new AppError('input', 'replay_file', `cannot read ${name}: ${why}`);
  }
}

async function main(): Promise<number> {
  let prepared;
  try {
    const args = parseReplayArgs(process.argv.slice(2));
    if (args.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const config = loadConfig(readEnvironment());
    const recording = readRecording(args.files.map(readFile), { quoteCurrency: config.trading.quoteCurrency });
    prepared = { args, config, recording, rules: readRules(config) };
  } catch (err) {
    const usage = err instanceof AppError && err.code === 'replay_usage' ? `\n${USAGE}` : '';
    process.stderr.write(`replay: ${err instanceof AppError ? err.message : describeError(err).message}${usage}\n`);
    return 2;
  }
  const { args, config, recording, rules } = prepared;
  try {
    const result = await runReplay({ config, rules, recording, approve: args.approve });
    process.stdout.write(args.json ? `${JSON.stringify(replayDocument(result))}\n` : renderReplay(result, args.files));
    return 0;
  } catch (err) {
    // MARKET_DATA_REPLAY_FILE is read only when a signal has no recorded market data.
    if (err instanceof ConfigError) {
      process.stderr.write(`replay: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`replay failed: ${describeError(err).message}\n`);
    return 1;
  }
}

process.exitCode = await main();
