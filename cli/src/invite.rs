//! Invites and groups (`docs/protocol/invite.md`): the invite code, the join entry a joiner
//! signs with the invite's key, and the group entry an inviter publishes once everyone joined.
//! Pure encoding and checking here; `ops` runs `invite` and `join`, and the daemon's
//! [`crate::daemon`] loop acts on joins and groups as they replicate in.

use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use scrip_feed::{Content, Entry, FeedId, Keypair, Seq, Signature, codec};
use scrip_notary::NotaryAddr;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// What a code starts with.
pub const CODE_PREFIX: &str = "invite:";
/// Longest code taken, in characters.
pub const MAX_CODE_CHARS: usize = 4096;
/// Most notaries a code names, and most members of a group.
pub const MAX_MEMBERS: usize = 20;
/// The version of the code, the join entry and the group entry.
pub const INVITE_VERSION: u8 = 1;
/// The `App` kind of a join entry.
pub const JOIN_KIND: &str = "scrip/join";
/// The `App` kind of a group entry.
pub const GROUP_KIND: &str = "scrip/group";
/// The checksum's domain.
const CHECKSUM_DOMAIN: &[u8] = b"scrip/invite/v1";
/// The join proof's signing domain.
const JOIN_DOMAIN: &[u8] = b"scrip/join/v1";
/// Bytes of checksum at the end of a code.
const CHECKSUM_BYTES: usize = 4;

/// A notary on the wire: its identity and its notary service address.
type WireNotary = (FeedId, String);

/// An invite, as its code carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct Invite {
    /// The network key's bytes.
    pub network: [u8; 32],
    /// The inviter's identity.
    pub inviter: FeedId,
    /// A replication address of the inviter's node.
    pub address: String,
    /// The invite key's secret seed.
    seed: Zeroizing<[u8; 32]>,
    /// The notaries to create a wallet with (empty while a group forms).
    pub notaries: Vec<NotaryAddr>,
    /// 0, or the size of the group being formed.
    pub group: u8,
}

impl std::fmt::Debug for Invite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invite")
            .field("inviter", &self.inviter)
            .field("address", &self.address)
            .field("invite", &self.key().id())
            .field("notaries", &self.notaries.len())
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct WireInvite {
    version: u8,
    network: [u8; 32],
    inviter: FeedId,
    address: String,
    key: [u8; 32],
    notaries: Vec<WireNotary>,
    group: u8,
}

impl Invite {
    /// A new invite with a fresh key.
    pub fn draw(
        network: [u8; 32],
        inviter: FeedId,
        address: String,
        notaries: Vec<NotaryAddr>,
        group: u8,
    ) -> Result<Invite> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|e| anyhow!("the system's randomness: {e}"))?;
        let invite = Invite {
            network,
            inviter,
            address,
            seed,
            notaries,
            group,
        };
        invite.check()?;
        Ok(invite)
    }

    /// The invite's key: its feed id names the invite; the joiner signs the join entry with it.
    pub fn key(&self) -> Keypair {
        Keypair::from_seed(&self.seed)
    }

    /// The rules of `invite.md` §1 beyond the encoding.
    fn check(&self) -> Result<()> {
        check_address("the inviter's address", &self.address)?;
        if self.notaries.len() > MAX_MEMBERS {
            bail!("more than {MAX_MEMBERS} notaries");
        }
        for notary in &self.notaries {
            check_address("a notary's address", &notary.address)?;
        }
        if self.group != 0 {
            if !(2..=MAX_MEMBERS).contains(&usize::from(self.group)) {
                bail!("a group has 2 to {MAX_MEMBERS} members, not {}", self.group);
            }
            if !self.notaries.is_empty() {
                bail!("a group invite names no notaries (the group's members are)");
            }
        }
        Ok(())
    }

    /// The code: `invite:` and base58 of the encoding and its checksum.
    pub fn code(&self) -> Result<String> {
        let wire = WireInvite {
            version: INVITE_VERSION,
            network: self.network,
            inviter: self.inviter,
            address: self.address.clone(),
            key: *self.seed,
            notaries: self
                .notaries
                .iter()
                .map(|n| (n.id, n.address.clone()))
                .collect(),
            group: self.group,
        };
        let mut bytes = Zeroizing::new(codec::encode("invite", &wire)?);
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum);
        Ok(format!(
            "{CODE_PREFIX}{}",
            bs58::encode(bytes.as_slice()).into_string()
        ))
    }

    /// Reads a code; a typo is refused by the checksum before anything else.
    pub fn parse(code: &str) -> Result<Invite> {
        let code = code.trim();
        if code.chars().count() > MAX_CODE_CHARS {
            bail!("an invite code is at most {MAX_CODE_CHARS} characters");
        }
        let body = code
            .strip_prefix(CODE_PREFIX)
            .ok_or_else(|| anyhow!("an invite code starts with {CODE_PREFIX:?}"))?;
        let bytes = Zeroizing::new(bs58::decode(body).into_vec().map_err(|_| {
            anyhow!("this invite code has a character that is not in its alphabet: mistyped?")
        })?);
        let split = bytes
            .len()
            .checked_sub(CHECKSUM_BYTES)
            .ok_or_else(|| anyhow!("this invite code is too short: part of it is missing"))?;
        let (payload, sum) = bytes.split_at(split);
        if checksum(payload) != sum {
            bail!(
                "this invite code's checksum does not match: a character is mistyped, missing, \
                 extra or swapped"
            );
        }
        let version = payload.first().copied().unwrap_or_default();
        if version != INVITE_VERSION {
            bail!(
                "this invite code is of version {version}; this scrip reads version {INVITE_VERSION}"
            );
        }
        let wire: WireInvite = codec::decode_canonical("invite", payload)
            .map_err(|e| anyhow!("this invite code does not decode: {e}"))?;
        let invite = Invite {
            network: wire.network,
            inviter: wire.inviter,
            address: wire.address,
            seed: Zeroizing::new(wire.key),
            notaries: wire
                .notaries
                .into_iter()
                .map(|(id, address)| NotaryAddr { id, address })
                .collect(),
            group: wire.group,
        };
        invite
            .check()
            .map_err(|e| anyhow!("this invite code breaks a rule: {e}"))?;
        Ok(invite)
    }
}

