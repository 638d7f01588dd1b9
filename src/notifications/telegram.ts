/**
 * The Telegram transport: an outbound queue in lanes (answers to people first, then cards, then
 * notices, then replies to strangers; in order within a lane; one global rate limit, retry with
 * backoff, Telegram's 429 `retry_after` honoured), and a long-polling loop. Every text is cut to
 * what Telegram accepts before it is sent. The only file that speaks to the Bot API client; its
 * errors are classified here (refused by Telegram vs transport).
 */
import { Api, TelegramApiError, isTransientError } from 'node-telegram-bot-api';
import type { Update } from 'node-telegram-bot-api';
import type { Logger } from '../logging';
import { describeError } from '../errors';
import { CALLBACK_ANSWER_LIMIT, TELEGRAM_TEXT_LIMIT, fitHtml, fitPlain } from '../telegram/text-bounds';

/** Telegram refused a call (4xx other than 429): retrying will not help. */
export class TelegramRefusedError extends Error {
  readonly code = 'telegram_refused';
  constructor(readonly method: string, readonly status: number | undefined, description: string | undefined) {
    super(`Telegram refused ${method}${status ? ` (${status})` : ''}: ${description && description !== 'undefined' ? description : 'no description given'}`);
  }
}

/** What failed in a call: refused (4xx), rate limited (429), Telegram's fault (5xx), or the network. */
export type TelegramErrorKind = 'refused' | 'rate_limited' | 'server' | 'transport';

/** The kind of a Bot API client error. */
function errorKind(err: unknown): TelegramErrorKind {
  if (!(err instanceof TelegramApiError)) return 'transport';
  if (err.errorCode === 429) return 'rate_limited';
  return err.errorCode < 500 ? 'refused' : 'server';
}

export interface InlineKeyboard {
  inline_keyboard: Array<Array<{ text: string; callback_data: string }>>;
}

/** A stranger's reply was not queued: its lane is full, and strangers never grow the queue. */
export class TelegramShedError extends Error {
  readonly code = 'telegram_shed';
  constructor(method: string) {
    super(`${method} shed: the strangers' lane is full`);
  }
}

/**
 * Outbound lanes, most urgent first. A person waiting on a tap or a command is answered before
 * any card or notice, and nothing for a stranger goes before anything for an allowed user.
 */
export const LANES = ['answer', 'card', 'notice', 'stranger'] as const;
export type Lane = (typeof LANES)[number];

export interface OutboundMessage {
  method: 'sendMessage' | 'editMessageText' | 'answerCallbackQuery' | 'setMyCommands';
  params: Record<string, unknown>;
  /** Default `notice`. */
  lane?: Lane;
  /** Keep retrying transport failures until this returns false (e.g. the card is moot). */
  stillWanted?: () => boolean;
  /** Give up after this many attempts (default: keep trying while wanted). */
  maxAttempts?: number;
}

