// Receiving belfry deliveries: check `Belfry-Signature`, run each fire's work once.
// `Belfry-Signature: t=<unix seconds>,v1=<hex hmac-sha256(key, t + "." + body)>`, one v1 per
// key during a rotation; every attempt and repeat of a fire carries the same Idempotency-Key.
// Node's standard library only.
import { createHmac, timingSafeEqual } from "node:crypto";

/** Longest header read: a timestamp and a few dozen v1 entries. */
export const MAX_HEADER_BYTES = 4096;

/** A refused signature; `reason` is "malformed", "outside_tolerance" or "no_match". */
export class SignatureError extends Error {
  constructor(reason, message) {
    super(message);
    this.name = "SignatureError";
    this.reason = reason;
  }
}

const malformed = (why) => new SignatureError("malformed", `malformed Belfry-Signature: ${why}`);

/**
 * Throws a SignatureError unless `header` signs `body` (a Buffer or string: the raw bytes
 * received) with one of `secrets` at a t within `toleranceS` of `nowS` (Unix seconds).
 */
export function verifySignature(header, body, secrets, { toleranceS = 300, nowS = Date.now() / 1000 } = {}) {
  if (typeof header !== "string") throw malformed("no header");
  if (header.length > MAX_HEADER_BYTES) throw malformed("too long");
  let t = null;
  const macs = [];
  for (const part of header.split(",")) {
    const eq = part.indexOf("=");
    if (eq < 0) throw malformed("an entry without '='");
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (name === "t") {
      if (t !== null) throw malformed("more than one t");
      if (!/^[0-9]{1,18}$/.test(value)) throw malformed("t is not a time");
      t = Number(value);
    } else if (name === "v1") {
      if (!/^([0-9a-fA-F]{2})*$/.test(value)) throw malformed("v1 is not hex");
      macs.push(Buffer.from(value, "hex"));
    }
  }
  if (t === null) throw malformed("no t");
  if (macs.length === 0) throw malformed("no v1");
  const off = Math.abs(nowS - t);
  if (off > toleranceS) {
    throw new SignatureError("outside_tolerance", `Belfry-Signature t=${t} is ${Math.round(off)} s from now`);
  }
  const signed = Buffer.concat([Buffer.from(`${t}.`), Buffer.isBuffer(body) ? body : Buffer.from(body)]);
  for (const secret of Array.isArray(secrets) ? secrets : [secrets]) {
    const expected = createHmac("sha256", secret).update(signed).digest();
    for (const mac of macs) {
      if (mac.length === expected.length && timingSafeEqual(mac, expected)) return;
    }
  }
  throw new SignatureError("no_match", "no Belfry-Signature v1 matches the body under the given secrets");
}

/**
 * The keys seen lately, bounded in count and age. Call firstTime(key) before the work; if
 * the work fails, forget(key) so belfry's retry runs it; answer 2xx to a repeat. One process
 * only: several need a shared store (a table with the key as primary key).
 */
export class Deduper {
  constructor({ capacity = 100_000, ttlMs = 7 * 24 * 3600 * 1000, clock = () => Date.now() } = {}) {
    this.seen = new Map(); // insertion order = age order
    this.capacity = Math.max(1, capacity);
    this.ttlMs = ttlMs;
    this.clock = clock;
  }

  /** Records `key`; true only the first time it is seen (within the bounds). */
  firstTime(key) {
    const now = this.clock();
    for (const [oldest, at] of this.seen) {
      if (now - at < this.ttlMs) break;
      this.seen.delete(oldest);
    }
    if (this.seen.has(key)) return false;
    while (this.seen.size >= this.capacity) this.seen.delete(this.seen.keys().next().value);
    this.seen.set(key, now);
    return true;
  }

  /** Forgets `key`: its work failed, and belfry's retry should run it. */
  forget(key) {
    this.seen.delete(key);
  }
}
