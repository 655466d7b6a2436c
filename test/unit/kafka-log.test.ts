// kafkajs' log entries through the service's pino logger: levels mapped, retried broker answers
// and the bounded-retries warning moved to debug, kafkajs' fields kept (a pure unit: no broker).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { logLevel } from 'kafkajs';
import { pino } from 'pino';
import { kafkaLogCreator } from '../../shared/config/clients.ts';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { lines, log: kafkaLogCreator(logger) };
}

const entry = (level: logLevel, message: string, fields: Record<string, unknown> = {}) => ({
  namespace: 'Connection',
  level,
  label: logLevel[level],
  log: { timestamp: '2026-11-26T22:02:44.177Z', logger: 'kafkajs', message, ...fields },
});

test('kafkajs errors and warnings keep their level, message and fields', () => {
  const { lines, log } = capture();
  log(
    entry(logLevel.ERROR, '[Connection] Response CreateTopics(key: 19, version: 3)', {
      broker: '127.0.0.1:9092',
      error: 'Topic with this name already exists',
    }),
  );
  log(entry(logLevel.WARN, '[Producer] something else'));
  log(entry(logLevel.INFO, '[Consumer] Starting'));
  assert.deepEqual(
    lines.map((l) => [l.level, l.msg]),
    [
      [50, '[Connection] Response CreateTopics(key: 19, version: 3)'],
      [40, '[Producer] something else'],
      [30, '[Consumer] Starting'],
    ],
  );
  assert.equal(lines[0]!.broker, '127.0.0.1:9092');
  assert.equal(lines[0]!.error, 'Topic with this name already exists');
  assert.equal(lines[0]!.namespace, 'Connection');
  assert.equal(lines[0]!.component, 'kafkajs');
  assert.equal(lines[0]!.logger, undefined, "kafkajs' own logger and timestamp fields are dropped");
});

test('broker answers kafkajs retries, and the bounded-retries warning, are debug lines', () => {
  const { lines, log } = capture();
  for (const error of [
    "The coordinator is loading and hence can't process requests for this group",
    'The group is rebalancing, so a rejoin is needed',
    'This server is not the leader for that topic-partition',
  ])
    log(entry(logLevel.ERROR, '[Connection] Response InitProducerId(key: 22, version: 1)', { error }));
  log(entry(logLevel.WARN, 'Limiting retries for the idempotent producer may invalidate EoS guarantees'));
  assert.deepEqual(
    lines.map((l) => l.level),
    [20, 20, 20, 20],
  );
});
