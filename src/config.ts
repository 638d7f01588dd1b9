/**
 * Configuration: the environment (and an optional `.env` file) parsed once by zod at start-up,
 * frozen, and handed down as typed slices. Nothing else reads `process.env`.
 */
import { z } from 'zod';
import { ConfigError } from './errors';
import { parseOperatorTokens, type OperatorToken } from './identity';
import { parseMarketSession, type MarketSession } from './market-session';

const bool = z
  .string()
  .trim()
  .toLowerCase()
  .refine((v) => ['true', 'false', '1', '0', 'yes', 'no', ''].includes(v), 'must be true or false')
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const num = (opts: { min?: number; max?: number; int?: boolean; gt?: number } = {}) =>
  z
    .string()
    .trim()
    .refine((v) => v !== '' && Number.isFinite(Number(v)), 'must be a number')
    .transform(Number)
    .refine((n) => !opts.int || Number.isInteger(n), 'must be a whole number')
    .refine((n) => opts.min === undefined || n >= opts.min, `must be at least ${opts.min}`)
    .refine((n) => opts.gt === undefined || n > opts.gt, `must be greater than ${opts.gt}`)
    .refine((n) => opts.max === undefined || n <= opts.max, `must be at most ${opts.max}`);

const list = z
  .string()
  .transform((v) => v.split(',').map((s) => s.trim()).filter((s) => s.length > 0));

/** Venues `EXECUTION_VENUE` may name. */
export const VENUE_NAMES = ['paper', 'upbit', 'freqtrade', 'kis'] as const;
export type VenueName = (typeof VENUE_NAMES)[number];

