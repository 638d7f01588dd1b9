/**
 * Korea Investment & Securities (KIS) Open API for KRX stocks: the only module that speaks KIS's
 * wire format (REST, JSON, upper-case request fields, `rt_cd`/`msg_cd`/`msg1` answers).
 *
 * - Headers on every call: `content-type: application/json; charset=utf-8`,
 *   `authorization: Bearer <token>`, `appkey`, `appsecret`, `tr_id`, `custtype: P` (and `tr_cont`
 *   when paging). Transaction ids depend on the account: paper accounts use `V…`, real ones `T…`
 *   (`kisTrId`); the host does not decide it (KIS_PAPER does), so tests can point at a local peer.
 * - Token: `POST /oauth2/tokenP`. KIS issues at most one a minute per appkey (EGW00133) and
 *   alerts the account holder on each issue, so a token is cached on disk for its lifetime
 *   (`DATA_DIR/kis-token.json`, mode 0600, temp file + fsync + rename + fsync of the folder),
 *   keyed to a hash of host + appkey so another account or host never uses it, and reused across
 *   restarts. A token KIS refuses (EGW00121 invalid, EGW00123 expired) is dropped and one new
 *   one is asked for, at most once a minute; the call is then repeated once (a refused call did
 *   nothing at KIS). When KIS refuses a token this client was just issued (before any call
 *   with it succeeded), asking again will not help and each issue alerts the account holder:
 *   no token is asked for during a back-off (`tokenBackoffMs`, default 5 minutes, doubling up
 *   to `tokenBackoffMaxMs`, default an hour; kept in the token file across restarts), and calls
 *   answer `VenueAuthError token_refused` meanwhile. A call that succeeds ends the back-off.
 * - Errors are translated here, once, into the product's typed errors, keeping KIS's words:
 *   bad appkey/appsecret/token → `VenueAuthError` (after one, calls fail at once for
 *   `authRetryAfterMs` without a request: no storm); refusals KIS names by a known code or by
 *   known words (funds, holdings, market closed, unknown stock, invalid quantity or price, a
 *   wrong account or transaction id) → `VenueRejectedError` with a code; EGW00201 "초당
 *   거래건수를 초과" → `TransientError kis_rate_limited` (nothing was done); timeouts, network
 *   failures and 5xx with any code not known as a refusal → `TransientError` (outcome unknown).
 *   For `order-cash`, an answer with an error code this module does not know is never read as
 *   a refusal: it is `TransientError kis_outcome_unknown`, and the caller settles it from the
 *   day's orders (an order KIS placed must never be abandoned as "refused"). Other calls keep
 *   `VenueRejectedError kis_refused` for an unknown code (nothing was placed by a query).
 * - Rate limit: requests are throttled to `requestsPerSecond` in any 1-second window (KIS
 *   publishes 20/s for real accounts and 2/s for paper accounts), and after an EGW00201 the next
 *   request waits a second. Nothing is ever re-sent from here, except after a refused token.
 * - The appkey, appsecret and tokens never appear in an error message or a log line.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { TransientError, VenueAuthError, VenueRejectedError, type AppError } from '../errors';
import { replaceFileSync } from '../persistence/storage-io';
import { secretText } from '../redaction';
import type { Logger } from '../logging';
import type { MarketSession } from '../market-session';

export interface KisClientOptions {
  /** KIS_API_URL: the host root (paper: https://openapivts.koreainvestment.com:29443). */
  apiUrl: string;
  appKey: string;
  appSecret: string;
  /** KIS_ACCOUNT_NO as `CANO-ACNT_PRDT_CD` (8 digits, 2 digits), e.g. `50123456-01`. */
  accountNo: string;
  /** KIS_PAPER: a paper-trading account (`VTTC…` transaction ids) or a real one (`TTTC…`). */
  paper: boolean;
  /** DATA_DIR: the token is cached in `kis-token.json` there. */
  dataDir: string;
  /** Requests in any one second; default 20 (real) or 2 (paper), KIS's published limits. */
  requestsPerSecond?: number;
  /** The bound on one request, ms; default 10 000. */
  timeoutMs?: number;
  /** After a credentials refusal, calls fail at once for this long, ms; default 60 000. */
  authRetryAfterMs?: number;
  /** A cached token is renewed this long before it expires, ms; default 10 minutes. */
  tokenRenewMarginMs?: number;
  /** After KIS refuses a token it just issued, no token is asked for this long, ms; default 5 minutes (doubling). */
  tokenBackoffMs?: number;
  /** The longest such back-off, ms; default an hour. */
  tokenBackoffMaxMs?: number;
  logger?: Logger;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** Codes of the transient errors raised here. */
export const KIS_TRANSIENT = {
  rateLimited: 'kis_rate_limited',
  tokenRateLimited: 'kis_token_rate_limited',
  timeout: 'kis_timeout',
  unavailable: 'kis_unavailable',
  serverError: 'kis_server_error',
  /** order-cash answered with an error code not known as a refusal: the order may be placed. */
  outcomeUnknown: 'kis_outcome_unknown',
} as const;

/** What KIS answered with an error. */
export interface KisErrorAnswer {
  status?: number;
  /** `msg_cd` of an API answer, or `error_code` of the token endpoint. */
  code?: string;
  /** `msg1`, or `error_description`. */
  message?: string;
}

