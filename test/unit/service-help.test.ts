// `--help` / `-h` of the three services: the usage with every option (flag, variable, default),
// exit 0, before any configuration is validated or any service is reached. They answered
// "CONFIG_INVALID: unknown flag --help".
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { CONFIG_KEYS, ENV_NAMES } from '../../shared/config/index.ts';

describe('service --help', () => {
  for (const service of ['ingestor', 'server', 'flusher'])
    it(`${service} prints its usage with every option, exit 0`, () => {
      const run = spawnSync(process.execPath, ['--import', 'tsx', `services/${service}/main.ts`, '--help'], {
        encoding: 'utf8',
        // A broken configuration must not stand in the way of the usage.
        env: { ...process.env, TESSERA_REDIS_URL: 'not a url' },
        timeout: 30_000,
      });
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stdout, new RegExp(`^usage: npx tsx services/${service}/main\\.ts`));
      for (const key of CONFIG_KEYS)
        assert.ok(run.stdout.includes(ENV_NAMES[key]), `${ENV_NAMES[key]} listed`);
      assert.match(run.stdout, /TESSERA_S3_SECRET_ACCESS_KEY +\(secret\)/);
      assert.doesNotMatch(run.stdout, /tessera-local-secret/);
    });
});
