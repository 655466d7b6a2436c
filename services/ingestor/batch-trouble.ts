// What the ingestor's /ready says of its batches, per source topic: a batch retried in place (Redis
// down), partitions held for the schema registry, a push being retried. Each topic's trouble is its
// own (another topic's batches going through do not clear it), and a rebalance that leaves this
// ingestor none of a topic's partitions drops the troubles of their batches, which would otherwise
// stay on /ready for good.

/** A topic's partitions held (undecodable for now), the failed attempts in a row, and what /ready says. */
interface Held {
  partitions: Set<number>;
  attempts: number;
  problem: string;
}

export interface BatchTrouble {
  /** A batch of `topic` is being retried in place; `problem` is what /ready says. */
  retrying(topic: string, problem: string): void;
  /** `topic`'s batch retried in place went through. */
  through(topic: string): void;
  /** These partitions of `topic` are held (paused until fetched again). Returns the topic's failed attempts in a row. */
  held(topic: string, partitions: readonly number[], problem: string): number;
  /**
   * `topic`'s batches of these partitions decoded. Returns the attempts it took once that ends the
   * topic's hold (null while other partitions of it are still held, or none was).
   */
  decoded(topic: string, partitions: readonly number[]): number | null;
  /** A push of `topic`'s vectors is being retried. */
  pushFailing(topic: string, problem: string): void;
  /** `topic`'s push went through. */
  pushed(topic: string): void;
  /**
   * The consumer (re)joined its group with this assignment: a held partition no longer assigned is
   * let go, and a topic with no partition here loses its retried batch's trouble (nothing is left
   * here to retry). A push being retried stays: the vectors are this process's, whoever owns the
   * partitions now.
   */
  assigned(assignment: Readonly<Record<string, readonly number[] | undefined>>): void;
  /** What /ready lists: batches retried in place, held partitions, pushes. */
  problems(): string[];
}

export function createBatchTrouble(): BatchTrouble {
  /** Per topic, what /ready says of a batch retried in place, of held partitions, of a push. */
  const retried = new Map<string, string>();
  const holds = new Map<string, Held>();
  const pushes = new Map<string, string>();
  return {
    retrying(topic, problem) {
      retried.set(topic, problem);
    },
    through(topic) {
      retried.delete(topic);
    },
    held(topic, partitions, problem) {
      const held = holds.get(topic) ?? { partitions: new Set<number>(), attempts: 0, problem };
      holds.set(topic, held);
      for (const p of partitions) held.partitions.add(p);
      held.attempts++;
      held.problem = problem;
      return held.attempts;
    },
    decoded(topic, partitions) {
      const held = holds.get(topic);
      if (!held) return null;
      for (const p of partitions) held.partitions.delete(p);
      if (held.partitions.size > 0) return null;
      holds.delete(topic);
      return held.attempts + 1;
    },
    pushFailing(topic, problem) {
      pushes.set(topic, problem);
    },
    pushed(topic) {
      pushes.delete(topic);
    },
    assigned(assignment) {
      for (const [topic, held] of holds) {
        const mine = new Set(assignment[topic] ?? []);
        for (const p of held.partitions) if (!mine.has(p)) held.partitions.delete(p);
        if (held.partitions.size === 0) holds.delete(topic);
      }
      for (const topic of retried.keys()) if ((assignment[topic] ?? []).length === 0) retried.delete(topic);
    },
    problems() {
      return [...retried.values(), ...[...holds.values()].map((h) => h.problem), ...pushes.values()];
    },
  };
}
