//! Every scenario of the suite, as a public async function taking a fresh store.
//!
//! [`conformance_tests!`](crate::conformance_tests) stamps one test per function; call them
//! directly to compose your own.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a conformance scenario fails by panicking, like any test"
)]

mod basics;
mod exact;
mod expiry;
mod failures;
mod input;
mod limits;
mod purge;
mod races;
mod rotation;
mod store_ops;

pub use basics::*;
pub use exact::*;
pub use expiry::*;
pub use failures::*;
pub use input::*;
pub use limits::*;
pub use purge::*;
pub use races::*;
pub use rotation::*;
pub use store_ops::*;
