//! `scrip`: parses the command line, runs it, and turns any error into one line on stderr and
//! a non-zero exit status.

use clap::Parser;

// The allocator the benchmarks were measured with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    use scrip_cli::failure::{EXIT_USAGE, Failure};
    // mimalloc asks the kernel for transparent huge pages on its arena and returns memory to
    // it in small pieces: with THP in `madvise` mode (the usual default) every reuse of a piece
    // faulted in a whole 2 MiB page, zeroed — 12.7 % of the CPU of `scrip bench notary` went to
    // `clear_page_erms`. Off for this process (future faults use 4 KiB pages): +20 % durable
    // ingest on the 2-core target, and short runs of fresh memory much faster (docs/cli.md §8,
    // "Memory").
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let cli = match scrip_cli::args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version are not failures; everything else is a usage error.
            let _ = err.print();
            std::process::exit(if err.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    let json = cli.json;
    // The demo stops many peers at once, which makes their nodes warn about each other. sled's
    // own log lines are off: what it reports reaches the user as our error.
    // A daemon's log says what it does (info: e.g. the orders it refunds by itself); a one-shot
    // command only warns.
    let quiet = matches!(cli.command, scrip_cli::args::Command::Demo { .. });
    let daemon = matches!(cli.command, scrip_cli::args::Command::Serve { .. });
    let level = match (quiet, daemon) {
        (true, _) => "error,sled=off",
        (false, true) => "info,sled=off",
        (false, false) => "warn,sled=off",
    };
    // Colour codes only for a terminal: a log written to a file stays plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(scrip_cli::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            let failure = Failure::of(&err);
            eprintln!("error: {}", failure.message);
            if json {
                let answer = serde_json::json!({
                    "result": "error",
                    "kind": failure.kind,
                    "exit": failure.exit,
                    "error": failure.message,
                });
                // Nothing more to say if stdout is gone, too.
                let _ = scrip_cli::say(&format!("{answer:#}\n"));
            }
            failure.exit
        }
    };
    // Everything acknowledged is on disk; background tasks need not finish.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    std::process::exit(code);
}
