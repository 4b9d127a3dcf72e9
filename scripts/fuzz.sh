#!/usr/bin/env bash
# Fuzzes every decoder that reads bytes from outside (fuzz/fuzz_targets/).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 60 s each)
#   scripts/fuzz.sh --ci [TARGET...]                   (10 s each: CI smoke)
#
# Installs cargo-fuzz when it is missing (needs the nightly toolchain:
# `rustup toolchain install nightly`), builds every target (address
# sanitizer, debug assertions), then runs each for the given time starting
# from the checked-in seeds (fuzz/corpus/<target>/, written by
# `cargo run -p bus-schema --example fuzz_seeds -- fuzz/corpus`) plus what
# earlier runs found (kept under the target dir). Prints, per target,
# executions, executions per second and whether a crash was found; exits 1
# when one was. Crashing inputs are kept in fuzz/artifacts/<target>/: check
# them in as a regression test (bus-schema/tests/fuzz_regressions.rs).
#
# Builds go to $CARGO_TARGET_DIR (default fuzz/target), never the
# workspace's target dir: sanitizer flags would rebuild everything there.
#
# Example: scripts/fuzz.sh 300 manifest selector
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD

usage() {
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
}

secs=60
case "${1:-}" in
    -h | --help)
        usage
        exit 0
        ;;
    --ci)
        secs=10
        shift
        ;;
    '' | *[!0-9]*) ;;
    *)
        secs=$1
        shift
        ;;
esac
if [ "$secs" -lt 1 ]; then
    echo "fuzz.sh: SECONDS_PER_TARGET must be at least 1" >&2
    exit 2
fi

export PATH="$HOME/.cargo/bin:$PATH"
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: cargo-fuzz needs the nightly toolchain; run: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz (once)..."
    cargo install cargo-fuzz --locked
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/fuzz/target}"
all_targets=$(cd fuzz && cargo +nightly fuzz list)
if [ $# -gt 0 ]; then
    targets="$*"
    for t in $targets; do
        if ! grep -qx "$t" <<<"$all_targets"; then
            echo "fuzz.sh: no target $t; the targets are:" $all_targets >&2
            exit 2
        fi
    done
else
    targets=$all_targets
fi

start=$(date +%s)
echo "fuzz.sh: building $(wc -w <<<"$targets") targets into $CARGO_TARGET_DIR..."
(cd fuzz && cargo +nightly fuzz build -O -a)
built=$(date +%s)
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin_dir="$CARGO_TARGET_DIR/$triple/release"

crashed=0
report=()
for t in $targets; do
    work="$CARGO_TARGET_DIR/fuzz-corpus/$t"
    art="$root/fuzz/artifacts/$t"
    seeds="$root/fuzz/corpus/$t"
    mkdir -p "$work" "$art" "$seeds"
    log="$CARGO_TARGET_DIR/fuzz-$t.log"
    set +e
    "$bin_dir/$t" "$work" "$seeds" \
        -max_total_time="$secs" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=2048 -max_len=65536 -artifact_prefix="$art/" \
        >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    found=$(sed -n 's/.*Test unit written to //p' "$log" | tail -1)
    if [ "$rc" -ne 0 ]; then
        crashed=1
        status="CRASH (exit $rc) ${found:-see $log}"
        echo "---- $t: last lines of $log ----"
        tail -n 30 "$log"
    else
        status="no crash"
    fi
    report+=("$(printf '%-18s %12s execs %8s execs/s  %s' "$t" "${execs:-?}" "${rate:-?}" "$status")")
done
end=$(date +%s)

echo
echo "fuzz.sh: $secs s per target; build $((built - start)) s, total $((end - start)) s"
printf '%s\n' "${report[@]}"
if [ "$crashed" -ne 0 ]; then
    echo "fuzz.sh: a target crashed; reproduce with: $bin_dir/<target> fuzz/artifacts/<target>/<file>" >&2
    exit 1
fi