fn checksum(bytes: &[u8]) -> [u8; CHECKSUM_BYTES] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(CHECKSUM_DOMAIN);
    hasher.update(&[0]);
    hasher.update(bytes);
    let mut sum = [0u8; CHECKSUM_BYTES];
    sum.copy_from_slice(&hasher.finalize().as_bytes()[..CHECKSUM_BYTES]);
    sum
}

/// An address as a `Pub` entry would take it (`feed.md`): 1–255 bytes, no whitespace.
pub fn check_address(what: &str, address: &str) -> Result<()> {
    Content::Pub {
        address: address.to_owned(),
    }
    .encode()
    .map(drop)
    .map_err(|e| anyhow!("{what} {address:?} is not an address: {e}"))
}

/// A redemption: who joined through an invite (`invite.md` §2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    /// The joiner's identity.
    pub identity: FeedId,
    /// The joiner's notary address (a group invite).
    pub notary: Option<String>,
    /// The joiner identity's signature binding the two to the invite.
    pub proof: Signature,
}

fn join_message(invite: &FeedId, notary: &Option<String>) -> Result<Vec<u8>> {
    let mut message = invite.as_bytes().to_vec();
    message.extend(codec::encode("join", notary)?);
    Ok(message)
}

/// The payload of the join entry `identity` signs (through the invite's key) for `invite`.
pub fn join_payload(
    invite: &FeedId,
    identity: &Keypair,
    notary: Option<String>,
) -> Result<Vec<u8>> {
    if let Some(address) = &notary {
        check_address("the notary address", address)?;
    }
    let proof = identity.sign(JOIN_DOMAIN, &join_message(invite, &notary)?);
    let join = Join {
        identity: identity.id(),
        notary,
        proof,
    };
    Ok(Content::App {
        kind: JOIN_KIND.into(),
        bytes: codec::encode("join", &(INVITE_VERSION, join))?,
    }
    .encode()?)
}