export interface TelegramClientOptions {
  token: string;
  apiRoot: string;
  logger: Logger;
  /** Global sends per second (Telegram allows about 30). */
  perSecond?: number;
  /** Delay between empty polls (the emulator answers getUpdates at once). */
  idlePollMs?: number;
  /** Long-poll timeout in seconds for getUpdates. */
  pollTimeoutSeconds?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Each failed call (every attempt, polling included), by method and kind: for metrics. */
  onError?: (method: string, kind: TelegramErrorKind) => void;
  /** Calls for strangers waiting at most; more are shed (default 50). */
  strangerLaneCapacity?: number;
  /** Strangers' calls per second at most, so that they never use up the bot's budget (default 2). */
  strangerPerSecond?: number;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface QueuedJob {
  message: OutboundMessage;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export class TelegramClient {
  private readonly api: Api;
  private readonly lanes: Record<Lane, QueuedJob[]> = { answer: [], card: [], notice: [], stranger: [] };
  private working = false;
  private polling = false;
  private stopped = false;
  private lastSend = 0;
  private lastStrangerSend = 0;
  private wake: NodeJS.Timeout | null = null;
  private readonly sleep: (ms: number) => Promise<void>;
  private pollAbort: AbortController | null = null;
  /** Whether the last call reached Telegram (a stop does not wait for a queue it cannot send). */
  private reachable = true;

  constructor(private readonly options: TelegramClientOptions) {
    // Retries are ours (one wrapper, per method): the client's own would re-send messages.
    this.api = new Api(options.token, { apiRoot: options.apiRoot, maxRetries: 0, timeoutMs: 30_000 });
    this.sleep = options.sleep ?? defaultSleep;
  }

  /** Queues a call; resolves with Telegram's result, rejects when it is refused, shed or abandoned. */
  send<T = unknown>(message: OutboundMessage): Promise<T> {
    const lane = this.lanes[message.lane ?? 'notice'];
    if (message.lane === 'stranger' && lane.length >= (this.options.strangerLaneCapacity ?? 50)) {
      return Promise.reject(new TelegramShedError(message.method));
    }
    return new Promise<T>((resolve, reject) => {
      lane.push({ message: { ...message, params: bounded(message) }, resolve: resolve as (v: unknown) => void, reject });
      void this.work();
    });
  }

  /** Number of calls waiting (all lanes, or one). */
  pending(lane?: Lane): number {
    return lane ? this.lanes[lane].length : LANES.reduce((n, l) => n + this.lanes[l].length, 0);
  }

  /** The next call to make: the oldest of the most urgent lane that has one (strangers at their own pace). */
  private next(): QueuedJob | undefined {
    for (const lane of LANES) {
      if (this.lanes[lane].length === 0) continue;
      if (lane === 'stranger') {
        const wait = this.lastStrangerSend + 1000 / (this.options.strangerPerSecond ?? 2) - Date.now();
        if (wait > 0) {
          this.wakeIn(wait);
          return undefined;
        }
        this.lastStrangerSend = Date.now();
      }
      return this.lanes[lane].shift();
    }
    return undefined;
  }

  private wakeIn(ms: number): void {
    if (this.wake) return;
    this.wake = setTimeout(() => {
      this.wake = null;
      void this.work();
    }, ms);
  }

  private reportError(method: string, err: unknown): void {
    try {
      this.options.onError?.(method, errorKind(err));
    } catch {
      // an observer's fault never changes how a call is retried
    }
  }

  private setReachable(up: boolean): void {
    this.reachable = up;
  }

  private async work(): Promise<void> {
    if (this.working) return;
    this.working = true;
    try {
      for (let job = this.stopped ? undefined : this.next(); job; job = this.stopped ? undefined : this.next()) {
        try {
          job.resolve(await this.deliver(job.message));
        } catch (err) {
          job.reject(err);
        }
      }
    } finally {
      this.working = false;
    }
  }

  private async deliver(message: OutboundMessage): Promise<unknown> {
    const minGap = 1000 / (this.options.perSecond ?? 25);
    let backoff = 500;
    for (let attempt = 1; ; attempt++) {
      const gap = this.lastSend + minGap - Date.now();
      if (gap > 0) await this.sleep(gap);
      // Checked before every attempt: a call may wait in its lane, or Telegram may be back, only
      // after the message became moot.
      if (message.stillWanted && !message.stillWanted()) throw new Error(`${message.method} abandoned: no longer wanted`);
      this.lastSend = Date.now();
      try {
        const call = this.api[message.method] as (p: Record<string, unknown>) => Promise<unknown>;
        const result = await call.call(this.api, message.params);
        this.setReachable(true);
        return result;
      } catch (err) {
        this.reportError(message.method, err);
        if (err instanceof TelegramApiError && err.errorCode === 429) {
          this.setReachable(true);
          // A stranger's call is not worth waiting for Telegram's budget: everyone else would wait.
          if (message.lane === 'stranger') throw new TelegramRefusedError(message.method, 429, err.description);
          await this.sleep(Math.min((err.retryAfter ?? 1) * 1000, 60_000));
          continue;
        }
        if (err instanceof TelegramApiError && err.errorCode < 500) {
          this.setReachable(true);
          throw new TelegramRefusedError(message.method, err.errorCode, err.description);
        }
        if (!isTransientError(err) && !(err instanceof TelegramApiError)) {
          this.options.logger.warn('telegram call failed', { method: message.method, error: describeError(err).message });
        }
        if (err instanceof TelegramApiError) {
          // 5xx: retried while wanted. Optional calls set maxAttempts (the emulator answers 500
          // for methods it does not implement, e.g. setMyCommands) so they never hold the queue.
          if (message.maxAttempts !== undefined && attempt >= message.maxAttempts) throw new TelegramRefusedError(message.method, err.errorCode, err.description);
        } else {
          this.setReachable(false);
          if (message.maxAttempts !== undefined && attempt >= message.maxAttempts) throw err;
        }
        if (message.stillWanted && !message.stillWanted()) throw new Error(`${message.method} abandoned: no longer wanted`, { cause: err });
        if (this.stopped) throw new Error('telegram client stopped', { cause: err });
        await this.sleep(backoff);
        backoff = Math.min(backoff * 2, 5_000);
      }
    }
  }

  /**
   * Long-polls for updates and hands each batch to `handle`; the offset is advanced only after
   * `handle` resolves, and `startOffset` comes from the caller's persisted state.
   */
  startPolling(startOffset: number, handle: (updates: Update[]) => Promise<number>): void {
    if (this.polling) return;
    this.polling = true;
    let offset = startOffset;
    let backoff = 500;
    const loop = async () => {
      while (!this.stopped) {
        this.pollAbort = new AbortController();
        try {
          const updates = await this.api.getUpdates({
            offset, timeout: this.options.pollTimeoutSeconds ?? 25, allowed_updates: ['message', 'callback_query'],
          }, this.pollAbort.signal);
          this.setReachable(true);
          backoff = 500;
          if (updates.length > 0) offset = await handle(updates);
          else await this.sleep(this.options.idlePollMs ?? 250);
        } catch (err) {
          if (this.stopped) break;
          this.reportError('getUpdates', err);
          this.setReachable(false);
          this.options.logger.debug('telegram getUpdates failed', { error: describeError(err).message });
          await this.sleep(backoff);
          backoff = Math.min(backoff * 2, 5_000);
        }
      }
      this.polling = false;
    };
    void loop();
  }

  /** Stops polling and waits (bounded) for the queue to drain; strangers are not waited for. */
  async stop(drainMs = 2000): Promise<void> {
    const until = Date.now() + drainMs;
    while (this.pending() - this.pending('stranger') > 0 && Date.now() < until && this.reachable) await this.sleep(20);
    this.stopped = true;
    if (this.wake) clearTimeout(this.wake);
    this.pollAbort?.abort();
    for (const lane of LANES) for (const job of this.lanes[lane].splice(0)) job.reject(new Error('telegram client stopped'));
  }
}

/** The call's parameters with its text cut to what Telegram accepts (4,096; 200 for a callback answer). */
function bounded(message: OutboundMessage): Record<string, unknown> {
  const { params } = message;
  const text = params['text'];
  if (typeof text !== 'string') return params;
  if (message.method === 'answerCallbackQuery') return { ...params, text: fitPlain(text, CALLBACK_ANSWER_LIMIT) };
  return { ...params, text: params['parse_mode'] === 'HTML' ? fitHtml(text, TELEGRAM_TEXT_LIMIT) : fitPlain(text, TELEGRAM_TEXT_LIMIT) };
}
