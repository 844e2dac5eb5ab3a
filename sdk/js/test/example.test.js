// examples/server.js runs, and README.md shows it verbatim.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';

const file = new URL('../examples/server.js', import.meta.url);

test('README shows examples/server.js', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  assert.ok(readme.includes(readFileSync(file, 'utf8')), 'README.md is out of date with examples/server.js');
});

test('the example server verifies and deduplicates', async (t) => {
  const secret = 'old-key-0123456789';
  const child = spawn(process.execPath, [file.pathname], {
    env: { ...process.env, PORT: '0', BELFRY_SIGNING_SECRETS: `new-key-0123456789,${secret}` },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => child.kill());
  const [line] = await once(child.stdout, 'data');
  const port = /listening on (\d+)/.exec(line.toString())[1];
  const post = (body, key, key2 = secret) => {
    const ts = Math.floor(Date.now() / 1000);
    const v1 = createHmac('sha256', key2).update(`${ts}.${body}`).digest('hex');
    return fetch(`http://127.0.0.1:${port}/hook`, {
      method: 'POST',
      body,
      headers: { 'Belfry-Signature': `t=${ts},v1=${v1}`, 'Idempotency-Key': key },
    }).then((r) => r.status);
  };
  assert.equal(await post('a', 'j:1'), 200);
  assert.equal(await post('a', 'j:1'), 200);
  assert.equal(await post('fail', 'j:2'), 500);
  assert.equal(await post('b', 'j:2'), 200);
  assert.equal(await post('c', 'j:3', 'wrong-key-000000'), 401);
});
