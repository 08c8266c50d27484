//! Bearer-token check for both HTTP servers. The comparison takes the same time wherever
//! the first wrong byte is (`subtle`), so the token cannot be guessed byte by byte from
//! timings.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

fn token_matches(presented: &[u8], expected: &[u8]) -> bool {
    // Lengths are compared in the open: the token's length is not the secret.
    presented.len() == expected.len() && bool::from(presented.ct_eq(expected))
}

/// Whether `request` may pass: no token configured, or the right one presented.
pub fn bearer_ok(request: &Request, expected: Option<&str>) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| token_matches(token.as_bytes(), expected.as_bytes()))
}

/// The answer for a request without the right token: 401 saying how to authenticate.
pub fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"spectrald\"")],
        "missing or wrong bearer token: send Authorization: Bearer <token>\n",
    )
        .into_response()
}

/// The token a server expects, and what it does when a request lacks it (count it).
#[derive(Clone)]
pub struct BearerAuth {
    token: Option<Arc<str>>,
    on_refused: Arc<dyn Fn() + Send + Sync>,
}

impl BearerAuth {
    pub fn new(token: Option<&str>, on_refused: impl Fn() + Send + Sync + 'static) -> Self {
        BearerAuth {
            token: token.map(Into::into),
            on_refused: Arc::new(on_refused),
        }
    }
}

/// Middleware for the guarded routes (`route_layer(from_fn_with_state(auth, require_bearer))`).
pub async fn require_bearer(
    State(auth): State<BearerAuth>,
    request: Request,
    next: Next,
) -> Response {
    if bearer_ok(&request, auth.token.as_deref()) {
        next.run(request).await
    } else {
        (auth.on_refused)();
        unauthorized()
    }
}

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn only_the_exact_token_matches() {
        assert!(token_matches(b"s3cret-token", b"s3cret-token"));
        assert!(!token_matches(b"s3cret-tokeN", b"s3cret-token"));
        assert!(!token_matches(b"s3cret", b"s3cret-token"));
        assert!(!token_matches(b"", b"s3cret-token"));
    }
}
