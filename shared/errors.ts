// The one error type of Tessera: a fixed list of codes, a retriable flag that retry and commit
// decisions read (never the message), a cause, and context fields for logs and DLQ headers.

export const ERROR_CODES = [
  'CONFIG_INVALID',
  'DEFINITIONS_INVALID',
  'EVENT_INVALID',
  'EVENT_LATE',
  'STATE_CORRUPT',
  'AS_OF_OUT_OF_RANGE',
  /** A caller passed something unusable (a request field, a parquet column): fix the input. */
  'INVALID_ARGUMENT',
  /** An object or key that was expected to exist does not (e.g. an offline-store object). */
  'NOT_FOUND',
  'SERVICE_UNAVAILABLE',
  'INTERNAL',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface TesseraErrorOptions {
  retriable?: boolean;
  cause?: unknown;
  context?: Record<string, unknown>;
}

export class TesseraError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly context: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: TesseraErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TesseraError';
    this.code = code;
    this.retriable = options.retriable ?? false;
    this.context = options.context ?? {};
  }
}

export function isTesseraError(error: unknown, code?: ErrorCode): error is TesseraError {
  return error instanceof TesseraError && (code === undefined || error.code === code);
}
