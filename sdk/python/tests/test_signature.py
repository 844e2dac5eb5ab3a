import base64
import json
import pathlib

import pytest

from belfry_receiver import SignatureError, verify_signature

VECTORS = json.loads((pathlib.Path(__file__).parents[2] / "testdata" / "signatures.json").read_text())["cases"]


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_shared_vectors(case):
    body = base64.b64decode(case["body_b64"])
    args = (case["header"], body, case["secrets"], case["tolerance_s"], case["now"])
    if case["valid"]:
        verify_signature(*args)
    else:
        with pytest.raises(SignatureError) as refused:
            verify_signature(*args)
        assert refused.value.reason == case["reason"]


def test_a_missing_header_is_malformed():
    with pytest.raises(SignatureError) as refused:
        verify_signature(None, b"", "secret")
    assert refused.value.reason == "malformed"


def test_one_secret_may_be_given_as_str_or_bytes():
    header = "t=1700000000,v1=47b1df0ab12338b2685470b0d2b37033add7c3b2bc8172f313e77413f1bb78c8"
    verify_signature(header, b"hello", "secret", now=1700000000)
    verify_signature(header, b"hello", b"secret", now=1700000000)
