#!/usr/bin/env bash
# Instructions executed per run of `xent bench` (the fused call plus the copy
# kernel over the same bytes), counted by cachegrind on lavapipe: a measure
# that does not drift with a shared VM's speed, for comparing builds of the
# kernels. Not a time: the copy runs fewer instructions per byte than the
# fused call but waits on memory more.
#
#   benches/instructions.sh [CASE...]        e.g. benches/instructions.sh 65536x32 8x21x256x256
#
# Counts `bench --iters 11` minus `bench --iters 1` (ten runs of each kernel,
# pipelines built and data made in both), divided by ten. LP_NUM_THREADS=0
# runs lavapipe's work on one thread, which makes the count repeatable.
# Needs valgrind (Debian: apt-get install valgrind) and the Vulkan driver.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
cargo build --release --quiet
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(65536x32 16x128256 8x21x256x256)
# The instruction count of one `xent bench` run; its output on failure.
count() {
  local out
  out=$(LP_NUM_THREADS=0 WGPU_BACKEND=vulkan valgrind --tool=cachegrind --cache-sim=no \
    --cachegrind-out-file=/dev/null --error-exitcode=0 \
    ./target/release/xent bench --no-cpu --cases "$1" --iters "$2" 2>&1) || {
    printf '%s\n' "$out" >&2
    echo "$1: xent bench failed under valgrind" >&2
    return 1
  }
  printf '%s\n' "$out" | awk '/I +refs:/ { gsub(",", "", $NF); print $NF }'
}
for c in "${cases[@]}"; do
  one=$(count "$c" 1)
  eleven=$(count "$c" 11)
  [ -n "$one" ] && [ -n "$eleven" ] || { echo "$c: no instruction count in valgrind's output" >&2; exit 1; }
  echo "$c: $(( (eleven - one) / 10 )) instructions per run (fused call + copy)"
done
