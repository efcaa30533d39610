//! What commands return: one value per command, printed as text or (with `--json`) as JSON.
//! The same values travel over the daemon's control socket.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use scrip_ledger::{AuditReport, short_currency};
use serde::{Deserialize, Serialize};

/// An entry of a feed, as `scrip feed` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedLine {
    /// Its seq.
    pub seq: u64,
    /// The author's timestamp (ms since the epoch).
    pub timestamp_ms: u64,
    /// What it is (`post`, `follow`, ..., `wallet`, `app`).
    pub kind: String,
    /// Its text, for humans.
    pub text: String,
}

/// A peer, as `scrip peer list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerLine {
    /// Its address.
    pub address: String,
    /// Its identity, if known.
    pub id: Option<String>,
    /// Connected now (only known with a running daemon).
    pub connected: bool,
}

/// A notary of the wallet, as `scrip wallet notaries` found it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotaryLine {
    /// Its identity.
    pub id: String,
    /// Its notary service address.
    pub address: String,
    /// Whether it answered, as that notary, within the request timeout.
    pub answered: bool,
    /// The last seq of this wallet it holds certified, if it answered.
    pub certified_head: Option<u64>,
    /// Why it did not answer.
    pub error: Option<String>,
}

/// An order, as `scrip orders` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The order id (`%...`).
    pub id: String,
    /// `incoming` or `outgoing`.
    pub direction: String,
    /// The sender's name, if it is a contact.
    pub from_name: Option<String>,
    /// The receiver's name, if it is a contact.
    pub to_name: Option<String>,
    /// The sender's wallet.
    pub from: String,
    /// The receiver's wallet.
    pub to: String,
    /// The amount, as a decimal.
    pub amount: String,
    /// The currency, `CODE@ISSUER` (the issuer's full id).
    pub currency: String,
    /// How it stands or ended: `pending`, `accepted`, `rejected`, `reclaimed`, `cancelled`
    /// or `refunded`.
    pub status: String,
    /// The sender's memo.
    pub memo: String,
    /// Its expiry, in milliseconds since the Unix epoch (null for an old order without one).
    pub expires: Option<u64>,
    /// Its hash lock (64 hex digits), if any.
    pub condition: Option<String>,
    /// For people: the time left to accept it, what its expiry means now, or the receiver's
    /// reason if it was rejected (`rejected: …`); otherwise empty.
    pub note: String,
    /// When the payer signed it, in milliseconds since the Unix epoch (null for an order
    /// written before wallet entries carried the time).
    pub time: Option<u64>,
}

/// A contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactLine {
    /// The name.
    pub name: String,
    /// The wallet's address.
    pub wallet: String,
}

/// A balance line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceLine {
    /// The currency, `CODE@ISSUER` (the issuer's full id).
    pub currency: String,
    /// The amount, as a decimal.
    pub amount: String,
    /// The issuer's name, if it has one here (a contact, or `~NICK`: `docs/cli.md` §5).
    #[serde(default)]
    pub issuer_name: Option<String>,
    /// Whether this wallet is the currency's issuer (its own money, shown as issued by you).
    #[serde(default)]
    pub issued_here: bool,
}

/// An entry an earlier command left pending, settled before this command's own entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlierLine {
    /// `finished` (certified now, or before a crash) or `dropped` (it can never be certified).
    pub outcome: String,
    /// Its seq.
    pub seq: u64,
    /// Its id.
    pub id: String,
    /// What it is, for people.
    pub what: String,
    /// Why it was dropped.
    pub reason: Option<String>,
}

/// The entry left pending in this home: signed and saved, not certified yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLine {
    /// Its seq.
    pub seq: u64,
    /// Its id.
    pub id: String,
    /// What it is, for people.
    pub what: String,
    /// When it was signed (ms since the epoch; the pending file's time).
    pub since_ms: u64,
}

