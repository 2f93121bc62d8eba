//! The core every op stands on, and which imports no op: the context and
//! adapter selection, what plans know of a device (its class, the loop
//! bound), element types, shapes and layouts, the status buffer, the one
//! pipeline cache and the shared shader pieces, binding and chunking,
//! scratch, transfers, encoding, and the tolerance every GPU result is held
//! to against its CPU twin.

pub(crate) mod adapter;
pub(crate) mod binding;
pub(crate) mod context;
pub(crate) mod coop;
pub(crate) mod copy;
pub(crate) mod device;
pub(crate) mod encode;
pub(crate) mod host_run;
pub(crate) mod pipelines;
pub(crate) mod precision;
pub(crate) mod reduction;
pub(crate) mod reference;
pub(crate) mod requirements;
pub(crate) mod returns;
pub(crate) mod scratch;
pub(crate) mod shaders;
pub(crate) mod shape;
pub(crate) mod status;
pub(crate) mod storage;
pub(crate) mod teams;
pub(crate) mod traffic;
pub(crate) mod transfer;
pub(crate) mod verify;

pub use adapter::{enumerate_adapters, headless_device};
pub use context::Context;
pub use coop::offers_cooperative_products;
pub use device::DeviceClass;
pub use precision::{Element, Precision};
pub use reduction::Reduction;
pub use requirements::{optional_features, required_limits};
pub use returns::Returns;
pub(crate) use scratch::buffer_with;
pub use traffic::{Traffic, Transfer};

/// A context on the environment's adapter for unit tests, or `None`
/// (unless `XENT_REQUIRE_ADAPTER=1`, then a panic) without one.
#[cfg(test)]
pub(crate) fn test_context() -> Option<Context> {
    match Context::from_env() {
        Ok(c) => Some(c),
        Err(e) if std::env::var("XENT_REQUIRE_ADAPTER").is_ok_and(|v| v == "1") => {
            panic!("no adapter: {e}")
        }
        Err(_) => None,
    }
}
