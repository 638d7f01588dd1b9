/**
 * Typed errors, grouped by what the operator has to do. Words for people are rendered at the
 * edges (HTTP, Telegram) from `code` and the structured fields; messages here name the value
 * that was received.
 */

export type ErrorCategory = 'configuration' | 'input' | 'venue_rejected' | 'venue_auth' | 'transient' | 'invariant' | 'conflict' | 'not_found' | 'storage' | 'overloaded';

/** Base class of every error the product raises on purpose. */
export class AppError extends Error {
  readonly code: string;
  readonly category: ErrorCategory;
  readonly details: Record<string, unknown>;

  constructor(category: ErrorCategory, code: string, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.category = category;
    this.details = details;
  }
}

/** A configuration value is wrong; start-up stops. */
export class ConfigError extends AppError {
  constructor(message: string, readonly issues: Array<{ variable: string; message: string }>) {
    super('configuration', 'invalid_config', message, { issues });
  }
}

/** Input from outside (HTTP, Telegram) is malformed. */
export class InputError extends AppError {
  constructor(code: string, message: string, readonly issues: Array<{ path: string; message: string }> = []) {
    super('input', code, message, { issues });
  }
}

/** The request conflicts with the current state (e.g. approving a settled proposal). */
export class ConflictError extends AppError {
  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super('conflict', code, message, details);
  }
}

/** Something that was asked for does not exist. */
export class NotFoundError extends AppError {
  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super('not_found', code, message, details);
  }
}

/** The venue refused an order: repeating it will not help. */
export class VenueRejectedError extends AppError {
  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super('venue_rejected', code, message, details);
  }
}

/** A temporary failure (network, rate limit): safe to retry a fetch, never an order blindly. */
export class TransientError extends AppError {
  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super('transient', code, message, details);
  }
}

/** Corrupt data or a broken invariant: trading must stop rather than guess. */
export class InvariantError extends AppError {
  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super('invariant', code, message, details);
  }
}

/**
 * DATA_DIR could not be written (ENOSPC, EROFS, EIO …): nothing of the change was acknowledged
 * or kept in memory. Service resumes by itself once writes succeed again.
 */
export class StorageError extends AppError {
  constructor(readonly errno: string, readonly file: string, message?: string) {
    super('storage', 'storage_unavailable', message ?? `DATA_DIR cannot be written (${errno} on ${file}); nothing was recorded — retry once storage is back`, { errno, file });
  }
}

/** Work is queued faster than it is done: nothing was acknowledged; retry after `retryAfterSeconds`. */
export class OverloadedError extends AppError {
  constructor(code: string, message: string, readonly retryAfterSeconds: number) {
    super('overloaded', code, message, { retryAfterSeconds });
  }
}

/** The errno-style code of a failed system call (`ENOSPC`), or `EIO` when it has none. */
export function errnoOf(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && code !== '' ? code : 'EIO';
}

/** Error → plain data for journals and HTTP bodies. */
export function describeError(err: unknown): { code: string; message: string; category?: ErrorCategory } {
  if (err instanceof AppError) return { code: err.code, message: err.message, category: err.category };
  if (err instanceof Error) return { code: 'internal_error', message: err.message };
  return { code: 'internal_error', message: String(err) };
}

/**
 * A venue refused our credentials or their permissions (wrong or expired keys, this server's IP
 * not on the key's allow list, a permission not granted, a replayed nonce). Nothing was done at
 * the venue. Never retried: the operator has to fix the key, and the message says how. Messages
 * never carry the keys themselves.
 */
export class VenueAuthError extends AppError {
  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super('venue_auth', code, message, details);
  }
}
