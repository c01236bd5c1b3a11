//! The README's test example must build in a user's crate from the `Cargo.toml` it shows: every
//! crate its code names is listed there, with the features the code needs, and this crate is
//! listed twice (plain, then with `mock` for tests). The code itself is compiled and run as a
//! doc test (`ReadmeDoctests` in `src/lib.rs`).

const README: &str = include_str!("../README.md");

/// The crates a user's test may name, and how they are spelled in `Cargo.toml`.
const CRATES: [(&str, &str); 9] = [
    ("axum", "axum"),
    ("http", "http"),
    ("tower", "tower"),
    ("tokio", "tokio"),
    ("serde", "serde"),
    ("serde_json", "serde_json"),
    ("bytes", "bytes"),
    ("http_body_util", "http-body-util"),
    ("x402_lightning", "x402-lightning"),
];

/// The first fenced block of `language` after `start`, and where it ends.
fn block_after(start: usize, language: &str) -> (String, usize) {
    let fence = format!("```{language}\n");
    let open = README[start..]
        .find(&fence)
        .map(|at| start + at + fence.len())
        .unwrap_or_else(|| panic!("a ```{language} block in the README"));
    let close = open + README[open..].find("```").expect("the block closes");
    (README[open..close].to_owned(), close)
}

/// The `Cargo.toml` of the mock section, and the test that follows it.
fn manifest_and_test() -> (String, String) {
    let section = README
        .find("## The mock facilitator, for your tests")
        .expect("the mock section");
    let (manifest, end) = block_after(section, "toml");
    let (test, _) = block_after(end, "rust");
    (manifest, test)
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
        .unwrap_or_else(|| panic!("[{name}] in the README's Cargo.toml"))
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

#[test]
fn every_crate_the_readme_test_names_is_in_its_cargo_toml() {
    let (manifest, test) = manifest_and_test();
    let listed: Vec<&str> = [
        table(&manifest, "dependencies"),
        table(&manifest, "dev-dependencies"),
    ]
    .concat();
    for (path, package) in CRATES {
        let named = test.contains(&format!("{path}::"));
        if named {
            assert!(
                entry(&listed, package).is_some(),
                "the README's test uses `{path}::` but its Cargo.toml does not list {package}"
            );
        }
    }
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
        let tokio = entry(&dev, "tokio").expect("tokio listed");
        for feature in ["\"macros\"", "\"rt\""] {
            assert!(
                tokio.contains(feature),
                "#[tokio::test] needs {feature}: {tokio}"
            );
        }
    }
}
