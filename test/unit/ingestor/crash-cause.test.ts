// What crashed the ingestor's consumer, from the error kafkajs reports (its own error classes,
// wrapped as its retrier wraps them): Kafka, or a batch that kept failing (Redis, mostly). The
// label keeps a Redis outage from paging as a Kafka one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import kafkajs from 'kafkajs';
import { crashCause } from '../../../services/ingestor/ingestor.ts';
import { TesseraError } from '../../../shared/errors.ts';

// kafkajs' typings leave out the options its classes take.
type ErrorClass = new (...args: unknown[]) => Error;
const {
  KafkaJSConnectionError,
  KafkaJSNonRetriableError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
} = kafkajs as unknown as Record<
  | 'KafkaJSConnectionError'
  | 'KafkaJSNonRetriableError'
  | 'KafkaJSNumberOfRetriesExceeded'
  | 'KafkaJSProtocolError',
  ErrorClass
>;

test('a batch that failed on Redis past the retries is a batch crash', () => {
  const redis = new TesseraError('SERVICE_UNAVAILABLE', 'Redis read failed for entity 11', {
    cause: new Error('Reached the max retries per request limit (which is 2)'),
  });
  const wrapped = new KafkaJSNumberOfRetriesExceeded(redis, { retryCount: 5, retryTime: 2000 });
  assert.equal(crashCause(wrapped), 'batch');
  assert.equal(crashCause(new KafkaJSNonRetriableError(redis, { cause: redis.cause as Error })), 'batch');
});

test('brokers out of reach, or a request they refuse, are Kafka crashes', () => {
  const refused = new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9092');
  assert.equal(
    crashCause(new KafkaJSNumberOfRetriesExceeded(refused, { retryCount: 5, retryTime: 2000 })),
    'kafka',
  );
  assert.equal(crashCause(refused), 'kafka');
  const tooLarge = new KafkaJSProtocolError({
    type: 'MESSAGE_TOO_LARGE',
    message: 'too large',
    retriable: false,
  });
  assert.equal(crashCause(new KafkaJSNonRetriableError(tooLarge)), 'kafka');
});
