"""Verification of the `Belfry-Signature` header (rules: sdk/testdata/README.md)."""

import hashlib
import hmac
import re
import time
from typing import Optional, Sequence, Union

MAX_HEADER_LENGTH = 4096
MAX_TIMESTAMP_DIGITS = 15
DEFAULT_TOLERANCE_S = 300

_DIGITS = re.compile(r"[0-9]{1,%d}" % MAX_TIMESTAMP_DIGITS)
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")

Secret = Union[str, bytes]


class SignatureError(Exception):
    """The delivery is not verified. `reason` is a stable code, e.g. `no_match`."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def _secrets(secrets) -> list:
    if isinstance(secrets, (str, bytes)):
        secrets = [secrets]
    keys = [s.encode() if isinstance(s, str) else bytes(s) for s in secrets]
    if not keys or any(not k for k in keys):
        raise ValueError("at least one non-empty signing secret is needed")
    return keys


def _parse(header: str):
    t, v1 = None, []
    for entry in header.split(","):
        entry = entry.strip(" \t")
        key, eq, value = entry.partition("=")
        if not eq or not key:
            raise SignatureError("malformed", f"entry {entry[:40]!r} is not key=value")
        if key == "t":
            if t is not None:
                raise SignatureError("malformed", "more than one t")
            if not _DIGITS.fullmatch(value):
                raise SignatureError("bad_timestamp", f"t must be 1 to {MAX_TIMESTAMP_DIGITS} digits")
            t = int(value)
        elif key == "v1":
            v1.append(value)
    if t is None:
        raise SignatureError("missing_timestamp", "no t= entry")
    if not v1:
        raise SignatureError("missing_signature", "no v1= entry")
    return t, v1


def verify_signature(
    header: Union[str, bytes, None],
    body: bytes,
    secrets: Union[Secret, Sequence[Secret]],
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: Optional[float] = None,
) -> None:
    """Checks a delivery's `Belfry-Signature` against the raw request `body`.

    Returns None when `t` is within `tolerance_s` of `now` (default: the system clock) in
    either direction and any `v1` matches the HMAC under any of `secrets`; raises
    SignatureError with a `reason` code otherwise. Raises ValueError for no or empty secrets.
    """
    keys = _secrets(secrets)
    if isinstance(header, (bytes, bytearray)):
        header = bytes(header).decode("latin-1")
    header = header or ""
    if len(header) > MAX_HEADER_LENGTH:
        raise SignatureError("header_too_long", f"longer than {MAX_HEADER_LENGTH} characters")
    if not header.strip(" \t"):
        raise SignatureError("missing_header", "no Belfry-Signature header")
    t, candidates = _parse(header)
    now = time.time() if now is None else now
    if now - t > tolerance_s:
        raise SignatureError("timestamp_too_old", f"t is more than {tolerance_s} s in the past")
    if t - now > tolerance_s:
        raise SignatureError("timestamp_in_future", f"t is more than {tolerance_s} s in the future")
    signed = str(t).encode() + b"." + bytes(body)
    expected = [hmac.new(k, signed, hashlib.sha256).hexdigest().encode() for k in keys]
    matched = False
    for candidate in candidates:
        if not _HEX64.fullmatch(candidate):
            continue
        given = candidate.lower().encode()
        for e in expected:
            # No early exit: every pair is compared, each in constant time.
            matched |= hmac.compare_digest(e, given)
    if not matched:
        raise SignatureError("no_match", "no v1 matches any of the secrets")