/// The join `entry` (held on the invite's feed) records, if it keeps every rule of `invite.md`
/// §2: the invite's first entry, a join of this version, the notary address well formed, and
/// the proof made by the joiner's identity.
pub fn read_join(entry: &Entry) -> Result<Join> {
    if entry.seq() != Seq::FIRST {
        bail!("a join is the first entry of its invite's feed");
    }
    let payload = entry
        .payload()
        .ok_or_else(|| anyhow!("the join entry's payload is not held"))?;
    let Content::App { kind, bytes } = Content::decode(payload)? else {
        bail!("the invite's entry is not a join");
    };
    if kind != JOIN_KIND {
        bail!("the invite's entry is a {kind:?}, not a join");
    }
    let (version, join): (u8, Join) = codec::decode_canonical("join", &bytes)?;
    if version != INVITE_VERSION {
        bail!("a join of version {version}");
    }
    if let Some(address) = &join.notary {
        check_address("the joiner's notary address", address)?;
    }
    let message = join_message(&entry.author(), &join.notary)?;
    if !scrip_feed::verify_signature(&join.identity, JOIN_DOMAIN, &message, &join.proof)? {
        bail!("the join's proof is not {}'s signature", join.identity);
    }
    Ok(join)
}

/// A group's roster (`invite.md` §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// The group's invites.
    pub invites: Vec<FeedId>,
    /// Every member with its notary address, the inviter first.
    pub members: Vec<NotaryAddr>,
}

#[derive(Serialize, Deserialize)]
struct WireGroup {
    invites: Vec<FeedId>,
    members: Vec<WireNotary>,
}

/// The payload of a group entry.
pub fn group_payload(group: &Group) -> Result<Vec<u8>> {
    if group.members.len() > MAX_MEMBERS {
        bail!("a group has at most {MAX_MEMBERS} members");
    }
    let wire = WireGroup {
        invites: group.invites.clone(),
        members: group
            .members
            .iter()
            .map(|m| (m.id, m.address.clone()))
            .collect(),
    };
    Ok(Content::App {
        kind: GROUP_KIND.into(),
        bytes: codec::encode("group", &(INVITE_VERSION, wire))?,
    }
    .encode()?)
}

/// The group a payload publishes, if it is a group entry of this version.
pub fn read_group(payload: &[u8]) -> Option<Group> {
    let Ok(Content::App { kind, bytes }) = Content::decode(payload) else {
        return None;
    };
    if kind != GROUP_KIND {
        return None;
    }
    let (version, wire): (u8, WireGroup) = codec::decode_canonical("group", &bytes).ok()?;
    if version != INVITE_VERSION || wire.members.len() > MAX_MEMBERS {
        return None;
    }
    Some(Group {
        invites: wire.invites,
        members: wire
            .members
            .into_iter()
            .map(|(id, address)| NotaryAddr { id, address })
            .collect(),
    })
}

impl Group {
    /// Whether this roster is the one `invite.md` §3 has a joiner act on: it lists `invite`
    /// among its invites and `me` with the notary address sent.
    pub fn admits(&self, invite: &FeedId, me: &FeedId, notary: &str) -> bool {
        self.invites.contains(invite)
            && self
                .members
                .iter()
                .any(|m| m.id == *me && m.address == notary)
    }
}

// ---------------------------------------------------------------------------------------------
// Effects: `scrip invite`, `scrip join`, and what the daemon does as joins and groups arrive.

/// Most entries of the inviter's feed read in one round while a joiner waits for its group.
const SCAN_BATCH: usize = 1024;
/// How often the daemon looks at open invites and at the group it waits for.
pub const TEND_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// An address others can dial: `host:port`, not port 0, not an unspecified IP (0.0.0.0).
fn dialable(what: &str, address: &str, setting: &str) -> Result<String> {
    check_address(what, address)?;
    if let Ok(socket) = address.parse::<std::net::SocketAddr>()
        && (socket.port() == 0 || socket.ip().is_unspecified())
    {
        bail!(
            "{what} {address} is not one others can dial: set {setting} to the address people \
             reach you at"
        );
    }
    Ok(address.to_owned())
}

