#![cfg(feature = "nwc")]
//! `NwcWallet` against a local Nostr relay and a simulated NIP-47 wallet service that pays
//! through the mock facilitator's `POST /pay`, so every preimage is an invoice's real one.

mod nwc_support;

use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;

use x402_lightning::Network;
use x402_lightning::client::wallet::{NwcUriError, NwcWallet, PaymentOutcome, Wallet, WalletError};
use x402_lightning::lnbtc::invoice::decode;
use x402_lightning::mock::MockFacilitator;
use x402_lightning::receiver::{InvoiceRequest, Receiver as _};

use self::nwc_support::{FEE_MSAT, LocalRelay, Mode, WalletService};

const AMOUNT_MSAT: u64 = 21_000;
/// NIP-47's example connection: a wallet service key and a client secret.
const WALLET_KEY: &str = "b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4";
const SECRET: &str = "71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c";
const MAX_FEE_MSAT: u64 = 5_000;

/// Long enough for a loopback round trip on a busy 2-core machine, short enough for a test.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// A mock facilitator (the payee and the Lightning network), a relay, a wallet service on it
/// answering as `mode`, and a client wallet with the service's URI.
struct Setup {
    mock: MockFacilitator,
    // Held for the test's length: the relay stops when dropped.
    _relay: LocalRelay,
    service: WalletService,
    wallet: NwcWallet,
}

async fn setup(mode: Mode) -> Setup {
    let mock = MockFacilitator::start().await.expect("the mock starts");
    let relay = LocalRelay::start().await;
    let service = WalletService::start(&relay.url, format!("{}/pay", mock.url()), mode).await;
    let wallet = NwcWallet::parse(&service.uri)
        .expect("the simulator's URI parses")
        .with_timeout(ANSWER_TIMEOUT);
    Setup {
        mock,
        _relay: relay,
        service,
        wallet,
    }
}

/// A fresh invoice of the mock's node, which its `/pay` can pay.
async fn invoice(mock: &MockFacilitator) -> String {
    let request = InvoiceRequest {
        network: Network::Regtest,
        amount_msat: AMOUNT_MSAT,
        description_hash: None,
        expiry_secs: 600,
        resource: "http://localhost/weather".into(),
        description: "weather".into(),
        mime_type: "application/json".into(),
    };
    mock.create_invoice(&request).await.expect("the mock mints")
}

fn payment_hash(invoice: &str) -> [u8; 32] {
    decode(invoice)
        .expect("the mock's invoice decodes")
        .payment_hash
}

#[tokio::test]
async fn pays_through_the_wallet_service_and_returns_the_real_preimage_and_fee() {
    let mut s = setup(Mode::Pay).await;
    let invoice = invoice(&s.mock).await;

    let outcome = s
        .wallet
        .pay(&invoice, MAX_FEE_MSAT)
        .await
        .expect("an outcome");

    let PaymentOutcome::Paid { preimage, fee_msat } = outcome else {
        panic!("expected Paid, got {outcome:?}");
    };
    assert!(decode(&invoice).expect("decodes").is_paid_by(&preimage));
    assert_eq!(fee_msat, FEE_MSAT);
    assert!(
        s.mock.is_paid(&invoice),
        "the mock's network saw the payment"
    );
    assert_eq!(s.service.next_request().await, "pay_invoice");
}

#[tokio::test]
async fn payment_failed_is_a_failed_outcome_and_nothing_is_paid() {
    let s = setup(Mode::Refuse("PAYMENT_FAILED")).await;
    let invoice = invoice(&s.mock).await;

    let outcome = s
        .wallet
        .pay(&invoice, MAX_FEE_MSAT)
        .await
        .expect("an outcome");

    let PaymentOutcome::Failed { reason } = outcome else {
        panic!("expected Failed, got {outcome:?}");
    };
    assert!(reason.starts_with("PAYMENT_FAILED"), "{reason}");
    assert!(!s.mock.is_paid(&invoice));
}

