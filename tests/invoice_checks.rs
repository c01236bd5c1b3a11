//! Invoice pre-checks on real signed invoices: each failure has its own typed reason.

use std::time::Duration;

use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
use x402_lightning::invoice::{
    InvoiceCheckError, InvoiceExpectation, check_invoice, check_requirements_invoice,
    parse_node_id, unix_now,
};
use x402_lightning::mock::{InvoiceSpec, MockNode};
use x402_lightning::types::{LightningExtra, reason};
use x402_lightning::{Network, PaymentRequirements, Scheme};

const AMOUNT: u64 = 250_000;

/// The time the checks run at, and invoices are created at unless said otherwise: the checks
/// take `now`, so no result depends on the real clock or on how fast a test runs.
const NOW: Duration = Duration::from_secs(1_700_000_000);

/// An invoice on `network` for `amount_msat`, created at [`NOW`], valid for an hour.
fn spec(network: Network, amount_msat: u64) -> InvoiceSpec {
    InvoiceSpec {
        created_at: NOW,
        ..InvoiceSpec::new(network, amount_msat)
    }
}

fn mint(node: &MockNode, network: Network, amount_msat: u64) -> String {
    node.mint(&spec(network, amount_msat))
        .expect("mints")
        .invoice
        .to_string()
}

fn expect_regtest(node: &MockNode) -> InvoiceExpectation {
    InvoiceExpectation::new(Network::Regtest)
        .amount_msat(AMOUNT)
        .payee(node.node_id())
}

#[test]
fn a_matching_invoice_passes_and_reports_its_facts() {
    let node = MockNode::random();
    let minted = node.mint(&spec(Network::Regtest, AMOUNT)).unwrap();
    let text = minted.invoice.to_string();

    let checked = check_invoice(&text, &expect_regtest(&node), NOW).expect("passes");
    assert_eq!(checked.amount_msat(), AMOUNT);
    assert_eq!(checked.payee(), node.node_id());
    assert_eq!(
        checked.payment_hash(),
        sha256::Hash::hash(&minted.preimage).to_byte_array(),
        "the payment hash commits to the preimage"
    );
    assert_eq!(checked.payment_hash_hex().len(), 64);
    assert_eq!(checked.expires_at(), NOW + Duration::from_secs(3600));
}

#[test]
fn loose_expectations_accept_any_amount_and_payee() {
    let text = mint(&MockNode::random(), Network::Bitcoin, 1);
    let checked = check_invoice(&text, &InvoiceExpectation::new(Network::Bitcoin), NOW).unwrap();
    assert_eq!(checked.amount_msat(), 1);
}

#[test]
fn garbage_and_tampered_invoices_are_unparsable() {
    let node = MockNode::random();
    let text = mint(&node, Network::Regtest, AMOUNT);
    let mut tampered = text.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'q' { b'p' } else { b'q' };
    let tampered = String::from_utf8(tampered).unwrap();

    for bad in [
        "",
        "hello",
        "lnbcrt1",
        &text[..text.len() - 10],
        &tampered,
        &text.to_uppercase().replacen('L', "l", 1),
    ] {
        let err = check_invoice(bad, &expect_regtest(&node), NOW).unwrap_err();
        assert!(
            matches!(err, InvoiceCheckError::Unparsable(_)),
            "{bad:?}: {err}"
        );
        assert_eq!(err.reason(), reason::INVALID_PAYLOAD);
    }
}

#[test]
fn an_invoice_on_another_network_is_wrong_network() {
    let node = MockNode::random();
    for network in [Network::Bitcoin, Network::Testnet, Network::Signet] {
        let text = mint(&node, network, AMOUNT);
        let err = check_invoice(&text, &expect_regtest(&node), NOW).unwrap_err();
        assert_eq!(
            err,
            InvoiceCheckError::WrongNetwork {
                expected: Network::Regtest,
                found: network
            }
        );
        assert_eq!(err.reason(), reason::INVALID_NETWORK);
        assert!(err.to_string().contains(network.as_str()), "{err}");
    }
}

#[test]
fn an_invoice_for_another_amount_is_wrong_amount() {
    let node = MockNode::random();
    for amount in [AMOUNT - 1, AMOUNT + 1, AMOUNT * 10] {
        let text = mint(&node, Network::Regtest, amount);
        let err = check_invoice(&text, &expect_regtest(&node), NOW).unwrap_err();
        assert_eq!(
            err,
            InvoiceCheckError::WrongAmount {
                expected: AMOUNT,
                found: amount
            }
        );
        assert_eq!(err.reason(), reason::INVOICE_AMOUNT);
    }
}

