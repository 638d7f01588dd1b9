/**
 * The rule engine's settings: a JSON rules file (RULES_FILE, or DATA_DIR/rules.json) validated
 * by zod, every key optional with a default, unknown keys rejected so a typo never silently
 * turns a rule off. No I/O here: the composition root reads the file and hands over its text.
 * docs/rules.md describes every key.
 */
import { z } from 'zod';
import { ConfigError } from '../errors';

/** Defaults that come from environment variables (DEFAULT_POSITION_PCT, MARKET_DATA_MAX_AGE_SECONDS). */
export interface RuleDefaults {
  defaultPositionPct?: number;
  maxDataAgeSeconds?: number;
}

/** Built-in values of the settings that environment variables may override. */
export const BUILT_IN_RULE_DEFAULTS: Required<RuleDefaults> = { defaultPositionPct: 5, maxDataAgeSeconds: 120 };

const period = (fallback: number) => z.number().int('must be a whole number').min(1, 'must be at least 1').max(500, 'must be at most 500').default(fallback);

const band = (min: number, max: number) =>
  z
    .strictObject({
      min: z.number().min(0, 'must be at least 0').max(100, 'must be at most 100').default(min),
      max: z.number().min(0, 'must be at least 0').max(100, 'must be at most 100').default(max),
    })
    .prefault({})
    .refine((b) => b.min <= b.max, { message: 'must not be above max', path: ['min'] });

function makeSchema(defaults: Required<RuleDefaults>) {
  return z.strictObject({
    confirmations: z
      .strictObject({
        trend: z.strictObject({ enabled: z.boolean().default(true), period: period(20) }).prefault({}),
        rsi: z
          .strictObject({
            enabled: z.boolean().default(true),
            period: period(14),
            buyBand: band(30, 70),
            sellBand: band(30, 100),
          })
          .prefault({}),
        volume: z
          .strictObject({
            enabled: z.boolean().default(true),
            period: period(20),
            factor: z.number().positive('must be greater than 0').max(100, 'must be at most 100').default(1),
          })
          .prefault({}),
      })
      .prefault({}),
    sizing: z
      .strictObject({
        mode: z.enum(['signal', 'fixed_pct', 'atr']).default('fixed_pct'),
        defaultPositionPct: z.number().positive('must be greater than 0').max(100, 'must be at most 100').default(defaults.defaultPositionPct),
        atrPeriod: period(14),
        riskPctPerAtr: z.number().positive('must be greater than 0').max(100, 'must be at most 100').default(1),
        minNotional: z.number().min(0, 'must be at least 0').default(0),
        maxNotional: z.number().positive('must be greater than 0').nullable().default(null),
      })
      .prefault({})
      .refine((s) => s.maxNotional === null || s.minNotional <= s.maxNotional, { message: 'must not be above maxNotional', path: ['minNotional'] }),
    maxDataAgeSeconds: z.number().int('must be a whole number').min(1, 'must be at least 1').default(defaults.maxDataAgeSeconds),
    allowAddToPosition: z.boolean().default(false),
    minConfidence: z.number().min(0, 'must be at least 0').max(1, 'must be at most 1').optional(),
  });
}

/** The validated rules: every key present (defaults filled in), frozen. */
export type Rules = z.output<ReturnType<typeof makeSchema>>;

/** One problem in a rules file: the dotted path of the key and what is wrong with it. */
export interface RulesIssue {
  path: string;
  message: string;
}

/**
 * Parses a rules file's text, or returns the defaults when there is no file (`undefined`).
 * `file` names the file in errors; `defaults` carries the values of DEFAULT_POSITION_PCT and
 * MARKET_DATA_MAX_AGE_SECONDS (the file wins over them). Throws a ConfigError naming RULES_FILE,
 * the file and every bad key path.
 */
export function loadRules(fileText: string | undefined, options: { file?: string; defaults?: RuleDefaults } = {}): Rules {
  const schema = makeSchema({ ...BUILT_IN_RULE_DEFAULTS, ...stripUndefined(options.defaults ?? {}) });
  const where = options.file ?? 'rules file';
  let raw: unknown = {};
  if (fileText !== undefined) {
    try {
      raw = JSON.parse(fileText);
    } catch (err) {
      throw rulesError(where, [{ path: '(file)', message: `is not valid JSON: ${(err as Error).message}` }]);
    }
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw rulesError(where, rulesIssues(parsed.error.issues));
  return deepFreeze(parsed.data);
}

/** The defaults, as `loadRules(undefined, { defaults })` gives them. */
export function defaultRules(defaults: RuleDefaults = {}): Rules {
  return loadRules(undefined, { defaults });
}

/** zod issues → one line per bad key; an unknown key is named by its full path. */
function rulesIssues(issues: readonly z.core.$ZodIssue[]): RulesIssue[] {
  const out: RulesIssue[] = [];
  for (const issue of issues) {
    const base = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: [...base, key].join('.'), message: 'is not a known key' });
    } else {
      out.push({ path: base.length > 0 ? base.join('.') : '(root)', message: issue.message });
    }
  }
  return out;
}

function rulesError(file: string, issues: RulesIssue[]): ConfigError {
  const lines = issues.map((i) => `${i.path} ${i.message}`);
  return new ConfigError(
    `RULES_FILE ${file} is invalid:\n${lines.map((l) => `  ${l}`).join('\n')}`,
    lines.map((l) => ({ variable: 'RULES_FILE', message: `${file}: ${l}` })),
  );
}

function stripUndefined(d: RuleDefaults): RuleDefaults {
  return Object.fromEntries(Object.entries(d).filter(([, v]) => v !== undefined)) as RuleDefaults;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
