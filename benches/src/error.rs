//! The harness's error: any failure of a store, a reference or the setup.

use std::fmt;

/// A failure while setting up or driving a workload. The harness exits non-zero on any.
#[derive(Debug)]
pub struct BenchError {
    context: String,
    detail: String,
}

impl BenchError {
    /// An error with a context (which store or step) and a detail.
    pub fn new(context: impl Into<String>, detail: impl fmt::Display) -> Self {
        Self {
            context: context.into(),
            detail: detail.to_string(),
        }
    }

    /// A closure mapping any displayable error into a [`BenchError`] with this context.
    pub fn with<E: fmt::Display>(context: &'static str) -> impl Fn(E) -> Self {
        move |error| Self::new(context, error)
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.detail)
    }
}

impl std::error::Error for BenchError {}
