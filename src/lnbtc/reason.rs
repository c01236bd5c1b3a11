//! The scheme's stable error strings: the facilitator's `errorReason` vocabulary (upstream
//! `scheme_exact_lnbtc.md`, "Error Vocabulary") and the local failure reasons of clients and
//! servers. The layer uses the same strings as the `error` of its 402s.

/// x402 core (`x402-specification-v2.md` §9): the payment payload is malformed (not base64,
/// not JSON, not an object, oversized, or sent twice). A resource server answers it with HTTP
/// 400 (the transport's "Invalid Payment").
pub const INVALID_PAYLOAD: &str = "invalid_payload";
/// x402 core (§9): the payload's `x402Version` is not one this party speaks (HTTP 400 at a
/// resource server).
pub const INVALID_X402_VERSION: &str = "invalid_x402_version";

/// Either side is not `exact`.
pub const UNSUPPORTED_SCHEME: &str = "unsupported_scheme";
/// `accepted.network` differs from the requirement.
pub const NETWORK_MISMATCH: &str = "network_mismatch";
/// The concrete `lnbtc` network is unsupported.
pub const UNSUPPORTED_NETWORK: &str = "unsupported_network";
/// Either side does not specify `BTC`.
pub const ASSET: &str = "invalid_exact_lnbtc_asset";
/// Either amount is not a positive integer.
pub const AMOUNT: &str = "invalid_exact_lnbtc_amount";
/// `accepted.amount` differs from the requirement.
pub const AMOUNT_MISMATCH: &str = "invalid_exact_lnbtc_amount_mismatch";
/// `accepted.payTo` differs from the requirement.
pub const PAY_TO_MISMATCH: &str = "invalid_exact_lnbtc_pay_to_mismatch";
/// `payTo` is not a lowercase compressed secp256k1 public key.
pub const PAY_TO_MALFORMED: &str = "invalid_exact_lnbtc_pay_to_malformed";
/// `accepted.maxTimeoutSeconds` differs from the requirement.
pub const MAX_TIMEOUT_MISMATCH: &str = "invalid_exact_lnbtc_max_timeout_mismatch";
/// A server-declared `extra` field (other than the invoice and the binding) differs.
pub const EXTRA_MISMATCH: &str = "invalid_exact_lnbtc_extra_mismatch";
/// A request hash, profile or parameter object is missing or malformed, or a profile is
/// unsupported.
pub const REQUEST_BINDING: &str = "invalid_exact_lnbtc_request_binding";
/// The accepted request hash, profile or parameters differ from the requirement.
pub const REQUEST_MISMATCH: &str = "invalid_exact_lnbtc_request_mismatch";
/// An explicit asset transfer method is not `bolt11`.
pub const ASSET_TRANSFER_METHOD: &str = "invalid_exact_lnbtc_asset_transfer_method";
/// A payment flow is missing or not `upfront`.
pub const PAYMENT_FLOW: &str = "invalid_exact_lnbtc_payment_flow";
/// A required invoice field is absent or empty.
pub const INVOICE_MISSING: &str = "invalid_exact_lnbtc_invoice_missing";
/// Strict BOLT11 decoding, signature validation or integral-msat validation failed.
pub const INVOICE_DECODE_FAILED: &str = "invalid_exact_lnbtc_invoice_decode_failed";
/// The invoice does not hold exactly one description hash, or holds an inline description.
pub const INVOICE_DESCRIPTION: &str = "invalid_exact_lnbtc_invoice_description";
/// The signed description hash differs from the expected request hash.
pub const INVOICE_REQUEST_MISMATCH: &str = "invalid_exact_lnbtc_invoice_request_mismatch";
/// The invoice signing key differs from `payTo`.
pub const INVOICE_PAYEE_MISMATCH: &str = "invalid_exact_lnbtc_invoice_payee_mismatch";
/// The BOLT11 currency does not match the network.
pub const INVOICE_CURRENCY_MISMATCH: &str = "invalid_exact_lnbtc_invoice_currency_mismatch";
/// The BOLT11 amount differs from the required msat.
pub const INVOICE_AMOUNT_MISMATCH: &str = "invalid_exact_lnbtc_invoice_amount_mismatch";
/// `maxTimeoutSeconds` is not a positive integer.
pub const MAX_TIMEOUT: &str = "invalid_exact_lnbtc_max_timeout";
/// The BOLT11 expiry does not equal `maxTimeoutSeconds`.
pub const INVOICE_EXPIRY_MISMATCH: &str = "invalid_exact_lnbtc_invoice_expiry_mismatch";
/// The BOLT11 creation time is later than the validation time plus the skew.
pub const INVOICE_CREATED_IN_FUTURE: &str = "invalid_exact_lnbtc_invoice_created_in_future";
/// The network and payment hash pair was already used (or lost a settlement race).
pub const DUPLICATE_SETTLEMENT: &str = "duplicate_settlement";
/// `payload.preimage` is absent.
pub const PREIMAGE_MISSING: &str = "invalid_exact_lnbtc_preimage_missing";
/// The preimage holds characters other than lowercase hex.
pub const PREIMAGE_MALFORMED: &str = "invalid_exact_lnbtc_preimage_malformed";
/// The decoded preimage is not exactly 32 bytes.
pub const PREIMAGE_LENGTH: &str = "invalid_exact_lnbtc_preimage_length";
/// SHA-256 of the preimage is not the payment hash.
pub const PREIMAGE_HASH_MISMATCH: &str = "invalid_exact_lnbtc_preimage_hash_mismatch";
/// The paid-but-expired window (`invoice_end + skew`) was exceeded; for a client, the invoice
/// is expired.
pub const INVOICE_EXPIRED: &str = "invalid_exact_lnbtc_invoice_expired";

