import { createServer } from 'node:http';
import { Deduper, SignatureError, verifySignature } from 'belfry-receiver';

const secrets = process.env.BELFRY_SIGNING_SECRETS.split(','); // new key first, old too while rotating
const dedupe = new Deduper({ ttlS: 2 * 3600 }); // at least the jobs' retry.max_age

async function doTheWork(body) {
  if (body.toString() === 'fail') throw new Error('work failed'); // your job goes here
}

createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c); // the raw bytes: verify before parsing JSON
  const body = Buffer.concat(chunks);
  const answer = (status) => res.writeHead(status).end();
  try {
    verifySignature(req.headers['belfry-signature'], body, secrets);
  } catch (e) {
    if (e instanceof SignatureError) return answer(401); // permanent: belfry dead-letters
    throw e;
  }
  const key = req.headers['idempotency-key'];
  if (!dedupe.firstTime(key)) {
    // Done before: 2xx so belfry stops. Still running: 503, belfry retries later.
    return answer(dedupe.isDone(key) ? 200 : 503);
  }
  try {
    await doTheWork(body);
  } catch {
    dedupe.forget(key); // not done: belfry's retry must be processed
    return answer(500); // 5xx, 408 and 429 are retried with backoff
  }
  dedupe.markDone(key); // only now is the key done
  answer(200);
}).listen(Number(process.env.PORT ?? 8080), function () {
  console.log(`listening on ${this.address().port}`);
});
