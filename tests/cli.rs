//! The `xent` binary on temporary .npy files: outputs match the library,
//! `--backend cpu` agrees with the GPU, and every bad input gets exit status 2
//! with one `error: …` line and no panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use npyz::WriterBuilder;
use xent::{CrossEntropyOptions, InputKind, Reduction, Targets, Tolerance, Weights};

fn xent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xent"))
        .args(args)
        .output()
        .expect("run xent")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The `error: …` lines of stderr (other libraries may print their own notices).
fn errors(o: &Output) -> Vec<String> {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "xent panicked: {stderr}");
    assert!(
        !stderr.contains("RUST_BACKTRACE"),
        "xent printed a backtrace hint: {stderr}"
    );
    stderr
        .lines()
        .filter(|l| l.starts_with("error: ") && !l.contains("XDG_RUNTIME_DIR"))
        .map(String::from)
        .collect()
}

fn write<T: npyz::AutoSerialize + Copy>(
    dir: &Path,
    name: &str,
    shape: &[usize],
    data: &[T],
) -> PathBuf {
    let path = dir.join(name);
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(std::io::BufWriter::new(
            std::fs::File::create(&path).unwrap(),
        ))
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    path
}

fn read_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let npy =
        npyz::NpyFile::new(std::io::BufReader::new(std::fs::File::open(path).unwrap())).unwrap();
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (shape, npy.into_vec::<f32>().unwrap())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn demo_is_the_default_and_passes() {
    if common::ctx().is_none() {
        return;
    }
    let o = xent(&[]);
    assert!(o.status.success(), "{}{:?}", stdout(&o), errors(&o));
    let out = stdout(&o);
    assert!(out.contains("3.7925"), "{out}");
    assert!(out.contains("adapter:"), "{out}");
    assert!(
        out.contains("2x21x64x64") && out.contains("8x50257"),
        "{out}"
    );
    assert!(out.contains("agree with the CPU"), "{out}");
}

