//! LND's REST API (LND 0.18/0.19) as a [`LightningNode`].
//!
//! | Call | REST | LND RPC | Macaroon permission |
//! |---|---|---|---|
//! | [`node_id`](LightningNode::node_id) | `GET /v1/getinfo` | `GetInfo` | `info:read` |
//! | [`create_invoice`](LightningNode::create_invoice) | `POST /v1/invoices` | `AddInvoice` | `invoices:write` |
//! | [`lookup_invoice`](LightningNode::lookup_invoice) | `GET /v1/invoice/{r_hash_str}` | `LookupInvoice` | `invoices:read` |
//! | [`cancel_invoice`](LightningNode::cancel_invoice) | `POST /v2/invoices/cancel` | `invoicesrpc.CancelInvoice` | `invoices:write` |
//! | [`send_payment`](LightningNode::send_payment) | `POST /v2/router/send` | `routerrpc.SendPaymentV2` | `offchain:write` |
//! | [`track_payment`](LightningNode::track_payment) | `GET /v2/router/track/{payment_hash}` | `routerrpc.TrackPaymentV2` | `offchain:read` |
//!
//! Every call carries the macaroon in LND's `Grpc-Metadata-macaroon` header. LND's
//! `invoice.macaroon` holds `invoices:read`, `invoices:write`, `address:*` and `onchain:read`:
//! it can neither read `getinfo` (`info:read`) nor pay (`offchain:*`). A service that mints,
//! cancels and pays withdrawals needs `admin.macaroon` or, better, a macaroon baked with exactly
//! these permissions:
//!
//! ```text
//! lncli bakemacaroon invoices:read invoices:write offchain:read offchain:write info:read
//! ```
//!
//! The connection is the paying client's [`LndWallet`] (`x402_lightning::client::wallet::lnd`):
//! LND's `tls.cert` given as [`LndConfig::tls_cert_pem`] is pinned, the only certificate trusted
//! (byte for byte, in place of host-name and chain checks; the handshake is still verified
//! against it), redirects are refused, and answers are read under a 1 MiB cap (a payment's
//! whole update stream included), so a hostile node cannot exhaust memory. Paying and tracking
//! are the wallet's [`send_payment`](LndWallet::send_payment) and
//! [`track_payment`](LndWallet::track_payment); this module adds the invoice calls.
//!
//! Shapes, as LND's REST gateway (grpc-gateway v2) writes them: int64 as decimal strings,
//! `bytes` as base64 in bodies (standard alphabet sent) and URL-safe base64 in a path
//! (`/v2/router/track/{payment_hash}`; a standard `/` would split the path), errors as
//! `{"code", "message", "details"}` with the gRPC code mapped to an HTTP status (`NotFound` 404,
//! `AlreadyExists` 409, `Unknown` 500). The streaming calls (`SendPaymentV2`, `TrackPaymentV2`)
//! answer newline-delimited `{"result": Payment}` objects, or `{"error": Status}`, also as the
//! whole body of an error status; with `no_inflight_updates` LND sends nothing at all, not even
//! the status line, until the payment is decided.
//!
//! Paying is never guessed: [`send_payment`](LightningNode::send_payment) reports
//! `SUCCEEDED` (with a preimage checked against the invoice's payment hash) and `FAILED` as LND
//! says them, and [`PaymentStatus::InFlight`] when the wait ends first, which includes a node
//! that never answered; LND keeps paying after the stream is dropped (`cancelable` is not set).
//! Any error (LND's `invoice is already paid` and `payment is in transition`, 409, included) says
//! nothing about whether the payment left: [`track_payment`](LightningNode::track_payment)
//! tells, and only its `None` (LND's `payment isn't initiated`) means the node never started
//! one.

use std::fmt;
use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::hex::DisplayHex as _;
use bitcoin::secp256k1::PublicKey;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use x402_lightning::Network;
use x402_lightning::client::wallet::{LndWallet, LndWalletConfig, PaymentOutcome, WalletError};

pub use x402_lightning::client::wallet::LndConfigError;

