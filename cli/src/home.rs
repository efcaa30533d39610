//! The home directory: where one scrip identity keeps its keys, configuration and store.
//!
//! ```text
//! HOME/                 mode 0700
//!   identity.key        the identity's secret key (mode 0600; refused if others can read it)
//!   wallet.key          the wallet's secret key, once created (mode 0600)
//!   config.toml         settings, written by `scrip init` with every default documented
//!   peers.toml          peers added with `scrip peer add` (managed by scrip)
//!   wallet.toml         the wallet's notaries (managed by scrip)
//!   wallet.pending      the wallet's proposal being certified, if any
//!   store/              the sled feed store
//!   votes/              the vote log of a notary (`scrip serve --notary`)
//!   scrip.sock          the running daemon's control socket (mode 0600)
//! ```
//!
//! The home is chosen by `--home`, then `SCRIP_HOME`, then the platform's data directory.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, bail};
use scrip_feed::{FeedId, Keypair, SledOptions, SledStore, keyfile};
use scrip_notary::NotaryAddr;
use serde::{Deserialize, Serialize};

use crate::config::Config;

const IDENTITY_KEY: &str = "identity.key";
const WALLET_KEY: &str = "wallet.key";
const CONFIG: &str = "config.toml";
const PEERS: &str = "peers.toml";
const WALLET: &str = "wallet.toml";
const CONTACTS: &str = "contacts.toml";
const PENDING: &str = "wallet.pending";
const INVITES: &str = "invites.toml";
const JOINED: &str = "joined.toml";
const STORE: &str = "store";
const VOTES: &str = "votes";
const SOCKET: &str = "scrip.sock";
/// Present in a home made by `scrip restore` until a peer that replicates the identity's feed
/// has said how far the feed goes (`docs/cli.md` §6): the store does not hold the feed, and
/// signing on it before then would fork it.
const RESTORED: &str = "restored";

/// How long opening a store waits for another scrip process to release it.
pub const STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How often a held store is tried again.
pub const STORE_RETRY: std::time::Duration = std::time::Duration::from_millis(25);

/// A home directory.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

