//! [`HttpFacilitator`]: the facilitator API of the [wire contract](crate::protocol) over HTTP,
//! on one shared `reqwest::Client` so connections are reused.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Facilitator, FacilitatorCall, FacilitatorError};
use crate::types::{
    PaymentRequirements, RequirementsRequest, SettleRequest, SettleResponse, SupportedResponse,
    VerifyRequest, VerifyResponse,
};

/// Default time to establish a connection: 2 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time for a whole call, body included: 10 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit on a reply body: 64 KiB. A larger one is an invalid reply.
pub const DEFAULT_MAX_REPLY_BYTES: usize = 64 * 1024;

/// How much of an error body is kept in [`FacilitatorError::Status`].
const BODY_EXCERPT_CHARS: usize = 256;

/// A facilitator reached over HTTP.
///
/// Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct HttpFacilitator {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    base_url: String,
    urls: [reqwest::Url; 5],
    /// Names of the extra headers, for `Debug`.
    header_names: Vec<HeaderName>,
    /// Extra headers to add per call: empty when the client was built here with them as its
    /// default headers.
    per_call_headers: HeaderMap,
    /// `None` when the client was supplied by the user, with a connect timeout unknown here.
    connect_timeout: Option<Duration>,
    timeout: Duration,
    max_reply_bytes: usize,
}

impl fmt::Debug for HttpFacilitator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Extra headers may hold credentials: show their names only.
        f.debug_struct("HttpFacilitator")
            .field("base_url", &self.inner.base_url)
            .field("headers", &self.inner.header_names)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// A facilitator configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum FacilitatorConfigError {
    /// The base URL does not parse, or is not http(s).
    #[error("facilitator URL {url:?} is invalid: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An extra header has an invalid name or value.
    #[error("invalid facilitator header: {0}")]
    InvalidHeader(String),
    /// A timeout or size limit of zero, which would fail every call.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// reqwest could not build its client.
    #[error("could not build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// Builds an [`HttpFacilitator`]; see [`HttpFacilitator::builder`].
#[derive(Debug)]
#[must_use]
pub struct HttpFacilitatorBuilder {
    base_url: String,
    headers: HeaderMap,
    header_error: Option<String>,
    connect_timeout: Duration,
    timeout: Duration,
    max_reply_bytes: usize,
    client: Option<reqwest::Client>,
}

impl HttpFacilitatorBuilder {
    /// Sends this header with every call (e.g. an API key); a second value for the same name
    /// replaces the first.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        match (
            HeaderName::try_from(&name),
            HeaderValue::try_from(value.into()),
        ) {
            (Ok(name), Ok(mut value)) => {
                value.set_sensitive(true);
                self.headers.insert(name, value);
            }
            _ => {
                self.header_error
                    .get_or_insert_with(|| format!("header {name:?} has an invalid name or value"));
            }
        }
        self
    }

    /// Sends `Authorization: Bearer <token>` with every call.
    pub fn bearer_token(self, token: impl Into<String>) -> Self {
        self.header(AUTHORIZATION.as_str(), format!("Bearer {}", token.into()))
    }

    /// Time to establish a connection (default 2 s). Ignored with [`Self::client`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time for a whole call, body included (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Largest reply body accepted (default 64 KiB).
    pub fn max_reply_bytes(mut self, max: usize) -> Self {
        self.max_reply_bytes = max;
        self
    }

    /// Uses this client (and its connection pool) instead of building one.
    ///
    /// Its own settings then apply: give it `redirect::Policy::none()`, since a redirect would
    /// carry the extra headers and the client's authorization to wherever it points.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Checks the configuration and builds the facilitator.
    pub fn build(self) -> Result<HttpFacilitator, FacilitatorConfigError> {
        if let Some(reason) = self.header_error {
            return Err(FacilitatorConfigError::InvalidHeader(reason));
        }
        if self.timeout.is_zero() {
            return Err(FacilitatorConfigError::Zero("the call timeout"));
        }
        if self.connect_timeout.is_zero() {
            return Err(FacilitatorConfigError::Zero("the connect timeout"));
        }
        if self.max_reply_bytes == 0 {
            return Err(FacilitatorConfigError::Zero("the reply size limit"));
        }
        let base_url = self.base_url.trim_end_matches('/').to_owned();
        let urls = call_urls(&base_url)?;
        let header_names = self.headers.keys().cloned().collect();
        let (client, per_call_headers, connect_timeout) = match self.client {
            Some(client) => (client, self.headers, None),
            None => {
                let client = reqwest::Client::builder()
                    .default_headers(self.headers)
                    .connect_timeout(self.connect_timeout)
                    .timeout(self.timeout)
                    // A redirect would carry the extra headers and the client's authorization
                    // to a host the operator never configured.
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(FacilitatorConfigError::Client)?;
                (client, HeaderMap::new(), Some(self.connect_timeout))
            }
        };
        Ok(HttpFacilitator {
            inner: Arc::new(Inner {
                client,
                base_url,
                urls,
                header_names,
                per_call_headers,
                connect_timeout,
                timeout: self.timeout,
                max_reply_bytes: self.max_reply_bytes,
            }),
        })
    }
}

