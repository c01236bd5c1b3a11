//! The response future of [`X402Service`](super::X402Service).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

/// The boxed future of a priced request; its steps are async calls to the facilitator.
pub(crate) type PricedFuture<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

pin_project! {
    /// The response future of [`X402Service`](super::X402Service): the inner future itself on
    /// a free route (no allocation, the inner response untouched), a boxed payment flow on a
    /// priced one.
    pub struct ResponseFuture<Fut, B, E> {
        #[pin]
        kind: Kind<Fut, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<Fut, B, E> {
        Free {
            #[pin]
            future: Fut,
        },
        Priced {
            future: PricedFuture<B, E>,
        },
    }
}

impl<Fut, B, E> ResponseFuture<Fut, B, E> {
    pub(crate) fn free(future: Fut) -> Self {
        Self {
            kind: Kind::Free { future },
        }
    }

    pub(crate) fn priced(future: PricedFuture<B, E>) -> Self {
        Self {
            kind: Kind::Priced { future },
        }
    }
}

impl<Fut, B, E> Future for ResponseFuture<Fut, B, E>
where
    Fut: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Free { future } => future.poll(cx),
            KindProj::Priced { future } => future.as_mut().poll(cx),
        }
    }
}

impl<Fut, B, E> fmt::Debug for ResponseFuture<Fut, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Free { .. } => "free",
            Kind::Priced { .. } => "priced",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}
