#!/usr/bin/env bash
# Builds the three images compose.yaml runs, from binaries built on this host:
#   drover/control-plane:local  (docker/drover: the `drover` binary + manifests)
#   drover/nats:local           (docker/nats: the nats-server on PATH, 2.15.1)
#   drover/postgres:local       (docker/postgres: Debian's postgresql-15)
# all FROM the local base image (scripts/compose/base-image.sh makes it when
# missing). Builds use the host's network (the engine may run without NAT)
# to reach the Debian mirror. It starts no daemon (DOCKER_HOST says which
# engine) and brings nothing up.
#
# Usage: scripts/compose/build-images.sh BIN_DIR CACHE_DIR
#   BIN_DIR: where `cargo build` put `drover` (e.g. target/debug)
set -euo pipefail

bin_dir="${1:?usage: $0 BIN_DIR CACHE_DIR}"
cache="${2:?usage: $0 BIN_DIR CACHE_DIR}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
docker_bin="${DOCKER:-/usr/bin/docker}"
want_nats="v2.15.1"

[[ -x "$bin_dir/drover" ]] || { echo "no $bin_dir/drover: run cargo build first" >&2; exit 1; }
nats="$(command -v nats-server || true)"
[[ -n "$nats" ]] || { echo "nats-server is not on PATH: run \`just deps\`" >&2; exit 1; }
[[ "$("$nats" --version)" == *"$want_nats"* ]] || { echo "$nats is not $want_nats" >&2; exit 1; }

bash "$repo/scripts/compose/base-image.sh" "$cache"

stage() {
    rm -rf -- "$1"
    mkdir -p -- "$1"
}
stage "$repo/docker/drover/stage"
cp -- "$bin_dir/drover" "$repo/docker/drover/stage/drover"
cp -r -- "$repo/manifests" "$repo/docker/drover/stage/manifests"
stage "$repo/docker/nats/stage"
# The pip package installs the real (static, Go) binary on PATH.
real_nats="$(readlink -f "$nats")"
head -c 4 "$real_nats" | grep -q 'ELF' || { echo "$real_nats is not the nats-server binary" >&2; exit 1; }
cp -- "$real_nats" "$repo/docker/nats/stage/nats-server"

for image in drover:control-plane nats:nats postgres:postgres; do
    dir="${image%%:*}"
    tag="drover/${image##*:}:local"
    echo "building $tag"
    "$docker_bin" build --network host -q -t "$tag" "$repo/docker/$dir" >/dev/null
done
