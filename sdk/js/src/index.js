// Receive belfry webhook deliveries: verify `Belfry-Signature`, deduplicate `Idempotency-Key`.
export { verifySignature, SignatureError, DEFAULT_TOLERANCE_S, MAX_HEADER_LENGTH } from './signature.js';
export { Deduper } from './dedupe.js';
