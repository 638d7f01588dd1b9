/**
 * Notices: facts the operator should hear about (fills, failures, risk blocks and breakers,
 * timeouts, liquidations, the daily summary). Plain data; each transport renders it.
 */

export type NoticeKind =
  | 'fill'
  | 'failure'
  | 'risk_block'
  | 'breaker'
  | 'timeout'
  | 'rejection'
  | 'liquidation'
  | 'daily_summary'
  | 'undelivered_card'
  | 'state'
  | 'storage'
  | 'book_adjusted'
  | 'venue';

export type NoticeSeverity = 'info' | 'warning' | 'critical';

export interface Notice {
  kind: NoticeKind;
  severity: NoticeSeverity;
  /** One short line, plain text. */
  title: string;
  /** Plain-text lines of detail. */
  lines: string[];
  /** Labelled values (symbol, side, size …), plain text. */
  fields: Array<{ name: string; value: string }>;
  proposalId?: string;
  at: string;
}

/** A transport that delivers notices (Telegram, Discord). Never throws: it queues and retries. */
export interface NoticeSink {
  readonly name: string;
  notify(notice: Notice): void;
  close?(): Promise<void>;
}
