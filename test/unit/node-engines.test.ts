// Every installed package accepts the Node.js we run on (package.json `engines`): npm only warns
// (EBADENGINE) when one does not, so a dependency that needs a newer Node would land unnoticed.
// light-my-request 6.8 pulled in cookie 2, which declares Node >= 22; package.json's overrides pin
// 6.6 (cookie 1) until the project moves to Node 22.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';

const ROOT = join(import.meta.dirname, '../..');

/**
 * Whether `version` is in a simple npm range (`>=x.y.z`, `^x.y`, `~x.y`, `x`, `>=a <b`, joined by
 * `||`); 'unknown' for other forms, which are not counted as refusals.
 */
function satisfied(range: string, version: readonly number[]): boolean | 'unknown' {
  const alternatives = range.split('||').map((r) => r.trim());
  const results = alternatives.map((r) => {
    const m = /^(>=|\^|~)?\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\s+<\s*v?(\d+)(?:\.\d+)*)?$/.exec(r);
    if (!m) return 'unknown' as const;
    const low = [Number(m[2]), Number(m[3] ?? 0), Number(m[4] ?? 0)];
    const cmp = (a: readonly number[], b: readonly number[]) =>
      a[0]! - b[0]! || a[1]! - b[1]! || a[2]! - b[2]!;
    if (cmp(version, low) < 0) return false;
    if (m[1] === '^' && version[0] !== low[0]) return false;
    if (m[1] === '~' && (version[0] !== low[0] || version[1] !== low[1])) return false;
    if (m[1] === undefined && !r.includes('.') && version[0] !== low[0]) return false;
    if (m[5] !== undefined && version[0]! >= Number(m[5])) return false;
    return true;
  });
  if (results.includes(true)) return true;
  return results.includes('unknown') ? 'unknown' : false;
}

function* packages(dir: string): Generator<{ name: string; version: string; node?: string }> {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir)) {
    if (entry.startsWith('.')) continue;
    const path = join(dir, entry);
    if (entry.startsWith('@')) {
      yield* packages(path);
      continue;
    }
    const manifest = join(path, 'package.json');
    if (!existsSync(manifest)) continue;
    const json = JSON.parse(readFileSync(manifest, 'utf8')) as {
      name: string;
      version: string;
      engines?: { node?: string };
    };
    yield { name: json.name, version: json.version, node: json.engines?.node };
    yield* packages(join(path, 'node_modules'));
  }
}

it('every installed package accepts this Node.js version (engines.node)', () => {
  const version = process.versions.node.split('.').map(Number);
  const refused: string[] = [];
  let checked = 0;
  for (const pkg of packages(join(ROOT, 'node_modules'))) {
    if (!pkg.node) continue;
    checked++;
    if (satisfied(pkg.node, version) === false)
      refused.push(`${pkg.name}@${pkg.version} wants node ${pkg.node}`);
  }
  assert.ok(checked > 20, `only ${checked} packages declare engines: is node_modules installed?`);
  assert.deepEqual(refused, [], `on node ${process.version}`);
});