/// What a command produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Output {
    /// `scrip init`.
    Initialized {
        /// The home.
        home: String,
        /// The new identity.
        identity: String,
    },
    /// `scrip id`.
    Id {
        /// The home.
        home: String,
        /// The identity (`@...`).
        identity: String,
        /// Its nickname, if set.
        nick: Option<String>,
        /// The wallet, once created.
        wallet: Option<String>,
        /// Where `scrip serve` listens.
        listen: String,
        /// Whether a daemon runs on this home.
        daemon: bool,
        /// Where a join through an invite stands, while it waits or if it came to nothing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        joining: Option<String>,
    },
    /// A done thing worth one line.
    Done {
        /// The line.
        message: String,
    },
    /// `scrip contact list`.
    Contacts {
        /// The contacts, by name.
        contacts: Vec<ContactLine>,
    },
    /// `scrip hashlock`: a new secret and its lock.
    Hashlock {
        /// The secret (64 hex digits): keep it; accepting with it reveals it.
        preimage: String,
        /// Its lock, `blake3(preimage)` (64 hex digits): give it to the payer.
        lock: String,
    },
    /// `scrip wallet notaries`.
    Notaries {
        /// The wallet.
        wallet: String,
        /// Each notary, in the wallet's order.
        notaries: Vec<NotaryLine>,
        /// How long asking all of them took.
        asked_in_ms: u64,
    },
    /// `scrip invite`: the codes made, one per person invited.
    Invited {
        /// The codes (`invite:…`): each redeems one person, once; each is a secret until used.
        codes: Vec<String>,
        /// 0, or the size of the group they form.
        group: u8,
    },
    /// `scrip invite --list`: the invites this home made, and the group it forms.
    Invites {
        /// The group being formed, if any.
        group: Option<crate::home::GroupForming>,
        /// Every invite made, oldest first.
        invites: Vec<crate::home::InviteRecord>,
    },
    /// `scrip open`: the web wallet's address, with its token.
    Web {
        /// Open it in a browser on this machine (it holds the token: keep it to yourself).
        url: String,
    },
    /// An entry published on the identity's feed.
    Published {
        /// What.
        kind: String,
        /// Its seq.
        seq: u64,
        /// Its id.
        id: String,
    },
    /// `scrip peer list`.
    Peers {
        /// Known and connected peers.
        peers: Vec<PeerLine>,
    },
    /// `scrip feed`.
    Feed {
        /// The feed.
        feed: String,
        /// Its nickname.
        nick: Option<String>,
        /// Its latest seq held.
        head: u64,
        /// Entries, newest first.
        entries: Vec<FeedLine>,
    },
    /// `scrip sync`.
    Synced {
        /// The peer.
        peer: String,
        /// Entries received and stored.
        stored: u64,
    },
    /// `scrip forks`.
    Forks {
        /// (author, seq) of each proof.
        forks: Vec<(String, u64)>,
    },
    /// A wallet entry certified by its notaries.
    Certified {
        /// What (`genesis`, `mint`, `order`, `accept`, `reject`, `reclaim`).
        kind: String,
        /// The wallet.
        wallet: String,
        /// Its seq.
        seq: u64,
        /// Its id (for an order: the order id).
        id: String,
        /// Votes in its certificate.
        votes: usize,
        /// A line for humans.
        summary: String,
        /// An entry an earlier command left pending, settled first.
        earlier: Option<EarlierLine>,
    },
    /// `scrip pending`.
    Pending {
        /// The entry waiting for its certificate, if any.
        pending: Option<PendingLine>,
    },
    /// `scrip pending --retry`.
    Settled {
        /// What became of the pending entry (none was pending if `None`).
        earlier: Option<EarlierLine>,
    },
    /// `scrip orders`.
    Orders {
        /// The orders.
        orders: Vec<OrderLine>,
    },
    /// `scrip balance`.
    Balance {
        /// The wallet.
        wallet: String,
        /// Balances.
        balances: Vec<BalanceLine>,
        /// Outgoing orders in escrow (pending or rejected, not reclaimed).
        escrow: Vec<BalanceLine>,
        /// An entry signed and waiting for its certificate (not counted above).
        pending: Option<PendingLine>,
    },
    /// `scrip audit`.
    Audit {
        /// The report.
        report: AuditReport,
        /// Names of the wallets in the report (the audited one and its counterparties), by
        /// feed id, where they have one here (a contact, or `~NICK`).
        #[serde(default)]
        names: BTreeMap<String, String>,
    },
}

