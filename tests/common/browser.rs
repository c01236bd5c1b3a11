//! A real headless Chromium driven over WebDriver, through the distribution's chromedriver
//! (Debian: `apt-get install chromium chromium-driver`), for the paywall page's browser tests.
//!
//! Without Chromium or ChromeDriver a test prints `SKIPPED: …` and passes, unless
//! `X402_BROWSER_REQUIRED=1` (CI) makes it fail. `X402_CHROMIUM` and `X402_CHROMEDRIVER` name
//! the binaries instead of `PATH` and `/usr/bin`. One browser runs at a time; chromedriver and
//! every process it started are killed when the [`Browser`] is dropped, however the test ends.
//! Screenshots go to `target/paywall-screenshots/`.

use std::future::Future;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

/// Set to `1` (CI does) to fail, rather than skip, when no browser is installed.
const REQUIRED_ENV: &str = "X402_BROWSER_REQUIRED";
/// Set to `1` to also write test (a)'s screenshots to `docs/` (the README embeds them).
pub const UPDATE_SCREENSHOTS_ENV: &str = "X402_UPDATE_SCREENSHOTS";

/// How long chromedriver may take to answer after it starts, and a session to open.
const DRIVER_START: Duration = Duration::from_secs(10);
const SESSION_START: Duration = Duration::from_secs(30);
/// How often [`Browser::wait_for`] asks the page.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// One Chromium at a time: the machines that run these tests may have two cores.
static ONE_BROWSER_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// The browser and its driver found on this machine.
struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

/// `name` as an executable: the path in `override_env` if set (missing if it does not exist),
/// else the first of `names` on `PATH` or in `/usr/bin`.
fn find_binary(override_env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(override_env).filter(|path| !path.is_empty()) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .collect();
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Chromium and ChromeDriver, or `None` after printing why the test is skipped; panics instead
/// when `X402_BROWSER_REQUIRED=1`.
fn tools(test: &str) -> Option<Tools> {
    let chromium = find_binary(
        "X402_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let chromedriver = find_binary("X402_CHROMEDRIVER", &["chromedriver"]);
    if let (Some(chromium), Some(chromedriver)) = (chromium.clone(), chromedriver.clone()) {
        return Some(Tools {
            chromium,
            chromedriver,
        });
    }
    let missing = match (chromium, chromedriver) {
        (None, None) => "Chromium/ChromeDriver",
        (None, Some(_)) => "Chromium",
        _ => "ChromeDriver",
    };
    let required = std::env::var(REQUIRED_ENV).is_ok_and(|value| value.trim() == "1");
    assert!(
        !required,
        "{test}: {missing} not found (apt-get install chromium chromium-driver, or set \
         X402_CHROMIUM / X402_CHROMEDRIVER), and {REQUIRED_ENV}=1 requires the browser tests"
    );
    // Straight to stderr, past libtest's capture: a skip is said even without --nocapture.
    let line = format!(
        "SKIPPED: {test}: {missing} not found (apt-get install chromium chromium-driver); set \
         {REQUIRED_ENV}=1 to make this a failure\n"
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    None
}

/// chromedriver; dropping it kills it and every process it started (Chromium outlives a
/// chromedriver killed alone). It stays in the test's process group, so that an interrupted
/// `cargo test` (Ctrl-C) stops it and its Chromium too.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    /// Starts chromedriver on a free loopback port and waits until it is ready (bounded).
    async fn start(chromedriver: &Path) -> Driver {
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|probe| probe.local_addr())
                .expect("a free loopback port")
                .port();
            let child = Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|err| panic!("cannot start {}: {err}", chromedriver.display()));
            let mut driver = Driver {
                child,
                url: format!("http://127.0.0.1:{port}"),
            };
            match driver.until_ready().await {
                Ok(()) => return driver,
                Err(err) => last_error = err,
            }
        }
        panic!("chromedriver did not start: {last_error}");
    }

    async fn until_ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + DRIVER_START;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("it exited with {status}"));
            }
            let answer = http
                .get(format!("{}/status", self.url))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            let status = match answer {
                Ok(answer) => answer.json::<Value>().await.unwrap_or_default(),
                Err(_) => Value::Null,
            };
            if status["value"]["ready"] == true {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not ready at {} within {DRIVER_START:?}", self.url));
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Stop the tree first, so that no process of it starts another or is orphaned while it
        // is walked; then kill it all.
        let root = self.child.id();
        let mut tree = vec![root];
        signal("STOP", &tree);
        for _ in 0..10 {
            let found: Vec<u32> = descendants(root)
                .into_iter()
                .filter(|pid| !tree.contains(pid))
                .collect();
            if found.is_empty() {
                break;
            }
            signal("STOP", &found);
            tree.extend(found);
        }
        signal("KILL", &tree);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `signal` to `pids` (processes this harness started).
fn signal(signal: &str, pids: &[u32]) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The processes descended from `root`, from `/proc` (none where there is no `/proc`).
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        // `pid (comm) state ppid …`, where comm may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        found.extend(
            parent_of
                .iter()
                .filter(|&&(pid, ppid)| ppid == parent && !found.contains(&pid))
                .map(|&(pid, _)| pid)
                .collect::<Vec<_>>(),
        );
        next += 1;
    }
    found.remove(0);
    found
}

