//! The `xent` binary, run as a process on temporary .npy files: its outputs
//! match the library's host API and CPU path, for cross-entropy and the
//! elementwise losses (`--loss`), `--backend cpu` agrees with the GPU,
//! `xent info` and `xent demo` succeed, and every bad input (an option the
//! loss does not take among them) gets exit status 2 with one `error: …`
//! line on stderr and no panic.
//!
//! Tests that need a GPU call [`gpu`] first: without an adapter they print a
//! loud notice and return, unless `XENT_REQUIRE_ADAPTER=1` makes that a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

use common::{Rng, WORKED_LOGITS, WORKED_TARGETS};
use npyz::WriterBuilder;
use xent::{
    cpu, Context, CrossEntropyOptions, ElementwiseLoss, ElementwiseOptions, ElementwiseOutput,
    InputKind, LossWeights, Reduction, Targets, Tolerance, Weights,
};

/// The one adapter check of the GPU tests: the shared context, or `None`
/// (after a loud notice on stderr) when there is no adapter; with
/// `XENT_REQUIRE_ADAPTER=1` a missing adapter panics instead.
fn gpu(test: &str) -> Option<&'static Context> {
    static CTX: OnceLock<Result<Context, String>> = OnceLock::new();
    let ctx = CTX.get_or_init(|| Context::from_env().map_err(|e| e.to_string()));
    match ctx {
        Ok(c) => Some(c),
        Err(e) if std::env::var("XENT_REQUIRE_ADAPTER").is_ok_and(|v| v == "1") => {
            panic!("XENT_REQUIRE_ADAPTER=1 but no GPU adapter is usable: {e}")
        }
        Err(e) => {
            eprintln!(
                "!!!!! SKIPPED {test}: no GPU adapter ({e}); set XENT_REQUIRE_ADAPTER=1 to make this a failure"
            );
            None
        }
    }
}

fn xent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xent"))
        .args(args)
        .output()
        .expect("run the xent binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The `error: …` lines of stderr, after checking there is no panic or
/// backtrace. Mesa's Vulkan and GL drivers print their own
/// `error: XDG_RUNTIME_DIR …` notice on headless machines; it is not xent's.
fn errors(o: &Output) -> Vec<String> {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "xent panicked: {stderr}");
    assert!(
        !stderr.contains("internal error"),
        "xent hit a bug: {stderr}"
    );
    assert!(
        !stderr.contains("RUST_BACKTRACE") && !stderr.contains("stack backtrace"),
        "xent printed a backtrace: {stderr}"
    );
    stderr
        .lines()
        .filter(|l| l.starts_with("error: ") && !l.contains("XDG_RUNTIME_DIR"))
        .map(String::from)
        .collect()
}

/// Asserts a successful run and returns its stdout.
fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}; stdout: {}; errors: {:?}",
        o.status.code(),
        stdout(o),
        errors(o)
    );
    stdout(o)
}

