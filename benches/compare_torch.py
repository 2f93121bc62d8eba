#!/usr/bin/env python3
"""xent's fused cross-entropy against PyTorch's F.cross_entropy, forward + backward,
on the same shapes and the same data, measured in the same run.

    python3 benches/compare_torch.py [--device cpu|cuda] [--iters N] [--cases 4096x4096,65536x32]

Runs `cargo run --release -- bench --json` for xent (on the default adapter,
WGPU_BACKEND etc. honoured), then PyTorch on the device given (CPU by default,
with torch.set_num_threads(os.cpu_count())). PyTorch is installed from the
package index when missing. Not part of CI.
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


def torch_time(dims, device, iters):
    import torch
    import torch.nn.functional as F

    logits, targets = bench_data(dims)
    x = torch.from_numpy(logits).to(device).requires_grad_(True)
    t = torch.from_numpy(targets).to(device)
    times = []
    for i in range(iters + 1):
        x.grad = None
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss = F.cross_entropy(x, t)
        loss.backward()
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
    args = ap.parse_args()
    ensure_torch()
    import torch

    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count())
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = ["cargo", "run", "--quiet", "--release", "--", "bench", "--json", "--no-cpu",
           "--iters", str(args.iters), "--cases", args.cases]
    out = subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    print(f"xent adapter: {report['adapter']}")
    print(f"torch {torch.__version__} on {args.device}"
          + (f" ({torch.get_num_threads()} threads)" if args.device == "cpu" else f" ({torch.cuda.get_device_name()})"))
    # Speed-up from wall times on both sides (xent: record + submit + wait).
    print(f"{'shape':>16} {'xent wall':>10} {'xent gpu':>9} {'torch':>9} {'speed-up':>9} {'xent GB/s':>10} {'of copy':>8}")
    for r in report["results"]:
        t_ms = torch_time(r["dims"], args.device, args.iters)
        gpu = f"{r['gpu_ms']:9.2f}" if r["gpu_ms"] is not None else f"{'-':>9}"
        print(f"{r['name']:>16} {r['wall_ms']:10.2f} {gpu} {t_ms:9.2f} {t_ms / r['wall_ms']:8.2f}x "
              f"{r['gbps']:10.2f} {r['copy_ratio']:7.0%}")


if __name__ == "__main__":
    main()