/// Local: the server's issuance limiter denied a new invoice.
pub const INVOICE_ISSUANCE_DENIED: &str = "exact_lnbtc_invoice_issuance_denied";
/// Local: the payer adapter returned a different invoice.
pub const PAYER_INVOICE_MISMATCH: &str = "invalid_exact_lnbtc_payer_invoice_mismatch";
/// Local: the payer adapter returned a different payment hash.
pub const PAYER_PAYMENT_HASH_MISMATCH: &str = "invalid_exact_lnbtc_payer_payment_hash_mismatch";
/// Local: the payer adapter returned a different amount.
pub const PAYER_AMOUNT_MISMATCH: &str = "invalid_exact_lnbtc_payer_amount_mismatch";
/// Local: the payment is still in flight and may be retried.
pub const PAYMENT_IN_FLIGHT: &str = "exact_lnbtc_payment_in_flight";
/// Local: the payer did not report a paid status.
pub const PAYMENT_NOT_PAID: &str = "exact_lnbtc_payment_not_paid";
/// Local: a paid result omitted the preimage.
pub const PAYER_PREIMAGE_REQUIRED: &str = "invalid_exact_lnbtc_payer_preimage_required";
/// Local: a payer preimage is not 64 lowercase hex characters.
pub const PAYER_PREIMAGE_MALFORMED: &str = "invalid_exact_lnbtc_payer_preimage_malformed";
/// Local: a payer preimage does not hash to the invoice's payment hash.
pub const PAYER_PREIMAGE_HASH_MISMATCH: &str = "invalid_exact_lnbtc_payer_preimage_hash_mismatch";

/// Every facilitator `errorReason` of the scheme, in the upstream table's order.
pub const SETTLE_REASONS: [&str; 30] = [
    UNSUPPORTED_SCHEME,
    NETWORK_MISMATCH,
    UNSUPPORTED_NETWORK,
    ASSET,
    AMOUNT,
    AMOUNT_MISMATCH,
    PAY_TO_MISMATCH,
    PAY_TO_MALFORMED,
    MAX_TIMEOUT_MISMATCH,
    EXTRA_MISMATCH,
    REQUEST_BINDING,
    REQUEST_MISMATCH,
    ASSET_TRANSFER_METHOD,
    PAYMENT_FLOW,
    INVOICE_MISSING,
    INVOICE_DECODE_FAILED,
    INVOICE_DESCRIPTION,
    INVOICE_REQUEST_MISMATCH,
    INVOICE_PAYEE_MISMATCH,
    INVOICE_CURRENCY_MISMATCH,
    INVOICE_AMOUNT_MISMATCH,
    MAX_TIMEOUT,
    INVOICE_EXPIRY_MISMATCH,
    INVOICE_CREATED_IN_FUTURE,
    DUPLICATE_SETTLEMENT,
    PREIMAGE_MISSING,
    PREIMAGE_MALFORMED,
    PREIMAGE_LENGTH,
    PREIMAGE_HASH_MISMATCH,
    INVOICE_EXPIRED,
];
