//! `cell`: the jail launcher.

fn main() -> std::process::ExitCode {
    cell::host::cli::main()
}