/// Asserts exit status 2 and exactly one `error:` line containing `message`.
fn fails_with(args: &[&str], message: &str) {
    let o = xent(args);
    let errs = errors(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {errs:?}");
    assert_eq!(errs.len(), 1, "{args:?}: want one error line, got {errs:?}");
    assert!(
        errs[0].contains(message),
        "{args:?}: {:?} should contain {message:?}",
        errs[0]
    );
}

fn write<T: npyz::AutoSerialize + Copy>(
    dir: &Path,
    name: &str,
    shape: &[usize],
    data: &[T],
) -> PathBuf {
    write_ordered(dir, name, shape, data, npyz::Order::C)
}

fn write_ordered<T: npyz::AutoSerialize + Copy>(
    dir: &Path,
    name: &str,
    shape: &[usize],
    data: &[T],
    order: npyz::Order,
) -> PathBuf {
    let path = dir.join(name);
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let file = std::fs::File::create(&path).unwrap();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .order(order)
        .writer(std::io::BufWriter::new(file))
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    path
}

/// A float32 .npy's (shape, values).
type Npy = (Vec<usize>, Vec<f32>);

/// Reads a float32 .npy written by xent: (shape, values).
fn read_f32(path: &Path) -> Npy {
    let file = std::fs::File::open(path).unwrap();
    let npy = npyz::NpyFile::new(std::io::BufReader::new(file)).unwrap();
    assert_eq!(
        npy.dtype().descr(),
        "'<f4'",
        "{} is not float32",
        path.display()
    );
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (shape, npy.into_vec::<f32>().unwrap())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

// ------------------------------------------------------------- demo, info

#[test]
fn demo_is_the_default_and_passes() {
    if gpu("demo_is_the_default_and_passes").is_none() {
        return;
    }
    for args in [&[][..], &["demo"][..]] {
        let start = Instant::now();
        let o = xent(args);
        let secs = start.elapsed().as_secs_f64();
        eprintln!("xent {args:?} took {secs:.2} s");
        let out = ok(&o);
        assert!(out.contains("adapter:"), "{out}");
        assert!(out.contains("3.7925"), "{out}");
        for shape in ["3x5", "2x21x64x64", "8x50257", "3x4"] {
            assert!(out.contains(shape), "no {shape} case: {out}");
        }
        // The multi-label row: bce-with-logits with a pos_weight, mean
        // 0.3893 by PyTorch's formula, checked against the CPU.
        let row = out
            .lines()
            .find(|l| l.starts_with("multi-label (pos_weight)"))
            .unwrap_or_else(|| panic!("no multi-label row: {out}"));
        assert!(row.contains("3x4") && row.contains("0.3893"), "{row}");
        assert!(row.trim_end().ends_with(" ok"), "{row}");
        assert!(out.contains("all 4 GPU results agree"), "{out}");
        assert!(!out.contains("MISMATCH"), "{out}");
        assert!(out.contains("agree with the CPU"), "{out}");
        // The worked example's gradient: (softmax - onehot) / 3, row 0 = [+0.3332, -0.3332, 0, 0, 0].
        assert!(
            out.contains("[+0.3332, -0.3332, +0.0000, +0.0000, +0.0000]"),
            "{out}"
        );
    }
}

#[test]
fn info_lists_an_adapter() {
    if gpu("info_lists_an_adapter").is_none() {
        return;
    }
    let out = ok(&xent(&["info"]));
    for field in [
        "backend:",
        "device type:",
        "driver:",
        "max_storage_buffer_binding_size",
        "largest storage binding",
        "max_buffer_size",
        "max_compute_workgroups_per_dimension",
        "max_compute_workgroup_size_x",
        "max_compute_invocations_per_workgroup",
        "subgroups",
        "f16",
        "timestamps",
    ] {
        assert!(out.contains(field), "no {field:?}: {out}");
    }
    assert!(out.contains("[0] "), "no adapter listed: {out}");
}

// ------------------------------------------------------------- loss: outputs

#[test]
fn mean_loss_and_gradient_match_the_host_api() {
    let Some(ctx) = gpu("mean_loss_and_gradient_match_the_host_api") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = write(d, "x.npy", &[3, 5], &WORKED_LOGITS);
    let t = write(d, "t.npy", &[3], &WORKED_TARGETS);
    let (lp, gp) = (d.join("loss.npy"), d.join("grad.npy"));
    let out = ok(&xent(&[
        "loss",
        "--logits",
        s(&x),
        "--targets",
        s(&t),
        "--loss-out",
        s(&lp),
        "--grad-out",
        s(&gp),
    ]));
    assert!(out.contains("loss (mean): 3.792"), "{out}");
    assert!(out.contains("adapter:"), "{out}");
    assert!(out.contains("largest |GPU - CPU|"), "{out}");

    let lib = ctx
        .cross_entropy(
            &WORKED_LOGITS,
            &[3, 5],
            &WORKED_TARGETS,
            None,
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
    let (loss_shape, loss) = read_f32(&lp);
    let (grad_shape, grad) = read_f32(&gp);
    assert_eq!(loss_shape, Vec::<usize>::new(), "mean is shape ()");
    assert_eq!(grad_shape, vec![3, 5]);
    assert_eq!(loss, lib.loss);
    assert_eq!(Some(grad), lib.grad);
    assert!((loss[0] - 3.7925).abs() < 1e-4);
}

#[test]
fn precision_bf16_stores_and_checks_in_bf16() {
    let Some(ctx) = gpu("precision_bf16_stores_and_checks_in_bf16") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // float64 logits, rounded to bf16 on load.
    let x64: Vec<f64> = (0..3 * 131)
        .map(|i| (f64::from(i) * 0.37).sin() * 6.0)
        .collect();
    let t: Vec<i64> = vec![1, 130, 64];
    let x = write(d, "x.npy", &[3, 131], &x64);
    let tp = write(d, "t.npy", &[3], &t);
    let xb: Vec<half::bf16> = x64.iter().map(|&v| half::bf16::from_f64(v)).collect();
    bf16_cross_entropy_is_the_librarys(ctx, d, (&x, &xb), (&tp, &t));
    fails_with(
        &[
            "loss",
            "--logits",
            s(&x),
            "--targets",
            s(&tp),
            "--precision",
            "f64",
        ],
        "--precision",
    );
    bf16_mse_is_the_librarys(ctx, d, (&x, &xb));
}

/// `--precision bf16` of logits `x` and targets `t` (their files and
/// values) writes the library's bf16 outputs; the CPU path agrees.
fn bf16_cross_entropy_is_the_librarys(
    ctx: &Context,
    d: &Path,
    (x, xb): (&Path, &[half::bf16]),
    (tp, t): (&Path, &[i64]),
) {
    let (lp, gp) = (d.join("loss.npy"), d.join("grad.npy"));
    let args = |precision: &'static str| {
        vec![
            "loss".to_string(),
            "--logits".into(),
            s(x).into(),
            "--targets".into(),
            s(tp).into(),
            "--loss-out".into(),
            s(&lp).into(),
            "--grad-out".into(),
            s(&gp).into(),
            "--precision".into(),
            precision.into(),
        ]
    };
    let run = |precision| {
        let a = args(precision);
        xent(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = ok(&run("bf16"));
    assert!(out.contains("agree"), "{out}");
    let lib = ctx
        .cross_entropy_with(
            xb,
            &[3, 131],
            xent::Targets::I64(t),
            xent::Weights::none(),
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
    let (_, loss) = read_f32(&lp);
    let (_, grad) = read_f32(&gp);
    assert_eq!(loss, lib.loss);
    assert_eq!(Some(grad.clone()), lib.grad);
    // Exactly what bf16 holds: every gradient value survives a bf16 round trip.
    assert!(grad.iter().all(|&g| half::bf16::from_f32(g).to_f32() == g));
    // The CPU path computes on the same rounded logits.
    let mut a = args("bf16");
    a.extend(["--backend".to_string(), "cpu".to_string()]);
    ok(&xent(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    let (_, cpu_loss) = read_f32(&lp);
    assert!(
        (cpu_loss[0] - lib.loss[0]).abs() <= 1e-4 * lib.loss[0].abs(),
        "{cpu_loss:?} vs {:?}",
        lib.loss
    );
}

/// An elementwise loss in bf16: input and target rounded, the gradient bf16's.
fn bf16_mse_is_the_librarys(ctx: &Context, d: &Path, (x, xb): (&Path, &[half::bf16])) {
    let gp = d.join("grad.npy");
    let y = write(d, "y.npy", &[3, 131], &vec![0.25f64; 3 * 131]);
    let out = ok(&xent(&[
        "loss",
        "--loss",
        "mse",
        "--logits",
        s(x),
        "--targets",
        s(&y),
        "--precision",
        "bf16",
        "--grad-out",
        s(&gp),
    ]));
    assert!(out.contains("agree"), "{out}");
    let (_, grad) = read_f32(&gp);
    let yb = vec![half::bf16::from_f32(0.25); 3 * 131];
    let lib = ctx
        .elementwise_loss(
            xb,
            &yb,
            &[3, 131],
            Default::default(),
            &xent::ElementwiseOptions::new(xent::ElementwiseLoss::Mse),
            &Default::default(),
        )
        .unwrap();
    assert_eq!(Some(grad), lib.grad);
}

#[test]
fn float16_files_are_read_exactly_and_stored_as_they_are_in_f16() {
    let Some(ctx) = gpu("float16_files_are_read_exactly_and_stored_as_they_are_in_f16") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // float16 logits of values f16 holds but bf16 does not (11-bit mantissas).
    let xh: Vec<half::f16> = (0..4 * 37)
        .map(|i| half::f16::from_f64((f64::from(i) * 0.61).sin() * 5.0 + 1.0 / 1024.0))
        .collect();
    let x32: Vec<f32> = xh.iter().map(|v| v.to_f32()).collect();
    let t: Vec<i64> = vec![0, 36, 5, 17];
    let (xp, tp, gp) = (
        write(d, "x.npy", &[4, 37], &xh),
        write(d, "t.npy", &[4], &t),
        d.join("grad.npy"),
    );
    let run = |precision: &str| {
        let out = ok(&xent(&[
            "loss",
            "--logits",
            s(&xp),
            "--targets",
            s(&tp),
            "--grad-out",
            s(&gp),
            "--precision",
            precision,
        ]));
        assert!(out.contains("agree"), "{precision}: {out}");
        read_f32(&gp).1
    };
    // f32: the file's values widened exactly, as the f32 host API takes them.
    let lib = ctx
        .cross_entropy(
            &x32,
            &[4, 37],
            &t,
            None,
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
    assert_eq!(Some(run("f32")), lib.grad);
    // f16: stored as they are (no second rounding), as the f16 host API.
    if ctx.device().features().contains(wgpu::Features::SHADER_F16) {
        let lib = ctx
            .cross_entropy_with(
                &xh,
                &[4, 37],
                xent::Targets::I64(&t),
                xent::Weights::none(),
                &Default::default(),
                &Default::default(),
            )
            .unwrap();
        assert_eq!(Some(run("f16")), lib.grad);
    }
    // float16 probability targets and elementwise targets are taken too.
    let probs: Vec<half::f16> = (0..4 * 37)
        .map(|i| half::f16::from_f32(if i % 37 == 3 { 1.0 } else { 0.0 }))
        .collect();
    let pp = write(d, "p.npy", &[4, 37], &probs);
    let out = ok(&xent(&["loss", "--logits", s(&xp), "--targets", s(&pp)]));
    assert!(out.contains("agree"), "{out}");
    let out = ok(&xent(&[
        "loss",
        "--loss",
        "mse",
        "--logits",
        s(&xp),
        "--targets",
        s(&pp),
    ]));
    assert!(out.contains("agree"), "{out}");
}

/// The reduction-none run, on `backend`, of logits, u8 mask and class
/// weights in `files` with ignore 255 and smoothing 0.1: its (loss, gradient)
/// as (shape, values), written to files tagged `tag` in `d`.
fn masked_none_run(d: &Path, [xp, tp, wp]: [&Path; 3], backend: &str, tag: &str) -> (Npy, Npy) {
    let (lp, gp) = (d.join(format!("l{tag}.npy")), d.join(format!("g{tag}.npy")));
    let out = ok(&xent(&[
        "loss",
        "--logits",
        s(xp),
        "--targets",
        s(tp),
        "--weights",
        s(wp),
        "--ignore-index",
        "255",
        "--reduction",
        "none",
        "--label-smoothing",
        "0.1",
        "--loss-out",
        s(&lp),
        "--grad-out",
        s(&gp),
        "--backend",
        backend,
    ]));
    assert!(out.contains("loss (none): count 30, sum "), "{out}");
    (read_f32(&lp), read_f32(&gp))
}

#[test]
fn none_with_u8_mask_weights_and_smoothing_matches_the_library_and_cpu_backend() {
    let name = "none_with_u8_mask_weights_and_smoothing_matches_the_library_and_cpu_backend";
    let Some(ctx) = gpu(name) else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rng = Rng(8);
    // A 2 x 4 x 3 x 5 map with a u8 mask and ignore 255, reduction none.
    let dims = [2usize, 4, 3, 5];
    let x: Vec<f32> = (0..120).map(|_| rng.uniform(-5.0, 5.0)).collect();
    let mask: Vec<u8> = (0..30)
        .map(|i| if i % 7 == 0 { 255 } else { rng.below(4) as u8 })
        .collect();
    let w = [0.5f64, 1.0, 2.0, 1.5];
    let (xp, tp, wp) = (
        write(d, "x.npy", &dims, &x),
        write(d, "t.npy", &[2, 3, 5], &mask),
        write(d, "w.npy", &[4], &w),
    );
    let run = |backend: &str, tag: &str| masked_none_run(d, [&xp, &tp, &wp], backend, tag);
    let ((loss_shape, loss), (grad_shape, grad)) = run("auto", "gpu");
    assert_eq!(loss_shape, vec![2, 3, 5]);
    assert_eq!(grad_shape, dims.to_vec());

    let w32 = to_f32(&w);
    let opts = CrossEntropyOptions {
        ignore_index: 255,
        reduction: Reduction::None,
        label_smoothing: 0.1,
        ..Default::default()
    };
    let class = Weights {
        class: Some(&w32[..]),
        sample: None,
    };
    let lib = ctx
        .cross_entropy_with(
            &x,
            &dims,
            Targets::U8(&mask),
            class,
            &opts,
            &Default::default(),
        )
        .unwrap();
    assert_eq!(loss, lib.loss);
    assert_eq!(Some(grad.clone()), lib.grad);
    for (i, &m) in mask.iter().enumerate() {
        if m == 255 {
            assert_eq!(loss[i], 0.0, "ignored pixel {i} has a loss");
        }
    }

    // --backend cpu: the f64 CPU path, rounded to f32, agrees with the GPU.
    let ((cpu_shape, cpu_loss), (_, cpu_grad)) = run("cpu", "cpu");
    assert_eq!(cpu_shape, loss_shape);
    let want = cpu::cross_entropy_with(&x, &dims, Targets::U8(&mask), class, &opts).unwrap();
    assert_eq!(cpu_loss, to_f32(&want.loss));
    assert_eq!(cpu_grad, to_f32(want.grad.as_deref().unwrap()));
    let tol = Tolerance::default();
    tol.check("loss", &loss, &want.loss_reference()).unwrap();
    tol.check("grad", &grad, &want.grad_reference().unwrap())
        .unwrap();
}

#[test]
fn sum_over_a_float64_map_with_int32_targets_agrees_with_the_cpu_backend() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rng = Rng(21);
    let dims = [2usize, 3, 2, 2];
    let x: Vec<f64> = (0..24).map(|_| f64::from(rng.uniform(-4.0, 4.0))).collect();
    // -100, the default ignore index, on one pixel.
    let t = [0i32, 2, -100, 1, 1, 0, 2, 2];
    let (xp, tp) = (
        write(d, "x.npy", &dims, &x),
        write(d, "t.npy", &[2, 2, 2], &t),
    );
    let args = |backend: &'static str, l: &Path, g: &Path| -> Output {
        xent(&[
            "loss",
            "--logits",
            s(&xp),
            "--targets",
            s(&tp),
            "--reduction",
            "sum",
            "--loss-out",
            s(l),
            "--grad-out",
            s(g),
            "--backend",
            backend,
        ])
    };
    // The CPU path needs no adapter, and reads float64 as float64.
    let (lc, gc) = (d.join("lc.npy"), d.join("gc.npy"));
    let out = ok(&args("cpu", &lc, &gc));
    assert!(out.contains("loss (sum): "), "{out}");
    let opts = CrossEntropyOptions {
        reduction: Reduction::Sum,
        ..Default::default()
    };
    let want =
        cpu::cross_entropy_with(&x, &dims, Targets::I32(&t), Weights::none(), &opts).unwrap();
    let (cpu_loss_shape, cpu_loss) = read_f32(&lc);
    let (cpu_grad_shape, cpu_grad) = read_f32(&gc);
    assert_eq!(cpu_loss_shape, Vec::<usize>::new());
    assert_eq!(cpu_grad_shape, dims.to_vec());
    assert_eq!(cpu_loss, to_f32(&want.loss));
    assert_eq!(cpu_grad, to_f32(want.grad.as_deref().unwrap()));
    // The ignored pixel (n 0, h 1, w 0) has no gradient.
    for c in 0..3 {
        assert_eq!(cpu_grad[c * 4 + 2], 0.0);
    }

    let Some(_) = gpu("sum_over_a_float64_map_with_int32_targets_agrees_with_the_cpu_backend")
    else {
        return;
    };
    let (lg, gg) = (d.join("lg.npy"), d.join("gg.npy"));
    let out = ok(&args("auto", &lg, &gg));
    assert!(out.contains("agree"), "{out}");
    let tol = Tolerance::default();
    tol.check("loss", &read_f32(&lg).1, &want.loss_reference())
        .unwrap();
    tol.check("grad", &read_f32(&gg).1, &want.grad_reference().unwrap())
        .unwrap();
}

#[test]
fn an_unbatched_input_takes_a_scalar_target() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = write(d, "x.npy", &[4], &[1.0f32, 2.0, 3.0, 4.0]);
    let t = write(d, "t.npy", &[], &[2i64]);
    let (lp, gp) = (d.join("l.npy"), d.join("g.npy"));
    let mut args = vec![
        "loss",
        "--logits",
        s(&x),
        "--targets",
        s(&t),
        "--reduction",
        "none",
        "--loss-out",
        s(&lp),
        "--grad-out",
        s(&gp),
    ];
    if gpu("an_unbatched_input_takes_a_scalar_target").is_none() {
        args.extend(["--backend", "cpu"]);
    }
    ok(&xent(&args));
    let want = cpu::cross_entropy(
        &[1.0f32, 2.0, 3.0, 4.0],
        &[4],
        &[2],
        None,
        &CrossEntropyOptions {
            reduction: Reduction::None,
            ..Default::default()
        },
    )
    .unwrap();
    let (loss_shape, loss) = read_f32(&lp);
    assert_eq!(loss_shape, Vec::<usize>::new(), "none of (C) is shape ()");
    let (grad_shape, grad) = read_f32(&gp);
    assert_eq!(grad_shape, vec![4]);
    let tol = Tolerance::default();
    tol.check("loss", &loss, &want.loss_reference()).unwrap();
    tol.check("grad", &grad, &want.grad_reference().unwrap())
        .unwrap();
}

#[test]
fn zero_d_inputs_give_zero_d_outputs_in_every_precision() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ctx = gpu("zero_d_inputs_give_zero_d_outputs_in_every_precision");
    let f16 = ctx.is_some_and(|c| c.device().features().contains(wgpu::Features::SHADER_F16));
    // Cross-entropy of an unbatched (C) input with a 0-d target, and the
    // elementwise losses of a 0-d input: the loss is 0-d for every
    // reduction, the gradient has the input's shape.
    let logits = write(d, "c.npy", &[3], &[0.5f32, 1.0, -2.0]);
    let class = write(d, "t.npy", &[], &[1i64]);
    let x = write(d, "x.npy", &[], &[0.25f32]);
    let y = write(d, "y.npy", &[], &[1.0f32]);
    let calls = [
        ("cross-entropy", &logits, &class, vec![3]),
        ("mse", &x, &y, vec![]),
        ("bce-with-logits", &x, &y, vec![]),
    ];
    for precision in ["f32", "bf16", "f16"] {
        // Without a device that stores f16, the CPU path rounds to it.
        let backend = if ctx.is_none() || (precision == "f16" && !f16) {
            "cpu"
        } else {
            "auto"
        };
        for (loss, input, target, grad_shape) in &calls {
            for reduction in ["none", "mean"] {
                let (lp, gp) = (d.join("l.npy"), d.join("g.npy"));
                let args = [
                    "loss",
                    "--loss",
                    loss,
                    "--logits",
                    s(input),
                    "--targets",
                    s(target),
                    "--precision",
                    precision,
                    "--reduction",
                    reduction,
                    "--backend",
                    backend,
                    "--loss-out",
                    s(&lp),
                    "--grad-out",
                    s(&gp),
                ];
                ok(&xent(&args));
                let what = format!("{loss} {precision} {reduction}");
                assert_eq!(read_f32(&lp).0, Vec::<usize>::new(), "loss of {what}");
                assert_eq!(&read_f32(&gp).0, grad_shape, "gradient of {what}");
            }
        }
    }
}

#[test]
fn an_empty_batch_gives_pytorchs_answers() {
    // torch: mean nan, sum 0, none an empty (0,) tensor, an empty gradient.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = write(d, "x.npy", &[0, 5], &[0.0f32; 0]);
    let t = write(d, "t.npy", &[0], &[0i64; 0]);
    let (lp, gp) = (d.join("l.npy"), d.join("g.npy"));
    let backend = if gpu("an_empty_batch_gives_pytorchs_answers").is_some() {
        "auto"
    } else {
        "cpu"
    };
    for (reduction, shape, want) in [
        ("mean", vec![], vec![f32::NAN]),
        ("sum", vec![], vec![0.0]),
        ("none", vec![0], vec![]),
    ] {
        let out = ok(&xent(&[
            "loss",
            "--logits",
            s(&x),
            "--targets",
            s(&t),
            "--reduction",
            reduction,
            "--loss-out",
            s(&lp),
            "--grad-out",
            s(&gp),
            "--backend",
            backend,
        ]));
        if reduction == "none" {
            assert!(out.contains("count 0"), "{out}");
        }
        let (loss_shape, loss) = read_f32(&lp);
        assert_eq!(loss_shape, shape, "{reduction}");
        assert_eq!(loss.len(), want.len(), "{reduction}");
        assert!(
            loss.iter()
                .zip(&want)
                .all(|(g, w)| g == w || (g.is_nan() && w.is_nan())),
            "{reduction}: {loss:?}"
        );
        assert_eq!(read_f32(&gp), (vec![0, 5], vec![]), "{reduction}");
    }
}

#[test]
fn the_check_catches_an_unwritten_tail_and_swapped_classes() {
    // Mutation check (tests/cross_entropy/verify_mode.rs does it for verify
    // mode): the GPU's gradient corrupted on purpose, with values ~1e-6, far
    // below the old absolute tolerance of 1e-5.
    if gpu("the_check_catches_an_unwritten_tail_and_swapped_classes").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (n, c) = (3usize, 150_000usize);
    let logits: Vec<f32> = (0..n * c).map(|i| 2.0 * (i as f32 * 0.618).sin()).collect();
    let x = write(d, "x.npy", &[n, c], &logits);
    let t = write(d, "t.npy", &[n], &[0i64, 7, 149_999]);
    let run = |fault: Option<&str>, reduction: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xent"));
        cmd.args([
            "loss",
            "--logits",
            s(&x),
            "--targets",
            s(&t),
            "--reduction",
            reduction,
        ]);
        if let Some(f) = fault {
            cmd.env("XENT_INJECT_FAULT", f);
        }
        cmd.output().unwrap()
    };
    for fault in ["zero-tail", "swap-classes"] {
        for reduction in ["mean", "none"] {
            let out = run(Some(fault), reduction);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{fault} {reduction}: {}",
                stdout(&out)
            );
            assert!(stdout(&out).contains("DISAGREE"), "{fault} {reduction}");
        }
    }
    ok(&run(None, "mean"));
    assert_eq!(run(Some("zero-everything"), "mean").status.code(), Some(2));
}

#[test]
fn a_flushed_probability_times_a_class_weight_is_no_alarm() {
    // The case that made `xent loss` exit 1 on valid inputs: p = e^−87.5 ≈
    // 9.99e-39 is subnormal, the GPU may flush it, and times the class
    // weight 1.99 the exact gradient, 1.99e-38, is past the floor 2⁻¹²⁶.
    if gpu("a_flushed_probability_times_a_class_weight_is_no_alarm").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = write(d, "x.npy", &[1, 2], &[0.0f32, -87.5]);
    let t = write(d, "t.npy", &[1], &[0i64]);
    let w = write(d, "w.npy", &[2], &[1.99f32, 1.99]);
    for reduction in ["sum", "mean", "none"] {
        let out = xent(&[
            "loss",
            "--logits",
            s(&x),
            "--targets",
            s(&t),
            "--weights",
            s(&w),
            "--reduction",
            reduction,
        ]);
        assert!(ok(&out).contains("(agree;"), "{reduction}");
    }
}

#[test]
fn a_gradient_past_f32_range_agrees_and_probability_targets_refuse_ignore_index() {
    // Probabilities [[2e-38, 1]], target 1, weights [3, 0.1], smoothing 1:
    // the gradient -7.5e38 is -inf in f32, which the check accepted as a
    // disagreement (exit 1) against the f64 value.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = write(d, "x.npy", &[1, 2], &[2e-38f32, 1.0]);
    let t = write(d, "t.npy", &[1], &[1i64]);
    let w = write(d, "w.npy", &[2], &[3.0f32, 0.1]);
    let gp = d.join("g.npy");
    let backend = if gpu("a_gradient_past_f32_range_agrees").is_some() {
        "auto"
    } else {
        "cpu"
    };
    let out = ok(&xent(&[
        "loss",
        "--logits",
        s(&x),
        "--targets",
        s(&t),
        "--weights",
        s(&w),
        "--input",
        "probs",
        "--label-smoothing",
        "1",
        "--grad-out",
        s(&gp),
        "--backend",
        backend,
    ]));
    // The CPU path alone (no adapter) has nothing to agree with.
    let verdict = if backend == "cpu" {
        "not checked"
    } else {
        "agree"
    };
    assert!(out.contains(verdict), "{out}");
    assert_eq!(read_f32(&gp).1, vec![f32::NEG_INFINITY, -0.5]);
    // torch: "ignore_index is not supported for floating point target".
    let soft = write(d, "soft.npy", &[1, 2], &[0.5f32, 0.5]);
    fails_with(
        &[
            "loss",
            "--logits",
            s(&x),
            "--targets",
            s(&soft),
            "--ignore-index",
            "0",
            "--backend",
            backend,
        ],
        "ignore_index",
    );
}

#[test]
fn probability_targets_and_input_kinds_match_the_library() {
    let Some(ctx) = gpu("probability_targets_and_input_kinds_match_the_library") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rng = Rng(3);
    let x: Vec<f64> = (0..15).map(|_| f64::from(rng.uniform(-3.0, 3.0))).collect();
    let x32 = to_f32(&x);
    let xp = write(d, "x.npy", &[3, 5], &x);
    let lp = d.join("l.npy");

    float64_probability_targets_are_the_librarys(ctx, d, (&xp, &x32), &lp);
    log_probabilities_are_the_librarys(ctx, d, &x32, &lp);
    probabilities_agree_on_both_backends(d, &x32, &lp);
}

/// float64 probabilities of the input's shape, reduction sum. `xp` holds
/// (3, 5) logits `x32`; the loss goes to `lp`.
fn float64_probability_targets_are_the_librarys(
    ctx: &Context,
    d: &Path,
    (xp, x32): (&Path, &[f32]),
    lp: &Path,
) {
    let probs: Vec<f64> = (0..15)
        .map(|i| if i % 5 == 0 { 0.6 } else { 0.1 })
        .collect();
    let pp = write(d, "p.npy", &[3, 5], &probs);
    ok(&xent(&[
        "loss",
        "--logits",
        s(xp),
        "--targets",
        s(&pp),
        "--reduction",
        "sum",
        "--loss-out",
        s(lp),
    ]));
    let opts = CrossEntropyOptions {
        reduction: Reduction::Sum,
        ..Default::default()
    };
    let lib = ctx
        .cross_entropy_soft(
            x32,
            &[3, 5],
            &to_f32(&probs),
            None,
            &opts,
            &Default::default(),
        )
        .unwrap();
    assert_eq!(read_f32(lp), (vec![], lib.loss));
}

/// Log-probabilities in, int32 class ids: the (3, 5) log-softmax of logits
/// `x32`; the loss goes to `lp`.
fn log_probabilities_are_the_librarys(ctx: &Context, d: &Path, x32: &[f32], lp: &Path) {
    let logp = to_f32(&cpu::log_softmax(x32, &[3, 5]).unwrap());
    let lpp = write(d, "logp.npy", &[3, 5], &logp);
    let tp = write(d, "t.npy", &[3], &[1i32, 3, 2]);
    ok(&xent(&[
        "loss",
        "--logits",
        s(&lpp),
        "--targets",
        s(&tp),
        "--input",
        "log-probs",
        "--loss-out",
        s(lp),
    ]));
    let opts = CrossEntropyOptions {
        input: InputKind::LogProbs,
        ..Default::default()
    };
    let lib = ctx
        .cross_entropy(
            &logp,
            &[3, 5],
            &[1i32, 3, 2],
            None,
            &opts,
            &Default::default(),
        )
        .unwrap();
    assert_eq!(read_f32(lp).1, lib.loss);
}

/// Probabilities in, on the CPU path too: the (3, 5) softmax of logits
/// `x32`; the loss goes to `lp`.
fn probabilities_agree_on_both_backends(d: &Path, x32: &[f32], lp: &Path) {
    let p = to_f32(&cpu::softmax(x32, &[3, 5]).unwrap());
    let ppp = write(d, "probs_in.npy", &[3, 5], &p);
    let opts = CrossEntropyOptions {
        input: InputKind::Probs,
        ..Default::default()
    };
    let want = cpu::cross_entropy(&p, &[3, 5], &[1, 3, 2], None, &opts).unwrap();
    for backend in ["auto", "cpu"] {
        let tp64 = write(d, "t64.npy", &[3], &WORKED_TARGETS);
        ok(&xent(&[
            "loss",
            "--logits",
            s(&ppp),
            "--targets",
            s(&tp64),
            "--input",
            "probs",
            "--loss-out",
            s(lp),
            "--backend",
            backend,
        ]));
        Tolerance::default()
            .check("loss", &read_f32(lp).1, &want.loss_reference())
            .unwrap();
    }
}

#[test]
fn no_check_skips_the_cpu() {
    if gpu("no_check_skips_the_cpu").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = write(d, "x.npy", &[3, 5], &WORKED_LOGITS);
    let t = write(d, "t.npy", &[3], &WORKED_TARGETS);
    let out = ok(&xent(&[
        "loss",
        "--logits",
        s(&x),
        "--targets",
        s(&t),
        "--no-check",
    ]));
    assert!(out.contains("not checked (--no-check)"), "{out}");
}

// ------------------------------------------------------------- loss: bad input

/// A bad call: the arguments after `xent loss`, and what its one error line says.
type BadCall = (Vec<String>, &'static str);

/// Each of `cases` exits 2 with one error line containing its message, with
/// `--backend cpu` and then on the default backend (skipping there, where
/// `test` finds no adapter, the cases `after_adapter` says are checked only
/// once an adapter is opened).
fn each_exits_2(cases: &[BadCall], test: &str, after_adapter: impl Fn(&str) -> bool) {
    for (args, message) in cases {
        let mut full = vec!["loss"];
        full.extend(args.iter().map(String::as_str));
        full.extend(["--backend", "cpu"]);
        fails_with(&full, message);
    }
    let has_gpu = gpu(test).is_some();
    for (args, message) in cases {
        if after_adapter(message) && !has_gpu {
            continue;
        }
        let mut full = vec!["loss"];
        full.extend(args.iter().map(String::as_str));
        fails_with(&full, message);
    }
}

#[test]
fn bad_input_exits_2_with_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = write(d, "x.npy", &[3, 5], &[0.5f32; 15]);
    let t = write(d, "t.npy", &[3], &[1i64, 3, 2]);
    let cases = [
        unreadable_file_cases(d, &x, &t),
        bad_shape_and_target_cases(d, &x, &t),
        bad_option_cases(d, &x, &t),
        logit_option_cases(&x, &t),
    ]
    .concat();
    // On the CPU path (no adapter needed): every check, the library's included.
    // On the GPU path: the same messages. Only the range check of the
    // targets and the sign of probabilities are checked after an adapter is opened.
    each_exits_2(
        &cases,
        "bad_input_exits_2_with_one_error_line (GPU path)",
        |message| message.contains("out of range") || message.contains("probability target -0.25"),
    );
}

/// Files that cannot be read, are not .npy files, or hold a dtype xent does
/// not take, for logits `x` (3, 5) and targets `t` (3) written in `d`.
fn unreadable_file_cases(d: &Path, x: &Path, t: &Path) -> Vec<BadCall> {
    let t_i16 = write(d, "ti16.npy", &[3], &[1i16, 3, 2]);
    let x_i64 = write(d, "xi64.npy", &[3, 5], &[1i64; 15]);
    let x_fortran = write_ordered(d, "xf.npy", &[3, 5], &[0.5f32; 15], npyz::Order::Fortran);
    let text = d.join("text.npy");
    std::fs::write(&text, "not a numpy file").unwrap();
    let empty = d.join("empty.npy");
    std::fs::write(&empty, "").unwrap();
    let truncated = d.join("truncated.npy");
    let bytes = std::fs::read(x).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 6]).unwrap();
    let missing = d.join("missing.npy");
    let (xs, ts) = (s(x), s(t));
    vec![
        (
            args(&["--logits", s(&missing), "--targets", ts]),
            "cannot read logits file",
        ),
        (
            args(&["--logits", xs, "--targets", s(&missing)]),
            "cannot read targets file",
        ),
        (args(&["--logits", s(d), "--targets", ts]), "is a directory"),
        (
            args(&["--logits", s(&text), "--targets", ts]),
            "is not a NumPy .npy file",
        ),
        (
            args(&["--logits", s(&empty), "--targets", ts]),
            "is not a NumPy .npy file",
        ),
        (
            args(&["--logits", s(&truncated), "--targets", ts]),
            "is truncated",
        ),
        (
            args(&["--logits", s(&x_fortran), "--targets", ts]),
            "Fortran-ordered",
        ),
        (
            args(&["--logits", s(&x_i64), "--targets", ts]),
            "has dtype int64, which xent does not take",
        ),
        (
            args(&["--logits", xs, "--targets", s(&t_i16)]),
            "has dtype int16 (<i2), which xent does not take",
        ),
    ]
}