/// `scrip invite`: `group` None makes one plain code, `Some(n)` makes the n − 1 codes of a
/// group of n. Returns the codes.
pub async fn invite(
    ctx: &crate::ops::Context,
    group: Option<u8>,
    address: Option<String>,
) -> Result<Vec<String>> {
    let me = ctx.identity.id();
    let address = match address {
        Some(address) => dialable("the address", &address, "--address")?,
        None => {
            let listening = match &ctx.node {
                Some(node) => node.status().await?.listen,
                None => None,
            };
            dialable(
                "this home's replication address",
                &listening.unwrap_or_else(|| ctx.config.listen.clone()),
                "`listen` in config.toml (or give --address)",
            )?
        }
    };
    let network = *ctx.config.network_key()?.as_bytes();
    let _files = ctx.invites.lock().await;
    let mut file = ctx.home.invites()?;
    let (count, size, notaries) = match group {
        None => (1, 0, ctx.home.notaries()?),
        Some(size) => {
            if !(2..=MAX_MEMBERS).contains(&usize::from(size)) {
                bail!("a group has 2 to {MAX_MEMBERS} members, you included");
            }
            match &file.group {
                // One more code for a group still forming (a seat whose code was lost, or
                // whose join was refused).
                Some(forming) if forming.size == size && forming.members.is_empty() => {}
                Some(forming) => bail!(
                    "this home formed a group of {} already{}; a home forms one group",
                    forming.size,
                    if forming.members.is_empty() {
                        " (still waiting: `scrip invite --list`)"
                    } else {
                        ""
                    }
                ),
                None => {}
            }
            if ctx.home.wallet_key()?.is_some() {
                bail!(
                    "this home has a wallet already; a group's members create theirs with the \
                     group's notaries. Invite people to it with `scrip invite` instead"
                );
            }
            if file.group.is_some() {
                (1, size, Vec::new())
            } else {
                let notary = dialable(
                    "this home's notary address",
                    &ctx.config.notary_listen,
                    "`notary_listen` in config.toml",
                )?;
                file.group = Some(crate::home::GroupForming {
                    size,
                    notary,
                    members: Vec::new(),
                    invites: Vec::new(),
                    published: false,
                    wallet: false,
                });
                (usize::from(size) - 1, size, Vec::new())
            }
        }
    };
    let mut codes = Vec::with_capacity(count);
    let mut feeds = Vec::with_capacity(count);
    for _ in 0..count {
        let invite = Invite::draw(network, me, address.clone(), notaries.clone(), size)?;
        let feed = invite.key().id();
        file.invite.push(crate::home::InviteRecord {
            feed: feed.to_string(),
            group: size != 0,
            created: crate::ops::now_ms(),
            joined: None,
            notary: None,
            refused: None,
        });
        feeds.push(feed);
        codes.push(invite.code()?);
    }
    // Recorded before any code is shown: a code never names an invite this home forgot.
    ctx.home.set_invites(&file)?;
    if let Some(node) = &ctx.node {
        for feed in feeds {
            node.request_feed(feed).await?;
        }
    }
    Ok(codes)
}

/// `scrip join CODE`: peers with and follows the inviter, signs the join entry on the
/// invite's feed, and records the invite; the daemon does the rest as the inviter answers.
/// Returns what was done, in words.
pub async fn join(ctx: &crate::ops::Context, code: &str) -> Result<String> {
    let invite = Invite::parse(code)?;
    let _files = ctx.invites.lock().await;
    let me = ctx.identity.id();
    if invite.inviter == me {
        bail!("this is your own invite: give it to the person you invite");
    }
    let key = invite.key();
    let feed = key.id();
    let mut said = Vec::new();
    // The network first: nothing else works across keys.
    if ctx.config.network_key()?.as_bytes() != &invite.network {
        if ctx.node.is_some() {
            bail!(
                "this invite is for another network than this daemon runs on: stop the daemon \
                 (`kill` it, or Ctrl-C), run `scrip join` again, then `scrip serve`"
            );
        }
        let mut config = ctx.config.clone();
        config.network_key = if invite.network
            == *scrip_replicate::transport::NetworkKey::default_network().as_bytes()
        {
            "default".into()
        } else {
            hex::encode(invite.network)
        };
        ctx.home.set_config(&config)?;
        said.push("set the network key in config.toml".to_owned());
    }
    let notary = if invite.group == 0 {
        None
    } else {
        Some(dialable(
            "this home's notary address",
            &ctx.config.notary_listen,
            "`notary_listen` in config.toml",
        )?)
    };
    // An unfinished join through another invite is given up for this one (said below).
    let replaced = ctx
        .home
        .joined()?
        .filter(|j| j.invite != feed.to_string() && !j.done)
        .map(|j| j.inviter);
    // The join entry: the invite's first and only entry.
    let identity = Arc::clone(&ctx.identity);
    let payload = join_payload(&feed, &identity, notary.clone())?;
    let stored = ctx
        .blocking(move |store| {
            if let Some(entry) = store.get(&feed, Seq::FIRST)? {
                return match read_join(&entry) {
                    Ok(join) if join.identity == identity.id() => Ok(false),
                    _ => Err(anyhow!(
                        "this invite was used already (its code redeems one person)"
                    )),
                };
            }
            store.publish(&key, scrip_feed::Timestamp::now(), payload)?;
            Ok(true)
        })
        .await?;
    ctx.announce(feed, 1).await;
    if let Some(node) = &ctx.node {
        node.request_feed(feed).await?;
    }
    ctx.home.set_joined(&crate::home::Joined {
        inviter: invite.inviter.to_string(),
        invite: feed.to_string(),
        group: invite.group,
        notary,
        notaries: invite
            .notaries
            .iter()
            .map(|n| format!("{}@{}", n.id, n.address))
            .collect(),
        scanned: 0,
        followed: false,
        done: false,
        left_out: false,
    })?;
    crate::ops::peer_add(
        ctx,
        invite.address.clone(),
        Some(invite.inviter.to_string()),
    )
    .await?;
    crate::ops::follow(ctx, &invite.inviter.to_string(), "follow").await?;
    said.push(format!(
        "peered with {} at {} and followed them",
        invite.inviter, invite.address
    ));
    if stored {
        said.push("signed the join".into());
    }
    if let Some(inviter) = replaced {
        said.push(format!(
            "gave up the unfinished join through {inviter}'s invite"
        ));
    }
    said.push(if invite.group != 0 {
        format!(
            "your wallet is created with the group's {} notaries when everyone has joined \
             (run `scrip serve --notary`: you are one of them)",
            invite.group
        )
    } else if invite.notaries.is_empty() {
        "the code names no notaries: create your wallet with `scrip wallet create`".into()
    } else {
        format!(
            "your wallet is created with the inviter's {} notaries by `scrip serve`",
            invite.notaries.len()
        )
    });
    Ok(said.join("; "))
}