function isHttpUrl(v: string): boolean {
  try {
    const u = new URL(v);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

const url = z.string().trim().refine(isHttpUrl, 'must be an http(s) URL').transform((v) => v.replace(/\/+$/, ''));

const optionalUrl = z.string().trim().refine((v) => v === '' || isHttpUrl(v), 'must be an http(s) URL or empty').transform((v) => v.replace(/\/+$/, ''));

/** The shortest API_TOKEN, WEBHOOK_SECRET or operator token accepted (INTERFACES.md, Identity). */
export const MIN_SECRET_LENGTH = 24;

/** A shared secret: empty (not set; one is generated) or at least MIN_SECRET_LENGTH characters. */
const sharedSecret = z.string().superRefine((v, ctx) => {
  // The message gives the length, never the value.
  if (v !== '' && v.length < MIN_SECRET_LENGTH) {
    ctx.addIssue({ code: 'custom', message: `must be at least ${MIN_SECRET_LENGTH} characters (it has ${v.length}): use a longer random value, or leave it unset to have one generated` });
  }
});

const timeZone = z.string().trim().refine((tz) => {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}, 'must be an IANA time zone such as Asia/Seoul');

/**
 * What is wrong with `EXECUTION_VENUE` for the mode: `paper` stands alone; live mode needs real
 * venues, and crypto goes to Upbit or Freqtrade, never both (a symbol must have one venue).
 */
function venueListProblems(mode: 'paper' | 'live', venues: VenueName[]): string[] {
  const problems: string[] = [];
  if (venues.includes('paper') && venues.length > 1) problems.push('paper cannot be listed with other venues');
  else if (mode === 'live' && venues.includes('paper')) problems.push('TRADING_MODE=live needs a real venue (upbit, freqtrade or kis), not paper');
  if (venues.includes('upbit') && venues.includes('freqtrade')) problems.push('upbit and freqtrade both trade crypto: list one of them, so each symbol has one venue');
  return problems;
}

/** Upbit's KRW minimum, also the Freqtrade default when the bot trades in KRW. */
const KRW_MIN_ORDER_NOTIONAL = 5000;

/** Which of KIS's two hosts a URL names (`paper`: openapivts…, `real`: openapi…), or undefined for any other host. */
function kisHostKind(url: string): 'paper' | 'real' | undefined {
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase();
  } catch {
    return undefined;
  }
  if (host === 'openapivts.koreainvestment.com') return 'paper';
  if (host === 'openapi.koreainvestment.com') return 'real';
  return undefined;
}

/** KRX's time zone: KIS_MARKET_HOURS is read in it. */
const KRX_TIME_ZONE = 'Asia/Seoul';

/** Defaults of every variable, as INTERFACES.md lists them. */
const DEFAULTS = {
  PORT: '8080',
  HOST: '127.0.0.1',
  DATA_DIR: './data',
  LOG_LEVEL: 'info',
  TRADING_MODE: 'paper',
  EXECUTION_VENUE: 'paper',
  LIVE_MAX_ORDER_NOTIONAL: '1000000',
  QUOTE_CURRENCY: 'KRW',
  PAPER_INITIAL_CASH: '10000000',
  FEE_RATE: '0.0005',
  PAPER_SLIPPAGE_PCT: '0',
  PAPER_FILL_DELAY_MS: '0',
  PAPER_MIN_ORDER_NOTIONAL: '0',
  DEFAULT_POSITION_PCT: '5',
  WEBHOOK_SECRET: '',
  WEBHOOK_ALLOWED_IPS: '',
  TRUST_PROXY: 'false',
  DEDUPE_WINDOW_SECONDS: '300',
  INGEST_BACKLOG_LIMIT: '1000',
  STORE_CHECKPOINT_MIN_BYTES: '8388608',
  WEBHOOK_MAX_BODY_BYTES: '65536',
  WEBHOOK_RATE_LIMIT_PER_MINUTE: '120',
  API_TOKEN: '',
  OPERATOR_TOKENS: '',
  TELEGRAM_BOT_TOKEN: '',
  TELEGRAM_CHAT_ID: '',
  TELEGRAM_ALLOWED_USER_IDS: '',
  TELEGRAM_API_ROOT: 'https://api.telegram.org',
  APPROVAL_TIMEOUT_SECONDS: '300',
  APPROVAL_MIN_CONFIDENCE: '0.7',
  APPROVAL_AUTO_MAX_NOTIONAL: '100000',
  APPROVAL_TWO_PERSON_NOTIONAL: '5000000',
  MAX_PRICE_DRIFT_PCT: '1.0',
  RISK_MAX_CONSECUTIVE_LOSSES: '3',
  RISK_DAILY_LOSS_LIMIT_PCT: '5',
  RISK_DAILY_LIQUIDATE_PCT: '10',
  RISK_MAX_POSITION_PCT: '20',
  RISK_MAX_OPEN_POSITIONS: '5',
  RISK_CHECK_INTERVAL_SECONDS: '60',
  TRADING_DAY_TZ: 'Asia/Seoul',
  MARKET_DATA_SOURCE: 'exchange',
  MARKET_DATA_EXCHANGE: 'upbit',
  MARKET_DATA_REPLAY_FILE: '',
  MARKET_DATA_TIMEOUT_MS: '3000',
  MARKET_DATA_MAX_AGE_SECONDS: '120',
  MARKET_DATA_ON_FAILURE: 'mark',
  RULES_FILE: '',
  SCAN_WATCHLIST: '',
  SCAN_INTERVAL_MINUTES: '0',
  DAILY_SUMMARY: 'true',
  LLM_TIMEOUT_MS: '5000',
  LLM_MAX_CHARS: '600',
  UPBIT_ACCESS_KEY: '',
  UPBIT_SECRET_KEY: '',
  UPBIT_API_URL: 'https://api.upbit.com',
  FREQTRADE_API_URL: '',
  FREQTRADE_USERNAME: '',
  FREQTRADE_PASSWORD: '',
  FREQTRADE_MIN_ORDER_NOTIONAL: '',
  KIS_API_URL: 'https://openapivts.koreainvestment.com:29443',
  KIS_APP_KEY: '',
  KIS_APP_SECRET: '',
  KIS_ACCOUNT_NO: '',
  KIS_PAPER: 'true',
  KIS_MARKET_HOURS: '09:00-15:30',
  KIS_FEE_RATE: '0.00015',
  KIS_SELL_TAX_RATE: '0.002',
  DISCORD_WEBHOOK_URL: '',
  LLM_BASE_URL: '',
  LLM_API_KEY: '',
  LLM_MODEL: '',
  XSTATE_INSPECT: 'false',
  XSTATE_INSPECT_PORT: '8099',
} as const;

type VarName = keyof typeof DEFAULTS;

/**
 * Secret variables and where each lives in the Config: their values never reach a log line, a
 * card or an error message. One table serves the config error, `redactConfig` and the logger.
 */
const SECRETS = [
  ['WEBHOOK_SECRET', 'webhook', 'secret'], ['API_TOKEN', 'api', 'token'], ['TELEGRAM_BOT_TOKEN', 'telegram', 'botToken'],
  ['UPBIT_ACCESS_KEY', 'upbit', 'accessKey'], ['UPBIT_SECRET_KEY', 'upbit', 'secretKey'], ['FREQTRADE_PASSWORD', 'freqtrade', 'password'],
  ['KIS_APP_KEY', 'kis', 'appKey'], ['KIS_APP_SECRET', 'kis', 'appSecret'], ['LLM_API_KEY', 'llm', 'apiKey'],
  ['DISCORD_WEBHOOK_URL', 'discord', 'webhookUrl'],
] as const satisfies ReadonlyArray<readonly [VarName, keyof Config, string]>;

/** Names of the secret variables (OPERATOR_TOKENS holds tokens too: it is never echoed either). */
export const SECRET_VARIABLES: readonly VarName[] = [...SECRETS.map(([name]) => name), 'OPERATOR_TOKENS'];

const envSchema = z.object({
  PORT: num({ int: true, min: 0, max: 65535 }),
  HOST: z.string().trim().min(1, 'must not be empty'),
  DATA_DIR: z.string().trim().min(1, 'must not be empty'),
  LOG_LEVEL: z.enum(['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly']),
  TRADING_MODE: z.enum(['paper', 'live']),
  EXECUTION_VENUE: list.pipe(z.array(z.enum(VENUE_NAMES, { message: `each venue must be one of ${VENUE_NAMES.join(', ')}` })).min(1, 'must name a venue')),
  LIVE_MAX_ORDER_NOTIONAL: num({ gt: 0 }),
  QUOTE_CURRENCY: z.string().trim().regex(/^[A-Z]{2,10}$/, 'must be a currency code such as KRW'),
  PAPER_INITIAL_CASH: num({ gt: 0 }),
  FEE_RATE: num({ min: 0, max: 0.1 }),
  PAPER_SLIPPAGE_PCT: num({ min: 0, max: 10 }),
  PAPER_FILL_DELAY_MS: num({ int: true, min: 0, max: 600000 }),
  PAPER_MIN_ORDER_NOTIONAL: num({ min: 0, max: 1e15 }),
  DEFAULT_POSITION_PCT: num({ gt: 0, max: 100 }),
  WEBHOOK_SECRET: sharedSecret,
  WEBHOOK_ALLOWED_IPS: list,
  TRUST_PROXY: bool,
  DEDUPE_WINDOW_SECONDS: num({ int: true, min: 0, max: 7 * 86_400 }),
  INGEST_BACKLOG_LIMIT: num({ int: true, min: 1, max: 1_000_000 }),
  STORE_CHECKPOINT_MIN_BYTES: num({ int: true, min: 4096, max: 1024 * 1024 * 1024 }),
  WEBHOOK_MAX_BODY_BYTES: num({ int: true, min: 256 }),
  WEBHOOK_RATE_LIMIT_PER_MINUTE: num({ int: true, min: 0 }),
  API_TOKEN: sharedSecret,
  OPERATOR_TOKENS: z.string(),
  TELEGRAM_BOT_TOKEN: z.string().trim(),
  TELEGRAM_CHAT_ID: z.string().trim().regex(/^(-?\d+)?$/, 'must be a numeric chat id (e.g. -1001234567890); @names cannot be checked against updates'),
  TELEGRAM_ALLOWED_USER_IDS: list.refine((ids) => ids.every((id) => /^\d+$/.test(id)), 'must be a comma list of numeric user ids'),
  TELEGRAM_API_ROOT: url,
  APPROVAL_TIMEOUT_SECONDS: num({ gt: 0, max: 7 * 86_400 }),
  APPROVAL_MIN_CONFIDENCE: num({ min: 0, max: 1 }),
  APPROVAL_AUTO_MAX_NOTIONAL: num({ min: 0 }),
  APPROVAL_TWO_PERSON_NOTIONAL: num({ gt: 0 }),
  MAX_PRICE_DRIFT_PCT: num({ min: 0 }),
  RISK_MAX_CONSECUTIVE_LOSSES: num({ int: true, min: 1 }),
  RISK_DAILY_LOSS_LIMIT_PCT: num({ gt: 0, max: 100 }),
  RISK_DAILY_LIQUIDATE_PCT: num({ gt: 0, max: 100 }),
  RISK_MAX_POSITION_PCT: num({ gt: 0, max: 100 }),
  RISK_MAX_OPEN_POSITIONS: num({ int: true, min: 1 }),
  RISK_CHECK_INTERVAL_SECONDS: num({ int: true, min: 1, max: 86400 }),
  TRADING_DAY_TZ: timeZone,
  MARKET_DATA_SOURCE: z.enum(['exchange', 'replay']),
  MARKET_DATA_EXCHANGE: z.string().trim().regex(/^[a-z0-9]+$/, 'must be a ccxt exchange id such as upbit'),
  MARKET_DATA_REPLAY_FILE: z.string().trim(),
  MARKET_DATA_TIMEOUT_MS: num({ int: true, min: 100, max: 60000 }),
  MARKET_DATA_MAX_AGE_SECONDS: num({ int: true, min: 1 }),
  MARKET_DATA_ON_FAILURE: z.enum(['mark', 'drop']),
  RULES_FILE: z.string().trim(),
  SCAN_WATCHLIST: list,
  SCAN_INTERVAL_MINUTES: num({ min: 0, max: 1440 }),
  DAILY_SUMMARY: bool,
  LLM_TIMEOUT_MS: num({ int: true, min: 100, max: 120000 }),
  LLM_MAX_CHARS: num({ int: true, min: 50, max: 4000 }),
  UPBIT_ACCESS_KEY: z.string().trim(),
  UPBIT_SECRET_KEY: z.string().trim(),
  UPBIT_API_URL: url,
  FREQTRADE_API_URL: optionalUrl,
  FREQTRADE_USERNAME: z.string(),
  FREQTRADE_PASSWORD: z.string(),
  FREQTRADE_MIN_ORDER_NOTIONAL: z.string().trim().refine((v) => v === '' || (Number.isFinite(Number(v)) && Number(v) >= 0), 'must be a number, 0 or more, in the stake currency'),
  KIS_API_URL: url,
  KIS_APP_KEY: z.string().trim(),
  KIS_APP_SECRET: z.string().trim(),
  KIS_ACCOUNT_NO: z.string().trim().refine((v) => v === '' || /^\d{8}-\d{2}$/.test(v), 'must be the account as CANO-ACNT_PRDT_CD, eight digits, a dash and two digits (e.g. 50123456-01)'),
  KIS_PAPER: bool,
  // KRX trades in Seoul time whatever TRADING_DAY_TZ says.
  KIS_MARKET_HOURS: z.string().transform((v, ctx) => {
    const session = parseMarketSession(v, KRX_TIME_ZONE);
    if (typeof session === 'string') {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: session });
      return z.NEVER;
    }
    return session;
  }),
  KIS_FEE_RATE: z.string().trim().regex(/^(0|0?\.\d{1,8})$/, 'must be a decimal fraction below 1, such as 0.00015 (0.015 %)'),
  KIS_SELL_TAX_RATE: z.string().trim().regex(/^(0|0?\.\d{1,8})$/, 'must be a decimal fraction below 1, such as 0.002 (0.2 %)'),
  DISCORD_WEBHOOK_URL: optionalUrl,
  LLM_BASE_URL: optionalUrl,
  LLM_API_KEY: z.string(),
  LLM_MODEL: z.string().trim(),
  XSTATE_INSPECT: bool,
  XSTATE_INSPECT_PORT: num({ int: true, min: 0, max: 65535 }),
});

