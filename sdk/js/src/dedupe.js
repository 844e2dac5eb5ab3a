// An in-memory, bounded, expiring record of `Idempotency-Key`s.
const CLAIMED = 'claimed';
const DONE = 'done';

/**
 * Tracks keys as claimed (work in progress) or done, each with an expiry. `firstTime(key)`
 * claims a key: true for exactly one caller until the key is forgotten or expires. Call
 * `markDone(key)` once the work succeeded, or `forget(key)` when it failed, so belfry's retry
 * is processed instead of being taken for a duplicate. Every method is synchronous, so it is
 * atomic on Node's event loop (use one Deduper per process; share nothing across workers).
 *
 * ttlS: how long a done key is remembered (at least the jobs' retry.max_age, default 1 h);
 * claimTtlS: how long a claim lasts without markDone/forget; maxKeys: the bound, oldest
 * entries dropped first; clock: seconds, injectable for tests.
 */
export class Deduper {
  constructor({ maxKeys = 100_000, ttlS = 86_400, claimTtlS = 600, clock = () => performance.now() / 1000 } = {}) {
    if (!(maxKeys >= 1 && ttlS > 0 && claimTtlS > 0)) throw new RangeError('maxKeys, ttlS and claimTtlS must be positive');
    Object.assign(this, { maxKeys, ttlS, claimTtlS });
    this.clock = clock;
    this.entries = new Map(); // key -> { state, expiresAt }, oldest first
  }

  #state(key, now) {
    const e = this.entries.get(key);
    if (e === undefined) return null;
    if (e.expiresAt <= now) {
      this.entries.delete(key);
      return null;
    }
    return e.state;
  }

  #put(key, state, expiresAt) {
    this.entries.delete(key); // re-inserted at the newest end
    this.entries.set(key, { state, expiresAt });
    while (this.entries.size > this.maxKeys) this.entries.delete(this.entries.keys().next().value);
  }

  #sweep(now) {
    for (const [key, e] of this.entries) {
      if (e.expiresAt > now) break;
      this.entries.delete(key);
    }
  }

  /** Claims `key`: true when it was neither claimed nor done (the caller does the work). */
  firstTime(key) {
    const now = this.clock();
    this.#sweep(now);
    if (this.#state(key, now) !== null) return false;
    this.#put(key, CLAIMED, now + this.claimTtlS);
    return true;
  }

  /** Records that the work for `key` succeeded: later deliveries are duplicates. */
  markDone(key) {
    this.#put(key, DONE, this.clock() + this.ttlS);
  }

  /** Drops `key` (the work failed): the next delivery with it is processed. */
  forget(key) {
    this.entries.delete(key);
  }

  /** True when `key` is claimed or done; records nothing. */
  seenBefore(key) {
    return this.#state(key, this.clock()) !== null;
  }

  /** True when the work for `key` has been marked done. */
  isDone(key) {
    return this.#state(key, this.clock()) === DONE;
  }

  get size() {
    return this.entries.size;
  }
}
