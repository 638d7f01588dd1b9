/**
 * Secrets the operator did not give (WEBHOOK_SECRET, API_TOKEN) are generated once, stored
 * under DATA_DIR with owner-only permissions, and reused on every start.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { InvariantError } from './errors';
import { replaceFileSync } from './persistence/storage-io';

export interface GeneratedSecrets {
  WEBHOOK_SECRET: string;
  API_TOKEN: string;
}

/** Returns the stored secrets, generating the missing ones; `created` lists the new names. */
export function loadOrCreateSecrets(dataDir: string): { secrets: GeneratedSecrets; created: Array<keyof GeneratedSecrets> } {
  const file = path.join(dataDir, 'secrets.json');
  let stored: Partial<GeneratedSecrets> = {};
  let text: string | undefined;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text !== undefined) {
    try {
      stored = JSON.parse(text) as Partial<GeneratedSecrets>;
    } catch (err) {
      throw new InvariantError('corrupt_store', `${file} is not valid JSON (${(err as Error).message}): restore it from a backup of DATA_DIR, or remove it to generate new secrets (then update TradingView alerts and API clients)`, { file });
    }
  }
  const created: Array<keyof GeneratedSecrets> = [];
  const make = (name: keyof GeneratedSecrets): string => {
    const v = stored[name];
    if (typeof v === 'string' && v.length >= 16) return v;
    created.push(name);
    return randomBytes(24).toString('base64url');
  };
  const secrets = { WEBHOOK_SECRET: make('WEBHOOK_SECRET'), API_TOKEN: make('API_TOKEN') };
  if (created.length > 0) {
    fs.mkdirSync(dataDir, { recursive: true });
    // Durable before first use: a crash must not leave an empty file behind the new name.
    replaceFileSync(file, JSON.stringify(secrets, null, 2), 0o600);
  }
  return { secrets, created };
}
