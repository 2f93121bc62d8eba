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

fn main() -> Result<(), xent::Error> {
    let (rows, classes) = shape_from_args();
    let ctx = xent::Context::from_env()?;
    let probe = Probe::new(&ctx, rows, classes);
    let clock = if probe.queries.is_some() {
        "GPU"
    } else {
        "wall"
    };
    println!("adapter: {}", ctx.adapter_summary());
    println!("{rows} x {classes} f32, {clock} ms, median of {RUNS}");
    probe.copies();
    if rows.is_multiple_of(21) {
        probe.planes();
    }
    if !probe.fused {
        println!("(no SUBGROUP: the fused kernels are skipped)");
        return Ok(());
    }
    probe.fused_rows();
    Ok(())
}

/// `N` and `C` from the command line, 4096 x 4096 without; panics with the
/// usage on anything else.
fn shape_from_args() -> (usize, usize) {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("N and C as integers"))
        .collect();
    match args[..] {
        [] => (4096, 4096),
        [n, c] if c.is_multiple_of(4) && c > 0 && n > 0 => (n, c),
        _ => panic!("usage: access_probe [N C], C a multiple of 4"),
    }
}

/// What every measurement shares: the compiled shader, the source,
/// destination and row-statistics buffers, and timestamp queries where the
/// adapter has them.
struct Probe<'a> {
    ctx: &'a xent::Context,
    module: wgpu::ShaderModule,
    buffers: [wgpu::Buffer; 3],
    queries: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
    rows: usize,
    /// `vec4`s per row.
    quads: u32,
    /// The adapter's smallest subgroup, the fused kernels' workgroup.
    lanes: u32,
    /// Whether the fused kernels were compiled (the adapter has SUBGROUP).
    fused: bool,
}

