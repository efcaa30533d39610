//! `scrip`: parses the command line, runs it, and turns any error into one line on stderr and
//! a non-zero exit status.

use clap::Parser;

// The allocator the benchmarks were measured with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = scrip_cli::args::Cli::parse();
    // The demo stops many peers at once, which makes their nodes warn about each other. sled's
    // own log lines are off: what it reports reaches the user as our error.
    let quiet = matches!(cli.command, scrip_cli::args::Command::Demo { .. });
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(if quiet {
                    "error,sled=off"
                } else {
                    "warn,sled=off"
                })
            }),
        )
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
            eprintln!("error: {}", format!("{err:#}").replace('\n', " "));
            1
        }
    };
    // Everything acknowledged is on disk; background tasks need not finish.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    std::process::exit(code);
}
