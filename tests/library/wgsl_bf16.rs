//! `xent::wgsl::BF16` in a client's own shader: rounding f32 to bf16 and
//! widening back give `half::bf16`'s bits, for every class of bit pattern
//! (zeros, subnormals, ties to even in both directions, the largest finite
//! values rounding to ±∞, ±∞, quiet and signalling NaNs) and random ones.

use wgpu::util::DeviceExt;

/// The client's shader: each invocation takes four f32 bit patterns, packs
/// them with `bf16_pack4` and, one by one, with `bf16_bits`, and widens the
/// packed words back with `bf16_unpack4` and `bf16_unpack`.
const CLIENT: &str = r#"
@group(0) @binding(0) var<storage, read> x: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> packed4: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read_write> packed1: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read_write> widened4: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read_write> widened1: array<vec4<u32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= arrayLength(&x)) {
        return;
    }
    let v = bitcast<vec4<f32>>(x[i]);
    let w = bf16_pack4(v);
    packed4[i] = w;
    packed1[i] = vec2<u32>(
        bf16_bits(v.x) | (bf16_bits(v.y) << 16u),
        bf16_bits(v.z) | (bf16_bits(v.w) << 16u),
    );
    widened4[i] = bitcast<vec4<u32>>(bf16_unpack4(w));
    widened1[i] = vec4<u32>(
        bitcast<u32>(bf16_unpack(w.x, 0u)),
        bitcast<u32>(bf16_unpack(w.x, 1u)),
        bitcast<u32>(bf16_unpack(w.y, 0u)),
        bitcast<u32>(bf16_unpack(w.y, 1u)),
    );
}
"#;

/// Bit patterns of every class, then random ones: a multiple of 4.
fn patterns() -> Vec<u32> {
    let mut bits = vec![
        0x0000_0000,
        0x8000_0000, // ±0
        0x0000_0001,
        0x807f_ffff,
        0x0000_8000,
        0x0001_8000, // subnormals, ties
        0x3f80_8000,
        0x3f81_8000,
        0x3f80_8001,
        0x3f80_7fff, // ties to even, off ties
        0x7f7f_ffff,
        0xff7f_ffff,
        0x7f7f_7fff, // largest finite: to ±∞, below
        0x7f80_0000,
        0xff80_0000, // ±∞
        0x7fc0_0000,
        0xffc0_0001,
        0x7f80_0001,
        0x7fbf_ffff,
        0xff80_ffff, // NaNs
        0x3f80_0000,
        0xbf80_0000, // ±1
    ];
    let mut rng = crate::common::Rng(99);
    while bits.len() % 4 != 0 || bits.len() < 4096 {
        bits.push(rng.next_u64() as u32);
    }
    bits
}

/// Runs the client shader (xent's BF16 pieces and `CLIENT`) over `bits`:
/// its four outputs, bf16_pack4's, bf16_bits', bf16_unpack4's and
/// bf16_unpack's.
fn run_client(ctx: &xent::Context, bits: &[u32]) -> [wgpu::Buffer; 4] {
    let dev = ctx.device();
    let module = dev.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("client bf16"),
        source: wgpu::ShaderSource::Wgsl(format!("{}\n{CLIENT}", xent::wgsl::BF16).into()),
    });
    let pipeline = dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("client bf16"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let input = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("x"),
        contents: bytemuck::cast_slice(bits),
        usage,
    });
    let out = |words: usize| {
        dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("out"),
            size: 4 * words as u64,
            usage,
            mapped_at_creation: false,
        })
    };
    let n = bits.len();
    let outs = [out(n / 2), out(n / 2), out(n), out(n)];
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: input.as_entire_binding(),
    }];
    entries.extend(outs.iter().enumerate().map(|(i, b)| wgpu::BindGroupEntry {
        binding: i as u32 + 1,
        resource: b.as_entire_binding(),
    }));
    let group = dev.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    });
    let mut encoder = dev.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups((n as u32 / 4).div_ceil(64), 1, 1);
    }
    ctx.queue().submit([encoder.finish()]);
    outs
}

#[test]
fn bf16_pieces_round_trip_as_half_does() {
    let Some(ctx) = crate::common::ctx() else {
        return;
    };
    let bits = patterns();
    let outs = run_client(ctx, &bits);
    let words = |b: &wgpu::Buffer| -> Vec<u32> {
        crate::common::read_f32(ctx, b)
            .iter()
            .map(|v| v.to_bits())
            .collect()
    };
    let halves = |w: Vec<u32>| -> Vec<u16> {
        w.iter()
            .flat_map(|&w| [w as u16, (w >> 16) as u16])
            .collect()
    };
    let want: Vec<u16> = bits
        .iter()
        .map(|&b| half::bf16::from_f32(f32::from_bits(b)).to_bits())
        .collect();
    let widened: Vec<u32> = want
        .iter()
        .map(|&h| half::bf16::from_bits(h).to_f32().to_bits())
        .collect();
    for (what, got) in [
        ("bf16_pack4", halves(words(&outs[0]))),
        ("bf16_bits", halves(words(&outs[1]))),
    ] {
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{what} of {:#010x}", bits[i]);
        }
    }
    for (what, got) in [
        ("bf16_unpack4", words(&outs[2])),
        ("bf16_unpack", words(&outs[3])),
    ] {
        for (i, (g, w)) in got.iter().zip(&widened).enumerate() {
            assert_eq!(g, w, "{what} of {:#010x}", bits[i]);
        }
    }
}
