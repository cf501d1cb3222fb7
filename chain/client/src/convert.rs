//! Building the chain's generated types. (The chain-facing metrics types need no
//! conversion: the chain uses the protocol's `MetricSummary`, `Outcome` and `Sla`.)

use crate::{Endpoint, datdot};

/// Wrap bytes in the generated `BoundedVec` type (the chain checks the bound).
pub fn bounded(
    bytes: Vec<u8>,
) -> datdot::runtime_types::bounded_collections::bounded_vec::BoundedVec<u8> {
    datdot::runtime_types::bounded_collections::bounded_vec::BoundedVec(bytes)
}

/// An endpoint with a `host:port` address.
pub fn endpoint(addr: &str, noise_key: [u8; 32], signing_key: [u8; 32]) -> Endpoint {
    Endpoint {
        addr: bounded(addr.as_bytes().to_vec()),
        noise_key,
        signing_key,
    }
}
