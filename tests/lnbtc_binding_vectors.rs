//! The upstream request-binding vectors (`exact_lnbtc.json`, groups `http_binding`,
//! `http_server_adapter` and `mcp_binding`), one test per vector. Their figures are copied into
//! `tests/fixtures/lnbtc/` without the upstream prose; where a vector leaves a question open,
//! the fixture keeps only the outcome this crate chose (`chosen_outcome`).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;
use x402_lightning::lnbtc::binding::{
    Binding, BindingError, BoundHeaders, PublicOrigin, http_binding, mcp_binding,
    server_http_binding,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture<I> {
    #[serde(rename = "source")]
    _source: String,
    cases: Vec<Case<I>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case<I> {
    id: String,
    #[serde(default)]
    config: Option<AdapterConfig>,
    input: I,
    expect: Expect,
}

/// What a vector expects: a hash (and maybe the description), or an error reason.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    request_hash: Option<String>,
    canonical_description: Option<String>,
    error: Option<String>,
    forbidden_request_hash: Option<String>,
    /// The open question a vector belongs to, and the outcome chosen for it.
    open_question: Option<String>,
    chosen_outcome: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpInput {
    method: String,
    url: String,
    body_hex: String,
    bound_headers: Vec<String>,
    header_lines: Vec<(String, String)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdapterInput {
    method: String,
    url: String,
    body_hex: String,
    header_lines: Vec<(String, String)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdapterConfig {
    public_origin: String,
    bound_headers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct McpInput {
    server: String,
    bound_metadata: Vec<String>,
    /// The params as a JSON value, or as raw text (for what a value cannot hold).
    params: Option<Value>,
    params_json: Option<String>,
}

fn load<I: serde::de::DeserializeOwned>(group: &str, text: &str) -> Fixture<I> {
    match serde_json::from_str(text) {
        Ok(fixture) => fixture,
        Err(err) => panic!("fixture {group} does not parse: {err}"),
    }
}

static HTTP_BINDING: LazyLock<Fixture<HttpInput>> = LazyLock::new(|| {
    load(
        "http_binding",
        include_str!("fixtures/lnbtc/http_binding.json"),
    )
});
static HTTP_SERVER_ADAPTER: LazyLock<Fixture<AdapterInput>> = LazyLock::new(|| {
    load(
        "http_server_adapter",
        include_str!("fixtures/lnbtc/http_server_adapter.json"),
    )
});
static MCP_BINDING: LazyLock<Fixture<McpInput>> = LazyLock::new(|| {
    load(
        "mcp_binding",
        include_str!("fixtures/lnbtc/mcp_binding.json"),
    )
});

fn case<'a, I>(fixture: &'a Fixture<I>, group: &str, id: &str) -> &'a Case<I> {
    match fixture.cases.iter().find(|case| case.id == id) {
        Some(case) => case,
        None => panic!("{group}/{id}: no such vector in the fixture"),
    }
}

fn hex_bytes(id: &str, hex: &str) -> Vec<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("{id}: body_hex is not lowercase hex"),
    };
    assert!(hex.len() % 2 == 0, "{id}: body_hex has an odd length");
    hex.as_bytes()
        .chunks_exact(2)
        .map(|pair| (digit(pair[0]) << 4) | digit(pair[1]))
        .collect()
}

/// The header lines as the API takes them.
fn lines(header_lines: &[(String, String)]) -> Vec<(&str, &[u8])> {
    header_lines
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect()
}

/// The authority of an absolute URL: where the request was sent.
fn authority<'u>(id: &str, url: &'u str) -> &'u str {
    let Some((_, rest)) = url.split_once("://") else {
        panic!("{id}: the vector's URL is not absolute");
    };
    rest.split(['/', '?', '#']).next().unwrap_or_default()
}

/// Path and query of an absolute URL: the raw request target a server receives.
fn target(id: &str, url: &str) -> String {
    let after_scheme = match url.split_once("://") {
        Some((_, rest)) => rest,
        None => panic!("{id}: url {url:?} is not absolute"),
    };
    match after_scheme.find(['/', '?']) {
        Some(start) => after_scheme[start..].to_owned(),
        None => "/".to_owned(),
    }
}

/// Checks `result` against the vector's expectation, naming the vector on failure.
fn check(label: &str, expect: &Expect, result: Result<Binding, BindingError>) {
    assert_eq!(
        expect.open_question.is_some(),
        expect.chosen_outcome.is_some(),
        "{label}: an open question needs its chosen outcome"
    );
    if let (Some(forbidden), Ok(binding)) = (&expect.forbidden_request_hash, &result) {
        assert_ne!(
            &binding.request_hash.to_hex(),
            forbidden,
            "{label}: produced the forbidden request hash"
        );
    }
    match (&expect.error, &expect.request_hash) {
        (Some(reason), None) => match result {
            Err(err) => assert_eq!(err.reason(), reason, "{label}: wrong reason ({err})"),
            Ok(binding) => panic!("{label}: expected {reason}, bound {binding:?}"),
        },
        (None, Some(hash)) => match result {
            Ok(binding) => {
                if let Some(description) = &expect.canonical_description {
                    assert_eq!(
                        &binding.description, description,
                        "{label}: canonical description"
                    );
                }
                assert_eq!(
                    &binding.request_hash.to_hex(),
                    hash,
                    "{label}: request hash"
                );
            }
            Err(err) => panic!("{label}: expected hash {hash}, refused: {err}"),
        },
        _ => panic!("{label}: a vector expects exactly one of error and request_hash"),
    }
}

