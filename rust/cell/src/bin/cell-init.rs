//! `cell-init`: pid 1 of every cell. Starts the command, forwards signals to it, reaps
//! orphans, and exits with the command's status; when it exits the kernel kills every other
//! process of the cell's pid namespace.

use std::process::ExitCode;

fn main() -> ExitCode {
    match cell::inside::init::run(&std::env::args_os().skip(1).collect::<Vec<_>>()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("cell-init: {e:#}");
            ExitCode::from(cell::contract::EXIT_INIT_FAILED)
        }
    }
}
