#!/usr/bin/env bash
# The Docker chaos suite, one command: builds the binary and the image, brings up the compose
# cluster under a project name of its own (free host ports), runs the scenarios
# (tests/src/bin/belfry-chaos.rs), writes docs/CHAOS.md, and always tears the project down.
#   bash tests/chaos/run.sh            # BELFRY_CHAOS_KEEP=1 keeps the containers for a look
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"

if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
else
    echo "chaos: neither 'docker compose' nor 'docker-compose' is installed" >&2
    exit 1
fi

# One cargo build for the node binary and the runner (shared dependencies compile once), then
# the image from that binary: a few seconds, so it is never stale.
cargo build-belfry
release="${CARGO_TARGET_DIR:-$root/target}/release"
BELFRY_BIN="$release/belfry" bash deploy/build-image.sh
runner="$release/belfry-chaos"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
        || shuf -i 20000-40000 -n 1
}

export COMPOSE_PROJECT_NAME="belfrychaos$$"
export COMPOSE_FILE="$root/docker-compose.yml"
export BELFRY_CHAOS_COMPOSE="${compose[*]}"
export BELFRY_N1_PORT="$(free_port)" BELFRY_N2_PORT="$(free_port)" BELFRY_N3_PORT="$(free_port)"
export BELFRY_SINK_PORT="$(free_port)" BELFRY_SLOW_SINK_PORT="$(free_port)"
# The suite's whole load comes from one token; the per-token limit would only shape it.
export BELFRY_RATE_LIMIT="${BELFRY_RATE_LIMIT:-0}"
logs="$(mktemp -d)"

teardown() {
    local rc=$?
    for s in n1 n2 n3; do
        "${compose[@]}" logs --no-color "$s" >"$logs/$s.log" 2>&1 || true
    done
    if [[ $rc -ne 0 ]]; then
        echo "chaos: failed (exit $rc); node logs in $logs" >&2
    else
        echo "chaos: node logs in $logs" >&2
    fi
    if [[ "${BELFRY_CHAOS_KEEP:-}" == 1 ]]; then
        echo "chaos: keeping project $COMPOSE_PROJECT_NAME" >&2
    else
        "${compose[@]}" down --volumes --remove-orphans --timeout 5 >/dev/null 2>&1 || true
    fi
    exit $rc
}
trap teardown EXIT INT TERM

"${compose[@]}" up -d
start=$(date +%s)
timeout 1200 "$runner" "$root/docs/CHAOS.md"
echo "chaos: suite took $(( $(date +%s) - start )) s"
