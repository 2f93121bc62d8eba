//! How an adapter's bandwidth depends on the order a kernel walks memory:
//! copies and a minimal fused softmax cross-entropy row kernel
//! (`access_probe.wgsl`), timed with GPU timestamps. The figures behind the
//! "two streams" design of the long-row kernels (BENCHMARKS.md).
//!
//! ```sh
//! cargo run --release --example access_probe              # 4096 x 4096
//! cargo run --release --example access_probe -- 16 128256 # N C (C % 4 == 0)
//! ```
//!
//! The fused kernels reduce with subgroup shuffles over a workgroup of the
//! adapter's smallest subgroup, so they need SUBGROUP; the copies run anywhere.

use std::time::Instant;

use wgpu::util::DeviceExt;

const SHADER: &str = include_str!("access_probe.wgsl");
const RUNS: usize = 7;

struct Probe<'a> {
    ctx: &'a xent::Context,
    module: wgpu::ShaderModule,
    buffers: [wgpu::Buffer; 3],
    queries: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
}

impl Probe<'_> {
    /// Median milliseconds of `RUNS` dispatches of `entry` over `grid` after a
    /// warm-up: GPU time where the adapter has timestamps, else wall time.
    fn time(&self, entry: &str, constants: &[(&str, f64)], grid: (u32, u32)) -> f64 {
        let dev = self.ctx.device();
        let pipeline = dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module: &self.module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                ..Default::default()
            },
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        // Bind what the entry point uses: stats only for the two-dispatch pair.
        let used = if entry.starts_with("stats") || entry.starts_with("grad") {
            3
        } else {
            2
        };
        let entries: Vec<_> = self.buffers[..used]
            .iter()
            .enumerate()
            .filter(|(i, _)| !(entry.starts_with("stats") && *i == 1))
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let group = dev.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &layout,
            entries: &entries,
        });
        let mut times = Vec::new();
        for run in 0..=RUNS {
            let start = Instant::now();
            let mut encoder = dev.create_command_encoder(&Default::default());
            {
                let timestamp_writes =
                    self.queries
                        .as_ref()
                        .map(|(set, _, _)| wgpu::ComputePassTimestampWrites {
                            query_set: set,
                            beginning_of_pass_write_index: Some(0),
                            end_of_pass_write_index: Some(1),
                        });
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes,
                });
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &group, &[]);
                pass.dispatch_workgroups(grid.0, grid.1, 1);
            }
            if let Some((set, resolve, read)) = &self.queries {
                encoder.resolve_query_set(set, 0..2, resolve, 0);
                encoder.copy_buffer_to_buffer(resolve, 0, read, 0, 16);
            }
            self.ctx.queue().submit([encoder.finish()]);
            dev.poll(wgpu::PollType::wait_indefinitely())
                .expect("waiting for the device");
            let wall = start.elapsed().as_secs_f64() * 1e3;
            let ms = match &self.queries {
                Some((_, _, read)) => {
                    read.slice(..).map_async(wgpu::MapMode::Read, |_| {});
                    dev.poll(wgpu::PollType::wait_indefinitely())
                        .expect("reading timestamps");
                    let ticks: Vec<u64> =
                        bytemuck::cast_slice(&read.get_mapped_range(..).expect("mapped")).to_vec();
                    read.unmap();
                    let period = f64::from(self.ctx.queue().get_timestamp_period());
                    ticks[1].saturating_sub(ticks[0]) as f64 * period / 1e6
                }
                None => wall,
            };
            if run > 0 {
                times.push(ms);
            }
        }
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    }
}

fn row(what: &str, ms: f64) {
    println!("{what:<56} {ms:8.2}");
}