use super::{
    Cancelled, InvoiceDescription, InvoiceLookup, InvoiceRequest, InvoiceState, LightningNode,
    NodeError, NodeFuture, PaymentRequest, PaymentStatus,
};

/// LND's `invoices.ErrInvoiceNotFound`.
const INVOICE_NOT_FOUND: &str = "unable to locate invoice";

/// LND's `invoices.ErrInvoiceAlreadySettled`.
const INVOICE_SETTLED: &str = "invoice already settled";

/// LND's `invoices.ErrInvoiceAlreadyCanceled`.
const INVOICE_CANCELED: &str = "invoice already canceled";

/// How to reach an LND node's REST API.
#[derive(Clone)]
pub struct LndConfig {
    /// The REST base URL, `http` or `https`, e.g. `https://127.0.0.1:8080`.
    pub url: String,
    /// The macaroon as hex (LND's `*.macaroon` files are binary: see
    /// [`from_files`](Self::from_files)). Never printed by `Debug`.
    pub macaroon_hex: String,
    /// LND's `tls.cert` (PEM), pinned: the only certificate trusted; `None` trusts the system's
    /// roots.
    pub tls_cert_pem: Option<Vec<u8>>,
    /// How long one call may take, connecting and reading the answer included.
    pub timeout: Duration,
}

impl LndConfig {
    /// The default [`timeout`](Self::timeout) of a call.
    pub const DEFAULT_TIMEOUT: Duration = LndWalletConfig::DEFAULT_TIMEOUT;

    /// Reads the binary macaroon file (`admin.macaroon` or one baked with the permissions of the
    /// [module docs](self)) and, if given, the PEM `tls.cert`.
    ///
    /// # Errors
    ///
    /// [`LndConfigError::ReadFile`] naming the file that cannot be read, or
    /// [`LndConfigError::Macaroon`] if the macaroon file is empty.
    pub fn from_files(
        url: impl Into<String>,
        macaroon_path: &Path,
        tls_cert_path: Option<&Path>,
        timeout: Duration,
    ) -> Result<Self, LndConfigError> {
        let files = LndWalletConfig::from_files(url, macaroon_path, tls_cert_path)?;
        Ok(Self {
            url: files.url,
            macaroon_hex: files.macaroon_hex,
            tls_cert_pem: files.tls_cert_pem,
            timeout,
        })
    }
}

impl fmt::Debug for LndConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LndConfig")
            .field("url", &self.url)
            .field("macaroon_hex", &"<redacted>")
            .field(
                "tls_cert_pem",
                &self.tls_cert_pem.as_ref().map(|pem| pem.len()),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An LND node reached over its REST API: mints, looks up and cancels invoices, pays and tracks
/// payments (see the [module docs](self) for the calls and their macaroon permissions).
///
/// The node key and chain are read once from `GET /v1/getinfo` and kept.
pub struct LndNode {
    /// The connection (pinned certificate, macaroon, timeout, size cap), and the payments.
    lnd: LndWallet,
    identity: OnceCell<Identity>,
}

/// What `getinfo` says about the node.
#[derive(Debug)]
struct Identity {
    node_id: PublicKey,
    /// LND's name of its bitcoin network: `mainnet`, `testnet`, `testnet4`, `signet`, `regtest`.
    network: String,
}

impl LndNode {
    /// Checks `config` and builds the HTTP client; makes no request.
    ///
    /// # Errors
    ///
    /// [`LndConfigError`] if the URL is not `http(s)` with a host, the macaroon is not hex, the
    /// certificate is not PEM (or given for a plain `http` URL), or the client cannot be built.
    pub fn new(config: LndConfig) -> Result<Self, LndConfigError> {
        // Payments take the caller's wait and timeout: the wallet's payment timeout is unused.
        let mut wallet = LndWalletConfig::new(config.url, config.macaroon_hex);
        wallet.tls_cert_pem = config.tls_cert_pem;
        wallet.timeout = config.timeout;
        Ok(Self {
            lnd: LndWallet::new(wallet)?,
            identity: OnceCell::new(),
        })
    }

    /// The node key and chain, from `GET /v1/getinfo` on the first success.
    async fn identity(&self) -> Result<&Identity, NodeError> {
        self.identity
            .get_or_try_init(|| async {
                let info: GetInfo = self.lnd.get_json("/v1/getinfo").await.map_err(node_error)?;
                info.into_identity()
            })
            .await
    }
}

impl fmt::Debug for LndNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LndNode")
            .field("lnd", &self.lnd)
            .field("identity", &self.identity.get())
            .finish()
    }
}

