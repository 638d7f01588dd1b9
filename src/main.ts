/**
 * Composition root: the only place that constructs concrete adapters. Reads the config once,
 * takes the DATA_DIR lock, opens the stores, restores live proposals, and serves HTTP.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Server } from 'node:http';
import { hostWarning, loadConfig, parseDotEnv, redactConfig, secretValues, type Config } from './config';
import { AppError, ConfigError, describeError } from './errors';
import { createLogger, type Logger } from './logging';
import { secretScrubber } from './redaction';
import { firstStartText, loadOrCreateSecrets, markSecretsShown, type GeneratedSecretName, type GeneratedSecrets, type StoredSecrets } from './secrets';
import { acquireDataDirLock } from './persistence/lock-file';
import { WalProposalStore } from './persistence/proposal-store';
import type { RestoreReport } from './persistence/log-store';
import { NodeStorageIo, type StorageIo, type WriteObserver } from './persistence/storage-io';
import { StorageHealth } from './persistence/storage-health';
import { TradeLog } from './journal/trade-log';
import { ProposalArchive, SignalRegistry } from './journal/tracker';
import { Vault } from './journal/vault';
import { RuntimeState } from './state';
import { ReplayMarketData, type MarketData } from './context/market-snapshot';
import { CcxtMarketData } from './integrations/ccxt-market';
import { normaliseSymbol } from './symbols';
import { DedupeWindow } from './runtime/dedupe-window';
import { createHttpApp } from './event-router/api';
import { CONSOLE_PENDING_LIMIT, LiveEvents } from './event-router/live-events';
import { Metrics } from './event-router/metrics';
import { tradingViewRoute } from './event-router/tradingview';
import { PaperExecutor } from './execution/paper-executor';
import { UpbitVenue } from './execution/upbit-executor';
import { UpbitClient } from './integrations/upbit';
import { FreqtradeVenue } from './execution/freqtrade-adapter';
import { FreqtradeClient } from './integrations/freqtrade';
import { KisVenue } from './execution/kis-adapter';
import { KisClient } from './integrations/kis';
import { KisMarketData } from './integrations/kis-market';
import { RoutedMarketData, UnquotedMarket } from './context/routed-market-data';
import { isKrxSymbol } from './symbols';
import { VenueBooks } from './portfolio/venue-books';
import { LiveAccounts } from './runtime/live-accounts';
import type { ExecutionVenue } from './execution/base';
import { LiveBook } from './portfolio/live-book';
import { LiveAccount } from './runtime/live-account';
import type { PortfolioSource } from './context/portfolio-snapshot';
import { bindingFor, checkDataDir } from './persistence/data-dir-binding';
import { ExecutionRouter } from './execution/router';
import { ReservationBook } from './portfolio/reservations';
import { Orchestrator } from './runtime/orchestrator';
import { openInspector } from './runtime/inspector';
import { createProposalServices } from './runtime/proposal-services';
import { TradingLoop } from './runtime/loop';
import { Commands } from './runtime/commands';
import { Scheduler } from './runtime/scheduler';
import { RiskClock } from './runtime/risk-clock';
import { TelegramClient } from './notifications/telegram';
import { TelegramGate } from './telegram/gate';
import { NoticeDispatcher, noticeForProposal, noticeForState, noticeForStorage, noticeForVenueDecision } from './notifications/notices';
import type { Notice } from './notifications/notice';
import { DiscordNotifier } from './notifications/discord';
import { readRules } from './proposal/rules-file';
import { createExplainer } from './proposal/ai-summary';

/** Environment: `.env` in the working directory, overridden by real variables. */
function readEnvironment(): Record<string, string | undefined> {
  let fromFile: Record<string, string> = {};
  const file = path.resolve('.env');
  if (fs.existsSync(file)) fromFile = parseDotEnv(fs.readFileSync(file, 'utf8'));
  return { ...fromFile, ...process.env };
}

/** Ports a test may replace: the file layer under every store (to inject faults) and the probe pace. */
export interface ServicePorts {
  storageIo?: (observer: WriteObserver) => StorageIo;
  storageProbeIntervalMs?: number;
  /** False keeps log lines off the console (they still go to DATA_DIR/logs). */
  consoleLog?: boolean;
}