#[test]
fn an_invoice_without_amount_is_missing_amount() {
    let secp = Secp256k1::new();
    let key = SecretKey::from_slice(&[7u8; 32]).unwrap();
    let text = InvoiceBuilder::new(Currency::Regtest)
        .description("any amount".into())
        .payment_hash(sha256::Hash::hash(b"preimage"))
        .payment_secret(PaymentSecret([1u8; 32]))
        .duration_since_epoch(NOW)
        .min_final_cltv_expiry_delta(18)
        .build_signed(|message| secp.sign_ecdsa_recoverable(message, &key))
        .unwrap()
        .to_string();
    let err = check_invoice(&text, &InvoiceExpectation::new(Network::Regtest), NOW).unwrap_err();
    assert_eq!(err, InvoiceCheckError::MissingAmount);
    assert_eq!(err.reason(), reason::INVOICE_AMOUNT);
}

#[test]
fn an_invoice_for_another_payee_is_wrong_payee() {
    let node = MockNode::random();
    let impostor = MockNode::random();
    let text = mint(&impostor, Network::Regtest, AMOUNT);
    let err = check_invoice(&text, &expect_regtest(&node), NOW).unwrap_err();
    assert_eq!(
        err,
        InvoiceCheckError::WrongPayee {
            expected: node.pay_to().to_string(),
            found: impostor.pay_to().to_string()
        }
    );
    assert_eq!(err.reason(), reason::INVOICE_PAYEE);
}

/// A regtest invoice for `AMOUNT` created at [`NOW`] (unix time 1,700,000,000) and payable for
/// 60 s.
fn one_minute_invoice(node: &MockNode) -> String {
    let spec = InvoiceSpec {
        expiry: Duration::from_secs(60),
        ..spec(Network::Regtest, AMOUNT)
    };
    node.mint(&spec).unwrap().invoice.to_string()
}

#[test]
fn an_invoice_is_expired_from_its_expiry_on() {
    let node = MockNode::random();
    let text = one_minute_invoice(&node);
    let expires_at = Duration::from_secs(1_700_000_060);

    let before = expires_at - Duration::from_millis(1);
    assert!(check_invoice(&text, &expect_regtest(&node), before).is_ok());
    for at_or_after in [expires_at, expires_at + Duration::from_secs(3600)] {
        let err = check_invoice(&text, &expect_regtest(&node), at_or_after).unwrap_err();
        assert_eq!(
            err,
            InvoiceCheckError::Expired {
                expired_at: 1_700_000_060
            }
        );
        assert_eq!(err.reason(), reason::PAYMENT_EXPIRED);
    }
    // `unix_now` is wall-clock time since the epoch: by it, an invoice from 2023 is long gone.
    assert!(check_invoice(&text, &expect_regtest(&node), unix_now()).is_err());
}

#[test]
fn checks_run_in_a_fixed_order_network_first() {
    // Wrong network, amount and payee at once, and expired: the network is reported.
    let node = MockNode::random();
    let long_ago = InvoiceSpec {
        created_at: Duration::from_secs(1_000_000_000),
        ..spec(Network::Testnet, 1)
    };
    let text = MockNode::random()
        .mint(&long_ago)
        .unwrap()
        .invoice
        .to_string();
    let err = check_invoice(&text, &expect_regtest(&node), NOW).unwrap_err();
    assert!(
        matches!(err, InvoiceCheckError::WrongNetwork { .. }),
        "{err}"
    );
}

fn requirements_for(node: &MockNode, invoice: String, amount: u64) -> PaymentRequirements {
    PaymentRequirements {
        scheme: Scheme::Exact,
        network: Network::Regtest,
        max_amount_required: amount,
        asset: "BTC".into(),
        pay_to: node.pay_to().to_string(),
        resource: "http://127.0.0.1/weather".into(),
        description: String::new(),
        mime_type: "application/json".into(),
        output_schema: None,
        max_timeout_seconds: 60,
        extra: LightningExtra::new(invoice),
    }
}

#[test]
fn requirements_are_checked_against_their_own_invoice() {
    let node = MockNode::random();
    let invoice = mint(&node, Network::Regtest, AMOUNT);
    let consistent = requirements_for(&node, invoice.clone(), AMOUNT);
    assert!(check_requirements_invoice(&consistent, NOW).is_ok());

    let cheaper = requirements_for(&node, invoice.clone(), AMOUNT - 1);
    assert!(matches!(
        check_requirements_invoice(&cheaper, NOW),
        Err(InvoiceCheckError::WrongAmount { .. })
    ));

    let mut elsewhere = consistent.clone();
    elsewhere.network = Network::Testnet;
    assert!(matches!(
        check_requirements_invoice(&elsewhere, NOW),
        Err(InvoiceCheckError::WrongNetwork { .. })
    ));

    let mut other_payee = consistent.clone();
    other_payee.pay_to = MockNode::random().pay_to().to_string();
    assert!(matches!(
        check_requirements_invoice(&other_payee, NOW),
        Err(InvoiceCheckError::WrongPayee { .. })
    ));

    let mut bad_pay_to = consistent;
    bad_pay_to.pay_to = "03abc".into();
    let err = check_requirements_invoice(&bad_pay_to, NOW).unwrap_err();
    assert_eq!(err, InvoiceCheckError::InvalidPayTo("03abc".into()));
}