/// One round of the daemon's invite work (every [`TEND_EVERY`]): joins that arrived on open
/// invites, the group entry once all of a group joined, the follows and the wallet a joiner
/// waits for. Errors are for the log; the next round tries again.
pub async fn tend(ctx: &crate::ops::Context) -> Result<()> {
    // `invite` and `join` wait meanwhile: each reads, changes and writes back the same files.
    let _files = ctx.invites.lock().await;
    tend_invites(ctx).await?;
    tend_joined(ctx).await
}

async fn tend_invites(ctx: &crate::ops::Context) -> Result<()> {
    let mut file = ctx.home.invites()?;
    let me = ctx.identity.id();
    let mut changed = false;
    for at in 0..file.invite.len() {
        let record = &file.invite[at];
        if record.joined.is_some() || record.refused.is_some() {
            continue;
        }
        let feed: FeedId = record.feed.parse()?;
        let Some(entry) = ctx
            .blocking(move |store| Ok(store.get(&feed, Seq::FIRST)?))
            .await?
        else {
            continue;
        };
        let join = match read_join(&entry) {
            Ok(join) if record.group && join.notary.is_none() => {
                Err(anyhow!("a join of a group invite without a notary address"))
            }
            Ok(join) if join.identity == me => Err(anyhow!("a join by this home itself")),
            Ok(join)
                if record.group
                    && file.invite.iter().any(|other| {
                        other.group && other.joined.as_deref() == Some(&join.identity.to_string())
                    }) =>
            {
                Err(anyhow!(
                    "{} joined through another of the group's invites already",
                    join.identity
                ))
            }
            other => other,
        };
        let record = &mut file.invite[at];
        match join {
            Ok(join) => {
                tracing::info!(joiner = %join.identity, invite = %feed, "joined through an invite");
                crate::ops::execute(
                    ctx,
                    crate::ops::Op::Follow {
                        feed: join.identity.to_string(),
                    },
                )
                .await?;
                record.joined = Some(join.identity.to_string());
                record.notary = join.notary;
            }
            Err(err) => {
                tracing::warn!(invite = %feed, %err, "an invite's entry was not taken");
                record.refused = Some(err.to_string());
            }
        }
        changed = true;
    }
    if changed {
        ctx.home.set_invites(&file)?;
    }
    let Some(forming) = file.group.clone() else {
        return Ok(());
    };
    if forming.members.is_empty() {
        // The roster: the first N − 1 to join, in the order the invites were made.
        let joined: Vec<&crate::home::InviteRecord> = file
            .invite
            .iter()
            .filter(|r| r.group && r.joined.is_some() && r.notary.is_some())
            .take(usize::from(forming.size).saturating_sub(1))
            .collect();
        if joined.len() + 1 < usize::from(forming.size) {
            return Ok(());
        }
        let mut members = vec![format!("{me}@{}", forming.notary)];
        let mut invites = Vec::new();
        for record in joined {
            if let (Some(id), Some(address)) = (&record.joined, &record.notary) {
                members.push(format!("{id}@{address}"));
                invites.push(record.feed.clone());
            }
        }
        // Fixed before it is published: a crash in between publishes this same roster.
        if let Some(g) = file.group.as_mut() {
            g.members = members;
            g.invites = invites;
        }
        ctx.home.set_invites(&file)?;
    }
    let Some(forming) = file.group.clone() else {
        return Ok(());
    };
    let roster = Group {
        invites: forming
            .invites
            .iter()
            .map(|f| f.parse())
            .collect::<std::result::Result<_, _>>()?,
        members: forming
            .members
            .iter()
            .map(|m| crate::ops::parse_notary(m))
            .collect::<Result<_>>()?,
    };
    if !forming.published {
        ctx.publish_payload(group_payload(&roster)?).await?;
        tracing::info!(
            members = roster.members.len(),
            "the group is complete: published"
        );
        if let Some(g) = file.group.as_mut() {
            g.published = true;
        }
        ctx.home.set_invites(&file)?;
    }
    if !forming.wallet {
        create_wallet(ctx, &roster.members).await?;
        if let Some(g) = file.group.as_mut() {
            g.wallet = true;
        }
        ctx.home.set_invites(&file)?;
    }
    Ok(())
}

