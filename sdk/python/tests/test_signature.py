import base64
import hashlib
import hmac
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from belfry_receiver import SignatureError, verify_signature

DATA = json.loads((Path(__file__).parents[2] / "testdata" / "signatures.json").read_text())
VECTORS = DATA["vectors"]


def body_of(v):
    return base64.b64decode(v["body_base64"]) if "body_base64" in v else v["body"].encode()


def test_vector_names_are_unique_and_reasons_consistent():
    assert len({v["name"] for v in VECTORS}) == len(VECTORS)
    for v in VECTORS:
        assert ("body" in v) != ("body_base64" in v), v["name"]
        assert (v["reason"] is None) == v["valid"], v["name"]


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_shared_vector(v):
    args = (v["header"], body_of(v), v["secrets"])
    if v["valid"]:
        assert verify_signature(*args, tolerance_s=v["tolerance"], now=v["now"]) is None
    else:
        with pytest.raises(SignatureError) as e:
            verify_signature(*args, tolerance_s=v["tolerance"], now=v["now"])
        assert e.value.reason == v["reason"]


def test_reference_matches_python_hmac():
    r = DATA["reference"]
    mac = hmac.new(r["secret"].encode(), f'{r["t"]}.{r["body"]}'.encode(), hashlib.sha256).hexdigest()
    assert mac == r["v1"]
    verify_signature(f't={r["t"]},v1={r["v1"]}', r["body"].encode(), r["secret"], now=r["t"])


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_reference_matches_openssl():
    r = DATA["reference"]
    out = subprocess.run(["openssl", "dgst", "-sha256", "-hmac", r["secret"]],
                         input=f'{r["t"]}.{r["body"]}'.encode(), capture_output=True, check=True).stdout
    assert out.decode().strip().split()[-1] == r["v1"]


def test_secret_forms_and_bytes_header():
    r = DATA["reference"]
    header = f't={r["t"]},v1={r["v1"]}'
    for secrets in ("secret", b"secret", ["other", "secret"], (b"x", b"secret")):
        verify_signature(header, b"hello", secrets, now=r["t"])
    verify_signature(header.encode(), b"hello", "secret", now=r["t"])
    verify_signature(header, bytearray(b"hello"), "secret", now=r["t"] + 0.5)


def test_absent_header_and_bad_secrets():
    with pytest.raises(SignatureError) as e:
        verify_signature(None, b"", "secret")
    assert e.value.reason == "missing_header"
    for bad in ([], "", [b""]):
        with pytest.raises(ValueError):
            verify_signature("t=1,v1=00", b"", bad)


def test_default_clock_is_used():
    import time

    t = int(time.time())
    mac = hmac.new(b"k" * 16, f"{t}.x".encode(), hashlib.sha256).hexdigest()
    verify_signature(f"t={t},v1={mac}", b"x", "k" * 16)
    with pytest.raises(SignatureError) as e:
        verify_signature(f"t={t - 3600},v1={mac}", b"x", "k" * 16)
    assert e.value.reason == "timestamp_too_old"