export interface RunningService {
  config: Config;
  logger: Logger;
  server: Server;
  stop: () => Promise<void>;
}

/**
 * Starts the service; resolves once it listens and every persisted proposal is restored. Only
 * then does it print the generated secrets no successful start has shown yet (a start that fails
 * shows none; the next one tries again), and record durably that they were shown.
 */
export async function startService(env: Record<string, string | undefined>, ports: ServicePorts = {}): Promise<RunningService> {
  let config = loadConfig(env);
  const releaseLock = acquireDataDirLock(config.dataDir);
  let service: RunningService;
  let generated: StoredSecrets;
  const inUse: GeneratedSecretName[] = [];
  try {
    generated = loadOrCreateSecrets(config.dataDir);
    if (config.webhook.secret === '') inUse.push('WEBHOOK_SECRET');
    if (config.api.token === '') inUse.push('API_TOKEN');
    if (inUse.length > 0) {
      config = loadConfig({
        ...env,
        WEBHOOK_SECRET: config.webhook.secret || generated.secrets.WEBHOOK_SECRET,
        API_TOKEN: config.api.token || generated.secrets.API_TOKEN,
      });
    }
    const logger = createLogger({ level: config.logLevel, dataDir: config.dataDir, secrets: secretValues(config), ...(ports.consoleLog === false ? { console: false } : {}) });
    logger.info('starting chatops-trading', { config: redactConfig(config) });
    const exposure = hostWarning(config);
    if (exposure) logger.warn(exposure, { host: config.server.host });
    service = await assemble(config, logger, releaseLock, ports);
  } catch (err) {
    releaseLock();
    throw err;
  }
  showGeneratedSecrets(service, generated, inUse.filter((name) => !generated.shown[name]));
  return service;
}

/**
 * Prints generated secrets and the next steps to the terminal only (never to the log file, which
 * the operator may ship elsewhere), then records that they were shown. If that record cannot be
 * written, they are shown again next time.
 */
function showGeneratedSecrets(service: RunningService, generated: StoredSecrets, show: GeneratedSecretName[]): void {
  if (show.length === 0) return;
  const { config, logger, server } = service;
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.server.port;
  const host = config.server.host.includes(':') && !config.server.host.startsWith('[') ? `[${config.server.host}]` : config.server.host;
  process.stdout.write(firstStartText({ secrets: generated.secrets, show, file: path.join(config.dataDir, 'secrets.json'), url: `http://${host}:${port}/` }));
  const shownValues: Partial<GeneratedSecrets> = {};
  for (const name of show) shownValues[name] = generated.secrets[name];
  try {
    markSecretsShown(config.dataDir, shownValues);
  } catch (err) {
    logger.warn('could not record in DATA_DIR/secrets.json that the generated secrets were shown; the next start shows them again', { error: describeError(err) });
  }
}