pub use crate::failure::EXIT_AUDIT_VIOLATION;

impl Output {
    /// The process exit status this output calls for.
    pub fn exit_code(&self) -> i32 {
        match self {
            Output::Audit { report, .. } if !report.is_sound() => EXIT_AUDIT_VIOLATION,
            _ => 0,
        }
    }

    /// Text for humans.
    // Long because: one arm per output variant, each a few lines of formatting; splitting by
    // variant would only add indirection.
    pub fn text(&self) -> String {
        let mut out = String::new();
        match self {
            Output::Initialized { home, identity } => {
                let _ = writeln!(out, "created {home}\nidentity {identity}");
                let _ = writeln!(
                    out,
                    "next: `scrip join CODE` if someone invited you, then `scrip serve` to run the node"
                );
            }
            Output::Id {
                home,
                identity,
                nick,
                wallet,
                listen,
                daemon,
                joining,
            } => {
                let _ = writeln!(out, "identity {identity}");
                if let Some(nick) = nick {
                    let _ = writeln!(out, "nick     {nick}");
                }
                let _ = writeln!(
                    out,
                    "wallet   {}",
                    wallet.as_deref().unwrap_or("none (scrip wallet create)")
                );
                let _ = writeln!(out, "home     {home}");
                let _ = writeln!(
                    out,
                    "daemon   {}",
                    if *daemon {
                        format!("running, replicating on {listen}")
                    } else {
                        "not running (scrip serve)".into()
                    }
                );
                if let Some(joining) = joining {
                    let _ = writeln!(out, "join     {joining}");
                }
            }
            Output::Done { message } => {
                let _ = writeln!(out, "{message}");
            }
            Output::Contacts { contacts } => {
                if contacts.is_empty() {
                    let _ = writeln!(out, "no contacts (scrip contact add NAME +...)");
                }
                for c in contacts {
                    let _ = writeln!(out, "{:<20} {}", c.name, c.wallet);
                }
            }
            Output::Web { url } => {
                let _ = writeln!(out, "{url}");
            }
            Output::Invited { codes, .. } => {
                // Only the codes, one per line: `sed -n 2p` gives the second person theirs.
                for code in codes {
                    let _ = writeln!(out, "{code}");
                }
            }
            Output::Invites { group, invites } => {
                if let Some(group) = group {
                    let joined = invites
                        .iter()
                        .filter(|i| i.group && i.joined.is_some())
                        .count();
                    let _ = writeln!(
                        out,
                        "group of {}: {joined} of {} joined; {}; {}",
                        group.size,
                        group.size.saturating_sub(1),
                        if group.published {
                            "published"
                        } else {
                            "not published yet"
                        },
                        if group.wallet {
                            "wallet created"
                        } else {
                            "no wallet yet"
                        }
                    );
                }
                if invites.is_empty() {
                    let _ = writeln!(out, "no invites (make one with `scrip invite`)");
                }
                for invite in invites {
                    let state = match (&invite.joined, &invite.refused) {
                        (Some(who), _) => format!("joined by {who}"),
                        (None, Some(why)) => format!("refused: {why}"),
                        (None, None) => "open".into(),
                    };
                    let _ = writeln!(
                        out,
                        "{}  {}  {}{state}",
                        when(invite.created),
                        invite.feed,
                        if invite.group { "group  " } else { "" }
                    );
                }
            }
            Output::Notaries {
                wallet,
                notaries,
                asked_in_ms,
            } => {
                let answered = notaries.iter().filter(|n| n.answered).count();
                let _ = writeln!(
                    out,
                    "wallet {wallet}: {answered} of {} notaries answered ({asked_in_ms} ms)",
                    notaries.len()
                );
                for n in notaries {
                    let state = match (&n.certified_head, &n.error) {
                        (Some(head), _) => format!("holds it up to #{head}"),
                        (None, Some(err)) => format!("no answer: {err}"),
                        (None, None) => "no answer".to_owned(),
                    };
                    let _ = writeln!(out, "  {} {}  {state}", n.id, n.address);
                }
            }
            Output::Hashlock { preimage, lock } => {
                let _ = writeln!(
                    out,
                    "lock    {lock}   (give it to the payer: scrip pay ... --condition LOCK)\n\
                     secret  {preimage}   (keep it until you accept: scrip accept ORDER \
                     --preimage SECRET)"
                );
            }
            Output::Published { kind, seq, id } => {
                let _ = writeln!(out, "published {kind} #{seq} {id}");
            }
            Output::Peers { peers } => {
                if peers.is_empty() {
                    let _ = writeln!(out, "no peers (scrip peer add ADDR)");
                }
                for peer in peers {
                    let _ = writeln!(
                        out,
                        "{:<24} {:<48} {}",
                        peer.address,
                        peer.id.as_deref().unwrap_or("(any identity)"),
                        if peer.connected { "connected" } else { "" }
                    );
                }
            }
            Output::Feed {
                feed,
                nick,
                head,
                entries,
            } => {
                let who = nick.as_ref().map_or(String::new(), |n| format!(" ({n})"));
                let _ = writeln!(out, "{feed}{who}: {head} entries");
                for e in entries {
                    let _ = writeln!(out, "#{:<5} {:<11} {}", e.seq, e.kind, e.text);
                }
            }
            Output::Synced { peer, stored } => {
                let _ = writeln!(out, "synced with {peer}: {stored} new entries");
            }
            Output::Forks { forks } => {
                if forks.is_empty() {
                    let _ = writeln!(out, "no fork proofs");
                }
                for (author, seq) in forks {
                    let _ = writeln!(out, "{author} signed two entries at #{seq}");
                }
            }
            Output::Certified {
                summary,
                votes,
                earlier,
                ..
            } => {
                if let Some(earlier) = earlier {
                    out.push_str(&earlier_text(earlier));
                }
                let _ = writeln!(out, "{summary} (certified by {votes} notaries)");
            }
            Output::Pending { pending } => match pending {
                None => {
                    let _ = writeln!(out, "nothing pending");
                }
                Some(p) => {
                    let _ = writeln!(
                        out,
                        "pending: {} ({}), signed {}, waiting for its notaries' certificate",
                        p.what,
                        p.id,
                        when(p.since_ms)
                    );
                    let _ = writeln!(
                        out,
                        "it is sent again (the same bytes) by the next wallet command or \
                         `scrip pending --retry`"
                    );
                }
            },
            Output::Settled { earlier } => match earlier {
                None => {
                    let _ = writeln!(out, "nothing was pending");
                }
                Some(earlier) => out.push_str(&earlier_text(earlier)),
            },
            Output::Orders { orders } => {
                if orders.is_empty() {
                    let _ = writeln!(out, "no orders");
                }
                for o in orders {
                    let (arrow, other) = if o.direction == "incoming" {
                        ("from", o.from_name.as_ref().unwrap_or(&o.from))
                    } else {
                        ("to", o.to_name.as_ref().unwrap_or(&o.to))
                    };
                    let memo = if o.memo.is_empty() {
                        String::new()
                    } else {
                        format!("  \"{}\"", o.memo)
                    };
                    let note = if o.note.is_empty() {
                        String::new()
                    } else {
                        format!("  ({})", o.note)
                    };
                    let date = o.time.map_or_else(|| "-".repeat(16), when);
                    let _ = writeln!(
                        out,
                        "{date}  {}  {:>12} {:<15} {arrow} {other}  {}{memo}{note}",
                        o.id,
                        o.amount,
                        short_currency(&o.currency),
                        o.status
                    );
                }
            }
            Output::Balance {
                wallet,
                balances,
                escrow,
                pending,
            } => {
                let _ = writeln!(out, "wallet {wallet}");
                if balances.is_empty() {
                    let _ = writeln!(out, "  no money yet");
                }
                for b in balances {
                    let issuer = match (&b.issuer_name, b.issued_here) {
                        (_, true) => "  (issued by you)".to_owned(),
                        (Some(name), false) => format!("  (issued by {name})"),
                        (None, false) => String::new(),
                    };
                    let _ = writeln!(
                        out,
                        "  {:>14} {}{issuer}",
                        b.amount,
                        short_currency(&b.currency)
                    );
                }
                for e in escrow {
                    let _ = writeln!(
                        out,
                        "  {:>14} {} in escrow (sent, not accepted yet)",
                        e.amount,
                        short_currency(&e.currency)
                    );
                }
                if let Some(p) = pending {
                    let _ = writeln!(
                        out,
                        "  pending: {} is signed but not certified yet (scrip pending)",
                        p.what
                    );
                }
            }
            Output::Audit { report, names } => out.push_str(&audit_text(report, names)),
        }
        out
    }
}

