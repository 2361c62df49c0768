//! `cell`: the jail launcher.

fn main() -> std::process::ExitCode {
    cell::cli::main()
}
