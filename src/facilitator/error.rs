//! What can go wrong talking to a facilitator.

use std::fmt;
use std::time::Duration;

use http::StatusCode;

/// A boxed error source, for transports other than reqwest.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One of the facilitator calls: the wire contract's four, and this project's invoice-state
/// call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FacilitatorCall {
    /// `POST /requirements`
    Requirements,
    /// `POST /verify`
    Verify,
    /// `POST /settle`
    Settle,
    /// `GET /supported`
    Supported,
    /// `GET /invoices/{paymentHash}`: where an invoice the facilitator minted stands, and its
    /// preimage once paid (this project's addition, for the browser paywall).
    Invoice,
}

impl FacilitatorCall {
    /// Every call.
    pub const ALL: [FacilitatorCall; 5] = [
        FacilitatorCall::Requirements,
        FacilitatorCall::Verify,
        FacilitatorCall::Settle,
        FacilitatorCall::Supported,
        FacilitatorCall::Invoice,
    ];

    /// The position of the call in [`Self::ALL`], for per-call tables.
    pub(crate) const fn index(self) -> usize {
        match self {
            FacilitatorCall::Requirements => 0,
            FacilitatorCall::Verify => 1,
            FacilitatorCall::Settle => 2,
            FacilitatorCall::Supported => 3,
            FacilitatorCall::Invoice => 4,
        }
    }

    /// The path of the call, e.g. `"/verify"` (`"/invoices"` for [`Self::Invoice`], whose
    /// request adds `/{paymentHash}`).
    pub const fn path(self) -> &'static str {
        match self {
            FacilitatorCall::Requirements => "/requirements",
            FacilitatorCall::Verify => "/verify",
            FacilitatorCall::Settle => "/settle",
            FacilitatorCall::Supported => "/supported",
            FacilitatorCall::Invoice => "/invoices",
        }
    }
}

impl fmt::Display for FacilitatorCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

/// The facilitator could not give an answer. Not a payment verdict.
#[derive(Debug, thiserror::Error)]
pub enum FacilitatorError {
    /// Could not connect, or the connection failed during the call.
    #[error("facilitator {call} unreachable: {source}")]
    Unreachable {
        /// The call that failed.
        call: FacilitatorCall,
        /// What the transport said.
        #[source]
        source: BoxError,
    },
    /// No complete answer within the timeout.
    #[error("facilitator {call} timed out after {after:?}")]
    Timeout {
        /// The call that failed.
        call: FacilitatorCall,
        /// The timeout that fired.
        after: Duration,
    },
    /// Answered with a non-2xx status.
    #[error("facilitator {call} answered {status}: {body_excerpt}")]
    Status {
        /// The call that failed.
        call: FacilitatorCall,
        /// The status it answered.
        status: StatusCode,
        /// The start of the body, for the logs.
        body_excerpt: String,
    },
    /// Answered 2xx with a body that is not the expected JSON (or is too large).
    #[error("facilitator {call} sent an unusable reply: {reason}")]
    InvalidReply {
        /// The call that failed.
        call: FacilitatorCall,
        /// What is wrong with the reply.
        reason: String,
    },
}

impl FacilitatorError {
    /// The call that failed.
    pub fn call(&self) -> FacilitatorCall {
        match self {
            FacilitatorError::Unreachable { call, .. }
            | FacilitatorError::Timeout { call, .. }
            | FacilitatorError::Status { call, .. }
            | FacilitatorError::InvalidReply { call, .. } => *call,
        }
    }

    /// Whether the call timed out (a gateway would answer 504 rather than 502).
    pub fn is_timeout(&self) -> bool {
        matches!(self, FacilitatorError::Timeout { .. })
    }
}
