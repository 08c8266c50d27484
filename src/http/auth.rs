//! Bearer-token check for the API. The comparison takes the same time wherever the first
//! wrong byte is (`subtle`), so the token cannot be guessed byte by byte from timings.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AppState;

fn token_matches(presented: &[u8], expected: &[u8]) -> bool {
    // Lengths are compared in the open: the token's length is not the secret.
    presented.len() == expected.len() && bool::from(presented.ct_eq(expected))
}

/// Whether `request` may pass: no token configured, or the right one presented.
pub(crate) fn bearer_ok(request: &Request, expected: Option<&str>) -> bool {
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
pub(crate) fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"spectrald\"")],
        "missing or wrong bearer token: send Authorization: Bearer <token>\n",
    )
        .into_response()
}

pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if bearer_ok(&request, state.token.as_deref()) {
        next.run(request).await
    } else {
        state.events.http_unauthorized();
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
