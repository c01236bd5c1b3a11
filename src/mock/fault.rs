//! Faults the mock facilitator injects on demand, per call.

use std::fmt;
use std::time::Duration;

use http::StatusCode;

use crate::facilitator::FacilitatorCall;

/// Something the mock does instead of (or before) its honest answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Any call: answer this status with a small JSON error body.
    Status(StatusCode),
    /// Any call: answer 200 with a body that is not JSON.
    Garbage,
    /// Any call: wait this long, then answer honestly.
    Delay(Duration),
    /// `/verify`: answer `isValid: false` with this reason.
    Invalid(String),
    /// `/settle`: answer `success: false` with this reason, paying nothing.
    SettleFailed(String),
    /// `/requirements`: hand out requirements whose invoice is wrong in this way.
    Invoice(InvoiceFault),
}

/// Ways a `/requirements` answer can be wrong, as a faulty facilitator's would be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvoiceFault {
    /// The invoice is for another amount than `maxAmountRequired` (which is the asked one).
    WrongAmount,
    /// The invoice is on another network than `network` (which is the asked one).
    WrongNetwork,
    /// The invoice is signed by another node than `payTo` (which is the mock's).
    WrongPayee,
    /// The invoice expired before it was handed out.
    Expired,
    /// Consistent requirements, but for another amount than the one asked.
    UnaskedAmount,
    /// Consistent requirements, but payable to another node than the mock's.
    ForeignPayTo,
    /// The invoice commits to another description hash than the one asked (an invoice for
    /// another request, in the `lnbtc` flow).
    WrongDescriptionHash,
    /// The invoice expires after another delay than `maxTimeoutSeconds` (which the `lnbtc`
    /// scheme requires it to equal).
    WrongExpiry,
}

impl Fault {
    /// Whether this fault can be injected into `call`.
    pub fn applies_to(&self, call: FacilitatorCall) -> bool {
        match self {
            Fault::Status(_) | Fault::Garbage | Fault::Delay(_) => true,
            Fault::Invalid(_) => call == FacilitatorCall::Verify,
            Fault::SettleFailed(_) => call == FacilitatorCall::Settle,
            Fault::Invoice(_) => call == FacilitatorCall::Requirements,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Status(status) => write!(f, "status {status}"),
            Fault::Garbage => f.write_str("garbage body"),
            Fault::Delay(delay) => write!(f, "delay of {delay:?}"),
            Fault::Invalid(reason) => write!(f, "isValid: false ({reason})"),
            Fault::SettleFailed(reason) => write!(f, "success: false ({reason})"),
            Fault::Invoice(fault) => write!(f, "bad invoice ({fault:?})"),
        }
    }
}

/// The faults waiting for each call: one-shot ones first, then a standing one.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    next: std::collections::VecDeque<Fault>,
    always: Option<Fault>,
}

impl FaultPlan {
    pub(crate) fn push_next(&mut self, fault: Fault) {
        self.next.push_back(fault);
    }

    pub(crate) fn set_always(&mut self, fault: Option<Fault>) {
        self.always = fault;
    }

    pub(crate) fn clear(&mut self) {
        self.next.clear();
        self.always = None;
    }

    /// The fault for the call being answered now, if any.
    pub(crate) fn take(&mut self) -> Option<Fault> {
        self.next.pop_front().or_else(|| self.always.clone())
    }
}
