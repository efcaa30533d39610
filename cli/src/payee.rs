//! Who a payment goes to, checked before anything is signed: nobody loses money to a typo, to
//! paying a person's identity instead of their wallet, to a wallet nobody here can see, or to a
//! receiver whose notaries could never safely accept the payment (`docs/cli.md` §5).

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use scrip_feed::{FeedId, Seq, Store};
use scrip_ledger::content::wallet_notaries;
use scrip_ledger::{NotarySet, WalletAddress, check_overlap};
use scrip_notary::certified;

use crate::net;
use crate::ops::{Context, parse_feed, read_person};

/// How long `pay` waits for a receiver's wallet to arrive from peers when it is not held.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// What a feed held here is.
enum Held {
    /// A wallet (its certified genesis is held).
    Wallet,
    /// Another feed (a person's identity), with the wallet it links to, if any.
    Identity(Option<FeedId>),
    /// Nothing of it is held.
    Unknown,
}

/// The wallet an identity names as its own: its latest wallet link (`ledger.md` §1), else the
/// one wallet it follows (what `scrip wallet create` did before links existed). Read in bounded
/// batches ([`read_person`]).
pub fn linked_wallet(store: &dyn Store, identity: &FeedId) -> Result<Option<FeedId>> {
    let person = read_person(store, identity)?;
    if person.wallet.is_some() {
        return Ok(person.wallet);
    }
    let mut wallets = Vec::new();
    for feed in person.follows {
        if certified::notary_set(store, &feed)?.is_some() {
            if !wallets.is_empty() {
                return Ok(None);
            }
            wallets.push(feed);
        }
    }
    Ok(wallets.pop())
}

fn held(store: &dyn Store, feed: &FeedId) -> Result<Held> {
    let Some(first) = store.get(feed, Seq::FIRST)? else {
        return Ok(Held::Unknown);
    };
    if wallet_notaries(&first).is_some() {
        let certified = certified::log(store, feed, 1, 1)?
            .first()
            .is_some_and(|genesis| genesis.certificate.is_some());
        return Ok(if certified {
            Held::Wallet
        } else {
            Held::Unknown
        });
    }
    Ok(Held::Identity(linked_wallet(store, feed)?))
}

/// The wallet `typed` names, checked for a payment from `payer`: a well-formed address (or the
/// `@` id of a wallet held here), not the payer, a wallet whose certified genesis is held or
/// could be fetched from peers, and whose notaries overlap the payer's enough for both the
/// receiver's accept and the payer's reclaim (`ledger.md` §5). Every refusal says what to do.
pub async fn check(ctx: &Context, typed: &str, payer: FeedId) -> Result<FeedId> {
    let text = typed.trim();
    let wallet = if text.starts_with(scrip_ledger::address::ADDRESS_PREFIX) {
        WalletAddress::parse(text)
            .map_err(|defect| anyhow!("{text:?} is not a wallet address: {}", defect.reason()))?
            .wallet()
    } else if text.starts_with(FeedId::PREFIX) {
        let feed = parse_feed(text)?;
        if feed == payer || feed == ctx.identity.id() {
            bail!("you cannot pay yourself");
        }
        match held_after_fetch(ctx, feed).await? {
            Held::Wallet => feed,
            Held::Identity(linked) => {
                let nick = ctx
                    .nicks(vec![feed])
                    .await?
                    .remove(&feed)
                    .map_or(String::new(), |n| format!(" ({n})"));
                match linked {
                    Some(wallet) => bail!(
                        "{feed}{nick} is a person's identity, not a wallet: their wallet is {} \
                         (scrip pay {} ...)",
                        WalletAddress::of(wallet),
                        WalletAddress::of(wallet)
                    ),
                    None => bail!(
                        "{feed}{nick} is a person's identity, not a wallet, and names no wallet \
                         here: ask them for their wallet address (`scrip id` shows it, +...)"
                    ),
                }
            }
            Held::Unknown => bail!(
                "{feed} is not a wallet known here: pay a wallet address (+..., shown by the \
                 receiver's `scrip id`), which catches typos"
            ),
        }
    } else if let Some(contact) = ctx.home.contact(text)? {
        WalletAddress::parse(&contact.wallet)
            .map_err(|defect| {
                anyhow!(
                    "contact {} names {:?}, which is not a wallet address: {}",
                    contact.name,
                    contact.wallet,
                    defect.reason()
                )
            })?
            .wallet()
    } else {
        bail!(
            "{text:?} is neither a wallet address nor a contact: a wallet address starts with \
             '+' (the receiver's `scrip id` shows it); `scrip contact add NAME +...` names one"
        );
    };
    if wallet == payer || wallet == ctx.identity.id() {
        bail!("you cannot pay yourself");
    }
    if !matches!(held_after_fetch(ctx, wallet).await?, Held::Wallet) {
        bail!(
            "wallet {} is not known here and none of your peers had it within {}s: follow its \
             owner (scrip follow @ID) or fetch it (scrip sync ADDR), then pay again; nothing \
             was signed",
            WalletAddress::of(wallet),
            FETCH_TIMEOUT.as_secs()
        );
    }
    let store = std::sync::Arc::clone(&ctx.store);
    let (ours, theirs) = tokio::task::spawn_blocking(move || {
        Ok::<_, anyhow::Error>((
            certified::notary_set(store.as_ref(), &payer)?,
            certified::notary_set(store.as_ref(), &wallet)?,
        ))
    })
    .await??;
    let (Some(ours), Some(theirs)) = (ours, theirs) else {
        bail!("your wallet has no certified genesis yet: finish `scrip wallet create` first");
    };
    check_groups(&ours, &theirs, wallet)?;
    Ok(wallet)
}

/// The cross-group rule both ways: the receiver relies on the payer's certificate to accept,
/// and the payer on the receiver's to reclaim after a rejection.
fn check_groups(ours: &NotarySet, theirs: &NotarySet, wallet: FeedId) -> Result<()> {
    for (sender, receiver, what) in [
        (ours, theirs, "accept it"),
        (theirs, ours, "have a rejection reclaimed"),
    ] {
        if let Err((overlap, needed)) = check_overlap(sender, receiver) {
            bail!(
                "wallet {} cannot safely be paid from this wallet: its notaries {} share {overlap} \
                 with yours {}, and {needed} are needed (2·f + f' + 1 = 2·{} + {} + 1) for it to \
                 {what}; the payment could never be settled, so nothing was signed",
                WalletAddress::of(wallet),
                theirs.describe(),
                ours.describe(),
                sender.f(),
                receiver.f(),
            );
        }
    }
    Ok(())
}

/// What `feed` is here, after asking peers for it if nothing of it is held.
async fn held_after_fetch(ctx: &Context, feed: FeedId) -> Result<Held> {
    let store = std::sync::Arc::clone(&ctx.store);
    let now = tokio::task::spawn_blocking(move || held(store.as_ref(), &feed)).await??;
    if !matches!(now, Held::Unknown) {
        return Ok(now);
    }
    net::fetch_feed(ctx, feed, FETCH_TIMEOUT).await?;
    let store = std::sync::Arc::clone(&ctx.store);
    tokio::task::spawn_blocking(move || held(store.as_ref(), &feed)).await?
}