#[test]
fn info_lists_an_adapter() {
    if common::ctx().is_none() {
        return;
    }
    let o = xent(&["info"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(
        out.contains("largest storage binding") && out.contains("timestamps"),
        "{out}"
    );
}

#[test]
fn loss_outputs_match_the_library_and_the_cpu_backend() {
    let Some(ctx) = common::ctx() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rng = common::Rng(8);
    let tol = Tolerance::default();

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
    let (lp, gp) = (d.join("loss.npy"), d.join("grad.npy"));
    let base = [
        "loss",
        "--logits",
        s(&xp),
        "--targets",
        s(&tp),
        "--weights",
        s(&wp),
        "--ignore-index",
        "255",
    ];
    let mut args = base.to_vec();
    args.extend([
        "--reduction",
        "none",
        "--label-smoothing",
        "0.1",
        "--loss-out",
        s(&lp),
        "--grad-out",
        s(&gp),
    ]);
    let o = xent(&args);
    assert!(o.status.success(), "{:?}", errors(&o));
    assert!(stdout(&o).contains("largest |GPU - CPU|"), "{}", stdout(&o));
    let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
    let opts = CrossEntropyOptions {
        ignore_index: 255,
        reduction: Reduction::None,
        label_smoothing: 0.1,
        ..Default::default()
    };
    let lib = ctx
        .cross_entropy_with(
            &x,
            &dims,
            Targets::U8(&mask),
            Weights {
                class: Some(&w32),
                sample: None,
            },
            &opts,
        )
        .unwrap();
    let (loss_shape, loss) = read_f32(&lp);
    let (grad_shape, grad) = read_f32(&gp);
    assert_eq!(loss_shape, vec![2, 3, 5]);
    assert_eq!(grad_shape, dims.to_vec());
    assert_eq!(loss, lib.loss);
    assert_eq!(grad, lib.grad.unwrap());

    // --backend cpu agrees with the GPU.
    let (lc, gc) = (d.join("loss_cpu.npy"), d.join("grad_cpu.npy"));
    let mut args = base.to_vec();
    args.extend([
        "--reduction",
        "none",
        "--label-smoothing",
        "0.1",
        "--loss-out",
        s(&lc),
        "--grad-out",
        s(&gc),
        "--backend",
        "cpu",
    ]);
    let o = xent(&args);
    assert!(o.status.success(), "{:?}", errors(&o));
    let as64 = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<f64>>();
    tol.compare("loss", &loss, &as64(read_f32(&lc).1)).unwrap();
    tol.compare("grad", &grad, &as64(read_f32(&gc).1)).unwrap();

    // Mean over int64 targets, shape () loss; probability targets in float64; log-prob input.
    let x2: Vec<f64> = (0..15).map(|_| f64::from(rng.uniform(-3.0, 3.0))).collect();
    let t2 = [1i64, 3, 2];
    let x2p = write(d, "x2.npy", &[3, 5], &x2);
    let t2p = write(d, "t2.npy", &[3], &t2);
    let l2 = d.join("l2.npy");
    let o = xent(&[
        "loss",
        "--logits",
        s(&x2p),
        "--targets",
        s(&t2p),
        "--loss-out",
        s(&l2),
    ]);
    assert!(o.status.success(), "{:?}", errors(&o));
    let x2f: Vec<f32> = x2.iter().map(|&v| v as f32).collect();
    let lib = ctx
        .cross_entropy(&x2f, &[3, 5], &t2, None, &Default::default())
        .unwrap();
    assert_eq!(read_f32(&l2), (vec![], lib.loss.clone()));

    let probs: Vec<f64> = (0..15)
        .map(|i| if i % 5 == 0 { 0.6 } else { 0.1 })
        .collect();
    let pp = write(d, "p.npy", &[3, 5], &probs);
    let o = xent(&[
        "loss",
        "--logits",
        s(&x2p),
        "--targets",
        s(&pp),
        "--reduction",
        "sum",
        "--loss-out",
        s(&l2),
    ]);
    assert!(o.status.success(), "{:?}", errors(&o));
    let p32: Vec<f32> = probs.iter().map(|&v| v as f32).collect();
    let opts = CrossEntropyOptions {
        reduction: Reduction::Sum,
        ..Default::default()
    };
    let lib = ctx
        .cross_entropy_soft(&x2f, &[3, 5], &p32, None, &opts)
        .unwrap();
    assert_eq!(read_f32(&l2).1, lib.loss);

    let logp: Vec<f32> = xent::cpu::log_softmax(&x2f, &[3, 5])
        .unwrap()
        .iter()
        .map(|&v| v as f32)
        .collect();
    let lpp = write(d, "logp.npy", &[3, 5], &logp);
    let t32p = write(d, "t32.npy", &[3], &[1i32, 3, 2]);
    let o = xent(&[
        "loss",
        "--logits",
        s(&lpp),
        "--targets",
        s(&t32p),
        "--input",
        "log-probs",
        "--loss-out",
        s(&l2),
    ]);
    assert!(o.status.success(), "{:?}", errors(&o));
    let opts = CrossEntropyOptions {
        input: InputKind::LogProbs,
        ..Default::default()
    };
    let lib = ctx
        .cross_entropy(&logp, &[3, 5], &[1i32, 3, 2], None, &opts)
        .unwrap();
    assert_eq!(read_f32(&l2).1, lib.loss);
}

#[test]
fn bad_input_exits_2_with_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = write(d, "x.npy", &[3, 5], &[0.5f32; 15]);
    let t = write(d, "t.npy", &[3], &[1i64, 3, 2]);
    let t_bad = write(d, "tbad.npy", &[3], &[1i64, 9, 2]);
    let t_shape = write(d, "tshape.npy", &[4], &[1i64, 3, 2, 0]);
    let t_i16 = write(d, "ti16.npy", &[3], &[1i16, 3, 2]);
    let w4 = write(d, "w4.npy", &[4], &[1.0f32; 4]);
    let soft_bad = write(d, "softbad.npy", &[3, 4], &[0.25f32; 12]);
    let text = d.join("text.npy");
    std::fs::write(&text, "not a numpy file").unwrap();
    let missing = d.join("missing.npy");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--logits", s(&missing), "--targets", s(&t)],
            "cannot read logits",
        ),
        (
            vec!["--logits", s(&text), "--targets", s(&t)],
            "is not a NumPy .npy file",
        ),
        (
            vec!["--logits", s(&x), "--targets", s(&t_i16)],
            "does not take",
        ),
        (
            vec!["--logits", s(&x), "--targets", s(&t_shape)],
            "class targets have shape [4]",
        ),
        (
            vec!["--logits", s(&x), "--targets", s(&soft_bad)],
            "probability targets have shape [3, 4]",
        ),
        (
            vec!["--logits", s(&x), "--targets", s(&t_bad)],
            "target 9 at position [1]",
        ),
        (
            vec!["--logits", s(&x), "--targets", s(&t), "--weights", s(&w4)],
            "weights have length 4 but there are 5 classes",
        ),
        (
            vec![
                "--logits",
                s(&x),
                "--targets",
                s(&t),
                "--label-smoothing",
                "1.5",
            ],
            "label_smoothing = 1.5",
        ),
    ];
    for (args, message) in cases {
        let mut full = vec!["loss"];
        full.extend(&args);
        full.extend(["--backend", "cpu"]);
        let o = xent(&full);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let errs = errors(&o);
        assert_eq!(errs.len(), 1, "{args:?}: {errs:?}");
        assert!(
            errs[0].contains(message),
            "{args:?}: {errs:?} should say {message:?}"
        );
    }
    // The GPU path reports an out-of-range target found by the kernel the same way.
    if common::ctx().is_some() {
        let o = xent(&["loss", "--logits", s(&x), "--targets", s(&t_bad)]);
        assert_eq!(o.status.code(), Some(2));
        assert!(
            errors(&o)[0].contains("target 9 at position [1]"),
            "{:?}",
            errors(&o)
        );
    }
    // Usage errors from clap also exit 2.
    let o = xent(&["loss", "--logits", s(&x)]);
    assert_eq!(o.status.code(), Some(2));
    let o = xent(&[
        "loss",
        "--logits",
        s(&x),
        "--targets",
        s(&t),
        "--reduction",
        "avg",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn bench_json_is_one_document() {
    if common::ctx().is_none() {
        return;
    }
    let o = xent(&[
        "bench",
        "--json",
        "--iters",
        "2",
        "--cases",
        "16x100,2x3x8x8",
    ]);
    assert!(o.status.success(), "{:?}", errors(&o));
    let out = stdout(&o);
    assert!(
        out.trim_start().starts_with("{\"adapter\":") && out.contains("\"name\":\"16x100\""),
        "{out}"
    );
    assert!(
        out.contains("\"copy_ratio\"") && out.contains("\"cpu_ms\""),
        "{out}"
    );
}
