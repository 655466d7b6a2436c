// Secrets out of what is printed: URLs carry passwords (a Redis URL's, a registry's user:pass@).

export const REDACTED = '<redacted>';

/**
 * A URL with its password (user:pass@, or a `password` query parameter) replaced by <redacted>.
 * One that does not parse (a bad port: the case an error message shows it in) loses everything
 * between `://` and its last `@`: it was shown whole, password included.
 */
export function redactUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return value.replace(/^([a-z][a-z0-9+.-]*:\/\/).*@/is, `$1${REDACTED}@`);
  }
  const inQuery = url.searchParams.has('password');
  if (url.password === '' && !inQuery) return value;
  // Set as a marker URL-safe characters spell, then swapped: set as is, < and > came out as %3C %3E.
  if (url.password !== '') url.password = MARKER;
  if (inQuery) url.searchParams.set('password', MARKER);
  return url.toString().replaceAll(MARKER, REDACTED);
}

const MARKER = 'REDACTED-0b2e6c';
