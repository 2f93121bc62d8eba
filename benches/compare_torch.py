#!/usr/bin/env python3
"""xent's fused cross-entropy against PyTorch's F.cross_entropy, forward + backward,
on the same shapes and the same data, measured in the same run; softmax and its
backward against PyTorch's; Liger-Kernel's losses beside them where installed.

    python3 benches/compare_torch.py [--device cpu|cuda] [--iters N] [--cases 4096x4096,65536x32]
        [--xent PATH] [--precision f32,bf16] [--compile] [--no-install] [--json OUT]
    python3 benches/compare_torch.py --linear [2048x512x32000,1024x768x50257] [--device cpu|cuda]
        [--iters N] [--xent PATH] [--precision f32,bf16] [--no-install] [--json OUT]

Runs `xent bench --json` (the binary given by --xent, else `cargo run --release`;
on the default adapter, WGPU_BACKEND etc. honoured), then PyTorch on the device
given (CPU by default, with torch.set_num_threads(os.cpu_count())) in each
precision (bf16 and f16: the logits in that dtype, as xent stores them), eager
and, with --compile, `torch.compile` of the same forward + backward where it
works. PyTorch is installed from the package index when missing, unless
--no-install. Not part of CI.

With --linear, the fused linear + cross-entropy instead (cases NxHxV: N rows
of hidden size H, a vocabulary of V; `xent bench --json --linear`, forward and
backward, gradients of h and W, no bias) against PyTorch eager
`F.cross_entropy((h @ W.T).float(), t)` + backward (h and W in the precision's
dtype), `F.linear_cross_entropy` where this torch has it (chunked, with
`options=LinearCrossEntropyOptions()` where it takes them) and PyTorch's plain
`h @ W.T` for xent's forward product. Memory: xent's scratch beside the N·V·4
bytes of f32 logits; PyTorch's on CUDA is measured (max_memory_allocated during
the step less what is left after it: the intermediates beyond inputs and
gradients), on CPU a lower bound, not a measurement: the f32 logits plus
their gradient, 2·N·V·4 bytes.
"""
import argparse
import inspect
import json
import os
import subprocess
import sys
import time
import warnings

REFERENCE = ["4096x4096", "256x50257", "65536x32", "16x128256", "8x21x256x256"]
LINEAR = ["2048x512x32000", "1024x768x50257", "8192x256x4096"]
GOLDEN, C1, C2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def ensure_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "torch", "numpy"])


