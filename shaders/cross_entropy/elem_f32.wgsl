// Prelude of the cross-entropy module (shaders/cross_entropy/): the input and gradient stored as f32.
alias ELEM = f32;
alias ELEM4 = vec4<f32>;
