//! Progress on stderr: a spinner while a payment is in flight, on a terminal only.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A spinner on stderr when stderr is a terminal; nothing otherwise.
#[derive(Clone)]
pub struct Spinner(Option<ProgressBar>);

impl Spinner {
    pub fn new() -> Self {
        if !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
            bar.set_style(style);
        }
        Self(Some(bar))
    }

    /// Shows `message` beside a turning spinner.
    pub fn start(&self, message: String) {
        if let Some(bar) = &self.0 {
            bar.set_message(message);
            bar.enable_steady_tick(Duration::from_millis(100));
        }
    }

    /// Clears the spinner.
    pub fn stop(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
