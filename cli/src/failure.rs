//! How a command ends: its exit status (`docs/cli.md` §6) and, when it fails, a kind and one
//! line for the user. A failure crosses the control socket as this value, so a command run by
//! the daemon ends exactly as one run in place.

use serde::{Deserialize, Serialize};

/// Done (for `scrip audit`: the wallet is sound).
pub const EXIT_DONE: i32 = 0;
/// An error: nothing was written.
pub const EXIT_FAILED: i32 = 1;
/// `scrip audit`: the wallet's log breaks a rule.
pub const EXIT_AUDIT_VIOLATION: i32 = 2;
/// The command's wallet entry is signed and kept pending, not certified yet: it is sent again
/// (the same bytes) by the next wallet command or `scrip pending --retry`. Do not repeat the
/// command: that would make a second entry.
pub const EXIT_PENDING: i32 = 3;
/// The daemon did not answer in time: whether the command took effect is unknown (`scrip
/// pending`, `scrip orders` tell).
pub const EXIT_UNKNOWN: i32 = 4;
/// The command line is not valid (clap's message on stderr).
pub const EXIT_USAGE: i32 = 64;

/// A command's failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// The exit status.
    pub exit: i32,
    /// A stable name: `error`, `pending`, `unknown`.
    pub kind: String,
    /// One line for the user.
    pub message: String,
}

impl Failure {
    /// The command's entry is signed and pending ([`EXIT_PENDING`]).
    pub fn pending(message: impl Into<String>) -> anyhow::Error {
        Failure {
            exit: EXIT_PENDING,
            kind: "pending".into(),
            message: message.into(),
        }
        .into()
    }

    /// The outcome is unknown ([`EXIT_UNKNOWN`]).
    pub fn unknown(message: impl Into<String>) -> anyhow::Error {
        Failure {
            exit: EXIT_UNKNOWN,
            kind: "unknown".into(),
            message: message.into(),
        }
        .into()
    }

    /// What `err` means for the exit status: a [`Failure`] it carries, else a plain error
    /// ([`EXIT_FAILED`]). The message is the whole chain on one line.
    pub fn of(err: &anyhow::Error) -> Failure {
        let message = format!("{err:#}").replace('\n', " ");
        if let Some(failure) = err.chain().find_map(|e| e.downcast_ref::<Failure>()) {
            return Failure {
                message,
                ..failure.clone()
            };
        }
        // A store write that failed part way (a full disk): whether it happened is unknown.
        if err
            .chain()
            .filter_map(feed_error)
            .any(|e| matches!(e, scrip_feed::Error::WriteUncertain { .. }))
        {
            return Failure {
                exit: EXIT_UNKNOWN,
                kind: "unknown".into(),
                message,
            };
        }
        Failure {
            exit: EXIT_FAILED,
            kind: "error".into(),
            message,
        }
    }
}

/// The store error inside `err`, however the library crates wrapped it.
fn feed_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a scrip_feed::Error> {
    if let Some(feed) = err.downcast_ref::<scrip_feed::Error>() {
        return Some(feed);
    }
    if let Some(scrip_notary::Error::Feed(feed)) = err.downcast_ref::<scrip_notary::Error>() {
        return Some(feed);
    }
    match err.downcast_ref::<scrip_replicate::Error>() {
        Some(scrip_replicate::Error::Feed(feed)) => Some(feed),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_its_status_through_context() {
        use anyhow::Context as _;
        let err: anyhow::Result<()> = Err(Failure::pending("kept"));
        let err = err.context("paying").unwrap_err();
        let failure = Failure::of(&err);
        assert_eq!(failure.exit, EXIT_PENDING);
        assert_eq!(failure.message, "paying: kept");
        assert_eq!(Failure::of(&anyhow::anyhow!("plain")).exit, EXIT_FAILED);
        let full = scrip_feed::Error::WriteUncertain {
            path: "store".into(),
            detail: "No space left on device".into(),
        };
        let wrapped: anyhow::Error = scrip_notary::Error::Feed(full).into();
        assert_eq!(Failure::of(&wrapped.context("posting")).exit, EXIT_UNKNOWN);
    }
}