/** The calls this client makes, for `kisTrId`. */
export type KisCall = 'buy' | 'sell' | 'cancel' | 'dailyOrders' | 'balance' | 'price' | 'dailyCandles';

/**
 * The transaction id of a call for a paper or a real account (KIS's examples, 2025: cash orders
 * `TTTC0012U` buy / `TTTC0011U` sell, cancel `TTTC0013U`, daily orders within 3 months
 * `TTTC0081R`, balance `TTTC8434R`; paper replaces the leading `T` by `V`; quotations are the
 * same for both).
 */
export function kisTrId(call: KisCall, paper: boolean): string {
  const real: Record<KisCall, string> = {
    buy: 'TTTC0012U', sell: 'TTTC0011U', cancel: 'TTTC0013U', dailyOrders: 'TTTC0081R', balance: 'TTTC8434R',
    price: 'FHKST01010100', dailyCandles: 'FHKST03010100',
  };
  const id = real[call];
  return paper && id.startsWith('T') ? `V${id.slice(1)}` : id;
}

/** The response of `order-cash` (`output`). */
export interface KisOrderAnswer {
  /** KRX_FWDG_ORD_ORGNO: the branch that numbered the order (needed to cancel it). */
  orgNo: string;
  /** ODNO: the order number. */
  odno: string;
  /** ORD_TMD: HHMMSS, KST. */
  orderTime: string;
}

/** One row of `inquire-daily-ccld` output1 (KIS's decimal text). */
export interface KisDailyOrder {
  ord_dt: string;
  ord_tmd: string;
  odno: string;
  ord_gno_brno?: string;
  orgn_odno?: string;
  /** `01` sell, `02` buy. */
  sll_buy_dvsn_cd: string;
  pdno: string;
  ord_qty: string;
  ord_unpr?: string;
  tot_ccld_qty: string;
  tot_ccld_amt: string;
  avg_prvs?: string;
  cncl_yn?: string;
  rmn_qty?: string;
  rjct_qty?: string;
  cnc_cfrm_qty?: string;
  ord_dvsn_cd?: string;
}

/** A holding of `inquire-balance` output1. */
export interface KisHolding {
  pdno: string;
  prdt_name?: string;
  hldg_qty: string;
  ord_psbl_qty?: string;
  pchs_avg_pric?: string;
  prpr?: string;
}

/** The cash summary of `inquire-balance` output2. */
export interface KisCashSummary {
  /** 예수금총금액: deposits now (today's trades not yet settled, T+2). */
  dnca_tot_amt: string;
  /** 가수도정산금액: deposits once today's and yesterday's trades have settled (D+2). */
  prvs_rcdl_excc_amt: string;
  nxdy_excc_amt?: string;
  tot_evlu_amt?: string;
}

/** `inquire-price` output. */
export interface KisPrice {
  stck_prpr: string;
  acml_vol?: string;
  stck_mxpr?: string;
  stck_llam?: string;
}

/** A row of `inquire-daily-itemchartprice` output2 (newest first as KIS sends them). */
export interface KisDailyCandle {
  stck_bsop_date: string;
  stck_oprc: string;
  stck_hgpr: string;
  stck_lwpr: string;
  stck_clpr: string;
  acml_vol: string;
}

/** What a cash order asks for (exact decimal text; KIS takes strings). */
export interface KisCashOrder {
  side: 'buy' | 'sell';
  pdno: string;
  /** `01` market, `00` limit. */
  ordDvsn: '01' | '00';
  /** Whole shares. */
  quantity: string;
  /** Limit price (whole KRW on the tick), `0` for a market order. */
  price: string;
}

/**
 * Refusals KIS names by `msg_cd` (the codes KIS answers for these refusals; a code here means
 * nothing was placed). Anything not here or in REFUSAL_WORDS is unknown, never a refusal, on
 * order-cash.
 */
const REFUSAL_CODES: Record<string, string> = {
  '40580000': 'market_closed',
  APBK0952: 'insufficient_cash',
  APBK0400: 'insufficient_position',
  APBK0656: 'unknown_stock',
  APBK0506: 'invalid_quantity',
  APBK0509: 'invalid_order_type',
  APBK0228: 'unknown_order',
  APBK0344: 'nothing_to_cancel',
  OPSQ0001: 'invalid_input',
  OPSQ2000: 'invalid_account',
};

/** Refusal codes by KIS's words (KIS documents few `msg_cd`s; its messages are stable Korean text). */
const REFUSAL_WORDS: Array<{ words: RegExp; code: string }> = [
  { words: /장종료|장운영|장시작|장마감|거래시간|주문가능시간|시간외/, code: 'market_closed' },
  { words: /매도가능수량|주문가능수량|매도 가능|잔고.*부족|보유수량/, code: 'insufficient_position' },
  { words: /주문가능금액|가능금액|증거금|예수금.*부족|잔액.*부족/, code: 'insufficient_cash' },
  { words: /종목.*없|종목코드|상품번호/, code: 'unknown_stock' },
  { words: /호가단위|주문단가/, code: 'invalid_price' },
  { words: /주문수량|수량.*확인/, code: 'invalid_quantity' },
  { words: /주문구분/, code: 'invalid_order_type' },
  { words: /INVALID_CHECK_ACNO|계좌번호/, code: 'invalid_account' },
];

