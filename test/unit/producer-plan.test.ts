// The producer's bad messages announce the verdict the pipeline must give them
// (tessera-expected-reason): checked here by running its whole message plan through the real
// decoder and the engine with the event clock, which docs/ingestor.md recommends for replays.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planMessages } from '../../services/producer/produce.ts';
import { createDecoder } from '../../shared/codecs/index.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import {
  applyEvent,
  type EntityState,
  emptyState,
  planView,
  toEngineEvent,
} from '../../shared/engine/index.ts';
import { isTesseraError } from '../../shared/errors.ts';

test('every bad message of the plan gets the reason it announces, late ones included', async () => {
  const definitions = loadDefinitionsFile('definitions/fraud.yaml');
  const source = definitions.sources[0]!;
  const plan = planView(definitions.views[0]!);
  const decoder = createDecoder(source, { definitionsDir: 'definitions' });
  const messages = planMessages({
    source,
    definitionsDir: 'definitions',
    events: 20_000,
    seed: 1,
    badFraction: 0.05,
  }).messages();
  const states = new Map<string, EntityState>();
  const verdicts = new Map<string, number>();
  let offset = 0;
  for (const m of messages) {
    offset++;
    const decoded = await decoder.decode({ key: m.key, value: m.value });
    let got: string;
    if (!decoded.ok) got = decoded.reason;
    else {
      let state = states.get(decoded.key);
      if (!state) {
        state = emptyState(plan);
        states.set(decoded.key, state);
      }
      try {
        applyEvent(plan, state, toEngineEvent(plan, decoded.record, decoded.ts, 0, offset));
        got = 'applied';
      } catch (error) {
        if (!isTesseraError(error, 'EVENT_LATE')) throw error;
        got = 'late';
      }
    }
    if (m.bad) verdicts.set(`${m.bad} -> ${got}`, (verdicts.get(`${m.bad} -> ${got}`) ?? 0) + 1);
    else assert.equal(got, 'applied', `good message at ${offset}`);
  }
  const wrong = [...verdicts].filter(([k]) => k.split(' -> ')[0] !== k.split(' -> ')[1]);
  assert.deepEqual(wrong, [], `announced -> given: ${JSON.stringify([...verdicts])}`);
  assert.ok((verdicts.get('late -> late') ?? 0) > 100, 'the plan holds late messages');
});