async function assemble(config: Config, logger: Logger, releaseLock: () => void, ports: ServicePorts): Promise<RunningService> {
  const dataDir = config.dataDir;
  const journalDir = path.join(dataDir, 'journal');
  // Every write point reports to one place: /readyz, the alert and recovery follow from it.
  const storage = new StorageHealth(dataDir, ports.storageProbeIntervalMs !== undefined ? { probeIntervalMs: ports.storageProbeIntervalMs } : {});
  const io = ports.storageIo ? ports.storageIo(storage) : new NodeStorageIo(storage);
  // Before anything is restored: a DATA_DIR's proposals never go out to another account.
  const dataDirBinding = await checkDataDir(io, dataDir, bindingFor(config.trading.mode, config.trading.venues));
  const redact = secretScrubber(secretValues(config));
  const journal = new TradeLog(io, journalDir, redact);
  const archive = new ProposalArchive(io, journalDir);
  // Markdown notes derived from the journal (DATA_DIR/vault/), off every acknowledgement; opened
  // before anything is appended, so it sees every record (docs/vault.md).
  const vault = Vault.open({ dir: path.join(dataDir, 'vault'), journalDir, journal, views: (id) => archive.get(id), redact, log: logger.child({ component: 'vault' }) });
  const registry = new SignalRegistry(io, journalDir);
  const { store, report: storeReport } = await WalProposalStore.open(io, dataDir, { checkpointMinBytes: config.store.checkpointMinBytes });
  const state = await RuntimeState.open(io, dataDir, config.trading.mode);
  const dedupe = DedupeWindow.restore(registry, config.webhook.dedupeWindowSeconds);
  const metrics = new Metrics();
  const notices = new NoticeDispatcher();

  // One KIS client for its venue and its market data: one token, one rate limit.
  const kisClient = config.kis.appKey !== '' && config.kis.appSecret !== '' && config.kis.accountNo !== ''
    ? new KisClient({ apiUrl: config.kis.apiUrl, appKey: config.kis.appKey, appSecret: config.kis.appSecret, accountNo: config.kis.accountNo, paper: config.kis.paper, dataDir, logger })
    : undefined;
  const crypto: MarketData = config.marketData.source === 'replay'
    ? ReplayMarketData.load(path.resolve(config.marketData.replayFile), normaliseSymbol)
    : new CcxtMarketData({
      exchange: config.marketData.exchange,
      timeoutMs: config.marketData.timeoutMs,
      ...(config.marketData.exchange === 'upbit' ? { apiUrl: config.upbit.apiUrl } : {}),
    });
  // KRX stocks are quoted by KIS when its app is configured, and by nothing else (a crypto exchange
  // has no such market); a replay file answers for everything.
  const market: MarketData = config.marketData.source === 'replay'
    ? crypto
    : new RoutedMarketData(crypto, [{ claims: isKrxSymbol, data: kisClient ? new KisMarketData(kisClient, { session: config.kis.marketHours }) : new UnquotedMarket('KRX stocks are quoted by KIS: set KIS_APP_KEY, KIS_APP_SECRET and KIS_ACCOUNT_NO') }]);

  const account = config.trading.mode === 'live'
    ? await openLiveAccount(config, io, journal, logger, notices, kisClient)
    : await openPaperAccount(config, io, journal, logger);
  await dataDirBinding.record();
  reportRestore(logger, 'live proposals', storeReport);
  const book = account.book;
  const live = account.live;
  const router = new ExecutionRouter(account.venues, {
    pollIntervalMs: 200, fillTimeoutMs: 60_000, fetchAttempts: 5,
    onVenueError: (failure) => metrics.venueError(failure.venue, failure.operation, failure.category),
  });

  const rules = readRules(config);
  // Breakers ask for liquidations through this endpoint; the loop that starts them is built later.
  const liquidations = new LiquidationRequests();
  const reservations = new ReservationBook();
  // XSTATE_INSPECT: every proposal actor (new, restored, woken) reports to the loopback relay and the JSON-lines file.
  const inspector = config.xstateInspect ? await openInspector({ port: config.xstateInspectPort, dataDir, redact, logger }) : null;
  const orchestrator = new Orchestrator({
    store, archive, journal, logger, storage, reservations, recheckWaitMs: config.marketData.timeoutMs,
    services: createProposalServices({
      riskLimits: config.risk,
      approvalLimits: { mode: config.trading.mode, minConfidence: config.approval.minConfidence, autoMaxNotional: config.approval.autoMaxNotional, twoPersonNotional: config.approval.twoPersonNotional },
      maxPriceDriftPct: config.approval.maxPriceDriftPct,
      allowAddToPosition: rules.allowAddToPosition,
      maxQuoteAgeSeconds: config.marketData.maxAgeSeconds,
      market, portfolio: book, router, state, journal, logger, reservations,
      liveMaxOrderNotional: config.trading.liveMaxOrderNotional, ...(account.live ? { liveAccount: account.live } : {}),
      onLiquidate: (code, reason) => liquidations.request(code, reason),
    }),
    ...(inspector ? { inspect: inspector.inspect } : {}),
  });
  orchestrator.onChange((change) => {
    logger.info(`proposal ${change.view.id} ${change.from ?? 'new'} → ${change.to}`, { proposalId: change.view.id, symbol: change.view.symbol, by: change.view.history.at(-1)?.by });
  });
  const loop = new TradingLoop({
    orchestrator, registry, journal, dedupe, market, portfolio: book, state, logger, storage,
    rules: { rules, quoteCurrency: config.trading.quoteCurrency, approvalTimeoutSeconds: config.approval.timeoutSeconds, onMarketFailure: config.marketData.onFailure },
    explainer: createExplainer({ llm: config.llm, quoteCurrency: config.trading.quoteCurrency, logger }),
    marketTimeoutMs: config.marketData.timeoutMs + 500, redact,
    backlogLimit: config.ingest.backlogLimit,
    venueClosed: (symbol, now) => router.closedNow(symbol, now),
  });
  // A breaker's liquidation stands until nothing is held: the risk clock retries what fails here.
  liquidations.handle((code, reason) => {
    const by = `risk:${code}`;
    state.orderLiquidation(by, reason)
      .then(() => loop.liquidateAll(by, reason))
      .then((report) => journal.append({ type: 'liquidation.pass', by, reason, ...report }))
      .catch((err: unknown) => logger.error('liquidation failed to start; the risk clock tries again', { error: describeError(err) }));
  });
  const riskClock = new RiskClock({
    market, portfolio: book, state, journal, logger, limits: config.risk,
    ...(live ? { reconcile: () => live.reconcile('risk-clock'), notify: (n: Notice) => notices.notify(n) } : {}),
    intervalMs: config.risk.checkIntervalSeconds * 1000, maxQuoteAgeSeconds: config.marketData.maxAgeSeconds, quoteTimeoutMs: config.marketData.timeoutMs,
    liquidate: (by, reason) => loop.liquidateAll(by, reason),
  });
  const scheduler = new Scheduler({
    loop, orchestrator, registry, portfolio: book, state, logger, watchlist: config.scan.watchlist, intervalMinutes: config.scan.intervalMinutes,
    dailySummary: config.scan.dailySummary, timeZone: config.trading.timeZone, quoteCurrency: config.trading.quoteCurrency,
    onSummary: (notice) => {
      void journal.append({ type: 'daily.summary', summary: notice });
      notices.notify(notice);
    },
  });
  const commands = new Commands({
    orchestrator, loop, state, portfolio: book, journal, quoteCurrency: config.trading.quoteCurrency,
    markMaxAgeSeconds: config.marketData.maxAgeSeconds, redact,
    scan: (symbol) => scheduler.scan(symbol),
  });
  // Metrics (docs/metrics.md): journal records once durable, proposal changes, storage syncs.
  metrics.follow({
    journal, proposals: orchestrator, storage,
    venueOf: (proposalId) => {
      const symbol = orchestrator.view(proposalId)?.symbol;
      return symbol === undefined ? undefined : router.venueNameFor(symbol);
    },
  });
  metrics.gauge('chatops_ingest_backlog', () => loop.backlogSize, 'Signals acknowledged and not yet processed.');
  metrics.gauge('chatops_storage_available', () => (storage.ok ? 1 : 0), '1 while DATA_DIR takes writes, 0 while it cannot (nothing new is acknowledged).');
  metrics.gauge('chatops_reserved_proposals', () => reservations.size, 'Proposals holding a cash or position reservation.');

  // What approving does to a price, as the Telegram card and the console both say it.
  const priceRule = { maxAgeSeconds: config.marketData.maxAgeSeconds, maxDriftPct: config.approval.maxPriceDriftPct };
  const gate = config.telegram.botToken === '' ? null : new TelegramGate({
    client: new TelegramClient({ token: config.telegram.botToken, apiRoot: config.telegram.apiRoot, logger, onError: (method, kind) => metrics.telegramError(method, kind) }),
    io, dataDir, commands, orchestrator, journal, logger, chatId: config.telegram.chatId,
    allowedUserIds: config.telegram.allowedUserIds, timeZone: config.trading.timeZone, quoteCurrency: config.trading.quoteCurrency,
    priceRule,
    scan: (symbol) => commands.scan(symbol),
  });
  if (gate) {
    await gate.open();
    notices.add(gate);
  }
  if (config.discord.webhookUrl !== '') notices.add(new DiscordNotifier({ webhookUrl: config.discord.webhookUrl, logger }));
  orchestrator.onChange((change) => {
    const notice = noticeForProposal(change, config.trading.quoteCurrency);
    if (notice) notices.notify(notice);
  });
  state.onChange((change) => {
    const notice = noticeForState(change, new Date().toISOString());
    if (notice) notices.notify(notice);
  });
  storage.onChange((change) => {
    if (change.kind === 'unavailable') logger.error('DATA_DIR cannot be written: nothing new is acknowledged until it can', { cause: change.cause, file: change.file });
    else logger.warn('DATA_DIR takes writes again; service resumed', { downSeconds: change.downSeconds });
    void journal.append({ type: change.kind === 'unavailable' ? 'storage.unavailable' : 'storage.recovered', ...change });
    notices.notify(noticeForStorage(change));
  });

  // The console's live stream: durable changes only (runbooks/console.md).
  const liveEvents = new LiveEvents({
    journal, signals: registry, proposals: orchestrator, state, logger,
    snapshot: {
      pending: () => ({ proposals: orchestrator.liveViews({ state: 'awaiting-approval', limit: CONSOLE_PENDING_LIMIT }), total: orchestrator.liveCount().awaitingApproval }),
      portfolio: () => commands.portfolio(), state: () => commands.state(), storedSignals: (limit) => registry.latest(limit),
    },
    priceRule,
  });

  let ready = false;
  const app = createHttpApp({
    apiToken: config.api.token, operatorTokens: config.api.operators, redact, quoteCurrency: config.trading.quoteCurrency, maxBodyBytes: config.server.maxBodyBytes, trustProxy: config.server.trustProxy,
    commands, loop, orchestrator, registry, metrics, logger, isReady: () => ready, venues: () => router.profiles(), live: liveEvents,
    storageProblem: () => (storage.lastFailure ? storage.lastFailure.message : null),
    extraRoutes: (a) => a.use(tradingViewRoute({
      secret: config.webhook.secret, allowedIps: config.webhook.allowedIps, maxBodyBytes: config.server.maxBodyBytes,
      rateLimitPerMinute: config.webhook.rateLimitPerMinute, quoteCurrency: config.trading.quoteCurrency, loop, metrics, logger, redact,
    })),
  });
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(config.server.port, config.server.host, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.server.port;
  logger.info(`listening on http://${config.server.host}:${port}`, { port });

  const started = Date.now();
  const restored = await orchestrator.restore();
  const recovered = await loop.recover(config.approval.timeoutSeconds * 1000);
  await gate?.start();
  scheduler.start();
  riskClock.start();
  void journal.append({ type: 'service.started', pid: process.pid, restored: restored.restored, recoveredSignals: recovered });
  ready = true;
  logger.info('ready', { restored: restored.restored, restoreFailures: restored.failed, recoveredSignals: recovered, restoreMs: Date.now() - started });

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    ready = false;
    // Open consoles' streams end first, or the server would wait on them.
    liveEvents.close();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    scheduler.stop();
    await riskClock.stop();
    await loop.idle();
    await notices.close();
    await orchestrator.stop();
    await inspector?.close();
    await account.close();
    await state.flush().catch(() => undefined);
    // A clean stop leaves a checkpoint, so the next start reads one file.
    await store.close();
    await journal.append({ type: 'service.stopped', pid: process.pid }).catch(() => undefined);
    await Promise.all([journal.close(), archive.close(), registry.close()]);
    await vault.close();
    storage.close();
    releaseLock();
    logger.info('stopped');
    await new Promise<void>((resolve) => {
      logger.on('finish', () => resolve());
      logger.end();
      setTimeout(resolve, 500).unref();
    });
  };
  return { config, logger, server, stop };
}

