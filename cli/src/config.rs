//! `config.toml`: a home's settings. Every key is optional; `scrip init` writes the file with
//! every default spelled out and explained.

use anyhow::{Result, anyhow, bail};
use scrip_replicate::transport::NetworkKey;
use serde::{Deserialize, Serialize};

/// Default replication address of `scrip serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7411";
/// Default notary service address of `scrip serve --notary`.
pub const DEFAULT_NOTARY_LISTEN: &str = "127.0.0.1:7412";
/// Default follow distance replicated.
pub const DEFAULT_HOPS: u8 = 2;
/// Default time a command waits for its daemon's answer, in seconds.
pub const DEFAULT_COMMAND_TIMEOUT: u64 = 30;

/// A home's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where `scrip serve` listens for peers.
    pub listen: String,
    /// Where `scrip serve --notary` listens for wallets.
    pub notary_listen: String,
    /// The network key ("default", or 64 hex digits): only peers with the same key connect.
    pub network_key: String,
    /// How far along the follow graph feeds are replicated (1 = only the feeds you follow).
    pub hops: u8,
    /// Seconds a command waits for the daemon's answer on the control socket.
    pub command_timeout: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.into(),
            notary_listen: DEFAULT_NOTARY_LISTEN.into(),
            network_key: "default".into(),
            hops: DEFAULT_HOPS,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }
}

impl Config {
    /// Parses config.toml text and checks its values.
    pub fn parse(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text)?;
        config.network_key()?;
        if config.hops == 0 {
            bail!("hops must be at least 1");
        }
        if !(5..=3600).contains(&config.command_timeout) {
            bail!("command_timeout must be 5 to 3600 seconds");
        }
        Ok(config)
    }

    /// The network key.
    pub fn network_key(&self) -> Result<NetworkKey> {
        if self.network_key == "default" {
            return Ok(NetworkKey::default_network());
        }
        // The key is a secret: a mistyped one is not echoed.
        self.network_key.parse().map_err(|_| {
            anyhow!(
                "network_key is neither \"default\" nor 64 hex digits ({} characters given; \
                 not shown, it is a secret)",
                self.network_key.chars().count()
            )
        })
    }

    /// The file `scrip init` writes: these values, each explained.
    pub fn to_toml(&self) -> String {
        format!(
            "# scrip settings. Every key is optional; the default is given in each comment.\n\
             \n\
             # Where `scrip serve` listens for peers (default \"{DEFAULT_LISTEN}\").\n\
             listen = {listen:?}\n\
             \n\
             # Where `scrip serve --notary` listens for wallets (default \"{DEFAULT_NOTARY_LISTEN}\").\n\
             notary_listen = {notary:?}\n\
             \n\
             # Only peers with the same network key can connect: \"default\" (the public scrip\n\
             # network) or 64 hex digits for a private network (default \"default\").\n\
             network_key = {key:?}\n\
             \n\
             # How far along the follow graph feeds are replicated: 1 = the feeds you follow,\n\
             # 2 = also the feeds they follow (default {DEFAULT_HOPS}).\n\
             hops = {hops}\n\
             \n\
             # Seconds a command waits for this home's daemon to answer before it gives up and\n\
             # says so, naming the daemon's pid (default {DEFAULT_COMMAND_TIMEOUT}).\n\
             command_timeout = {timeout}\n",
            listen = self.listen,
            notary = self.notary_listen,
            key = self.network_key,
            hops = self.hops,
            timeout = self.command_timeout,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_file_reads_back_and_an_empty_one_is_the_defaults() {
        let config = Config {
            listen: "127.0.0.1:9000".into(),
            hops: 1,
            ..Config::default()
        };
        assert_eq!(Config::parse(&config.to_toml()).ok(), Some(config));
        assert_eq!(Config::parse("").ok(), Some(Config::default()));
        assert_eq!(
            Config::parse(&Config::default().to_toml()).ok(),
            Some(Config::default())
        );
    }

    #[test]
    fn bad_values_are_refused() {
        let err = Config::parse("network_key = \"0123456789abcdefXYZ\"").unwrap_err();
        assert!(
            !format!("{err:#}").contains("XYZ"),
            "the key is not echoed: {err:#}"
        );
        assert!(Config::parse("hops = 0").is_err());
        assert!(Config::parse("command_timeout = 0").is_err());
        assert!(Config::parse("listne = \"typo\"").is_err());
    }
}
