/**
 * Reads the rule engine's rules file for the composition root (and `npm run replay`, which must
 * decide with the same rules as the service): RULES_FILE, else DATA_DIR/rules.json when present,
 * else the built-in rules. The parsing itself is pure (rules-config.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config';
import { ConfigError } from '../errors';
import { loadRules, type Rules } from './rules-config';

/** The rule engine's rules: RULES_FILE, else DATA_DIR/rules.json when present, else built in. */
export function readRules(config: Config): Rules {
  const file = config.rulesFile !== '' ? path.resolve(config.rulesFile) : path.join(config.dataDir, 'rules.json');
  let text: string | undefined;
  if (config.rulesFile !== '' || fs.existsSync(file)) {
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`RULES_FILE ${file} cannot be read: ${(err as Error).message}`, [
        { variable: 'RULES_FILE', message: `${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? 'error'}` },
      ]);
    }
  }
  return loadRules(text, { file, defaults: { defaultPositionPct: config.trading.defaultPositionPct, maxDataAgeSeconds: config.marketData.maxAgeSeconds } });
}
