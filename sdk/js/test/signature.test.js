import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { verifySignature, SignatureError } from '../src/index.js';

const data = JSON.parse(readFileSync(new URL('../../testdata/signatures.json', import.meta.url), 'utf8'));
const bodyOf = (v) => ('body_base64' in v ? Buffer.from(v.body_base64, 'base64') : Buffer.from(v.body, 'utf8'));

for (const v of data.vectors) {
  test(`vector ${v.name}`, () => {
    const run = () => verifySignature(v.header, bodyOf(v), v.secrets, { toleranceS: v.tolerance, now: v.now });
    if (v.valid) {
      assert.equal(run(), undefined);
    } else {
      assert.throws(run, (e) => e instanceof SignatureError && e.reason === v.reason);
    }
  });
}

test('reference value matches node:crypto', () => {
  const r = data.reference;
  assert.equal(createHmac('sha256', r.secret).update(`${r.t}.${r.body}`).digest('hex'), r.v1);
  verifySignature(`t=${r.t},v1=${r.v1}`, r.body, r.secret, { now: r.t });
});

test('secrets as strings, Buffers and arrays; absent header', () => {
  const r = data.reference;
  const header = `t=${r.t},v1=${r.v1}`;
  for (const s of ['secret', Buffer.from('secret'), ['other', 'secret'], [Buffer.from('x'), 'secret']]) {
    verifySignature(header, Buffer.from('hello'), s, { now: r.t + 0.5 });
  }
  assert.throws(() => verifySignature(undefined, '', 'secret'), (e) => e.reason === 'missing_header');
  for (const bad of [[], '', [''], undefined]) {
    assert.throws(() => verifySignature(header, '', bad), TypeError);
  }
});

test('the system clock is the default', () => {
  const t = Math.floor(Date.now() / 1000);
  const mac = (ts) => createHmac('sha256', 'k'.repeat(16)).update(`${ts}.x`).digest('hex');
  verifySignature(`t=${t},v1=${mac(t)}`, 'x', 'k'.repeat(16));
  assert.throws(() => verifySignature(`t=${t - 3600},v1=${mac(t - 3600)}`, 'x', 'k'.repeat(16)),
    (e) => e.reason === 'timestamp_too_old');
});
