// How Tessera's command-line tools (historical, keys) end on an error: one line on stderr that
// says what was wrong, and an exit code a script can act on (2: fix the input; 1: a failure).
import { isTesseraError } from './errors.ts';

/** Errors in what the user gave (flags, files, definitions, configuration): exit code 2. */
const BAD_INPUT = new Set(['INVALID_ARGUMENT', 'NOT_FOUND', 'CONFIG_INVALID', 'DEFINITIONS_INVALID']);

/**
 * The error as one line: a TesseraError with its code, a system error (EACCES, ENOSPC, ...) as its
 * message, a stack only for what can only be a bug.
 */
export function cliErrorLine(error: unknown): string {
  if (isTesseraError(error)) return `${error.code}: ${error.message}`;
  if (error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string')
    return error.message;
  return String((error as Error)?.stack ?? error);
}

/** 2 when the input was wrong, else 1. */
export function cliExitCode(error: unknown): number {
  return isTesseraError(error) && BAD_INPUT.has(error.code) ? 2 : 1;
}