fn run_http_binding(id: &str) {
    let label = format!("http_binding/{id}");
    let case = case(&HTTP_BINDING, "http_binding", id);
    let input = &case.input;
    let result = BoundHeaders::new(input.bound_headers.iter().cloned()).and_then(|bound| {
        http_binding(
            &input.method,
            &input.url,
            &hex_bytes(&label, &input.body_hex),
            &bound,
            &lines(&input.header_lines),
        )
    });
    check(&label, &case.expect, result);
}

fn run_http_server_adapter(id: &str) {
    let label = format!("http_server_adapter/{id}");
    let case = case(&HTTP_SERVER_ADAPTER, "http_server_adapter", id);
    let Some(config) = &case.config else {
        panic!("{label}: an adapter vector needs its config");
    };
    let input = &case.input;
    let origin = match PublicOrigin::parse(&config.public_origin) {
        Ok(origin) => origin,
        Err(err) => panic!("{label}: configured origin refused: {err}"),
    };
    let result = BoundHeaders::new(config.bound_headers.iter().cloned()).and_then(|bound| {
        server_http_binding(
            &origin,
            &input.method,
            &target(&label, &input.url),
            Some(authority(&label, &input.url)),
            &hex_bytes(&label, &input.body_hex),
            &bound,
            &lines(&input.header_lines),
        )
    });
    check(&label, &case.expect, result);
}

fn run_mcp_binding(id: &str) {
    let label = format!("mcp_binding/{id}");
    let case = case(&MCP_BINDING, "mcp_binding", id);
    let input = &case.input;
    let params_json = match (&input.params, &input.params_json) {
        (Some(params), None) => params.to_string(),
        (None, Some(text)) => text.clone(),
        _ => panic!("{label}: a vector gives exactly one of params and params_json"),
    };
    let result = mcp_binding(&input.server, &input.bound_metadata, &params_json);
    check(&label, &case.expect, result);
}

/// One `#[test]` per vector id in `group`, each running that vector with `run`, plus
/// `all_vectors_have_a_test` comparing the fixture's ids with the generated tests.
macro_rules! vectors {
    ($group:ident, $fixture:ident, $run:ident, { $($name:ident => $id:literal,)+ }) => {
        mod $group {
            $(
                #[test]
                fn $name() {
                    super::$run($id);
                }
            )+

            #[test]
            fn all_vectors_have_a_test() {
                let tested: std::collections::BTreeSet<&str> = [$($id),+].into_iter().collect();
                super::same_ids(stringify!($group), &super::$fixture.cases, &tested);
            }
        }
    };
}

fn same_ids<I>(group: &str, cases: &[Case<I>], tested: &BTreeSet<&str>) {
    let in_fixture: BTreeSet<&str> = cases.iter().map(|case| case.id.as_str()).collect();
    assert_eq!(
        in_fixture.len(),
        cases.len(),
        "{group}: the fixture repeats an id"
    );
    let untested: Vec<_> = in_fixture.difference(tested).collect();
    let unknown: Vec<_> = tested.difference(&in_fixture).collect();
    assert!(
        untested.is_empty() && unknown.is_empty(),
        "{group}: vectors without a test {untested:?}, tests without a vector {unknown:?}"
    );
}

vectors!(http_binding, HTTP_BINDING, run_http_binding, {
    published_article_a => "published-article-a",
    published_article_b => "published-article-b",
    method_post => "method-post",
    method_case_preserved => "method-case-preserved",
    body_single_byte_78 => "body-single-byte-78",
    body_json_compact => "body-json-compact",
    body_json_spaced => "body-json-spaced",
    target_percent_lower => "target-percent-lower",
    target_percent_upper => "target-percent-upper",
    target_query_order_ab => "target-query-order-ab",
    target_query_order_ba => "target-query-order-ba",
    target_ipv6_authority => "target-ipv6-authority",
    header_bound_absent => "header-bound-absent",
    header_bound_empty => "header-bound-empty",
    header_repeated_lines => "header-repeated-lines",
    header_single_line_combined => "header-single-line-combined",
    header_two_bound_sorted => "header-two-bound-sorted",
    bound_name_uppercase => "bound-name-uppercase",
    bound_names_unsorted => "bound-names-unsorted",
    bound_names_duplicate => "bound-names-duplicate",
    bound_payment_signature => "bound-payment-signature",
    header_value_crlf => "header-value-crlf",
    header_value_non_ascii => "header-value-non-ascii",
    url_relative => "url-relative",
    url_userinfo => "url-userinfo",
    url_fragment => "url-fragment",
    url_bad_percent => "url-bad-percent",
    url_non_ascii => "url-non-ascii",
    url_port_65536 => "url-port-65536",
    url_not_http => "url-not-http",
    method_not_token => "method-not-token",
    url_port_zero => "url-port-zero",
});

