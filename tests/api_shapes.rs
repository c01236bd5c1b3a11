//! One shape for one thing in the public API: builder methods that take strings take
//! `impl Into<String>` (a `&str`, a `String` or a `&String` alike), the v2 requirements' `extra`
//! reads through typed accessors as the v1 one has fields, and a client policy that refuses a
//! network says how to allow it.

use serde_json::json;
use x402_lightning::lnbtc::client::{ClientPolicy, IntendedRequest, select};
use x402_lightning::lnbtc::types::{
    LnbtcExtra, PaymentRequired, PaymentRequirements, ResourceInfo,
};
use x402_lightning::mock::MockFacilitator;
use x402_lightning::{HttpFacilitator, Network, Price, X402Layer};

#[test]
#[allow(
    clippy::needless_borrows_for_generic_args,
    reason = "the point is that a &String is taken as well"
)]
fn builder_strings_take_str_string_and_string_references_alike() {
    let owned = String::from("http://127.0.0.1:4021");
    let key = String::from("my-api-key");
    for facilitator in [
        HttpFacilitator::builder("http://127.0.0.1:4021")
            .bearer_token("my-api-key")
            .header("x-tenant", "acme"),
        HttpFacilitator::builder(owned.clone())
            .bearer_token(key.clone())
            .header(String::from("x-tenant"), String::from("acme")),
        HttpFacilitator::builder(&owned)
            .bearer_token(&key)
            .header(&String::from("x-tenant"), &String::from("acme")),
    ] {
        assert!(facilitator.build().is_ok());
    }
    let route = String::from("GET /weather");
    let layer = X402Layer::builder(MockFacilitator::new(), Network::Regtest)
        .public_base_url(String::from("https://api.example.com"))
        .route(route, Price::sats(10))
        .route(&String::from("GET /forecast"), Price::sats(10))
        .build();
    assert!(layer.is_ok());
    let mock = MockFacilitator::builder()
        .require_bearer_token(String::from("secret"))
        .build();
    assert_eq!(mock.network(), Network::Regtest);
}

fn requirements(network: Network) -> PaymentRequirements {
    PaymentRequirements::lnbtc(
        network,
        10_000,
        "02".repeat(33),
        60,
        LnbtcExtra {
            invoice: "lnbcrt1...".to_owned(),
            request_hash: "ab".repeat(32),
            request_binding_profile: "http:1".to_owned(),
            request_binding_params: json!({ "headers": ["content-type"] }),
        },
    )
}

#[test]
fn the_v2_extra_reads_through_typed_accessors() {
    let offer = requirements(Network::Regtest);
    assert_eq!(offer.invoice(), Some("lnbcrt1..."));
    assert_eq!(offer.request_hash(), Some("ab".repeat(32).as_str()));
    assert_eq!(offer.request_binding_profile(), Some("http:1"));
    assert_eq!(
        offer.request_binding_params(),
        Some(&json!({ "headers": ["content-type"] }))
    );
    assert_eq!(offer.asset_transfer_method(), Some("bolt11"));
    assert_eq!(offer.payment_flow(), Some("upfront"));
    let extra = offer.lnbtc_extra().expect("the scheme's members");
    assert_eq!(extra.request_binding_profile, "http:1");
    assert_eq!(requirements(Network::Regtest).lnbtc_extra(), Some(extra));

    let mut bare = offer;
    bare.extra.remove("requestHash");
    assert_eq!(bare.request_hash(), None);
    assert_eq!(bare.lnbtc_extra(), None, "a member missing: no typed view");
}

#[test]
fn a_client_policy_refusing_a_network_says_how_to_allow_it() {
    let required = PaymentRequired {
        x402_version: 2,
        error: None,
        resource: ResourceInfo {
            url: "http://127.0.0.1:3000/weather".to_owned(),
            description: None,
            mime_type: None,
        },
        accepts: vec![requirements(Network::Regtest)],
        extensions: None,
    };
    let intended = IntendedRequest::Http {
        method: "GET",
        url: "http://127.0.0.1:3000/weather",
        body: b"",
        header_lines: &[],
    };
    let err =
        select(&required, &intended, &ClientPolicy::default(), 0).expect_err("regtest is opt-in");
    assert_eq!(err.reason, "unsupported_network");
    assert!(
        err.detail
            .contains("allow it with ClientPolicy::allow(Network::Regtest)"),
        "{err}"
    );
    assert!(err.detail.contains("lightning, lightning-testnet"), "{err}");
    let allowed = ClientPolicy::default().allow(Network::Regtest);
    assert!(allowed.networks.contains(&Network::Regtest));
    assert_eq!(
        allowed.clone().allow(Network::Regtest).networks.len(),
        allowed.networks.len(),
        "allowing twice lists it once"
    );
}
