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
//!   votes/              the sled vote store of a notary (`scrip serve --notary`)
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
const PENDING: &str = "wallet.pending";
const STORE: &str = "store";
const VOTES: &str = "votes";
const SOCKET: &str = "scrip.sock";

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
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .with_context(|| format!("creating {}", self.root.display()))?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", self.root.display()))?;
        let config_path = self.root.join(CONFIG);
        if !config_path.exists() {
            write_file(&config_path, config.to_toml().as_bytes())?;
        }
        let key = Keypair::generate()?;
        // The store first: if the directory is unusable, no key is left behind.
        drop(self.open_store()?);
        // Owner only, whatever the umask.
        fs::set_permissions(self.root.join(STORE), fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", self.root.join(STORE).display()))?;
        keyfile::write(&self.root.join(IDENTITY_KEY), &key)?;
        Ok(key)
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
        let path = self.root.join(PEERS);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(toml::from_str::<PeersFile>(&text)
                .with_context(|| format!("reading {}", path.display()))?
                .peer),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
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