#[tokio::test]
async fn an_error_code_unknown_to_the_nostr_crate_is_still_read() {
    // NIP-47 lists UNSUPPORTED_ENCRYPTION; nostr 0.44 does not, and fails to parse the response.
    let s = setup(Mode::Refuse("UNSUPPORTED_ENCRYPTION")).await;
    let invoice = invoice(&s.mock).await;

    let outcome = s
        .wallet
        .pay(&invoice, MAX_FEE_MSAT)
        .await
        .expect("an outcome");

    assert!(
        matches!(&outcome, PaymentOutcome::Failed { reason } if reason.starts_with("UNSUPPORTED_ENCRYPTION")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn an_internal_error_says_nothing_about_the_payment() {
    let s = setup(Mode::Refuse("INTERNAL")).await;
    let invoice = invoice(&s.mock).await;

    let err = s
        .wallet
        .pay(&invoice, MAX_FEE_MSAT)
        .await
        .expect_err("not an outcome");

    assert!(
        matches!(&err, WalletError::Status { status: 0, message } if message.starts_with("INTERNAL")),
        "{err:?}"
    );
}

#[tokio::test]
async fn no_answer_within_the_timeout_is_a_timeout_error_not_a_verdict() {
    let mut s = setup(Mode::Silent).await;
    let wallet = s.wallet.with_timeout(Duration::from_millis(500));
    let invoice = invoice(&s.mock).await;

    let err = wallet
        .pay(&invoice, MAX_FEE_MSAT)
        .await
        .expect_err("silence is no outcome");

    assert!(matches!(err, WalletError::Timeout(500)), "{err:?}");
    // The request did reach the service: silence after delivery is still unknowable.
    assert_eq!(s.service.next_request().await, "pay_invoice");
    assert!(!s.mock.is_paid(&invoice));
}

#[tokio::test]
async fn a_wrong_preimage_is_garbage() {
    let s = setup(Mode::WrongPreimage).await;
    let invoice = invoice(&s.mock).await;

    let err = s
        .wallet
        .pay(&invoice, MAX_FEE_MSAT)
        .await
        .expect_err("a wrong preimage is no payment");

    assert!(
        matches!(&err, WalletError::Garbage(why) if why.contains("does not hash")),
        "{err:?}"
    );
}

#[tokio::test]
async fn track_of_a_paid_invoice_returns_its_preimage_and_fee() {
    let mut s = setup(Mode::Pay).await;
    let invoice = invoice(&s.mock).await;
    let hash = payment_hash(&invoice);
    let PaymentOutcome::Paid { preimage, .. } = s
        .wallet
        .pay(&invoice, MAX_FEE_MSAT)
        .await
        .expect("an outcome")
    else {
        panic!("the payment went through");
    };

    let tracked = s.wallet.track(&hash).await.expect("an answer");

    assert_eq!(
        tracked,
        Some(PaymentOutcome::Paid {
            preimage,
            fee_msat: FEE_MSAT
        })
    );
    assert_eq!(s.service.next_request().await, "pay_invoice");
    assert_eq!(s.service.next_request().await, "lookup_invoice");

    // A payment hash the wallet service never paid: NOT_FOUND.
    let unknown = payment_hash(&self::invoice(&s.mock).await);
    assert_eq!(s.wallet.track(&unknown).await.expect("an answer"), None);
}

#[tokio::test]
async fn a_wss_relay_gets_a_tls_handshake() {
    // nwc 0.44 compiles rustls' ring provider in next to aws-lc-rs: without a process default,
    // rustls would panic before the first TLS byte. A bare TCP listener sees the ClientHello.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let port = listener.local_addr().expect("an address").port();
    let uri = format!(
        "nostr+walletconnect://{WALLET_KEY}?relay=wss%3A%2F%2F127.0.0.1%3A{port}&secret={SECRET}"
    );
    let wallet = NwcWallet::parse(&uri)
        .expect("parses")
        .with_timeout(Duration::from_millis(300));
    let mock = MockFacilitator::start().await.expect("the mock starts");
    let invoice = invoice(&mock).await;
    let paying = tokio::spawn(async move { wallet.pay(&invoice, MAX_FEE_MSAT).await });

    let (mut relay, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("the wallet connects in time")
        .expect("accepts");
    let mut first = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(5), relay.read_exact(&mut first))
        .await
        .expect("the wallet speaks in time")
        .expect("reads");
    assert_eq!(first[0], 0x16, "a TLS handshake record");
    drop(relay);

    let err = paying
        .await
        .expect("no panic")
        .expect_err("no relay, no outcome");
    assert!(
        matches!(err, WalletError::Timeout(_) | WalletError::Unreachable(_)),
        "{err:?}"
    );
}

#[test]
fn a_bad_uri_is_refused_with_a_clear_error_and_debug_hides_the_secret() {
    const KEY: &str = WALLET_KEY;
    let relay = "wss%3A%2F%2Frelay.example.com";

    let cases = [
        (
            format!("https://{KEY}?relay={relay}&secret={SECRET}"),
            NwcUriError::Scheme,
        ),
        (
            format!("nostr+walletconnect://abc?relay={relay}&secret={SECRET}"),
            NwcUriError::WalletKey,
        ),
        (
            format!("nostr+walletconnect://{KEY}?secret={SECRET}"),
            NwcUriError::NoRelay,
        ),
        (
            format!(
                "nostr+walletconnect://{KEY}?relay={relay}&relay=https%3A%2F%2Fx&secret={SECRET}"
            ),
            NwcUriError::Relay { position: 2 },
        ),
        (
            format!("nostr+walletconnect://{KEY}?relay={relay}"),
            NwcUriError::NoSecret,
        ),
        (
            format!(
                "nostr+walletconnect://{KEY}?relay={relay}&secret=zz{}",
                &SECRET[2..]
            ),
            NwcUriError::Secret,
        ),
    ];
    for (uri, expected) in cases {
        let err = uri.parse::<NwcWallet>().expect_err("refused");
        assert_eq!(err, expected, "{uri}");
        let message = err.to_string();
        assert!(
            !message.contains(&SECRET[2..]),
            "the error repeats the secret: {message}"
        );
    }
    assert_eq!(
        NwcUriError::NoSecret.to_string(),
        "no `secret=` parameter: the URI must carry the connection secret"
    );

    let wallet: NwcWallet = format!(" nostr+walletconnect://{KEY}?relay={relay}&secret={SECRET}\n")
        .parse()
        .expect("a good URI parses");
    let debug = format!("{wallet:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(
        debug.contains("<redacted>") && debug.contains(KEY),
        "{debug}"
    );
    assert_eq!(wallet.timeout(), NwcWallet::DEFAULT_TIMEOUT);
}
