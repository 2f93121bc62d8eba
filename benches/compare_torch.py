#!/usr/bin/env python3
"""xent's fused cross-entropy against PyTorch's F.cross_entropy, forward + backward,
on the same shapes and the same data, measured in the same run.

    python3 benches/compare_torch.py [--device cpu|cuda] [--iters N] [--cases 4096x4096,65536x32]
        [--xent PATH] [--precision f32,bf16] [--compile] [--no-install] [--json OUT]

Runs `xent bench --json` (the binary given by --xent, else `cargo run --release`;
on the default adapter, WGPU_BACKEND etc. honoured), then PyTorch on the device
given (CPU by default, with torch.set_num_threads(os.cpu_count())) in each
precision (bf16 and f16: the logits in that dtype, as xent stores them), eager
and, with --compile, `torch.compile` of the same forward + backward where it
works. PyTorch is installed from the package index when missing, unless
--no-install. Not part of CI.
"""
import argparse
import json
import os
import subprocess
import sys
import time

REFERENCE = ["4096x4096", "256x50257", "65536x32", "16x128256", "8x21x256x256"]
GOLDEN, C1, C2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def ensure_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "torch", "numpy"])


def bench_data(dims, seed=0x5EED):
    """xent::bench::bench_data, vectorised: splitmix64 over consecutive states."""
    import numpy as np

    n = int(np.prod(dims))
    classes = dims[1] if len(dims) > 1 else dims[0]
    rows = n // classes

    def draws(first, count):
        i = np.arange(first, first + count, dtype=np.uint64)
        with np.errstate(over="ignore"):
            z = np.uint64(seed) + i * np.uint64(GOLDEN)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(C1)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(C2)
        return z ^ (z >> np.uint64(31))

    logits = ((draws(1, n) >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)) * np.float32(20) - np.float32(10)
    targets = (draws(n + 1, rows) % np.uint64(classes)).astype(np.int64)
    tdims = [dims[0]] + list(dims[2:]) if len(dims) > 1 else []
    return logits.reshape(dims), targets.reshape(tdims)


DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}


def precision_of(name):
    """The precision a result's name carries (`4096x4096 bf16`), f32 if none."""
    for p in ("bf16", "f16"):
        if name.endswith(" " + p):
            return p
    return "f32"


def torch_time(dims, device, iters, precision="f32", compiled=False):
    """Median ms of F.cross_entropy + backward on xent's data in `precision`;
    None when torch.compile is asked for and fails here."""
    import torch
    import torch.nn.functional as F

    logits, targets = bench_data(dims)
    dtype = getattr(torch, DTYPES[precision])
    x = torch.from_numpy(logits).to(device=device, dtype=dtype).requires_grad_(True)
    t = torch.from_numpy(targets).to(device)

    def step(x, t):
        loss = F.cross_entropy(x, t)
        loss.backward()
        return loss

    if compiled:
        try:
            step = torch.compile(step)
            step(x, t)
        except Exception as e:  # noqa: BLE001 - any failure means "not available here"
            print(f"torch.compile unavailable for {dims} {precision}: {type(e).__name__}", file=sys.stderr)
            return None
    times = []
    for i in range(iters + 1):
        x.grad = None
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step(x, t)
        if device == "cuda":
            torch.cuda.synchronize()
        if i > 0:
            times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--cases", default=",".join(REFERENCE))
    ap.add_argument("--xent", help="the xent binary (default: cargo run --release)")
    ap.add_argument("--precision", default="f32", help="comma-separated: f32, f16, bf16")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the step")
    ap.add_argument("--no-install", action="store_true", help="never pip-install PyTorch")
    ap.add_argument("--json", help="also write the results as JSON here")
    args = ap.parse_args()
    if args.no_install:
        try:
            import torch  # noqa: F401
        except ImportError:
            sys.exit("PyTorch is not installed (and --no-install)")
    else:
        ensure_torch()
    import torch

    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count())
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    xent = [args.xent] if args.xent else ["cargo", "run", "--quiet", "--release", "--"]
    cmd = xent + ["bench", "--json", "--no-cpu", "--iters", str(args.iters), "--cases", args.cases,
                  "--precision", args.precision]
    out = subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    print(f"xent adapter: {report['adapter']}")
    print(f"torch {torch.__version__} on {args.device}"
          + (f" ({torch.get_num_threads()} threads)" if args.device == "cpu" else f" ({torch.cuda.get_device_name()})"))
    # Speed-up from wall times on both sides (xent: record + submit + wait).
    print(f"{'case':>22} {'xent wall':>10} {'xent gpu':>9} {'torch':>9} {'speed-up':>9} {'compiled':>9} "
          f"{'speed-up':>9} {'xent GB/s':>10} {'of copy':>8}")
    rows = []
    for r in report["results"]:
        precision = precision_of(r["name"])
        t_ms = torch_time(r["dims"], args.device, args.iters, precision)
        c_ms = torch_time(r["dims"], args.device, args.iters, precision, compiled=True) if args.compile else None
        gpu = f"{r['gpu_ms']:9.2f}" if r["gpu_ms"] is not None else f"{'-':>9}"
        comp = f"{c_ms:9.2f} {c_ms / r['wall_ms']:8.2f}x" if c_ms is not None else f"{'-':>9} {'-':>9}"
        print(f"{r['name']:>22} {r['wall_ms']:10.2f} {gpu} {t_ms:9.2f} {t_ms / r['wall_ms']:8.2f}x {comp} "
              f"{r['gbps']:10.2f} {r['copy_ratio']:7.0%}")
        rows.append({**r, "precision": precision, "torch_ms": t_ms, "torch_compiled_ms": c_ms,
                     "speedup_eager": t_ms / r["wall_ms"],
                     "speedup_compiled": c_ms / r["wall_ms"] if c_ms is not None else None})
        # After every case: a time limit that ends the run keeps what was measured.
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"adapter": report["adapter"], "torch": torch.__version__, "device": args.device,
                           "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()