#[test]
fn an_answer_decoded_once_is_judged_as_the_parsed_answer_is() {
    use x402_lightning::RequirementsRequest;
    use x402_lightning::invoice::{check_decoded_requirements_answer, check_requirements_answer};
    let node = MockNode::random();
    let invoice = mint(&node, Network::Regtest, AMOUNT);
    let decoded = x402_lightning::lnbtc::invoice::decode(&invoice).expect("decodes strictly");
    let asked = RequirementsRequest::new(Network::Regtest, AMOUNT, "http://127.0.0.1/weather");
    let consistent = requirements_for(&node, invoice, AMOUNT);
    let mut answers = vec![consistent.clone()];
    for pay_to in [
        node.pay_to().to_string().to_ascii_uppercase(),
        MockNode::random().pay_to().to_string(),
        "03abc".to_owned(),
        format!("{}zz", &node.pay_to().to_string()[..64]),
    ] {
        let mut answer = consistent.clone();
        answer.pay_to = pay_to;
        answers.push(answer);
    }
    let mut cheaper = consistent.clone();
    cheaper.max_amount_required -= 1;
    answers.push(cheaper);
    let pins = [
        None,
        Some(node.node_id()),
        Some(MockNode::random().node_id()),
    ];
    for answer in &answers {
        for pinned in &pins {
            assert_eq!(
                check_decoded_requirements_answer(&asked, answer, &decoded, pinned.as_ref(), NOW),
                check_requirements_answer(&asked, answer, pinned.as_ref(), NOW),
                "payTo {} pinned {pinned:?}",
                answer.pay_to
            );
        }
    }
}

#[test]
fn node_ids_are_exactly_66_hex_characters_of_a_valid_key() {
    let node = MockNode::random();
    assert_eq!(
        parse_node_id(&node.pay_to().to_string()),
        Ok(node.node_id())
    );
    let uncompressed = node.node_id().serialize_uncompressed();
    let uncompressed: String = uncompressed.iter().map(|b| format!("{b:02x}")).collect();
    for bad in [
        String::new(),
        "02".into(),
        uncompressed,
        format!("04{}", &node.pay_to().to_string()[2..]),
        "zz".repeat(33),
        format!(" {}", &node.pay_to().to_string()[1..]),
    ] {
        assert!(
            matches!(parse_node_id(&bad), Err(InvoiceCheckError::InvalidPayTo(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn long_descriptions_are_minted_as_a_description_hash() {
    let node = MockNode::random();
    let long = InvoiceSpec {
        description: "x".repeat(640),
        ..spec(Network::Regtest, AMOUNT)
    };
    let invoice = node.mint(&long).unwrap().invoice;
    assert!(matches!(
        invoice.description(),
        lightning_invoice::Bolt11InvoiceDescriptionRef::Hash(_)
    ));
    let short = node
        .mint(&InvoiceSpec {
            description: "Weather".into(),
            ..spec(Network::Regtest, AMOUNT)
        })
        .unwrap()
        .invoice;
    assert_eq!(
        short.description().to_string(),
        "Weather",
        "short descriptions stay direct"
    );
}

#[test]
fn an_absurdly_distant_expiry_is_clamped_to_a_safe_time() {
    let node = MockNode::random();
    let forever = InvoiceSpec {
        expiry: Duration::from_secs(1 << 60),
        ..spec(Network::Regtest, AMOUNT)
    };
    let text = node.mint(&forever).unwrap().invoice.to_string();
    let checked = check_invoice(&text, &expect_regtest(&node), NOW).unwrap();
    assert_eq!(checked.expires_at(), Duration::from_secs(253_402_300_799));
    // Safe to turn into a wall-clock time.
    let _ = std::time::UNIX_EPOCH + checked.expires_at();
    assert!(checked.remaining(NOW) > Duration::from_secs(3600 * 24 * 365));
}

#[test]
fn remaining_time_counts_down_to_zero() {
    let node = MockNode::random();
    let text = one_minute_invoice(&node);
    let at = Duration::from_secs(1_700_000_010);
    let checked = check_invoice(&text, &expect_regtest(&node), at).unwrap();
    assert_eq!(checked.remaining(at), Duration::from_secs(50));
    assert_eq!(
        checked.remaining(Duration::from_secs(1_800_000_000)),
        Duration::ZERO
    );
}