def draws(first, count, seed=0x5EED):
    """splitmix64's draws number first .. first + count - 1 (the first draw is 1)."""
    import numpy as np

    i = np.arange(first, first + count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + i * np.uint64(GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(C1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(C2)
    return z ^ (z >> np.uint64(31))


def unit(z):
    """A draw's top 24 bits as a float32 in [0, 1)."""
    import numpy as np

    return (z >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)


def bench_data(dims, seed=0x5EED):
    """xent::bench::bench_data, vectorised: splitmix64 over consecutive states."""
    import numpy as np

    n = int(np.prod(dims))
    classes = dims[1] if len(dims) > 1 else dims[0]
    rows = n // classes

    logits = unit(draws(1, n, seed)) * np.float32(20) - np.float32(10)
    targets = (draws(n + 1, rows, seed) % np.uint64(classes)).astype(np.int64)
    tdims = [dims[0]] + list(dims[2:]) if len(dims) > 1 else []
    return logits.reshape(dims), targets.reshape(tdims)


DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}


def precision_of(name):
    """The precision a result's name carries (`4096x4096 bf16`), f32 if none."""
    for p in ("bf16", "f16"):
        if name.endswith(" " + p):
            return p
    return "f32"


SOFTMAX_OPS = ("softmax", "log-softmax", "softmax-backward", "log-softmax-backward")


def op_of(name):
    """The op a result's name starts with (`softmax 4096x4096 bf16`):
    "cross-entropy" for a bare shape (`4096x4096 bf16`)."""
    first = name.split()[0]
    return "cross-entropy" if first[0].isdigit() else first


def softmax_data(op, dims):
    """xent::bench's data for a softmax case: the logits (seed 0x5eed); for a
    backward, a forward output from them (p = (x + 10.5) / (10.5 C), or its
    log) and dy (seed 0x7a67, divided by 10)."""
    import numpy as np

    x, _ = bench_data(dims)
    if not op.endswith("backward"):
        return x, None
    classes = dims[1] if len(dims) > 1 else dims[0]
    p = (x + np.float32(10.5)) / np.float32(10.5 * classes)
    y = np.log(p) if op.startswith("log") else p
    dy, _ = bench_data(dims, 0x7A67)
    return y.astype(np.float32), (dy / np.float32(10)).astype(np.float32)


def torch_softmax_time(op, dims, device, iters, precision="f32", compiled=False):
    """Median ms of PyTorch's softmax op (or its backward kernel) on xent's
    data, along dim 1 as xent; None when torch.compile fails here."""
    import torch

    a, b = softmax_data(op, dims)
    dtype = getattr(torch, DTYPES[precision])
    a = torch.from_numpy(a).to(device=device, dtype=dtype)
    b = None if b is None else torch.from_numpy(b).to(device=device, dtype=dtype)
    step = {
        "softmax": lambda: torch.softmax(a, 1),
        "log-softmax": lambda: torch.log_softmax(a, 1),
        "softmax-backward": lambda: torch._softmax_backward_data(b, a, 1, dtype),
        "log-softmax-backward": lambda: torch._log_softmax_backward_data(b, a, 1, dtype),
    }[op]
    # No autograd anywhere (a compile made with it on would be made again
    # for the timed runs without).
    with torch.no_grad():
        if compiled:
            try:
                step = torch.compile(step)
                step()
            except Exception as e:  # noqa: BLE001 - any failure means "not available here"
                print(f"torch.compile unavailable for {op} {dims} {precision}: {type(e).__name__}",
                      file=sys.stderr)
                return None
        return median_ms(step, device, iters)


def liger():
    """Liger-Kernel's losses module, or None (with why) where it is absent or
    cannot run (it is Triton: CUDA only)."""
    try:
        import liger_kernel.transformers as lk
    except Exception as e:  # noqa: BLE001 - any failure means "not available here"
        return None, f"n/a (no Liger-Kernel: {type(e).__name__})"
    return lk, getattr(sys.modules.get("liger_kernel"), "__version__", "installed")


def liger_ce_time(dims, device, iters, precision="f32"):
    """Median ms of LigerCrossEntropyLoss + backward on xent's data, or None
    (Liger absent, not CUDA, or not a case of shape (N, C)). Liger writes
    the gradient over its input in the forward: each run starts from a
    fresh copy, untimed."""
    import torch

    lk, _ = liger()
    if lk is None or device != "cuda" or len(dims) != 2:
        return None
    logits, targets = bench_data(dims)
    dtype = getattr(torch, DTYPES[precision])
    x0 = torch.from_numpy(logits).to(device=device, dtype=dtype)
    x = x0.clone().requires_grad_(True)
    t = torch.from_numpy(targets).to(device)
    loss_fn = lk.LigerCrossEntropyLoss()

    def fresh():
        x.grad = None
        with torch.no_grad():
            x.copy_(x0)

    def step():
        loss_fn(x, t).backward()

    try:
        return median_ms(step, device, iters, fresh)
    except Exception as e:  # noqa: BLE001 - any failure means "not available here"
        print(f"Liger cross-entropy failed for {dims} {precision}: {type(e).__name__}: {e}", file=sys.stderr)
        return None


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
    def clear():
        x.grad = None

    return median_ms(lambda: step(x, t), device, iters, clear)


def linear_bench_data(n, h, v, seed=0x5EED):
    """xent::bench::linear_bench_data: hidden (N, H) uniform in [-1, 1), weight
    (V, H) uniform in [-1/sqrt(H), 1/sqrt(H)), targets (N,); one splitmix64
    stream in that order, all in float32."""
    import numpy as np

    scale = np.float32(1) / np.sqrt(np.float32(h))
    hidden = unit(draws(1, n * h, seed)) * np.float32(2) - np.float32(1)
    weight = (unit(draws(1 + n * h, v * h, seed)) * np.float32(2) - np.float32(1)) * scale
    targets = (draws(1 + n * h + v * h, n, seed) % np.uint64(v)).astype(np.int64)
    return hidden.reshape(n, h), weight.reshape(v, h), targets


def median_ms(step, device, iters, before=None):
    """Median ms of `step()` over `iters` runs after a warm-up; `before()`
    (untimed) ahead of each."""
    import torch

    times = []
    for i in range(iters + 1):
        if before is not None:
            before()
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i > 0:
            times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return times[len(times) // 2]


def cuda_peak(step, before):
    """Bytes a CUDA step holds at its peak beyond what is left after it
    (inputs, gradients): its intermediates, e.g. the logits."""
    import torch

    before()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - torch.cuda.memory_allocated()


def linear_cross_entropy_fn():
    """PyTorch's fused op as (call(x, w, t), path), or (None, why) when this
    torch lacks it. Its chunked path where the signature takes `options`
    (torch.nn.LinearCrossEntropyOptions), else its plain call."""
    import torch
    import torch.nn.functional as F

    fn = getattr(F, "linear_cross_entropy", None)
    if fn is None:
        return None, f"n/a (torch {torch.__version__} has no F.linear_cross_entropy)"
    params = inspect.signature(fn).parameters
    options = getattr(torch.nn, "LinearCrossEntropyOptions", None)
    if "options" in params and options is not None:
        return (lambda x, w, t: fn(x, w, t, options=options())), "chunked"
    return (lambda x, w, t: fn(x, w, t)), "plain"


def torch_linear(n, h, v, device, iters, precision="f32"):
    """PyTorch on xent's fused case in `precision` (h and W in its dtype,
    the loss in f32): median ms of eager linear + cross-entropy + backward,
    of F.linear_cross_entropy + backward (None where absent or failing), of
    Liger-Kernel's LigerFusedLinearCrossEntropyLoss + backward (None where
    absent, failing or not CUDA), and of the plain product h @ W.T;
    intermediate bytes (CUDA only); the loss."""
    import torch
    import torch.nn.functional as F

    hidden, weight, targets = linear_bench_data(n, h, v)
    dtype = getattr(torch, DTYPES[precision])
    x = torch.from_numpy(hidden).to(device=device, dtype=dtype).requires_grad_(True)
    w = torch.from_numpy(weight).to(device=device, dtype=dtype).requires_grad_(True)
    t = torch.from_numpy(targets).to(device)
    del hidden, weight, targets
    losses = {}

    def clear():
        x.grad = None
        w.grad = None

    def eager():
        logits = x @ w.T
        loss = F.cross_entropy(logits.float(), t)
        loss.backward()
        losses["eager"] = loss

    out = {"eager_ms": median_ms(eager, device, iters, clear)}
    out["eager_peak_bytes"] = cuda_peak(eager, clear) if device == "cuda" else None
    out["loss"] = losses["eager"].item()

    call, path = linear_cross_entropy_fn()
    out["lce_path"], out["lce_ms"], out["lce_peak_bytes"], out["lce_loss"] = path, None, None, None
    if call is not None:
        def fused():
            loss = call(x, w, t)
            loss.backward()
            losses["fused"] = loss

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                clear()
                fused()  # also the warm-up: a fall-back to the reference path warns here
            if any("fall" in str(c.message).lower() for c in caught):
                out["lce_path"] = path + ", fell back: " + str(caught[0].message).splitlines()[0][:80]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out["lce_ms"] = median_ms(fused, device, iters, clear)
                out["lce_peak_bytes"] = cuda_peak(fused, clear) if device == "cuda" else None
            out["lce_loss"] = losses["fused"].item()
        except Exception as e:  # noqa: BLE001 - any failure means "not available here"
            print(f"F.linear_cross_entropy failed for {n}x{h}x{v} {precision}: {type(e).__name__}: {e}",
                  file=sys.stderr)
            out["lce_path"] = f"n/a ({type(e).__name__})"
    clear()

    out["liger_ms"], out["liger_peak_bytes"] = None, None
    lk, _ = liger()
    if lk is not None and device == "cuda":
        flce = lk.LigerFusedLinearCrossEntropyLoss()

        def liger_step():
            flce(w, x, t).backward()

        try:
            out["liger_ms"] = median_ms(liger_step, device, iters, clear)
            out["liger_peak_bytes"] = cuda_peak(liger_step, clear)
        except Exception as e:  # noqa: BLE001 - any failure means "not available here"
            print(f"Liger fused linear cross-entropy failed for {n}x{h}x{v} {precision}: "
                  f"{type(e).__name__}: {e}", file=sys.stderr)
    clear()

    xd, wd = x.detach(), w.detach()
    with torch.no_grad():
        out["matmul_ms"] = median_ms(lambda: xd @ wd.T, device, iters)
    out["matmul_gflops"] = 2 * n * h * v / out["matmul_ms"] / 1e6
    return out


def run_linear(args, torch, xent, root):
    """--linear: xent's fused linear cross-entropy against PyTorch's, case by case."""
    if args.compile:
        print("--compile is not used with --linear", file=sys.stderr)
    cmd = xent + ["bench", "--json", "--linear", args.linear, "--iters", str(args.iters),
                  "--precision", args.precision]
    out = subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    print(f"xent adapter: {report['adapter']}")
    print(f"torch {torch.__version__} on {args.device}"
          + (f" ({torch.get_num_threads()} threads)" if args.device == "cpu" else f" ({torch.cuda.get_device_name()})"))
    _, path = linear_cross_entropy_fn()
    print(f"torch linear_cross_entropy: {path}; Liger-Kernel: {liger()[1]}")
    # Speed ratio: torch eager / xent (xent's GPU clock where it has one, else wall).
    print(f"{'case':>16} {'prec':>4} {'xent ms':>9} {'clock':>5} {'eager ms':>9} {'lce ms':>9} {'liger ms':>9} "
          f"{'speed-up':>8} "
          f"{'xent GF/s':>9} {'torch mm':>9} {'xent mm':>9} {'of torch':>8} {'scratch MB':>10} "
          f"{'logits MB':>9} {'torch MB':>9}")
    rows = []
    for r in report["linear"]:
        n, h, v = r["n"], r["h"], r["v"]
        precision = r.get("precision") or precision_of(r["name"])
        tr = torch_linear(n, h, v, args.device, args.iters, precision)
        logits_bytes = n * v * 4
        if tr["eager_peak_bytes"] is not None:
            peak, peak_kind = tr["eager_peak_bytes"], "measured"
        else:
            peak, peak_kind = 2 * logits_bytes, "lower bound"
        lce = f"{tr['lce_ms']:9.2f}" if tr["lce_ms"] is not None else f"{'n/a':>9}"
        lig = f"{tr['liger_ms']:9.2f}" if tr["liger_ms"] is not None else f"{'n/a':>9}"
        mm_ratio = r["matmul_gflops"] / tr["matmul_gflops"]
        peak_s = f"{peak / 1e6:9.1f}" if peak_kind == "measured" else f"{'>=' + format(peak / 1e6, '.1f'):>9}"
        print(f"{f'{n}x{h}x{v}':>16} {precision:>4} {r['ms']:9.2f} {r['clock']:>5} "
              f"{tr['eager_ms']:9.2f} {lce} {lig} {tr['eager_ms'] / r['ms']:7.2f}x {r['gflops']:9.1f} "
              f"{tr['matmul_gflops']:9.1f} {r['matmul_gflops']:9.1f} {mm_ratio:7.0%} "
              f"{r['scratch_bytes'] / 1e6:10.1f} {logits_bytes / 1e6:9.1f} {peak_s}")
        rows.append({**r, "precision": precision, "torch_eager_ms": tr["eager_ms"],
                     "torch_lce_ms": tr["lce_ms"], "torch_lce_path": tr["lce_path"],
                     "speedup_eager": tr["eager_ms"] / r["ms"],
                     "speedup_lce": tr["lce_ms"] / r["ms"] if tr["lce_ms"] is not None else None,
                     "torch_liger_ms": tr["liger_ms"],
                     "speedup_liger": tr["liger_ms"] / r["ms"] if tr["liger_ms"] is not None else None,
                     "torch_matmul_ms": tr["matmul_ms"], "torch_matmul_gflops": tr["matmul_gflops"],
                     "matmul_of_torch": mm_ratio, "logits_f32_bytes": logits_bytes,
                     "torch_peak_bytes": peak, "torch_peak_kind": peak_kind,
                     "torch_lce_peak_bytes": tr["lce_peak_bytes"],
                     "torch_liger_peak_bytes": tr["liger_peak_bytes"],
                     "torch_loss": tr["loss"], "torch_lce_loss": tr["lce_loss"]})
        # After every case: a time limit that ends the run keeps what was measured.
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"adapter": report["adapter"], "torch": torch.__version__, "device": args.device,
                           "linear": rows}, f, indent=1)
    print("torch MB: the step's intermediates beyond inputs and gradients; "
          + ("max_memory_allocated, measured" if args.device == "cuda"
             else "on CPU not measured: >= the f32 logits and their gradient (2·N·V·4 bytes)"))


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
    ap.add_argument("--linear", nargs="?", const=",".join(LINEAR), metavar="CASES",
                    help="the fused linear cross-entropy instead, cases NxHxV (default: %(const)s)")
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
    if args.linear:
        return run_linear(args, torch, xent, root)
    cmd = xent + ["bench", "--json", "--no-cpu", "--iters", str(args.iters), "--cases", args.cases,
                  "--precision", args.precision]
    out = subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    print(f"xent adapter: {report['adapter']}")
    print(f"torch {torch.__version__} on {args.device}"
          + (f" ({torch.get_num_threads()} threads)" if args.device == "cpu" else f" ({torch.cuda.get_device_name()})"))
    lk, liger_version = liger()
    print(f"Liger-Kernel: {liger_version}")
    # Speed-up from wall times on both sides (xent: record + submit + wait).
    print(f"{'case':>34} {'xent wall':>10} {'xent gpu':>9} {'torch':>9} {'speed-up':>9} {'compiled':>9} "
          f"{'speed-up':>9} {'liger':>9} {'speed-up':>9} {'xent GB/s':>10} {'of copy':>8}")
    rows = []
    for r in report["results"]:
        precision = precision_of(r["name"])
        op = op_of(r["name"])
        if op == "cross-entropy":
            t_ms = torch_time(r["dims"], args.device, args.iters, precision)
            c_ms = torch_time(r["dims"], args.device, args.iters, precision, compiled=True) if args.compile else None
            l_ms = liger_ce_time(r["dims"], args.device, args.iters, precision)
        elif op in SOFTMAX_OPS:
            t_ms = torch_softmax_time(op, r["dims"], args.device, args.iters, precision)
            c_ms = (torch_softmax_time(op, r["dims"], args.device, args.iters, precision, compiled=True)
                    if args.compile else None)
            l_ms = None
        else:
            print(f"{r['name']:>34}: no PyTorch peer timed for {op}", file=sys.stderr)
            continue
        wall = r["wall_ms"]
        gpu = f"{r['gpu_ms']:9.2f}" if r["gpu_ms"] is not None else f"{'-':>9}"
        peer = lambda ms: f"{ms:9.2f} {ms / wall:8.2f}x" if ms is not None else f"{'-':>9} {'-':>9}"  # noqa: E731
        print(f"{r['name']:>34} {wall:10.2f} {gpu} {peer(t_ms)} {peer(c_ms)} {peer(l_ms)} "
              f"{r['gbps']:10.2f} {r['copy_ratio']:7.0%}")
        ratio = lambda ms: ms / wall if ms is not None else None  # noqa: E731
        rows.append({**r, "op": op, "precision": precision, "torch_ms": t_ms, "torch_compiled_ms": c_ms,
                     "liger_ms": l_ms, "speedup_eager": ratio(t_ms), "speedup_compiled": ratio(c_ms),
                     "speedup_liger": ratio(l_ms)})
        # After every case: a time limit that ends the run keeps what was measured.
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"adapter": report["adapter"], "torch": torch.__version__, "device": args.device,
                           "liger": liger_version, "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()
