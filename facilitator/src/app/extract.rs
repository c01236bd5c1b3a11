//! The extractors every priced route shares: the API key check and the bounded body.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use bitcoin::hashes::{Hash as _, sha256};
use subtle::ConstantTimeEq as _;

use super::{ApiError, Service};

/// A request that carried one of the configured API keys (or any request when none is set).
pub(crate) struct Authorized;

impl FromRequestParts<Arc<Service>> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<Service>,
    ) -> Result<Self, ApiError> {
        if service.api_keys.is_empty() {
            return Ok(Self);
        }
        // One `Authorization` header, scheme `Bearer` (case-insensitive, RFC 9110).
        let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
        let given = match (values.next(), values.next()) {
            (Some(value), None) => value
                .to_str()
                .ok()
                .and_then(|value| value.trim().split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
                .unwrap_or_default(),
            _ => "",
        };
        // Every key is compared, in constant time and as digests, so timing tells nothing
        // about any of them.
        let given_digest = sha256::Hash::hash(given.as_bytes()).to_byte_array();
        let matched = service.api_keys.iter().fold(false, |matched, key| {
            matched | bool::from(key.ct_eq(&given_digest))
        });
        if matched && !given.is_empty() {
            Ok(Self)
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong API key: send `Authorization: Bearer <key>`",
            ))
        }
    }
}

/// A request body read whole, up to the configured limit (413 beyond).
pub(crate) struct Body(pub(crate) Bytes);

impl FromRequest<Arc<Service>> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, service: &Arc<Service>) -> Result<Self, ApiError> {
        Bytes::from_request(request, service)
            .await
            .map(Body)
            .map_err(|rejection| {
                let status = rejection.status();
                let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    format!("request body over {} bytes", service.max_body_bytes)
                } else {
                    format!("cannot read the request body: {rejection}")
                };
                ApiError::new(status, message)
            })
    }
}
