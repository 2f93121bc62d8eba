//! The worked example of the notes on the default adapter: loss 3.7925 and the gradient.
//!
//! Run with `cargo run --release --example quickstart`.

fn main() -> Result<(), xent::Error> {
    let ctx = xent::Context::from_env()?.with_verify(xent::Tolerance::default());
    println!("adapter: {}", ctx.adapter_summary());
    let logits = [
        10.0f32, 2.0, 1.0, -2.0, -3.0, //
        -1.0, -6.0, 0.0, -3.0, -5.0, //
        -5.0, 4.0, 8.0, 2.0, 1.0,
    ];
    let targets = [1i64, 3, 2];
    let out = ctx.cross_entropy(
        &logits,
        &[3, 5],
        &targets,
        None,
        &Default::default(),
        &Default::default(),
    )?;
    println!("loss (mean): {:.4}", out.scalar().unwrap_or(f32::NAN));
    println!("gradient d loss / d logits:");
    if let Some(grad) = &out.grad {
        for row in grad.chunks(5) {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:+.4}")).collect();
            println!("  [{}]", cells.join(", "));
        }
    }
    let log_probs = ctx.softmax(
        &logits,
        &[3, 5],
        &xent::SoftmaxOptions {
            kind: xent::SoftmaxKind::LogSoftmax,
        },
    )?;
    println!("log-softmax row 0: {:.4?}", &log_probs[..5]);
    Ok(())
}
