// parseIsoTimestamp (a character scanner) against a reference written here from the grammar: a
// regular expression for the shape, Date.UTC for the calendar, and the zone and fraction rules of
// docs/codecs.md. Random well-formed times must parse to the reference's instant; random damaged
// ones must be refused exactly when the reference refuses them, with the same kind of message.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseIsoTimestamp, parseTimestamp } from '../../../shared/codecs/timestamp.ts';

const SHAPE =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$/;
const ZONELESS = /^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}([.,]\d+)?)?)?$/;

type Expected = { ok: true; ms: number } | { ok: false; kind: 'invalid' | 'zone' | 'shape' };

function reference(text: string): Expected {
  const m = SHAPE.exec(text);
  if (m === null) return { ok: false, kind: ZONELESS.test(text) ? 'zone' : 'shape' };
  const [year, month, day, hour, minute] = [m[1], m[2], m[3], m[4], m[5]].map(Number) as number[];
  const second = Number(m[6] ?? 0);
  const millis = Number((m[7] ?? '').padEnd(3, '0').slice(0, 3)); // cut, not rounded
  const offset = m[8] ? 0 : (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 60 + Number(m[11]));
  // Date.UTC itself says whether the day exists: it rolls 30 February over into March.
  const date = new Date(Date.UTC(2000, month! - 1, day!, hour!, minute!, second, millis));
  date.setUTCFullYear(year!);
  const exists = date.getUTCMonth() === month! - 1 && date.getUTCDate() === day;
  const offsetMinutes = m[8] ? 0 : Number(m[11]);
  if (
    !exists ||
    month! > 12 ||
    hour! > 23 ||
    minute! > 59 ||
    second > 59 ||
    Math.abs(offset) > 18 * 60 ||
    offsetMinutes > 59
  )
    return { ok: false, kind: 'invalid' };
  return { ok: true, ms: date.getTime() - offset * 60_000 };
}

function kindOf(problem: string): 'invalid' | 'zone' | 'shape' {
  if (problem.includes('is not a valid date-time')) return 'invalid';
  if (problem.includes('with a zone')) return 'zone';
  return 'shape';
}

function check(text: string): void {
  const want = reference(text);
  const got = parseIsoTimestamp(text);
  if (want.ok) assert.deepEqual(got, want, text);
  else {
    assert.equal(got.ok, false, text);
    if (!got.ok) assert.equal(kindOf(got.problem), want.kind, `${text}: ${got.problem}`);
  }
}

const pad = (n: number, width: number) => String(n).padStart(width, '0');

const wellFormed = fc
  .record({
    year: fc.integer({ min: 0, max: 9999 }),
    month: fc.integer({ min: 1, max: 12 }),
    day: fc.integer({ min: 1, max: 31 }),
    hour: fc.integer({ min: 0, max: 23 }),
    minute: fc.integer({ min: 0, max: 59 }),
    second: fc.option(fc.integer({ min: 0, max: 59 })),
    fraction: fc.option(fc.stringMatching(/^\d{1,9}$/)),
    sep: fc.constantFrom('T', 't', ' '),
    mark: fc.constantFrom('.', ','),
    zone: fc.oneof(
      fc.constantFrom('Z', 'z'),
      fc
        .record({
          sign: fc.constantFrom('+', '-'),
          hh: fc.integer({ min: 0, max: 18 }),
          mm: fc.integer({ min: 0, max: 59 }),
          colon: fc.boolean(),
        })
        .map(({ sign, hh, mm, colon }) => `${sign}${pad(hh, 2)}${colon ? ':' : ''}${pad(mm, 2)}`),
    ),
  })
  .map((f) => {
    const seconds = f.second === null ? '' : `:${pad(f.second, 2)}${f.fraction ? f.mark + f.fraction : ''}`;
    return `${pad(f.year, 4)}-${pad(f.month, 2)}-${pad(f.day, 2)}${f.sep}${pad(f.hour, 2)}:${pad(f.minute, 2)}${seconds}${f.zone}`;
  });

