"""Receiving belfry deliveries: check ``Belfry-Signature``, run each fire's work once.

belfry signs a delivery, when signing keys are set, with
``Belfry-Signature: t=<unix seconds>,v1=<hex hmac-sha256(key, t + "." + body)>`` (one ``v1``
per key during a rotation), and sends every attempt and every repeat of a fire with the same
``Idempotency-Key``. Standard library only.
"""

from .dedupe import Deduper
from .signature import MAX_HEADER_BYTES, SignatureError, verify_signature

__all__ = ["Deduper", "MAX_HEADER_BYTES", "SignatureError", "verify_signature"]