/// Logits and targets of the wrong shapes, and targets out of range, for
/// logits `x` (3, 5) and targets `t` (3) written in `d`.
fn bad_shape_and_target_cases(d: &Path, x: &Path, t: &Path) -> Vec<BadCall> {
    let t_bad = write(d, "tbad.npy", &[3], &[1i64, 9, 2]);
    let t_neg = write(d, "tneg.npy", &[3], &[1i32, 3, -7]);
    let t_shape = write(d, "tshape.npy", &[4], &[1i64, 3, 2, 0]);
    let t_2d = write(d, "t2d.npy", &[1, 3], &[1i64, 3, 2]);
    let x_scalar = write(d, "xscalar.npy", &[], &[1.0f32]);
    // An empty batch is fine (an_empty_batch_gives_pytorchs_answers); an
    // empty class axis is not.
    let x_empty = write::<f32>(d, "xempty.npy", &[3, 0], &[]);
    let soft_bad = write(d, "softbad.npy", &[3, 4], &[0.25f32; 12]);
    let soft_neg = write(d, "softneg.npy", &[3, 5], &[-0.25f64; 15]);
    let (xs, ts) = (s(x), s(t));
    vec![
        (
            args(&["--logits", s(&x_scalar), "--targets", ts]),
            "invalid shape []",
        ),
        (
            args(&["--logits", s(&x_empty), "--targets", ts]),
            "the class axis (1) has size 0",
        ),
        (
            args(&["--logits", xs, "--targets", s(&t_shape)]),
            "class targets have shape [4]",
        ),
        (
            args(&["--logits", xs, "--targets", s(&t_2d)]),
            "class targets have shape [1, 3]",
        ),
        (
            args(&["--logits", xs, "--targets", s(&soft_bad)]),
            "probability targets have shape [3, 4]",
        ),
        (
            args(&["--logits", xs, "--targets", s(&soft_neg)]),
            "probability target -0.25 at position [0, 0]",
        ),
        (
            args(&["--logits", xs, "--targets", s(&t_bad)]),
            "target 9 at position [1] is out of range",
        ),
        (
            args(&["--logits", xs, "--targets", s(&t_neg)]),
            "target -7 at position [2] is out of range",
        ),
    ]
}

/// Bad weights, options and outputs, for logits `x` (3, 5) and targets `t`
/// (3) written in `d`.
fn bad_option_cases(d: &Path, x: &Path, t: &Path) -> Vec<BadCall> {
    let w4 = write(d, "w4.npy", &[4], &[1.0f32; 4]);
    let w2d = write(d, "w2d.npy", &[5, 1], &[1.0f32; 5]);
    let w_int = write(d, "wint.npy", &[5], &[1i64; 5]);
    let no_dir = d.join("no/such/dir/loss.npy");
    let (xs, ts) = (s(x), s(t));
    vec![
        (
            args(&["--logits", xs, "--targets", ts, "--weights", s(&w4)]),
            "weights have length 4 but there are 5 classes",
        ),
        (
            args(&["--logits", xs, "--targets", ts, "--weights", s(&w2d)]),
            "weights have shape [5, 1]",
        ),
        (
            args(&["--logits", xs, "--targets", ts, "--weights", s(&w_int)]),
            "weights file",
        ),
        (
            args(&["--logits", xs, "--targets", ts, "--label-smoothing", "1.5"]),
            "label_smoothing = 1.5",
        ),
        (
            args(&["--logits", xs, "--targets", ts, "--label-smoothing", "-0.1"]),
            "label_smoothing = -0.1",
        ),
        (
            args(&["--logits", xs, "--targets", ts, "--label-smoothing", "NaN"]),
            "label_smoothing = NaN",
        ),
        (
            args(&[
                "--logits",
                xs,
                "--targets",
                ts,
                "--ignore-index",
                "3000000000",
            ]),
            "ignore_index = 3000000000",
        ),
        (
            args(&["--logits", xs, "--targets", ts, "--loss-out", s(&no_dir)]),
            "cannot write --loss-out",
        ),
    ]
}

/// Bad temperatures and flags of logits given with something else, for
/// logits `x` and targets `t`.
fn logit_option_cases(x: &Path, t: &Path) -> Vec<BadCall> {
    let with = |extra: &[&str]| args(&[&["--logits", s(x), "--targets", s(t)], extra].concat());
    vec![
        (with(&["--temperature", "0"]), "temperature = 0"),
        (with(&["--temperature", "-1"]), "temperature = -1"),
        (with(&["--temperature", "NaN"]), "temperature = NaN"),
        (
            with(&["--temperature", "2", "--input", "probs"]),
            "--temperature acts on logits: it does not apply to --input probs",
        ),
        (
            with(&["--softcap", "2", "--input", "log-probs"]),
            "--softcap acts on logits: it does not apply to --input log-probs",
        ),
        (
            with(&["--temperature", "2", "--loss", "mse"]),
            "--temperature does not apply to --loss mse",
        ),
        (
            with(&["--lse-out", "lse.npy", "--input", "log-probs"]),
            "--lse-out acts on logits: it does not apply to --input log-probs",
        ),
        (
            with(&["--lse-out", "lse.npy", "--loss", "l1"]),
            "--lse-out does not apply to --loss l1",
        ),
        (
            with(&["--argmax-out", "a.npy", "--input", "probs"]),
            "--argmax-out acts on logits: it does not apply to --input probs",
        ),
        (
            with(&["--entropy-out", "h.npy", "--input", "log-probs"]),
            "--entropy-out acts on logits: it does not apply to --input log-probs",
        ),
        (
            with(&["--argmax-out", "a.npy", "--loss", "bce"]),
            "--argmax-out does not apply to --loss bce",
        ),
        (
            with(&["--entropy-out", "h.npy", "--loss", "huber"]),
            "--entropy-out does not apply to --loss huber",
        ),
    ]
}

