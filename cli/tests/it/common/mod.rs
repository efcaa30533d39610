//! Running the real `scrip` binary: homes, one-shot commands and daemon processes.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub fn scrip_bin() -> &'static str {
    env!("CARGO_BIN_EXE_scrip")
}

/// What a command printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The stdout as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }

    /// Asserts success and returns self.
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "failed: {}{}", self.stdout, self.stderr);
        self
    }

    /// Asserts a failure with exactly one line on stderr, returning that line.
    pub fn one_line_error(&self) -> &str {
        assert_ne!(self.code, 0, "expected a failure, got: {}", self.stdout);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one line on stderr, got: {:?}",
            self.stderr
        );
        assert!(lines[0].starts_with("error: "), "{:?}", lines[0]);
        lines[0]
    }
}

/// A scrip home in a test directory.
#[derive(Clone, Debug)]
pub struct TestHome {
    pub path: PathBuf,
}

impl TestHome {
    /// `scrip init` at `dir/name` with loopback ports chosen by the system.
    pub fn init(dir: &Path, name: &str) -> TestHome {
        let home = TestHome {
            path: dir.join(name),
        };
        home.run(&[
            "init",
            "--listen",
            "127.0.0.1:0",
            "--notary-listen",
            "127.0.0.1:0",
            "--web-listen",
            "127.0.0.1:0",
        ])
        .ok();
        home
    }

    /// `scrip init` with these arguments.
    pub fn init_with(dir: &Path, name: &str, args: &[&str]) -> TestHome {
        let home = TestHome {
            path: dir.join(name),
        };
        let mut all = vec!["init"];
        all.extend_from_slice(args);
        home.run(&all).ok();
        home
    }

    /// Runs `scrip --home HOME args...`.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(scrip_bin())
            .arg("--home")
            .arg(&self.path)
            .args(args)
            .env_remove("SCRIP_HOME")
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `scrip --json args...`, expected to succeed, as JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.run(&all).ok().json()
    }

    pub fn identity(&self) -> String {
        self.json(&["id"])["identity"].as_str().unwrap().to_owned()
    }

    /// Sets `key = value` in config.toml (replacing the line `scrip init` wrote for it).
    pub fn set_config(&self, key: &str, value: &str) {
        let path = self.path.join("config.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let text: Vec<String> = text
            .lines()
            .map(|line| {
                if line.starts_with(&format!("{key} =")) {
                    format!("{key} = {value}")
                } else {
                    line.to_owned()
                }
            })
            .collect();
        std::fs::write(&path, text.join("\n") + "\n").unwrap();
    }

    pub fn wallet(&self) -> String {
        self.json(&["id"])["wallet"].as_str().unwrap().to_owned()
    }

    /// Spawns `scrip --json serve` with `extra` arguments, its output piped, without waiting.
    pub fn spawn_serve(&self, extra: &[&str]) -> Child {
        Command::new(scrip_bin())
            .arg("--home")
            .arg(&self.path)
            .arg("--json")
            .arg("serve")
            .args(extra)
            .env_remove("SCRIP_HOME")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            // To a file beside the home, never a pipe nobody reads: a daemon whose log fills a
            // pipe blocks on its next line, and every command on its home then times out.
            .stderr(self.log_file())
            .spawn()
            .unwrap()
    }

    /// Where this home's daemons write their log (beside the home, appended).
    pub fn log_path(&self) -> PathBuf {
        self.path.with_extension("log")
    }

    fn log_file(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap()
    }

    /// Starts `scrip serve` with `extra` arguments; waits until it is ready.
    pub fn serve(&self, extra: &[&str]) -> Daemon {
        let mut child = self.spawn_serve(extra);
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            let _ = child.wait();
            let err = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            panic!("the daemon did not start ({e}): {line:?} {err}")
        });
        Daemon {
            child: Some(child),
            ready,
        }
    }

    /// A digest (path, length, hash) of every file under the home except the socket, to show
    /// that nothing was written.
    pub fn snapshot(&self) -> Vec<(PathBuf, usize, u64)> {
        let mut files = Vec::new();
        collect(&self.path, &mut files);
        files.sort();
        files
    }
}

fn collect(dir: &Path, files: &mut Vec<(PathBuf, usize, u64)>) {
    use std::hash::{Hash, Hasher};
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_none_or(|e| e != "sock") {
            let bytes = std::fs::read(&path).unwrap_or_default();
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut hasher);
            files.push((path.clone(), bytes.len(), hasher.finish()));
        }
    }
}

/// A running `scrip serve` process.
pub struct Daemon {
    child: Option<Child>,
    pub ready: Value,
}

impl Daemon {
    pub fn listen(&self) -> String {
        self.ready["listen"].as_str().unwrap().to_owned()
    }

    pub fn notary(&self) -> String {
        self.ready["notary"].as_str().unwrap().to_owned()
    }

    pub fn identity(&self) -> String {
        self.ready["identity"].as_str().unwrap().to_owned()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Stops it with SIGTERM and waits; returns its exit status.
    pub fn stop(mut self) -> i32 {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        child.wait().unwrap().code().unwrap_or(-1)
    }

    /// Kills it with SIGKILL.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `n` notary daemons; returns them and the `--notary` arguments naming them.
pub fn notaries(dir: &Path, n: usize) -> (Vec<(TestHome, Daemon)>, Vec<String>) {
    let mut all = Vec::new();
    let mut args = Vec::new();
    for i in 0..n {
        let home = TestHome::init(dir, &format!("notary{i}"));
        let daemon = home.serve(&["--notary"]);
        args.push("--notary".to_owned());
        args.push(format!("{}@{}", daemon.identity(), daemon.notary()));
        all.push((home, daemon));
    }
    (all, args)
}

/// Polls `check` until it is true (or panics after `timeout`).
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Tests that run a whole network (the demo: nine daemons in one process; the network tests:
/// notary and wallet processes) take turns. Three or four of them at once on a 2-core machine
/// starve each other's daemons past their deadlines (the demo's 20 s wait for wallets to
/// replicate failed that way once the crate's tests shared one binary); lighter tests still run
/// beside them.
pub fn whole_network() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A loopback port that stays free for a daemon to bind (one definition, in the feed crate's
/// test helpers).
pub fn fixed_port() -> String {
    scrip_feed::bench::fixed_port()
}