/// A headless Chromium session with a phone-sized window, for one test.
pub struct Browser {
    client: Client,
    test: &'static str,
    session_id: String,
    http: reqwest::Client,
    // Dropped in this order: the driver (and Chromium) before their profile directory, the
    // turn last.
    driver: Driver,
    _profile: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

impl Browser {
    /// A browser for `test` (its name names its screenshots), once no other test holds one;
    /// `None` when there is no browser on this machine and none is required (see the module).
    pub async fn launch(test: &'static str) -> Option<Browser> {
        let tools = tools(test)?;
        let turn = ONE_BROWSER_AT_A_TIME.lock().await;
        let profile = tempfile::tempdir().expect("a temporary profile directory");
        let driver = Driver::start(&tools.chromedriver).await;
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=480,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            // The console, for what the page logged (read with `console`).
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object literal");
        };
        let client = tokio::time::timeout(
            SESSION_START,
            ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities)
                .connect(&driver.url),
        )
        .await
        .unwrap_or_else(|_| panic!("{test}: no Chromium session within {SESSION_START:?}"))
        .unwrap_or_else(|err| panic!("{test}: Chromium session: {err}"));
        let session_id = client
            .session_id()
            .await
            .ok()
            .flatten()
            .expect("a session id");
        Some(Browser {
            client,
            test,
            session_id,
            http: reqwest::Client::new(),
            driver,
            _profile: profile,
            _turn: turn,
        })
    }

    /// Navigates to `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|err| panic!("{}: cannot open {url}: {err}", self.test));
    }

    /// Runs `script` (a function body: `return …`, `arguments[i]` for `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|err| panic!("{}: script failed: {err}\n{script}", self.test))
    }

    /// The text content of the first element matching `css`, `None` if there is none.
    pub async fn text(&self, css: &str) -> Option<String> {
        let text = self
            .js(
                "const el = document.querySelector(arguments[0]); \
                 return el ? el.textContent : null;",
                vec![json!(css)],
            )
            .await;
        text.as_str().map(str::to_owned)
    }

    /// Whether the first element matching `css` exists and is rendered (not hidden, not
    /// `display: none`, with a box).
    pub async fn is_visible(&self, css: &str) -> bool {
        self.js(
            "const el = document.querySelector(arguments[0]); \
             return !!el && !el.closest('[hidden]') && el.getClientRects().length > 0 \
                 && getComputedStyle(el).visibility !== 'hidden';",
            vec![json!(css)],
        )
        .await
            == true
    }

    /// Clicks the first element matching `css`, as a person would (a WebDriver click).
    pub async fn click(&self, css: &str) {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("{}: no {css} to click: {err}", self.test));
        element
            .click()
            .await
            .unwrap_or_else(|err| panic!("{}: cannot click {css}: {err}", self.test));
    }

    /// Scrolls the first element matching `css` to the middle of the window.
    pub async fn scroll_to(&self, css: &str) {
        self.js(
            "const el = document.querySelector(arguments[0]); \
             if (el) el.scrollIntoView({ block: 'center' }); \
             return !!el;",
            vec![json!(css)],
        )
        .await;
    }

    /// Waits until `script` (a function body) returns something other than `null`, `false`,
    /// `""` or `undefined`, asking every 100 ms, and returns it. After `timeout` it fails with
    /// `what` it waited for, what the page showed (`#status`), its console and a screenshot.
    pub async fn wait_for(&self, what: &str, timeout: Duration, script: &str) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.js(script, Vec::new()).await;
            let done = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(text) => !text.is_empty(),
                _ => true,
            };
            if done {
                return value;
            }
            if Instant::now() > deadline {
                let status = self.text("#status").await;
                let screenshot = self.screenshot("timeout").await;
                let console = self.console().await;
                panic!(
                    "{}: waited {timeout:?} for {what}; the page's #status said {status:?}; \
                     last value {value}; console {console:#?}; screenshot {}",
                    self.test,
                    screenshot.display()
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Saves a screenshot of the window as `<target>/paywall-screenshots/<test>-<name>.png`
    /// and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|err| panic!("{}: screenshot: {err}", self.test));
        let dir = target_dir().join("paywall-screenshots");
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        let path = dir.join(format!("{}-{name}.png", self.test));
        std::fs::write(&path, png).expect("the screenshot is written");
        path
    }

    /// What the page logged to the console since the last call (chromedriver's browser log:
    /// `{level, message, source}`, uncaught errors and policy violations included).
    pub async fn console(&self) -> Vec<Value> {
        let answer = self
            .http
            .post(format!(
                "{}/session/{}/se/log",
                self.driver.url, self.session_id
            ))
            .json(&json!({ "type": "browser" }))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        match answer {
            Ok(answer) => match answer.json::<Value>().await {
                Ok(log) => log["value"].as_array().cloned().unwrap_or_default(),
                Err(err) => vec![json!({ "unreadable console log": err.to_string() })],
            },
            Err(err) => vec![json!({ "unreadable console log": err.to_string() })],
        }
    }
}

