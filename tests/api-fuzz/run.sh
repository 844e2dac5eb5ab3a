#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document (GET /v1/openapi.json) with schemathesis:
# a 3-node cluster of `belfry serve` on loopback, requests generated from the schemas of every
# route, sent to a follower and to the leader, and every answer checked: no 5xx, every status
# and content type documented, every body valid against its schema.
#
# The nodes deliver nowhere: every public address is denied (--deny-target), and loopback and
# private ranges are refused by default, so the jobs the fuzzer creates fire into the egress
# policy and become dead letters. The token is an editor's: membership, leadership, backups and
# tokens answer 403 (documented), so the fuzzer cannot take the cluster apart under itself.
#
# BELFRY_BIN (default target/release/belfry), BELFRY_FUZZ_PORT (first HTTP port, default
# 18501; gRPC at +100), BELFRY_FUZZ_EXAMPLES (per operation, default 40), BELFRY_FUZZ_SEED
# (default 1: the same cases every run; set another to explore).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/tests/api-fuzz"
bin=${BELFRY_BIN:-$root/target/release/belfry}
port=${BELFRY_FUZZ_PORT:-18501}
examples=${BELFRY_FUZZ_EXAMPLES:-40}
seed=${BELFRY_FUZZ_SEED:-1}
[ -x "$bin" ] || { echo "api-fuzz: no belfry binary at $bin (cargo build-belfry)" >&2; exit 2; }

venv="$here/.venv"
if ! "$venv/bin/python" -c 'import schemathesis' 2>/dev/null || ! cmp -s "$here/requirements.txt" "$venv/requirements.txt"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$venv/requirements.txt"
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

admin="bf_fuzzadmin_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
"$bin" certs --dir "$work/certs" --nodes 1-3 >/dev/null
cluster="1=127.0.0.1:$((port + 100)),2=127.0.0.1:$((port + 101)),3=127.0.0.1:$((port + 102))"
for i in 0 1 2; do
    id=$((i + 1))
    BELFRY_BOOTSTRAP_TOKEN="$admin" RUST_LOG=warn "$bin" serve --id "$id" \
        --http-addr "127.0.0.1:$((port + i))" --grpc-addr "127.0.0.1:$((port + 100 + i))" \
        --data-dir "$work/node-$id" --initial-cluster "$cluster" --peer-certs-dir "$work/certs" \
        --deny-target '0.0.0.0/0,::/0' --rate-limit 0 >"$work/node-$id.log" 2>&1 &
    pids+=($!)
done

# Ready: every node has a leader and has caught up (bounded: 60 s).
for i in 0 1 2; do
    for _ in $(seq 1 600); do
        curl -sf "http://127.0.0.1:$((port + i))/readyz" >/dev/null && break
        sleep 0.1
    done
    curl -sf "http://127.0.0.1:$((port + i))/readyz" >/dev/null || {
        echo "api-fuzz: node $((i + 1)) not ready in 60 s" >&2
        cat "$work/node-$((i + 1)).log" >&2
        exit 1
    }
done

api() { curl -sf -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' "$@"; }
leader=$(api "http://127.0.0.1:$port/v1/cluster" | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])')
follower=$(( leader % 3 + 1 ))
editor=$(api -d '{"role": "editor", "name": "api-fuzz"}' "http://127.0.0.1:$port/v1/tokens" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
# A job and dead letters for the fuzzer to find (its target never resolves: each fire fails once).
api -d '{"name": "fuzz-seed", "schedule": {"every": "1s"}, "target": {"url": "http://fuzz.invalid/"},
    "retry": {"max_attempts": 1}}' "http://127.0.0.1:$port/v1/jobs" >/dev/null

status=0
for node in "$follower" "$leader"; do
    url="http://127.0.0.1:$((port + node - 1))"
    echo "api-fuzz: node $node ($([ "$node" = "$leader" ] && echo leader || echo follower)), seed $seed, $examples examples per operation"
    # From the scratch folder: schemathesis keeps a cache in its working directory.
    (cd "$work" && "$venv/bin/schemathesis" run "$url/v1/openapi.json" --url "$url" \
        -H "Authorization: Bearer $editor" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
        --max-examples "$examples" --seed "$seed" --generation-database none \
        --request-timeout 10 --no-color) || status=1
done
for i in 1 2 3; do
    if grep -q "panicked" "$work/node-$i.log"; then
        echo "api-fuzz: node $i panicked:" >&2
        grep -A5 "panicked" "$work/node-$i.log" >&2
        status=1
    fi
done
exit $status
