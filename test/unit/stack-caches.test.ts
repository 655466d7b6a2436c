// The stack's download caches are answered from only when they were made from what the scripts ask
// for now: a jar set from this very dependency list (scripts/lib/java.sh jars_current), promtool
// built with these tags (scripts/lib/promtool.sh promtool_current). Keyed on the version alone,
// a dependency added under the same versions kept the old classpath without a word.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const LIB = join(import.meta.dirname, '../../scripts/lib');

/** Runs `script` in bash with the libs sourced and TESSERA_CACHE=cache; its stdout, trimmed. */
function bash(cache: string, script: string): string {
  const run = spawnSync(
    'bash',
    ['-c', `source "${LIB}/common.sh"; source "${LIB}/java.sh"; source "${LIB}/promtool.sh"; ${script}`],
    { encoding: 'utf8', timeout: 20_000, env: { ...process.env, TESSERA_CACHE: cache } },
  );
  assert.equal(run.status, 0, run.stderr);
  return run.stdout.trim();
}

const current = (check: string) => `if ${check}; then echo current; else echo stale; fi`;

describe('stack caches', () => {
  const cache = mkdtempSync(join(tmpdir(), 'tessera-cache-'));
  after(() => rmSync(cache, { recursive: true, force: true }));

  it('answers from a jar set only when it was resolved from the same dependency list', () => {
    const dir = join(cache, 'jars', 'thing-1.0');
    mkdirSync(join(dir, 'libs'), { recursive: true });
    const deps = 'DEPS="<dependency><artifactId>a</artifactId></dependency>"; ';
    const check = current('jars_current thing-1.0 "$DEPS"');
    assert.equal(bash(cache, deps + check), 'stale', 'no .complete: not current');
    writeFileSync(join(dir, '.complete'), '');
    assert.equal(bash(cache, deps + check), 'stale', 'complete, but no record of its list');
    // What resolve_jars writes once Maven is done.
    bash(cache, `${deps} jar_deps_sha "$DEPS" >"${dir}/.deps-sha256"`);
    assert.equal(bash(cache, deps + check), 'current');
    assert.equal(bash(cache, `${deps} DEPS="$DEPS<dependency>b</dependency>"; ${check}`), 'stale');
  });

  it('answers from a built promtool only when it was built with the same tags', () => {
    const bin = bash(cache, 'echo "$PROMTOOL_BIN"');
    assert.ok(bin.startsWith(cache), bin);
    mkdirSync(join(bin, '..'), { recursive: true });
    writeFileSync(bin, '#!/bin/sh\necho promtool\n');
    chmodSync(bin, 0o755);
    const check = current('promtool_current');
    assert.equal(bash(cache, check), 'stale', 'built before the tags were recorded');
    writeFileSync(join(bin, '..', '.tags'), `${bash(cache, 'echo "$PROMTOOL_TAGS"')}\n`);
    assert.equal(bash(cache, check), 'current');
    assert.equal(bash(cache, `PROMTOOL_TAGS="$PROMTOOL_TAGS,enable_consul_sd"; ${check}`), 'stale');
  });
});
