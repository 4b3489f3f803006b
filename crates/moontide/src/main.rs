fn main() -> std::process::ExitCode {
    moontide::cli::main()
}
