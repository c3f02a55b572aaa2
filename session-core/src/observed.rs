//! [`Observed`]: one manager call under its deadline, inside its span, recording its outcome.
//!
//! A hand-written future rather than nested `async fn`s: each `async fn` layer would keep its
//! argument (the whole call's future) beside the future it awaits, so every layer doubled the
//! size of what a manager call moves around (a refresh's future was 8.5 KiB, copied several
//! times per call).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Timeout};
use tracing::Span;

use crate::error::{DeadlineExceeded, Error};
use crate::telemetry::error_kind;

pin_project_lite::pin_project! {
    /// Polls `call` inside `span` until it is done or `deadline` has passed (then the result is
    /// [`Error::Unavailable`] with a [`DeadlineExceeded`] source, naming `store`), then records
    /// `elapsed_us` and `outcome` in the span: `outcome` names a success, an error is named by
    /// [`error_kind`].
    pub(crate) struct Observed<F, O> {
        #[pin]
        call: Timeout<F>,
        span: Span,
        started: Instant,
        deadline: Duration,
        store: &'static str,
        outcome: Option<O>,
    }
}

impl<F: Future, O> Observed<F, O> {
    /// `call`, bounded by `deadline` from now.
    pub(crate) fn new(
        call: F,
        span: Span,
        deadline: Duration,
        store: &'static str,
        outcome: O,
    ) -> Self {
        // One clock read for both the deadline and the latency.
        let started = Instant::now();
        Self {
            call: tokio::time::timeout_at(started + deadline, call),
            span,
            started,
            deadline,
            store,
            outcome: Some(outcome),
        }
    }
}

impl<T, F, O> Future for Observed<F, O>
where
    F: Future<Output = Result<T, Error>>,
    O: FnOnce(&T) -> &'static str,
{
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = {
            let _entered = this.span.enter();
            this.call.poll(cx)
        };
        let result = match polled {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(result)) => result,
            Poll::Ready(Err(_elapsed)) => Err(Error::unavailable(
                this.store,
                DeadlineExceeded {
                    deadline: *this.deadline,
                },
            )),
        };
        if !this.span.is_disabled() {
            // Only a span that is recorded needs the latency (a clock read) and the outcome.
            this.span.record(
                "elapsed_us",
                u64::try_from(this.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            );
            let label = match &result {
                Ok(value) => this.outcome.take().map_or("ok", |outcome| outcome(value)),
                Err(error) => error_kind(error),
            };
            this.span.record("outcome", label);
        }
        Poll::Ready(result)
    }
}
