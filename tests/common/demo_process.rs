//! The demo and the `pay` example as processes, as a user runs them: the example binaries
//! `cargo test` builds next to the test binaries (built here if missing).

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A process stopped when the test ends, however it ends.
pub struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The example binary `name` next to this test's binary (`target/<profile>/examples/<name>`),
/// built if missing.
pub fn example_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let binary = profile_dir.join("examples").join(name);
    if !binary.exists() {
        let built = Command::new(env!("CARGO"))
            .args(["build", "--example", name, "--features", "mock"])
            .current_dir(manifest_dir())
            .status()
            .ok()?;
        if !built.success() {
            return None;
        }
    }
    binary.exists().then_some(binary)
}

/// A started demo: its URL and its embedded mock's. Dropping it stops the demo.
pub struct Demo {
    _process: Running,
    pub url: String,
    pub mock_url: String,
}

/// Starts the demo with its defaults (any `X402_*` of the test's environment removed), on a free
/// port, plus `env`; reads its URL and its embedded mock's from what it prints.
pub fn start_demo(env: &[(&str, &str)]) -> Demo {
    let demo = example_binary("demo").expect("the demo example builds");
    let mut command = Command::new(demo);
    for (name, _) in std::env::vars() {
        if name.starts_with("X402_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .env("X402_BIND", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the demo starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let process = Running(child);
    let (lines, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let (mut url, mut mock_url) = (None, None);
    while url.is_none() || mock_url.is_none() {
        let line = seen
            .recv_timeout(Duration::from_secs(60))
            .expect("the demo prints its addresses within a minute");
        if let Some(found) = line.strip_prefix("listening on ") {
            url = Some(found.trim().to_owned());
        }
        if let Some(found) = line.strip_prefix("embedded facilitator service on ") {
            mock_url = Some(found.trim().to_owned());
        }
    }
    // Keep draining the demo's output so it never blocks on a full pipe.
    std::thread::spawn(move || while seen.recv().is_ok() {});
    let (Some(url), Some(mock_url)) = (url, mock_url) else {
        unreachable!("the loop ends once both are known");
    };
    Demo {
        _process: process,
        url,
        mock_url,
    }
}