impl LightningNode for LndNode {
    /// `GET /v1/getinfo`'s `identity_pubkey`, fetched once.
    fn node_id(&self) -> NodeFuture<'_, PublicKey> {
        Box::pin(async move { self.identity().await.map(|identity| identity.node_id) })
    }

    /// `POST /v1/invoices` with `value_msat`, `description_hash` and `expiry`; returns LND's
    /// `payment_request`. [`NodeError::Refused`] if the node's chain is another network or the
    /// amount is 0 (LND would mint an invoice of any amount).
    fn create_invoice<'a>(&'a self, request: &'a InvoiceRequest) -> NodeFuture<'a, String> {
        Box::pin(async move {
            if request.amount_msat == 0 {
                return Err(NodeError::Refused("an invoice of 0 msat".to_owned()));
            }
            let identity = self.identity().await?;
            if !lnd_networks(request.network).contains(&identity.network.as_str()) {
                return Err(NodeError::Refused(format!(
                    "the node is on bitcoin {}, not {}",
                    identity.network,
                    request.network.as_str()
                )));
            }
            let (memo, description_hash) = match &request.description {
                InvoiceDescription::Hash(hash) => (None, Some(BASE64.encode(hash))),
                InvoiceDescription::Text(text) => (Some(text.clone()), None),
            };
            let body = AddInvoice {
                value_msat: request.amount_msat.to_string(),
                memo,
                description_hash,
                expiry: request.expiry_secs.to_string(),
            };
            let minted: AddInvoiceResponse = self
                .lnd
                .post_json("/v1/invoices", &body)
                .await
                .map_err(node_error)?;
            if minted.payment_request.is_empty() {
                return Err(NodeError::Garbage("an empty payment_request".to_owned()));
            }
            let payment_hash = BASE64
                .decode(minted.r_hash.unwrap_or_default())
                .unwrap_or_default()
                .to_lower_hex_string();
            tracing::debug!(%payment_hash, amount_msat = request.amount_msat, "LND minted an invoice");
            Ok(minted.payment_request)
        })
    }

    /// `GET /v1/invoice/{r_hash_str}` (lowercase hex): `state`, `r_preimage` (checked against
    /// the payment hash), `amt_paid_msat`. LND's `unable to locate invoice` (404; 500 before
    /// LND 0.18) is `None`; any other 404 is an error (grpc-gateway answers an unknown route
    /// with 404 too).
    fn lookup_invoice<'a>(
        &'a self,
        payment_hash: &'a [u8; 32],
    ) -> NodeFuture<'a, Option<InvoiceLookup>> {
        Box::pin(async move {
            let path = format!("/v1/invoice/{}", payment_hash.to_lower_hex_string());
            match self.lnd.get_json::<LookupInvoice>(&path).await {
                Ok(invoice) => invoice.into_lookup(payment_hash).map(Some),
                Err(WalletError::Status { message, .. }) if message.contains(INVOICE_NOT_FOUND) => {
                    Ok(None)
                }
                Err(err) => Err(node_error(err)),
            }
        })
    }

    /// `POST /v2/invoices/cancel` with `payment_hash` (base64). LND cancels a cancelled invoice
    /// again without complaint; `invoice already settled` is [`Cancelled::AlreadyPaid`], `unable
    /// to locate invoice` [`Cancelled::Unknown`] (both gRPC `Unknown`, HTTP 500).
    fn cancel_invoice<'a>(&'a self, payment_hash: &'a [u8; 32]) -> NodeFuture<'a, Cancelled> {
        Box::pin(async move {
            let body = CancelInvoice {
                payment_hash: BASE64.encode(payment_hash),
            };
            let answer = self
                .lnd
                .post_json::<_, CancelInvoiceResponse>("/v2/invoices/cancel", &body)
                .await;
            let cancelled = match answer {
                Ok(CancelInvoiceResponse {}) => Cancelled::Cancelled,
                Err(WalletError::Status { message, .. }) if message.contains(INVOICE_SETTLED) => {
                    Cancelled::AlreadyPaid
                }
                Err(WalletError::Status { message, .. }) if message.contains(INVOICE_NOT_FOUND) => {
                    Cancelled::Unknown
                }
                // LND before 0.15 refused to cancel twice.
                Err(WalletError::Status { message, .. }) if message.contains(INVOICE_CANCELED) => {
                    Cancelled::Cancelled
                }
                Err(err) => return Err(node_error(err)),
            };
            tracing::debug!(
                payment_hash = %payment_hash.to_lower_hex_string(),
                ?cancelled,
                "LND cancel invoice"
            );
            Ok(cancelled)
        })
    }

    /// [`LndWallet::send_payment`]: `POST /v2/router/send` with `payment_request`,
    /// `fee_limit_msat`, `timeout_seconds` and `no_inflight_updates`, reading the update stream
    /// for at most `wait`. The invoice is decoded first ([`NodeError::Refused`] if it is not
    /// BOLT11) so a `SUCCEEDED` preimage is checked against its payment hash. LND's refusals
    /// (409 `invoice is already paid`, `payment is in transition`, …) are
    /// [`NodeError::Status`]: track the payment then.
    fn send_payment<'a>(
        &'a self,
        request: PaymentRequest<'a>,
        wait: Duration,
    ) -> NodeFuture<'a, PaymentStatus> {
        Box::pin(async move {
            self.lnd
                .send_payment(
                    request.invoice,
                    request.max_fee_msat,
                    request.timeout_secs,
                    wait,
                )
                .await
                .map(payment_status)
                .map_err(node_error)
        })
    }

    /// [`LndWallet::track_payment`]: `GET /v2/router/track/{payment_hash}` (URL-safe base64)
    /// with `no_inflight_updates=true`, reading the update stream for at most `wait`; a zero
    /// `wait` asks for the state now (`no_inflight_updates=false`, LND's first update). `None`
    /// only for LND's `payment isn't initiated` (gRPC `NotFound`, 404).
    fn track_payment<'a>(
        &'a self,
        payment_hash: &'a [u8; 32],
        wait: Duration,
    ) -> NodeFuture<'a, Option<PaymentStatus>> {
        Box::pin(async move {
            self.lnd
                .track_payment(payment_hash, wait)
                .await
                .map(|outcome| outcome.map(payment_status))
                .map_err(node_error)
        })
    }
}

