//! `scrip bench`: the macro benchmarks of every layer in one process, each figure printed next
//! to the machine ceiling measured in the same run. The workloads are the ones of
//! `cargo bench` (`feed`, `replicate`, `ledger`, `notary` crates' `bench` modules); `--quick`
//! runs smaller ones.

use std::time::Instant;

use anyhow::Result;
use scrip_feed::bench::Figure;
use serde::Serialize;

use crate::args::BenchWhich;

/// Sizes of one run.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    ingest_per_author: usize,
    replicate_per_author: usize,
    fold_entries: usize,
    audit_entries: usize,
    transfers: scrip_notary::bench::TransferRun,
    /// Silent sockets, idle sessions and entries synced in the flood figure.
    flood: (usize, usize, usize),
}

const FULL: Sizes = Sizes {
    ingest_per_author: 2000,
    replicate_per_author: 10_000,
    fold_entries: 1_000_000,
    audit_entries: 100_000,
    transfers: scrip_notary::bench::TransferRun::FULL,
    flood: (2000, 100, 5000),
};

const QUICK: Sizes = Sizes {
    ingest_per_author: 300,
    replicate_per_author: 2_000,
    fold_entries: 200_000,
    audit_entries: 10_000,
    transfers: scrip_notary::bench::TransferRun::QUICK,
    flood: (500, 100, 1000),
};

/// One line of `--json` output.
#[derive(Debug, Serialize)]
struct JsonFigure<'a> {
    bench: &'a str,
    name: &'a str,
    value: f64,
    unit: &'a str,
    ceiling: Option<f64>,
    ratio: Option<f64>,
}

fn print(bench: &str, figures: &[Figure], json: bool) -> Result<()> {
    for figure in figures {
        if json {
            println!(
                "{}",
                serde_json::to_string(&JsonFigure {
                    bench,
                    name: &figure.name,
                    value: figure.value,
                    unit: figure.unit,
                    ceiling: figure.ceiling,
                    ratio: figure.ratio,
                })?
            );
        } else {
            println!("  {figure}");
        }
    }
    Ok(())
}

fn heading(json: bool, text: &str) {
    if !json {
        println!("{text}");
    }
}

/// Runs `which`.
pub async fn run(which: BenchWhich, quick: bool, json: bool) -> Result<()> {
    let sizes = if quick { QUICK } else { FULL };
    let all = which == BenchWhich::All;
    let started = Instant::now();
    let progress = crate::progress::wanted() && !json;
    if all || which == BenchWhich::Ingest {
        let spinner = crate::progress::spinner(progress, "ingest");
        let dir = tempfile::tempdir()?;
        let per_author = sizes.ingest_per_author;
        let figures = tokio::task::spawn_blocking(move || {
            scrip_feed::bench::ingest(dir.path(), 100, per_author, 5000)
        })
        .await??;
        spinner.finish_and_clear();
        heading(
            json,
            &format!(
                "ingest: {} entries from 100 authors into sled, batches of 5000, flushed",
                figures.entries
            ),
        );
        print("ingest", &figures.figures(), json)?;
    }
    if all || which == BenchWhich::Replicate {
        let spinner = crate::progress::spinner(progress, "replicate");
        let dir = tempfile::tempdir()?;
        let figures =
            scrip_replicate::bench::replicate(dir.path(), 10, sizes.replicate_per_author).await?;
        spinner.finish_and_clear();
        heading(
            json,
            &format!(
                "replicate: {} entries from 10 authors between two nodes over loopback Noise TCP",
                figures.entries
            ),
        );
        print("replicate", &figures.figures(), json)?;
    }
    if all || which == BenchWhich::Notary {
        let spinner = crate::progress::spinner(progress, "notary");
        let dir = tempfile::tempdir()?;
        let figures = scrip_notary::bench::transfers(dir.path(), sizes.transfers).await?;
        spinner.finish_and_clear();
        heading(
            json,
            &format!(
                "notary: transfers through 4 notaries (sled + fsync, loopback Noise TCP): {} one \
                 after another, then {} by {} pairs at once",
                figures.latencies.len(),
                figures.transfers,
                figures.pairs
            ),
        );
        print("notary", &figures.figures(), json)?;
    }
    if all || which == BenchWhich::Audit {
        let spinner = crate::progress::spinner(progress, "fold and audit");
        let (fold, audit) = (sizes.fold_entries, sizes.audit_entries);
        let figures =
            tokio::task::spawn_blocking(move || scrip_ledger::bench::run(fold, audit)).await?;
        spinner.finish_and_clear();
        heading(
            json,
            &format!("ledger: fold of {fold} certified entries, audit of a {audit}-entry wallet"),
        );
        print("audit", &figures, json)?;
    }
    if all || which == BenchWhich::Flood {
        let spinner = crate::progress::spinner(progress, "flood");
        let (sockets, sessions, entries) = sizes.flood;
        let figures = scrip_replicate::bench::flood(sockets, sessions, entries).await?;
        spinner.finish_and_clear();
        heading(
            json,
            &format!(
                "flood: a new peer syncs {} entries from a node, calm, then while {} silent \
                 sockets and {} idle authenticated sessions are held open against it (target: \
                 ratio at least 0.33)",
                figures.entries, figures.sockets, figures.sessions
            ),
        );
        print("flood", &figures.figures(), json)?;
    }
    heading(
        json,
        &format!("done in {:.1} s", started.elapsed().as_secs_f64()),
    );
    Ok(())
}