/// `xent loss --logits x --targets t --backend backend` with `extra`
/// arguments, run in `dir` (for relative paths).
fn loss_in(dir: &Path, x: &Path, t: &Path, extra: &[&str], backend: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xent"))
        .current_dir(dir)
        .args([
            "loss",
            "--logits",
            s(x),
            "--targets",
            s(t),
            "--backend",
            backend,
        ])
        .args(extra)
        .output()
        .expect("run the xent binary")
}

/// Asserts exit status 2 with one `error:` line containing every one of `words`.
fn refused(o: &Output, words: &[&str]) {
    let errs = errors(o);
    assert_eq!(o.status.code(), Some(2), "{words:?}: {errs:?}");
    assert_eq!(errs.len(), 1, "want one error line, got {errs:?}");
    for w in words {
        assert!(errs[0].contains(w), "{:?} should contain {w:?}", errs[0]);
    }
}

#[test]
fn a_grad_out_in_a_missing_directory_writes_no_loss_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = write(d, "x.npy", &[3, 5], &WORKED_LOGITS);
    let t = write(d, "t.npy", &[3], &WORKED_TARGETS);
    let lp = d.join("loss.npy");
    let gp = d.join("no/such/dir/grad.npy");
    // The check comes before any adapter is opened, so the GPU path needs none.
    for backend in ["cpu", "auto"] {
        let o = loss_in(
            d,
            &x,
            &t,
            &["--loss-out", s(&lp), "--grad-out", s(&gp)],
            backend,
        );
        assert!(!lp.exists(), "{backend}: --loss-out was written");
        refused(&o, &["--grad-out", s(&gp), "does not exist"]);
        assert!(!stdout(&o).contains("loss ("), "{backend}: computed first");
    }
    // A parent that is a file, not a directory.
    let under_file = d.join("x.npy").join("grad.npy");
    let o = loss_in(
        d,
        &x,
        &t,
        &["--loss-out", s(&lp), "--grad-out", s(&under_file)],
        "cpu",
    );
    refused(&o, &["--grad-out", "is not a directory"]);
    assert!(!lp.exists(), "--loss-out was written");
}

#[test]
fn an_output_that_is_a_directory_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = write(d, "x.npy", &[3, 5], &WORKED_LOGITS);
    let t = write(d, "t.npy", &[3], &WORKED_TARGETS);
    let sub = d.join("out");
    std::fs::create_dir(&sub).unwrap();
    let lp = d.join("loss.npy");
    for backend in ["cpu", "auto"] {
        let o = loss_in(
            d,
            &x,
            &t,
            &["--loss-out", s(&lp), "--grad-out", s(&sub)],
            backend,
        );
        refused(&o, &["--grad-out", s(&sub), "is a directory"]);
        assert!(!lp.exists(), "{backend}: --loss-out was written");
        let o = loss_in(d, &x, &t, &["--loss-out", "."], backend);
        refused(&o, &["--loss-out"]);
    }
}

#[test]
fn the_same_path_for_two_outputs_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("sub")).unwrap();
    let x = write(d, "x.npy", &[3, 5], &WORKED_LOGITS);
    let t = write(d, "t.npy", &[3], &WORKED_TARGETS);
    let abs = d.join("out.npy");
    // Spelt alike, relative against absolute, and through `sub/..`.
    for (l, g) in [
        ("out.npy", "out.npy"),
        ("out.npy", s(&abs)),
        ("./sub/../out.npy", s(&abs)),
    ] {
        for backend in ["cpu", "auto"] {
            let o = loss_in(d, &x, &t, &["--loss-out", l, "--grad-out", g], backend);
            refused(&o, &["--loss-out", "--grad-out", "same file"]);
            assert!(!abs.exists(), "{backend} {l} {g}: an output was written");
        }
    }
}

#[test]
fn an_output_that_is_an_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = write(d, "x.npy", &[3, 5], &WORKED_LOGITS);
    let t = write(d, "t.npy", &[3], &WORKED_TARGETS);
    let w = write(d, "w.npy", &[5], &[1.0f32; 5]);
    let before: Vec<Vec<u8>> = [&x, &t, &w]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let weights = ["--weights", s(&w)];
    let cases: Vec<(&str, &str, String)> = vec![
        ("--loss-out", "--logits", "x.npy".into()),
        ("--grad-out", "--logits", s(&x).into()),
        ("--grad-out", "--targets", "./t.npy".into()),
        ("--loss-out", "--weights", s(&w).into()),
    ];
    for (out, input, path) in &cases {
        for backend in ["cpu", "auto"] {
            let mut extra = weights.to_vec();
            extra.extend([*out, path.as_str()]);
            let o = loss_in(d, &x, &t, &extra, backend);
            refused(&o, &[out, input]);
        }
    }
    // Through a symbolic link to the input, too.
    #[cfg(unix)]
    {
        let link = d.join("link.npy");
        std::os::unix::fs::symlink(&x, &link).unwrap();
        let o = loss_in(d, &x, &t, &["--grad-out", s(&link)], "cpu");
        refused(&o, &["--grad-out", "--logits"]);
    }
    let after: Vec<Vec<u8>> = [&x, &t, &w]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(before == after, "an input was overwritten");
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let x = write(dir.path(), "x.npy", &[3, 5], &[0.5f32; 15]);
    let t = write(dir.path(), "t.npy", &[3], &[1i64, 3, 2]);
    let (xs, ts) = (s(&x), s(&t));
    for args in [
        vec!["loss", "--logits", xs],
        vec![
            "loss",
            "--logits",
            xs,
            "--targets",
            ts,
            "--reduction",
            "avg",
        ],
        vec!["loss", "--logits", xs, "--targets", ts, "--input", "scores"],
        vec!["loss", "--logits", xs, "--targets", ts, "--backend", "cuda"],
        vec![
            "loss",
            "--logits",
            xs,
            "--targets",
            ts,
            "--ignore-index",
            "x",
        ],
        vec!["loss", "--logits", xs, "--targets", ts, "--frobnicate"],
        vec!["loss", "--logits", xs, "--targets", ts, "--loss", "hinge"],
        vec![
            "loss",
            "--logits",
            xs,
            "--targets",
            ts,
            "--loss",
            "huber",
            "--delta",
            "x",
        ],
        vec!["frobnicate"],
    ] {
        let o = xent(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains("error:"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let o = xent(&["loss", "--help"]);
    let help = ok(&o);
    for flag in [
        "--loss",
        "--logits",
        "--targets",
        "--weights",
        "--pos-weight",
        "--beta",
        "--delta",
        "--ignore-index",
        "--reduction",
        "--label-smoothing",
        "--input",
        "--loss-out",
        "--grad-out",
        "--backend",
        "--no-check",
    ] {
        assert!(help.contains(flag), "no {flag} in help: {help}");
    }
    assert_eq!(
        help.matches("Written even when the GPU and CPU disagree")
            .count(),
        2,
        "--loss-out and --grad-out should say they are written on a disagreement: {help}"
    );
    for loss in LOSSES {
        assert!(help.contains(loss), "no --loss {loss} in help: {help}");
    }
}

// ------------------------------------------------------------- loss: elementwise

/// Every `--loss` value.
const LOSSES: [&str; 7] = [
    "cross-entropy",
    "bce-with-logits",
    "bce",
    "mse",
    "l1",
    "smooth-l1",
    "huber",
];

/// `xent loss --loss loss …` with the reduction, backend and `extra`
/// arguments, writing both outputs: (stdout, (loss shape, loss), (gradient
/// shape, gradient)) after asserting success.
type Written = (String, (Vec<usize>, Vec<f32>), (Vec<usize>, Vec<f32>));

fn elementwise_run(
    d: &Path,
    loss: &str,
    x: &Path,
    y: &Path,
    extra: &[&str],
    reduction: &str,
    backend: &str,
) -> Written {
    let (lp, gp) = (d.join("out_loss.npy"), d.join("out_grad.npy"));
    let mut args = vec![
        "loss",
        "--loss",
        loss,
        "--logits",
        s(x),
        "--targets",
        s(y),
        "--reduction",
        reduction,
        "--loss-out",
        s(&lp),
        "--grad-out",
        s(&gp),
        "--backend",
        backend,
    ];
    args.extend(extra);
    let out = ok(&xent(&args));
    (out, read_f32(&lp), read_f32(&gp))
}

/// One elementwise loss of the CLI's tests: its input and target (file and
/// values), its extra arguments and its weights.
struct ElementwiseCase {
    name: &'static str,
    loss: ElementwiseLoss,
    x: (PathBuf, Vec<f32>),
    y: (PathBuf, Vec<f32>),
    extra: Vec<String>,
    weight: Option<Vec<f32>>,
    pos_weight: Option<Vec<f32>>,
}

impl ElementwiseCase {
    fn extra(&self) -> Vec<&str> {
        self.extra.iter().map(String::as_str).collect()
    }

    fn weights(&self) -> LossWeights<'_> {
        LossWeights {
            weight: self.weight.as_deref(),
            pos_weight: self.pos_weight.as_deref(),
        }
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|&a| a.to_string()).collect()
}

/// Every elementwise loss on (3, 4) inputs written in `d`, with weights
/// for the bce losses and the regression losses' parameters given and left
/// to their defaults.
fn elementwise_cases(d: &Path) -> Vec<ElementwiseCase> {
    let mut rng = Rng(31);
    let dims = [3usize, 4];
    // Logits and labels (hard and soft) in float64, as NumPy makes them.
    let logits: Vec<f64> = (0..12).map(|_| f64::from(rng.uniform(-3.0, 3.0))).collect();
    let labels: Vec<f64> = (0..12).map(|i| [1.0, 0.0, 0.3][i % 3]).collect::<Vec<_>>();
    let probs: Vec<f32> = (0..12).map(|_| rng.uniform(0.02, 0.98)).collect();
    let preds: Vec<f32> = (0..12).map(|_| rng.uniform(-3.0, 3.0)).collect();
    let values: Vec<f32> = (0..12).map(|_| rng.uniform(-3.0, 3.0)).collect();
    let w_last = [0.5f32, 1.0, 2.0, 1.5];
    let w_full: Vec<f64> = (0..12).map(|_| f64::from(rng.uniform(0.0, 2.0))).collect();
    let pos = [1.0f64, 3.0, 0.5, 2.0];
    let (logits_p, labels_p, probs_p, preds_p, values_p) = (
        write(d, "logits.npy", &dims, &logits),
        write(d, "labels.npy", &dims, &labels),
        write(d, "probs.npy", &dims, &probs),
        write(d, "preds.npy", &dims, &preds),
        write(d, "values.npy", &dims, &values),
    );
    let (w_last_p, w_full_p, pos_p) = (
        write(d, "wlast.npy", &[4], &w_last),
        write(d, "wfull.npy", &dims, &w_full),
        write(d, "pos.npy", &[4], &pos),
    );
    let regression = |name, loss, extra: &[&str]| ElementwiseCase {
        name,
        loss,
        x: (preds_p.clone(), preds.clone()),
        y: (values_p.clone(), values.clone()),
        extra: args(extra),
        weight: None,
        pos_weight: None,
    };
    vec![
        ElementwiseCase {
            name: "bce-with-logits",
            loss: ElementwiseLoss::BceWithLogits,
            x: (logits_p.clone(), to_f32(&logits)),
            y: (labels_p.clone(), to_f32(&labels)),
            extra: args(&["--weights", s(&w_last_p), "--pos-weight", s(&pos_p)]),
            weight: Some(w_last.to_vec()),
            pos_weight: Some(to_f32(&pos)),
        },
        ElementwiseCase {
            name: "bce",
            loss: ElementwiseLoss::Bce,
            x: (probs_p.clone(), probs.clone()),
            y: (labels_p.clone(), to_f32(&labels)),
            extra: args(&["--weights", s(&w_full_p)]),
            weight: Some(to_f32(&w_full)),
            pos_weight: None,
        },
        regression("mse", ElementwiseLoss::Mse, &[]),
        regression("l1", ElementwiseLoss::L1, &[]),
        regression(
            "smooth-l1",
            ElementwiseLoss::SmoothL1 { beta: 0.5 },
            &["--beta", "0.5"],
        ),
        // The library's defaults, beta 1 and delta 1.
        regression("smooth-l1", ElementwiseLoss::SmoothL1 { beta: 1.0 }, &[]),
        regression(
            "huber",
            ElementwiseLoss::Huber { delta: 0.75 },
            &["--delta", "0.75"],
        ),
        regression("huber", ElementwiseLoss::Huber { delta: 1.0 }, &[]),
    ]
}

#[test]
fn elementwise_losses_match_the_library_and_the_cpu_twin() {
    let ctx = gpu("elementwise_losses_match_the_library_and_the_cpu_twin");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let dims = [3usize, 4];
    for c in &elementwise_cases(d) {
        for (reduction, r) in [
            ("mean", Reduction::Mean),
            ("sum", Reduction::Sum),
            ("none", Reduction::None),
        ] {
            let what = format!("{} {:?} {reduction}", c.name, c.extra);
            let opts = ElementwiseOptions {
                reduction: r,
                ..ElementwiseOptions::new(ElementwiseLoss::Mse)
            };
            let opts = xent::ElementwiseOptions {
                loss: c.loss,
                ..opts
            };
            let want = cpu::elementwise_loss(&c.x.1, &c.y.1, &dims, c.weights(), &opts).unwrap();
            let loss_shape = if r == Reduction::None {
                dims.to_vec()
            } else {
                vec![]
            };
            the_cpu_backend_writes_the_cpu_twin(d, c, reduction, &want, &loss_shape, &what);
            let Some(ctx) = ctx else { continue };
            the_gpu_writes_the_librarys_result(ctx, d, c, reduction, &opts, &want, &what);
        }
    }
}

/// --backend cpu: the CPU twin, rounded to float32.
fn the_cpu_backend_writes_the_cpu_twin(
    d: &Path,
    c: &ElementwiseCase,
    reduction: &str,
    want: &ElementwiseOutput<f64>,
    loss_shape: &[usize],
    what: &str,
) {
    let dims = [3usize, 4];
    let (out, (ls, l), (gs, g)) =
        elementwise_run(d, c.name, &c.x.0, &c.y.0, &c.extra(), reduction, "cpu");
    assert!(
        out.contains(&format!("loss ({reduction}): ")),
        "{what}: {out}"
    );
    assert!(out.contains("not checked (--backend cpu)"), "{what}: {out}");
    assert_eq!(ls, loss_shape, "{what}");
    assert_eq!(gs, dims.to_vec(), "{what}");
    assert_eq!(l, to_f32(&want.loss), "{what}");
    assert_eq!(g, to_f32(want.grad.as_deref().unwrap()), "{what}");
}

/// The GPU: the host API's result, which agrees with the CPU twin.
fn the_gpu_writes_the_librarys_result(
    ctx: &Context,
    d: &Path,
    c: &ElementwiseCase,
    reduction: &str,
    opts: &ElementwiseOptions,
    want: &ElementwiseOutput<f64>,
    what: &str,
) {
    let dims = [3usize, 4];
    let (out, (ls, l), (gs, g)) =
        elementwise_run(d, c.name, &c.x.0, &c.y.0, &c.extra(), reduction, "auto");
    assert!(out.contains("(agree;"), "{what}: {out}");
    let lib = ctx
        .elementwise_loss(
            &c.x.1,
            &c.y.1,
            &dims,
            c.weights(),
            opts,
            &Default::default(),
        )
        .unwrap();
    assert_eq!(ls, lib.loss_dims, "{what}");
    assert_eq!(gs, dims.to_vec(), "{what}");
    assert_eq!(l, lib.loss, "{what}");
    assert_eq!(Some(g.clone()), lib.grad, "{what}");
    let written = ElementwiseOutput {
        loss: l,
        loss_dims: ls,
        grad: Some(g),
        magnitude: None,
    };
    Tolerance::default()
        .compare_elementwise(&written, want, &xent::Tolerance::default())
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// (loss, extra arguments, shape, input, target, reduction, loss, gradient), as torch.nn.functional gives them.
type PytorchCase<'a> = (
    &'a str,
    Vec<&'a str>,
    Vec<usize>,
    Vec<f32>,
    Vec<f32>,
    &'a str,
    Vec<f32>,
    Vec<f32>,
);

/// mse and the bce losses; `pos` holds bce with logits' positive weights [1, 2].
fn mse_and_bce_pytorch_cases(pos: &Path) -> Vec<PytorchCase<'_>> {
    let ln2 = std::f32::consts::LN_2;
    vec![
        (
            "mse",
            vec![],
            vec![2],
            vec![1.0, 3.0],
            vec![0.0, 0.0],
            "mean",
            vec![5.0],
            vec![1.0, 3.0],
        ),
        // Two labels of one sample, the second positive and counted twice.
        (
            "bce-with-logits",
            vec!["--pos-weight", s(pos)],
            vec![1, 2],
            vec![0.0, 0.0],
            vec![0.0, 1.0],
            "mean",
            vec![1.5 * ln2],
            vec![0.25, -0.5],
        ),
        (
            "bce",
            vec![],
            vec![2],
            vec![0.5, 0.25],
            vec![1.0, 0.0],
            "sum",
            vec![ln2 + (4.0f32 / 3.0).ln()],
            vec![-2.0, 4.0 / 3.0],
        ),
    ]
}