/** Token and credential codes: the operator's remedy. EGW00121/00123 mean "ask for a new token". */
const AUTH_CODES: Record<string, { code: string; advice: string; tokenRefused?: true }> = {
  EGW00102: { code: 'invalid_keys', advice: 'KIS received no appkey' },
  EGW00103: { code: 'invalid_keys', advice: 'KIS does not know KIS_APP_KEY (mistyped, deleted, or a key of the other environment: paper and real keys differ): set the right key and restart' },
  EGW00104: { code: 'invalid_keys', advice: 'KIS received no appsecret' },
  EGW00105: { code: 'invalid_keys', advice: 'KIS_APP_SECRET does not belong to KIS_APP_KEY: copy both again from the KIS developer portal and restart' },
  EGW00121: { code: 'token_refused', advice: 'KIS refused the access token as invalid', tokenRefused: true },
  EGW00123: { code: 'token_expired', advice: 'KIS refused the access token as expired', tokenRefused: true },
};

/** Whether an error is KIS refusing the token (the client then asks for a new one, once). */
function isTokenRefusal(err: unknown): boolean {
  return err instanceof VenueAuthError && (err.code === 'token_refused' || err.code === 'token_expired');
}

/**
 * Translates a KIS error answer into the product's typed error (pure). `call` names what was
 * asked; `placesOrder` says it was order-cash, where an unknown code is an unknown outcome.
 */
export function kisErrorOf(answer: KisErrorAnswer, call: string, options: { placesOrder?: boolean } = {}): AppError {
  const code = answer.code ?? '';
  const words = answer.message ?? '';
  const said = `KIS answered ${call}${answer.status !== undefined ? ` with HTTP ${answer.status}` : ''}${code ? ` ${code}` : ''}${words ? ` "${words}"` : ''}`;
  const details: Record<string, unknown> = { venue: 'kis', call, ...(answer.status !== undefined ? { httpStatus: answer.status } : {}), ...(code ? { venueError: code } : {}), ...(words ? { venueMessage: words } : {}) };
  const auth = AUTH_CODES[code];
  if (auth) return new VenueAuthError(auth.code, `${auth.advice} (${said}); nothing was done at KIS`, details);
  if (code === 'EGW00133') return new TransientError(KIS_TRANSIENT.tokenRateLimited, `KIS issues one access token a minute per appkey (${said}); a token is asked for again after a minute; nothing was done at KIS`, details);
  if (code === 'EGW00201' || /초당 거래건수/.test(words)) return new TransientError(KIS_TRANSIENT.rateLimited, `KIS is rate limiting (${said}); the next request waits; nothing was done at KIS by this request`, details);
  if (code === 'OPSQ0002' || /서비스 코드|TR.*없/.test(words)) {
    return new VenueRejectedError('wrong_environment', `KIS does not take this transaction id here (${said}): KIS_PAPER must match the account (paper accounts use VTTC… ids, real ones TTTC…); nothing was done`, details);
  }
  const known = REFUSAL_CODES[code];
  if (known) return new VenueRejectedError(known, `${said}; nothing was placed`, details);
  const serverError = answer.status !== undefined && answer.status >= 500;
  // A 5xx without a code, or with a gateway code not named above (EGW00001 temporary error …): unknown, never "refused".
  if (serverError && (!code || code.startsWith('EGW'))) return new TransientError(KIS_TRANSIENT.serverError, `${said}: the outcome is unknown`, details);
  const refusal = REFUSAL_WORDS.find((r) => r.words.test(words));
  if (refusal) return new VenueRejectedError(refusal.code, `${said}; nothing was placed`, details);
  // A 5xx with any other code: unknown, whatever the code looks like.
  if (serverError) return new TransientError(KIS_TRANSIENT.serverError, `${said}: the outcome is unknown`, details);
  if (options.placesOrder) {
    return new TransientError(KIS_TRANSIENT.outcomeUnknown, `${said}, a code not known as a refusal: the order may have been placed, and the outcome is unknown until the day's orders show it`, details);
  }
  return new VenueRejectedError('kis_refused', `${said}; nothing was placed`, details);
}

/** `50123456-01` → its two parts; anything else throws (a configuration fault named). */
export function parseKisAccount(accountNo: string): { cano: string; productCode: string } {
  const m = /^(\d{8})-?(\d{2})$/.exec(accountNo.trim());
  // The account number is private: the message says what is wrong with it, never what it is.
  if (!m) throw new VenueAuthError('invalid_account', `KIS_ACCOUNT_NO must be CANO-ACNT_PRDT_CD, 8 digits and 2 (e.g. 50123456-01), got ${accountNo.trim().length} characters that are not`, { venue: 'kis' });
  return { cano: m[1]!, productCode: m[2]! };
}

// ---- KRX time -----------------------------------------------------------------------------

const KST_OFFSET_MS = 9 * 3600_000;

/** Korea has no daylight saving: KST is UTC+9 all year. */
export function kstParts(ms: number): { date: string; time: string; weekday: number; minutes: number } {
  const iso = new Date(ms + KST_OFFSET_MS).toISOString();
  const d = new Date(ms + KST_OFFSET_MS);
  return { date: iso.slice(0, 10).replace(/-/g, ''), time: iso.slice(11, 19).replace(/:/g, ''), weekday: d.getUTCDay(), minutes: d.getUTCHours() * 60 + d.getUTCMinutes() };
}

