/**
 * Secrets the operator did not give (WEBHOOK_SECRET, API_TOKEN) are generated once, stored
 * under DATA_DIR with owner-only permissions, and reused on every start.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

export interface GeneratedSecrets {
  WEBHOOK_SECRET: string;
  API_TOKEN: string;
}

/** Returns the stored secrets, generating the missing ones; `created` lists the new names. */
export function loadOrCreateSecrets(dataDir: string): { secrets: GeneratedSecrets; created: Array<keyof GeneratedSecrets> } {
  const file = path.join(dataDir, 'secrets.json');
  let stored: Partial<GeneratedSecrets> = {};
  try {
    stored = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<GeneratedSecrets>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
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
    const tmp = `${file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(secrets, null, 2), { mode: 0o600 });
    fs.renameSync(tmp, file);
  }
  return { secrets, created };
}