type Env = z.infer<typeof envSchema>;

/** The typed, frozen configuration. */
export interface Config {
  server: { port: number; host: string; trustProxy: boolean; maxBodyBytes: number };
  dataDir: string;
  logLevel: Env['LOG_LEVEL'];
  /** `venues`: in live mode the real venues, each symbol routed to the one that trades it; `liveMaxOrderNotional` caps one live order. */
  trading: { mode: 'paper' | 'live'; venues: VenueName[]; liveMaxOrderNotional: number; quoteCurrency: string; timeZone: string; defaultPositionPct: number };
  paper: { initialCash: number; feeRate: number; slippagePct: number; fillDelayMs: number; minOrderNotional: number };
  webhook: { secret: string; allowedIps: string[]; dedupeWindowSeconds: number; rateLimitPerMinute: number };
  api: { token: string; operators: OperatorToken[] };
  telegram: { botToken: string; chatId: string; allowedUserIds: string[]; apiRoot: string };
  approval: { timeoutSeconds: number; minConfidence: number; autoMaxNotional: number; twoPersonNotional: number; maxPriceDriftPct: number };
  risk: { maxConsecutiveLosses: number; dailyLossLimitPct: number; dailyLiquidatePct: number; maxPositionPct: number; maxOpenPositions: number; checkIntervalSeconds: number };
  marketData: { source: 'exchange' | 'replay'; exchange: string; replayFile: string; timeoutMs: number; maxAgeSeconds: number; onFailure: 'mark' | 'drop' };
  /** JSON rules file of the rule engine ('' = DATA_DIR/rules.json when present, else built-in rules). */
  rulesFile: string;
  scan: { watchlist: string[]; intervalMinutes: number; dailySummary: boolean };
  upbit: { accessKey: string; secretKey: string; apiUrl: string };
  /** `minOrderNotional`: the smallest stake the bot's exchange takes, in QUOTE_CURRENCY. */
  freqtrade: { apiUrl: string; username: string; password: string; minOrderNotional: number };
  /** `paper`: a KIS paper-trading account (VTTC… transaction ids); `marketHours`: when KIS orders may be sent. */
  kis: { apiUrl: string; appKey: string; appSecret: string; accountNo: string; paper: boolean; marketHours: MarketSession; feeRate: string; sellTaxRate: string };
  discord: { webhookUrl: string };
  llm: { baseUrl: string; apiKey: string; model: string; timeoutMs: number; maxChars: number };
  ingest: { backlogLimit: number };
  store: { checkpointMinBytes: number };
  xstateInspect: boolean;
  /** Loopback port of the inspector relay (0 = any free port); used only with `xstateInspect`. */
  xstateInspectPort: number;
}

