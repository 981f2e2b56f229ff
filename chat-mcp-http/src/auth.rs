//! Bearer-token authentication for every route.
//!
//! When a token is configured, a request without `Authorization: Bearer <token>` gets
//! `401` with a `WWW-Authenticate` challenge before it reaches rmcp or any handler, so an
//! unauthenticated client can neither open a session nor read metrics.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::metrics::Metrics;

/// The configured token plus where to count rejections.
#[derive(Clone)]
pub struct AuthState {
    token: Arc<str>,
    metrics: Arc<Metrics>,
}

impl AuthState {
    /// A checker for `token`.
    pub fn new(token: &str, metrics: Arc<Metrics>) -> Self {
        AuthState { token: token.into(), metrics }
    }

    /// Whether the request's `Authorization` header carries the token.
    fn accepts(&self, value: Option<&HeaderValue>) -> bool {
        let Some(value) = value.and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some((scheme, presented)) = value.trim().split_once(' ') else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer") && constant_time_eq(presented.trim(), &self.token)
    }
}

/// axum middleware: pass authorised requests on, answer the rest with 401.
pub async fn require_bearer(State(auth): State<AuthState>, request: Request, next: Next) -> Response {
    if auth.accepts(request.headers().get(header::AUTHORIZATION)) {
        return next.run(request).await;
    }
    auth.metrics.count_rejected("unauthorized");
    tracing::warn!(path = %request.uri().path(), "rejected request without a valid bearer token");
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Body::from("Unauthorized: send the server's token as `Authorization: Bearer <token>`\n"),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"mcp-chat\""));
    response
}

/// Compares secrets in time independent of where they first differ.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_exact_bearer_token() {
        let auth = AuthState::new("s3cret", Arc::new(Metrics::default()));
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert!(auth.accepts(Some(&h("Bearer s3cret"))));
        assert!(auth.accepts(Some(&h("bearer  s3cret "))));
        assert!(!auth.accepts(Some(&h("Bearer s3cre"))));
        assert!(!auth.accepts(Some(&h("Basic s3cret"))));
        assert!(!auth.accepts(Some(&h("s3cret"))));
        assert!(!auth.accepts(None));
    }
}
