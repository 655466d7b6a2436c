// Keeps the docs complete against the code: every configuration option and every metric a service
// registers is named in README.md or docs/ (docs/benchmarks.md, a log of measurements, does not
// count), so an option or metric cannot be added without being documented.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ENV_NAMES } from '../../shared/config/defaults.ts';

const docs = [
  'README.md',
  ...readdirSync('docs', { recursive: true, encoding: 'utf8' }).map((f) => join('docs', f)),
]
  .filter((f) => f.endsWith('.md') && f !== join('docs', 'benchmarks.md'))
  .map((f) => readFileSync(f, 'utf8'))
  .join('\n');

describe('docs', () => {
  it('name every configuration option', () => {
    const missing = Object.values(ENV_NAMES).filter((name) => !docs.includes(name));
    assert.deepEqual(missing, [], `options no doc names: ${missing.join(', ')}`);
  });

  it('name every metric the services register', () => {
    const registered: string[] = [];
    for (const service of readdirSync('services')) {
      const file = join('services', service, 'metrics.ts');
      if (!existsSync(file)) continue;
      for (const m of readFileSync(file, 'utf8').matchAll(/name: '(tessera_[a-z0-9_]+)'/g))
        registered.push(m[1]!);
    }
    assert.ok(registered.length >= 20, `found ${registered.length} metrics`);
    const missing = registered.filter((name) => !docs.includes(name));
    assert.deepEqual(missing, [], `metrics no doc names: ${missing.join(', ')}`);
  });
});