/// A peer to dial, as kept in peers.toml.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEntry {
    /// Its replication address.
    pub address: String,
    /// The identity expected there, if known (`@...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PeersFile {
    #[serde(default)]
    peer: Vec<PeerEntry>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct WalletFile {
    #[serde(default)]
    notary: Vec<NotaryEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct NotaryEntry {
    id: String,
    address: String,
}

impl Home {
    /// The home chosen by `flag`, then `SCRIP_HOME`, then the platform's data directory.
    pub fn resolve(flag: Option<PathBuf>) -> Result<Home> {
        if let Some(root) = flag {
            return Ok(Home::at(root));
        }
        if let Some(root) = std::env::var_os("SCRIP_HOME").filter(|v| !v.is_empty()) {
            return Ok(Home::at(PathBuf::from(root)));
        }
        let dirs = directories::ProjectDirs::from("", "", "scrip")
            .ok_or_else(|| anyhow!("no home directory: pass --home DIR or set SCRIP_HOME"))?;
        Ok(Home::at(dirs.data_dir().to_path_buf()))
    }

    /// The home at `root`.
    pub fn at(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    /// Its directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The control socket's path.
    pub fn socket(&self) -> PathBuf {
        self.root.join(SOCKET)
    }

    /// The vote store's path.
    pub fn votes(&self) -> PathBuf {
        self.root.join(VOTES)
    }

    /// The wallet's pending-proposal file.
    pub fn pending(&self) -> PathBuf {
        self.root.join(PENDING)
    }

    /// True if this home was restored from a backup and its identity's feed has not been
    /// confirmed by a peer yet ([`Home::feed_confirmed`]).
    pub fn restored(&self) -> bool {
        self.root.join(RESTORED).exists()
    }

    /// Records that a peer which replicates the identity's feed has said how far it goes, and
    /// this home holds it that far: it may sign on it again.
    pub fn feed_confirmed(&self) -> Result<()> {
        match fs::remove_file(self.root.join(RESTORED)) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(anyhow!(
                "removing {}: {err}",
                self.root.join(RESTORED).display()
            )),
        }
    }

    /// True once `scrip init` ran here.
    pub fn exists(&self) -> bool {
        self.root.join(IDENTITY_KEY).exists()
    }

    fn require(&self) -> Result<()> {
        if !self.exists() {
            bail!(
                "{} is not a scrip home: run `scrip init` first (or pass --home)",
                self.root.display()
            );
        }
        Ok(())
    }

    /// Refuses a home that other users can read or write (its mode changed since `scrip init`
    /// made it 0700): the keys are checked one by one, but the store and settings are not.
    pub fn check_private(&self) -> Result<()> {
        let mode = fs::metadata(&self.root)
            .with_context(|| format!("reading {}", self.root.display()))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "{} can be read or written by other users (mode {mode:03o}): run `chmod 700 {}`",
                self.root.display(),
                self.root.display()
            );
        }
        Ok(())
    }

    /// Creates the home: directory (0700), identity key (0600), config.toml, empty store.
    /// Refuses if it exists already.
    pub fn init(&self, config: &Config) -> Result<Keypair> {
        if self.exists() {
            bail!("{} is already a scrip home", self.root.display());
        }
        self.make_private_dir()?;
        let config_path = self.root.join(CONFIG);
        if !config_path.exists() {
            write_file(&config_path, config.to_toml().as_bytes())?;
        }
        let key = Keypair::generate()?;
        // The store first: if the directory is unusable, no key is left behind.
        self.make_store()?;
        keyfile::write(&self.root.join(IDENTITY_KEY), &key)?;
        Ok(key)
    }

    /// Creates the home's directory, owner only (0700) whatever the umask.
    fn make_private_dir(&self) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .with_context(|| format!("creating {}", self.root.display()))?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", self.root.display()))
    }

    /// Creates the empty store, owner only whatever the umask.
    fn make_store(&self) -> Result<()> {
        drop(self.open_store()?);
        fs::set_permissions(self.root.join(STORE), fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", self.root.join(STORE).display()))
    }

    /// The identity's key.
    pub fn identity(&self) -> Result<Keypair> {
        self.require()?;
        Ok(keyfile::read(&self.root.join(IDENTITY_KEY))?)
    }

    /// The wallet's key, if the wallet was created.
    pub fn wallet_key(&self) -> Result<Option<Keypair>> {
        let path = self.root.join(WALLET_KEY);
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(keyfile::read(&path)?))
    }

    /// Writes a new wallet key (refused if one exists).
    pub fn create_wallet_key(&self) -> Result<Keypair> {
        let path = self.root.join(WALLET_KEY);
        if path.exists() {
            bail!("this home already has a wallet (see `scrip id`)");
        }
        let key = Keypair::generate()?;
        keyfile::write(&path, &key)?;
        Ok(key)
    }

    /// Moves the wallet's files aside (key, pending entry, notaries), renamed with a suffix
    /// `.abandoned-<seconds since the epoch>`, so that a new wallet can be created; nothing is
    /// deleted. Returns where the key went.
    pub fn abandon_wallet(&self) -> Result<PathBuf> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut kept_key = None;
        for name in [WALLET_KEY, PENDING, WALLET] {
            let from = self.root.join(name);
            if !from.exists() {
                continue;
            }
            let to = self.root.join(format!("{name}.abandoned-{stamp}"));
            fs::rename(&from, &to).with_context(|| format!("moving {} aside", from.display()))?;
            if name == WALLET_KEY {
                kept_key = Some(to);
            }
        }
        if let Ok(dir) = fs::File::open(&self.root) {
            let _ = dir.sync_all();
        }
        kept_key.ok_or_else(|| anyhow!("this home has no wallet key"))
    }

    /// The configuration (defaults for anything missing).
    pub fn config(&self) -> Result<Config> {
        self.require()?;
        let path = self.root.join(CONFIG);
        match fs::read_to_string(&path) {
            Ok(text) => Config::parse(&text).with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Opens the feed store (one process at a time): `None` while another process holds it.
    pub fn try_open_store(&self) -> Result<Option<Arc<SledStore>>> {
        let path = self.root.join(STORE);
        match SledStore::open(&path, SledOptions::default()) {
            Ok(store) => Ok(Some(Arc::new(store))),
            Err(scrip_feed::Error::Locked { .. }) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Opens a copy of the feed store, made in a new temporary directory (deleted when the
    /// returned guard is dropped): for reading a store that cannot be written where it is.
    pub fn open_store_copy(&self) -> Result<(tempfile::TempDir, Arc<SledStore>)> {
        let copy = tempfile::tempdir().context("making a directory for a copy of the store")?;
        let from = self.root.join(STORE);
        let to = copy.path().join(STORE);
        scrip_feed::store::durable::copy_dir(&from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        let store = SledStore::open(&to, SledOptions::default())
            .with_context(|| format!("opening a copy of {}", from.display()))?;
        Ok((copy, Arc::new(store)))
    }

    /// The error for a store another process keeps holding.
    pub fn in_use(&self) -> anyhow::Error {
        anyhow!(
            "{} is in use by another scrip process (is a daemon running on it?)",
            self.root.display()
        )
    }

    /// Opens the feed store, waiting up to [`STORE_WAIT`] for another process to let go of
    /// it: a one-shot command holds it only briefly, and `scrip serve &` followed at once by a
    /// command should not make either fail.
    pub fn open_store(&self) -> Result<Arc<SledStore>> {
        let deadline = std::time::Instant::now() + STORE_WAIT;
        loop {
            if let Some(store) = self.try_open_store()? {
                return Ok(store);
            }
            if std::time::Instant::now() >= deadline {
                return Err(self.in_use());
            }
            std::thread::sleep(STORE_RETRY);
        }
    }

    /// The peers in peers.toml.
    pub fn peers(&self) -> Result<Vec<PeerEntry>> {
        Ok(read_toml::<PeersFile>(&self.root.join(PEERS))?
            .map(|f| f.peer)
            .unwrap_or_default())
    }

    /// Adds a peer to peers.toml (replacing one at the same address). Returns whether it was new.
    pub fn add_peer(&self, entry: PeerEntry) -> Result<bool> {
        let mut peers = self.peers()?;
        let new = !peers.contains(&entry);
        peers.retain(|p| p.address != entry.address);
        peers.push(entry);
        let text = toml::to_string(&PeersFile { peer: peers })?;
        write_file(&self.root.join(PEERS), text.as_bytes())?;
        Ok(new)
    }

    /// The contacts in contacts.toml: names this person gave wallets.
    pub fn contacts(&self) -> Result<Vec<Contact>> {
        Ok(read_toml::<ContactsFile>(&self.root.join(CONTACTS))?
            .map(|f| f.contact)
            .unwrap_or_default())
    }

    /// The contact named `name` (names compare without regard to case).
    pub fn contact(&self, name: &str) -> Result<Option<Contact>> {
        Ok(self
            .contacts()?
            .into_iter()
            .find(|c| c.name.eq_ignore_ascii_case(name.trim())))
    }

    /// Names `wallet` (an address, checked) `name`: refused if the name is taken by another
    /// wallet (remove it first) or is not a valid name. Returns whether it was new.
    pub fn add_contact(&self, name: &str, wallet: &str) -> Result<bool> {
        check_contact_name(name)?;
        let address = scrip_ledger::WalletAddress::parse(wallet.trim()).map_err(|defect| {
            anyhow!(
                "{:?} is not a wallet address: {}",
                wallet.trim(),
                defect.reason()
            )
        })?;
        let address = address.to_string();
        let mut contacts = self.contacts()?;
        match contacts.iter().find(|c| c.name.eq_ignore_ascii_case(name)) {
            Some(c) if c.wallet == address => return Ok(false),
            Some(c) => bail!(
                "{} names {} already: `scrip contact remove {}` first",
                c.name,
                c.wallet,
                c.name
            ),
            None => {}
        }
        contacts.push(Contact {
            name: name.to_owned(),
            wallet: address,
        });
        contacts.sort_by_key(|c| c.name.to_lowercase());
        let text = toml::to_string(&ContactsFile { contact: contacts })?;
        write_file(&self.root.join(CONTACTS), text.as_bytes())?;
        Ok(true)
    }

    /// Forgets the contact `name`. Returns whether there was one.
    pub fn remove_contact(&self, name: &str) -> Result<bool> {
        let mut contacts = self.contacts()?;
        let before = contacts.len();
        contacts.retain(|c| !c.name.eq_ignore_ascii_case(name.trim()));
        if contacts.len() == before {
            return Ok(false);
        }
        let text = toml::to_string(&ContactsFile { contact: contacts })?;
        write_file(&self.root.join(CONTACTS), text.as_bytes())?;
        Ok(true)
    }

    /// The wallet's notaries, from wallet.toml.
    pub fn notaries(&self) -> Result<Vec<NotaryAddr>> {
        let path = self.root.join(WALLET);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let file: WalletFile =
            toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        file.notary
            .into_iter()
            .map(|n| {
                Ok(NotaryAddr {
                    id: n
                        .id
                        .parse::<FeedId>()
                        .with_context(|| format!("a notary id in {}", path.display()))?,
                    address: n.address,
                })
            })
            .collect()
    }

    /// Records the wallet's notaries in wallet.toml.
    pub fn set_notaries(&self, notaries: &[NotaryAddr]) -> Result<()> {
        let file = WalletFile {
            notary: notaries
                .iter()
                .map(|n| NotaryEntry {
                    id: n.id.to_string(),
                    address: n.address.clone(),
                })
                .collect(),
        };
        write_file(&self.root.join(WALLET), toml::to_string(&file)?.as_bytes())
    }
}

impl Home {
    /// The invites this home made (invites.toml).
    pub fn invites(&self) -> Result<InvitesFile> {
        Ok(read_toml(&self.root.join(INVITES))?.unwrap_or_default())
    }

    /// Records the invites this home made.
    pub fn set_invites(&self, invites: &InvitesFile) -> Result<()> {
        write_file(
            &self.root.join(INVITES),
            toml::to_string(invites)?.as_bytes(),
        )
    }

    /// The invite this home joined through (joined.toml), if any.
    pub fn joined(&self) -> Result<Option<Joined>> {
        read_toml(&self.root.join(JOINED))
    }

    /// Records the invite this home joined through.
    pub fn set_joined(&self, joined: &Joined) -> Result<()> {
        write_file(&self.root.join(JOINED), toml::to_string(joined)?.as_bytes())
    }

    /// Replaces config.toml with `config` (as `scrip init` writes it, every key explained).
    pub fn set_config(&self, config: &Config) -> Result<()> {
        write_file(&self.root.join(CONFIG), config.to_toml().as_bytes())
    }
}

/// invites.toml: the invites a home made (`docs/protocol/invite.md`), and the group it forms.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitesFile {
    /// The group this home is forming, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupForming>,
    /// Every invite made, oldest first.
    #[serde(default)]
    pub invite: Vec<InviteRecord>,
}

/// A group a home forms (`invite --group N`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupForming {
    /// Its members, this home included.
    pub size: u8,
    /// This home's notary address, as the group entry names it.
    pub notary: String,
    /// The roster, once fixed (the first N − 1 to join, then this home): each member as
    /// `ID@NOTARY_ADDRESS`, this home first.
    #[serde(default)]
    pub members: Vec<String>,
    /// The invites of the members in the roster.
    #[serde(default)]
    pub invites: Vec<String>,
    /// Whether the group entry is published.
    #[serde(default)]
    pub published: bool,
    /// Whether this home's wallet is created with the group's notaries.
    #[serde(default)]
    pub wallet: bool,
}

/// One invite made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    /// The invite's feed id (`@…`): the public half of its key; the secret is only in the code.
    pub feed: String,
    /// Whether it is one of the group's invites.
    #[serde(default)]
    pub group: bool,
    /// When it was made (ms since the epoch).
    pub created: u64,
    /// Who joined through it (`@…`), once the join entry arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined: Option<String>,
    /// The joiner's notary address (group invites).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notary: Option<String>,
    /// Why the invite's entry was not taken, if it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// joined.toml: the invite a home joined through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    /// The inviter (`@…`).
    pub inviter: String,
    /// The invite's feed id (`@…`).
    pub invite: String,
    /// 0, or the size of the group joined.
    pub group: u8,
    /// This home's notary address, as sent in the join (group invites).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notary: Option<String>,
    /// The notaries the code named (`ID@ADDR`), for a plain invite.
    #[serde(default)]
    pub notaries: Vec<String>,
    /// How far the inviter's feed was read for the group entry.
    #[serde(default)]
    pub scanned: u64,
    /// Whether the group's members are followed.
    #[serde(default)]
    pub followed: bool,
    /// Whether nothing is left to do (the wallet created, or the group formed without us).
    #[serde(default)]
    pub done: bool,
    /// Whether the group formed without this home (its invite was used by someone else, or the
    /// roster was full): nothing more comes of this join.
    #[serde(default)]
    pub left_out: bool,
}

/// A TOML file of the home, if it exists.
fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(
            toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Longest contact name, in bytes.
pub const MAX_CONTACT_NAME_BYTES: usize = 32;

/// A name this person gave a wallet (contacts.toml).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The name: 1–32 bytes, no control characters, no leading or trailing whitespace, not
    /// starting with `+`, `@` or `%` (those start addresses and ids).
    pub name: String,
    /// The wallet's address (`+…`).
    pub wallet: String,
}

#[derive(Serialize, Deserialize, Default)]
struct ContactsFile {
    #[serde(default)]
    contact: Vec<Contact>,
}

/// The rules of a contact name (see [`Contact::name`]).
pub fn check_contact_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_CONTACT_NAME_BYTES {
        bail!("a contact name is 1 to {MAX_CONTACT_NAME_BYTES} bytes ({name:?} is not)");
    }
    if name.trim() != name || name.chars().any(char::is_control) {
        bail!(
            "{name:?}: a contact name has no leading or trailing spaces and no control characters"
        );
    }
    if name.starts_with(['+', '@', '%']) {
        bail!("{name:?}: a contact name does not start with +, @ or % (addresses and ids do)");
    }
    Ok(())
}

/// The format marker of a backup file.
pub const BACKUP_FORMAT: &str = "scrip-backup/1";

/// What a backup holds: the keys and the settings. Logs are not in it: they come back from
/// peers (the identity's and the wallet's feeds) and notaries (the wallet's certified head).
const BACKED_UP: [&str; 8] = [
    IDENTITY_KEY,
    WALLET_KEY,
    CONFIG,
    PEERS,
    WALLET,
    CONTACTS,
    INVITES,
    JOINED,
];

/// A backup file: `format = "scrip-backup/1"` and each backed-up file's bytes as hex.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupFile {
    format: String,
    files: std::collections::BTreeMap<String, String>,
}