/// Checks a base URL and derives the URL of each call from it.
fn call_urls(base_url: &str) -> Result<[reqwest::Url; 5], FacilitatorConfigError> {
    // Never echo the URL whole: it may hold a password.
    let invalid_url = |reason: &str| FacilitatorConfigError::InvalidUrl {
        url: base_url
            .split('@')
            .next_back()
            .unwrap_or_default()
            .to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = reqwest::Url::parse(base_url).map_err(|err| invalid_url(&err.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid_url("the scheme must be http or https"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid_url(
            "credentials in the URL are not allowed: use bearer_token or header",
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid_url("a query or fragment is not allowed"));
    }
    let join = |call: FacilitatorCall| {
        reqwest::Url::parse(&format!("{base_url}{}", call.path()))
            .map_err(|err| invalid_url(&err.to_string()))
    };
    let [requirements, verify, settle, supported, invoice] = FacilitatorCall::ALL;
    Ok([
        join(requirements)?,
        join(verify)?,
        join(settle)?,
        join(supported)?,
        join(invoice)?,
    ])
}

impl HttpFacilitator {
    /// A facilitator at `base_url` (a `&str` or a `String`, e.g. `mock.url()`) with default
    /// settings.
    pub fn new(base_url: impl Into<String>) -> Result<Self, FacilitatorConfigError> {
        Self::builder(base_url).build()
    }

    /// Starts configuring a facilitator at `base_url` (e.g. `https://facilitator.example`).
    pub fn builder(base_url: impl Into<String>) -> HttpFacilitatorBuilder {
        HttpFacilitatorBuilder {
            base_url: base_url.into(),
            headers: HeaderMap::new(),
            header_error: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
            client: None,
        }
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    fn url(&self, call: FacilitatorCall) -> reqwest::Url {
        self.inner.urls[call.index()].clone()
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        call: FacilitatorCall,
        body: Option<&B>,
    ) -> Result<T, FacilitatorError> {
        let request = match body {
            Some(body) => self.inner.client.post(self.url(call)).json(body),
            None => self.inner.client.get(self.url(call)),
        };
        self.logged(call, request).await
    }

    /// Sends `request` for `call` and reads its answer, logging how it went.
    async fn logged<T: DeserializeOwned>(
        &self,
        call: FacilitatorCall,
        request: reqwest::RequestBuilder,
    ) -> Result<T, FacilitatorError> {
        let started = Instant::now();
        let result = self.exchange(call, request).await;
        match &result {
            Ok(_) => tracing::debug!(%call, elapsed = ?started.elapsed(), "facilitator answered"),
            Err(err) => {
                tracing::warn!(%call, elapsed = ?started.elapsed(), error = %err, "facilitator failed")
            }
        }
        result
    }

    async fn exchange<T: DeserializeOwned>(
        &self,
        call: FacilitatorCall,
        request: reqwest::RequestBuilder,
    ) -> Result<T, FacilitatorError> {
        let transport = |err: reqwest::Error| self.transport_error(call, err);
        let mut request = request.timeout(self.inner.timeout);
        if !self.inner.per_call_headers.is_empty() {
            request = request.headers(self.inner.per_call_headers.clone());
        }
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();

        let max = self.inner.max_reply_bytes;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > max {
                if !status.is_success() {
                    // An excerpt is all an error body is good for.
                    body.extend_from_slice(&chunk[..max - body.len()]);
                    break;
                }
                return Err(FacilitatorError::InvalidReply {
                    call,
                    reason: format!("reply is larger than {max} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }

        decode_reply(call, status, &body)
    }

    fn transport_error(&self, call: FacilitatorCall, err: reqwest::Error) -> FacilitatorError {
        if err.is_timeout() {
            let after = match self.inner.connect_timeout {
                Some(connect_timeout) if err.is_connect() => connect_timeout,
                _ => self.inner.timeout,
            };
            FacilitatorError::Timeout { call, after }
        } else {
            FacilitatorError::Unreachable {
                call,
                source: Box::new(err),
            }
        }
    }
}

/// Reads a facilitator's reply: a 2xx status with a JSON body of the call's answer type, or
/// the error saying what it was instead.
pub(crate) fn decode_reply<T: DeserializeOwned>(
    call: FacilitatorCall,
    status: StatusCode,
    body: &[u8],
) -> Result<T, FacilitatorError> {
    if !status.is_success() {
        return Err(FacilitatorError::Status {
            call,
            status,
            body_excerpt: excerpt(body),
        });
    }
    serde_json::from_slice(body).map_err(|err| FacilitatorError::InvalidReply {
        call,
        // serde quotes what it could not read (an unknown variant, a string of the wrong
        // type): that may be a secret too.
        reason: format!(
            "{} in reply {:?}",
            redact_hex_runs(&err.to_string()),
            excerpt(body)
        ),
    })
}

/// The first characters of a body, lossily decoded, for messages and logs, with every run of
/// 64 or more hex digits replaced by `[redacted]`: a facilitator that echoes a request in its
/// error must not put a preimage or an authorization's signature into the server's logs.
fn excerpt(body: &[u8]) -> String {
    // Redacted before it is cut, so that no cut leaves part of a secret visible.
    let text = redact_hex_runs(&String::from_utf8_lossy(body));
    match text.char_indices().nth(BODY_EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// `text` with each run of at least 64 ASCII hex digits replaced by `[redacted]`.
fn redact_hex_runs(text: &str) -> String {
    const SECRET_DIGITS: usize = 64;
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= SECRET_DIGITS {
            out.push_str("[redacted]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

impl Facilitator for HttpFacilitator {
    async fn requirements(
        &self,
        request: &RequirementsRequest,
    ) -> Result<PaymentRequirements, FacilitatorError> {
        self.call(FacilitatorCall::Requirements, Some(request))
            .await
    }

    async fn verify(&self, request: &VerifyRequest) -> Result<VerifyResponse, FacilitatorError> {
        self.call(FacilitatorCall::Verify, Some(request)).await
    }

    async fn settle(&self, request: &SettleRequest) -> Result<SettleResponse, FacilitatorError> {
        self.call(FacilitatorCall::Settle, Some(request)).await
    }

    async fn supported(&self) -> Result<SupportedResponse, FacilitatorError> {
        self.call::<(), _>(FacilitatorCall::Supported, None).await
    }

    async fn settle_lnbtc(
        &self,
        request: &crate::lnbtc::types::SettleRequest,
    ) -> Result<crate::lnbtc::types::SettleResponse, FacilitatorError> {
        self.call(FacilitatorCall::Settle, Some(request)).await
    }

    async fn invoice_status(
        &self,
        payment_hash: &[u8; 32],
    ) -> Result<crate::receiver::InvoiceStatus, FacilitatorError> {
        let call = FacilitatorCall::Invoice;
        let mut url = self.url(call);
        // `path_segments_mut` fails only for a base URL that cannot have a path (not http).
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.push(&crate::lnbtc::invoice::encode_lower_hex(payment_hash));
        }
        let status: crate::receiver::InvoiceStatus =
            self.logged(call, self.inner.client.get(url)).await?;
        status
            .check(payment_hash)
            .map_err(|reason| FacilitatorError::InvalidReply {
                call,
                reason: reason.to_owned(),
            })?;
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_without_query() {
        for bad in [
            "ftp://x",
            "not a url",
            "http://x/?a=b",
            "http://x/#f",
            "http://user@x",
        ] {
            assert!(
                matches!(
                    HttpFacilitator::new(bad),
                    Err(FacilitatorConfigError::InvalidUrl { .. })
                ),
                "{bad}"
            );
        }
        let err = HttpFacilitator::new("http://user:hunter2@x").unwrap_err();
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
        let facilitator = HttpFacilitator::new("http://127.0.0.1:4021/base/").unwrap();
        assert_eq!(facilitator.base_url(), "http://127.0.0.1:4021/base");
        assert_eq!(
            facilitator.url(FacilitatorCall::Verify).as_str(),
            "http://127.0.0.1:4021/base/verify"
        );
    }

    #[test]
    fn invalid_headers_fail_at_build_and_debug_hides_values() {
        let err = HttpFacilitator::builder("http://x")
            .header("bad header", "v")
            .build()
            .unwrap_err();
        assert!(matches!(err, FacilitatorConfigError::InvalidHeader(_)));
        assert!(
            HttpFacilitator::builder("http://x")
                .bearer_token("line\nbreak")
                .build()
                .is_err()
        );

        let facilitator = HttpFacilitator::builder("http://x")
            .bearer_token("s3cret")
            .build()
            .unwrap();
        let debug = format!("{facilitator:?}");
        assert!(
            debug.contains("authorization") && !debug.contains("s3cret"),
            "{debug}"
        );
    }

    #[test]
    fn zero_timeouts_and_limits_fail_at_build() {
        let builder = || HttpFacilitator::builder("http://x");
        for built in [
            builder().timeout(Duration::ZERO).build(),
            builder().connect_timeout(Duration::ZERO).build(),
            builder().max_reply_bytes(0).build(),
        ] {
            assert!(matches!(built, Err(FacilitatorConfigError::Zero(_))));
        }
    }

    #[test]
    fn excerpts_never_carry_a_preimage_or_a_signature() {
        let preimage = "ab".repeat(32);
        let signature = "0f".repeat(64);
        let echoed = format!(
            r#"{{"hash":"{}","error":"bad","payload":{{"preimage":"{preimage}","signature":"{signature}"}}}}"#,
            "1".repeat(63)
        );
        let cut = excerpt(echoed.as_bytes());
        assert!(
            !cut.contains(&preimage) && !cut.contains(&signature[..64]),
            "{cut}"
        );
        assert_eq!(cut.matches("[redacted]").count(), 2, "{cut}");
        assert!(cut.contains(&"1".repeat(63)), "shorter runs stay: {cut}");
        // Cut after redaction: no tail of a secret survives the cut.
        let long = format!("{}{preimage}", "x".repeat(BODY_EXCERPT_CHARS - 10));
        assert!(!excerpt(long.as_bytes()).contains(&preimage[..10]));
    }

    #[test]
    fn excerpts_are_cut_on_character_boundaries() {
        let long = "é".repeat(300);
        let cut = excerpt(long.as_bytes());
        assert_eq!(cut.chars().count(), BODY_EXCERPT_CHARS + 1);
        assert_eq!(excerpt(b"short"), "short");
    }
}
