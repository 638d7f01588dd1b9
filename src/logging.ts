/**
 * Logging through winston: readable lines on the console, JSON lines under DATA_DIR/logs/.
 * Every line passes a redactor that replaces known secret values and secret-looking fields.
 */
import fs from 'node:fs';
import path from 'node:path';
import winston from 'winston';
import { secretText } from './redaction';

export type Logger = winston.Logger;

const SECRET_KEYS = /secret|token|password|api[_-]?key|authorization|access[_-]?key/i;

/** Replaces secret values anywhere in a log record (strings, nested objects). */
export function makeRedactor(secrets: string[]): (value: unknown) => unknown {
  const values = secretText(secrets.filter((s) => s.length >= 4));
  const scrub = (s: string) => {
    const out = values(s);
    return out.replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}/g, '$1[redacted]');
  };
  const walk = (value: unknown, depth: number): unknown => {
    if (typeof value === 'string') return scrub(value);
    if (depth > 6 || value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) return value.map((v) => walk(v, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = SECRET_KEYS.test(k) && typeof v === 'string' && v !== '' ? '[redacted]' : walk(v, depth + 1);
    }
    return out;
  };
  return (value) => walk(value, 0);
}

/** Creates the process logger. `dataDir` null keeps logs on the console only. */
export function createLogger(opts: { level: string; dataDir: string | null; secrets: string[]; console?: boolean }): Logger {
  const redact = makeRedactor(opts.secrets);
  const redactFormat = winston.format((info) => {
    const meta = info as unknown as Record<string | symbol, unknown>;
    for (const key of Object.keys(meta)) {
      if (key === 'level') continue;
      meta[key] = SECRET_KEYS.test(key) && typeof meta[key] === 'string' && meta[key] !== '' ? '[redacted]' : redact(meta[key]);
    }
    return info;
  });
  const transports: winston.transport[] = [];
  if (opts.console !== false) {
    transports.push(new winston.transports.Console({
      format: winston.format.combine(
        winston.format.timestamp(),
        winston.format.printf((info) => {
          const { level, message, timestamp, ...rest } = info as Record<string, unknown>;
          const extra = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : '';
          return `${String(timestamp)} ${String(level)}: ${String(message)}${extra}`;
        }),
      ),
    }));
  }
  if (opts.dataDir) {
    const dir = path.join(opts.dataDir, 'logs');
    fs.mkdirSync(dir, { recursive: true });
    transports.push(new winston.transports.File({
      filename: path.join(dir, 'service.jsonl'),
      maxsize: 20 * 1024 * 1024,
      maxFiles: 5,
      format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    }));
  }
  if (transports.length === 0) transports.push(new winston.transports.Console({ silent: true }));
  return winston.createLogger({ level: opts.level, format: redactFormat(), transports });
}

/** A logger that drops everything (unit tests). */
export function silentLogger(): Logger {
  return winston.createLogger({ transports: [new winston.transports.Console({ silent: true })] });
}