/// l1, smooth l1 and huber.
fn l1_smooth_l1_and_huber_pytorch_cases() -> Vec<PytorchCase<'static>> {
    vec![
        (
            "l1",
            vec![],
            vec![3],
            vec![1.0, -2.0, 0.5],
            vec![0.0, 0.0, 0.5],
            "none",
            vec![1.0, 2.0, 0.0],
            vec![1.0, -1.0, 0.0],
        ),
        (
            "smooth-l1",
            vec![],
            vec![2],
            vec![0.5, 3.0],
            vec![0.0, 0.0],
            "none",
            vec![0.125, 2.5],
            vec![0.5, 1.0],
        ),
        // beta 0 is l1.
        (
            "smooth-l1",
            vec!["--beta", "0"],
            vec![2],
            vec![0.5, -3.0],
            vec![0.0, 0.0],
            "sum",
            vec![3.5],
            vec![1.0, -1.0],
        ),
        (
            "huber",
            vec!["--delta", "2"],
            vec![2],
            vec![1.0, 3.0],
            vec![0.0, 0.0],
            "none",
            vec![0.5, 4.0],
            vec![1.0, 2.0],
        ),
        // A 0-d tensor: the loss of none is 0-d too.
        (
            "huber",
            vec![],
            vec![],
            vec![2.0],
            vec![0.5],
            "none",
            vec![1.0],
            vec![1.0],
        ),
    ]
}

#[test]
fn elementwise_losses_give_pytorchs_values() {
    let backends: &[&str] = if gpu("elementwise_losses_give_pytorchs_values").is_some() {
        &["cpu", "auto"]
    } else {
        &["cpu"]
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pos = write(d, "pos.npy", &[2], &[1.0f32, 2.0]);
    let cases = [
        mse_and_bce_pytorch_cases(&pos),
        l1_smooth_l1_and_huber_pytorch_cases(),
    ]
    .concat();
    let close = |got: &[f32], want: &[f32]| {
        got.len() == want.len()
            && got
                .iter()
                .zip(want)
                .all(|(g, w)| (g - w).abs() <= 1e-6 * w.abs().max(1.0))
    };
    for (loss, extra, dims, x, y, reduction, want_loss, want_grad) in &cases {
        let xp = write(d, "x.npy", dims, x);
        let yp = write(d, "y.npy", dims, y);
        for backend in backends {
            let what = format!("{loss} {extra:?} {reduction} {backend}");
            let (_, (ls, l), (gs, g)) =
                elementwise_run(d, loss, &xp, &yp, extra, reduction, backend);
            let loss_shape = if *reduction == "none" {
                dims.clone()
            } else {
                vec![]
            };
            assert_eq!(ls, loss_shape, "{what}");
            assert_eq!(&gs, dims, "{what}");
            assert!(
                close(&l, want_loss),
                "{what}: loss {l:?}, want {want_loss:?}"
            );
            assert!(
                close(&g, want_grad),
                "{what}: grad {g:?}, want {want_grad:?}"
            );
        }
    }
}

#[test]
fn options_a_loss_does_not_take_exit_2_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = write(d, "x.npy", &[3, 4], &[0.5f32; 12]);
    let y = write(d, "y.npy", &[3, 4], &[0.5f32; 12]);
    let ids = write(d, "t.npy", &[3], &[1i64, 3, 2]);
    let w = write(d, "w.npy", &[4], &[1.0f32; 4]);
    let pw = write(d, "pw.npy", &[4], &[2.0f32; 4]);
    let lp = d.join("loss.npy");
    // (option, value, the losses that take it)
    let options: [(&str, &str, &[&str]); 8] = [
        (
            "--weights",
            s(&w),
            &["cross-entropy", "bce-with-logits", "bce"],
        ),
        ("--pos-weight", s(&pw), &["bce-with-logits"]),
        ("--beta", "0.5", &["smooth-l1"]),
        ("--delta", "0.5", &["huber"]),
        ("--ignore-index", "0", &["cross-entropy"]),
        // Given at its default value, it is still given.
        ("--ignore-index", "-100", &["cross-entropy"]),
        ("--label-smoothing", "0", &["cross-entropy"]),
        ("--input", "logits", &["cross-entropy"]),
    ];
    let mut refusals = 0;
    for loss in LOSSES {
        let t = if loss == "cross-entropy" { &ids } else { &y };
        for (flag, value, takes) in &options {
            let args = [
                "loss",
                "--loss",
                loss,
                "--logits",
                s(&x),
                "--targets",
                s(t),
                flag,
                value,
                "--loss-out",
                s(&lp),
            ];
            let backends: &[&str] = if takes.contains(&loss) {
                // Taken: it runs (on the CPU path, no adapter needed).
                let mut full = args.to_vec();
                full.extend(["--backend", "cpu"]);
                ok(&xent(&full));
                std::fs::remove_file(&lp).unwrap();
                continue;
            } else {
                // Refused before any adapter is opened, so the GPU path needs none.
                &["cpu", "auto"]
            };
            refusals += 1;
            for backend in backends {
                let mut full = args.to_vec();
                full.extend(["--backend", backend]);
                let o = xent(&full);
                refused(&o, &[flag, &format!("does not apply to --loss {loss}")]);
                assert!(!stdout(&o).contains("loss ("), "{full:?}: computed");
                assert!(!lp.exists(), "{full:?}: --loss-out was written");
            }
        }
    }
    assert_eq!(refusals, 7 * 8 - 10);
}

#[test]
fn bad_elementwise_input_exits_2_with_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let dims = [3usize, 4];
    let x = write(d, "x.npy", &dims, &[0.5f32; 12]);
    let y = write(d, "y.npy", &dims, &[0.5f32; 12]);
    let cases = [
        bad_parameter_and_range_cases(d, &x, &y),
        bad_elementwise_weight_cases(d, &x, &y),
        bad_elementwise_file_cases(d, &x, &y),
    ]
    .concat();
    // On the GPU path: the same messages; only bce's input range is checked
    // after an adapter is opened (on the GPU).
    each_exits_2(
        &cases,
        "bad_elementwise_input_exits_2_with_one_error_line (GPU path)",
        |message| message.contains("outside [0, 1]"),
    );
}

/// `--loss loss --logits x --targets y` and the rest.
fn on(loss: &str, x: &str, y: &str, rest: &[&str]) -> Vec<String> {
    let mut a = vec!["--loss", loss, "--logits", x, "--targets", y];
    a.extend(rest);
    args(&a)
}

/// The losses' parameters out of range, and bce's inputs and targets
/// outside [0, 1], for (3, 4) inputs `x` and targets `y` written in `d`.
fn bad_parameter_and_range_cases(d: &Path, x: &Path, y: &Path) -> Vec<BadCall> {
    let dims = [3usize, 4];
    let mut high = [0.5f32; 12];
    high[6] = 1.5;
    let mut neg = [0.5f64; 12];
    neg[8] = -0.25;
    let mut nan = [0.5f32; 12];
    nan[3] = f32::NAN;
    let p_high = write(d, "phigh.npy", &dims, &high);
    let p_neg = write(d, "pneg.npy", &dims, &neg);
    let p_nan = write(d, "pnan.npy", &dims, &nan);
    let (xs, ys) = (s(x), s(y));
    vec![
        (
            on("smooth-l1", xs, ys, &["--beta", "-1"]),
            "beta = -1: expected a finite number >= 0",
        ),
        (on("smooth-l1", xs, ys, &["--beta", "NaN"]), "beta = NaN"),
        (on("smooth-l1", xs, ys, &["--beta", "inf"]), "beta = inf"),
        (
            on("huber", xs, ys, &["--delta", "0"]),
            "delta = 0: expected a finite number > 0",
        ),
        (on("huber", xs, ys, &["--delta", "-2.5"]), "delta = -2.5"),
        (on("huber", xs, ys, &["--delta", "NaN"]), "delta = NaN"),
        (
            on("bce", s(&p_high), ys, &[]),
            "input 1.5 at position [1, 2] is outside [0, 1]",
        ),
        (
            on("bce", s(&p_neg), ys, &[]),
            "input -0.25 at position [2, 0] is outside [0, 1]",
        ),
        (
            on("bce", s(&p_nan), ys, &[]),
            "input NaN at position [0, 3] is outside [0, 1]",
        ),
        (
            on("bce", xs, s(&p_high), &[]),
            "target 1.5 at position [1, 2] is outside [0, 1]",
        ),
    ]
}

/// Weights and positive weights of the wrong shapes or dtype, or missing,
/// for (3, 4) inputs `x` and targets `y` written in `d`.
fn bad_elementwise_weight_cases(d: &Path, x: &Path, y: &Path) -> Vec<BadCall> {
    let dims = [3usize, 4];
    let w5 = write(d, "w5.npy", &[5], &[1.0f32; 5]);
    let w3 = write(d, "w3.npy", &[3], &[1.0f32; 3]);
    let w12 = write(d, "w12.npy", &[12], &[1.0f32; 12]);
    let w_int = write(d, "wint.npy", &[4], &[1i64; 4]);
    let pw3 = write(d, "pw3.npy", &[3], &[1.0f32; 3]);
    let pw_full = write(d, "pwfull.npy", &dims, &[1.0f32; 12]);
    let missing = d.join("missing.npy");
    let (xs, ys) = (s(x), s(y));
    vec![
        (
            on("bce-with-logits", xs, ys, &["--weights", s(&w5)]),
            "has shape [5] (5 elements), but --loss bce-with-logits takes it of the input's shape [3, 4] \
             or of its last axis, [4]",
        ),
        (on("bce", xs, ys, &["--weights", s(&w3)]), "--weights"),
        // Of the input's length, but not of its shape.
        (on("bce-with-logits", xs, ys, &["--weights", s(&w12)]), "--weights"),
        (
            on("bce-with-logits", xs, ys, &["--weights", s(&w_int)]),
            "weights file",
        ),
        (
            on("bce-with-logits", xs, ys, &["--pos-weight", s(&pw3)]),
            "--pos-weight",
        ),
        (
            on("bce-with-logits", xs, ys, &["--pos-weight", s(&pw_full)]),
            "has shape [3, 4] (12 elements), but --loss bce-with-logits takes it one per label, of the \
             input's last axis, [4] (the input is [3, 4])",
        ),
        (
            on("bce-with-logits", xs, ys, &["--pos-weight", s(&missing)]),
            "cannot read pos_weight file",
        ),
    ]
}

/// Inputs and targets of a dtype or shape the losses do not take, files
/// that are not .npy files, and outputs that cannot be written, for (3, 4)
/// inputs `x` and targets `y` written in `d`.
fn bad_elementwise_file_cases(d: &Path, x: &Path, y: &Path) -> Vec<BadCall> {
    let dims = [3usize, 4];
    let x_i64 = write(d, "xi64.npy", &dims, &[1i64; 12]);
    let ids = write(d, "ids.npy", &[3], &[1i64, 3, 2]);
    let y43 = write(d, "y43.npy", &[4, 3], &[0.5f32; 12]);
    let y_i8 = write(d, "yi8.npy", &dims, &[1i8; 12]);
    let pw = write(d, "pw.npy", &[4], &[1.0f32; 4]);
    let text = d.join("text.npy");
    std::fs::write(&text, "not a numpy file").unwrap();
    let no_dir = d.join("no/such/dir/loss.npy");
    let (xs, ys) = (s(x), s(y));
    vec![
        (
            args(&["--loss", "mse", "--logits", xs, "--targets", s(&ids)]),
            "has dtype int64, which --loss mse does not take",
        ),
        (
            args(&["--loss", "mse", "--logits", xs, "--targets", s(&y43)]),
            "has shape [4, 3] but --loss mse needs the input's shape [3, 4]",
        ),
        // A dtype no loss takes: the elementwise losses' own list, not cross-entropy's.
        (
            args(&["--loss", "bce-with-logits", "--logits", xs, "--targets", s(&y_i8)]),
            "has dtype int8 (|i1), which xent does not take: expected float16, float32 or float64 of the input's shape [3, 4]",
        ),
        (
            on("l1", s(&x_i64), ys, &[]),
            "has dtype int64, which xent does not take",
        ),
        (on("l1", s(&text), ys, &[]), "is not a NumPy .npy file"),
        (
            on("mse", xs, ys, &["--loss-out", s(&no_dir)]),
            "cannot write --loss-out",
        ),
        (
            on("bce-with-logits", xs, ys,
                &["--pos-weight", s(&pw), "--grad-out", s(&pw)],
            ),
            "it is the --pos-weight file",
        ),
    ]
}