/** `YYYYMMDD` + `HHMMSS` in KST → epoch ms (NaN when unreadable). */
export function kstToMs(date: string, time = '000000'): number {
  if (!/^\d{8}$/.test(date) || !/^\d{6}$/.test(time)) return Number.NaN;
  return Date.parse(`${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}T${time.slice(0, 2)}:${time.slice(2, 4)}:${time.slice(4, 6)}+09:00`);
}

/** The end of the latest session that ended at or before `ms` (epoch ms), looking back up to two weeks. */
export function lastSessionClose(session: MarketSession, ms: number): number {
  const startOfDay = ms - ((ms + KST_OFFSET_MS) % 86_400_000);
  for (let day = 0; day < 15; day++) {
    const dayStart = startOfDay - day * 86_400_000;
    const end = dayStart + session.closeMinute * 60_000;
    if (end <= ms && session.days.includes(kstParts(dayStart).weekday)) return end;
  }
  return Number.NEGATIVE_INFINITY;
}

// ---- the token cache ----------------------------------------------------------------------

interface TokenFile {
  version: 1;
  /** sha256(host + appkey), so another account or host never uses this token. */
  key: string;
  accessToken?: string;
  expiresAt?: number;
  /** When KIS last issued a token for this key (the one-a-minute rule survives restarts). */
  issuedAt: number;
  /** No token is asked for before this (KIS refused a token it had just issued). */
  backoffUntil?: number;
  /** The back-off after the next such refusal. */
  backoffNextMs?: number;
}

const TOKEN_FILE = 'kis-token.json';
const ISSUE_INTERVAL_MS = 60_000;

interface Answer {
  body: Record<string, unknown>;
  trCont: string;
}

interface RequestSpec {
  method: 'GET' | 'POST';
  path: string;
  trId: string;
  what: string;
  query?: Record<string, string>;
  body?: Record<string, string>;
  trCont?: string;
  /** order-cash: an unknown error code is an unknown outcome, not a refusal. */
  placesOrder?: boolean;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** KIS's REST API for one appkey and one account. */
export class KisClient {
  readonly paper: boolean;
  readonly account: { cano: string; productCode: string };
  /** Where the token is cached (DATA_DIR/kis-token.json). */
  readonly tokenFile: string;
  private readonly root: string;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly rps: number;
  private readonly cacheKey: string;
  private readonly stamps: number[] = [];
  private resumeAt = 0;
  private token: { value: string; expiresAt: number } | undefined;
  private issuing: Promise<string> | undefined;
  private lastIssueAt = Number.NEGATIVE_INFINITY;
  private authFailure: { error: VenueAuthError; until: number } | undefined;
  /** A token issued here that no call has yet succeeded with (its refusal starts a back-off). */
  private unproven: string | undefined;
  /** Token issuing paused until `until`; the next pause lasts `nextMs`. */
  private backoff: { until: number; nextMs: number };
  /** Every token seen, so none can reach a message. */
  private readonly seenTokens = new Set<string>();

  constructor(private readonly options: KisClientOptions) {
    this.paper = options.paper;
    this.account = parseKisAccount(options.accountNo);
    this.root = options.apiUrl.replace(/\/+$/, '');
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? defaultSleep;
    this.rps = options.requestsPerSecond ?? (options.paper ? 2 : 20);
    this.backoff = { until: Number.NEGATIVE_INFINITY, nextMs: options.tokenBackoffMs ?? 300_000 };
    this.tokenFile = path.join(options.dataDir, TOKEN_FILE);
    this.cacheKey = crypto.createHash('sha256').update(`${new URL(this.root).host}\n${options.appKey}`).digest('hex');
  }

  /** Places a cash order (`POST …/trading/order-cash`). Never re-sent from here (except after a refused token: nothing was done). */
  async orderCash(order: KisCashOrder): Promise<KisOrderAnswer> {
    const { body } = await this.call({
      method: 'POST', path: '/uapi/domestic-stock/v1/trading/order-cash', trId: kisTrId(order.side, this.paper), what: `order-cash ${order.side} ${order.quantity} ${order.pdno}`, placesOrder: true,
      body: {
        CANO: this.account.cano, ACNT_PRDT_CD: this.account.productCode, PDNO: order.pdno, ORD_DVSN: order.ordDvsn,
        ORD_QTY: order.quantity, ORD_UNPR: order.price, EXCG_ID_DVSN_CD: 'KRX',
      },
    });
    const out = (body['output'] ?? {}) as Record<string, unknown>;
    const odno = str(out['ODNO'] ?? out['odno']);
    if (!odno) throw new TransientError(KIS_TRANSIENT.serverError, `KIS accepted order-cash ${order.side} ${order.quantity} ${order.pdno} without an order number (ODNO): the outcome is unknown`, { venue: 'kis' });
    return { odno, orgNo: str(out['KRX_FWDG_ORD_ORGNO'] ?? out['krx_fwdg_ord_orgno']), orderTime: str(out['ORD_TMD'] ?? out['ord_tmd']) };
  }

