//! `x402-lightning`: pay priced HTTP routes over Lightning from the shell, with curl's habits and
//! spend caps in sat, and manage the seed flow's prepaid account. `--help` lists every option
//! with its environment variable, and the exit codes.

mod account;
mod amount;
mod args;
mod exit;
mod pay;
mod progress;
mod wallets;

use std::process::ExitCode;

use clap::Parser as _;

use crate::args::{Cli, Command};

/// A failed command: the message for stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Text that may come from a server, as it may reach a terminal: control characters other than
/// newlines replaced (no escape sequence passes), at most 2,000 characters.
pub fn terminal_safe(text: &str) -> String {
    text.chars()
        .take(2_000)
        .map(|c| {
            if c.is_control() && c != '\n' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version print to stdout and succeed; usage errors exit 2.
            let _ = err.print();
            return exit::code(if err.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let result = match cli.command {
        Command::Pay(args) => pay::run(*args).await,
        Command::Deposit(args) => account::deposit(args).await,
        Command::Balance(args) => account::balance(args).await,
        Command::Withdraw(args) => account::withdraw(args).await,
        Command::NewKey => account::new_key(),
    };
    match result {
        Ok(()) => exit::code(exit::OK),
        Err(failure) => {
            eprintln!("x402-lightning: {}", terminal_safe(&failure.message));
            exit::code(failure.code)
        }
    }
}
