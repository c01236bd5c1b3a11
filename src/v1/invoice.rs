//! Pre-checks of BOLT11 invoices: decode strictly (`lightning-invoice`'s parser, then the
//! `lnbtc` scheme's rules: canonical encoding, whole msat, a signature that verifies with a low
//! S), then compare network, amount, payee and expiry with what is expected, returning a typed
//! reason for each failure. Both flows take exactly the same invoices. Pre-checks reject garbage
//! early; they never replace `/verify`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::secp256k1::PublicKey;
use lightning_invoice::Currency;

use crate::lnbtc::invoice::DecodedInvoice;
use crate::network::Network;
use crate::types::{ASSET_BTC, PaymentRequirements, RequirementsRequest, reason};

/// What an invoice must be to pass [`check_invoice`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceExpectation {
    network: Network,
    amount_msat: Option<u64>,
    payee: Option<PublicKey>,
}

impl InvoiceExpectation {
    /// Expect an invoice on `network`, of any amount, to any payee.
    pub const fn new(network: Network) -> Self {
        Self {
            network,
            amount_msat: None,
            payee: None,
        }
    }

    /// Also expect exactly this amount.
    #[must_use]
    pub const fn amount_msat(mut self, amount_msat: u64) -> Self {
        self.amount_msat = Some(amount_msat);
        self
    }

    /// Also expect this payee node key.
    #[must_use]
    pub const fn payee(mut self, payee: PublicKey) -> Self {
        self.payee = Some(payee);
        self
    }
}

/// An invoice that passed its pre-checks, with the facts the checks established (its signature
/// verified, so its payee is the key that signed it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedInvoice {
    payment_hash: [u8; 32],
    network: Network,
    amount_msat: u64,
    payee: PublicKey,
    expires_at: Duration,
}

impl CheckedInvoice {
    /// The facts of an invoice the `lnbtc` strict decoder took (which verified its
    /// signature), checked against `expected` at `now`: what [`check_invoice`] does after
    /// decoding, so that one decoding serves both flows' checks.
    pub fn from_decoded(
        decoded: &DecodedInvoice,
        expected: &InvoiceExpectation,
        now: Duration,
    ) -> Result<Self, InvoiceCheckError> {
        let network = Network::from_currency(&decoded.currency)
            .ok_or_else(|| InvoiceCheckError::UnsupportedCurrency(decoded.currency.clone()))?;
        let amount_msat = decoded
            .amount_msat
            .ok_or(InvoiceCheckError::MissingAmount)?;
        let checked = CheckedInvoice {
            payment_hash: decoded.payment_hash,
            network,
            amount_msat,
            payee: decoded.payee,
            expires_at: Duration::from_secs(decoded.end()).min(LATEST_EXPIRY),
        };
        checked.check(expected, now)?;
        Ok(checked)
    }

    /// The payment hash: the nonce of one payment.
    pub fn payment_hash(&self) -> [u8; 32] {
        self.payment_hash
    }

    /// The payment hash as 64 lowercase hex characters (the `transaction` of a settle).
    pub fn payment_hash_hex(&self) -> String {
        crate::lnbtc::invoice::encode_lower_hex(&self.payment_hash)
    }

    /// Checks the invoice's facts against `expected` at time `now`, in this order: network,
    /// amount, payee, expiry. [`check_invoice`] ends with this; call it again to re-check an
    /// invoice parsed earlier (its expiry may have come since).
    pub fn check(
        &self,
        expected: &InvoiceExpectation,
        now: Duration,
    ) -> Result<(), InvoiceCheckError> {
        if self.network != expected.network {
            return Err(InvoiceCheckError::WrongNetwork {
                expected: expected.network,
                found: self.network,
            });
        }
        if let Some(expected_amount) = expected.amount_msat {
            if self.amount_msat != expected_amount {
                return Err(InvoiceCheckError::WrongAmount {
                    expected: expected_amount,
                    found: self.amount_msat,
                });
            }
        }
        if let Some(expected_payee) = expected.payee {
            if self.payee != expected_payee {
                return Err(InvoiceCheckError::WrongPayee {
                    expected: expected_payee.to_string(),
                    found: self.payee.to_string(),
                });
            }
        }
        if now >= self.expires_at {
            return Err(InvoiceCheckError::Expired {
                expired_at: self.expires_at.as_secs(),
            });
        }
        Ok(())
    }

    /// The network of the invoice's currency.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The amount in msat.
    pub fn amount_msat(&self) -> u64 {
        self.amount_msat
    }

    /// The payee: the `n` field, else the key recovered from the signature.
    pub fn payee(&self) -> PublicKey {
        self.payee
    }

    /// When the invoice expires, as time since the Unix epoch; an absurdly distant expiry is
    /// clamped to the end of year 9999, so it is safe to add to a `SystemTime`.
    pub fn expires_at(&self) -> Duration {
        self.expires_at
    }

