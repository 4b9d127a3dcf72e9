#!/usr/bin/env bash
# Makes the local base image `drover-base:bookworm` that docker/*/Dockerfile
# build FROM, without any image registry: `debootstrap --variant=minbase`
# into a directory, the host's own apt sources copied in, then `docker import`.
# The root filesystem is kept as a tarball in CACHE_DIR, so a later run (or a
# fresh dockerd data root) imports it again without downloading.
# It owns only that image and that tarball; it starts no daemon (DOCKER_HOST
# says which one to talk to) and builds no other image.
#
# Usage: scripts/compose/base-image.sh CACHE_DIR
set -euo pipefail

cache="${1:?usage: $0 CACHE_DIR}"
tag="drover-base:bookworm"
docker_bin="${DOCKER:-/usr/bin/docker}"

if "$docker_bin" image inspect "$tag" >/dev/null 2>&1; then
    echo "base image $tag present"
    exit 0
fi

mkdir -p "$cache"
tarball="$cache/drover-base-bookworm.tar"
if [[ ! -s "$tarball" ]]; then
    # The mirror apt uses on this machine (first URI of the sources).
    mirror="$( (grep -rhoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true) \
        | awk '/debian/ && !/security/ {print $2; exit}')"
    mirror="${mirror:-http://deb.debian.org/debian}"
    rootfs="$cache/rootfs.tmp"
    rm -rf -- "$rootfs"
    echo "debootstrap bookworm from $mirror"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
        tail -n 30 "$cache/debootstrap.log" >&2
        exit 1
    }
    # The image gets the same sources as the host (updates and security too).
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
        rm -f -- "$rootfs/etc/apt/sources.list"
        cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/debian.sources"
    fi
    rm -rf -- "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$tarball.tmp" .
    mv -- "$tarball.tmp" "$tarball"
    rm -rf -- "$rootfs"
fi
echo "importing $tag"
"$docker_bin" import "$tarball" "$tag" >/dev/null
