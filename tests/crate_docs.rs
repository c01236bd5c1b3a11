//! The crate documents itself: its wire contract is in its own docs (`x402_lightning::protocol`,
//! from `src/protocol.md`) and its manual in the `guide` modules (`src/guide/*.md`), rather than
//! in files outside the package; the README's links into docs.rs land on pages and sections
//! that exist; docs.rs shows the mock and the test wallet, and the license files the manifest
//! names ship with it.

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
fn the_guides_name_no_file_outside_the_crate() {
    // The workspace members `facilitator/` and `bench/` are not in the published package.
    for entry in walk("src/guide") {
        let text = std::fs::read_to_string(&entry).expect("readable guide");
        for outside in ["facilitator/", "bench/", "benches/"] {
            assert!(
                !text.contains(outside),
                "{entry} names {outside}, which is not in the crate"
            );
        }
    }
}

/// Where the README links into the crate's docs on docs.rs.
const DOCS_RS: &str = "https://docs.rs/x402-lightning/latest/x402_lightning/";

#[test]
fn the_readme_links_to_doc_pages_and_sections_that_exist() {
    let lib = read("src/lib.rs");
    let guides = read("src/guide/mod.rs");
    let mut links = 0;
    for (at, _) in README.match_indices(DOCS_RS) {
        let link = &README[at + DOCS_RS.len()..];
        let link = &link[..link
            .find(|c: char| c.is_whitespace() || c == ')')
            .unwrap_or(link.len())];
        let (page, fragment) = link.split_once('#').unwrap_or((link, ""));
        let page = page.trim_end_matches('/');
        // The page's markdown: a module of its own file, or a guide.
        let markdown = match page.split('/').collect::<Vec<_>>()[..] {
            ["protocol"] => {
                assert!(lib.contains("pub mod protocol {}"), "no module protocol");
                read("src/protocol.md")
            }
            ["client"] => {
                assert!(lib.contains("pub mod client;"), "no module client");
                read("src/client/mod.rs")
            }
            ["paywall"] => {
                assert!(lib.contains("pub mod paywall;"), "no module paywall");
                read("src/paywall/mod.rs")
            }
            ["guide"] => {
                assert!(lib.contains("pub mod guide;"), "no module guide");
                guides.clone()
            }
            ["guide", name] => {
                assert!(
                    guides.contains(&format!(
                        "include_str!(\"{name}.md\")]\npub mod {name} {{}}"
                    )),
                    "the README links to guide::{name}, which src/guide/mod.rs does not declare"
                );
                read(&format!("src/guide/{name}.md"))
            }
            _ => panic!("the README links to {link}, a page this test does not know"),
        };
        if !fragment.is_empty() {
            assert!(
                headings(&markdown).any(|heading| anchor(heading) == fragment),
                "the README links to {link}, but {page} has no heading with the anchor #{fragment}"
            );
        }
        links += 1;
    }
    assert!(links > 0, "the README links to no page on docs.rs");
}

/// The text of a file of the crate.
fn read(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The headings of a markdown text, outside code blocks.
fn headings(markdown: &str) -> impl Iterator<Item = &str> {
    let mut in_code = false;
    markdown.lines().filter_map(move |line| {
        let line = line.trim_start_matches("//!").trim_start();
        if line.starts_with("```") {
            in_code = !in_code;
            return None;
        }
        let heading = line.trim_start_matches('#');
        (!in_code && heading.len() < line.len() && heading.starts_with(' ')).then(|| heading.trim())
    })
}

/// The anchor rustdoc gives a heading: its letters and digits lowercased, `-` and `_` kept,
/// whitespace turned into `-`, everything else (backticks, quotes, commas) dropped.
fn anchor(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                Some(c.to_lowercase().collect::<String>())
            } else if c.is_whitespace() {
                Some("-".to_owned())
            } else {
                None
            }
        })
        .collect()
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