impl<'a> Probe<'a> {
    /// The `rows x classes` source data, the buffers, and the shader: all of
    /// it where the adapter has SUBGROUP, else the copies only.
    fn new(ctx: &'a xent::Context, rows: usize, classes: usize) -> Self {
        let dev = ctx.device();
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
        let lanes = dev.adapter_info().subgroup_min_size;
        let fused = dev.features().contains(wgpu::Features::SUBGROUP) && (1..=64).contains(&lanes);
        let source = if fused {
            SHADER
        } else {
            &SHADER[..SHADER
                .find("// FUSED KERNELS")
                .expect("marker in access_probe.wgsl")]
        };
        Probe {
            ctx,
            module: dev.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("access_probe.wgsl"),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            }),
            buffers: [src, storage(len as u64 * 4), storage(rows as u64 * 16)],
            queries: timestamp_queries(dev),
            rows,
            quads: (classes / 4) as u32,
            lanes,
            fused,
        }
    }

    /// The copies: a flat grid-stride loop, then one workgroup per row with
    /// one stream or several side by side.
    fn copies(&self) {
        let (rows32, quads, q) = (self.rows as u32, self.quads, f64::from(self.quads));
        for groups in [512u32, 1024, 2048, 4096, 8192, 16384] {
            let ms = self.time("copy_flat", &[], (groups, 1));
            row(
                &format!("copy, grid-stride over {groups} workgroups of 64"),
                ms,
            );
        }
        for wg in [8.0, 32.0, 64.0] {
            let ms = self.time("copy_rows", &[("QUADS", q), ("WG", wg)], (rows32, 1));
            row(&format!("copy, {wg} invocations per row, one stream"), ms);
        }
        for u in [2u32, 4, 8, 16]
            .into_iter()
            .filter(|u| quads.is_multiple_of(*u))
        {
            let c = [("QUADS", q), ("WG", 8.0), ("U", f64::from(u))];
            let ms = self.time("copy_rows", &c, (rows32, 1));
            row(&format!("copy, 8 per row, {u} parts side by side"), ms);
        }
    }

    /// Where the rows are 21-plane images stored per pixel: copies plane by
    /// plane and all loads first, and the fused kernel.
    fn planes(&self) {
        let (quads, q) = (self.quads, f64::from(self.quads));
        let images = (self.rows / 21) as u32;
        let c = [("QUADS", q), ("PLANES", 21.0)];
        let grid = (quads.div_ceil(64), images);
        row(
            "copy, per-pixel layout, 21 planes, plane by plane",
            self.time("copy_planes", &c, grid),
        );
        let c = [("QUADS", q), ("PLANES", 21.0), ("U", 2.0)];
        row(
            "copy, per-pixel layout, 21 planes, all loads first",
            self.time("copy_planes", &c, grid),
        );
        row(
            "fused, per-pixel layout, 21 planes",
            self.time("fused_planes", &c, grid),
        );
    }

    /// The fused row kernels: streams side by side, the row cached in
    /// workgroup memory, and row statistics then a flat gradient.
    fn fused_rows(&self) {
        let (rows32, quads, q) = (self.rows as u32, self.quads, f64::from(self.quads));
        let (lanes, wg) = (self.lanes, f64::from(self.lanes));
        for u in [1u32, 2, 4, 8]
            .into_iter()
            .filter(|u| quads.is_multiple_of(*u))
        {
            let c = [("QUADS", q), ("WG", wg), ("U", f64::from(u))];
            let ms = self.time("fused_rows", &c, (rows32, 1));
            row(
                &format!("fused, {lanes} per row, {u} parts side by side"),
                ms,
            );
        }
        if quads <= 1024 {
            let c = [("QUADS", q), ("WG", wg)];
            let ms = self.time("fused_cached", &c, (rows32, 1));
            row("fused, one stream, row cached in workgroup memory", ms);
        }
        let stats = self.time("stats_only", &[("QUADS", q), ("WG", wg)], (rows32, 1));
        let grad = self.time(
            "grad_segments",
            &[("QUADS", q)],
            (quads.div_ceil(256), rows32),
        );
        row(
            &format!("row statistics ({stats:.2}), then flat gradient ({grad:.2})"),
            stats + grad,
        );
    }

    /// Median milliseconds of `RUNS` dispatches of `entry` over `grid` after a
    /// warm-up: GPU time where the adapter has timestamps, else wall time.
    fn time(&self, entry: &str, constants: &[(&str, f64)], grid: (u32, u32)) -> f64 {
        let (pipeline, group) = self.pipeline(entry, constants);
        let mut times = Vec::new();
        for run in 0..=RUNS {
            let ms = self.dispatch(&pipeline, &group, grid);
            if run > 0 {
                times.push(ms);
            }
        }
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    }

    /// `entry`'s pipeline with `constants` overridden, and its bind group.
    fn pipeline(
        &self,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> (wgpu::ComputePipeline, wgpu::BindGroup) {
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
        (pipeline, group)
    }

    /// One dispatch, waited for; its milliseconds, by the GPU's timestamps
    /// where there are queries, else by the wall clock.
    fn dispatch(
        &self,
        pipeline: &wgpu::ComputePipeline,
        group: &wgpu::BindGroup,
        grid: (u32, u32),
    ) -> f64 {
        let dev = self.ctx.device();
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
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, group, &[]);
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
        match &self.queries {
            Some((_, _, read)) => self.gpu_ms(read),
            None => wall,
        }
    }

    /// The milliseconds between the two timestamps copied into `read`.
    fn gpu_ms(&self, read: &wgpu::Buffer) -> f64 {
        let dev = self.ctx.device();
        read.slice(..).map_async(wgpu::MapMode::Read, |_| {});
        dev.poll(wgpu::PollType::wait_indefinitely())
            .expect("reading timestamps");
        let ticks: Vec<u64> =
            bytemuck::cast_slice(&read.get_mapped_range(..).expect("mapped")).to_vec();
        read.unmap();
        let period = f64::from(self.ctx.queue().get_timestamp_period());
        ticks[1].saturating_sub(ticks[0]) as f64 * period / 1e6
    }
}

/// A query set of two timestamps, a buffer to resolve it into and one to
/// read it from; `None` where the adapter has no TIMESTAMP_QUERY.
fn timestamp_queries(dev: &wgpu::Device) -> Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)> {
    dev.features()
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
        })
}

/// One line of the table: what was timed, and its milliseconds.
fn row(what: &str, ms: f64) {
    println!("{what:<56} {ms:8.2}");
}
