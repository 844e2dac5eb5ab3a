"""``Belfry-Signature`` verification."""

import hashlib
import hmac
import time
from typing import Optional, Sequence, Union

#: Longest header read: a timestamp and a few dozen ``v1`` entries.
MAX_HEADER_BYTES = 4096

Secret = Union[str, bytes]


class SignatureError(ValueError):
    """A refused signature; ``reason`` is ``malformed``, ``outside_tolerance`` or ``no_match``."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _as_bytes(secret: Secret) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def verify_signature(
    header: Optional[str],
    body: bytes,
    secrets: Union[Secret, Sequence[Secret]],
    tolerance_s: int = 300,
    now: Optional[float] = None,
) -> None:
    """Raises :class:`SignatureError` unless ``header`` signs ``body`` (the raw bytes received)
    with one of ``secrets`` at a ``t`` within ``tolerance_s`` of ``now`` (default: the clock)."""
    if header is None:
        raise SignatureError("malformed", "no Belfry-Signature header")
    if len(header) > MAX_HEADER_BYTES:
        raise SignatureError("malformed", "Belfry-Signature too long")
    t = None
    macs = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed", "an entry without '='")
        if name == "t":
            if t is not None:
                raise SignatureError("malformed", "more than one t")
            if not value.isdigit() or not value.isascii() or len(value) > 18:
                raise SignatureError("malformed", "t is not a time")
            t = int(value)
        elif name == "v1":
            try:
                macs.append(bytes.fromhex(value))
            except ValueError:
                raise SignatureError("malformed", "v1 is not hex") from None
    if t is None:
        raise SignatureError("malformed", "no t")
    if not macs:
        raise SignatureError("malformed", "no v1")
    now = time.time() if now is None else now
    if abs(now - t) > tolerance_s:
        raise SignatureError("outside_tolerance", f"t={t} is {abs(now - t):.0f} s from now")
    if isinstance(secrets, (str, bytes)):
        secrets = [secrets]
    signed = str(t).encode("ascii") + b"." + body
    for secret in secrets:
        expected = hmac.new(_as_bytes(secret), signed, hashlib.sha256).digest()
        for mac in macs:
            if hmac.compare_digest(expected, mac):
                return
    raise SignatureError("no_match", "no v1 matches the body under the given secrets")
