//! The crate documents itself: its wire contract is in its own docs (`x402_lightning::protocol`,
//! from `src/protocol.md`) rather than in a file outside the package, docs.rs shows the mock and
//! the test wallet, and the license files the manifest names ship with it.

const MANIFEST: &str = include_str!("../Cargo.toml");
const README: &str = include_str!("../README.md");
const PROTOCOL: &str = include_str!("../src/protocol.md");

#[test]
fn the_wire_contract_is_in_the_crate_docs() {
    for section in [
        "# The offer: 402 Payment Required",
        "# The payment: `X-PAYMENT`",
        "**The signing rule**",
        "# The receipt: `X-PAYMENT-RESPONSE`",
        "# The facilitator's API",
        "# Where `payTo` comes from",
        "# What the layer answers",
    ] {
        assert!(
            PROTOCOL.contains(section),
            "src/protocol.md lacks {section:?}"
        );
    }
    // Every row of the answer table names its status.
    for status in ["402", "400", "409", "429", "502", "504"] {
        assert!(PROTOCOL.contains(status), "the answer table lacks {status}");
    }
}

#[test]
fn no_doc_sends_readers_to_a_file_outside_the_crate() {
    let mut sources = vec![("README.md".to_owned(), README.to_owned())];
    for entry in walk("src") {
        let text = std::fs::read_to_string(&entry).expect("readable source");
        sources.push((entry, text));
    }
    for (name, text) in sources {
        assert!(
            !text.contains("PROTOCOL.md"),
            "{name} refers to PROTOCOL.md, which is not in the crate"
        );
    }
}

#[test]
fn docs_rs_builds_with_every_feature_and_the_licenses_ship() {
    let docs_rs = MANIFEST
        .split("[package.metadata.docs.rs]")
        .nth(1)
        .expect("a [package.metadata.docs.rs] table");
    let table = docs_rs.split("\n[").next().unwrap_or_default();
    assert!(table.contains("all-features = true"), "{table}");
    assert!(MANIFEST.contains(r#"license = "MIT OR Apache-2.0""#));
    for file in ["LICENSE-MIT", "LICENSE-APACHE"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        assert!(path.is_file(), "{file} is missing");
    }
}

/// The files below `dir` (relative to the crate), recursively.
fn walk(dir: &str) -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut pending = vec![root];
    let mut files = Vec::new();
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path.display().to_string());
            }
        }
    }
    files
}
