// shared/consumer-crashes.ts (the ingestor's and the flusher's /ready on consumer crashes) driven by
// kafkajs' events on a stand-in consumer and a pinned clock.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type { Consumer } from 'kafkajs';
import pino from 'pino';
import { watchConsumerCrashes } from '../../../shared/consumer-crashes.ts';

const EVENTS = {
  GROUP_JOIN: 'consumer.group_join',
  CRASH: 'consumer.crash',
  END_BATCH_PROCESS: 'consumer.end_batch_process',
} as const;

const HOLD_MS = 30_000;

function setup(holdMs = HOLD_MS) {
  const emitter = new EventEmitter();
  const consumer = {
    events: EVENTS,
    on: (event: string, listener: (e: unknown) => void) => {
      emitter.on(event, listener);
      return () => emitter.off(event, listener);
    },
  } as unknown as Pick<Consumer, 'on' | 'events'>;
  let t = 1_000_000;
  const counted: string[] = [];
  const fatal: string[] = [];
  const watch = watchConsumerCrashes(
    consumer,
    'ingestor',
    pino({ level: 'silent' }),
    { count: (e) => counted.push(e.message), onFatal: (e) => fatal.push(e.message) },
    { holdMs, now: () => t },
  );
  return {
    watch,
    counted,
    fatal,
    advance: (ms: number) => {
      t += ms;
    },
    crash: (message: string, restart = true) =>
      emitter.emit(EVENTS.CRASH, { payload: { error: new Error(message), restart } }),
    join: () => emitter.emit(EVENTS.GROUP_JOIN, { payload: {} }),
    batchDone: () => emitter.emit(EVENTS.END_BATCH_PROCESS, { payload: {} }),
  };
}

describe('consumer crashes on /ready', () => {
  it('is ready at a join with no crash before it, and a batch then changes nothing', () => {
    const s = setup();
    s.join();
    assert.equal(s.watch.trouble(), null);
    s.batchDone();
    assert.equal(s.watch.trouble(), null);
  });

  it('stays not ready after rejoining from a crash until a batch goes through', () => {
    const s = setup(30_000);
    s.crash('The group is rebalancing');
    assert.match(
      s.watch.trouble() ?? '',
      /kafka consumer crashed \(The group is rebalancing\); kafkajs is restarting it/,
    );
    s.join();
    s.advance(2000);
    assert.match(
      s.watch.trouble() ?? '',
      /kafka consumer crashed \(The group is rebalancing\); it rejoined its group 2 s ago/,
    );
    s.batchDone();
    assert.equal(s.watch.trouble(), null);
    assert.deepEqual(s.counted, ['The group is rebalancing']);
  });

  it('is ready once it has run the hold after the rejoin without crashing, with nothing to consume', () => {
    const s = setup();
    s.crash('broker gone');
    s.join();
    s.advance(HOLD_MS - 1);
    assert.notEqual(s.watch.trouble(), null);
    s.advance(1);
    assert.equal(s.watch.trouble(), null);
    // Recovered for good: a later batch or join does not bring the crash back.
    s.join();
    assert.equal(s.watch.trouble(), null);
  });

  it('is not ready at any point of a crash loop (crash, rejoin, crash again within the hold)', () => {
    // The flap this prevents: cleared at each rejoin, /ready said 200 for most of each cycle.
    const s = setup(30_000);
    const seen: (string | null)[] = [];
    for (let cycle = 0; cycle < 5; cycle++) {
      s.crash(`batch failed ${cycle}`);
      seen.push(s.watch.trouble());
      s.advance(300);
      s.join();
      for (let i = 0; i < 6; i++) {
        s.advance(1000);
        seen.push(s.watch.trouble());
      }
    }
    assert.ok(
      seen.every((t) => t !== null),
      `ready during a crash loop: ${seen.map((t) => (t === null ? 'ready' : 'not')).join(' ')}`,
    );
    assert.equal(s.counted.length, 5);
    // The hold starts again at each rejoin: not from the first crash.
    s.advance(30_000 - 6000 - 1);
    assert.notEqual(s.watch.trouble(), null);
    s.advance(1);
    assert.equal(s.watch.trouble(), null);
  });

  it('a crash kafkajs will not restart stays on /ready and goes to onFatal', () => {
    const s = setup(10);
    s.crash('message too large', false);
    s.advance(60_000);
    assert.match(s.watch.trouble() ?? '', /kafkajs will not restart it: restart the ingestor/);
    assert.deepEqual(s.fatal, ['message too large']);
  });
});
