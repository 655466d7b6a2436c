"""Contract test of the online server against its own OpenAPI document, with schemathesis.

Usage: server_contract.py <base url> <env var holding a bearer token>

Runs schemathesis (pinned in scripts/python-requirements.txt) over every operation of
<base url>/openapi.json: positive and negative requests, all checks (status codes, bodies and
headers as documented, never a 500 on client input, schema-valid requests accepted, invalid ones
refused, auth not ignored). Deterministic: a fixed seed, deterministic generation, one worker and
a bounded number of cases, so a failure reproduces with the same command. Two documented gaps are
configured rather than ignored:
  - /push: a schema-valid body may still be refused (400) for a row the source's validator refuses
    (column lengths, timestamps): JSON Schema cannot say that, the document says it in words.
  - undeclared methods: fastify answers QUERY without a Content-Type 400 (RFC 10008 requires it)
    before routing; every other method on a known path is a 405 (test/unit/server/app.test.ts).
Exits non-zero on any failure; schemathesis prints each with a curl line to reproduce it.
"""

import os
import subprocess
import sys
import tempfile

CONFIG = """
[checks]
unsupported_method.enabled = false

[[operations]]
include-path = "/push"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404"]
"""


def main() -> int:
    url, token_env = sys.argv[1], sys.argv[2]
    token = os.environ[token_env]
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "schemathesis.toml")
        with open(config, "w") as f:
            f.write(CONFIG)
        command = [
            sys.executable, "-m", "schemathesis.cli",
            "--config-file", config,
            "run", f"{url}/openapi.json",
            "--header", f"Authorization: Bearer {token}",
            "--max-examples", "100",
            "--seed", "18",
            "--generation-deterministic",
            "--workers", "1",
            "--continue-on-failure",
            "--request-timeout", "10",
            "--no-color",
            "--output-sanitize", "true",
        ]
        return subprocess.run(command, cwd=tmp, timeout=120).returncode


if __name__ == "__main__":
    sys.exit(main())