/**
 * Parses the environment into a Config. Empty strings count as "not set" and take the default.
 * Throws one ConfigError naming every bad variable (values of secrets are never echoed).
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const raw: Record<string, string> = {};
  for (const name of Object.keys(DEFAULTS) as VarName[]) {
    const given = env[name];
    raw[name] = given === undefined || given.trim() === '' ? DEFAULTS[name] : given;
  }
  const parsed = envSchema.safeParse(raw);
  const issues: Array<{ variable: string; message: string }> = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const variable = String(issue.path[0] ?? '?');
      const shown = SECRET_VARIABLES.includes(variable as VarName) ? '' : ` (got "${raw[variable]}")`;
      issues.push({ variable, message: `${issue.message}${shown}` });
    }
  } else {
    const e = parsed.data;
    for (const problem of venueListProblems(e.TRADING_MODE, e.EXECUTION_VENUE)) issues.push({ variable: 'EXECUTION_VENUE', message: problem });
    if (e.TRADING_MODE === 'live' && e.EXECUTION_VENUE.includes('upbit')) {
      // The live book is read from the account: without keys there is no account to trade.
      for (const key of ['UPBIT_ACCESS_KEY', 'UPBIT_SECRET_KEY'] as const) {
        if (e[key] === '') issues.push({ variable: key, message: 'must be set for live trading on upbit (an Open API key with the order and account permissions)' });
      }
    }
    if (e.TRADING_MODE === 'live' && e.EXECUTION_VENUE.includes('freqtrade')) {
      for (const key of ['FREQTRADE_API_URL', 'FREQTRADE_USERNAME', 'FREQTRADE_PASSWORD'] as const) {
        if (e[key] === '') issues.push({ variable: key, message: 'must be set for live trading on freqtrade (the bot\'s REST API server and its login)' });
      }
    }
    if (e.TRADING_MODE === 'live' && e.EXECUTION_VENUE.includes('freqtrade') && e.FREQTRADE_MIN_ORDER_NOTIONAL === '' && e.QUOTE_CURRENCY !== 'KRW') {
      issues.push({ variable: 'FREQTRADE_MIN_ORDER_NOTIONAL', message: `must be set when QUOTE_CURRENCY is ${e.QUOTE_CURRENCY}: the smallest stake the bot's exchange takes, in ${e.QUOTE_CURRENCY} (the default, ${KRW_MIN_ORDER_NOTIONAL}, is a KRW amount)` });
    }
    if (e.EXECUTION_VENUE.includes('kis') && e.QUOTE_CURRENCY !== 'KRW') {
      issues.push({ variable: 'QUOTE_CURRENCY', message: `must be KRW with EXECUTION_VENUE kis: KRX stocks are quoted in KRW, got ${e.QUOTE_CURRENCY}` });
    }
    const kisHost = kisHostKind(e.KIS_API_URL);
    if (kisHost !== undefined && kisHost !== (e.KIS_PAPER ? 'paper' : 'real')) {
      issues.push({ variable: 'KIS_API_URL', message: `is KIS's ${kisHost}-trading host, but KIS_PAPER=${String(e.KIS_PAPER)} names a ${e.KIS_PAPER ? 'paper' : 'real'} account: the host and the account must match (runbooks/go-live.md)` });
    }
    if (e.TRADING_MODE === 'live' && e.EXECUTION_VENUE.includes('kis')) {
      for (const key of ['KIS_APP_KEY', 'KIS_APP_SECRET', 'KIS_ACCOUNT_NO'] as const) {
        if (e[key] === '') issues.push({ variable: key, message: `must be set for live trading on kis (the Open API app of the ${e.KIS_PAPER ? 'paper' : 'real'} account, KIS_PAPER=${String(e.KIS_PAPER)})` });
      }
    }
    if (e.TRADING_MODE === 'live' && !isLoopbackHost(e.HOST) && e.WEBHOOK_ALLOWED_IPS.length === 0 && !e.TRUST_PROXY) {
      issues.push({ variable: 'HOST', message: `${e.HOST} is not a loopback address and nothing restricts who can reach it; TRADING_MODE=live needs WEBHOOK_ALLOWED_IPS, or TRUST_PROXY=true behind a reverse proxy that ends TLS, or HOST=127.0.0.1` });
    }
    const operators = parseOperatorTokens(e.OPERATOR_TOKENS, MIN_SECRET_LENGTH);
    for (const problem of operators.problems) issues.push({ variable: 'OPERATOR_TOKENS', message: problem });
    for (const o of operators.tokens) {
      if (o.token === e.API_TOKEN || o.token === e.WEBHOOK_SECRET) issues.push({ variable: 'OPERATOR_TOKENS', message: `the token of ${o.name} is the same as API_TOKEN or WEBHOOK_SECRET: each principal needs its own` });
    }
    if (e.RISK_DAILY_LIQUIDATE_PCT < e.RISK_DAILY_LOSS_LIMIT_PCT) {
      issues.push({ variable: 'RISK_DAILY_LIQUIDATE_PCT', message: `must be at least RISK_DAILY_LOSS_LIMIT_PCT (${e.RISK_DAILY_LOSS_LIMIT_PCT})` });
    }
    if (e.MARKET_DATA_SOURCE === 'replay' && e.MARKET_DATA_REPLAY_FILE === '') {
      issues.push({ variable: 'MARKET_DATA_REPLAY_FILE', message: 'must name a candle file when MARKET_DATA_SOURCE=replay' });
    }
    if (e.TELEGRAM_BOT_TOKEN !== '' && e.TELEGRAM_CHAT_ID === '') {
      issues.push({ variable: 'TELEGRAM_CHAT_ID', message: 'must be set when TELEGRAM_BOT_TOKEN is set' });
    }
    if (e.XSTATE_INSPECT && e.XSTATE_INSPECT_PORT !== 0 && e.XSTATE_INSPECT_PORT === e.PORT) {
      issues.push({ variable: 'XSTATE_INSPECT_PORT', message: `must differ from PORT (${e.PORT}): the inspector relay has a listener of its own` });
    }
    if (e.TELEGRAM_BOT_TOKEN !== '' && e.TELEGRAM_ALLOWED_USER_IDS.length === 0) {
      issues.push({ variable: 'TELEGRAM_ALLOWED_USER_IDS', message: 'must list at least one user id when TELEGRAM_BOT_TOKEN is set' });
    }
  }
  if (issues.length > 0) {
    const lines = issues.map((i) => `  ${i.variable}: ${i.message}`).join('\n');
    throw new ConfigError(`invalid configuration:\n${lines}`, issues);
  }
  const e = (parsed as { data: Env }).data;
  const config: Config = {
    server: { port: e.PORT, host: e.HOST, trustProxy: e.TRUST_PROXY, maxBodyBytes: e.WEBHOOK_MAX_BODY_BYTES },
    dataDir: e.DATA_DIR,
    logLevel: e.LOG_LEVEL,
    trading: { mode: e.TRADING_MODE, venues: [...new Set(e.EXECUTION_VENUE)], liveMaxOrderNotional: e.LIVE_MAX_ORDER_NOTIONAL, quoteCurrency: e.QUOTE_CURRENCY, timeZone: e.TRADING_DAY_TZ, defaultPositionPct: e.DEFAULT_POSITION_PCT },
    paper: { initialCash: e.PAPER_INITIAL_CASH, feeRate: e.FEE_RATE, slippagePct: e.PAPER_SLIPPAGE_PCT, fillDelayMs: e.PAPER_FILL_DELAY_MS, minOrderNotional: e.PAPER_MIN_ORDER_NOTIONAL },
    webhook: { secret: e.WEBHOOK_SECRET, allowedIps: e.WEBHOOK_ALLOWED_IPS, dedupeWindowSeconds: e.DEDUPE_WINDOW_SECONDS, rateLimitPerMinute: e.WEBHOOK_RATE_LIMIT_PER_MINUTE },
    api: { token: e.API_TOKEN, operators: parseOperatorTokens(e.OPERATOR_TOKENS, MIN_SECRET_LENGTH).tokens },
    telegram: { botToken: e.TELEGRAM_BOT_TOKEN, chatId: e.TELEGRAM_CHAT_ID, allowedUserIds: e.TELEGRAM_ALLOWED_USER_IDS, apiRoot: e.TELEGRAM_API_ROOT },
    approval: { timeoutSeconds: e.APPROVAL_TIMEOUT_SECONDS, minConfidence: e.APPROVAL_MIN_CONFIDENCE, autoMaxNotional: e.APPROVAL_AUTO_MAX_NOTIONAL, twoPersonNotional: e.APPROVAL_TWO_PERSON_NOTIONAL, maxPriceDriftPct: e.MAX_PRICE_DRIFT_PCT },
    risk: { maxConsecutiveLosses: e.RISK_MAX_CONSECUTIVE_LOSSES, dailyLossLimitPct: e.RISK_DAILY_LOSS_LIMIT_PCT, dailyLiquidatePct: e.RISK_DAILY_LIQUIDATE_PCT, maxPositionPct: e.RISK_MAX_POSITION_PCT, maxOpenPositions: e.RISK_MAX_OPEN_POSITIONS, checkIntervalSeconds: e.RISK_CHECK_INTERVAL_SECONDS },
    marketData: { source: e.MARKET_DATA_SOURCE, exchange: e.MARKET_DATA_EXCHANGE, replayFile: e.MARKET_DATA_REPLAY_FILE, timeoutMs: e.MARKET_DATA_TIMEOUT_MS, maxAgeSeconds: e.MARKET_DATA_MAX_AGE_SECONDS, onFailure: e.MARKET_DATA_ON_FAILURE },
    rulesFile: e.RULES_FILE,
    scan: { watchlist: e.SCAN_WATCHLIST, intervalMinutes: e.SCAN_INTERVAL_MINUTES, dailySummary: e.DAILY_SUMMARY },
    upbit: { accessKey: e.UPBIT_ACCESS_KEY, secretKey: e.UPBIT_SECRET_KEY, apiUrl: e.UPBIT_API_URL },
    freqtrade: {
      apiUrl: e.FREQTRADE_API_URL, username: e.FREQTRADE_USERNAME, password: e.FREQTRADE_PASSWORD,
      minOrderNotional: e.FREQTRADE_MIN_ORDER_NOTIONAL === '' ? KRW_MIN_ORDER_NOTIONAL : Number(e.FREQTRADE_MIN_ORDER_NOTIONAL),
    },
    kis: { apiUrl: e.KIS_API_URL, appKey: e.KIS_APP_KEY, appSecret: e.KIS_APP_SECRET, accountNo: e.KIS_ACCOUNT_NO, paper: e.KIS_PAPER, marketHours: e.KIS_MARKET_HOURS, feeRate: e.KIS_FEE_RATE, sellTaxRate: e.KIS_SELL_TAX_RATE },
    discord: { webhookUrl: e.DISCORD_WEBHOOK_URL },
    ingest: { backlogLimit: e.INGEST_BACKLOG_LIMIT },
    store: { checkpointMinBytes: e.STORE_CHECKPOINT_MIN_BYTES },
    llm: { baseUrl: e.LLM_BASE_URL, apiKey: e.LLM_API_KEY, model: e.LLM_MODEL, timeoutMs: e.LLM_TIMEOUT_MS, maxChars: e.LLM_MAX_CHARS },
    xstateInspect: e.XSTATE_INSPECT,
    xstateInspectPort: e.XSTATE_INSPECT_PORT,
  };
  return deepFreeze(config);
}

/** True when `host` only accepts connections from this machine (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/**
 * The start-up warning for a listener other machines can reach: what protects it
 * (WEBHOOK_ALLOWED_IPS, a reverse proxy implied by TRUST_PROXY), or that nothing does.
 * Null when HOST is loopback. Pure, so the words can be tested without starting anything.
 */
