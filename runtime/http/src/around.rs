//! Middleware as a tower layer: an [`Around`] value runs its async code
//! around each request and calls the inner service itself. This is what
//! axum's `from_fn` does, without boxing the inner service again for every
//! request (`from_fn` wraps it in a fresh `Next`).

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::future::Future;
use std::task::{Context, Poll};

/// The service an [`Around`] calls: the rest of the stack.
pub(crate) trait Inner:
    tower::Service<Request, Error = Infallible, Response: IntoResponse, Future: Send> + Send + 'static
{
}

impl<S> Inner for S
where
    S: tower::Service<Request, Error = Infallible> + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send,
{
}

/// Async code around a request, given the inner service to call.
pub(crate) trait Around: Clone + Send + Sync + 'static {
    fn around<S: Inner>(self, req: Request, inner: S) -> impl Future<Output = Response> + Send;
}

/// The layer of an [`Around`].
#[derive(Clone)]
pub(crate) struct AroundLayer<A>(pub A);

impl<A: Clone, S> tower::Layer<S> for AroundLayer<A> {
    type Service = AroundService<A, S>;

    fn layer(&self, inner: S) -> Self::Service {
        AroundService {
            around: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub(crate) struct AroundService<A, S> {
    around: A,
    inner: S,
}

impl<A: Around, S: Inner + Clone> tower::Service<Request> for AroundService<A, S> {
    type Response = Response;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The ready service goes with the request; a clone waits for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let around = self.around.clone();
        Box::pin(async move { Ok(around.around(req, inner).await) })
    }
}

/// Call `inner` with `req`, as a response.
pub(crate) async fn call<S: Inner>(inner: S, req: Request) -> Response {
    use tower::ServiceExt;
    match inner.oneshot(req).await {
        Ok(r) => r.into_response(),
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    /// Adds a header before and after the inner service.
    #[derive(Clone)]
    struct Tag(&'static str);

    impl Around for Tag {
        async fn around<S: Inner>(self, mut req: Request, inner: S) -> Response {
            req.headers_mut().insert("x-in", self.0.parse().unwrap());
            let mut r = call(inner, req).await;
            r.headers_mut().insert("x-out", self.0.parse().unwrap());
            r
        }
    }

    #[tokio::test]
    async fn runs_around_each_request() {
        let app = tower::ServiceBuilder::new()
            .layer(AroundLayer(Tag("t")))
            .service(Router::new().route(
            "/",
            get(|req: Request| async move { req.headers()["x-in"].to_str().unwrap().to_owned() }),
        ));
        for _ in 0..2 {
            let r = app
                .clone()
                .oneshot(Request::get("/").body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(r.headers()["x-out"], "t");
            let body = axum::body::to_bytes(r.into_body(), 100).await.unwrap();
            assert_eq!(&body[..], b"t");
        }
    }
}