  /** Cancels the rest of an order (`POST …/trading/order-rvsecncl`, RVSE_CNCL_DVSN_CD 02, all quantity). */
  async cancelOrder(order: { orgNo: string; odno: string; ordDvsn: string }): Promise<void> {
    await this.call({
      method: 'POST', path: '/uapi/domestic-stock/v1/trading/order-rvsecncl', trId: kisTrId('cancel', this.paper), what: `order-rvsecncl ${order.odno}`,
      body: {
        CANO: this.account.cano, ACNT_PRDT_CD: this.account.productCode, KRX_FWDG_ORD_ORGNO: order.orgNo, ORGN_ODNO: order.odno,
        ORD_DVSN: order.ordDvsn, RVSE_CNCL_DVSN_CD: '02', ORD_QTY: '0', ORD_UNPR: '0', QTY_ALL_ORD_YN: 'Y', EXCG_ID_DVSN_CD: 'KRX',
      },
    });
  }

  /**
   * The day's orders and their fills (`GET …/trading/inquire-daily-ccld`), every page
   * (CTX_AREA_FK100/NK100 with `tr_cont: N` while KIS answers `tr_cont` M or F), at most `maxPages`.
   */
  async dailyOrders(query: { date: string; pdno?: string; odno?: string; side?: 'buy' | 'sell' }, maxPages = 20): Promise<KisDailyOrder[]> {
    const rows: KisDailyOrder[] = [];
    let fk = '';
    let nk = '';
    let trCont = '';
    for (let page = 0; page < maxPages; page++) {
      const answer = await this.call({
        method: 'GET', path: '/uapi/domestic-stock/v1/trading/inquire-daily-ccld', trId: kisTrId('dailyOrders', this.paper), what: `inquire-daily-ccld ${query.date}`, trCont,
        query: {
          CANO: this.account.cano, ACNT_PRDT_CD: this.account.productCode, INQR_STRT_DT: query.date, INQR_END_DT: query.date,
          SLL_BUY_DVSN_CD: query.side === 'sell' ? '01' : query.side === 'buy' ? '02' : '00', INQR_DVSN: '00', PDNO: query.pdno ?? '',
          CCLD_DVSN: '00', ORD_GNO_BRNO: '', ODNO: query.odno ?? '', INQR_DVSN_3: '00', INQR_DVSN_1: '', CTX_AREA_FK100: fk, CTX_AREA_NK100: nk, EXCG_ID_DVSN_CD: 'KRX',
        },
      });
      const list = answer.body['output1'];
      if (Array.isArray(list)) rows.push(...(list as KisDailyOrder[]));
      if (answer.trCont !== 'M' && answer.trCont !== 'F') break;
      fk = str(answer.body['ctx_area_fk100']);
      nk = str(answer.body['ctx_area_nk100']);
      trCont = 'N';
    }
    return rows;
  }

  /** Holdings and cash (`GET …/trading/inquire-balance`), every page. */
  async balance(maxPages = 20): Promise<{ holdings: KisHolding[]; cash: KisCashSummary }> {
    const holdings: KisHolding[] = [];
    let cash: KisCashSummary | undefined;
    let fk = '';
    let nk = '';
    let trCont = '';
    for (let page = 0; page < maxPages; page++) {
      const answer = await this.call({
        method: 'GET', path: '/uapi/domestic-stock/v1/trading/inquire-balance', trId: kisTrId('balance', this.paper), what: 'inquire-balance', trCont,
        query: {
          CANO: this.account.cano, ACNT_PRDT_CD: this.account.productCode, AFHR_FLPR_YN: 'N', OFL_YN: '', INQR_DVSN: '02', UNPR_DVSN: '01',
          FUND_STTL_ICLD_YN: 'N', FNCG_AMT_AUTO_RDPT_YN: 'N', PRCS_DVSN: '00', CTX_AREA_FK100: fk, CTX_AREA_NK100: nk,
        },
      });
      const list = answer.body['output1'];
      if (Array.isArray(list)) holdings.push(...(list as KisHolding[]));
      const summary = answer.body['output2'];
      const first = (Array.isArray(summary) ? summary[0] : summary) as KisCashSummary | undefined;
      if (first && cash === undefined) cash = first;
      if (answer.trCont !== 'M' && answer.trCont !== 'F') break;
      fk = str(answer.body['ctx_area_fk100']);
      nk = str(answer.body['ctx_area_nk100']);
      trCont = 'N';
    }
    if (!cash) throw new TransientError(KIS_TRANSIENT.serverError, 'KIS answered inquire-balance without its cash summary (output2)', { venue: 'kis' });
    return { holdings, cash };
  }

  /** The current price of a stock (`GET …/quotations/inquire-price`, FHKST01010100). */
  async price(pdno: string): Promise<KisPrice> {
    const { body } = await this.call({
      method: 'GET', path: '/uapi/domestic-stock/v1/quotations/inquire-price', trId: kisTrId('price', this.paper), what: `inquire-price ${pdno}`,
      query: { FID_COND_MRKT_DIV_CODE: 'J', FID_INPUT_ISCD: pdno },
    });
    return (body['output'] ?? {}) as KisPrice;
  }

