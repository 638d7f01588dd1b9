/**
 * A local KIS Open API server for tests: the subset the KIS adapter and market data use, in KIS's
 * shapes, with KIS's rules.
 *
 *   POST /oauth2/tokenP                                    token: one a minute per appkey (EGW00133)
 *   POST /uapi/domestic-stock/v1/trading/order-cash        VTTC0012U/VTTC0011U (paper) TTTC0012U/TTTC0011U (real)
 *   POST /uapi/domestic-stock/v1/trading/order-rvsecncl    VTTC0013U / TTTC0013U (cancel only)
 *   GET  /uapi/domestic-stock/v1/trading/inquire-daily-ccld  VTTC0081R / TTTC0081R, 15 (paper) or 100 rows a page
 *   GET  /uapi/domestic-stock/v1/trading/inquire-balance   VTTC8434R / TTTC8434R
 *   GET  /uapi/domestic-stock/v1/quotations/inquire-price  FHKST01010100
 *   GET  /uapi/domestic-stock/v1/quotations/inquire-daily-itemchartprice  FHKST03010100
 *
 * Every API call must carry `appkey`, `appsecret` (the fake's), `authorization: Bearer <token>`
 * (a token it issued, not expired) and a `tr_id` of the right environment (`paper`: a `T…` id is
 * refused, and a `V…` id on a real account). Answers are HTTP 200 `{rt_cd:'0', msg_cd, msg1, …}`;
 * refusals `rt_cd:'1'` (gateway errors with HTTP 500, as KIS does, order refusals HTTP 200),
 * token endpoint errors HTTP 403 `{error_code, error_description}`. Requests beyond
 * `requestsPerSecond` in one second answer EGW00201 "초당 거래건수를 초과하였습니다.".
 *
 * Orders: market orders fill at once at the set price (`setPrice`), a fee of `feeRate` taken from
 * cash; limit orders when marketable; `autoFill(false)` leaves them open until `fillOrder`.
 * Cash is kept as KIS shows it with T+2 settlement: `dnca_tot_amt` (deposits now) moves only by
 * `setCash`, `prvs_rcdl_excc_amt` (after settlement) by every trade.
 *
 * Test controls: `setPrice`, `setCandles`, `setCash`, `setHolding`, `setMarketOpen`, `autoFill`,
 * `fillOrder`, `holdNextOrder({after, answer})` + `releaseHeld()` / `releaseNextHeld()` (the
 * answer is held, then the connection is dropped — or, with `answer`, KIS's answer is sent: the
 * order placed or not), `showOrdersLate(ms)` (the daily inquiry shows new orders only that long
 * after they were placed), `answerNext(path, error, {placeFirst, times})` (the next calls to a
 * path answer KIS's error; an order may be placed first), `renumberNextAnswer(odno)` (the next
 * order's answer names another order number), `expireTokens()`, `refuseTokens(on)` (every
 * token, even one just issued, is refused as invalid), and what happened: `tokensIssued`,
 * `ordersSeen()`, `orders()`, `requests` (the log).
 */
import http from 'node:http';
import crypto from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Decimal from 'decimal.js';

export interface FakeKisOptions {
  appKey?: string;
  appSecret?: string;
  /** `CANO-ACNT_PRDT_CD`; default `50123456-01`. */
  accountNo?: string;
  /** A paper account (`V…` ids) or a real one (`T…`); default true. */
  paper?: boolean;
  /** Per appkey; default 2 (paper) or 20 (real); 0: no limit. */
  requestsPerSecond?: number;
  /** Token lifetime, s; default 86 400. */
  tokenTtlSeconds?: number;
  /** Fee on each fill; default 0.00015. */
  feeRate?: string;
  /** Securities transaction tax on each sell's value, cut to whole KRW; default 0. */
  sellTaxRate?: string;
  now?: () => number;
}

/** One request as the fake saw it. */
export interface FakeKisRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  query: Record<string, string>;
  body: Record<string, unknown> | undefined;
  at: number;
  /** HTTP status answered (undefined while held or when the connection was dropped). */
  status?: number;
  /** msg_cd or error_code of a refusal. */
  error?: string;
}

