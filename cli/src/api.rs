//! The daemon's local control API: a Unix socket (mode 0600, in the home, which is 0700) taking
//! one JSON line per request, an [`Op`], and answering one JSON line, the [`Output`] or the
//! error. Commands use it when a daemon runs on their home, so that two processes never open
//! the same store.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::failure::Failure;
use crate::home::Home;
use crate::ops::{self, Context, Op};
use crate::output::Output;

/// Longest request or answer line.
pub const MAX_LINE_BYTES: usize = 4 << 20;
/// Requests served at once.
pub const MAX_API_CLIENTS: usize = 16;
/// Time a connection to the control socket has to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One answer of the control socket (and of the web wallet's `/api/op`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Answer {
    Ok(Box<Output>),
    Error(Failure),
}

/// A connection to the daemon running on `home`, if one answers.
pub async fn connect(home: &Home) -> Option<UnixStream> {
    UnixStream::connect(home.socket()).await.ok()
}

/// Sends `op` to the daemon over `stream` and returns its answer, waiting at most `timeout`
/// (then the daemon, named by its pid, is reported as not answering: whether `op` took effect
/// is unknown, [`Failure::unknown`]).
pub async fn call(stream: UnixStream, op: &Op, timeout: Duration) -> Result<Output> {
    let pid = stream
        .peer_cred()
        .ok()
        .and_then(|cred| cred.pid())
        .map_or_else(|| "?".to_owned(), |pid| pid.to_string());
    let exchange = async {
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_string(op)?;
        line.push('\n');
        write
            .write_all(line.as_bytes())
            .await
            .context("talking to the daemon")?;
        let mut answer = String::new();
        let mut reader =
            BufReader::new(read).take(u64::try_from(MAX_LINE_BYTES).unwrap_or(u64::MAX));
        reader
            .read_line(&mut answer)
            .await
            .context("reading the daemon's answer")?;
        if answer.is_empty() {
            bail!("the daemon closed the connection without answering");
        }
        match serde_json::from_str::<Answer>(&answer).context("the daemon's answer")? {
            Answer::Ok(output) => Ok(*output),
            Answer::Error(failure) => Err(failure.into()),
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(answer) => answer,
        Err(_) => Err(Failure::unknown(format!(
            "the daemon (pid {pid}) did not answer within {}s: it may be paused or overloaded; \
             whether the command took effect is unknown (see `scrip pending` and `scrip orders`)",
            timeout.as_secs()
        ))),
    }
}

/// Binds the control socket of `home` (replacing a stale one left by a killed daemon).
pub async fn bind(home: &Home) -> Result<UnixListener> {
    let path = home.socket();
    if path.exists() {
        if connect(home).await.is_some() {
            bail!(
                "a daemon is already running on {} (its socket answers)",
                home.root().display()
            );
        }
        std::fs::remove_file(&path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    Ok(listener)
}

/// Serves requests on `listener` with `ctx` until aborted.
pub fn serve(listener: UnixListener, ctx: Arc<Context>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_API_CLIENTS));
        loop {
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let ctx = Arc::clone(&ctx);
            tokio::spawn(async move {
                if let Err(err) = answer(stream, &ctx).await {
                    tracing::debug!(%err, "control connection failed");
                }
                drop(permit);
            });
        }
    })
}

async fn answer(stream: UnixStream, ctx: &Context) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read).take(u64::try_from(MAX_LINE_BYTES).unwrap_or(u64::MAX));
    let mut line = String::new();
    // A connection that sends nothing gives its place back (there are only 16).
    tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| anyhow!("no request within {}s", REQUEST_TIMEOUT.as_secs()))??;
    let answer = match serde_json::from_str::<Op>(&line) {
        Err(err) => Answer::Error(Failure::of(&anyhow!("bad request: {err}"))),
        Ok(op) => match ops::execute(ctx, op).await {
            Ok(output) => Answer::Ok(Box::new(output)),
            Err(err) => Answer::Error(Failure::of(&err)),
        },
    };
    let mut text = serde_json::to_string(&answer)?;
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    Ok(())
}

/// Removes the socket file (the daemon is stopping).
pub fn unbind(path: &Path) {
    let _ = std::fs::remove_file(path);
}