/// The wallet's error as the node's: the same cases.
fn node_error(err: WalletError) -> NodeError {
    match err {
        WalletError::Timeout(millis) => NodeError::Timeout(millis),
        WalletError::Unreachable(detail) => NodeError::Unreachable(detail),
        WalletError::Status { status, message } => NodeError::Status { status, message },
        WalletError::Garbage(detail) => NodeError::Garbage(detail),
        WalletError::Refused(detail) => NodeError::Refused(detail),
    }
}

/// The wallet's payment outcome as the node's payment status.
fn payment_status(outcome: PaymentOutcome) -> PaymentStatus {
    match outcome {
        PaymentOutcome::Paid { preimage, fee_msat } => {
            PaymentStatus::Succeeded { preimage, fee_msat }
        }
        PaymentOutcome::InFlight => PaymentStatus::InFlight,
        PaymentOutcome::Failed { reason } => PaymentStatus::Failed { reason },
    }
}

/// LND's names of the bitcoin networks whose invoices are `network`'s.
fn lnd_networks(network: Network) -> &'static [&'static str] {
    match network {
        Network::Bitcoin => &["mainnet"],
        // testnet3 and testnet4 invoices are both `lntb…`.
        Network::Testnet => &["testnet", "testnet4"],
        Network::Signet => &["signet"],
        Network::Regtest => &["regtest"],
    }
}