export interface FakeKisOrder {
  odno: string;
  orgNo: string;
  pdno: string;
  side: 'buy' | 'sell';
  ordDvsn: string;
  qty: number;
  price: Decimal;
  createdAt: number;
  filledQty: number;
  filledAmt: Decimal;
  cancelled: boolean;
  visibleAt: number;
}

interface Reply { status: number; body: unknown; headers?: Record<string, string>; drop?: boolean }

/** A KIS error answer to give instead of the real one (`answerNext`). */
export interface FakeKisError {
  status: number;
  msgCd: string;
  msg1: string;
}

interface Hold { after: 'placed' | 'not-placed'; answer: boolean }

const KST = 9 * 3600_000;
const kstDate = (ms: number) => new Date(ms + KST).toISOString().slice(0, 10).replace(/-/g, '');
const kstTime = (ms: number) => new Date(ms + KST).toISOString().slice(11, 19).replace(/:/g, '');

const ok = (extra: Record<string, unknown>, msg1 = '조회가 완료되었습니다.'): Reply => ({ status: 200, body: { rt_cd: '0', msg_cd: 'MCA00000', msg1, ...extra } });
const refuse = (status: number, msgCd: string, msg1: string): Reply => ({ status, body: { rt_cd: '1', msg_cd: msgCd, msg1 } });

export const FAKE_KIS_MESSAGES = {
  rateLimited: '초당 거래건수를 초과하였습니다.',
  tokenOnceAMinute: '접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)',
  invalidAppKey: '유효하지 않은 AppKey입니다.',
  invalidAppSecret: '유효하지 않은 AppSecret입니다.',
  invalidToken: '유효하지 않은 token 입니다.',
  expiredToken: '기간이 만료된 token 입니다.',
  unknownTrId: '없는 서비스 코드 입니다',
  marketClosed: '모의투자 장종료 입니다.',
  insufficientCash: '주문가능금액을 초과 했습니다',
  insufficientShares: '주문가능수량을 초과 했습니다',
} as const;

export class FakeKis {
  readonly appKey: string;
  readonly appSecret: string;
  readonly accountNo: string;
  readonly paper: boolean;
  /** Every request, in arrival order. */
  readonly requests: FakeKisRequest[] = [];
  /** Tokens issued so far (each one alerts the account holder at the real KIS). */
  tokensIssued = 0;
  private readonly now: () => number;
  private readonly rps: number;
  private readonly feeRate: Decimal;
  private readonly sellTaxRate: Decimal;
  private readonly tokens = new Map<string, number>();
  private lastIssue = Number.NEGATIVE_INFINITY;
  private readonly prices = new Map<string, number>();
  private readonly candles = new Map<string, Array<{ date: string; open: number; high: number; low: number; close: number; volume: number }>>();
  private deposits = new Decimal(0);
  private settledCash = new Decimal(0);
  private readonly holdings = new Map<string, number>();
  private readonly orderList: FakeKisOrder[] = [];
  private readonly holds: Hold[] = [];
  private readonly releasers: Array<() => void> = [];
  private readonly errorsNext: Array<{ path: string; error: FakeKisError; placeFirst: boolean }> = [];
  private renumber: string | undefined;
  private tokensRefused = false;
  private readonly rate = new Map<number, number>();
  private lateMs = 0;
  private fillAtOnce = true;
  private marketOpen = true;
  private seq = 0;

  private constructor(private readonly server: http.Server, readonly url: string, options: FakeKisOptions) {
    this.appKey = options.appKey ?? 'PSfakeappkey0000000000000000000000000';
    this.appSecret = options.appSecret ?? 'fake-app-secret-0000000000000000000000000000000000000000';
    this.accountNo = options.accountNo ?? '50123456-01';
    this.paper = options.paper ?? true;
    this.now = options.now ?? Date.now;
    this.rps = options.requestsPerSecond ?? (this.paper ? 2 : 20);
    this.feeRate = new Decimal(options.feeRate ?? '0.00015');
    this.sellTaxRate = new Decimal(options.sellTaxRate ?? '0');
    this.tokenTtl = (options.tokenTtlSeconds ?? 86_400) * 1000;
  }

  private readonly tokenTtl: number;

