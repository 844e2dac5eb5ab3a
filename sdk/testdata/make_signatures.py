#!/usr/bin/env python3
"""Writes signatures.json, the shared Belfry-Signature test vectors (schema in README.md).

    python3 sdk/testdata/make_signatures.py            # rewrite signatures.json
    python3 sdk/testdata/make_signatures.py --check    # exit 1 if the file is stale

Standard library only. The HMACs are computed here with hmac/hashlib; the reference vector is
the one `printf '1700000000.hello' | openssl dgst -sha256 -hmac secret` prints.
"""

import base64
import hashlib
import hmac
import json
import sys
from pathlib import Path

OUT = Path(__file__).with_name("signatures.json")
NOW = 1_700_000_000
TOL = 300
OLD = "whsec_old_key_0123456789abcdef"
NEW = "whsec_new_key_fedcba9876543210"
BODY = '{"job":"nightly-report","scheduled_at":"2023-11-14T22:13:20Z"}'
BINARY = bytes(range(256)) + b"\x00\xff\r\n"


def sign(secret: str, t: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()


def vec(name, header, *, secrets=(NEW,), body=BODY, valid=False, reason=None, now=NOW, tol=TOL, note=""):
    v = {"name": name, "note": note, "secrets": list(secrets), "header": header}
    if isinstance(body, bytes):
        v["body_base64"] = base64.b64encode(body).decode()
    else:
        v["body"] = body
    v.update({"now": now, "tolerance": tol, "valid": valid, "reason": None if valid else reason})
    return v


def vectors():
    b = BODY.encode()
    good = sign(NEW, NOW, b)
    old_sig = sign(OLD, NOW, b)
    yield vec("valid_single_key", f"t={NOW},v1={good}", valid=True)
    yield vec("valid_rotation_second_matches", f"t={NOW},v1={sign('some-other-key-0001', NOW, b)},v1={good}",
              valid=True, note="two v1 entries (key rotation); only the second verifies")
    yield vec("valid_receiver_holds_two_secrets", f"t={NOW},v1={old_sig}", secrets=[NEW, OLD], valid=True,
              note="the receiver knows the new and the old key; the delivery is signed with the old one")
    yield vec("valid_binary_body", f"t={NOW},v1={sign(NEW, NOW, BINARY)}", body=BINARY, valid=True,
              note="a body that is not UTF-8: the HMAC covers the raw bytes")
    yield vec("valid_empty_body", f"t={NOW},v1={sign(NEW, NOW, b'')}", body="", valid=True)
    yield vec("valid_uppercase_hex", f"t={NOW},v1={good.upper()}", valid=True,
              note="hex digits are compared case-insensitively")
    yield vec("valid_spaces_and_unknown_entries", f" t={NOW} , v0=deadbeef , v1={good} ", valid=True,
              note="whitespace around entries is ignored, unknown keys (v0, v2, ...) are skipped")
    yield vec("valid_at_tolerance_past", f"t={NOW - TOL},v1={sign(NEW, NOW - TOL, b)}", valid=True,
              note="exactly tolerance seconds old is still accepted")
    yield vec("valid_at_tolerance_future", f"t={NOW + TOL},v1={sign(NEW, NOW + TOL, b)}", valid=True)
    yield vec("wrong_secret", f"t={NOW},v1={sign('not-the-right-key', NOW, b)}", reason="no_match")
    yield vec("tampered_body", f"t={NOW},v1={good}", body=BODY.replace("nightly", "hourly"), reason="no_match")
    yield vec("tampered_timestamp", f"t={NOW + 1},v1={good}", reason="no_match",
              note="t is covered by the HMAC")
    yield vec("v1_not_hex", f"t={NOW},v1=zz{good[2:]}", reason="no_match",
              note="a v1 that is not 64 hex digits never matches")
    yield vec("v1_truncated", f"t={NOW},v1={good[:32]}", reason="no_match")
    yield vec("too_old", f"t={NOW - TOL - 1},v1={sign(NEW, NOW - TOL - 1, b)}", reason="timestamp_too_old",
              note="correctly signed, one second past the tolerance")
    yield vec("too_far_in_future", f"t={NOW + TOL + 1},v1={sign(NEW, NOW + TOL + 1, b)}",
              reason="timestamp_in_future")
    yield vec("missing_header", "", reason="missing_header", note="an empty (or absent) header")
    yield vec("blank_header", "   ", reason="missing_header")
    yield vec("missing_t", f"v1={good}", reason="missing_timestamp")
    yield vec("missing_v1", f"t={NOW}", reason="missing_signature")
    yield vec("only_unknown_versions", f"t={NOW},v0={good}", reason="missing_signature")
    yield vec("non_numeric_t", f"t=abc,v1={good}", reason="bad_timestamp")
    yield vec("negative_t", f"t=-{NOW},v1={good}", reason="bad_timestamp")
    yield vec("fractional_t", f"t={NOW}.5,v1={good}", reason="bad_timestamp")
    yield vec("empty_t", f"t=,v1={good}", reason="bad_timestamp")
    yield vec("huge_t", f"t=99999999999999999999999999999999,v1={good}", reason="bad_timestamp",
              note="more than 15 digits: refused before any arithmetic, so nothing overflows")
    yield vec("duplicate_t", f"t={NOW},t={NOW},v1={good}", reason="malformed")
    yield vec("garbage", "garbage", reason="malformed")
    yield vec("entry_without_key", f"t={NOW},=abc,v1={good}", reason="malformed")
    yield vec("empty_entry", f"t={NOW},,v1={good}", reason="malformed")
    yield vec("header_too_long", f"t={NOW}," + ",".join([f"v1={good}"] * 70), reason="header_too_long",
              note="longer than 4096 characters")


def render() -> str:
    ref_sig = sign("secret", NOW, b"hello")
    doc = {
        "schema": 1,
        "description": "Belfry-Signature verification vectors; see README.md in this directory",
        "max_header_length": 4096,
        "max_timestamp_digits": 15,
        "reference": {"secret": "secret", "t": NOW, "body": "hello", "v1": ref_sig,
                      "openssl": "printf '1700000000.hello' | openssl dgst -sha256 -hmac secret"},
        "vectors": list(vectors()),
    }
    return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv[1:]:
        if OUT.read_text() != text:
            sys.exit(f"{OUT} is stale: run python3 {sys.argv[0]}")
    else:
        OUT.write_text(text)
