// Verification of the `Belfry-Signature` header (rules: sdk/testdata/README.md).
import { createHmac, timingSafeEqual } from 'node:crypto';

export const MAX_HEADER_LENGTH = 4096;
export const MAX_TIMESTAMP_DIGITS = 15;
export const DEFAULT_TOLERANCE_S = 300;

const DIGITS = new RegExp(`^[0-9]{1,${MAX_TIMESTAMP_DIGITS}}$`);
const HEX64 = /^[0-9a-fA-F]{64}$/;

/** The delivery is not verified; `reason` is a stable code such as `no_match`. */
export class SignatureError extends Error {
  constructor(reason, message) {
    super(`${reason}: ${message}`);
    this.name = 'SignatureError';
    this.reason = reason;
  }
}

const trim = (s) => s.replace(/^[ \t]+|[ \t]+$/g, '');

function toKeys(secrets) {
  const list = typeof secrets === 'string' || secrets instanceof Uint8Array ? [secrets] : [...(secrets ?? [])];
  const keys = list.map((s) => (typeof s === 'string' ? Buffer.from(s, 'utf8') : Buffer.from(s)));
  if (keys.length === 0 || keys.some((k) => k.length === 0)) {
    throw new TypeError('at least one non-empty signing secret is needed');
  }
  return keys;
}

function parse(header) {
  let t = null;
  const v1 = [];
  for (const raw of header.split(',')) {
    const entry = trim(raw);
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new SignatureError('malformed', `entry ${JSON.stringify(entry.slice(0, 40))} is not key=value`);
    const key = entry.slice(0, eq);
    const value = entry.slice(eq + 1);
    if (key === 't') {
      if (t !== null) throw new SignatureError('malformed', 'more than one t');
      if (!DIGITS.test(value)) throw new SignatureError('bad_timestamp', `t must be 1 to ${MAX_TIMESTAMP_DIGITS} digits`);
      t = Number(value); // at most 15 digits: exact in a double
    } else if (key === 'v1') {
      v1.push(value);
    }
  }
  if (t === null) throw new SignatureError('missing_timestamp', 'no t= entry');
  if (v1.length === 0) throw new SignatureError('missing_signature', 'no v1= entry');
  return { t, v1 };
}

/**
 * Checks a delivery's `Belfry-Signature` against the raw request body (Buffer/Uint8Array or
 * string, taken as UTF-8). Returns nothing when `t` is within `toleranceS` of `now` (unix
 * seconds, default the system clock) either way and any `v1` matches the HMAC under any of
 * `secrets` (one or an array of strings/Buffers); throws SignatureError otherwise, and a
 * TypeError when no non-empty secret is given.
 */
export function verifySignature(header, body, secrets, { toleranceS = DEFAULT_TOLERANCE_S, now } = {}) {
  const keys = toKeys(secrets);
  const h = header == null ? '' : String(header);
  if (h.length > MAX_HEADER_LENGTH) throw new SignatureError('header_too_long', `longer than ${MAX_HEADER_LENGTH} characters`);
  if (trim(h) === '') throw new SignatureError('missing_header', 'no Belfry-Signature header');
  const { t, v1 } = parse(h);
  const clock = now ?? Date.now() / 1000;
  if (clock - t > toleranceS) throw new SignatureError('timestamp_too_old', `t is more than ${toleranceS} s in the past`);
  if (t - clock > toleranceS) throw new SignatureError('timestamp_in_future', `t is more than ${toleranceS} s in the future`);
  const raw = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body ?? []);
  const signed = Buffer.concat([Buffer.from(`${t}.`, 'ascii'), raw]);
  const expected = keys.map((k) => Buffer.from(createHmac('sha256', k).update(signed).digest('hex'), 'ascii'));
  let matched = false;
  for (const candidate of v1) {
    if (!HEX64.test(candidate)) continue;
    const given = Buffer.from(candidate.toLowerCase(), 'ascii');
    // No early exit: every pair is compared, each in constant time (equal lengths: 64).
    for (const e of expected) matched = timingSafeEqual(e, given) || matched;
  }
  if (!matched) throw new SignatureError('no_match', 'no v1 matches any of the secrets');
}
