// The Python venv that scripts/stack builds for the pandas/pyarrow/Feast compatibility checks:
// it exists, and holds exactly the versions pinned in scripts/python-requirements.txt.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);

function pinned(): Record<string, string> {
  const text = readFileSync(new URL('../../scripts/python-requirements.txt', import.meta.url), 'utf8');
  const pins: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9_.-]+)==(\S+)/.exec(line.trim());
    if (m?.[1] && m[2]) pins[m[1].toLowerCase()] = m[2];
  }
  return pins;
}

describe('python venv (scripts/stack install)', { timeout: 120_000 }, () => {
  it('imports every pinned package (numpy, pandas, pyarrow, feast, schemathesis) at its version', async () => {
    const python = process.env.TESSERA_PYTHON;
    assert.ok(python, 'TESSERA_PYTHON is unset: run through scripts/test, or eval "$(scripts/stack env)"');
    const names = Object.keys(pinned());
    assert.ok(names.includes('feast') && names.includes('schemathesis'), `pins read: ${names.join(', ')}`);
    // Each is imported (the module names are the package names), then its installed version read.
    const script =
      'import importlib, importlib.metadata as m, json, sys\n' +
      'names = sys.argv[1:]\n' +
      'for n in names: importlib.import_module(n)\n' +
      'print(json.dumps({n: m.version(n) for n in names}))';
    const { stdout } = await run(python, ['-c', script, ...names], { timeout: 110_000 });
    assert.deepEqual(JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}'), pinned());
  });
});