vectors!(http_server_adapter, HTTP_SERVER_ADAPTER, run_http_server_adapter, {
    host_matches => "host-matches",
    host_uppercase => "host-uppercase",
    host_default_port => "host-default-port",
    authority_pseudo_header => "authority-pseudo-header",
    forwarded_host_hop => "forwarded-host-hop",
    forwarded_proto_hops => "forwarded-proto-hops",
    ipv6_authority => "ipv6-authority",
    authority_host_path_and_query => "authority-host-path-and-query",
    authority_host_query => "authority-host-query",
    authority_host_fragment => "authority-host-fragment",
    authority_host_backslash => "authority-host-backslash",
    authority_host_userinfo => "authority-host-userinfo",
    authority_host_port_not_numeric => "authority-host-port-not-numeric",
    authority_host_port_65536 => "authority-host-port-65536",
    authority_host_bad_percent => "authority-host-bad-percent",
    authority_host_brackets_inside_name => "authority-host-brackets-inside-name",
    authority_host_crlf => "authority-host-crlf",
    authority_host_empty => "authority-host-empty",
    authority_authority_path_and_query => "authority-authority-path-and-query",
    authority_authority_query => "authority-authority-query",
    authority_authority_fragment => "authority-authority-fragment",
    authority_authority_backslash => "authority-authority-backslash",
    authority_authority_userinfo => "authority-authority-userinfo",
    authority_authority_port_not_numeric => "authority-authority-port-not-numeric",
    authority_authority_port_65536 => "authority-authority-port-65536",
    authority_authority_bad_percent => "authority-authority-bad-percent",
    authority_authority_brackets_inside_name => "authority-authority-brackets-inside-name",
    authority_authority_crlf => "authority-authority-crlf",
    authority_authority_empty => "authority-authority-empty",
    authority_x_forwarded_host_path_and_query => "authority-x-forwarded-host-path-and-query",
    authority_x_forwarded_host_query => "authority-x-forwarded-host-query",
    authority_x_forwarded_host_fragment => "authority-x-forwarded-host-fragment",
    authority_x_forwarded_host_backslash => "authority-x-forwarded-host-backslash",
    authority_x_forwarded_host_userinfo => "authority-x-forwarded-host-userinfo",
    authority_x_forwarded_host_port_not_numeric => "authority-x-forwarded-host-port-not-numeric",
    authority_x_forwarded_host_port_65536 => "authority-x-forwarded-host-port-65536",
    authority_x_forwarded_host_bad_percent => "authority-x-forwarded-host-bad-percent",
    authority_x_forwarded_host_brackets_inside_name => "authority-x-forwarded-host-brackets-inside-name",
    authority_x_forwarded_host_crlf => "authority-x-forwarded-host-crlf",
    authority_x_forwarded_host_empty => "authority-x-forwarded-host-empty",
    forwarded_proto_url => "forwarded-proto-url",
    forwarded_proto_crlf => "forwarded-proto-crlf",
    forwarded_proto_empty_hop => "forwarded-proto-empty-hop",
    forwarded_host_malformed_hop => "forwarded-host-malformed-hop",
    request_origin_not_configured => "request-origin-not-configured",
    host_differs_from_url => "host-differs-from-url",
    no_authority_header => "no-authority-header",
});

vectors!(mcp_binding, MCP_BINDING, run_mcp_binding, {
    published_article_a => "published-article-a",
    published_article_b => "published-article-b",
    published_delete_article => "published-delete-article",
    published_other_server => "published-other-server",
    arguments_member_order => "arguments-member-order",
    unbound_meta_ignored => "unbound-meta-ignored",
    arguments_omitted => "arguments-omitted",
    arguments_empty => "arguments-empty",
    metadata_absent => "metadata-absent",
    metadata_null => "metadata-null",
    metadata_value => "metadata-value",
    integer_max_safe => "integer-max-safe",
    arguments_unicode => "arguments-unicode",
    arguments_null => "arguments-null",
    arguments_array => "arguments-array",
    meta_null => "meta-null",
    name_empty => "name-empty",
    metadata_progress_token => "metadata-progress-token",
    metadata_x402_payment => "metadata-x402-payment",
    metadata_unsorted => "metadata-unsorted",
    metadata_empty_name => "metadata-empty-name",
    server_fragment => "server-fragment",
    arguments_lone_surrogate => "arguments-lone-surrogate",
    integer_2_53_plus_1 => "integer-2-53-plus-1",
    integer_2_64 => "integer-2-64",
});