    /// How long the invoice stays payable after `now` (zero once expired).
    pub fn remaining(&self, now: Duration) -> Duration {
        self.expires_at.saturating_sub(now)
    }
}

/// The latest expiry [`CheckedInvoice::expires_at`] reports: 9999-12-31T23:59:59Z.
const LATEST_EXPIRY: Duration = Duration::from_secs(253_402_300_799);

/// Why an invoice failed its pre-checks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceCheckError {
    /// Not a BOLT11 invoice, or its signature is invalid.
    #[error("invoice is not a valid BOLT11 invoice: {0}")]
    Unparsable(String),
    /// A currency x402 does not use (simnet).
    #[error("invoice currency {0:?} is not a Lightning network of x402")]
    UnsupportedCurrency(Currency),
    /// On another network than expected.
    #[error("invoice is on {found}, expected {expected}")]
    WrongNetwork {
        /// The expected network.
        expected: Network,
        /// The invoice's network.
        found: Network,
    },
    /// The invoice has no amount ("any amount" invoices are not accepted).
    #[error("invoice has no amount")]
    MissingAmount,
    /// Another amount than expected.
    #[error("invoice amount is {found} msat, expected {expected} msat")]
    WrongAmount {
        /// The expected amount in msat.
        expected: u64,
        /// The invoice's amount in msat.
        found: u64,
    },
    /// Payable to another node than expected.
    #[error("invoice payee is {found}, expected {expected}")]
    WrongPayee {
        /// The expected node key, 66 hex characters.
        expected: String,
        /// The invoice's payee, 66 hex characters.
        found: String,
    },
    /// Expired at `expired_at` (seconds since the Unix epoch).
    #[error("invoice expired at unix time {expired_at}")]
    Expired {
        /// When it expired, in seconds since the Unix epoch.
        expired_at: u64,
    },
    /// A `payTo` that is not a 66-hex compressed node public key.
    #[error("payTo {0:?} is not a 66-hex-character node public key")]
    InvalidPayTo(String),
}

impl InvoiceCheckError {
    /// The x402 snake_case reason for this failure, as a facilitator would say it.
    pub fn reason(&self) -> &'static str {
        match self {
            InvoiceCheckError::Unparsable(_) => reason::INVALID_PAYLOAD,
            InvoiceCheckError::UnsupportedCurrency(_) | InvoiceCheckError::WrongNetwork { .. } => {
                reason::INVALID_NETWORK
            }
            InvoiceCheckError::MissingAmount | InvoiceCheckError::WrongAmount { .. } => {
                reason::INVOICE_AMOUNT
            }
            InvoiceCheckError::WrongPayee { .. } | InvoiceCheckError::InvalidPayTo(_) => {
                reason::INVOICE_PAYEE
            }
            InvoiceCheckError::Expired { .. } => reason::PAYMENT_EXPIRED,
        }
    }
}

/// Parses a compressed node public key: exactly 66 hex characters.
pub fn parse_node_id(hex: &str) -> Result<PublicKey, InvoiceCheckError> {
    if hex.len() != 66 {
        return Err(InvoiceCheckError::InvalidPayTo(hex.to_owned()));
    }
    hex.parse()
        .map_err(|_| InvoiceCheckError::InvalidPayTo(hex.to_owned()))
}

/// The current time as a duration since the Unix epoch, as [`check_invoice`] takes it.
pub fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

/// Decodes `invoice` and checks it against `expected` at time `now` (since the Unix epoch).
///
/// Decoding is the `lnbtc` scheme's strict one ([`lnbtc::invoice::decode`]: `lightning-invoice`'s
/// parser, then the canonical encoding, a whole number of msat, and a signature that verifies
/// with a low S, against the `n` field or the recovered key), so that both flows take exactly
/// the same invoices. Checks run in this order, and the first failure is returned: decoding and
/// signature, currency, presence of an amount, then [`CheckedInvoice::check`]: network, amount,
/// payee, expiry.
///
/// [`lnbtc::invoice::decode`]: crate::lnbtc::invoice::decode
pub fn check_invoice(
    invoice: &str,
    expected: &InvoiceExpectation,
    now: Duration,
) -> Result<CheckedInvoice, InvoiceCheckError> {
    let decoded = crate::lnbtc::invoice::decode(invoice).map_err(InvoiceCheckError::Unparsable)?;
    CheckedInvoice::from_decoded(&decoded, expected, now)
}

/// Checks that requirements are consistent with their own invoice: on `network`, for exactly
/// `maxAmountRequired`, payable to `payTo`, not expired at `now`.
pub fn check_requirements_invoice(
    requirements: &PaymentRequirements,
    now: Duration,
) -> Result<CheckedInvoice, InvoiceCheckError> {
    let pay_to = parse_node_id(&requirements.pay_to)?;
    check_own_invoice(requirements, pay_to, now)
}

