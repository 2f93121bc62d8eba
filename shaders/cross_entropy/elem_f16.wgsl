// Prelude of the cross-entropy module (shaders/cross_entropy/): the input and gradient stored as f16
// (devices with SHADER_F16); every sum stays in f32.
enable f16;

alias ELEM = f16;
alias ELEM4 = vec4<f16>;
