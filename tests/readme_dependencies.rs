//! The README's examples, and the guides' (`src/guide/*.md`, the `guide` module's pages), must
//! build in a user's crate from the `Cargo.toml` each shows: every crate their code names is
//! listed there, with the features the code needs, and this crate is listed twice for tests
//! (plain, then with `mock`). The README's test example is `readme_example.rs`, run as a test
//! exactly as the README shows it; the other blocks are doc tests (`ReadmeDoctests` in
//! `src/lib.rs`, and the guide modules' own docs).

const README: &str = include_str!("../README.md");
const README_EXAMPLE: &str = include_str!("readme_example.rs");
const PRICING_GUIDE: &str = include_str!("../src/guide/pricing.md");
const TESTING_GUIDE: &str = include_str!("../src/guide/testing.md");

/// The crates a user's code may name, and how they are spelled in `Cargo.toml`.
const CRATES: [(&str, &str); 10] = [
    ("axum", "axum"),
    ("http", "http"),
    ("tower", "tower"),
    ("tokio", "tokio"),
    ("serde", "serde"),
    ("serde_json", "serde_json"),
    ("bytes", "bytes"),
    ("http_body_util", "http-body-util"),
    ("tracing", "tracing"),
    ("x402_lightning", "x402-lightning"),
];

/// The first fenced block of `language` (with any attributes, as in `rust,ignore`) in `doc`
/// after `start`, and where it ends.
fn block_after(doc: &str, start: usize, language: &str) -> (String, usize) {
    let fence = format!("```{language}");
    let open = doc[start..]
        .find(&fence)
        .and_then(|at| doc[start + at..].find('\n').map(|eol| start + at + eol + 1))
        .unwrap_or_else(|| panic!("a ```{language} block after byte {start}"));
    let close = open + doc[open..].find("```").expect("the block closes");
    (doc[open..close].to_owned(), close)
}

/// The `Cargo.toml` of a section of `doc`, and the code that follows it.
fn manifest_and_code(doc: &str, section: &str) -> (String, String) {
    let section = doc.find(section).expect("the section");
    let (manifest, end) = block_after(doc, section, "toml");
    let (code, _) = block_after(doc, end, "rust");
    (manifest, code)
}

/// The `Cargo.toml` of the README's mock section, and the test that follows it.
fn manifest_and_test() -> (String, String) {
    manifest_and_code(README, "## The mock facilitator, for your tests")
}

/// Asserts that `manifest` lists every crate `code` names.
fn lists_every_crate_named(manifest: &str, code: &str, tables: &[&str]) {
    let listed: Vec<&str> = tables
        .iter()
        .flat_map(|name| table(manifest, name))
        .collect();
    for (path, package) in CRATES {
        if code.contains(&format!("{path}::")) {
            assert!(
                entry(&listed, package).is_some(),
                "the code uses `{path}::` but the Cargo.toml beside it does not list {package}"
            );
        }
    }
}

/// The lines of a `[table]` of `manifest`.
fn table<'a>(manifest: &'a str, name: &str) -> Vec<&'a str> {
    manifest
        .split("\n[")
        .find(|table| {
            table
                .trim_start_matches('[')
                .starts_with(&format!("{name}]"))
        })
        .unwrap_or_else(|| panic!("[{name}] in the Cargo.toml"))
        .lines()
        .skip(1)
        .collect()
}

fn entry<'a>(lines: &[&'a str], package: &str) -> Option<&'a str> {
    lines
        .iter()
        .find(|line| line.split('=').next().map(str::trim) == Some(package))
        .copied()
}

/// Every ```rust block of `doc` from `start` to `end`.
fn rust_between(doc: &str, start: usize, end: usize) -> String {
    let mut code = String::new();
    let mut at = start;
    while let Some(found) = doc[at..end].find("```rust") {
        let (block, close) = block_after(doc, at + found, "rust");
        code.push_str(&block);
        at = close + 3;
    }
    code
}

/// Every ```rust block of the README section that starts with `heading`, up to the next `## `.
fn rust_in_section(heading: &str) -> String {
    let start = README.find(heading).expect("the section");
    let end = README[start + heading.len()..]
        .find("\n## ")
        .map_or(README.len(), |at| start + heading.len() + at);
    rust_between(README, start, end)
}