/// A loopback listener for an app the browser opens, and the origin it answers on
/// (`http://127.0.0.1:PORT`, what the layer's `public_base_url` is set to).
pub async fn loopback() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let origin = format!("http://{}", listener.local_addr().expect("local addr"));
    (listener, origin)
}

/// Serves `app` on `listener` in the background for as long as the test runs, with each
/// peer's address, as a real server gives it to the layer.
pub fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) {
    tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let _ = axum::serve(listener, app).await;
    });
}

/// Runs `steps`, failing the test if they take longer than `limit` (a hung browser or page).
pub async fn within<T>(limit: Duration, steps: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, steps)
        .await
        .unwrap_or_else(|_| panic!("the browser steps took longer than {limit:?}"))
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, else the one holding this test binary
/// (`<target>/<profile>/deps/<test>`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|dir| !dir.is_empty()) {
        return Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Copies `screenshot` to `docs/<name>` when `X402_UPDATE_SCREENSHOTS=1`.
pub fn update_docs_screenshot(screenshot: &Path, name: &str) {
    if std::env::var(UPDATE_SCREENSHOTS_ENV).is_ok_and(|value| value.trim() == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).expect("docs/");
        std::fs::copy(screenshot, docs.join(name)).expect("the screenshot is copied to docs/");
    }
}

/// Rebuilds the demo example when a source it is built from is newer than its binary:
/// `cargo test --test …` builds no example, and the demo would otherwise serve an old page.
pub fn rebuild_stale_demo() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(binary) = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("examples").join("demo")))
    else {
        return;
    };
    let Some(built) = modified(&binary) else {
        // Missing: `start_demo` builds it.
        return;
    };
    let sources = ["src", "examples/demo", "facilitator/src", "Cargo.toml"];
    let newest = sources
        .iter()
        .filter_map(|source| newest_in(&manifest.join(source)))
        .max();
    if newest.is_some_and(|newest| newest > built) {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "demo", "--features", "mock"])
            .current_dir(manifest)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "the demo example builds");
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    path.metadata().ok()?.modified().ok()
}

/// The newest modification time of `path` and, for a directory, of everything under it.
fn newest_in(path: &Path) -> Option<SystemTime> {
    let own = modified(path);
    let Ok(entries) = std::fs::read_dir(path) else {
        return own;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| newest_in(&entry.path()))
        .chain(own)
        .max()
}
