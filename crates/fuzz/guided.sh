#!/bin/sh
# Coverage-guided fuzzing on the stable toolchain: libFuzzer (from the libfuzzer-sys crate)
# with the coverage instrumentation rustc accepts on stable (`-Cpasses=sancov-module`), as
# cargo-fuzz sets it with `--sanitizer none`.
#
#   crates/fuzz/guided.sh TARGET [SECONDS]     # e.g. wire-message 60
#   crates/fuzz/guided.sh list                 # the targets
#
# The corpus lives in crates/fuzz/corpus/TARGET (seeded from failup-fuzz's seeds on first run);
# new inputs that reach new code are added there, crashes go to crates/fuzz/artifacts/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
target=${1:?usage: guided.sh TARGET [SECONDS] | list}
seconds=${2:-60}
if [ "$target" = list ]; then
    exec env -u RUSTFLAGS -u CARGO_TARGET_DIR cargo run --quiet --release \
        --manifest-path "$here/Cargo.toml" --bin failup-fuzz -- --list
fi
# The workspace's target directory (ignored by git), apart from its own builds.
export CARGO_TARGET_DIR="$here/../../target/guided"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps the flags off build scripts and proc-macros, which run on the
# host and must not be instrumented.
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --target "$host" --manifest-path "$here/guided/Cargo.toml" >&2
bin="$CARGO_TARGET_DIR/$host/release/failup-fuzz-guided"
corpus="$here/corpus/$target"
mkdir -p "$corpus" "$here/artifacts"
if [ -z "$(ls -A "$corpus")" ]; then
    env -u RUSTFLAGS -u CARGO_TARGET_DIR cargo run --quiet --release \
        --manifest-path "$here/Cargo.toml" --bin failup-fuzz -- --seeds "$target" "$corpus"
fi
FAILUP_FUZZ_TARGET="$target" exec "$bin" "$corpus" -max_total_time="$seconds" \
    -rss_limit_mb=512 -malloc_limit_mb=256 -artifact_prefix="$here/artifacts/"
