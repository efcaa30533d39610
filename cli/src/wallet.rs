//! The wallet's own lifecycle, around the notary client: entries left pending by an earlier
//! command (settled first, reported, shown by `scrip pending`), and checks before a wallet is
//! created or abandoned (`docs/cli.md` §4).

use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use scrip_feed::Entry;
use scrip_ledger::{CertifiedEntry, WalletEntry};
use scrip_notary::client::{Earlier, probe};
use scrip_notary::{ClientConfig, NotaryAddr, PendingFile};
use scrip_replicate::transport::Tcp;

use crate::failure::Failure;
use crate::ops::{Context, address, transport};
use crate::output::{EarlierLine, NotaryLine, Output, PendingLine};

/// Time a CLI wallet client gives each phase (head query, an earlier entry, the new entry) to
/// gather a quorum: three phases fit in the default command timeout of 30 s.
pub const WALLET_DEADLINE: std::time::Duration = std::time::Duration::from_secs(9);

/// The client settings of the CLI's wallet commands.
pub fn client_config(ctx: &Context) -> Result<ClientConfig> {
    Ok(ClientConfig {
        transport: transport(&ctx.config)?,
        deadline: WALLET_DEADLINE,
        ..ClientConfig::default()
    })
}

/// A wallet command's result: its own certified entry, and what became of an entry an earlier
/// command left pending.
#[derive(Debug)]
pub struct Submitted {
    /// The earlier entry, settled first.
    pub earlier: Option<Earlier>,
    /// This command's entry.
    pub certified: CertifiedEntry,
}

/// A line describing a wallet entry for people: `#4 order 12.50 EUR to +8Hq…`.
pub fn describe(entry: &Entry) -> String {
    let seq = entry.seq().get();
    let content = entry.payload().map(WalletEntry::from_payload);
    let what = match content {
        Some(Ok(WalletEntry::Genesis(g))) => {
            format!("wallet genesis ({} notaries)", g.notaries.len())
        }
        Some(Ok(WalletEntry::Mint(m))) => format!(
            "mint {} {}",
            m.amount.display(m.currency.decimals),
            m.currency.code.as_str()
        ),
        Some(Ok(WalletEntry::Order(o))) => format!(
            "order {} {} to {}",
            o.amount.display(o.currency.decimals),
            o.currency.code.as_str(),
            address(o.to)
        ),
        Some(Ok(WalletEntry::Accept(a))) => format!("accept of order {}", cited(&a.order)),
        Some(Ok(WalletEntry::Reject(r))) => format!("reject of order {}", cited(&r.order)),
        Some(Ok(WalletEntry::Reclaim(r))) => format!("reclaim of order {}", r.order.id),
        _ => "an entry".into(),
    };
    format!("#{seq} {what}")
}

fn cited(citation: &scrip_ledger::Citation) -> String {
    citation.cited_id().to_string()
}

/// The report line of a settled earlier entry.
pub fn earlier_line(earlier: &Earlier) -> EarlierLine {
    let entry = earlier.entry();
    match earlier {
        Earlier::Finished(_) => EarlierLine {
            outcome: "finished".into(),
            seq: entry.seq().get(),
            id: entry.id().to_string(),
            what: describe(entry),
            reason: None,
        },
        Earlier::Dropped { reason, .. } => EarlierLine {
            outcome: "dropped".into(),
            seq: entry.seq().get(),
            id: entry.id().to_string(),
            what: describe(entry),
            reason: Some(reason.clone()),
        },
    }
}

/// The entry left pending in this home, if any (read from its pending file: only one process
/// writes it, and it is the truth).
pub fn pending_line(ctx: &Context) -> Result<Option<PendingLine>> {
    let path = ctx.home.pending();
    let Some(entry) = PendingFile::new(&path).load()? else {
        return Ok(None);
    };
    let since_ms = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Ok(Some(PendingLine {
        seq: entry.seq().get(),
        id: entry.id().to_string(),
        what: describe(&entry),
        since_ms,
    }))
}