/// The first `Cargo.toml` of a guide, which its every ```rust block builds with.
fn guide_manifest_and_code(guide: &str) -> (String, String) {
    let (manifest, _) = block_after(guide, 0, "toml");
    (manifest, rust_between(guide, 0, guide.len()))
}

fn assert_tokio_features(manifest: &str, table_name: &str, features: &[&str]) {
    let tokio = entry(&table(manifest, table_name), "tokio").expect("tokio listed");
    for feature in features {
        assert!(
            tokio.contains(&format!("\"{feature}\"")),
            "tokio's {feature} is needed: {tokio}"
        );
    }
}

#[test]
fn every_crate_the_readme_test_names_is_in_its_cargo_toml() {
    let (manifest, test) = manifest_and_test();
    lists_every_crate_named(&manifest, &test, &["dependencies", "dev-dependencies"]);
}

#[test]
fn every_crate_the_readme_app_names_is_in_its_cargo_toml() {
    let section = "## Put a price on an axum `Router`";
    let (manifest, _) = manifest_and_code(README, section);
    lists_every_crate_named(&manifest, &rust_in_section(section), &["dependencies"]);
    // #[tokio::main]
    assert_tokio_features(&manifest, "dependencies", &["macros", "rt-multi-thread"]);
}

#[test]
fn every_crate_the_pricing_guide_names_is_in_its_cargo_toml() {
    let (manifest, code) = guide_manifest_and_code(PRICING_GUIDE);
    lists_every_crate_named(&manifest, &code, &["dependencies"]);
    assert_tokio_features(&manifest, "dependencies", &["macros", "rt-multi-thread"]);
}

#[test]
fn every_crate_the_testing_guide_names_is_in_its_cargo_toml() {
    let (manifest, code) = guide_manifest_and_code(TESTING_GUIDE);
    lists_every_crate_named(&manifest, &code, &["dependencies", "dev-dependencies"]);
    let plain = entry(&table(&manifest, "dependencies"), "x402-lightning").expect("listed");
    assert!(!plain.contains("mock"), "{plain}");
    let dev = table(&manifest, "dev-dependencies");
    let mock = entry(&dev, "x402-lightning").expect("listed");
    assert!(mock.contains(r#"features = ["mock"]"#), "{mock}");
    if code.contains("oneshot") {
        let tower = entry(&dev, "tower").expect("tower listed");
        assert!(
            tower.contains("\"util\""),
            "oneshot needs tower's util: {tower}"
        );
    }
    // #[tokio::main(flavor = "current_thread")]
    assert_tokio_features(&manifest, "dev-dependencies", &["macros", "rt"]);
    assert!(
        !code.contains("#[tokio::main]"),
        "the multi-threaded runtime is not in the testing guide's Cargo.toml"
    );
}

#[test]
fn the_readme_shows_the_test_that_runs() {
    let (_, test) = manifest_and_test();
    let code = README_EXAMPLE
        .find("use ")
        .map(|start| &README_EXAMPLE[start..])
        .expect("code after the header");
    assert_eq!(test, code, "README and tests/readme_example.rs differ");
}

#[test]
fn the_crate_is_listed_plain_for_the_app_and_with_the_mock_for_tests() {
    let (manifest, _) = manifest_and_test();
    let plain = entry(&table(&manifest, "dependencies"), "x402-lightning").expect("listed");
    assert!(!plain.contains("mock"), "{plain}");
    let dev = entry(&table(&manifest, "dev-dependencies"), "x402-lightning").expect("listed");
    assert!(dev.contains(r#"features = ["mock"]"#), "{dev}");
}

#[test]
fn the_listed_features_cover_what_the_test_uses() {
    let (manifest, test) = manifest_and_test();
    let dev = table(&manifest, "dev-dependencies");
    if test.contains("oneshot") {
        let tower = entry(&dev, "tower").expect("tower listed");
        assert!(
            tower.contains("\"util\""),
            "oneshot needs tower's util: {tower}"
        );
    }
    if test.contains("#[tokio::test]") {
        assert_tokio_features(&manifest, "dev-dependencies", &["macros", "rt"]);
    }
}