/// The line for an earlier entry settled before a command's own.
fn earlier_text(earlier: &EarlierLine) -> String {
    match &earlier.reason {
        None => format!(
            "first, the earlier {} ({}) was certified\n",
            earlier.what, earlier.id
        ),
        Some(reason) => format!(
            "first, the earlier {} ({}) was dropped: {reason}\n",
            earlier.what, earlier.id
        ),
    }
}

/// A time in ms since the epoch, as a date and time in the local time zone (UTC if it is not
/// known).
pub fn when(ms: u64) -> String {
    let Ok(at) = jiff::Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX)) else {
        return format!("{ms} ms after the epoch");
    };
    at.to_zoned(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// The step-by-step audit report.
pub fn audit_text(report: &AuditReport, names: &BTreeMap<String, String>) -> String {
    let named = |id: &str| {
        names
            .get(id)
            .map_or_else(|| id.to_owned(), |name| format!("{id} ({name})"))
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "audit of {}: {} entries, {} notaries, quorum {}",
        named(&report.wallet.to_string()),
        report.entries,
        report.notaries.len(),
        report.quorum
    );
    for step in &report.steps {
        let money = match (&step.amount, &step.currency) {
            (Some(amount), Some(currency)) => format!(
                "{}{amount} {}",
                step.direction.as_deref().unwrap_or(" "),
                short_currency(currency)
            ),
            _ => String::new(),
        };
        let with = step.counterparty.as_ref().map_or(String::new(), |c| {
            format!(" with {}", named(&c.to_string()))
        });
        let after = step
            .balance_after
            .as_ref()
            .map_or(String::new(), |b| format!("  -> {b}"));
        let _ = writeln!(
            out,
            "  #{:<5} {:<8} {money:>26}{after}{with}",
            step.seq, step.kind
        );
    }
    for b in &report.balances {
        let _ = writeln!(
            out,
            "  balance {} {}",
            b.amount,
            short_currency(&b.currency)
        );
    }
    match &report.verdict {
        scrip_ledger::audit::Verdict::Sound => {
            let _ = writeln!(out, "SOUND: every entry verified");
        }
        scrip_ledger::audit::Verdict::Violation { seq, code, reason } => {
            let _ = writeln!(out, "VIOLATION at #{seq} [{code}]: {reason}");
        }
    }
    out
}

/// One example of every JSON shape a command prints with `--json` (the control socket carries
/// the same values), keyed by the command that prints it, plus the error shape. Pinned by
/// `docs/cli-output.json`: a changed shape fails `every_json_shape_is_the_documented_one` until
/// the file (and docs/cli.md) say so.
// Long because: data, not logic: one literal example per output shape.
pub fn json_examples() -> serde_json::Value {
    use scrip_ledger::audit::{AuditStep, BalanceLine as AuditBalance, Verdict};
    let wallet = "+3yZe7dW1qfNvLhGgQXzK2r8Vu5mJp4sTc9bA6nHkE1oD7xRy";
    let feed = "@8ZfKtzK7ZX8rtGhAqUDS4MVPT143o1FwKjw2aBwta8bE";
    let issuer = "@4dFUkGx9qPz3WcNrVb7LmYt2Hs8KjXa5RgEo1TfDi6Mn";
    let eur = format!("EUR{issuer}");
    let order = "%5tGkQ2rVb8NxLmW3yZcHf7JpK4sTd9aE6gUo1XiRn";
    let earlier = EarlierLine {
        outcome: "finished".into(),
        seq: 4,
        id: "%9aE6gUo1XiRn5tGkQ2rVb8NxLmW3yZcHf7JpK4sTd".into(),
        what: "order of 5.00 EUR to +3yZe7dW1q".into(),
        reason: None,
    };
    let pending = PendingLine {
        seq: 6,
        id: "%2rVb8NxLmW3yZcHf7JpK4sTd9aE6gUo1XiRn5tGkQ".into(),
        what: "order of 1.00 EUR to +3yZe7dW1q".into(),
        since_ms: 1_795_971_985_000,
    };
    let balance = BalanceLine {
        currency: eur.clone(),
        amount: "63.75".into(),
        issuer_name: Some("~carol".into()),
        issued_here: false,
    };
    let certified = |kind: &str, seq: u64, summary: &str| Output::Certified {
        kind: kind.into(),
        wallet: wallet.into(),
        seq,
        id: order.into(),
        votes: 3,
        summary: summary.into(),
        earlier: (kind == "order").then(|| earlier.clone()),
    };
    let examples: Vec<(&str, Output)> = vec![
        (
            "init",
            Output::Initialized {
                home: "/home/alice/.local/share/scrip".into(),
                identity: feed.into(),
            },
        ),
        (
            "id",
            Output::Id {
                home: "/home/alice/.local/share/scrip".into(),
                identity: feed.into(),
                nick: Some("alice".into()),
                wallet: Some(wallet.into()),
                listen: "127.0.0.1:7411".into(),
                daemon: true,
                joining: None,
            },
        ),
        (
            "id (while a group forms)",
            Output::Id {
                home: "/home/bob/.local/share/scrip".into(),
                identity: feed.into(),
                nick: None,
                wallet: None,
                listen: "127.0.0.1:7411".into(),
                daemon: true,
                joining: Some(
                    "joined @4fTq9ZbN…'s group of 5: your wallet is created when everyone has \
                     joined (keep `scrip serve` running)"
                        .into(),
                ),
            },
        ),
        (
            "wallet abandon, peer add (one line for people)",
            Output::Done {
                message: "added peer 127.0.0.1:7421".into(),
            },
        ),
        (
            "contact list",
            Output::Contacts {
                contacts: vec![ContactLine {
                    name: "bob".into(),
                    wallet: "+8Hq2Zx4".into(),
                }],
            },
        ),
        (
            "hashlock",
            Output::Hashlock {
                preimage: "0707070707070707070707070707070707070707070707070707070707070707".into(),
                lock: "ebaf85b465a09de21b398fb112c1500f2cbe658c42f379e0c0f18d24b819f637".into(),
            },
        ),
        (
            "wallet notaries",
            Output::Notaries {
                wallet: wallet.into(),
                notaries: vec![
                    NotaryLine {
                        id: issuer.into(),
                        address: "127.0.0.1:7412".into(),
                        answered: true,
                        certified_head: Some(6),
                        error: None,
                    },
                    NotaryLine {
                        id: feed.into(),
                        address: "127.0.0.1:7422".into(),
                        answered: false,
                        certified_head: None,
                        error: Some("connection refused".into()),
                    },
                ],
                asked_in_ms: 12,
            },
        ),
        (
            "invite",
            Output::Invited {
                codes: vec!["invite:3mYb8x…(about 200 characters)".into()],
                group: 0,
            },
        ),
        (
            "invite --list",
            Output::Invites {
                group: Some(crate::home::GroupForming {
                    size: 5,
                    notary: "127.0.0.1:7602".into(),
                    members: Vec::new(),
                    invites: Vec::new(),
                    published: false,
                    wallet: false,
                }),
                invites: vec![
                    crate::home::InviteRecord {
                        feed: feed.into(),
                        group: true,
                        created: 1_767_225_600_000,
                        joined: Some(issuer.into()),
                        notary: Some("127.0.0.1:7612".into()),
                        refused: None,
                    },
                    crate::home::InviteRecord {
                        feed: wallet.into(),
                        group: true,
                        created: 1_767_225_600_000,
                        joined: None,
                        notary: None,
                        refused: None,
                    },
                ],
            },
        ),
        (
            "open",
            Output::Web {
                url: "http://127.0.0.1:7413/?token=5d1c0e0f9b8a7f6e5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a291807f6e".into(),
            },
        ),
        (
            "post, nick, follow, unfollow, block",
            Output::Published {
                kind: "post".into(),
                seq: 12,
                id: "%7JpK4sTd9aE6gUo1XiRn5tGkQ2rVb8NxLmW3yZcHf".into(),
            },
        ),
        (
            "peer list",
            Output::Peers {
                peers: vec![PeerLine {
                    address: "127.0.0.1:7421".into(),
                    id: Some(feed.into()),
                    connected: true,
                }],
            },
        ),
        (
            "feed",
            Output::Feed {
                feed: feed.into(),
                nick: Some("alice".into()),
                head: 12,
                entries: vec![FeedLine {
                    seq: 12,
                    timestamp_ms: 1_795_971_985_000,
                    kind: "post".into(),
                    text: "hello".into(),
                }],
            },
        ),
        (
            "sync",
            Output::Synced {
                peer: "127.0.0.1:7421".into(),
                stored: 40,
            },
        ),
        (
            "forks",
            Output::Forks {
                forks: vec![(feed.into(), 7)],
            },
        ),
        (
            "wallet create",
            certified("genesis", 1, "wallet created with 4 notaries (quorum 3)"),
        ),
        ("mint", certified("mint", 2, "minted 100.00 EUR")),
        (
            "pay",
            certified("order", 5, "ordered 12.50 EUR to +3yZe7dW1q"),
        ),
        (
            "accept, reject, reclaim",
            certified("accept", 3, "accepted 12.50 EUR"),
        ),
        (
            "pending",
            Output::Pending {
                pending: Some(pending.clone()),
            },
        ),
        (
            "pending --retry",
            Output::Settled {
                earlier: Some(EarlierLine {
                    outcome: "dropped".into(),
                    reason: Some("refused by 2 notaries: overspend".into()),
                    ..earlier.clone()
                }),
            },
        ),
        (
            "orders",
            Output::Orders {
                orders: vec![OrderLine {
                    id: order.into(),
                    direction: "incoming".into(),
                    from_name: Some("alice".into()),
                    to_name: None,
                    from: wallet.into(),
                    to: "+8Hq2Zx4".into(),
                    amount: "12.50".into(),
                    currency: eur.clone(),
                    status: "pending".into(),
                    memo: "lunch".into(),
                    expires: Some(1_796_000_000_000),
                    condition: None,
                    note: "expires in 6d 23h".into(),
                    time: Some(1_795_395_200_000),
                }],
            },
        ),
        (
            "balance",
            Output::Balance {
                wallet: wallet.into(),
                balances: vec![balance.clone()],
                escrow: vec![BalanceLine {
                    amount: "12.50".into(),
                    ..balance
                }],
                pending: Some(pending),
            },
        ),
        (
            "audit",
            Output::Audit {
                names: [(issuer.to_owned(), "~carol".to_owned())].into(),
                report: AuditReport {
                    wallet: feed.into(),
                    entries: 2,
                    notaries: vec![issuer.into()],
                    quorum: 1,
                    steps: vec![AuditStep {
                        seq: 2,
                        entry: order.into(),
                        kind: "accept".into(),
                        counterparty: Some(issuer.into()),
                        order: Some(order.into()),
                        currency: Some(eur.clone()),
                        amount: Some("25.00".into()),
                        direction: Some("+".into()),
                        balance_after: Some("25.00".into()),
                        expiry: None,
                        condition: None,
                        preimage: None,
                    }],
                    balances: vec![AuditBalance {
                        currency: eur,
                        amount: "25.00".into(),
                    }],
                    verdict: Verdict::Sound,
                },
            },
        ),
    ];
    // Every variant has its example (this match has no wildcard: a new variant needs one).
    let covered = |o: &Output| match o {
        Output::Initialized { .. } => 0,
        Output::Id { .. } => 1,
        Output::Done { .. } => 2,
        Output::Published { .. } => 3,
        Output::Peers { .. } => 4,
        Output::Feed { .. } => 5,
        Output::Synced { .. } => 6,
        Output::Forks { .. } => 7,
        Output::Certified { .. } => 8,
        Output::Pending { .. } => 9,
        Output::Settled { .. } => 10,
        Output::Orders { .. } => 11,
        Output::Balance { .. } => 12,
        Output::Audit { .. } => 13,
        Output::Hashlock { .. } => 14,
        Output::Contacts { .. } => 15,
        Output::Web { .. } => 16,
        Output::Notaries { .. } => 17,
        Output::Invited { .. } => 18,
        Output::Invites { .. } => 19,
    };
    let mut seen: Vec<usize> = examples.iter().map(|(_, o)| covered(o)).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(
        seen,
        (0..20).collect::<Vec<_>>(),
        "an Output variant without an example"
    );
    let mut all = serde_json::Map::new();
    for (command, output) in examples {
        let value = serde_json::to_value(&output).unwrap_or_default();
        all.insert(command.to_owned(), value);
    }
    all.insert(
        "any command that fails".into(),
        serde_json::json!({
            "result": "error",
            "kind": "error",
            "exit": 1,
            "error": "\"12.345\" has more decimals than EUR (2)",
        }),
    );
    serde_json::Value::Object(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON of every command is the one docs/cli-output.json shows (regenerate with
    /// `SCRIP_REGEN_VECTORS=1`, then say in docs/cli.md what changed).
    #[test]
    fn every_json_shape_is_the_documented_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cli-output.json");
        let text = format!("{:#}\n", json_examples());
        if std::env::var("SCRIP_REGEN_VECTORS").is_ok() {
            std::fs::write(path, &text).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        let frozen = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            frozen == text,
            "the JSON output changed; if on purpose, regenerate {path} with SCRIP_REGEN_VECTORS=1 and document it:\n{text}"
        );
    }

    /// A balance names its currency's issuer: you for your own money, else the issuer's name
    /// here, else nothing.
    #[test]
    fn a_balance_says_who_issued_each_currency() {
        let line = |issuer_name: Option<&str>, issued_here| BalanceLine {
            currency: "EUR@8Q1muYT7NAhx".into(),
            amount: "1.00".into(),
            issuer_name: issuer_name.map(str::to_owned),
            issued_here,
        };
        let text = Output::Balance {
            wallet: "+me".into(),
            balances: vec![
                line(Some("~alice"), true),
                line(Some("~carol"), false),
                line(None, false),
            ],
            escrow: Vec::new(),
            pending: None,
        }
        .text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].ends_with("(issued by you)"), "{text}");
        assert!(lines[2].ends_with("(issued by ~carol)"), "{text}");
        assert!(!lines[3].contains("issued by"), "{text}");
    }

    #[test]
    fn times_are_dates_in_some_zone() {
        let text = when(1_795_971_985_000);
        assert!(text.starts_with("2026-11-"), "{text}");
    }
}
