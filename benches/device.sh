#!/usr/bin/env bash
# xent on a Linux machine with an NVIDIA GPU, in one command, in under 8
# minutes (its steps' limits add up to 7.5), installing nothing from the
# network:
#
#   benches/device.sh DEBS_DIR OUT_DIR
#
# DEBS_DIR holds the Vulkan loader's .debs (libvulkan1 and friends), unpacked
# only when the machine has no libvulkan; OUT_DIR gets the results:
#   info.txt      `xent info`
#   bench.json    `xent bench --json --strategies all --precision f32,bf16
#                 --check-rows 8` on the reference cases (every strategy that
#                 serves each; 8 rows of each (N, C) case held to the CPU
#                 twin: a disagreement fails the step)
#   batch.json    the same, strategy auto, on BATCH (8 192 x 128 256: a
#                 language model's batch of Llama-3 logits)
#   softmax.json  softmax, log-softmax and a backward on SOFTMAX, f32 and
#                 bf16, 8 rows of each (N, C) case held to the CPU twin
#   torch.json    benches/compare_torch.py --device cuda (eager and
#                 torch.compile, f32 and bf16; Liger-Kernel's cross-entropy
#                 where installed) against the same binary on the
#                 cross-entropy cases, when PyTorch with CUDA is there
#   torch_softmax.json  the same on the softmax cases (torch.softmax and kin)
#   linear.json   the fused linear cross-entropy on LINEAR, f32 and bf16:
#                 compare_torch.py --linear (PyTorch eager,
#                 F.linear_cross_entropy, Liger's fused linear
#                 cross-entropy), or xent alone without PyTorch
#   head.json     a language model's head on HEAD (8192x4096x128256: 8 192
#                 rows of 4 096 into Llama-3's vocabulary) in bf16, 3
#                 iterations: compare_torch.py --linear as linear.json
#                 (with PyTorch's and Liger's memory), or xent alone
#   vocab.json    the vocabulary split on one device: `xent bench` on VOCAB
#                 (default 4096x32000) unsplit and as vocab-split-4 (4
#                 shards' partials, the merge, the finishes, timed as one),
#                 f32 and bf16, 8 rows of each held to the CPU twin
#   coop.txt      where `xent info` says the adapter has cooperative matrices:
#                 `xent linear-loss --precision bf16|f32 --product-kernel
#                 coop` on 256x512x4096 written by numpy (f32: operands
#                 split in f16 halves), held to the CPU twin (a
#                 disagreement fails the step), then linear_coop.json: `xent
#                 bench --linear` on LINEAR in bf16 on tensor cores
#   large.txt     one bf16 cross-entropy call past 2^32 elements
#   summary.md    the tables of all of it
# Environment: XENT (the binary, default target/release/xent, prebuilt),
# CASES (default: the reference cases), BATCH (default 8192x128256),
# SOFTMAX (default: softmax cases on the reference shapes), LINEAR (default
# 4096x2048x32000), HEAD (default 8192x4096x128256), VOCAB (default 4096x32000) and LARGE (default
# 65536x65537; any of these empty:
# skipped), LIGER_WHEEL (a Liger-Kernel wheel to pip-install with
# --no-deps when PyTorch is there and Liger is not; without one, Liger's
# columns read n/a), ITERS (default 10),
# WGPU_BACKEND (default vulkan). Each step has its own time limit; one that fails is
# recorded in summary.md and the rest still run; the script then exits 1.
set -uo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 DEBS_DIR OUT_DIR" >&2
    exit 2
fi
debs=$1
out=$2
root=$(cd "$(dirname "$0")/.." && pwd)
xent=${XENT:-$root/target/release/xent}
iters=${ITERS:-10}
cases=${CASES:-4096x4096,256x50257,65536x32,16x128256,8x21x256x256,bce-with-logits:4096x4096}
batch=${BATCH-8192x128256}
softmax=${SOFTMAX-softmax:4096x4096,log-softmax:256x50257,softmax:65536x32,softmax:8x21x256x256,softmax-backward:4096x4096,log-softmax-backward:65536x32}
large=${LARGE-65536x65537}
linear=${LINEAR-4096x2048x32000}
head=${HEAD-8192x4096x128256}
vocab=${VOCAB-4096x32000}
export WGPU_BACKEND=${WGPU_BACKEND:-vulkan}
mkdir -p "$out"
if [ ! -x "$xent" ]; then
    echo "no xent binary at $xent: build it first (cargo build --release)" >&2
    exit 2
fi

