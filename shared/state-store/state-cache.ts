// The ingestor's decoded entity states, kept between batches so a busy entity is not fetched and
// decoded again for every batch. Redis stays the truth: an entry is only used when its version
// equals the one Redis holds (checked each batch), and an entry is taken out while a batch works on
// it and put back only once the compare-and-set saved it, so a failed batch can never leave a
// half-applied state behind. Least recently used entries go first; the bound counts stored events
// and tiles plus a fixed share per entity and per kept reader (entryWeight): what the memory grows with.
import type { BeforeEventReader, EntityState } from '../engine/index.ts';

/** How the entity's state is stored in Redis now: what decides whether the next save appends. */
export interface StoredSize {
  /** Bytes of the full state (field `s`); 0 when the entity has no state yet. */
  base: number;
  /** Bytes of the delta records appended since (field `d`). */
  delta: number;
  /** Number of those delta records. */
  records: number;
}

export const NOTHING_STORED: StoredSize = { base: 0, delta: 0, records: 0 };

interface Entry {
  version: number;
  state: EntityState;
  stored: StoredSize;
  /** The state's before-event reader, kept with it (see LoadedState.reader). */
  reader: BeforeEventReader | undefined;
  weight: number;
}

export class StateCache {
  /** Map iteration order is insertion order: the first key is the least recently used. */
  private readonly entries = new Map<string, Entry>();
  private total = 0;

  /** `capacity`: at most this many stored events and tiles summed over the entries; 0 disables. */
  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.entries.size;
  }

  /** Stored events and tiles held now. */
  get weight(): number {
    return this.total;
  }

  /** The cached version of an entity (without taking it out), or undefined. */
  version(entity: string): number | undefined {
    return this.entries.get(entity)?.version;
  }

  /** Removes and returns the entity's state: the caller owns it until it calls put(). */
  take(
    entity: string,
  ): { version: number; state: EntityState; stored: StoredSize; reader?: BeforeEventReader } | undefined {
    const entry = this.entries.get(entity);
    if (!entry) return undefined;
    this.entries.delete(entity);
    this.total -= entry.weight;
    const { version, state, stored, reader } = entry;
    return reader ? { version, state, stored, reader } : { version, state, stored };
  }

  /** Keeps a state that Redis holds at `version`, stored as `stored` (just saved or just loaded). */
  put(
    entity: string,
    version: number,
    state: EntityState,
    stored: StoredSize,
    reader?: BeforeEventReader,
  ): void {
    this.drop(entity);
    const weight = entryWeight(state, reader, stored);
    if (weight > this.capacity) return;
    this.entries.set(entity, { version, state, stored, reader, weight });
    this.total += weight;
    for (const [key, entry] of this.entries) {
      if (this.total <= this.capacity) break;
      this.entries.delete(key);
      this.total -= entry.weight;
    }
  }

  drop(entity: string): void {
    const entry = this.entries.get(entity);
    if (!entry) return;
    this.entries.delete(entity);
    this.total -= entry.weight;
  }

  clear(): void {
    this.entries.clear();
    this.total = 0;
  }
}

/**
 * What an entry costs the cache, in units of about 260 bytes (one stored event with its row in
 * the reader's mirror): its state's events (dead prefix included) and tiles, 2 for the state's own
 * objects, and, when its before-event reader is kept, 4 per exact feature for the reader's sliders
 * and mirror arrays, which it holds however few events the entity has. Measured with the
 * reference view (6 exact features): a state costs ~0.4 KB plus ~0.16 KB per event, a reader
 * ~5.9 KB plus ~0.1 KB per event. Counted by events alone, 85,000 small entities (3 events each)
 * weighed 262,000 of the default 1,000,000 and took ~540 MB of heap.
 *
 * Strings are not in that count: an entity of 10 events with a 50 KB merchant id each weighed 12
 * units and held 0.5 MB (found by an audit). Their bytes are in the stored state, which holds every
 * string it keeps at least once, so an entry weighs at least its stored bytes, in those units: for
 * numeric states (~10 bytes an event) the count above is the larger by far.
 */
function entryWeight(state: EntityState, reader: BeforeEventReader | undefined, stored: StoredSize): number {
  let tiles = 0;
  for (const group of state.tiles) tiles += group.length;
  const counted = 2 + state.events.length + tiles + (reader === undefined ? 0 : 4 * reader.exactFeatures);
  return Math.max(counted, Math.ceil((stored.base + stored.delta) / UNIT_BYTES));
}

/** The bytes a unit of the cache's bound stands for (TESSERA_STATE_CACHE_EVENTS). */
const UNIT_BYTES = 260;
