import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';

import { Deduper } from '../src/index.js';

const fakeClock = () => {
  const c = () => c.now;
  c.now = 1000;
  return c;
};

test('claim, done and forget', () => {
  const d = new Deduper({ clock: fakeClock() });
  assert.ok(!d.seenBefore('k'));
  assert.ok(d.firstTime('k'));
  assert.ok(d.seenBefore('k') && !d.isDone('k'));
  assert.ok(!d.firstTime('k'));
  d.markDone('k');
  assert.ok(d.isDone('k') && !d.firstTime('k'));
  d.forget('k');
  assert.ok(!d.seenBefore('k') && d.firstTime('k'));
});

test('TTL expiry with an injected clock', () => {
  const clock = fakeClock();
  const d = new Deduper({ ttlS: 60, claimTtlS: 10, clock });
  assert.ok(d.firstTime('a'));
  clock.now += 9.9;
  assert.ok(!d.firstTime('a'));
  clock.now += 0.2;
  assert.ok(d.firstTime('a'));
  d.markDone('a');
  clock.now += 59.9;
  assert.ok(d.isDone('a'));
  clock.now += 0.2;
  assert.ok(!d.seenBefore('a') && d.firstTime('a'));
});

test('expired entries are swept', () => {
  const clock = fakeClock();
  const d = new Deduper({ ttlS: 5, clock });
  for (let i = 0; i < 100; i++) {
    d.firstTime(`k${i}`);
    d.markDone(`k${i}`);
  }
  clock.now += 6;
  d.firstTime('new');
  assert.equal(d.size, 1);
});

test('the bound evicts the oldest first', () => {
  const d = new Deduper({ maxKeys: 3, clock: fakeClock() });
  for (const k of 'abcd') assert.ok(d.firstTime(k));
  assert.equal(d.size, 3);
  assert.ok(!d.seenBefore('a'));
  assert.ok([...'bcd'].every((k) => d.seenBefore(k)));
  d.markDone('b');
  d.firstTime('e');
  assert.ok(!d.seenBefore('c') && d.seenBefore('b'));
});

test('bad settings are refused', () => {
  for (const o of [{ maxKeys: 0 }, { ttlS: 0 }, { claimTtlS: -1 }, { maxKeys: NaN }]) {
    assert.throws(() => new Deduper(o), RangeError);
  }
});

test('concurrent async handlers: one winner per key, failures retried', async () => {
  const d = new Deduper({ maxKeys: 10_000 });
  const worked = new Map();
  const handler = async (key, attempt) => {
    if (!d.firstTime(key)) return d.isDone(key) ? 200 : 503;
    await tick(); // the work yields to other deliveries
    if (attempt === 0 && key.endsWith('7')) {
      d.forget(key);
      return 500;
    }
    worked.set(key, (worked.get(key) ?? 0) + 1);
    d.markDone(key);
    return 200;
  };
  const keys = Array.from({ length: 100 }, (_, i) => `job:${i}`);
  const first = await Promise.all(keys.flatMap((k) => [handler(k, 0), handler(k, 0), handler(k, 0)]));
  assert.equal(first.filter((s) => s === 503).length, 200); // the duplicates while in flight
  await Promise.all(keys.map((k) => handler(k, 1))); // belfry's retries
  assert.deepEqual([...worked.values()].filter((n) => n !== 1), []);
  assert.equal(worked.size, 100);
});
