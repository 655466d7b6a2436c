// Integers beyond 2^53 in a request body, read exactly. JSON.parse reads every number as a double,
// so 9007199254740993 (which Feast's Python SDK writes as is for an int64 id) arrived as
// 9007199254740992: the lookup was refused, as no value that far out can be trusted to be the one
// sent. Such literals are read as their decimal strings instead, the form the int64 checks take.

/** No integer of 15 digits or fewer reaches 2^53 (9007199254740992 has 16). */
const LONG_DIGITS = /\d{16}/;

/**
 * `text`, valid JSON, with each integer literal beyond ±(2^53 − 1) written as a string of its
 * digits; anything else as it was. The text must have parsed already: in valid JSON a number is
 * always a value (object keys are strings), so no key or invalid text can be made valid here.
 */
export function quoteBigIntegers(text: string): string {
  if (!LONG_DIGITS.test(text)) return text;
  let out = '';
  let from = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // A string: to its closing quote, over escapes.
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        i += d === 0x5c ? 2 : 1;
        if (d === 0x22) break;
      }
      continue;
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      const start = i;
      let integer = true;
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d >= 0x30 && d <= 0x39) continue;
        if (d === 0x2e || d === 0x65 || d === 0x45 || d === 0x2b || d === 0x2d) integer = false;
        else break;
      }
      if (integer && i - start >= 16) {
        const token = text.slice(start, i);
        if (!Number.isSafeInteger(Number(token))) {
          out += `${text.slice(from, start)}"${token}"`;
          from = i;
        }
      }
      continue;
    }
    i++;
  }
  return from === 0 ? text : out + text.slice(from);
}
