#!/usr/bin/env bash
# Builds the release binary and an image `belfry:local` FROM scratch: the binary, the shared
# libraries it links (and the dynamic loader), a non-root user (uid 10001) and a /data dir it
# owns. Needs no registry: nothing is pulled. Usage: deploy/build-image.sh [TAG]
# (BELFRY_BIN=path uses that binary instead of building one).
set -euo pipefail
cd "$(dirname "$0")/.."

tag="${1:-belfry:local}"
uid=10001
target_dir="${CARGO_TARGET_DIR:-target}"

# BELFRY_BIN names a binary built already (the chaos suite builds it with its runner).
if [[ -n "${BELFRY_BIN:-}" ]]; then
    bin="$BELFRY_BIN"
else
    cargo build-belfry
    bin="$target_dir/release/belfry"
fi
[[ -x "$bin" ]] || { echo "build-image: $bin not found" >&2; exit 1; }

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc" "$ctx/data" "$ctx/certs" "$ctx/tmp"
cp "$bin" "$ctx/rootfs/usr/local/bin/belfry"
# The release profile keeps line tables (75 MB of them); the image keeps symbols only.
if command -v strip >/dev/null; then strip --strip-debug "$ctx/rootfs/usr/local/bin/belfry"; fi

# Every library ldd names by absolute path (this covers the loader, listed without "=>"),
# copied to the same path with symlinks resolved.
while read -r lib; do
    mkdir -p "$ctx/rootfs$(dirname "$lib")"
    cp -L "$lib" "$ctx/rootfs$lib"
done < <(ldd "$bin" | grep -o '/[^ ]*' | sort -u)

cat > "$ctx/rootfs/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/sbin/nologin
belfry:x:$uid:$uid:belfry:/data:/sbin/nologin
PASSWD
cat > "$ctx/rootfs/etc/group" <<GROUP
root:x:0:
belfry:x:$uid:
GROUP
chmod 1777 "$ctx/tmp"
cp /etc/nsswitch.conf "$ctx/rootfs/etc/" 2>/dev/null || true

cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
# Created by these COPYs (not by the one above), so they are owned by the user; a named volume
# mounted on /data or /certs starts with this ownership.
COPY --chown=$uid:$uid data /data
COPY --chown=$uid:$uid certs /certs
COPY --chown=$uid:$uid tmp /tmp
USER $uid:$uid
WORKDIR /data
ENV BELFRY_DATA_DIR=/data PATH=/usr/local/bin
EXPOSE 7100 7200 7300
ENTRYPOINT ["/usr/local/bin/belfry"]
CMD ["serve", "--http-addr", "0.0.0.0:7100", "--grpc-addr", "0.0.0.0:7200"]
DOCKERFILE

# The classic builder is enough for FROM scratch and works on engines without buildx.
if ! DOCKER_BUILDKIT=0 docker build --quiet -t "$tag" "$ctx" >"$ctx/build.log" 2>&1; then
    cat "$ctx/build.log" >&2
    exit 1
fi
size="$(docker image inspect -f '{{.Size}}' "$tag")"
echo "built $tag: $((size / 1024 / 1024)) MiB ($size bytes)"
