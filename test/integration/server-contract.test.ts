// The online server against its own OpenAPI document: schemathesis (test/compat/server_contract.py)
// sends documented and undocumented requests to a real server over real Redis and checks every
// answer against the document. It found a document that allowed requests the server refuses (no
// features, no entity rows, an as_of offset past 18:00), 404s for known paths asked with another
// method, and Node's bare 417 without a request id.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { cleanupRun, createSourceTopic, newTestRun } from '../support/ingestor-process.ts';
import { type ServerProcess, startServer } from '../support/server-process.ts';

const TOKEN = 'contract-token-0123456789abcdef';

describe('online server contract (schemathesis)', { timeout: 180_000 }, () => {
  const run = newTestRun();
  let server: ServerProcess;
  let url: string;

  before(async () => {
    // The source topic, so pushes the fuzzer makes valid are produced, not refused for want of it.
    await createSourceTopic(run, 1);
    // No entity state: every lookup answers NOT_FOUND rows, so the answers do not depend on the
    // clock. With states, an as_of before them is refused as documented (400 AS_OF_OUT_OF_RANGE),
    // which schemathesis cannot tell from a schema mismatch.
    server = startServer({ ...run.env, TESSERA_AUTH_TOKEN: TOKEN });
    url = await server.url;
  });

  after(async () => {
    await server?.stop();
    await cleanupRun(run);
  });

  it('answers every generated request as its OpenAPI document says', () => {
    const python = process.env.TESSERA_PYTHON;
    assert.ok(python, 'TESSERA_PYTHON is not set: run `eval "$(scripts/stack env)"`');
    let out = '';
    try {
      out = execFileSync(python, ['test/compat/server_contract.py', url, 'TESSERA_CONTRACT_TOKEN'], {
        env: { ...process.env, TESSERA_CONTRACT_TOKEN: TOKEN },
        encoding: 'utf8',
        timeout: 150_000,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string };
      assert.fail(`schemathesis found contract failures:\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
    }
    // A run that tested nothing would pass too.
    assert.match(out, /Tested: 5\b/);
    // Every generated case passed (a warning line, such as /push's refused rows, may precede it).
    assert.match(out, /\b(\d+) generated, \1 passed\b/);
  });
});
