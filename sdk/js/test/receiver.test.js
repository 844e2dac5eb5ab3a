import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Deduper, SignatureError, verifySignature } from "../index.js";

const vectors = JSON.parse(
  readFileSync(fileURLToPath(new URL("../../testdata/signatures.json", import.meta.url)), "utf8"),
).cases;

for (const c of vectors) {
  test(`shared vector: ${c.name}`, () => {
    const body = Buffer.from(c.body_b64, "base64");
    const verify = () => verifySignature(c.header, body, c.secrets, { toleranceS: c.tolerance_s, nowS: c.now });
    if (c.valid) {
      verify();
    } else {
      assert.throws(verify, (e) => e instanceof SignatureError && e.reason === c.reason);
    }
  });
}

test("a missing header is malformed", () => {
  assert.throws(() => verifySignature(undefined, "", "secret"), (e) => e.reason === "malformed");
});

test("a key counts once until it expires or is forgotten", () => {
  let now = 0;
  const d = new Deduper({ capacity: 10, ttlMs: 60_000, clock: () => now });
  assert.ok(d.firstTime("7:1"));
  now = 59_000;
  assert.ok(!d.firstTime("7:1"));
  now = 121_000;
  assert.ok(d.firstTime("7:1"), "expired after the ttl");
  d.forget("7:1");
  assert.ok(d.firstTime("7:1"), "forgotten after its work failed");
});

test("the oldest keys make room past the capacity", () => {
  const d = new Deduper({ capacity: 2, clock: () => 0 });
  assert.ok(d.firstTime("a") && d.firstTime("b") && d.firstTime("c"));
  assert.ok(d.firstTime("a"), "a was evicted for c");
  assert.ok(!d.firstTime("c"));
});