describe('ISO-8601 scanner', () => {
  it('parses well-formed times to the instant Date.UTC gives (days past a month end refused)', () => {
    fc.assert(
      fc.property(wellFormed, (text) => check(text)),
      { numRuns: 20_000 },
    );
  });

  it('refuses damaged times exactly when the grammar does, with the same kind of message', () => {
    const damaged = fc
      .tuple(
        wellFormed,
        fc.array(
          fc.record({
            at: fc.nat(),
            op: fc.constantFrom('delete', 'insert', 'replace'),
            ch: fc.constantFrom('0', '9', '-', ':', '.', ',', 'T', ' ', 'Z', '+', 'x', '5', '\u0660'),
          }),
          { minLength: 1, maxLength: 3 },
        ),
      )
      .map(([text, edits]) => {
        let s = text;
        for (const { at, op, ch } of edits) {
          const i = at % (s.length + 1);
          if (op === 'delete') s = s.slice(0, i) + s.slice(i + 1);
          else if (op === 'insert') s = s.slice(0, i) + ch + s.slice(i);
          else s = s.slice(0, i) + ch + s.slice(i + 1);
        }
        return s;
      });
    let refused = 0;
    fc.assert(
      fc.property(damaged, (text) => {
        if (!reference(text).ok) refused++;
        check(text);
      }),
      { numRuns: 20_000 },
    );
    assert.ok(refused > 5_000, `damaged times the grammar refuses: ${refused}`);
  });

  it('refuses offset minutes past 59, once read as more hours', () => {
    assert.equal(parseIsoTimestamp('2026-01-01T00:00:00+05:99').ok, false);
    assert.equal(parseIsoTimestamp('2026-01-01T00:00:00+0599').ok, false);
    assert.deepEqual(parseIsoTimestamp('2026-01-01T00:00:00+05:59'), {
      ok: true,
      ms: Date.UTC(2025, 11, 31, 18, 1),
    });
  });

  it('cuts Avro timestamp-micros to the millisecond, as ISO fractions are cut', () => {
    const last = Date.UTC(2026, 0, 1, 23, 59, 59, 999);
    // 23:59:59.999999 was rounded to the next day; the ISO text of the same instant gives .999.
    assert.deepEqual(parseTimestamp(BigInt(last) * 1000n + 999n, 'iso8601', 'micros'), {
      ok: true,
      ms: last,
    });
    assert.deepEqual(parseIsoTimestamp('2026-01-01T23:59:59.999999Z'), { ok: true, ms: last });
    assert.deepEqual(parseTimestamp(-1, 'iso8601', 'micros'), { ok: true, ms: -1 });
    assert.deepEqual(parseTimestamp(1500, 'iso8601', 'micros'), { ok: true, ms: 1 });
  });

  it('reads Avro timestamp-nanos exactly, cut to the millisecond (it was read as milliseconds)', () => {
    const last = Date.UTC(2026, 0, 1, 23, 59, 59, 250);
    // Past 2^53 ns, an int64 arrives as its exact decimal string; through a double this one was .251.
    const ns = `${BigInt(last) * 1_000_000n + 999_999n}`;
    assert.notEqual(Math.floor(Number(ns) / 1e6), last, 'a double rounds it into the next millisecond');
    assert.deepEqual(parseTimestamp(ns, 'iso8601', 'nanos'), { ok: true, ms: last });
    assert.deepEqual(parseTimestamp(BigInt(ns), 'iso8601', 'nanos'), { ok: true, ms: last });
    assert.deepEqual(parseTimestamp(-1, 'iso8601', 'nanos'), { ok: true, ms: -1 });
    assert.deepEqual(parseTimestamp(2_500_000, 'iso8601', 'nanos'), { ok: true, ms: 2 });
    assert.equal(parseTimestamp(1.5, 'iso8601', 'nanos').ok, false);
    assert.equal(parseTimestamp('9'.repeat(30), 'iso8601', 'nanos').ok, false);
  });

  it('cuts fractions to the millisecond, and knows leap years and the edges of the range', () => {
    for (const text of [
      '2026-01-01T00:00:00.9999999999Z', // ten digits: refused
      '2026-01-01T00:00:00.123999999Z',
      '2024-02-29T00:00:00Z',
      '2100-02-29T00:00:00Z',
      '2000-02-29T00:00:00Z',
      '0000-01-01T00:00:00+18:00',
      '9999-12-31T23:59:59.999-18:00',
      '2026-01-01T12:30:00+18:01',
      '2026-01-01T24:00:00Z',
      '2026-01-01T12:30',
      '2026-01-01',
      '',
    ])
      check(text);
    assert.deepEqual(parseIsoTimestamp('2026-01-01T00:00:00.123999999Z'), {
      ok: true,
      ms: Date.UTC(2026, 0, 1, 0, 0, 0, 123),
    });
  });
});