/** Logs what opening a log store found: a torn last record cut (never acknowledged), an older layout imported. */
function reportRestore(logger: Logger, store: string, report: RestoreReport): void {
  if (report.tornBytes > 0) logger.warn(`cut a torn last record from the ${store} log (a crash mid-write; it was never acknowledged)`, { file: report.tornFile, bytes: report.tornBytes });
  if (report.migrated !== undefined) logger.info(`imported the ${store} from the files of an older version`, { entries: report.migrated });
}

/** The account orders go to: its venues, the book the policies read, and in live mode its keeper. */
interface Account {
  venues: ExecutionVenue[];
  book: PortfolioSource;
  live: LiveAccounts | null;
  close(): Promise<void>;
}

/** Paper mode: every fill is simulated by the paper venue (it is its own book), whatever EXECUTION_VENUE says. */
async function openPaperAccount(config: Config, io: StorageIo, journal: TradeLog, logger: Logger): Promise<Account> {
  const paper = await PaperExecutor.open(io, config.dataDir, {
    initialCash: config.paper.initialCash, feeRate: config.paper.feeRate, slippagePct: config.paper.slippagePct,
    fillDelayMs: config.paper.fillDelayMs, minOrderNotional: config.paper.minOrderNotional, quoteCurrency: config.trading.quoteCurrency, timeZone: config.trading.timeZone,
    checkpointMinBytes: config.store.checkpointMinBytes,
  });
  // The journal holds the account's opening before the venue counts it as journalled (a crash
  // between the two writes the same opening twice; the ledger counts it once).
  const opening = paper.unjournalledOpening;
  if (opening) {
    await journal.append({ type: 'account.opened', venue: 'paper', openedAt: opening.openedAt, cash: opening.cash, quoteCurrency: opening.quoteCurrency });
    await paper.openingJournalled();
  }
  reportRestore(logger, 'paper venue', paper.restoreReport);
  return { venues: [paper], book: paper, live: null, close: () => paper.close() };
}