  /** Daily candles between two dates, newest first as KIS sends them (at most 100 a call). */
  async dailyCandles(pdno: string, from: string, to: string): Promise<KisDailyCandle[]> {
    const { body } = await this.call({
      method: 'GET', path: '/uapi/domestic-stock/v1/quotations/inquire-daily-itemchartprice', trId: kisTrId('dailyCandles', this.paper), what: `inquire-daily-itemchartprice ${pdno}`,
      query: { FID_COND_MRKT_DIV_CODE: 'J', FID_INPUT_ISCD: pdno, FID_INPUT_DATE_1: from, FID_INPUT_DATE_2: to, FID_PERIOD_DIV_CODE: 'D', FID_ORG_ADJ_PRC: '0' },
    });
    const rows = body['output2'];
    return Array.isArray(rows) ? (rows as KisDailyCandle[]).filter((r) => r && typeof r.stck_bsop_date === 'string' && r.stck_bsop_date !== '') : [];
  }

  // ---- requests -----------------------------------------------------------------------------

  /** One call with a token; a refused token is replaced once and the call repeated once. */
  private async call(spec: RequestSpec): Promise<Answer> {
    this.checkCredentials(spec.what);
    const token = await this.accessToken();
    try {
      return await this.sendWith(spec, token);
    } catch (err) {
      if (!isTokenRefusal(err)) throw err;
      this.options.logger?.warn('KIS refused the access token; asking for a new one', { component: 'kis', call: spec.what });
      await this.tokenRefused(token);
      const fresh = await this.accessToken(err as VenueAuthError);
      try {
        return await this.sendWith(spec, fresh);
      } catch (again) {
        if (isTokenRefusal(again)) await this.tokenRefused(fresh);
        throw again;
      }
    }
  }

  /** Sends with `token`; an answer past the gateway (success or a business refusal) proves the token. */
  private async sendWith(spec: RequestSpec, token: string): Promise<Answer> {
    try {
      const answer = await this.send(spec, token);
      await this.tokenProven(token);
      return answer;
    } catch (err) {
      if (err instanceof VenueRejectedError) await this.tokenProven(token);
      throw err;
    }
  }

  private checkCredentials(what: string): void {
    if (this.options.appKey === '' || this.options.appSecret === '') {
      throw new VenueAuthError('keys_missing', `KIS_APP_KEY and KIS_APP_SECRET are not both set, so ${what} cannot be asked: set both (from the KIS developer portal) and restart`, { venue: 'kis', call: what });
    }
    const failure = this.authFailure;
    if (failure && this.now() < failure.until) throw failure.error;
  }

  /** Sends one request (throttled) and reads KIS's answer; errors are translated. */
  private async send(spec: RequestSpec, token: string | undefined): Promise<Answer> {
    await this.throttle();
    const url = new URL(this.root + spec.path);
    for (const [k, v] of Object.entries(spec.query ?? {})) url.searchParams.set(k, v);
    const headers: Record<string, string> = {
      'content-type': 'application/json; charset=utf-8', appkey: this.options.appKey, appsecret: this.options.appSecret, tr_id: spec.trId, custtype: 'P',
      ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
      ...(spec.trCont ? { tr_cont: spec.trCont } : {}),
    };
    const answer = await this.fetchJson(url, spec.method, headers, spec.body, spec.what);
    const body = answer.body;
    const rtCd = body['rt_cd'];
    if (answer.status >= 400 || (rtCd !== undefined && String(rtCd) !== '0')) {
      throw this.failed({ status: answer.status, code: str(body['msg_cd'] ?? body['error_code']), message: str(body['msg1'] ?? body['error_description']) }, spec.what, spec.placesOrder === true);
    }
    if (rtCd === undefined) throw new TransientError(KIS_TRANSIENT.serverError, `KIS answered ${spec.what} without rt_cd: the outcome is unknown`, { venue: 'kis', call: spec.what });
    return { body, trCont: answer.trCont };
  }

  private failed(answer: KisErrorAnswer, what: string, placesOrder = false): AppError {
    const scrubbed: KisErrorAnswer = {
      ...answer, ...(answer.message !== undefined ? { message: this.scrub(answer.message) } : {}), ...(answer.code !== undefined ? { code: this.scrub(answer.code) } : {}),
    };
    const error = kisErrorOf(scrubbed, what, { placesOrder });
    if (error instanceof TransientError && error.code === KIS_TRANSIENT.rateLimited) this.resumeAt = Math.max(this.resumeAt, this.now() + 1000);
    if (error instanceof VenueAuthError && !isTokenRefusal(error)) this.authFailure = { error, until: this.now() + (this.options.authRetryAfterMs ?? 60_000) };
    return error;
  }

