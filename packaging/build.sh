#!/usr/bin/env bash
# Builds Drover's four packages into one directory (default
# <target>/packages/): drover_<ver>-1_<debarch>.deb and
# drover-agent_<ver>-1_<debarch>.deb with cargo-deb,
# drover-<ver>-1.<arch>.rpm and drover-agent-<ver>-1.<arch>.rpm with
# cargo-generate-rpm. The agent packages are built first and copied into
# <target>/<profile>/drover-releases/, which the drover package ships as
# /usr/share/drover/releases/. What goes into each package is in the
# [package.metadata.deb] / [package.metadata.generate-rpm] sections of
# control-plane/Cargo.toml and agent/Cargo.toml; this script only drives the
# tools. It does not install the tools (scripts/test-deps/packaging.sh does).
#
# Usage: packaging/build.sh [--profile release|dev|<custom>] [--no-build]
#                           [--fast] [--out DIR]
#   --profile   cargo profile whose binaries are packed (default release)
#   --no-build  pack the binaries already built for that profile
#   --fast      lighter compression (tests)
#   --out DIR   where the packages are written
set -euo pipefail

profile=release
build=1
fast=0
out=""
while [[ $# -gt 0 ]]; do
    case "$1" in
    --profile)
        [[ $# -ge 2 ]] || { echo "--profile needs a value" >&2; exit 2; }
        profile="$2"
        shift 2
        ;;
    --no-build) build=0; shift ;;
    --fast) fast=1; shift ;;
    --out)
        [[ $# -ge 2 ]] || { echo "--out needs a directory" >&2; exit 2; }
        out="$2"
        shift 2
        ;;
    *)
        echo "unknown option: $1 (see the comment at the top of $0)" >&2
        exit 2
        ;;
    esac
done
if [[ ! "$profile" =~ ^[A-Za-z0-9_-]+$ ]]; then
    echo "invalid profile name: $profile" >&2
    exit 2
fi

cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TARGET_DIR="$target"
out="${out:-$target/packages}"
case "$profile" in
dev) profile_dir=debug ;;
*) profile_dir="$profile" ;;
esac
bins="$target/$profile_dir"

if [[ $build -eq 1 ]]; then
    cargo build --profile "$profile" --workspace --bins
    # cargo-deb strips its own copies; cargo-generate-rpm packs the files as
    # they are, so the freshly built release binaries are stripped here.
    if [[ "$profile" != dev ]]; then
        strip "$bins/drover" "$bins/drover-agent" "$bins/drover-rootd"
    fi
fi
for b in drover drover-agent drover-rootd; do
    if [[ ! -x "$bins/$b" ]]; then
        echo "$bins/$b is missing: build it first (cargo build --profile $profile --workspace)" >&2
        exit 1
    fi
done

deb_opts=(--no-build --profile "$profile" --quiet --output "$out/")
rpm_opts=(--profile "$profile" --target-dir "$target" --output "$out/")
if [[ $fast -eq 1 ]]; then
    deb_opts+=(--fast)
    rpm_opts+=(--payload-compress gzip)
fi

mkdir -p "$out"
rm -f "$out"/drover_*.deb "$out"/drover-agent_*.deb "$out"/drover-*.rpm

cargo deb -p agent "${deb_opts[@]}" >/dev/null
cargo generate-rpm -p agent "${rpm_opts[@]}"

releases="$bins/drover-releases"
rm -rf "$releases"
mkdir -p "$releases"
cp "$out"/drover-agent_*.deb "$out"/drover-agent-*.rpm "$releases/"

cargo deb -p control-plane "${deb_opts[@]}" >/dev/null
cargo generate-rpm -p control-plane "${rpm_opts[@]}"

ls -l "$out"/drover_*.deb "$out"/drover-agent_*.deb "$out"/drover-*.rpm