  static async start(options: FakeKisOptions = {}): Promise<FakeKis> {
    const ref: { fake?: FakeKis } = {};
    const server = http.createServer((req, res) => void ref.fake!.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    ref.fake = new FakeKis(server, `http://127.0.0.1:${port}`, options);
    return ref.fake;
  }

  async stop(): Promise<void> {
    this.releaseHeld();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- controls ------------------------------------------------------------------------------

  setPrice(pdno: string, price: number): void {
    this.prices.set(pdno, price);
  }

  /** Daily candles, any order; `date` is YYYYMMDD. */
  setCandles(pdno: string, rows: Array<{ date: string; open: number; high: number; low: number; close: number; volume: number }>): void {
    this.candles.set(pdno, [...rows].sort((a, b) => a.date.localeCompare(b.date)));
  }

  /** Sets both the deposits and the settled cash. */
  setCash(krw: Decimal.Value): void {
    this.deposits = new Decimal(krw);
    this.settledCash = new Decimal(krw);
  }

  setHolding(pdno: string, qty: number): void {
    if (qty === 0) this.holdings.delete(pdno);
    else this.holdings.set(pdno, qty);
  }

  setMarketOpen(open: boolean): void {
    this.marketOpen = open;
  }

  /** Whether market orders fill the moment they are placed (default true). */
  autoFill(on: boolean): void {
    this.fillAtOnce = on;
  }

  /** Fills an open order (all of it, or `qty`) at the current price. */
  fillOrder(odno: string, qty?: number): void {
    const o = this.orderList.find((x) => x.odno === odno);
    if (!o) throw new Error(`no order ${odno}`);
    this.fill(o, qty ?? o.qty - o.filledQty, new Decimal(this.prices.get(o.pdno) ?? o.price));
  }

  /**
   * Holds the answer to the next order-cash until released (or the client gives up), then drops
   * the connection without an answer — or, with `answer` and once released, sends KIS's answer.
   * `placed`: the order is placed first; `not-placed`: not.
   */
  holdNextOrder(hold: { after: 'placed' | 'not-placed'; answer?: boolean }): void {
    this.holds.push({ after: hold.after, answer: hold.answer === true });
  }

  get heldCount(): number {
    return this.releasers.length;
  }

  releaseHeld(): void {
    for (const release of [...this.releasers]) release();
  }

  /** Releases the answer held longest. */
  releaseNextHeld(): void {
    this.releasers[0]?.();
  }

  /**
   * The next `times` calls to a path (matched by its end, e.g. `order-cash`) answer `error`;
   * with `placeFirst` (order-cash) the order is placed before the error is answered.
   */
  answerNext(path: string, error: FakeKisError, options: { placeFirst?: boolean; times?: number } = {}): void {
    for (let i = 0; i < (options.times ?? 1); i++) this.errorsNext.push({ path, error, placeFirst: options.placeFirst === true });
  }

  /** The next order placed is answered with this order number instead of its own. */
  renumberNextAnswer(odno: string): void {
    this.renumber = odno;
  }

  /** Every token, even one just issued, is refused as invalid (EGW00121) while on. */
  refuseTokens(on: boolean): void {
    this.tokensRefused = on;
  }

  /** Orders placed from now on appear in inquire-daily-ccld only `ms` after they were placed (0: at once). */
  showOrdersLate(ms: number): void {
    this.lateMs = ms;
  }

  /** Every issued token is refused as expired from now on. */
  expireTokens(): void {
    for (const t of this.tokens.keys()) this.tokens.set(t, Number.NEGATIVE_INFINITY);
  }

  /** How many orders were placed. */
  ordersSeen(): number {
    return this.orderList.length;
  }

  orders(): readonly FakeKisOrder[] {
    return this.orderList;
  }

  holding(pdno: string): number {
    return this.holdings.get(pdno) ?? 0;
  }

  /** Requests to a path (e.g. `/trading/order-cash`), matched by its end. */
  requestsTo(pathEnd: string): FakeKisRequest[] {
    return this.requests.filter((r) => r.path.endsWith(pathEnd));
  }

  // ---- the server ----------------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? '/', 'http://fake');
    let body: Record<string, unknown> | undefined;
    try {
      const text = Buffer.concat(chunks).toString('utf8');
      body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
    } catch {
      body = undefined;
    }
    const entry: FakeKisRequest = { method: req.method ?? 'GET', path: url.pathname, headers: req.headers, query: Object.fromEntries(url.searchParams), body, at: this.now() };
    this.requests.push(entry);
    const aborted = new AbortController();
    res.on('close', () => {
      if (!res.writableEnded) aborted.abort();
    });
    const reply = await this.route(entry, aborted.signal);
    if (reply.drop) {
      req.socket.destroy();
      return;
    }
    entry.status = reply.status;
    const b = reply.body as Record<string, unknown>;
    if (reply.status >= 400 || (b && b['rt_cd'] !== undefined && b['rt_cd'] !== '0')) entry.error = String(b?.['msg_cd'] ?? b?.['error_code'] ?? '');
    res.writeHead(reply.status, { 'content-type': 'application/json; charset=utf-8', ...reply.headers });
    res.end(JSON.stringify(reply.body));
  }

  private async route(r: FakeKisRequest, signal: AbortSignal): Promise<Reply> {
    if (r.method === 'POST' && r.path === '/oauth2/tokenP') return this.tokenP(r);
    const p = r.path;
    const table: Array<[string, string, string, (r: FakeKisRequest, signal: AbortSignal) => Reply | Promise<Reply>]> = [
      ['POST', '/uapi/domestic-stock/v1/trading/order-cash', 'TTTC0012U|TTTC0011U', (x, s) => this.orderCash(x, s)],
      ['POST', '/uapi/domestic-stock/v1/trading/order-rvsecncl', 'TTTC0013U', (x) => this.cancel(x)],
      ['GET', '/uapi/domestic-stock/v1/trading/inquire-daily-ccld', 'TTTC0081R', (x) => this.dailyCcld(x)],
      ['GET', '/uapi/domestic-stock/v1/trading/inquire-balance', 'TTTC8434R', () => this.balance()],
      ['GET', '/uapi/domestic-stock/v1/quotations/inquire-price', 'FHKST01010100', (x) => this.price(x)],
      ['GET', '/uapi/domestic-stock/v1/quotations/inquire-daily-itemchartprice', 'FHKST03010100', (x) => this.chart(x)],
    ];
    const route = table.find(([m, path]) => m === r.method && path === p);
    if (!route) return { status: 404, body: { rt_cd: '1', msg_cd: 'EGW00404', msg1: 'Not Found' } };
    const denied = this.authenticate(r);
    if (denied) return denied;
    const trId = String(r.headers['tr_id'] ?? '');
    const allowed = route[2].split('|').map((id) => (this.paper && id.startsWith('T') ? `V${id.slice(1)}` : id));
    if (!allowed.includes(trId)) return refuse(500, 'OPSQ0002', FAKE_KIS_MESSAGES.unknownTrId);
    const limited = this.countRequest();
    if (limited) return limited;
    const i = this.errorsNext.findIndex((e) => p.endsWith(e.path));
    if (i >= 0) {
      const next = this.errorsNext.splice(i, 1)[0]!;
      if (next.placeFirst) await route[3](r, signal);
      return refuse(next.error.status, next.error.msgCd, next.error.msg1);
    }
    return route[3](r, signal);
  }

  private authenticate(r: FakeKisRequest): Reply | undefined {
    const h = r.headers;
    if (h['appkey'] === undefined) return refuse(500, 'EGW00102', 'AppKey는 필수입니다.');
    if (h['appkey'] !== this.appKey) return refuse(500, 'EGW00103', FAKE_KIS_MESSAGES.invalidAppKey);
    if (h['appsecret'] === undefined) return refuse(500, 'EGW00104', 'AppSecret은 필수입니다.');
    if (h['appsecret'] !== this.appSecret) return refuse(500, 'EGW00105', FAKE_KIS_MESSAGES.invalidAppSecret);
    const auth = String(h['authorization'] ?? '');
    const token = /^Bearer (.+)$/.exec(auth)?.[1];
    const expiresAt = token !== undefined ? this.tokens.get(token) : undefined;
    if (expiresAt === undefined || this.tokensRefused) return refuse(500, 'EGW00121', FAKE_KIS_MESSAGES.invalidToken);
    if (expiresAt <= this.now()) return refuse(500, 'EGW00123', FAKE_KIS_MESSAGES.expiredToken);
    if (h['tr_id'] === undefined) return refuse(500, 'EGW00002', 'tr_id는 필수입니다.');
    if (h['custtype'] !== 'P') return refuse(500, 'EGW00002', 'custtype이 올바르지 않습니다.');
    return undefined;
  }

  private countRequest(): Reply | undefined {
    if (this.rps <= 0) return undefined;
    const second = Math.floor(this.now() / 1000);
    const n = (this.rate.get(second) ?? 0) + 1;
    this.rate.set(second, n);
    return n > this.rps ? refuse(500, 'EGW00201', FAKE_KIS_MESSAGES.rateLimited) : undefined;
  }

  private tokenP(r: FakeKisRequest): Reply {
    const b = r.body ?? {};
    const denied = (code: string, description: string): Reply => ({ status: 403, body: { error_code: code, error_description: description } });
    if (b['grant_type'] !== 'client_credentials') return denied('EGW00002', 'grant_type이 올바르지 않습니다.');
    if (b['appkey'] !== this.appKey) return denied('EGW00103', FAKE_KIS_MESSAGES.invalidAppKey);
    if (b['appsecret'] !== this.appSecret) return denied('EGW00105', FAKE_KIS_MESSAGES.invalidAppSecret);
    const now = this.now();
    if (now - this.lastIssue < 60_000) return denied('EGW00133', FAKE_KIS_MESSAGES.tokenOnceAMinute);
    this.lastIssue = now;
    this.tokensIssued += 1;
    const token = `fake-token-${crypto.randomBytes(12).toString('hex')}`;
    const expiresAt = now + this.tokenTtl;
    this.tokens.set(token, expiresAt);
    const stamp = new Date(expiresAt + KST).toISOString().slice(0, 19).replace('T', ' ');
    return { status: 200, body: { access_token: token, token_type: 'Bearer', expires_in: Math.round(this.tokenTtl / 1000), access_token_token_expired: stamp } };
  }

  private checkAccount(fields: Record<string, unknown>): Reply | undefined {
    const [cano, product] = this.accountNo.split('-');
    if (fields['CANO'] !== cano || fields['ACNT_PRDT_CD'] !== product) return refuse(200, 'OPSQ2000', 'ERROR : INPUT INVALID_CHECK_ACNO');
    return undefined;
  }

  private async orderCash(r: FakeKisRequest, signal: AbortSignal): Promise<Reply> {
    const b = r.body ?? {};
    const bad = this.checkAccount(b);
    if (bad) return bad;
    for (const f of ['PDNO', 'ORD_DVSN', 'ORD_QTY', 'ORD_UNPR']) {
      if (typeof b[f] !== 'string') return refuse(200, 'OPSQ0001', `${f} 입력값이 올바르지 않습니다.(문자열)`);
    }
    const hold = this.holds.shift();
    if (hold?.after === 'not-placed') {
      // Nothing placed, and no answer either way (KIS never received it).
      await this.held(signal);
      return { status: 0, body: null, drop: true };
    }
    const side = String(r.headers['tr_id']).endsWith('12U') ? 'buy' : 'sell';
    const pdno = String(b['PDNO']);
    const price = this.prices.get(pdno);
    if (price === undefined) return refuse(200, 'APBK0656', '해당종목정보가 없습니다.');
    if (!this.marketOpen) return refuse(200, '40580000', FAKE_KIS_MESSAGES.marketClosed);
    const qty = /^\d+$/.test(String(b['ORD_QTY'])) ? Number(b['ORD_QTY']) : 0;
    if (qty <= 0) return refuse(200, 'APBK0506', '주문수량을 확인하여 주십시요.');
    const ordDvsn = String(b['ORD_DVSN']);
    if (ordDvsn !== '00' && ordDvsn !== '01') return refuse(200, 'APBK0509', '주문구분을 확인하여 주십시요.');
    const unitPrice = ordDvsn === '00' ? new Decimal(String(b['ORD_UNPR'])) : new Decimal(price);
    if (side === 'buy' && this.settledCash.lt(unitPrice.times(qty).times(this.feeRate.plus(1)))) return refuse(200, 'APBK0952', FAKE_KIS_MESSAGES.insufficientCash);
    if (side === 'sell' && this.holding(pdno) - this.openSellQty(pdno) < qty) return refuse(200, 'APBK0400', FAKE_KIS_MESSAGES.insufficientShares);
    const now = this.now();
    const order: FakeKisOrder = {
      odno: String(++this.seq + 10_000).padStart(10, '0'), orgNo: '00950', pdno, side, ordDvsn, qty, price: unitPrice,
      createdAt: now, filledQty: 0, filledAmt: new Decimal(0), cancelled: false, visibleAt: now + this.lateMs,
    };
    this.orderList.push(order);
    if (this.fillAtOnce && (ordDvsn === '01' || (side === 'buy' ? unitPrice.gte(price) : unitPrice.lte(price)))) this.fill(order, qty, ordDvsn === '01' ? new Decimal(price) : unitPrice);
    const odno = this.renumber ?? order.odno;
    this.renumber = undefined;
    const answer = ok({ output: { KRX_FWDG_ORD_ORGNO: order.orgNo, ODNO: odno, ORD_TMD: kstTime(now) } }, '주문 전송 완료 되었습니다.');
    if (hold?.after === 'placed') {
      await this.held(signal);
      return hold.answer && !signal.aborted ? answer : { status: 0, body: null, drop: true };
    }
    return answer;
  }

  /** Waits for a release or the client giving up. */
  private held(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        const i = this.releasers.indexOf(done);
        if (i >= 0) this.releasers.splice(i, 1);
        signal.removeEventListener('abort', done);
        resolve();
      };
      if (signal.aborted) return done();
      this.releasers.push(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private openSellQty(pdno: string): number {
    return this.orderList.filter((o) => o.pdno === pdno && o.side === 'sell' && !o.cancelled).reduce((n, o) => n + o.qty - o.filledQty, 0);
  }

  private fill(o: FakeKisOrder, qty: number, price: Decimal): void {
    const amount = price.times(qty);
    const fee = amount.times(this.feeRate).floor();
    o.filledQty += qty;
    o.filledAmt = o.filledAmt.plus(amount);
    if (o.side === 'buy') {
      this.settledCash = this.settledCash.minus(amount).minus(fee);
      this.holdings.set(o.pdno, this.holding(o.pdno) + qty);
    } else {
      this.settledCash = this.settledCash.plus(amount).minus(fee).minus(amount.times(this.sellTaxRate).floor());
      this.setHolding(o.pdno, this.holding(o.pdno) - qty);
    }
  }

  private cancel(r: FakeKisRequest): Reply {
    const b = r.body ?? {};
    const bad = this.checkAccount(b);
    if (bad) return bad;
    const o = this.orderList.find((x) => x.odno === b['ORGN_ODNO']);
    if (!o) return refuse(200, 'APBK0228', '원주문번호가 존재하지 않습니다.');
    if (o.cancelled || o.filledQty >= o.qty) return refuse(200, 'APBK0344', '정정/취소할 수량이 없습니다.');
    o.cancelled = true;
    return ok({ output: { KRX_FWDG_ORD_ORGNO: o.orgNo, ODNO: String(++this.seq + 10_000).padStart(10, '0'), ORD_TMD: kstTime(this.now()) } }, '주문 전송 완료 되었습니다.');
  }

  private dailyCcld(r: FakeKisRequest): Reply {
    const q = r.query;
    const bad = this.checkAccount(q);
    if (bad) return bad;
    const now = this.now();
    const rows = this.orderList
      .filter((o) => o.visibleAt <= now)
      .filter((o) => kstDate(o.createdAt) >= (q['INQR_STRT_DT'] ?? '') && kstDate(o.createdAt) <= (q['INQR_END_DT'] ?? '99999999'))
      .filter((o) => !q['PDNO'] || o.pdno === q['PDNO'])
      .filter((o) => !q['ODNO'] || o.odno === q['ODNO'])
      .filter((o) => q['SLL_BUY_DVSN_CD'] === '01' ? o.side === 'sell' : q['SLL_BUY_DVSN_CD'] === '02' ? o.side === 'buy' : true)
      .reverse();
    const pageSize = this.paper ? 15 : 100;
    const start = Number(q['CTX_AREA_NK100'] || '0');
    const page = rows.slice(start, start + pageSize);
    const more = start + pageSize < rows.length;
    return {
      ...ok({
        ctx_area_fk100: more ? 'fk' : '', ctx_area_nk100: more ? String(start + pageSize) : '',
        output1: page.map((o) => this.row(o)),
        output2: { tot_ord_qty: String(rows.reduce((n, o) => n + o.qty, 0)), tot_ccld_qty: String(rows.reduce((n, o) => n + o.filledQty, 0)) },
      }),
      headers: { tr_cont: more ? 'M' : 'D' },
    };
  }

  private row(o: FakeKisOrder): Record<string, string> {
    const remaining = o.cancelled ? 0 : o.qty - o.filledQty;
    return {
      ord_dt: kstDate(o.createdAt), ord_gno_brno: o.orgNo, odno: o.odno, orgn_odno: '', ord_dvsn_name: o.ordDvsn === '01' ? '시장가' : '지정가',
      sll_buy_dvsn_cd: o.side === 'sell' ? '01' : '02', sll_buy_dvsn_cd_name: o.side === 'sell' ? '현금매도' : '현금매수', pdno: o.pdno, prdt_name: o.pdno,
      ord_qty: String(o.qty), ord_unpr: o.ordDvsn === '01' ? '0' : o.price.toFixed(), ord_tmd: kstTime(o.createdAt), tot_ccld_qty: String(o.filledQty),
      avg_prvs: o.filledQty > 0 ? o.filledAmt.div(o.filledQty).floor().toFixed() : '0', cncl_yn: o.cancelled ? 'Y' : 'N', tot_ccld_amt: o.filledAmt.toFixed(),
      rmn_qty: String(remaining), rjct_qty: '0', cnc_cfrm_qty: o.cancelled ? String(o.qty - o.filledQty) : '0', ord_dvsn_cd: o.ordDvsn, excg_id_dvsn_cd: 'KRX',
    };
  }

  private balance(): Reply {
    const output1 = [...this.holdings.entries()].map(([pdno, qty]) => ({
      pdno, prdt_name: pdno, hldg_qty: String(qty), ord_psbl_qty: String(qty - this.openSellQty(pdno)), pchs_avg_pric: '0', prpr: String(this.prices.get(pdno) ?? 0),
    }));
    const stocks = [...this.holdings.entries()].reduce((sum, [pdno, qty]) => sum.plus(new Decimal(this.prices.get(pdno) ?? 0).times(qty)), new Decimal(0));
    return {
      ...ok({
        ctx_area_fk100: '', ctx_area_nk100: '', output1,
        output2: [{ dnca_tot_amt: this.deposits.toFixed(), nxdy_excc_amt: this.settledCash.toFixed(), prvs_rcdl_excc_amt: this.settledCash.toFixed(), scts_evlu_amt: stocks.toFixed(), tot_evlu_amt: stocks.plus(this.settledCash).toFixed() }],
      }),
      headers: { tr_cont: 'D' },
    };
  }

  private price(r: FakeKisRequest): Reply {
    const pdno = r.query['FID_INPUT_ISCD'] ?? '';
    const price = this.prices.get(pdno);
    if (price === undefined) return refuse(200, 'APBK0656', '해당종목정보가 없습니다.');
    return ok({ output: { stck_prpr: String(price), acml_vol: '1000', stck_mxpr: String(Math.floor(price * 1.3)), stck_llam: String(Math.ceil(price * 0.7)) } });
  }

  private chart(r: FakeKisRequest): Reply {
    const q = r.query;
    const pdno = q['FID_INPUT_ISCD'] ?? '';
    if (!this.prices.has(pdno) && !this.candles.has(pdno)) return refuse(200, 'APBK0656', '해당종목정보가 없습니다.');
    const rows = (this.candles.get(pdno) ?? [])
      .filter((c) => c.date >= (q['FID_INPUT_DATE_1'] ?? '') && c.date <= (q['FID_INPUT_DATE_2'] ?? '99999999'))
      .reverse()
      .slice(0, 100);
    return ok({
      output1: { stck_prpr: String(this.prices.get(pdno) ?? 0), hts_kor_isnm: pdno },
      output2: rows.map((c) => ({ stck_bsop_date: c.date, stck_oprc: String(c.open), stck_hgpr: String(c.high), stck_lwpr: String(c.low), stck_clpr: String(c.close), acml_vol: String(c.volume) })),
    });
  }
}