#[test]
fn an_elementwise_disagreement_exits_1_and_still_writes_the_outputs() {
    if gpu("an_elementwise_disagreement_exits_1_and_still_writes_the_outputs").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rng = Rng(77);
    let dims = [10usize, 100];
    let x: Vec<f32> = (0..1000).map(|_| rng.uniform(-3.0, 3.0)).collect();
    let y: Vec<f32> = (0..1000).map(|_| rng.uniform(-3.0, 3.0)).collect();
    let (xp, yp) = (write(d, "x.npy", &dims, &x), write(d, "y.npy", &dims, &y));
    let (lp, gp) = (d.join("l.npy"), d.join("g.npy"));
    let run = |loss: &str, fault: Option<&str>, extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xent"));
        cmd.args([
            "loss",
            "--loss",
            loss,
            "--logits",
            s(&xp),
            "--targets",
            s(&yp),
            "--loss-out",
            s(&lp),
            "--grad-out",
            s(&gp),
        ])
        .args(extra);
        if let Some(f) = fault {
            cmd.env("XENT_INJECT_FAULT", f);
        }
        cmd.output().unwrap()
    };
    for (loss, fault, reduction) in [
        ("huber", "zero-tail", "mean"),
        // mse: the first and last gradients differ (huber's may both be delta).
        ("mse", "swap-classes", "none"),
    ] {
        let _ = std::fs::remove_file(&lp);
        let _ = std::fs::remove_file(&gp);
        let o = run(loss, Some(fault), &["--reduction", reduction]);
        let what = format!("{loss} {fault} {reduction}");
        assert_eq!(o.status.code(), Some(1), "{what}: {}", stdout(&o));
        assert!(stdout(&o).contains("DISAGREE"), "{what}");
        let errs = errors(&o);
        assert!(
            errs.len() == 1 && errs[0].contains("GPU and CPU disagree on grad"),
            "{what}: {errs:?}"
        );
        // Written all the same, to inspect.
        let loss_shape = if reduction == "none" {
            dims.to_vec()
        } else {
            vec![]
        };
        assert_eq!(read_f32(&lp).0, loss_shape, "{what}");
        assert_eq!(read_f32(&gp).0, dims.to_vec(), "{what}");
    }
    assert!(ok(&run("l1", None, &[])).contains("(agree;"));
    let out = ok(&run("l1", Some("zero-tail"), &["--no-check"]));
    assert!(out.contains("not checked (--no-check)"), "{out}");
}

// ------------------------------------------------------------- bench