  private async fetchJson(url: URL, method: string, headers: Record<string, string>, body: Record<string, string> | undefined, what: string): Promise<{ status: number; body: Record<string, unknown>; trCont: string }> {
    const timeoutMs = this.options.timeoutMs ?? 10_000;
    let res: Response;
    try {
      res = await fetch(url, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      const name = (err as { name?: string } | undefined)?.name;
      if (name === 'TimeoutError' || name === 'AbortError') {
        throw new TransientError(KIS_TRANSIENT.timeout, `KIS did not answer ${what} within ${timeoutMs} ms: the outcome is unknown`, { venue: 'kis', call: what });
      }
      throw new TransientError(KIS_TRANSIENT.unavailable, `KIS could not be reached for ${what}: the outcome is unknown — ${this.scrub(String((err as Error)?.message ?? err)).slice(0, 200)}`, { venue: 'kis', call: what });
    }
    let text: string;
    try {
      text = await res.text();
    } catch {
      throw new TransientError(KIS_TRANSIENT.unavailable, `the connection to KIS dropped while it answered ${what} (HTTP ${res.status}): the outcome is unknown`, { venue: 'kis', call: what });
    }
    let parsed: unknown;
    try {
      parsed = text === '' ? {} : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      if (res.status >= 500 || res.status === 0) throw new TransientError(KIS_TRANSIENT.serverError, `KIS failed with HTTP ${res.status} on ${what}: the outcome is unknown`, { venue: 'kis', call: what, httpStatus: res.status });
      throw new TransientError(KIS_TRANSIENT.serverError, `KIS answered ${what} with HTTP ${res.status} and no JSON: the outcome is unknown`, { venue: 'kis', call: what, httpStatus: res.status });
    }
    return { status: res.status, body: parsed as Record<string, unknown>, trCont: res.headers.get('tr_cont') ?? '' };
  }

  /** Waits until a request fits `requestsPerSecond` in the last second (and any back-off). */
  private async throttle(): Promise<void> {
    for (;;) {
      const now = this.now();
      if (now < this.resumeAt) {
        await this.sleep(this.resumeAt - now);
        continue;
      }
      while (this.stamps.length > 0 && this.stamps[0]! <= now - 1000) this.stamps.shift();
      if (this.stamps.length < this.rps) {
        this.stamps.push(now);
        return;
      }
      await this.sleep(this.stamps[0]! + 1000 - now);
    }
  }

  /** Replaces the appkey, the appsecret and every token seen by `[redacted]`. */
  private scrub(text: string): string {
    return secretText([this.options.appKey, this.options.appSecret, ...this.seenTokens])(text);
  }

  // ---- the token ----------------------------------------------------------------------------

  /** A valid token: from memory, from the file, or issued (one issue at a time, at most one a minute). */
  private accessToken(refused?: VenueAuthError): Promise<string> {
    const margin = this.options.tokenRenewMarginMs ?? 600_000;
    if (this.token && this.token.expiresAt - margin > this.now()) return Promise.resolve(this.token.value);
    if (!this.issuing) {
      this.issuing = this.obtain(margin, refused).finally(() => {
        this.issuing = undefined;
      });
    }
    return this.issuing;
  }

  private async obtain(margin: number, refused: VenueAuthError | undefined): Promise<string> {
    const file = await this.readTokenFile();
    if (file?.accessToken && file.expiresAt !== undefined && file.expiresAt - margin > this.now()) {
      this.seenTokens.add(file.accessToken);
      this.token = { value: file.accessToken, expiresAt: file.expiresAt };
      return file.accessToken;
    }
    if (file?.backoffUntil !== undefined && file.backoffUntil > this.backoff.until) {
      this.backoff = { until: file.backoffUntil, nextMs: file.backoffNextMs ?? this.backoff.nextMs };
    }
    if (this.now() < this.backoff.until) {
      const when = new Date(this.backoff.until).toISOString();
      throw new VenueAuthError('token_refused', `KIS refused an access token it had just issued${refused ? ` (${refused.message})` : ''}; since each issue alerts the account holder and asking again will not help, no token is asked for until ${when} (the wait doubles, up to an hour, while KIS keeps refusing fresh tokens): check in the KIS developer portal that KIS_APP_KEY is active and that KIS_PAPER matches its environment`, {
        ...(refused?.details ?? { venue: 'kis' }), nextIssueAt: this.backoff.until,
      });
    }
    const last = Math.max(this.lastIssueAt, file?.issuedAt ?? Number.NEGATIVE_INFINITY);
    const nextAt = last + ISSUE_INTERVAL_MS;
    if (this.now() < nextAt) {
      const when = new Date(nextAt).toISOString();
      if (refused) throw new VenueAuthError(refused.code, `${refused.message}; KIS issues one token a minute, so a new one is asked for at ${when}, not before`, { ...refused.details, nextIssueAt: nextAt });
      throw new TransientError(KIS_TRANSIENT.tokenRateLimited, `KIS issues one access token a minute per appkey and one was issued at ${new Date(last).toISOString()}; the next is asked for at ${when}`, { venue: 'kis', nextIssueAt: nextAt });
    }
    return this.issue(file);
  }

  private async issue(previous: TokenFile | undefined): Promise<string> {
    this.lastIssueAt = this.now();
    let answer: { status: number; body: Record<string, unknown> };
    try {
      await this.throttle();
      answer = await this.fetchJson(new URL(`${this.root}/oauth2/tokenP`), 'POST', { 'content-type': 'application/json; charset=utf-8' }, {
        grant_type: 'client_credentials', appkey: this.options.appKey, appsecret: this.options.appSecret,
      }, 'tokenP');
    } catch (err) {
      // No answer: KIS may have issued one (and counted it); the minute is respected either way.
      await this.writeTokenFile({ version: 1, key: this.cacheKey, issuedAt: this.lastIssueAt });
      throw err;
    }
    const body = answer.body;
    const token = str(body['access_token']);
    if (answer.status >= 400 || token === '') {
      const code = str(body['error_code'] ?? body['msg_cd']);
      if (code !== 'EGW00133') await this.writeTokenFile({ version: 1, key: this.cacheKey, issuedAt: previous?.key === this.cacheKey ? previous.issuedAt : Number.NEGATIVE_INFINITY });
      else await this.writeTokenFile({ version: 1, key: this.cacheKey, issuedAt: this.lastIssueAt });
      throw this.failed({ status: answer.status, code, message: str(body['error_description'] ?? body['msg1']) }, 'tokenP');
    }
    const expiresIn = Number(body['expires_in']);
    const byTtl = Number.isFinite(expiresIn) && expiresIn > 0 ? this.lastIssueAt + expiresIn * 1000 : Number.POSITIVE_INFINITY;
    const byStamp = parseKstStamp(str(body['access_token_token_expired']));
    let expiresAt = Math.min(byTtl, Number.isFinite(byStamp) ? byStamp : Number.POSITIVE_INFINITY);
    if (!Number.isFinite(expiresAt)) expiresAt = this.lastIssueAt + 86_400_000;
    this.seenTokens.add(token);
    this.token = { value: token, expiresAt };
    this.unproven = token;
    try {
      await this.writeTokenFile({ version: 1, key: this.cacheKey, accessToken: token, expiresAt, issuedAt: this.lastIssueAt });
    } catch (err) {
      // The token works; only its reuse after a restart is lost. Said loudly, never fatal.
      this.options.logger?.error('KIS token: could not be cached on disk; a restart will ask KIS for another', { component: 'kis', error: err instanceof Error ? err.message : String(err) });
    }
    this.options.logger?.info('KIS issued an access token', { component: 'kis', expiresAt: new Date(expiresAt).toISOString() });
    return token;
  }

  /**
   * Forgets a token KIS refused (in memory and on disk, keeping when it was issued). A token
   * issued here that never worked starts (or doubles) the issuing back-off.
   */
  private async tokenRefused(token: string): Promise<void> {
    if (this.token?.value === token) this.token = undefined;
    if (this.unproven === token) {
      this.unproven = undefined;
      const max = this.options.tokenBackoffMaxMs ?? 3_600_000;
      const wait = Math.min(this.backoff.nextMs, max);
      this.backoff = { until: this.now() + wait, nextMs: Math.min(wait * 2, max) };
      this.options.logger?.error('KIS refused an access token it had just issued; no new token is asked for during the back-off', { component: 'kis', until: new Date(this.backoff.until).toISOString() });
    }
    const file = await this.readTokenFile();
    if (file?.accessToken === token || this.backoff.until > (file?.backoffUntil ?? Number.NEGATIVE_INFINITY)) {
      await this.writeTokenFile({
        version: 1, key: this.cacheKey, issuedAt: file?.issuedAt ?? this.lastIssueAt,
        ...(file?.accessToken !== undefined && file.accessToken !== token ? { accessToken: file.accessToken, ...(file.expiresAt !== undefined ? { expiresAt: file.expiresAt } : {}) } : {}),
      });
    }
  }

  /** A call went through with `token`: it works, and any issuing back-off is over. */
  private async tokenProven(token: string): Promise<void> {
    if (this.unproven === token) this.unproven = undefined;
    if (this.backoff.until === Number.NEGATIVE_INFINITY) return;
    this.backoff = { until: Number.NEGATIVE_INFINITY, nextMs: this.options.tokenBackoffMs ?? 300_000 };
    const file = await this.readTokenFile();
    if (file?.backoffUntil !== undefined) await this.writeTokenFile(file).catch(() => undefined);
  }

  private async readTokenFile(): Promise<TokenFile | undefined> {
    let text: string;
    try {
      text = await fsp.readFile(this.tokenFile, 'utf8');
    } catch {
      return undefined;
    }
    try {
      const parsed = JSON.parse(text) as Partial<TokenFile>;
      if (parsed.version !== 1 || parsed.key !== this.cacheKey) return undefined;
      return {
        version: 1, key: parsed.key, issuedAt: typeof parsed.issuedAt === 'number' ? parsed.issuedAt : Number.NEGATIVE_INFINITY,
        ...(typeof parsed.accessToken === 'string' ? { accessToken: parsed.accessToken } : {}), ...(typeof parsed.expiresAt === 'number' ? { expiresAt: parsed.expiresAt } : {}),
        ...(typeof parsed.backoffUntil === 'number' ? { backoffUntil: parsed.backoffUntil } : {}), ...(typeof parsed.backoffNextMs === 'number' ? { backoffNextMs: parsed.backoffNextMs } : {}),
      };
    } catch {
      return undefined;
    }
  }

  /** Durable, private: temp file (0600) + fsync + rename + fsync of the folder; the back-off (this client's) goes with it. */
  private async writeTokenFile(file: TokenFile): Promise<void> {
    const { backoffUntil: _until, backoffNextMs: _next, ...rest } = file;
    const backoff = this.backoff.until > this.now() ? { backoffUntil: this.backoff.until, backoffNextMs: this.backoff.nextMs } : {};
    const data = { ...rest, ...backoff, issuedAt: Number.isFinite(file.issuedAt) ? file.issuedAt : null };
    fs.rmSync(`${this.tokenFile}.tmp`, { force: true });
    replaceFileSync(this.tokenFile, `${JSON.stringify(data)}\n`, 0o600);
  }
}

function str(value: unknown): string {
  return value === undefined || value === null ? '' : String(value);
}

/** `2026-01-02 10:00:00` (KST) → epoch ms. */
function parseKstStamp(text: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(text);
  return m ? Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}+09:00`) : Number.NaN;
}
