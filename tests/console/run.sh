#!/usr/bin/env bash
# Browser test of the operator console: starts `belfry dev` on free ports with a fresh data
# folder, drives the console in headless Chromium (selenium + pytest), and stops the cluster
# whatever happens.
#
#   tests/console/run.sh                      # uses target/release/belfry
#   BELFRY_BIN=/path/to/belfry tests/console/run.sh
#   BELFRY_CONSOLE_SHOTS=docs/console tests/console/run.sh    # also saves a PNG of each page
#   BELFRY_CONSOLE_DIR=crates/node/console tests/console/run.sh  # serve the console files from
#                                             # the work tree instead of those built into the binary
#
# Installs what is missing (Debian: chromium, chromium-driver, python3-venv; PyPI: the pinned
# tests/console/requirements.txt into tests/console/.venv). Every wait is bounded; the whole
# run ends by itself.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
HERE=tests/console
BELFRY_BIN=${BELFRY_BIN:-target/release/belfry}
VENV=$HERE/.venv
PYTEST_TIMEOUT=${BELFRY_CONSOLE_TEST_TIMEOUT:-240}

log() { printf 'console-test: %s\n' "$*" >&2; }

if [[ ! -x $BELFRY_BIN ]]; then
  log "no belfry binary at $BELFRY_BIN (cargo build-belfry, or set BELFRY_BIN)"
  exit 2
fi

as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else log "need root (or sudo) to run: $*"; exit 2
  fi
}

# Debian packages.
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Python environment, rebuilt when requirements.txt changes.
want=$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)
if [[ ! -x $VENV/bin/python || $(cat "$VENV/.requirements-sha256" 2>/dev/null) != "$want" ]]; then
  log "preparing $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  timeout 600 "$VENV/bin/pip" install --disable-pip-version-check -q --no-input -r "$HERE/requirements.txt"
  echo "$want" >"$VENV/.requirements-sha256"
fi

# Free ports: HTTP base..base+2, gRPC base+100..base+102, the sink.
read -r BASE SINK < <("$VENV/bin/python" - <<'EOF'
import random, socket
def free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
rng = random.SystemRandom()
for _ in range(200):
    base = rng.randrange(20000, 40000)
    sink = base + 50
    if all(free(p) for p in (base, base + 1, base + 2, base + 100, base + 101, base + 102, sink)):
        print(base, sink)
        break
else:
    raise SystemExit("no free ports found")
EOF
)
[[ -n ${SINK:-} ]] || { log "could not pick free ports"; exit 2; }

DATA=$(mktemp -d "${TMPDIR:-/tmp}/belfry-console-test.XXXXXX")
TOKEN=bf_console_$("$VENV/bin/python" -c 'import secrets; print(secrets.token_hex(20))')
DEV_PID=

cleanup() {
  local rc=$?
  if [[ -n $DEV_PID ]] && kill -0 "$DEV_PID" 2>/dev/null; then
    kill -TERM "$DEV_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$DEV_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DEV_PID" 2>/dev/null || true
    wait "$DEV_PID" 2>/dev/null || true
  fi
  if ((rc != 0)) && [[ -f $DATA/dev.log ]]; then
    log "cluster log (last 40 lines):"
    tail -n 40 "$DATA/dev.log" >&2 || true
  fi
  rm -rf "$DATA"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting belfry dev on 127.0.0.1:$BASE-$((BASE + 2)), sink $SINK, data in $DATA"
BELFRY_BOOTSTRAP_TOKEN=$TOKEN "$BELFRY_BIN" dev --data-dir "$DATA/cluster" --base-port "$BASE" --sink-port "$SINK" \
  >"$DATA/dev.log" 2>&1 </dev/null &
DEV_PID=$!

# Ready: a leader, every node answering, and the demo job in place.
BELFRY_URL=http://127.0.0.1:$BASE BELFRY_TOKEN=$TOKEN DEV_PID=$DEV_PID "$VENV/bin/python" - <<'EOF'
import json, os, time, urllib.request
url, token, pid = os.environ["BELFRY_URL"], os.environ["BELFRY_TOKEN"], int(os.environ["DEV_PID"])
def get(path):
    req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=2) as r:
        return json.load(r)
deadline = time.monotonic() + 60
last = None
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        raise SystemExit("belfry dev exited before the cluster was ready")
    try:
        c = get("/v1/cluster")
        if c["leader"] is not None and all(m["reachable"] for m in c["members"]):
            get("/v1/jobs/demo")
            raise SystemExit(0)
    except SystemExit:
        raise
    except Exception as e:  # not up yet
        last = e
    time.sleep(0.2)
raise SystemExit(f"the cluster was not ready within 60 s ({last})")
EOF
log "cluster ready"

start=$(date +%s)
set +e
BELFRY_URL=http://127.0.0.1:$BASE BELFRY_NODES="http://127.0.0.1:$BASE http://127.0.0.1:$((BASE + 1)) http://127.0.0.1:$((BASE + 2))" \
  BELFRY_TOKEN=$TOKEN PYTHONDONTWRITEBYTECODE=1 BELFRY_SINK_URL=http://127.0.0.1:$SINK \
  timeout --kill-after=10 "$PYTEST_TIMEOUT" "$VENV/bin/python" -m pytest "$HERE" -q -rA "$@"
rc=$?
set -e
log "pytest finished with $rc after $(($(date +%s) - start)) s"
exit "$rc"