#[test]
fn bench_json_is_one_document() {
    if gpu("bench_json_is_one_document").is_none() {
        return;
    }
    let out = ok(&xent(&[
        "bench",
        "--json",
        "--iters",
        "2",
        "--cases",
        "16x100,2x3x8x8,bce-with-logits:64x64",
        "--precision",
        "f32,bf16",
    ]));
    // Each cross-entropy case in both precisions, half the bytes in bf16.
    assert!(
        out.contains("\"name\":\"16x100 bf16\"")
            && out.contains(&format!("\"bytes\":{}", 4 * 16 * 100)),
        "{out}"
    );
    assert!(
        out.trim_start().starts_with("{\"adapter\":") && out.contains("\"name\":\"16x100\""),
        "{out}"
    );
    // An elementwise case: input and target read, gradient written.
    assert!(
        out.contains("\"name\":\"bce-with-logits 64x64\"")
            && out.contains(&format!("\"bytes\":{}", 12 * 64 * 64)),
        "{out}"
    );
    let bad = xent(&["bench", "--precision", "f64"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    let bad = xent(&["bench", "--cases", "nope:4x4"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(errors(&bad)[0].contains("nope"), "{bad:?}");
    assert!(
        out.contains("\"copy_ratio\"") && out.contains("\"cpu_ms\""),
        "{out}"
    );
}

/// `--device-class gpu` plans, runs, checks and counts the GPU table on
/// this adapter; the JSON carries the class and each case's byte yardstick.
#[test]
fn bench_device_class_plans_and_counts_for_that_class() {
    if gpu("bench_device_class_plans_and_counts_for_that_class").is_none() {
        return;
    }
    let json = ok(&xent(&[
        "bench",
        "--json",
        "--no-cpu",
        "--iters",
        "1",
        "--device-class",
        "gpu",
        "--cases",
        "4x20000,64x64",
        "--check-rows",
        "3",
    ]));
    assert!(json.contains("\"device_class\":\"gpu\""), "{json}");
    // Few long rows split over workgroups, short ones a team each.
    assert!(json.contains("\"pass\":\"split_partial\""), "{json}");
    assert!(json.contains("\"pass\":\"rows_team4\""), "{json}");
    // 64 × 64 f32: the logits and the i32 targets read, the gradient, the
    // loss and the status written.
    let min = 2 * 4 * 64 * 64 + 4 * 64 + 4 + 16;
    assert!(json.contains(&format!("\"bytes_min\":{min},")), "{json}");
    assert_eq!(json.matches("\"rows_checked\":3,").count(), 2, "{json}");
    let table = ok(&xent(&[
        "bench", "--no-cpu", "--iters", "1", "--cases", "8x8",
    ]));
    assert!(
        table.contains("bytes/min") && table.contains("plans for the"),
        "{table}"
    );
    fails_with(&["bench", "--device-class", "tpu"], "tpu");
    // The environment's class, for every command; a bad one names the variable.
    let env = |class: &str| {
        Command::new(env!("CARGO_BIN_EXE_xent"))
            .args([
                "bench", "--json", "--no-cpu", "--iters", "1", "--cases", "8x8",
            ])
            .env("XENT_DEVICE_CLASS", class)
            .output()
            .unwrap()
    };
    assert!(ok(&env("gpu")).contains("\"device_class\":\"gpu\""));
    let bad = env("tpu");
    assert_ne!(bad.status.code(), Some(0), "{bad:?}");
    assert!(errors(&bad)[0].contains("XENT_DEVICE_CLASS"), "{bad:?}");
}

#[test]
fn bench_check_rows_holds_sampled_rows_to_the_cpu() {
    if gpu("bench_check_rows_holds_sampled_rows_to_the_cpu").is_none() {
        return;
    }
    let out = ok(&xent(&[
        "bench",
        "--no-cpu",
        "--iters",
        "1",
        "--cases",
        "300x1001,64x20",
        "--precision",
        "f32,bf16",
        "--strategies",
        "auto,team",
        "--check-rows",
        "7",
    ]));
    // Each case in each precision and strategy.
    let checked = out
        .matches("7 sampled rows agree with the CPU path")
        .count();
    assert_eq!(checked, 8, "{out}");
    let json = ok(&xent(&[
        "bench",
        "--json",
        "--no-cpu",
        "--iters",
        "1",
        "--cases",
        "40x33,2x5x4x4",
        "--check-rows",
        "100",
    ]));
    // At most every row; a map is not row-checked.
    assert!(json.contains("\"rows_checked\":40,"), "{json}");
    assert!(json.contains("\"rows_checked\":null,"), "{json}");
    fails_with(
        &["bench", "--cases", "mse:8x8", "--check-rows", "4"],
        "--check-rows checks cross-entropy and softmax cases of shape (N, C)",
    );
}

#[test]
fn bench_times_the_vocabulary_split_checked_and_counted() {
    if gpu("bench_times_the_vocabulary_split_checked_and_counted").is_none() {
        return;
    }
    let out = ok(&xent(&[
        "bench",
        "--no-cpu",
        "--iters",
        "1",
        "--cases",
        "vocab-split-3:9x1001",
        "--precision",
        "f32,bf16",
        "--check-rows",
        "4",
    ]));
    assert!(out.contains("vocab-split-3 9x1001 bf16"), "{out}");
    let checked = out
        .matches("4 sampled rows agree with the CPU path")
        .count();
    assert_eq!(checked, 2, "{out}");
    let json = ok(&xent(&[
        "bench",
        "--json",
        "--no-cpu",
        "--iters",
        "1",
        "--cases",
        "vocab-split-2:8x100",
    ]));
    // The unsharded call's minimum; the partials, the merge and the finishes.
    let min = 2 * 4 * 8 * 100 + 4 * 8 + 4 + 16;
    assert!(json.contains(&format!("\"bytes_min\":{min},")), "{json}");
    for pass in ["split_partial", "gather", "vocab_merge", "vocab_grad"] {
        assert!(json.contains(&format!("\"pass\":\"{pass}\"")), "{json}");
    }
    fails_with(&["bench", "--cases", "vocab-split-0:8x8"], "vocab-split");
}

#[test]
fn bench_times_softmax_and_its_backward_checked_and_counted() {
    if gpu("bench_times_softmax_and_its_backward_checked_and_counted").is_none() {
        return;
    }
    let json = ok(&xent(&[
        "bench",
        "--json",
        "--no-cpu",
        "--iters",
        "1",
        "--device-class",
        "gpu",
        "--cases",
        "softmax:300x1001,log-softmax-backward:64x20,softmax:2x5x4x4",
        "--precision",
        "f32,bf16",
        "--check-rows",
        "5",
    ]));
    for name in [
        "softmax 300x1001",
        "softmax 300x1001 bf16",
        "log-softmax-backward 64x20",
        "log-softmax-backward 64x20 bf16",
    ] {
        let at = json
            .find(&format!("\"name\":\"{name}\""))
            .unwrap_or_else(|| panic!("{name}: {json}"));
        let result = &json[at..];
        let result = &result[..result.find('}').unwrap_or(result.len())];
        assert!(result.contains("\"rows_checked\":5,"), "{name}: {result}");
        // Held by a team on the GPU table: each tensor moved once.
        assert!(
            result.contains("\"bytes_ratio\":1.0000"),
            "{name}: {result}"
        );
    }
    // A map is timed and counted, not row-checked.
    assert!(json.contains("\"rows_checked\":null,"), "{json}");
    fails_with(
        &["bench", "--cases", "soft-max:8x8"],
        "log-softmax-backward",
    );
}

#[test]
fn bench_strategies_all_times_every_strategy_that_serves_a_case() {
    if gpu("bench_strategies_all_times_every_strategy_that_serves_a_case").is_none() {
        return;
    }
    let out = ok(&xent(&[
        "bench",
        "--json",
        "--no-cpu",
        "--iters",
        "1",
        "--cases",
        "16x100,2x5x4x4",
        "--strategies",
        "all",
    ]));
    // (16, 100): every strategy but pixels4 and map-team; the (2, 5, 4, 4)
    // map: narrow, pixels4, split, map-team.
    for name in [
        "16x100",
        "16x100 [wide]",
        "16x100 [wide4]",
        "16x100 [wide-mixed]",
        "16x100 [narrow]",
        "16x100 [narrow4]",
        "16x100 [split]",
        "16x100 [team]",
        "16x100 [team4]",
        "2x5x4x4 [narrow]",
        "2x5x4x4 [pixels4]",
        "2x5x4x4 [split]",
        "2x5x4x4 [map-team]",
    ] {
        assert!(
            out.contains(&format!("\"name\":\"{name}\"")),
            "{name}: {out}"
        );
    }
    for name in [
        "16x100 [pixels4]",
        "16x100 [map-team]",
        "2x5x4x4 [wide4]",
        "2x5x4x4 [wide]",
        "2x5x4x4 [team]",
    ] {
        assert!(
            !out.contains(&format!("\"name\":\"{name}\"")),
            "{name}: {out}"
        );
    }
    // A named strategy that cannot serve a case is an error, not left out.
    fails_with(
        &[
            "bench",
            "--iters",
            "1",
            "--no-cpu",
            "--cases",
            "16x100",
            "--strategies",
            "pixels4",
        ],
        "pixels4",
    );
    fails_with(&["bench", "--strategies", "fastest"], "strategy");
}

#[test]
fn xent_strategy_forces_a_strategy_for_the_process() {
    if gpu("xent_strategy_forces_a_strategy_for_the_process").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = write(d, "x.npy", &[3, 5], &WORKED_LOGITS);
    let t = write(d, "t.npy", &[3], &WORKED_TARGETS);
    let run = |strategy: &str| {
        Command::new(env!("CARGO_BIN_EXE_xent"))
            .args(["loss", "--logits", s(&x), "--targets", s(&t)])
            .env("XENT_STRATEGY", strategy)
            .output()
            .unwrap()
    };
    // Empty is unset.
    for strategy in ["narrow", "wide", "wide-mixed", "split", "auto", ""] {
        let o = run(strategy);
        assert!(ok(&o).contains("loss (mean): 3.792"), "{strategy}: {o:?}");
    }
    // pixels4 cannot serve rows: the forced strategy is refused, naming it.
    let o = run("pixels4");
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(errors(&o)[0].contains("pixels4 serves maps"), "{o:?}");
    let o = run("fastest");
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(errors(&o)[0].contains("strategy = fastest"), "{o:?}");
}

#[test]
fn bench_profile_lists_each_dispatch_in_order() {
    let Some(ctx) = gpu("bench_profile_lists_each_dispatch_in_order") else {
        return;
    };
    // 16 x 100: one block of rows; 20 000 x 8: three blocks (of 6 668
    // rows), so the statistics and the loss take a dispatch per block first.
    let out = xent(&[
        "bench",
        "--json",
        "--profile",
        "--no-cpu",
        "--iters",
        "2",
        "--cases",
        "16x100,20000x8",
    ]);
    if !ctx
        .device()
        .features()
        .contains(wgpu::Features::TIMESTAMP_QUERY)
    {
        // No timestamps (GL): a typed error, not a profile of zeros.
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let errs = errors(&out);
        assert!(
            errs.len() == 1 && errs[0].contains("TIMESTAMP_QUERY"),
            "{errs:?}"
        );
        return;
    }
    let json = ok(&out);
    let entries = |case: &str| -> Vec<String> {
        let at = json.find(&format!("\"name\":\"{case}\"")).expect(case);
        let list = &json[at..];
        let list = &list[list.find("\"dispatches\":[").expect("dispatches")..];
        let list = &list[..list.find(']').expect("end of dispatches")];
        list.split("\"entry\":\"")
            .skip(1)
            .map(|e| e[..e.find('"').unwrap()].to_string())
            .collect()
    };
    assert_eq!(
        entries("16x100"),
        ["target_stats", "rows_narrow4", "loss_tiles", "reduce_loss"]
    );
    assert_eq!(
        entries("20000x8"),
        [
            "target_partials",
            "target_stats",
            "rows_narrow4_fixed",
            "loss_tiles",
            "loss_partials",
            "reduce_loss"
        ]
    );
    // Every dispatch's time is a number, finite and not negative.
    let times: Vec<f64> = json
        .split("\"entry\":")
        .skip(1)
        .map(|d| {
            let t = &d[d.find("\"gpu_ms\":").expect("gpu_ms") + 9..];
            t[..t.find('}').expect("end of dispatch")]
                .parse()
                .expect("a number")
        })
        .collect();
    assert_eq!(times.len(), 10, "{json}");
    assert!(
        times.iter().all(|t| t.is_finite() && *t >= 0.0),
        "{times:?}"
    );
}

// ------------------------------------------------------------- linear-loss

/// A small fused problem written as .npy files: hidden (5, 8), weight
/// (11, 8), bias (11), class weights (11), int32 targets (5) with one
/// ignored (-100).
fn linear_files(dir: &Path) -> [PathBuf; 5] {
    let mut rng = Rng(5);
    let h: Vec<f32> = (0..40).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let w: Vec<f64> = (0..88).map(|_| f64::from(rng.uniform(-1.0, 1.0))).collect();
    let b: Vec<f32> = (0..11).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let cw: Vec<f32> = (0..11).map(|_| rng.uniform(0.5, 2.0)).collect();
    let t: Vec<i32> = vec![3, -100, 10, 0, 7];
    [
        write(dir, "h.npy", &[5, 8], &h),
        write(dir, "w.npy", &[11, 8], &w),
        write(dir, "b.npy", &[11], &b),
        write(dir, "cw.npy", &[11], &cw),
        write(dir, "t.npy", &[5], &t),
    ]
}

/// `xent linear-loss` of the files of [`linear_files`] with reduction sum,
/// smoothing 0.1, z-loss 1e-3, softcap 4 and temperature 0.75, and the
/// `extra` arguments.
fn linear_sum_run(files: &[PathBuf; 5], extra: &[&str]) -> Output {
    let [h, w, b, cw, t] = files;
    let mut args = vec![
        "linear-loss",
        "--hidden",
        s(h),
        "--weight",
        s(w),
        "--targets",
        s(t),
        "--bias",
        s(b),
        "--weights",
        s(cw),
        "--reduction",
        "sum",
        "--label-smoothing",
        "0.1",
        "--z-loss",
        "1e-3",
        "--softcap",
        "4",
        "--temperature",
        "0.75",
    ];
    args.extend(extra);
    xent(&args)
}

/// What the library computes for [`linear_sum_run`]'s call.
fn linear_sum_of_the_library(ctx: &Context, files: &[PathBuf; 5]) -> xent::LinearOutput<f32> {
    let [h, w, b, cw, _] = files;
    let (h32, w32) = (read_npy_f32(h), read_npy_f32(w));
    let (b32, cw32) = (read_npy_f32(b), read_npy_f32(cw));
    let opts = xent::LinearCrossEntropyOptions {
        loss: xent::CrossEntropyOptions {
            reduction: xent::Reduction::Sum,
            label_smoothing: 0.1,
            z_loss: 1e-3,
            softcap: Some(4.0),
            temperature: 0.75,
            ..Default::default()
        },
        ..Default::default()
    };
    let dims = xent::LinearDims { n: 5, h: 8, v: 11 };
    ctx.linear_cross_entropy(
        &h32,
        &w32,
        Some(&b32),
        &[3, -100, 10, 0, 7],
        Some(&cw32),
        &dims,
        &opts,
        &Default::default(),
    )
    .unwrap()
}

#[test]
fn linear_loss_writes_what_the_library_computes() {
    let Some(ctx) = gpu("linear_loss_writes_what_the_library_computes") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let files = linear_files(dir.path());
    let out = |name: &str| dir.path().join(name);
    let o = linear_sum_run(
        &files,
        &[
            "--scratch-budget",
            "2000",
            "--loss-out",
            s(&out("l.npy")),
            "--grad-hidden-out",
            s(&out("gh.npy")),
            "--grad-weight-out",
            s(&out("gw.npy")),
            "--grad-bias-out",
            s(&out("gb.npy")),
        ],
    );
    let text = ok(&o);
    assert!(text.contains("(agree)"), "{text}");
    let read = |name: &str| read_f32(&out(name));
    let lib = linear_sum_of_the_library(ctx, &files);
    assert_eq!(read("l.npy"), (vec![], lib.loss.clone()));
    assert_eq!(read("gh.npy"), (vec![5, 8], lib.grad_hidden.unwrap()));
    assert_eq!(read("gw.npy"), (vec![11, 8], lib.grad_weight.unwrap()));
    assert_eq!(read("gb.npy"), (vec![11], lib.grad_bias.unwrap()));
    // The CPU twin alone agrees.
    let o = linear_sum_run(
        &files,
        &["--backend", "cpu", "--loss-out", s(&out("lc.npy"))],
    );
    ok(&o);
    let cpu = read("lc.npy").1[0];
    assert!(
        (cpu - lib.loss[0]).abs() <= 1e-4 * cpu.abs(),
        "{cpu} vs {}",
        lib.loss[0]
    );
}

/// `linear-loss` of `hidden` (any leading shape) against the weight of
/// [`linear_files`] and `targets`, reduction `none`, writing the loss and
/// `∂L/∂h` into `dir`; returns (loss, grad hidden) as read back.
fn linear_none_run(dir: &Path, w: &Path, hidden: &Path, targets: &Path, tag: &str) -> (Npy, Npy) {
    let (l, gh) = (
        dir.join(format!("l{tag}.npy")),
        dir.join(format!("gh{tag}.npy")),
    );
    let lse = dir.join(format!("lse{tag}.npy"));
    let text = ok(&xent(&[
        "linear-loss",
        "--hidden",
        s(hidden),
        "--weight",
        s(w),
        "--targets",
        s(targets),
        "--reduction",
        "none",
        "--label-smoothing",
        "0.1",
        "--loss-out",
        s(&l),
        "--grad-hidden-out",
        s(&gh),
        "--lse-out",
        s(&lse),
    ]));
    assert!(text.contains("(agree)"), "{tag}: {text}");
    // The log-sum-exp of every row, of the loss's `none` shape.
    let (loss, lse) = (read_f32(&l), read_f32(&lse));
    assert_eq!(lse.0, loss.0, "{tag}");
    (loss, read_f32(&gh))
}

#[test]
fn linear_loss_takes_leading_dimensions_probabilities_and_one_row() {
    let Some(ctx) = gpu("linear_loss_takes_leading_dimensions_probabilities_and_one_row") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let [h, w, ..] = linear_files(d);
    let (h32, w32) = (read_npy_f32(&h), read_npy_f32(&w));
    let ids = [3i64, 1, 10, 0, 7, 4];
    let probs: Vec<f64> = (0..66)
        .map(|i| f64::from((i * 5 % 7) as u8) / 8.0)
        .collect();
    let opts = xent::LinearCrossEntropyOptions {
        loss: xent::CrossEntropyOptions {
            reduction: xent::Reduction::None,
            label_smoothing: 0.1,
            ..Default::default()
        },
        ..Default::default()
    };
    // The library on the flattened rows: (6, 8) from the 5 rows of h and its first.
    let h6: Vec<f32> = h32.iter().chain(&h32[..8]).copied().collect();
    let dims = xent::LinearDims { n: 6, h: 8, v: 11 };
    let probs32: Vec<f32> = probs.iter().map(|&p| p as f32).collect();
    let lib = |t: xent::Targets<'_>| {
        ctx.linear_cross_entropy_with(&h6, &w32, None, t, None, &dims, &opts, &Default::default())
            .unwrap()
    };
    let hb = write(d, "hb.npy", &[2, 3, 8], &h6);
    for (tag, targets, want) in [
        (
            "ids",
            write(d, "tb.npy", &[2, 3], &ids),
            lib(xent::Targets::I64(&ids)),
        ),
        (
            "probs",
            write(d, "pb.npy", &[2, 3, 11], &probs),
            lib(xent::Targets::Probs(&probs32)),
        ),
    ] {
        let (loss, gh) = linear_none_run(d, &w, &hb, &targets, tag);
        assert_eq!(loss, (vec![2, 3], want.loss), "{tag}");
        assert_eq!(gh, (vec![2, 3, 8], want.grad_hidden.unwrap()), "{tag}");
    }
    // One unbatched row (H) with a 0-d class id or (V) probabilities.
    let h1 = write(d, "h1.npy", &[8], &h32[..8]);
    let dims1 = xent::LinearDims { n: 1, h: 8, v: 11 };
    for (tag, targets, t) in [
        (
            "id1",
            write(d, "t1.npy", &[], &[3i64]),
            xent::Targets::I64(&[3]),
        ),
        (
            "probs1",
            write(d, "p1.npy", &[11], &probs[..11]),
            xent::Targets::Probs(&probs32[..11]),
        ),
    ] {
        let want = ctx
            .linear_cross_entropy_with(
                &h32[..8],
                &w32,
                None,
                t,
                None,
                &dims1,
                &opts,
                &Default::default(),
            )
            .unwrap();
        let (loss, gh) = linear_none_run(d, &w, &h1, &targets, tag);
        assert_eq!(loss, (vec![], want.loss), "{tag}");
        assert_eq!(gh, (vec![8], want.grad_hidden.unwrap()), "{tag}");
    }
}

/// An int64 `.npy`'s shape and values.
fn read_i64(path: &Path) -> (Vec<usize>, Vec<i64>) {
    let file = std::fs::File::open(path).unwrap();
    let npy = npyz::NpyFile::new(std::io::BufReader::new(file)).unwrap();
    let descr = npy.dtype().descr();
    assert_eq!(descr, "'<i8'", "{} is not int64", path.display());
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (shape, npy.into_vec::<i64>().unwrap())
}

fn read_npy_f32(path: &Path) -> Vec<f32> {
    let file = std::fs::File::open(path).unwrap();
    let npy = npyz::NpyFile::new(std::io::BufReader::new(file)).unwrap();
    match npy.dtype().descr().as_str() {
        "'<f8'" => npy
            .into_vec::<f64>()
            .unwrap()
            .iter()
            .map(|&v| v as f32)
            .collect(),
        _ => npy.into_vec::<f32>().unwrap(),
    }
}

/// `--product-kernel`: the emulated cooperative kernel's result passes the
/// check in bf16 and in f32 (split in halves); `coop` without the hardware
/// exits 2 saying why; bench takes it with `--linear` only.
#[test]
fn linear_loss_takes_a_product_kernel() {
    let Some(ctx) = gpu("linear_loss_takes_a_product_kernel") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let [h, w, _, _, t] = linear_files(dir.path());
    let (h, w, t) = (s(&h), s(&w), s(&t));
    let base = ["linear-loss", "--hidden", h, "--weight", w, "--targets", t];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        base.iter().chain(extra).copied().collect()
    }
    let emulated = ["--precision", "bf16", "--product-kernel", "coop-emulated"];
    let out = ok(&xent(&with(&base, &emulated)));
    assert!(out.contains("agree"), "{out}");
    // f32 operands split in halves: the check still agrees.
    let out = ok(&xent(&with(&base, &["--product-kernel", "coop-emulated"])));
    assert!(out.contains("agree"), "{out}");
    if !ctx.cooperative_matrices() {
        fails_with(
            &with(&base, &["--precision", "bf16", "--product-kernel", "coop"]),
            "EXPERIMENTAL_COOPERATIVE_MATRIX",
        );
    }
    fails_with(
        &["bench", "--product-kernel", "tiled", "--cases", "8x8"],
        "--product-kernel applies to --linear",
    );
    let json = ok(&xent(&[
        "bench",
        "--json",
        "--iters",
        "1",
        "--linear",
        "64x32x100",
        "--precision",
        "bf16",
        "--product-kernel",
        "coop-emulated",
    ]));
    assert!(json.contains("64x32x100 bf16 [coop-emulated]"), "{json}");
    // Each product over one window, timed alone.
    assert!(
        json.contains(r#""products":[{"name":"logits","m":64,"n":100,"k":32,"#),
        "{json}"
    );
}

/// `--split-k`: a cut the kernels run passes the check, its slices run at
/// once giving the bits of one at a time; a cut no kernel runs and words
/// that are no cut exit 2 naming them.
#[test]
fn linear_loss_takes_a_cut_of_k() {
    if gpu("linear_loss_takes_a_cut_of_k").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let [h, w, _, _, t] = linear_files(dir.path());
    let (h, w, t) = (s(&h), s(&w), s(&t));
    let grads = |cut: &str| {
        let out = dir.path().join(format!("gw{cut}.npy"));
        let args = [
            "linear-loss",
            "--hidden",
            h,
            "--weight",
            w,
            "--targets",
            t,
            "--split-k",
            cut,
            "--grad-weight-out",
            s(&out),
        ];
        assert!(ok(&xent(&args)).contains("agree"));
        std::fs::read(&out).unwrap()
    };
    assert_eq!(grads("16x4"), grads("16"));
    let base = [
        "linear-loss",
        "--hidden",
        h,
        "--weight",
        w,
        "--targets",
        t,
        "--split-k",
    ];
    let with = |cut| base.iter().copied().chain([cut]).collect::<Vec<_>>();
    fails_with(&with("24"), "split_k");
    fails_with(&with("16x0"), "split_k");
    fails_with(&with("sixteen"), "expected auto, LEN or LENxP");
    // Gradient filtering: the check allows for what it skips.
    let filtered = [
        "linear-loss",
        "--hidden",
        h,
        "--weight",
        w,
        "--targets",
        t,
        "--filter-eps",
    ];
    let filter = |eps| filtered.iter().copied().chain([eps]).collect::<Vec<_>>();
    assert!(ok(&xent(&filter("0.05"))).contains("agree"));
    let negative = [
        "linear-loss",
        "--hidden",
        h,
        "--weight",
        w,
        "--targets",
        t,
        "--filter-eps=-1",
    ];
    fails_with(&negative, "filter_eps");
}

#[test]
fn linear_loss_bad_input_exits_2_with_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let [h, w, b, _, t] = linear_files(dir.path());
    let (h, w, b, t) = (s(&h), s(&w), s(&b), s(&t));
    // `linear-loss` of hidden `h` with the weight and targets files given.
    let on = |w: &str, t: &str, extra: &[&str]| -> Vec<String> {
        ["linear-loss", "--hidden", h, "--weight", w, "--targets", t]
            .iter()
            .chain(extra)
            .map(|v| v.to_string())
            .collect()
    };
    let with = |extra: &[&str]| on(w, t, extra);
    let fails = |args: Vec<String>, message: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails_with(&args, message);
    };
    let short_w = write(dir.path(), "w7.npy", &[11, 7], &[0.0f32; 77]);
    let short_b = write(dir.path(), "b10.npy", &[10], &[0.0f32; 10]);
    let short_t = write(dir.path(), "t4.npy", &[4], &[0i64; 4]);
    let bad_t = write(dir.path(), "t11.npy", &[5], &[0i64, 1, 11, 2, 3]);
    let float_t = write(dir.path(), "tf.npy", &[5], &[0.0f32; 5]);
    fails(on(s(&short_w), t, &[]), "their H (last axes) differ");
    fails(with(&["--bias", s(&short_b)]), "bias has shape [10]");
    fails(on(w, s(&short_t), &[]), "targets have shape [4]");
    fails(
        on(w, s(&bad_t), &["--backend", "cpu"]),
        "target 11 at position [2] is out of range",
    );
    fails(
        on(w, s(&float_t), &[]),
        "probabilities need the hidden's leading shape and V, [5, 11]",
    );
    let w3 = write(dir.path(), "w3.npy", &[11, 2, 4], &[0.0f32; 88]);
    fails(
        on(s(&w3), t, &[]),
        "weight has shape [11, 2, 4]: the weight must be (V, H)",
    );
    let h0 = write(dir.path(), "h0.npy", &[], &[1.0f32]);
    let h0_args: Vec<String> = [
        "linear-loss",
        "--hidden",
        s(&h0),
        "--weight",
        w,
        "--targets",
        t,
    ]
    .iter()
    .map(|v| v.to_string())
    .collect();
    fails(h0_args, "hidden has shape []");
    let probs = write(dir.path(), "p.npy", &[5, 11], &[0.1f32; 55]);
    fails(
        on(w, s(&probs), &["--vocab-shards", "2"]),
        "--vocab-shards takes int64 or int32",
    );
    let u8_t = write(dir.path(), "tu8.npy", &[5], &[0u8; 5]);
    fails(on(w, s(&u8_t), &[]), "expected int64 or int32 class ids or");
    fails(with(&["--softcap", "0"]), "softcap = 0");
    fails(
        with(&["--softcap", "-2", "--backend", "cpu"]),
        "softcap = -2",
    );
    fails(
        with(&["--grad-bias-out", "gb.npy"]),
        "--grad-bias-out needs --bias",
    );
    fails(with(&["--scratch-budget", "10"]), "scratch_budget = 10");
    fails(with(&["--temperature", "0"]), "temperature = 0");
    fails(with(&["--temperature", "inf"]), "temperature = inf");
    fails(with(&["--loss-out", h]), "it is the --hidden file");
    let _ = b;
}

/// `xent loss --lse-out`: each row's log-sum-exp, of the targets' shape,
/// the library's on the GPU (split or not) and the twin's with `--backend cpu`.
#[test]
fn loss_writes_each_rows_log_sum_exp() {
    let Some(ctx) = gpu("loss_writes_each_rows_log_sum_exp") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let dims = [2usize, 5, 3];
    let x: Vec<f32> = (0..30).map(|i| (i as f32 * 0.7).sin() * 4.0).collect();
    let ids = [0i64, 4, 2, -100, 1, 3];
    let xp = write(d, "x.npy", &dims, &x);
    let tp = write(d, "t.npy", &[2, 3], &ids);
    let opts = xent::CrossEntropyOptions {
        temperature: 0.5,
        ..Default::default()
    };
    let returns = xent::Returns {
        lse: true,
        ..Default::default()
    };
    let lib = ctx
        .cross_entropy(&x, &dims, &ids, None, &opts, &returns)
        .unwrap()
        .lse
        .unwrap();
    let lse = d.join("lse.npy");
    let run = |extra: &[&str]| {
        let base = [
            "loss",
            "--logits",
            s(&xp),
            "--targets",
            s(&tp),
            "--temperature",
            "0.5",
        ];
        let text = ok(&xent(&[&base[..], &["--lse-out", s(&lse)], extra].concat()));
        assert!(!text.contains("DISAGREE"), "{text}");
        read_f32(&lse)
    };
    assert_eq!(run(&[]), (vec![2, 3], lib.clone()));
    let (shape, split) = run(&["--vocab-shards", "2"]);
    assert_eq!(shape, vec![2, 3]);
    let (_, twin) = run(&["--backend", "cpu"]);
    for (i, ((a, b), c)) in lib.iter().zip(&split).zip(&twin).enumerate() {
        let close = (a - b).abs() <= 1e-5 * a.abs() && (a - c).abs() <= 1e-5 * a.abs();
        assert!(close, "{i}: {a} {b} {c}");
    }
}

/// `xent loss --z-loss --softcap --temperature`: the library's options, checked against the CPU.
#[test]
fn loss_takes_z_loss_softcap_and_temperature() {
    let Some(ctx) = gpu("loss_takes_z_loss_softcap_and_temperature") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let x = write(dir.path(), "x.npy", &[3, 5], &WORKED_LOGITS);
    let t = write(dir.path(), "t.npy", &[3], &WORKED_TARGETS);
    let l = dir.path().join("l.npy");
    let text = ok(&xent(&[
        "loss",
        "--logits",
        s(&x),
        "--targets",
        s(&t),
        "--z-loss",
        "0.01",
        "--softcap",
        "3",
        "--temperature",
        "0.5",
        "--loss-out",
        s(&l),
    ]));
    assert!(text.contains("agree"), "{text}");
    let opts = xent::CrossEntropyOptions {
        z_loss: 0.01,
        softcap: Some(3.0),
        temperature: 0.5,
        ..Default::default()
    };
    let lib = ctx
        .cross_entropy(
            &WORKED_LOGITS,
            &[3, 5],
            &WORKED_TARGETS,
            None,
            &opts,
            &Default::default(),
        )
        .unwrap();
    assert_eq!(read_f32(&l).1, lib.loss);
    fails_with(
        &[
            "loss",
            "--logits",
            s(&x),
            "--targets",
            s(&t),
            "--softcap",
            "0",
        ],
        "softcap = 0",
    );
    fails_with(
        &[
            "loss",
            "--logits",
            s(&x),
            "--targets",
            s(&x),
            "--loss",
            "mse",
            "--softcap",
            "2",
        ],
        "--softcap does not apply to --loss mse",
    );
}

/// `--vocab-shards K` (K past C included) writes what the library's split
/// call computes, which agrees with the unsharded outputs; 0 shards and
/// the flag with an elementwise loss exit 2.
#[test]
fn vocab_shards_write_the_split_calls_outputs() {
    let Some(ctx) = gpu("vocab_shards_write_the_split_calls_outputs") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = write(d, "x.npy", &[3, 5], &WORKED_LOGITS);
    let t = write(d, "t.npy", &[3], &WORKED_TARGETS);
    for shards in ["2", "7"] {
        sharded_cross_entropy_is_the_split_calls(ctx, d, (&x, &t), shards);
    }
    let base = ["loss", "--logits", s(&x), "--targets", s(&t)];
    fails_with(
        &[&base[..], &["--vocab-shards", "0"]].concat(),
        "--vocab-shards must be at least 1",
    );
    fails_with(
        &[&base[..], &["--loss", "mse", "--vocab-shards", "2"]].concat(),
        "--vocab-shards",
    );
    sharded_linear_loss_agrees_across_shard_counts(d);
}

/// `--vocab-shards shards` on the worked example (logits `x`, targets `t`)
/// with smoothing 0.2 writes the library's split call's outputs.
fn sharded_cross_entropy_is_the_split_calls(
    ctx: &Context,
    d: &Path,
    (x, t): (&Path, &Path),
    shards: &str,
) {
    let (lp, gp) = (
        d.join(format!("l{shards}.npy")),
        d.join(format!("g{shards}.npy")),
    );
    let out = ok(&xent(&[
        "loss",
        "--logits",
        s(x),
        "--targets",
        s(t),
        "--label-smoothing",
        "0.2",
        "--vocab-shards",
        shards,
        "--loss-out",
        s(&lp),
        "--grad-out",
        s(&gp),
    ]));
    assert!(out.contains("(agree"), "{out}");
    let opts = xent::CrossEntropyOptions {
        label_smoothing: 0.2,
        ..Default::default()
    };
    let lib = ctx
        .cross_entropy_sharded(
            &WORKED_LOGITS,
            &[3, 5],
            xent::Targets::I64(&WORKED_TARGETS),
            xent::Weights::none(),
            &opts,
            &Default::default(),
            shards.parse().unwrap(),
        )
        .unwrap();
    assert_eq!(read_f32(&lp), (vec![], lib.loss.clone()));
    assert_eq!(read_f32(&gp), (vec![3, 5], lib.grad.unwrap()));
}

/// `linear-loss --vocab-shards`: 1 and 13 shards (past V = 11) agree; 0 exits 2.
fn sharded_linear_loss_agrees_across_shard_counts(d: &Path) {
    let [h, w, b, cw, t] = linear_files(d);
    let (gw1, gw3) = (d.join("gw1.npy"), d.join("gw3.npy"));
    for (shards, gw) in [("1", &gw1), ("13", &gw3)] {
        let out = ok(&xent(&[
            "linear-loss",
            "--hidden",
            s(&h),
            "--weight",
            s(&w),
            "--targets",
            s(&t),
            "--bias",
            s(&b),
            "--weights",
            s(&cw),
            "--softcap",
            "4",
            "--temperature",
            "1.5",
            "--vocab-shards",
            shards,
            "--grad-weight-out",
            s(gw),
        ]));
        assert!(out.contains("(agree)"), "{out}");
    }
    let (one, thirteen) = (read_f32(&gw1), read_f32(&gw3));
    assert_eq!(one.0, vec![11, 8]);
    assert_eq!(one.0, thirteen.0);
    let diff = one
        .1
        .iter()
        .zip(&thirteen.1)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "1 and 13 shards differ by {diff}");
    let base = [
        "linear-loss",
        "--hidden",
        s(&h),
        "--weight",
        s(&w),
        "--targets",
        s(&t),
    ];
    fails_with(
        &[&base[..], &["--vocab-shards", "0"]].concat(),
        "--vocab-shards must be at least 1",
    );
}

