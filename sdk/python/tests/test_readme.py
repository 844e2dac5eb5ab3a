"""The receiver in README.md runs as printed."""

import hashlib
import hmac
import re
import time
from pathlib import Path


def test_readme_receiver(monkeypatch):
    text = (Path(__file__).parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    done = []

    def do_the_work(body):
        if body == b"fail":
            raise RuntimeError("work failed")
        done.append(body)

    monkeypatch.setenv("BELFRY_SIGNING_SECRETS", "new-key-0123456789,old-key-0123456789")
    ns = {"do_the_work": do_the_work}
    exec(compile(code, "README.md", "exec"), ns)
    handle = ns["handle"]

    def headers(body, key, secret="old-key-0123456789"):
        t = int(time.time())
        mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return {"Belfry-Signature": f"t={t},v1={mac}", "Idempotency-Key": key}

    assert handle(headers(b"a", "j:1"), b"a") == 200
    assert handle(headers(b"a", "j:1"), b"a") == 200  # duplicate, not worked twice
    assert done == [b"a"]
    assert handle(headers(b"fail", "j:2"), b"fail") == 500
    assert handle(headers(b"b", "j:2"), b"b") == 200  # the retry is processed
    assert done == [b"a", b"b"]
    assert handle(headers(b"c", "j:3", secret="wrong-key-000000"), b"c") == 401
    ns["dedupe"].first_time("j:4")  # another thread is working on j:4
    assert handle(headers(b"d", "j:4"), b"d") == 503
