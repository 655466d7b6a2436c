// Keeps the docs and the code in step, both ways. Every configuration option and every metric a
// service registers is named in README.md or docs/ (docs/benchmarks.md, a log of measurements,
// does not count), so one cannot be added without being documented; and what the docs name (a
// TESSERA_* variable, an option's flag and default in a settings table, a metric and its labels,
// a file of the repository) exists as written, so a rename or a new default cannot leave them
// telling users to set something that is not there.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type ConfigKey, DEFAULTS, ENV_NAMES, flagName } from '../../shared/config/defaults.ts';
import { declaredMetrics } from '../support/declared-metrics.ts';

const pages = [
  'README.md',
  ...readdirSync('docs', { recursive: true, encoding: 'utf8' }).map((f) => join('docs', f)),
]
  .filter((f) => f.endsWith('.md'))
  .map((file) => ({ file, text: readFileSync(file, 'utf8') }));
/** The pages that document the product: benchmarks.md is a log of past runs and their set-ups. */
const current = pages.filter((p) => p.file !== join('docs', 'benchmarks.md'));
const docs = current.map((p) => p.text).join('\n');

/** Each line of the given pages, with its place, for messages that point at the line to fix. */
function* lines(of: readonly { file: string; text: string }[]) {
  for (const { file, text } of of) {
    const all = text.split('\n');
    for (let i = 0; i < all.length; i++) yield { where: `${file}:${i + 1}`, line: all[i]! };
  }
}

const KEY_OF_ENV = new Map(Object.entries(ENV_NAMES).map(([key, env]) => [env, key as ConfigKey]));

/** Source text the docs' non-configuration variables must come from (scripts, tests, benches). */
function sourceText(): string {
  const out = [readFileSync('docker-compose.yml', 'utf8')];
  for (const root of ['shared', 'services', 'scripts', 'loadtest', 'test', 'deploy', '.ci'])
    for (const f of readdirSync(root, { recursive: true, encoding: 'utf8' })) {
      const path = join(root, f);
      if (
        /\.(ts|sh|py|ya?ml|txt)$|(^|\/)(stack|run|test|demo|Dockerfile)$/.test(f) &&
        statSync(path).isFile()
      )
        out.push(readFileSync(path, 'utf8'));
    }
  return out.join('\n');
}

/** Every metric the services register, with its label names (test/support/declared-metrics.ts). */
function metricLabels(): Map<string, string[]> {
  return new Map([...declaredMetrics()].map(([name, metric]) => [name, [...metric.labels]]));
}

/**
 * Settings tables: a row whose cell holds only variables (and their flags), `A / B` or `A, B`,
 * gives each variable's default in the next cell that is not only flags, `a / b` in the same
 * order (one value for all of them). A default the docs describe in words instead is listed here.
 */
const DESCRIBED_DEFAULTS: Partial<Record<ConfigKey, string>> = {
  redisUrl: 'local stack',
  offlineStore: 's3://$TESSERA_S3_BUCKET',
};
const EMPTY_WORDS = ['(empty', 'none', '(none', 'system CAs'];

interface TableDefault {
  where: string;
  key: ConfigKey;
  flag?: string;
  value: string;
}

function tableDefaults(): TableDefault[] {
  const out: TableDefault[] = [];
  const plain = (cell: string) =>
    cell
      .replaceAll('`', '')
      .replace(/\([^)]*\)/g, '')
      .trim();
  const parts = (cell: string) =>
    plain(cell)
      .split(/ \/ |, /)
      .map((p) => p.trim())
      .filter((p) => p !== '' && p !== '...' && p !== '…');
  const isName = (p: string) => /^TESSERA_[A-Z0-9_]+$/.test(p);
  const isFlag = (p: string) => /^--[a-z0-9-]+$/.test(p);
  for (const { where, line } of lines(current)) {
    if (!line.startsWith('|')) continue;
    const cells = line.split('|').slice(1, -1);
    const at = cells.findIndex((c) => {
      const ps = parts(c);
      return ps.some(isName) && ps.every((p) => isName(p) || isFlag(p));
    });
    if (at === -1) continue;
    const names = parts(cells[at]!).filter(isName);
    let flags = parts(cells[at]!).filter(isFlag);
    let next = at + 1;
    while (next < cells.length && parts(cells[next]!).length > 0 && parts(cells[next]!).every(isFlag)) {
      flags = parts(cells[next]!);
      next++;
    }
    const cell = cells[next];
    if (cell === undefined) continue;
    const values = cell
      .replaceAll('`', '')
      .split(' / ')
      .map((v) => v.trim());
    names.forEach((name, i) => {
      const key = KEY_OF_ENV.get(name);
      if (key === undefined) return; // not an option of shared/config: the first test covers it
      const value =
        values.length === names.length ? values[i]! : values.length === 1 ? values[0]! : undefined;
      if (value === undefined) return;
      const flag = flags.length === names.length ? flags[i] : undefined;
      out.push({ where, key, value, ...(flag === undefined ? {} : { flag }) });
    });
  }
  return out;
}