/// Creates this home's wallet with `notaries` (a quorum must answer), unless it has one that is
/// certified already.
async fn create_wallet(ctx: &crate::ops::Context, notaries: &[NotaryAddr]) -> Result<()> {
    if ctx.home.wallet_key()?.is_some() && ctx.home.notaries()? != notaries {
        // A wallet of its own already (made before the group formed): kept.
        let wallet = ctx.wallet_id()?;
        let held = ctx
            .blocking(move |store| {
                Ok(match wallet {
                    Some(id) => scrip_notary::certified::notary_set(store.as_ref(), &id)?.is_some(),
                    None => false,
                })
            })
            .await?;
        if held {
            return Ok(());
        }
    }
    crate::ops::execute(
        ctx,
        crate::ops::Op::WalletCreate(crate::args::WalletCreate {
            notaries: notaries
                .iter()
                .map(|n| format!("{}@{}", n.id, n.address))
                .collect(),
            allow_unreachable: true,
        }),
    )
    .await
    .map(drop)
    .or_else(|err| {
        if err.to_string().contains("already has a wallet") {
            Ok(())
        } else {
            Err(err)
        }
    })
}

async fn tend_joined(ctx: &crate::ops::Context) -> Result<()> {
    let Some(mut joined) = ctx.home.joined()? else {
        return Ok(());
    };
    if joined.done {
        return Ok(());
    }
    let me = ctx.identity.id();
    if joined.group == 0 {
        let notaries: Vec<NotaryAddr> = joined
            .notaries
            .iter()
            .map(|n| crate::ops::parse_notary(n))
            .collect::<Result<_>>()?;
        if !notaries.is_empty() {
            create_wallet(ctx, &notaries).await?;
        }
        joined.done = true;
        return ctx.home.set_joined(&joined);
    }
    let inviter: FeedId = joined.inviter.parse()?;
    let invite: FeedId = joined.invite.parse()?;
    let notary = joined.notary.clone().unwrap_or_default();
    // The first group entry of the inviter's that names this invite; each entry read once.
    let from = Seq::new(joined.scanned.saturating_add(1));
    let (found, scanned) = ctx
        .blocking(move |store| {
            let mut scanned = from.get().saturating_sub(1);
            for entry in store.range(&inviter, from, SCAN_BATCH)? {
                scanned = entry.seq().get();
                if let Some(group) = entry.payload().and_then(read_group)
                    && group.invites.contains(&invite)
                {
                    return Ok((Some(group), scanned));
                }
            }
            Ok((None, scanned))
        })
        .await?;
    let Some(group) = found else {
        if scanned != joined.scanned {
            joined.scanned = scanned;
            ctx.home.set_joined(&joined)?;
        }
        return Ok(());
    };
    if !group.admits(&invite, &me, &notary) {
        tracing::warn!(
            %inviter,
            "the inviter's group was formed without this home: its invite was used by someone else"
        );
        joined.done = true;
        joined.left_out = true;
        return ctx.home.set_joined(&joined);
    }
    if !joined.followed {
        for member in &group.members {
            if member.id != me && member.id != inviter {
                crate::ops::execute(
                    ctx,
                    crate::ops::Op::Follow {
                        feed: member.id.to_string(),
                    },
                )
                .await?;
            }
        }
        joined.followed = true;
        ctx.home.set_joined(&joined)?;
    }
    create_wallet(ctx, &group.members).await?;
    tracing::info!(
        members = group.members.len(),
        "the group is complete: wallet created"
    );
    joined.done = true;
    ctx.home.set_joined(&joined)
}