export function hostWarning(config: { server: Pick<Config['server'], 'host' | 'trustProxy'>; webhook: Pick<Config['webhook'], 'allowedIps'> }): string | null {
  const { host, trustProxy } = config.server;
  if (isLoopbackHost(host)) return null;
  const ips = config.webhook.allowedIps;
  const guards: string[] = [];
  if (ips.length > 0) guards.push(`webhooks are accepted only from WEBHOOK_ALLOWED_IPS (${ips.join(', ')})`);
  if (trustProxy) guards.push('TRUST_PROXY=true: a reverse proxy is expected in front, ending TLS, and it must be the only way in');
  const exposed = `HOST=${host} is not a loopback address: other machines can reach the webhook and operator API (plain HTTP)`;
  if (guards.length === 0) {
    return `${exposed}, and nothing restricts who can reach it; set WEBHOOK_ALLOWED_IPS, or put a reverse proxy with TLS in front and set TRUST_PROXY=true, or use HOST=127.0.0.1`;
  }
  return `${exposed}; ${guards.join('; ')}; the operator API still answers anyone holding a token`;
}

/** Returns the config with every secret replaced by a marker, for printing. */
export function redactConfig(config: Config): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(config)) as Record<string, Record<string, unknown>>;
  for (const [, section, key] of SECRETS) {
    const s = copy[section];
    if (s && typeof s[key] === 'string' && s[key] !== '') s[key] = '[redacted]';
  }
  copy['api']!['operators'] = config.api.operators.map((o) => ({ name: o.name, token: '[redacted]' }));
  return copy;
}

/** The secret values of a config, for the log redactor. */
export function secretValues(config: Config): string[] {
  return [...SECRETS.map(([, section, key]) => String((config[section] as unknown as Record<string, unknown>)[key] ?? '')), ...config.api.operators.map((o) => o.token)]
    .filter((v) => v.length >= 4);
}

/** Reads a `.env` file's text into a map (KEY=VALUE lines, # comments, optional quotes). */
export function parseDotEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    let value = m[2] ?? '';
    if ((value.startsWith('"') && value.endsWith('"')) || (value.startsWith("'") && value.endsWith("'"))) {
      value = value.slice(1, -1);
    } else {
      value = value.replace(/\s+#.*$/, '');
    }
    out[m[1]!] = value;
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