/** Named in the README's data-flow picture as still to come. */
const PLANNED = ['services/backfill'];

describe('docs', () => {
  it('name every configuration option', () => {
    const missing = Object.values(ENV_NAMES).filter((name) => !docs.includes(name));
    assert.deepEqual(missing, [], `options no doc names: ${missing.join(', ')}`);
  });

  it('name every metric the services register', () => {
    const registered = [...metricLabels().keys()];
    assert.ok(registered.length >= 20, `found ${registered.length} metrics`);
    const missing = registered.filter((name) => !docs.includes(name));
    assert.deepEqual(missing, [], `metrics no doc names: ${missing.join(', ')}`);
  });

  it('name only TESSERA_ variables that exist: an option, or one the scripts, tests or benches read', () => {
    const source = sourceText();
    const options = Object.values(ENV_NAMES);
    const wrong: string[] = [];
    for (const { where, line } of lines(pages))
      for (const m of line.matchAll(/TESSERA_[A-Z0-9_]*[A-Z0-9](_\*|_(?=[^A-Z0-9_]|$))?/g)) {
        const name = m[0];
        // TESSERA_S3_* and TESSERA_SERVER_TLS_* name a family of options.
        const known =
          name.endsWith('_*') || name.endsWith('_')
            ? options.some((o) => o.startsWith(name.replace(/\*$/, '')))
            : options.includes(name) || new RegExp(`\\b${name}\\b`).test(source);
        if (!known) wrong.push(`${where}: ${name}`);
      }
    assert.deepEqual(wrong, [], `variables no code reads:\n  ${wrong.join('\n  ')}`);
  });

  it("give each option's flag and default in their settings tables as defaults.ts does", () => {
    const rows = tableDefaults();
    // The settings tables of local-stack.md, ingestor.md, server.md and offline-store.md.
    assert.ok(rows.length >= 40, `found ${rows.length} documented defaults`);
    const wrong: string[] = [];
    for (const { where, key, flag, value } of rows) {
      if (flag !== undefined && flag !== flagName(key))
        wrong.push(`${where}: ${ENV_NAMES[key]}'s flag is ${flagName(key)}, not ${flag}`);
      const actual = DEFAULTS[key];
      const expected = Array.isArray(actual) ? actual.join(',') : String(actual);
      const described = DESCRIBED_DEFAULTS[key];
      const ok =
        (described !== undefined && value.startsWith(described)) ||
        (expected === ''
          ? EMPTY_WORDS.some((w) => value.startsWith(w))
          : value.startsWith(expected) && !/[\w.]/.test(value.charAt(expected.length)));
      if (!ok)
        wrong.push(
          `${where}: ${ENV_NAMES[key]} defaults to ${JSON.stringify(expected)}, the doc says ${JSON.stringify(value)}`,
        );
    }
    assert.deepEqual(
      wrong,
      [],
      `settings tables out of step with shared/config/defaults.ts:\n  ${wrong.join('\n  ')}`,
    );
  });

  it('name only metrics the services register, with their labels', () => {
    const registered = metricLabels();
    const wrong: string[] = [];
    for (const { where, line } of lines(current))
      for (const m of line.matchAll(/\b(tessera_(?:server|ingestor|flusher)_[a-z0-9_]+)(?:\{([^}]*)\})?/g)) {
        const name = m[1]!;
        if (/_(process|nodejs)_/.test(name)) continue; // Node's process metrics, under the prefix
        const base = registered.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
        const labels = registered.get(base);
        if (labels === undefined) {
          wrong.push(`${where}: ${name} is not registered`);
          continue;
        }
        if (m[2] === undefined) continue;
        // {a,b} lists the labels; {a="x"} selects by some of them.
        const used = m[2].split(',').map((l) => l.trim().split(/[=!~]/)[0]!.trim());
        const unknown = used.filter((l) => !labels.includes(l) && l !== 'le');
        const listed = !m[2].includes('=');
        if (unknown.length > 0 || (listed && used.length !== labels.length))
          wrong.push(`${where}: ${name}{${m[2]}}, registered with {${labels.join(',')}}`);
      }
    assert.deepEqual(wrong, [], `metrics the docs name wrongly:\n  ${wrong.join('\n  ')}`);
  });

  it('name only files and folders of the repository that exist', () => {
    const wrong: string[] = [];
    const path =
      /(?<![\w./$<-])((?:shared|services|test|loadtest|scripts|deploy|docs|definitions|\.ci)\/[A-Za-z0-9_./-]*[A-Za-z0-9_/])(?![\w*<])/g;
    for (const { where, line } of lines(current))
      for (const m of line.matchAll(path)) {
        const p = m[1]!.replace(/\.$/, '');
        if (PLANNED.includes(p)) continue;
        // docs/ pages link their neighbours relative to themselves (decisions/0001-...).
        if (!existsSync(p) && !existsSync(join('docs', p))) wrong.push(`${where}: ${p}`);
      }
    assert.deepEqual(wrong, [], `paths that do not exist:\n  ${wrong.join('\n  ')}`);
  });
});