/// Where this home's join stands, for people (`scrip id`): `None` once nothing is left to
/// happen and the join went as planned.
pub fn join_state(joined: &crate::home::Joined, has_wallet: bool) -> Option<String> {
    let inviter = joined
        .inviter
        .parse::<FeedId>()
        .map_or_else(|_| joined.inviter.clone(), |id| id.short());
    if joined.left_out {
        return Some(format!(
            "the group of {} formed without you ({inviter}…'s invite was used by someone else or \
             came too late): ask for another invite",
            joined.group
        ));
    }
    if joined.done || has_wallet {
        return None;
    }
    Some(if joined.group > 0 {
        format!(
            "joined {inviter}…'s group of {}: your wallet is created when everyone has joined \
             (keep `scrip serve` running)",
            joined.group
        )
    } else if joined.notaries.is_empty() {
        format!("joined {inviter}…'s network (the invite named no notaries: `scrip wallet create`)")
    } else {
        format!(
            "joined {inviter}…: your wallet is created with the invite's notaries once `scrip \
             serve` runs"
        )
    })
}

/// The feeds a daemon keeps in scope for invites: the open invites it made, and the one it
/// joined through.
pub fn invite_feeds(home: &crate::home::Home) -> Result<Vec<FeedId>> {
    let mut feeds = Vec::new();
    for record in home.invites()?.invite {
        if record.joined.is_none() && record.refused.is_none() {
            feeds.push(record.feed.parse()?);
        }
    }
    if let Some(joined) = home.joined()?
        && !joined.done
    {
        feeds.push(joined.invite.parse()?);
    }
    Ok(feeds)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use scrip_feed::Timestamp;

    fn invite(group: u8, notaries: Vec<NotaryAddr>) -> Invite {
        Invite::draw(
            [7; 32],
            Keypair::from_seed(&[1; 32]).id(),
            "127.0.0.1:7411".into(),
            notaries,
            group,
        )
        .unwrap()
    }

    #[test]
    fn where_a_join_stands_is_said_until_it_is_done_and_a_left_out_joiner_is_told() {
        let inviter = Keypair::from_seed(&[7; 32]).id();
        let mut joined = crate::home::Joined {
            inviter: inviter.to_string(),
            invite: "@invite".into(),
            group: 5,
            notary: Some("127.0.0.1:7412".into()),
            notaries: Vec::new(),
            scanned: 0,
            followed: false,
            done: false,
            left_out: false,
        };
        let waiting = join_state(&joined, false).unwrap();
        assert!(
            waiting.contains(&format!("{}…'s group of 5", inviter.short())),
            "{waiting}"
        );
        assert_eq!(join_state(&joined, true), None, "a wallet exists");
        joined.done = true;
        assert_eq!(join_state(&joined, false), None);
        joined.left_out = true;
        let left_out = join_state(&joined, false).unwrap();
        assert!(left_out.contains("another invite"), "{left_out}");
        // A plain invite: with notaries, or without.
        joined = crate::home::Joined {
            group: 0,
            done: false,
            left_out: false,
            notaries: vec!["@n@127.0.0.1:1".into()],
            ..joined
        };
        assert!(
            join_state(&joined, false)
                .unwrap()
                .contains("invite's notaries")
        );
        joined.notaries.clear();
        assert!(
            join_state(&joined, false)
                .unwrap()
                .contains("scrip wallet create")
        );
    }

    #[test]
    fn a_code_reads_back_as_written_and_a_typo_is_caught_by_its_checksum() {
        let notary = NotaryAddr {
            id: Keypair::from_seed(&[2; 32]).id(),
            address: "127.0.0.1:7412".into(),
        };
        let original = invite(0, vec![notary]);
        let code = original.code().unwrap();
        assert!(code.starts_with(CODE_PREFIX));
        let read = Invite::parse(&format!("  {code}\n")).unwrap();
        assert_eq!(read, original);
        assert_eq!(read.key().id(), original.key().id());
        // One character changed, one dropped: the checksum says so.
        let mut chars: Vec<char> = code.chars().collect();
        let at = chars.len() / 2;
        chars[at] = if chars[at] == 'a' { 'b' } else { 'a' };
        let changed: String = chars.iter().collect();
        let err = Invite::parse(&changed).unwrap_err().to_string();
        assert!(err.contains("mistyped"), "{err}");
        let err = Invite::parse(&code[..code.len() - 1])
            .unwrap_err()
            .to_string();
        assert!(err.contains("mistyped"), "{err}");
        // Not a code at all; a character outside the alphabet.
        assert!(Invite::parse("+8Hq2").is_err());
        let err = Invite::parse("invite:0OIl").unwrap_err().to_string();
        assert!(err.contains("alphabet"), "{err}");
        // The secret is not in Debug.
        let shown = format!("{original:?}");
        assert!(!shown.contains(&hex::encode(*original.seed)), "{shown}");
    }

    #[test]
    fn a_group_invite_names_no_notaries_and_a_group_has_two_to_twenty_members() {
        let draw = |address: &str, notaries: Vec<NotaryAddr>, group: u8| {
            Invite::draw(
                [0; 32],
                FeedId::from_bytes([1; 32]),
                address.into(),
                notaries,
                group,
            )
        };
        assert!(draw("a:1", vec![], 1).is_err());
        assert!(draw("a:1", vec![], 21).is_err());
        let notary = NotaryAddr {
            id: FeedId::from_bytes([2; 32]),
            address: "a:2".into(),
        };
        assert!(draw("a:1", vec![notary], 5).is_err());
        assert!(draw("a b", vec![], 5).is_err());
        assert_eq!(invite(20, vec![]).group, 20);
    }

    fn join_entry(key: &Keypair, payload: Vec<u8>) -> Entry {
        Entry::create(key, None, Timestamp::from_millis(1), payload).unwrap()
    }

    #[test]
    fn a_join_binds_the_joiner_and_its_notary_address_to_the_invite() {
        let invite = invite(5, vec![]);
        let key = invite.key();
        let joiner = Keypair::from_seed(&[3; 32]);
        let payload = join_payload(&key.id(), &joiner, Some("127.0.0.1:7602".into())).unwrap();
        let join = read_join(&join_entry(&key, payload)).unwrap();
        assert_eq!(join.identity, joiner.id());
        assert_eq!(join.notary.as_deref(), Some("127.0.0.1:7602"));
        // The proof made for one invite does not hold on another invite's feed.
        let other = Keypair::from_seed(&[4; 32]);
        let payload = join_payload(&key.id(), &joiner, None).unwrap();
        let err = read_join(&join_entry(&other, payload))
            .unwrap_err()
            .to_string();
        assert!(err.contains("proof"), "{err}");
        // A post on the invite's feed is no join.
        let post = Content::Post { text: "hi".into() }.encode().unwrap();
        assert!(read_join(&join_entry(&key, post)).is_err());
    }

    #[test]
    fn a_group_entry_reads_back_and_admits_only_its_members_at_their_addresses() {
        let me = FeedId::from_bytes([3; 32]);
        let invite = FeedId::from_bytes([9; 32]);
        let group = Group {
            invites: vec![invite],
            members: vec![
                NotaryAddr {
                    id: FeedId::from_bytes([1; 32]),
                    address: "a:1".into(),
                },
                NotaryAddr {
                    id: me,
                    address: "a:3".into(),
                },
            ],
        };
        let read = read_group(&group_payload(&group).unwrap()).unwrap();
        assert_eq!(read, group);
        assert!(read.admits(&invite, &me, "a:3"));
        assert!(!read.admits(&invite, &me, "a:4"));
        assert!(!read.admits(&FeedId::from_bytes([8; 32]), &me, "a:3"));
        assert!(read_group(&Content::Post { text: "x".into() }.encode().unwrap()).is_none());
    }
}