impl Home {
    /// Writes this home's keys and settings to `file` (created, owner-only; an existing file
    /// is not overwritten). Refused for a notary's home: a notary's key must never vote again
    /// without its vote store (`notary.md` §4), so it is backed up whole, daemon stopped.
    /// Returns the names of the files saved.
    pub fn backup(&self, file: &Path) -> Result<Vec<String>> {
        self.require()?;
        if self.votes().exists() {
            bail!(
                "{} is a notary's home: its key must never vote again without its vote store, \
                 which a backup of keys cannot carry. Stop its daemon and copy the whole \
                 directory instead",
                self.root.display()
            );
        }
        let mut files = std::collections::BTreeMap::new();
        for name in BACKED_UP {
            match fs::read(self.root.join(name)) {
                Ok(bytes) => {
                    files.insert(name.to_owned(), hex::encode(bytes));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("reading {name}"));
                }
            }
        }
        let text = toml::to_string(&BackupFile {
            format: BACKUP_FORMAT.into(),
            files: files.clone(),
        })?;
        // Whole or not at all: a backup cut short must not be left looking like one.
        scrip_feed::keyfile::create_secret_file(file, text.as_bytes()).with_context(|| {
            format!(
                "writing {} (an existing file is never overwritten)",
                file.display()
            )
        })?;
        Ok(files.into_keys().collect())
    }

    /// Makes this home from a backup `file`: refused if a home is here already (nothing is
    /// overwritten), or if the file is not a backup (checked before anything is written).
    /// Returns the names of the files restored.
    pub fn restore(&self, file: &Path) -> Result<Vec<String>> {
        if self.exists() {
            bail!(
                "{} is a scrip home already: restore into a new directory (--home DIR)",
                self.root.display()
            );
        }
        let text =
            fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let backup: BackupFile = toml::from_str(&text)
            .map_err(|e| anyhow!("{} is not a scrip backup: {e}", file.display()))?;
        if backup.format != BACKUP_FORMAT {
            bail!(
                "{} is a backup of format {:?}; this scrip reads {BACKUP_FORMAT:?}",
                file.display(),
                backup.format
            );
        }
        let mut decoded = Vec::new();
        for (name, bytes) in &backup.files {
            if !BACKED_UP.contains(&name.as_str()) {
                bail!("{} holds an unknown file {name:?}", file.display());
            }
            let bytes = hex::decode(bytes)
                .map_err(|e| anyhow!("{}: {name} is damaged: {e}", file.display()))?;
            decoded.push((name.clone(), bytes));
        }
        if !backup.files.contains_key(IDENTITY_KEY) {
            bail!("{} holds no identity key", file.display());
        }
        if let Some((_, config)) = decoded.iter().find(|(n, _)| n == CONFIG) {
            Config::parse(&String::from_utf8_lossy(config))
                .with_context(|| format!("the config.toml in {}", file.display()))?;
        }
        self.make_private_dir()?;
        // The store first and the identity key last: a restore cut short leaves no home.
        self.make_store()?;
        write_file(
            &self.root.join(RESTORED),
            b"restored from a backup: nothing is signed on the identity's feed until a peer that \
              replicates it has said how far it goes\n",
        )?;
        decoded.sort_by_key(|(name, _)| name == IDENTITY_KEY);
        for (name, bytes) in &decoded {
            write_file(&self.root.join(name), bytes)?;
        }
        // The keys read back.
        self.identity()?;
        self.wallet_key()?;
        Ok(decoded.into_iter().map(|(name, _)| name).collect())
    }
}