/// Gets `content` certified as the wallet's next entry, after settling any entry an earlier
/// command left pending. Failures say whether this command's entry is pending
/// ([`Failure::pending`]: do not repeat the command) or nothing new was signed.
pub async fn submit(ctx: &Context, content: WalletEntry) -> Result<Submitted> {
    let mut guard = ctx.wallet_client().await?;
    let client = guard.as_mut().ok_or_else(|| anyhow!("no wallet client"))?;
    let earlier = match client.prepare().await {
        Ok(earlier) => earlier,
        Err(err) => {
            return Err(match client.pending().await.ok().flatten() {
                Some(entry) => anyhow!(
                    "{} signed earlier is still waiting for its notaries ({err}); nothing new \
                     was signed (`scrip pending` shows it, `scrip pending --retry` tries again)",
                    describe(&entry)
                ),
                None => anyhow!("{err}"),
            });
        }
    };
    if let Some(Earlier::Finished(done)) = &earlier {
        ctx.announce(done.entry.author(), done.entry.seq().get())
            .await;
    }
    let before = earlier
        .as_ref()
        .map(|e| {
            let line = earlier_line(e);
            format!(
                " (first, the earlier {} was {})",
                line.what,
                line.reason
                    .map_or_else(|| "certified".into(), |r| format!("dropped: {r}"))
            )
        })
        .unwrap_or_default();
    match client.propose(&content).await {
        Ok(certified) => {
            ctx.announce(certified.entry.author(), certified.entry.seq().get())
                .await;
            Ok(Submitted { earlier, certified })
        }
        Err(err) => match client.pending().await.ok().flatten() {
            Some(entry) => Err(Failure::pending(format!(
                "{} is signed but not certified yet: {err}; do not repeat this command (that \
                 would sign a second entry): the next wallet command, or `scrip pending \
                 --retry`, sends this one again{before}",
                describe(&entry)
            ))),
            None => Err(anyhow!("{err}{before}")),
        },
    }
}

/// A fate certificate for `order` from a quorum of the order wallet's notaries
/// (`ledger.md` §5a): a claim when this wallet is the order's receiver, a void when it is its
/// sender. Nothing is written to the wallet's log.
pub async fn fate(
    ctx: &Context,
    order: &scrip_ledger::Citation,
    fate: scrip_ledger::Fate,
    preimage: Option<scrip_ledger::content::Preimage>,
) -> Result<scrip_ledger::FateCertificate> {
    let guard = ctx.wallet_client().await?;
    let client = guard.as_ref().ok_or_else(|| anyhow!("no wallet client"))?;
    client.fate(order, fate, preimage).await.map_err(|err| {
        let what = match fate {
            scrip_ledger::Fate::Claimed => "claiming the order",
            scrip_ledger::Fate::Cancelled => "cancelling the order",
            scrip_ledger::Fate::Expired => "refunding the expired order",
        };
        match plain_fate_refusal(&err) {
            Some(meaning) => anyhow!("{what} failed: {meaning} ({err}); nothing was signed"),
            None => anyhow!("{what} failed: {err}; nothing was signed"),
        }
    })
}

/// What a definitive fate refusal means for the person who asked, by its code (`notary.md`
/// §3a); `None` for any other failure (its own text says it).
fn plain_fate_refusal(err: &scrip_notary::Error) -> Option<&'static str> {
    let scrip_notary::Error::Refused { refusal, .. } = err else {
        return None;
    };
    let scrip_notary::Refusal::Fate { code, .. } = refusal.as_ref() else {
        return None;
    };
    Some(match code.as_str() {
        "order-voided" => {
            "the payer has taken this order back (cancelled it, or had it refunded after it expired)"
        }
        "order-claimed" => "its receiver has already claimed it, to accept it",
        "order-expired" => "it expires too soon to be claimed safely, and goes back to the payer",
        "not-expired" => {
            "it has not expired yet (a refund is possible from clock_skew after its expiry)"
        }
        _ => return None,
    })
}

/// `scrip pending --retry`: settles the entry an earlier command left pending.
pub async fn retry(ctx: &Context) -> Result<Option<EarlierLine>> {
    let mut guard = ctx.wallet_client().await?;
    let client = guard.as_mut().ok_or_else(|| anyhow!("no wallet client"))?;
    match client.prepare().await {
        Ok(earlier) => {
            if let Some(Earlier::Finished(done)) = &earlier {
                ctx.announce(done.entry.author(), done.entry.seq().get())
                    .await;
            }
            Ok(earlier.as_ref().map(earlier_line))
        }
        Err(err) => match client.pending().await.ok().flatten() {
            Some(entry) => Err(Failure::pending(format!(
                "{} is still not certified: {err}; it stays pending",
                describe(&entry)
            ))),
            None => Err(anyhow!("{err}")),
        },
    }
}

/// `scrip wallet notaries`: each notary of the wallet asked once, now, how far it holds the
/// wallet (all at once, each within the client's request timeout).
pub async fn notaries_status(ctx: &Context) -> Result<Output> {
    let wallet = ctx.wallet_id()?.ok_or_else(crate::ops::no_wallet)?;
    let notaries = ctx.home.notaries()?;
    let began = std::time::Instant::now();
    let answers = probe(
        Arc::clone(&ctx.identity),
        &notaries,
        wallet,
        Tcp,
        &client_config(ctx)?,
    )
    .await?;
    let took = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
    let lines = answers
        .into_iter()
        .map(|(notary, answer)| match answer {
            Ok(info) => NotaryLine {
                id: notary.id.to_string(),
                address: notary.address,
                answered: true,
                certified_head: Some(info.certified_head),
                error: None,
            },
            Err(err) => NotaryLine {
                id: notary.id.to_string(),
                address: notary.address,
                answered: false,
                certified_head: None,
                error: Some(err.to_string()),
            },
        })
        .collect();
    Ok(Output::Notaries {
        wallet: address(wallet),
        notaries: lines,
        asked_in_ms: took,
    })
}