/**
 * Live mode: each listed venue is the truth for its cash and holdings, so each has a book of its
 * own that follows it (`live-book/<venue>/`, reconciled before anything trades, after every fill
 * and on the risk clock); the policies see their sum. Anything opened is closed again when a
 * later venue fails to open.
 */
async function openLiveAccount(config: Config, io: StorageIo, journal: TradeLog, logger: Logger, notices: NoticeDispatcher, kisClient: KisClient | undefined): Promise<Account> {
  const venues: ExecutionVenue[] = [];
  const opened: Array<{ venue: ExecutionVenue; book: LiveBook; account: LiveAccount }> = [];
  const closeAll = async () => {
    for (const o of opened) await o.book.close();
    for (const v of venues) await v.close?.();
  };
  try {
    for (const name of config.trading.venues) {
      const venue = await openLiveVenue(name, config, io, journal, logger, notices, kisClient);
      venues.push(venue);
      const book = await LiveBook.open(io, config.dataDir, {
        venue: venue.name, quoteCurrency: config.trading.quoteCurrency, timeZone: config.trading.timeZone, minOrderNotional: venue.minOrderNotional,
        // An order is followed until the venue answers, also across restarts: its symbol and the
        // cash stay out of reconciles until then (a day bounds a proposal that was lost altogether).
        inFlightMaxMs: 24 * 3_600_000,
        checkpointMinBytes: config.store.checkpointMinBytes,
      });
      opened.push({ venue, book, account: new LiveAccount({ book, venue, journal, logger, notify: (n) => notices.notify(n) }) });
    }
    const live = new LiveAccounts(opened.map((o) => ({ venue: o.venue.name, account: o.account, trades: (symbol: string) => o.venue.trades(symbol) })));
    await live.start();
    const book = opened.length === 1
      ? opened[0]!.book
      : new VenueBooks(opened.map((o) => ({ venue: o.venue.name, book: o.book, trades: (symbol: string) => o.venue.trades(symbol) })));
    return { venues, book, live, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** Opens one live venue and checks what can be checked before any order (keys, the bot's settings). */
async function openLiveVenue(name: string, config: Config, io: StorageIo, journal: TradeLog, logger: Logger, notices: NoticeDispatcher, kisClient: KisClient | undefined): Promise<ExecutionVenue> {
  const journalDecision = async (record: Record<string, unknown>) => {
    await journal.append({ venue: name, ...record, type: 'venue.decision' });
    const notice = noticeForVenueDecision(name, record, new Date().toISOString());
    if (notice) notices.notify(notice);
  };
  const options = { logger, checkpointMinBytes: config.store.checkpointMinBytes, onDecision: journalDecision };
  switch (name) {
    case 'upbit': {
      const client = new UpbitClient({ apiUrl: config.upbit.apiUrl, accessKey: config.upbit.accessKey, secretKey: config.upbit.secretKey, timeoutMs: 10_000, logger });
      return UpbitVenue.open(io, config.dataDir, client, { logger, checkpointMinBytes: config.store.checkpointMinBytes });
    }
    case 'freqtrade': {
      const client = new FreqtradeClient({ apiUrl: config.freqtrade.apiUrl, username: config.freqtrade.username, password: config.freqtrade.password, timeoutMs: 10_000, logger });
      const venue = await FreqtradeVenue.open(io, config.dataDir, client, { ...options, refreshIntervalMs: 5 * 60_000, minOrderNotional: config.freqtrade.minOrderNotional });
      try {
        const bot = await venue.check(config.trading.quoteCurrency);
        logger.info('Freqtrade bot checked', { stakeCurrency: bot.stakeCurrency, dryRun: bot.dryRun, state: bot.state, forceEntryEnable: bot.forceEntryEnable });
        if (bot.dryRun) logger.warn('the Freqtrade bot runs in its own dry_run mode: its fills are simulated, and every report says so');
        for (const problem of bot.problems) {
          logger.warn(`Freqtrade: ${problem}`);
          notices.notify({ kind: 'venue', severity: 'warning', title: 'Freqtrade refuses orders', lines: [problem], fields: [], at: new Date().toISOString() });
        }
      } catch (err) {
        await venue.close();
        throw err;
      }
      return venue;
    }
    case 'kis': {
      // loadConfig requires the KIS app and account in live mode, so the client exists here.
      if (!kisClient) throw new ConfigError('KIS is a live venue but its app is not configured', [{ variable: 'KIS_APP_KEY', message: 'must be set with KIS_APP_SECRET and KIS_ACCOUNT_NO for live trading on kis' }]);
      const venue = await KisVenue.open(io, config.dataDir, kisClient, { ...options, session: config.kis.marketHours, feeRate: config.kis.feeRate, sellTaxRate: config.kis.sellTaxRate });
      try {
        // Reads the account once: wrong keys or account stop the start here, not at the first order.
        await venue.balances();
      } catch (err) {
        await venue.close();
        throw err;
      }
      return venue;
    }
    default:
      throw new ConfigError(`no live venue named ${name}`, [{ variable: 'EXECUTION_VENUE', message: `${name} is not a live venue` }]);
  }
}

/** Liquidation requests from risk breakers, delivered to whoever starts liquidations. */
class LiquidationRequests {
  private handler: ((code: string, reason: string) => void) | undefined;
  private readonly early: Array<[string, string]> = [];

  request(code: string, reason: string): void {
    if (this.handler) this.handler(code, reason);
    else this.early.push([code, reason]);
  }

  handle(handler: (code: string, reason: string) => void): void {
    this.handler = handler;
    for (const [code, reason] of this.early.splice(0)) handler(code, reason);
  }
}

async function main(): Promise<void> {
  let service: RunningService;
  try {
    service = await startService(readEnvironment());
  } catch (err) {
    const text = err instanceof AppError ? err.message : `start-up failed: ${describeError(err).message}`;
    process.stderr.write(`${text}\n`);
    process.exit(1);
  }
  // A terminal's Ctrl-C (or systemd's control-group kill) reaches the service twice: directly and
  // forwarded by npm. The first starts the one shutdown; a repeat must not cut it short.
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      service.logger.info(`${signal} received again; already shutting down`);
      return;
    }
    stopping = true;
    service.logger.info(`${signal} received; shutting down`);
    service.stop().then(() => process.exit(0), (err: unknown) => {
      process.stderr.write(`shutdown failed: ${describeError(err).message}\n`);
      process.exit(1);
    });
  };
  // A stray rejection is a bug to log, not a reason to stop supervising live proposals.
  process.on('unhandledRejection', (reason) => {
    service.logger.error('unhandled rejection', { error: describeError(reason) });
  });
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

const isEntryPoint = process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname);
if (isEntryPoint) void main();
