//! `quay-operator`: see [`quay_operator::cli`] for the commands.

fn main() -> std::process::ExitCode {
    quay_operator::cli::main()
}
