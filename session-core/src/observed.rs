//! [`Observed`]: one manager call under its deadline, inside its span, recording its outcome.
//!
//! A hand-written future rather than nested `async fn`s: each `async fn` layer would keep its
//! argument (the whole call's future) beside the future it awaits, so every layer doubled the
//! size of what a manager call moves around (a refresh's future was 8.5 KiB, copied several
//! times per call).
//!
//! The deadline's timer starts at the call's first wait: a call that completes without waiting
//! (a near-cache hit, the memory store) reads no clock and registers no timer for it, and the
//! work before a first wait is bounded CPU work, not I/O.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tracing::Span;

use crate::error::{DeadlineExceeded, Error};
use crate::telemetry::error_kind;

pin_project_lite::pin_project! {
    /// Polls `call` inside `span` until it is done or `deadline` has passed since its first
    /// wait (then the result is [`Error::Unavailable`] with a [`DeadlineExceeded`] source,
    /// naming `store`), then records `elapsed_us` and `outcome` in the span when the span is
    /// recorded: `outcome` names a success, an error is named by [`error_kind`].
    pub(crate) struct Observed<F, O> {
        #[pin]
        call: F,
        timer: Option<Pin<Box<Sleep>>>,
        span: Span,
        started: Option<Instant>,
        deadline: Duration,
        store: &'static str,
        outcome: Option<O>,
    }
}

impl<F: Future, O> Observed<F, O> {
    /// `call`, bounded by `deadline`.
    pub(crate) fn new(
        call: F,
        span: Span,
        deadline: Duration,
        store: &'static str,
        outcome: O,
    ) -> Self {
        // Only a span that is recorded needs the latency, and so a clock read now.
        let started = (!span.is_disabled()).then(Instant::now);
        Self {
            call,
            timer: None,
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
            Poll::Ready(result) => result,
            Poll::Pending => {
                let deadline = *this.deadline;
                let timer = this.timer.get_or_insert_with(|| {
                    Box::pin(tokio::time::sleep_until(
                        this.started.unwrap_or_else(Instant::now) + deadline,
                    ))
                });
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                Err(Error::unavailable(
                    this.store,
                    DeadlineExceeded { deadline },
                ))
            }
        };
        if let Some(started) = this.started {
            this.span.record(
                "elapsed_us",
                u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
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