/// Checks, before a wallet is created, that every named notary answers as that notary: its
/// identity is proven by the transport, and it speaks the notary protocol. Unreachable ones
/// are refused unless `allow_unreachable` (and even then a quorum must answer).
pub async fn check_notaries(
    ctx: &Context,
    notaries: &[NotaryAddr],
    quorum: usize,
    allow_unreachable: bool,
) -> Result<()> {
    let answers = probe(
        Arc::clone(&ctx.identity),
        notaries,
        ctx.identity.id(),
        Tcp,
        &client_config(ctx)?,
    )
    .await?;
    let failed: Vec<String> = answers
        .iter()
        .filter_map(|(notary, answer)| {
            answer
                .as_ref()
                .err()
                .map(|err| format!("{}@{}: {err}", notary.id, notary.address))
        })
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    let answered = answers.len() - failed.len();
    if answered < quorum {
        bail!(
            "only {answered} of the named notaries answer as notaries ({quorum} needed to \
             certify anything): {}; nothing was created",
            failed.join("; ")
        );
    }
    if !allow_unreachable {
        bail!(
            "{} of the named notaries do not answer as notaries: {}; a wallet created now \
             would start with less fault tolerance than it names. Fix the addresses, or pass \
             --allow-unreachable to create it anyway; nothing was created",
            failed.len(),
            failed.join("; ")
        );
    }
    Ok(())
}

/// `scrip wallet abandon`: gives up a wallet whose genesis was never certified and for which no
/// reachable notary voted. Its key and pending file are kept, renamed (never deleted: if the
/// genesis were certified after all, the key still holds whatever was paid to it).
pub async fn abandon(ctx: &Context) -> Result<String> {
    let key = ctx
        .home
        .wallet_key()?
        .ok_or_else(|| anyhow!("this home has no wallet to abandon"))?;
    let wallet = key.id();
    let certified = ctx
        .blocking(move |store| {
            Ok(scrip_notary::certified::notary_set(store.as_ref(), &wallet)?.is_some())
        })
        .await?;
    if certified {
        bail!(
            "wallet {} exists (its genesis is certified): it cannot be abandoned",
            address(wallet)
        );
    }
    let notaries = ctx.home.notaries()?;
    let answers = probe(Arc::new(key), &notaries, wallet, Tcp, &client_config(ctx)?).await?;
    for (notary, answer) in &answers {
        if let Ok(info) = answer
            && (info.voted.is_some() || info.certified_head > 0)
        {
            bail!(
                "notary {} voted for this wallet's genesis, so it may still be certified: \
                 finish it with the same `scrip wallet create` command (or `scrip pending \
                 --retry`); nothing was changed",
                notary.id
            );
        }
    }
    let unreachable = answers.iter().filter(|(_, a)| a.is_err()).count();
    let mut guard = ctx.wallet_lock().await;
    *guard = None;
    let kept = ctx.home.abandon_wallet()?;
    drop(guard);
    Ok(format!(
        "abandoned wallet {} (never certified{}); its key is kept as {}; create a new one with \
         `scrip wallet create`",
        address(wallet),
        if unreachable > 0 {
            format!("; {unreachable} notaries could not be asked")
        } else {
            String::new()
        },
        kept.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each fate refusal a person can meet is said in plain words; anything else keeps its
    /// own text.
    #[test]
    fn fate_refusals_are_explained_in_plain_words() {
        let refused = |code: &str| scrip_notary::Error::Refused {
            refusal: Box::new(scrip_notary::Refusal::Fate {
                code: code.into(),
                reason: "the notary's reason".into(),
            }),
            count: 2,
        };
        for (code, words) in [
            ("order-voided", "the payer has taken this order back"),
            ("order-claimed", "already claimed it"),
            ("order-expired", "expires too soon"),
            ("not-expired", "has not expired yet"),
        ] {
            let said = plain_fate_refusal(&refused(code));
            assert!(said.is_some_and(|s| s.contains(words)), "{code}: {said:?}");
        }
        assert_eq!(plain_fate_refusal(&refused("missing-preimage")), None);
        let unavailable = scrip_notary::Error::Refused {
            refusal: Box::new(scrip_notary::Refusal::Unavailable {
                reason: "busy".into(),
            }),
            count: 2,
        };
        assert_eq!(plain_fate_refusal(&unavailable), None);
    }
}
