"""Receive belfry webhook deliveries: verify `Belfry-Signature`, deduplicate `Idempotency-Key`.

Standard library only. See README.md for a complete receiver.
"""

from .dedupe import Deduper
from .signature import DEFAULT_TOLERANCE_S, MAX_HEADER_LENGTH, SignatureError, verify_signature

__all__ = ["Deduper", "SignatureError", "verify_signature", "DEFAULT_TOLERANCE_S", "MAX_HEADER_LENGTH"]
__version__ = "0.1.0"