/// `GET /v1/getinfo` (`lnrpc.GetInfoResponse`), the fields used.
#[derive(Deserialize)]
struct GetInfo {
    identity_pubkey: String,
    #[serde(default)]
    chains: Vec<Chain>,
}

#[derive(Deserialize)]
struct Chain {
    chain: String,
    network: String,
}

impl GetInfo {
    fn into_identity(self) -> Result<Identity, NodeError> {
        // `PublicKey::from_str` also takes 130-character uncompressed keys; LND sends 66.
        let node_id = Some(&self.identity_pubkey)
            .filter(|key| key.len() == 66)
            .and_then(|key| PublicKey::from_str(key).ok())
            .ok_or_else(|| NodeError::Garbage("identity_pubkey is not a public key".to_owned()))?;
        let network = self
            .chains
            .into_iter()
            .find(|chain| chain.chain == "bitcoin")
            .map(|chain| chain.network)
            .ok_or_else(|| NodeError::Garbage("getinfo names no bitcoin chain".to_owned()))?;
        Ok(Identity { node_id, network })
    }
}

/// `POST /v1/invoices` (`lnrpc.Invoice`), the fields sent: int64 as decimal strings, bytes as
/// standard base64, as LND's REST gateway documents.
#[derive(Serialize)]
struct AddInvoice {
    value_msat: String,
    /// BOLT11 `d`.
    #[serde(skip_serializing_if = "Option::is_none")]
    memo: Option<String>,
    /// BOLT11 `h`.
    #[serde(skip_serializing_if = "Option::is_none")]
    description_hash: Option<String>,
    expiry: String,
}

/// `lnrpc.AddInvoiceResponse`, the fields used.
#[derive(Deserialize)]
struct AddInvoiceResponse {
    payment_request: String,
    #[serde(default)]
    r_hash: Option<String>,
}

/// `GET /v1/invoice/{r_hash_str}` (`lnrpc.Invoice`), the fields used.
#[derive(Deserialize)]
struct LookupInvoice {
    #[serde(default)]
    r_hash: Option<String>,
    /// Empty for a hold invoice until it is settled.
    #[serde(default)]
    r_preimage: Option<String>,
    amt_paid_msat: String,
    state: String,
}

impl LookupInvoice {
    fn into_lookup(self, payment_hash: &[u8; 32]) -> Result<InvoiceLookup, NodeError> {
        let garbage = |what: &str| NodeError::Garbage(format!("LookupInvoice: {what}"));
        let state = match self.state.as_str() {
            "OPEN" => InvoiceState::Open,
            "ACCEPTED" => InvoiceState::Accepted,
            "SETTLED" => InvoiceState::Settled,
            "CANCELED" => InvoiceState::Canceled,
            _ => return Err(garbage("an unknown state")),
        };
        if let Some(r_hash) = self.r_hash.as_deref().filter(|text| !text.is_empty())
            && BASE64.decode(r_hash).ok().as_deref() != Some(&payment_hash[..])
        {
            return Err(garbage("r_hash is another invoice's"));
        }
        let preimage = match self.r_preimage.as_deref() {
            None | Some("") => None,
            Some(text) => {
                let preimage = BASE64
                    .decode(text)
                    .ok()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                    .ok_or_else(|| garbage("r_preimage is not 32 bytes of base64"))?;
                if sha256::Hash::hash(&preimage).to_byte_array() != *payment_hash {
                    return Err(garbage("r_preimage does not hash to the payment hash"));
                }
                Some(preimage)
            }
        };
        let amount_paid_msat = self
            .amt_paid_msat
            .parse()
            .map_err(|_| garbage("amt_paid_msat is not an unsigned int64 string"))?;
        Ok(InvoiceLookup {
            state,
            preimage,
            amount_paid_msat,
        })
    }
}

/// `POST /v2/invoices/cancel` (`invoicesrpc.CancelInvoiceMsg`).
#[derive(Serialize)]
struct CancelInvoice {
    payment_hash: String,
}

/// `invoicesrpc.CancelInvoiceResp`: an empty object.
#[derive(Deserialize)]
struct CancelInvoiceResponse {}