# The Vulkan loader, from the given .debs only (no network). grep reads all
# of ldconfig's listing (no -q: an early exit would SIGPIPE ldconfig and,
# under pipefail, read as "missing").
ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
if ! "$ldconfig" -p 2>/dev/null | grep 'libvulkan\.so\.1' >/dev/null; then
    found=0
    for f in "$debs"/*.deb; do
        [ -e "$f" ] || continue
        dpkg -x "$f" /
        found=1
    done
    [ "$found" = 1 ] || echo "warning: no libvulkan and no .deb in $debs" >&2
    "$ldconfig"
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -e "$icd" ]; then
    export VK_DRIVER_FILES=$icd
fi
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
if [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ] && [ -e "$egl" ]; then
    export __EGL_VENDOR_LIBRARY_FILENAMES=$egl
fi

status=()
failed=0
step() {
    # step NAME SECONDS OUTPUT COMMAND...: runs COMMAND with a time limit,
    # its stdout into OUTPUT, and records how it ended.
    local name=$1 limit=$2 file=$3
    shift 3
    local start=$SECONDS
    timeout -k 10 "$limit" "$@" >"$file" 2>"$file.err"
    local rc=$?
    [ $rc = 0 ] || failed=1
    status+=("| $name | $([ $rc = 0 ] && echo ok || echo "failed (exit $rc)") | $((SECONDS - start)) s |")
    echo "== $name: exit $rc, $((SECONDS - start)) s" >&2
    return 0
}

# Time limits that add up to 7.5 minutes (10 + 65 + 40 + 25 + 65 + 30 + 35 +
# 70 + 25 + 25 + 60), leaving the rest of 8 for the checks, installs and the summary.
step "xent info" 10 "$out/info.txt" "$xent" info
cat "$out/info.txt"
step "xent bench, every strategy, f32 and bf16" 65 "$out/bench.json" \
    "$xent" bench --json --no-cpu --strategies all --precision f32,bf16 --iters "$iters" \
    --cases "$cases" --check-rows 8
if [ -n "$batch" ]; then
    step "a language model's batch, f32 and bf16" 40 "$out/batch.json" \
        "$xent" bench --json --no-cpu --precision f32,bf16 --iters "$iters" --cases "$batch" --check-rows 8
fi
if [ -n "$softmax" ]; then
    step "softmax and its backward, f32 and bf16" 25 "$out/softmax.json" \
        "$xent" bench --json --no-cpu --precision f32,bf16 --iters "$iters" --cases "$softmax" --check-rows 8
fi
# compare_torch times F.cross_entropy (and Liger's) on the cross-entropy
# cases, torch.softmax and its kin on the softmax ones; not the elementwise.
ce_cases=$(echo "$cases" | tr ',' '\n' | grep -v ':' | paste -sd, - || true)
has_torch=0
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    has_torch=1
    if [ -n "${LIGER_WHEEL:-}" ] && ! python3 -c 'import liger_kernel' 2>/dev/null; then
        python3 -m pip install --no-deps --no-index "$LIGER_WHEEL" >"$out/liger-install.txt" 2>&1 ||
            echo "warning: could not install $LIGER_WHEEL (see liger-install.txt)" >&2
    fi
fi
peers() {
    # peers NAME SECONDS CASES JSON
    step "$1" "$2" "$out/$4.txt" python3 "$root/benches/compare_torch.py" --device cuda --xent "$xent" \
        --cases "$3" --precision f32,bf16 --compile --no-install --iters "$iters" --json "$out/$4.json"
}
if [ "$has_torch" = 0 ]; then
    status+=("| PyTorch eager and compiled, Liger | skipped: no PyTorch with CUDA here | - |")
else
    if [ -n "$ce_cases" ]; then
        peers "cross-entropy against PyTorch eager and compiled, Liger" 65 "$ce_cases" torch
    fi
    if [ -n "$softmax" ]; then
        peers "softmax against PyTorch eager and compiled" 30 "$softmax" torch_softmax
    fi
fi
if [ -n "$linear" ] && [ "$has_torch" = 1 ]; then
    step "the fused linear cross-entropy against PyTorch and Liger" 35 "$out/linear.txt" \
        python3 "$root/benches/compare_torch.py" --device cuda --xent "$xent" --linear "$linear" \
        --precision f32,bf16 --no-install --iters "$iters" --json "$out/linear.json"
elif [ -n "$linear" ]; then
    step "the fused linear cross-entropy, f32 and bf16" 35 "$out/linear.json" \
        "$xent" bench --json --linear "$linear" --precision f32,bf16 --iters "$iters"
fi
# A language model's head in bf16: the logits alone would be 2.1 GB.
if [ -n "$head" ] && [ "$has_torch" = 1 ]; then
    step "a language model's head, bf16, against PyTorch and Liger" 70 "$out/head.txt" \
        python3 "$root/benches/compare_torch.py" --device cuda --xent "$xent" --linear "$head" \
        --precision bf16 --no-install --iters 3 --json "$out/head.json"
elif [ -n "$head" ]; then
    step "a language model's head, bf16" 70 "$out/head.json" \
        "$xent" bench --json --linear "$head" --precision bf16 --iters 3
fi
# The vocabulary split on one device: the same logits unsplit and in 4
# shards (partials, merge, finishes), each checked on sampled rows.
if [ -n "$vocab" ]; then
    step "the vocabulary split on one device, 4 shards, f32 and bf16" 25 "$out/vocab.json" \
        "$xent" bench --json --no-cpu --precision f32,bf16 --iters "$iters" \
        --cases "$vocab,vocab-split-4:$vocab" --check-rows 8
fi
# Tensor cores (ProductKernel::Coop), where the adapter offers them: the
# fused op on them held to the CPU twin, then timed on LINEAR in bf16.
if ! grep -q "cooperative matrices.*: yes" "$out/info.txt"; then
    status+=("| the fused linear op on tensor cores | skipped: the adapter offers no cooperative matrices (xent info) | - |")
elif ! python3 -c 'import numpy' 2>/dev/null; then
    status+=("| the fused linear op on tensor cores | skipped: no numpy here to write its inputs | - |")
else
    coop_run() {
        local dir
        dir=$(mktemp -d) || return 1
        trap "rm -rf '$dir'" EXIT
        trap 'exit 143' TERM INT
        python3 - "$dir" <<'PY' || return 1
import sys, numpy as np
out, (n, h, v) = sys.argv[1], (256, 512, 4096)
rng = np.random.default_rng(0x5EED)
np.save(f"{out}/hidden.npy", rng.uniform(-1, 1, (n, h)).astype(np.float32))
np.save(f"{out}/weight.npy", rng.uniform(-h ** -0.5, h ** -0.5, (v, h)).astype(np.float32))
np.save(f"{out}/targets.npy", rng.integers(0, v, n).astype(np.int64))
PY
        # bf16, then f32 (every operand split in f16 halves).
        for p in bf16 f32; do
            "$xent" linear-loss --hidden "$dir/hidden.npy" --weight "$dir/weight.npy" \
                --targets "$dir/targets.npy" --precision "$p" --product-kernel coop || return 1
        done
        if [ -n "$linear" ]; then
            "$xent" bench --json --linear "$linear" --precision bf16 --product-kernel coop \
                --iters "$iters" >"$out/linear_coop.json"
        fi
    }
    export -f coop_run
    export xent linear iters out
    step "the fused linear op on tensor cores, checked, bf16" 25 "$out/coop.txt" bash -c coop_run
fi
# Past 2^32 elements: 65 536 x 65 537 bf16 logits (8.6 GB; the host holds
# about 45 GB while generating them). The kernels address it a chunk of rows
# at a time; 64 rows of its gradient, the first and the last among them, are
# held to the CPU path (a disagreement fails the step). A device whose
# largest buffer is smaller records xent's typed refusal.
if [ -n "$large" ]; then
    step "one bf16 call past 2^32 elements" 60 "$out/large.txt" \
        "$xent" bench --json --no-cpu --iters 1 --precision bf16 --cases "$large" --check-rows 64
fi

python3 - "$out" "${status[@]}" <<'EOF'
import json, os, sys
out, status = sys.argv[1], sys.argv[2:]
lines = ["# xent on this machine", "", "| step | result | time |", "|---|---|---|", *status, ""]
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
for name in ("bench.json", "batch.json", "softmax.json", "vocab.json"):
    bench = load(name)
    if not bench:
        continue
    lines += [f"{name}: {bench['adapter']}, plans for the {bench.get('device_class')} class", "",
              "| case | GPU ms | GB/s | of copy | bytes planned / minimum | rows checked |",
              "|---|---|---|---|---|---|"]
    for r in bench["results"]:
        ms = r["gpu_ms"] if r["gpu_ms"] is not None else r["wall_ms"]
        ratio = "-" if r.get("bytes_ratio") is None else f"{r['bytes_ratio']:.3f}"
        checked = "-" if r["rows_checked"] is None else r["rows_checked"]
        lines.append(f"| {r['name']} | {ms:.3f} | {r['gbps']:.1f} | {r['copy_ratio']:.0%} | {ratio} | {checked} |")
    lines.append("")
def ms(v):
    return "-" if v is None else f"{v:.3f}"
def ratio(r):
    return "-" if r.get("bytes_ratio") is None else f"{r['bytes_ratio']:.1f}"
def times(v):
    return "-" if v is None else f"{v:.2f}x"
for name in ("torch.json", "torch_softmax.json"):
    torch = load(name)
    if not torch:
        continue
    lines += [f"{name}: PyTorch {torch['torch']} on {torch['device']}; Liger-Kernel: {torch.get('liger', 'n/a')}", "",
              "xent's wall time (record, submit, wait) beside each peer's; x: the peer's time over xent's.", "",
              "| case | xent wall ms | torch eager ms | x | torch.compile ms | x | Liger ms | x |",
              "|---|---|---|---|---|---|---|---|"]
    for r in torch["results"]:
        lines.append(f"| {r['name']} | {r['wall_ms']:.3f} | {ms(r['torch_ms'])} | {times(r['speedup_eager'])} | "
                     f"{ms(r['torch_compiled_ms'])} | {times(r['speedup_compiled'])} | "
                     f"{ms(r.get('liger_ms'))} | {times(r.get('speedup_liger'))} |")
    lines.append("")
def mb(b):
    return "n/a" if b is None else f"{b / 1e6:.1f}"
def products(r):
    # Each product over one window alone, TFLOP/s: h·Wᵀ / g·W / gᵀ·h.
    return " / ".join(f"{p['gflops'] / 1e3:.2f}" for p in r.get("products", []))
for file, title in (("linear.json", "The fused linear cross-entropy"),
                    ("head.json", "A language model's head (bf16)")):
    linear = load(file)
    if linear and "linear" in linear and linear["linear"] and "torch_eager_ms" in linear["linear"][0]:
        lines += [f"{title}: PyTorch {linear['torch']}", "",
                  "xent's scratch beside each peer's intermediates (CUDA's peak beyond inputs and gradients).", "",
                  "| case | xent ms | TFLOP/s | h·Wᵀ / g·W / gᵀ·h TFLOP/s | torch eager ms | x | F.linear_cross_entropy ms | x | Liger ms | x | xent scratch MB | eager MB | F.linear_cross_entropy MB | Liger MB | bytes / min |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in linear["linear"]:
            lines.append(f"| {r['name']} | {r['ms']:.3f} | {r['gflops'] / 1e3:.2f} | {products(r)} | "
                         f"{ms(r['torch_eager_ms'])} | {times(r['speedup_eager'])} | {ms(r['torch_lce_ms'])} | "
                         f"{times(r['speedup_lce'])} | {ms(r.get('torch_liger_ms'))} | {times(r.get('speedup_liger'))} | "
                         f"{r['scratch_bytes'] / 1e6:.1f} | {mb(r['torch_peak_bytes'])} | "
                         f"{mb(r.get('torch_lce_peak_bytes'))} | {mb(r.get('torch_liger_peak_bytes'))} | {ratio(r)} |")
        lines.append("")
    elif linear and "linear" in linear:
        lines += [f"{title} (xent alone: no PyTorch here)", "",
                  "| case | xent ms | TFLOP/s | h·Wᵀ / g·W / gᵀ·h TFLOP/s | scratch MB | bytes / min |",
                  "|---|---|---|---|---|---|"]
        for r in linear["linear"]:
            lines.append(f"| {r['name']} | {r['ms']:.3f} | {r['gflops'] / 1e3:.2f} | {products(r)} | "
                         f"{r['scratch_bytes'] / 1e6:.1f} | {ratio(r)} |")
        lines.append("")
coop = load("linear_coop.json")
if coop and coop.get("linear"):
    lines += ["The fused linear cross-entropy on tensor cores (--product-kernel coop, bf16)", "",
              "| case | xent ms | TFLOP/s | h·Wᵀ / g·W / gᵀ·h TFLOP/s | bytes / min |", "|---|---|---|---|---|"]
    for r in coop["linear"]:
        lines.append(f"| {r['name']} | {r['ms']:.3f} | {r['gflops'] / 1e3:.2f} | "
                     f"{products(r)} | {ratio(r)} |")
    lines.append("")
for name in ("coop.txt.err", "vocab.json.err", "large.txt.err", "bench.json.err", "batch.json.err", "softmax.json.err", "torch.txt.err",
             "torch_softmax.txt.err", "linear.txt.err", "linear.json.err", "head.txt.err", "head.json.err"):
    try:
        text = open(os.path.join(out, name)).read().strip()
    except OSError:
        text = ""
    if text:
        lines += [f"{name}:", "", "```", text[-2000:], "```", ""]
open(os.path.join(out, "summary.md"), "w").write("\n".join(lines))
print("\n".join(lines))
EOF
# A step that failed (a disagreement with the CPU twin among them) fails
# the script, after the summary is written.
exit "$failed"