/// Writes `bytes` to `path` durably: a temporary file, fsync, rename, directory fsync.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    // Owner only, whatever the umask.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("writing {}", temporary.display()))?;
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", temporary.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temporary.display()))?;
    fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home(dir: &Path, name: &str) -> Home {
        let home = Home::at(dir.join(name));
        home.init(&Config::default())
            .unwrap_or_else(|e| panic!("{e:#}"));
        home
    }

    /// A backup restored into a new directory is the same person and wallet with the same
    /// settings; the file is owner-only and never overwritten; a home is never overwritten.
    #[test]
    fn a_backup_restores_the_keys_and_settings_and_overwrites_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let alice = home(dir.path(), "alice");
        let wallet = alice.create_wallet_key().unwrap();
        alice
            .add_peer(PeerEntry {
                address: "127.0.0.1:7421".into(),
                id: None,
            })
            .unwrap();
        let file = dir.path().join("alice.backup");
        // What a backup cut short by a crash (its process ended) left beside it: gone.
        let mut ended = std::process::Command::new("true").spawn().unwrap();
        let ended_pid = ended.id();
        ended.wait().unwrap();
        let staged = dir
            .path()
            .join(format!(".alice.backup.{ended_pid}-0.scrip-partial"));
        fs::write(&staged, "format = ").unwrap();
        // A file of the user's that merely looks like a draft of it is not touched.
        let theirs = dir.path().join("alice.backup.new");
        fs::write(&theirs, "mine").unwrap();
        let saved = alice.backup(&file).unwrap();
        assert!(!staged.exists());
        assert_eq!(fs::read_to_string(&theirs).unwrap(), "mine");
        assert!(saved.contains(&"wallet.key".to_owned()), "{saved:?}");
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            alice.backup(&file).is_err(),
            "an existing file is overwritten"
        );

        let restored = Home::at(dir.path().join("restored"));
        restored.restore(&file).unwrap();
        assert_eq!(
            restored.identity().unwrap().id(),
            alice.identity().unwrap().id()
        );
        assert_eq!(restored.wallet_key().unwrap().unwrap().id(), wallet.id());
        assert_eq!(restored.peers().unwrap(), alice.peers().unwrap());
        assert_eq!(restored.config().unwrap(), alice.config().unwrap());
        restored.check_private().unwrap();
        assert!(restored.open_store().is_ok());
        // Never over an existing home.
        let err = alice.restore(&file).unwrap_err();
        assert!(format!("{err:#}").contains("already"), "{err:#}");
    }

    /// Contacts: a name per wallet, names compared without regard to case, a taken name not
    /// silently moved to another wallet, names that look like addresses or ids refused; they
    /// go into backups.
    #[test]
    fn contacts_name_wallets_one_name_each() {
        let dir = tempfile::tempdir().unwrap();
        let alice = home(dir.path(), "alice");
        let bob = scrip_ledger::WalletAddress::of(Keypair::from_seed(&[2; 32]).id()).to_string();
        let carol = scrip_ledger::WalletAddress::of(Keypair::from_seed(&[3; 32]).id()).to_string();
        assert!(alice.add_contact("Bob", &bob).unwrap());
        assert!(!alice.add_contact("bob", &bob).unwrap(), "the same again");
        let err = alice.add_contact("BOB", &carol).unwrap_err();
        assert!(format!("{err:#}").contains("remove"), "{err:#}");
        assert_eq!(alice.contact("bob").unwrap().unwrap().wallet, bob);
        for bad in [
            "",
            " bob",
            "+bob",
            "@bob",
            "%bob",
            &"x".repeat(33),
            "a\u{7}b",
        ] {
            assert!(alice.add_contact(bad, &carol).is_err(), "{bad:?}");
        }
        let typo = format!("{}x", &carol[..carol.len() - 1]);
        assert!(
            alice.add_contact("carol", &typo).is_err(),
            "a mistyped address"
        );
        alice.add_contact("carol", &carol).unwrap();
        let file = dir.path().join("alice.backup");
        alice.backup(&file).unwrap();
        let restored = Home::at(dir.path().join("restored"));
        restored.restore(&file).unwrap();
        assert_eq!(restored.contacts().unwrap(), alice.contacts().unwrap());
        assert!(alice.remove_contact("BOB").unwrap());
        assert!(!alice.remove_contact("bob").unwrap());
        assert_eq!(alice.contacts().unwrap().len(), 1);
    }

    /// A file that is not a backup is refused before anything is written; a notary's home is
    /// not backed up (its key must not vote again without its vote store).
    #[test]
    fn bad_backups_and_notary_homes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage");
        fs::write(&garbage, "format = \"something else\"\n[files]\n").unwrap();
        let target = Home::at(dir.path().join("target"));
        assert!(target.restore(&garbage).is_err());
        fs::write(&garbage, "not toml at all {").unwrap();
        assert!(target.restore(&garbage).is_err());
        assert!(!target.root().exists(), "a refused restore wrote something");

        let notary = home(dir.path(), "notary");
        fs::create_dir_all(notary.votes()).unwrap();
        let err = notary
            .backup(&dir.path().join("notary.backup"))
            .unwrap_err();
        assert!(format!("{err:#}").contains("notary"), "{err:#}");
        assert!(!dir.path().join("notary.backup").exists());
    }
}