/// `xent loss --argmax-out --entropy-out`: each row's predicted class
/// (int64) and entropy (float32), of the targets' shape, every row (the
/// ignored one too): the library's on the GPU, split or not, and the twin's
/// with `--backend cpu`; a tie goes to the first class, a NaN wins.
#[test]
fn loss_writes_each_rows_predicted_class_and_entropy() {
    let Some(ctx) = gpu("loss_writes_each_rows_predicted_class_and_entropy") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let dims = [2usize, 5, 3];
    let mut x: Vec<f32> = (0..30).map(|i| (i as f32 * 0.7).sin() * 4.0).collect();
    // Pixel 0: classes 1 and 3 tie at the top; pixel 1: a NaN at class 2.
    (x[3], x[9]) = (9.0, 9.0);
    x[7] = f32::NAN;
    let ids = [0i64, 4, 2, -100, 1, 3];
    let xp = write(d, "x.npy", &dims, &x);
    let tp = write(d, "t.npy", &[2, 3], &ids);
    let opts = xent::CrossEntropyOptions {
        temperature: 0.5,
        ..Default::default()
    };
    let lib = ctx
        .cross_entropy(&x, &dims, &ids, None, &opts, &xent::Returns::ROWS)
        .unwrap();
    let (lib_argmax, lib_entropy) = (lib.argmax.unwrap(), lib.entropy.unwrap());
    assert_eq!(&lib_argmax[..2], &[1, 2], "the first of a tie; a NaN");
    let (a, h) = (d.join("a.npy"), d.join("h.npy"));
    let run = |extra: &[&str]| {
        let base = [
            "loss",
            "--logits",
            s(&xp),
            "--targets",
            s(&tp),
            "--temperature",
            "0.5",
        ];
        let outs = ["--argmax-out", s(&a), "--entropy-out", s(&h)];
        let text = ok(&xent(&[&base[..], &outs, extra].concat()));
        assert!(!text.contains("DISAGREE"), "{text}");
        assert!(text.contains("int64 [2, 3]"), "{text}");
        (read_i64(&a), read_f32(&h))
    };
    let ((shape, argmax), (hshape, entropy)) = run(&[]);
    assert_eq!((shape, hshape), (vec![2, 3], vec![2, 3]));
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!((&argmax, bits(&entropy)), (&lib_argmax, bits(&lib_entropy)));
    for extra in [&["--vocab-shards", "2"][..], &["--backend", "cpu"]] {
        let ((_, argmax), (_, entropy)) = run(extra);
        assert_eq!(argmax, lib_argmax, "{extra:?}");
        for (i, (a, b)) in lib_entropy.iter().zip(&entropy).enumerate() {
            let close = (a - b).abs() <= 1e-5 * a.abs().max(1.0) || (a.is_nan() && b.is_nan());
            assert!(close, "{extra:?} {i}: {a} {b}");
        }
    }
}

/// `xent linear-loss --argmax-out --entropy-out`: of the hidden's leading
/// shape, the library's, split into vocabulary shards or not, and the
/// twin's.
#[test]
fn linear_loss_writes_each_rows_predicted_class_and_entropy() {
    let Some(ctx) = gpu("linear_loss_writes_each_rows_predicted_class_and_entropy") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let [h, w, _, _, t] = linear_files(d);
    let (h32, w32) = (read_npy_f32(&h), read_npy_f32(&w));
    let ids = [3i64, -100, 10, 0, 7];
    let dims = xent::LinearDims { n: 5, h: 8, v: 11 };
    let opts = xent::LinearCrossEntropyOptions::default();
    let lib = ctx
        .linear_cross_entropy(
            &h32,
            &w32,
            None,
            &ids,
            None,
            &dims,
            &opts,
            &xent::Returns::ROWS,
        )
        .unwrap();
    let (a, e) = (d.join("a.npy"), d.join("e.npy"));
    for extra in [&[][..], &["--vocab-shards", "3"], &["--backend", "cpu"]] {
        let base = [
            "linear-loss",
            "--hidden",
            s(&h),
            "--weight",
            s(&w),
            "--targets",
            s(&t),
        ];
        let outs = ["--argmax-out", s(&a), "--entropy-out", s(&e)];
        let text = ok(&xent(&[&base[..], &outs, extra].concat()));
        assert!(!text.contains("DISAGREE"), "{extra:?}: {text}");
        let ((shape, argmax), (eshape, entropy)) = (read_i64(&a), read_f32(&e));
        assert_eq!((shape, eshape), (vec![5], vec![5]), "{extra:?}");
        assert_eq!(Some(argmax), lib.argmax, "{extra:?}");
        for (x, y) in entropy.iter().zip(lib.entropy.as_ref().unwrap()) {
            assert!(
                (x - y).abs() <= 1e-5 * y.abs().max(1.0),
                "{extra:?}: {x} {y}"
            );
        }
    }
}