/// Checks the invoice of `requirements` against their network, amount and (parsed) `payTo`.
fn check_own_invoice(
    requirements: &PaymentRequirements,
    pay_to: PublicKey,
    now: Duration,
) -> Result<CheckedInvoice, InvoiceCheckError> {
    let expected = InvoiceExpectation::new(requirements.network)
        .amount_msat(requirements.max_amount_required)
        .payee(pay_to);
    check_invoice(&requirements.extra.invoice, &expected, now)
}

/// A `/requirements` answer that is not what was asked, or not consistent with its own invoice.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequirementsError {
    /// Requirements on another network than asked.
    #[error("facilitator answered network {got}, asked {asked}")]
    Network {
        /// The network asked for.
        asked: Network,
        /// The network answered.
        got: Network,
    },
    /// Requirements for another amount than asked.
    #[error("facilitator answered {got} msat, asked {asked} msat")]
    Amount {
        /// The amount asked for, in msat.
        asked: u64,
        /// The amount answered, in msat.
        got: u64,
    },
    /// An asset other than BTC.
    #[error("facilitator answered asset {0:?}, expected BTC")]
    Asset(String),
    /// A `payTo` other than the one the operator pinned.
    #[error("facilitator answered payTo {got}, pinned {pinned}")]
    PayTo {
        /// The pinned node key, hex.
        pinned: String,
        /// The answered `payTo`.
        got: String,
    },
    /// The requirements do not match their own invoice.
    #[error(transparent)]
    Invoice(#[from] InvoiceCheckError),
}

/// Checks a `/requirements` answer: on the network and for the amount asked, in BTC, payable to
/// the pinned node (when one is pinned), and consistent with its own invoice at `now`.
pub fn check_requirements_answer(
    asked: &RequirementsRequest,
    answer: &PaymentRequirements,
    pinned_pay_to: Option<&PublicKey>,
    now: Duration,
) -> Result<CheckedInvoice, RequirementsError> {
    let pay_to = check_answer_terms(asked, answer, None, pinned_pay_to)?;
    Ok(check_own_invoice(answer, pay_to, now)?)
}

/// Whether `hex` is the 66 hex characters (either case) of `key`'s compressed form, as
/// [`parse_node_id`] would parse it into `key`.
fn spells(hex: &str, key: &PublicKey) -> bool {
    let serialized = key.serialize();
    let digits = hex.as_bytes();
    digits.len() == 2 * serialized.len()
        && serialized
            .iter()
            .zip(digits.chunks_exact(2))
            .all(|(byte, pair)| {
                let nibble = |digit: u8| char::from(digit).to_digit(16);
                matches!((nibble(pair[0]), nibble(pair[1])), (Some(high), Some(low)) if high * 16 + low == u32::from(*byte))
            })
}

/// [`check_requirements_answer`] for an answer whose invoice was already decoded strictly (by
/// [`lnbtc::invoice::decode`](crate::lnbtc::invoice::decode), which verified its signature).
pub fn check_decoded_requirements_answer(
    asked: &RequirementsRequest,
    answer: &PaymentRequirements,
    decoded: &DecodedInvoice,
    pinned_pay_to: Option<&PublicKey>,
    now: Duration,
) -> Result<CheckedInvoice, RequirementsError> {
    let pay_to = check_answer_terms(asked, answer, Some(&decoded.payee), pinned_pay_to)?;
    let expected = InvoiceExpectation::new(answer.network)
        .amount_msat(answer.max_amount_required)
        .payee(pay_to);
    Ok(CheckedInvoice::from_decoded(decoded, &expected, now)?)
}

/// The terms of a `/requirements` answer against the ask: network, amount, asset, and `payTo`
/// (the pinned one when pinned); the parsed `payTo`. A `payTo` that spells `signer`, the
/// invoice's verified signing key, needs no parsing (no point decompression).
fn check_answer_terms(
    asked: &RequirementsRequest,
    answer: &PaymentRequirements,
    signer: Option<&PublicKey>,
    pinned_pay_to: Option<&PublicKey>,
) -> Result<PublicKey, RequirementsError> {
    if answer.network != asked.network {
        return Err(RequirementsError::Network {
            asked: asked.network,
            got: answer.network,
        });
    }
    if answer.max_amount_required != asked.amount {
        return Err(RequirementsError::Amount {
            asked: asked.amount,
            got: answer.max_amount_required,
        });
    }
    if answer.asset != ASSET_BTC {
        return Err(RequirementsError::Asset(answer.asset.clone()));
    }
    let pay_to = match signer {
        Some(signer) if spells(&answer.pay_to, signer) => *signer,
        _ => parse_node_id(&answer.pay_to)?,
    };
    if let Some(pinned) = pinned_pay_to {
        if pay_to != *pinned {
            return Err(RequirementsError::PayTo {
                pinned: pinned.to_string(),
                got: answer.pay_to.clone(),
            });
        }
    }
    Ok(pay_to)
}