fn main() -> Result<(), xent::Error> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("N and C as integers"))
        .collect();
    let (rows, classes) = match args[..] {
        [] => (4096, 4096),
        [n, c] if c.is_multiple_of(4) && c > 0 && n > 0 => (n, c),
        _ => panic!("usage: access_probe [N C], C a multiple of 4"),
    };
    let ctx = xent::Context::from_env()?;
    let dev = ctx.device();
    let quads = (classes / 4) as u32;
    let len = rows * classes;
    let data: Vec<f32> = (0..len)
        .map(|i| ((i as u64 * 2_654_435_761) % 1000) as f32 / 50.0 - 10.0)
        .collect();
    let storage = |size: u64| {
        dev.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    };
    let src = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("probe src"),
        contents: bytemuck::cast_slice(&data),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let queries = dev
        .features()
        .contains(wgpu::Features::TIMESTAMP_QUERY)
        .then(|| {
            let buffer = |usage| {
                dev.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size: 16,
                    usage,
                    mapped_at_creation: false,
                })
            };
            (
                dev.create_query_set(&wgpu::QuerySetDescriptor {
                    label: None,
                    ty: wgpu::QueryType::Timestamp,
                    count: 2,
                }),
                buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC),
                buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
            )
        });
    let clock = if queries.is_some() { "GPU" } else { "wall" };
    let lanes = dev.adapter_info().subgroup_min_size;
    let fused = dev.features().contains(wgpu::Features::SUBGROUP) && (1..=64).contains(&lanes);
    let source = if fused {
        SHADER
    } else {
        &SHADER[..SHADER
            .find("// FUSED KERNELS")
            .expect("marker in access_probe.wgsl")]
    };
    let probe = Probe {
        ctx: &ctx,
        module: dev.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("access_probe.wgsl"),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        }),
        buffers: [src, storage(len as u64 * 4), storage(rows as u64 * 16)],
        queries,
    };
    let rows32 = rows as u32;
    let q = f64::from(quads);
    println!("adapter: {}", ctx.adapter_summary());
    println!("{rows} x {classes} f32, {clock} ms, median of {RUNS}");
    for groups in [512u32, 1024, 2048, 4096, 8192, 16384] {
        let ms = probe.time("copy_flat", &[], (groups, 1));
        row(
            &format!("copy, grid-stride over {groups} workgroups of 64"),
            ms,
        );
    }
    for wg in [8.0, 32.0, 64.0] {
        let ms = probe.time("copy_rows", &[("QUADS", q), ("WG", wg)], (rows32, 1));
        row(&format!("copy, {wg} invocations per row, one stream"), ms);
    }
    for u in [2u32, 4, 8, 16]
        .into_iter()
        .filter(|u| quads.is_multiple_of(*u))
    {
        let c = [("QUADS", q), ("WG", 8.0), ("U", f64::from(u))];
        let ms = probe.time("copy_rows", &c, (rows32, 1));
        row(&format!("copy, 8 per row, {u} parts side by side"), ms);
    }
    if rows.is_multiple_of(21) {
        let images = (rows / 21) as u32;
        let c = [("QUADS", q), ("PLANES", 21.0)];
        let grid = (quads.div_ceil(64), images);
        row(
            "copy, per-pixel layout, 21 planes, plane by plane",
            probe.time("copy_planes", &c, grid),
        );
        let c = [("QUADS", q), ("PLANES", 21.0), ("U", 2.0)];
        row(
            "copy, per-pixel layout, 21 planes, all loads first",
            probe.time("copy_planes", &c, grid),
        );
        row(
            "fused, per-pixel layout, 21 planes",
            probe.time("fused_planes", &c, grid),
        );
    }
    if !fused {
        println!("(no SUBGROUP: the fused kernels are skipped)");
        return Ok(());
    }
    let wg = f64::from(lanes);
    for u in [1u32, 2, 4, 8]
        .into_iter()
        .filter(|u| quads.is_multiple_of(*u))
    {
        let c = [("QUADS", q), ("WG", wg), ("U", f64::from(u))];
        let ms = probe.time("fused_rows", &c, (rows32, 1));
        row(
            &format!("fused, {lanes} per row, {u} parts side by side"),
            ms,
        );
    }
    if quads <= 1024 {
        let c = [("QUADS", q), ("WG", wg)];
        let ms = probe.time("fused_cached", &c, (rows32, 1));
        row("fused, one stream, row cached in workgroup memory", ms);
    }
    let stats = probe.time("stats_only", &[("QUADS", q), ("WG", wg)], (rows32, 1));
    let grad = probe.time(
        "grad_segments",
        &[("QUADS", q)],
        (quads.div_ceil(256), rows32),
    );
    row(
        &format!("row statistics ({stats:.2}), then flat gradient ({grad:.2})"),
        stats + grad,
    );
    Ok(())
}
