//! `config.toml`: a home's settings. Every key is optional; `scrip init` writes the file with
//! every default spelled out and explained.

use anyhow::{Result, anyhow, bail};
use scrip_replicate::transport::NetworkKey;
use serde::{Deserialize, Serialize};

/// Default replication address of `scrip serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7411";
/// Default notary service address of `scrip serve --notary`.
pub const DEFAULT_NOTARY_LISTEN: &str = "127.0.0.1:7412";
/// Default address of the web wallet `scrip serve` serves ("off": none).
pub const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:7413";
/// Default follow distance replicated.
pub const DEFAULT_HOPS: u8 = 2;
/// Default time a command waits for its daemon's answer, in seconds.
pub const DEFAULT_COMMAND_TIMEOUT: u64 = 30;
/// Default time an order can be accepted, from when it is paid.
pub const DEFAULT_ORDER_EXPIRY: &str = "7d";
/// Default bound on clock error, in seconds (the notaries' margin δ, `notary.md` §3a).
pub const DEFAULT_CLOCK_SKEW: u64 = 30;
/// Default bound on the wallets a notary takes on per hour (`notary.md` §2, "New wallets").
pub const DEFAULT_NOTARY_NEW_WALLETS_PER_HOUR: u32 = 1000;
/// Default bound on the entries a notary keeps per second for wallets it does not vouch for
/// (`notary.md` §2, "Strangers' entries").
pub const DEFAULT_NOTARY_STRANGER_ENTRIES_PER_SEC: u32 = 50;

/// A home's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where `scrip serve` listens for peers.
    pub listen: String,
    /// Where `scrip serve --notary` listens for wallets.
    pub notary_listen: String,
    /// Most wallets `scrip serve --notary` takes on per hour.
    pub notary_new_wallets_per_hour: u32,
    /// Most entries per second `scrip serve --notary` keeps for wallets it does not vouch for.
    pub notary_stranger_entries_per_sec: u32,
    /// The network key ("default", or 64 hex digits): only peers with the same key connect.
    pub network_key: String,
    /// How far along the follow graph feeds are replicated (1 = only the feeds you follow).
    pub hops: u8,
    /// Seconds a command waits for the daemon's answer on the control socket.
    pub command_timeout: u64,
    /// How long an order can be accepted (`pay` without `--expires`), e.g. "7d", "12h".
    pub order_expiry: String,
    /// The bound on clock error assumed, in seconds: a notary's margin δ around expiries, and
    /// what this wallet's commands keep clear of them.
    pub clock_skew: u64,
    /// Whether the daemon refunds this wallet's expired orders by itself.
    pub auto_refund: bool,
    /// Where `scrip serve` serves the web wallet ("off": nowhere). Beyond loopback only when
    /// set so, and then the daemon says so loudly.
    pub web_listen: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.into(),
            notary_listen: DEFAULT_NOTARY_LISTEN.into(),
            notary_new_wallets_per_hour: DEFAULT_NOTARY_NEW_WALLETS_PER_HOUR,
            notary_stranger_entries_per_sec: DEFAULT_NOTARY_STRANGER_ENTRIES_PER_SEC,
            network_key: "default".into(),
            hops: DEFAULT_HOPS,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            order_expiry: DEFAULT_ORDER_EXPIRY.into(),
            clock_skew: DEFAULT_CLOCK_SKEW,
            auto_refund: true,
            web_listen: DEFAULT_WEB_LISTEN.into(),
        }
    }
}

/// Parses a duration such as "90s", "2h", "7d" or "1h 30m" (days are 24 hours).
pub fn parse_duration(text: &str) -> Result<std::time::Duration> {
    let span: jiff::Span = text
        .trim()
        .parse()
        .map_err(|e| anyhow!("{text:?} is not a duration such as 90s, 2h or 7d: {e}"))?;
    let duration = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|e| anyhow!("{text:?} is not a duration such as 90s, 2h or 7d: {e}"))?;
    std::time::Duration::try_from(duration)
        .map_err(|_| anyhow!("{text:?} is negative: a duration is positive"))
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
        if config.clock_skew > 3600 {
            bail!("clock_skew must be at most 3600 seconds");
        }
        if !(1..=1_000_000).contains(&config.notary_new_wallets_per_hour) {
            bail!("notary_new_wallets_per_hour must be 1 to 1000000");
        }
        if !(1..=100_000).contains(&config.notary_stranger_entries_per_sec) {
            bail!("notary_stranger_entries_per_sec must be 1 to 100000");
        }
        config.order_expiry()?;
        config.web_listen()?;
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

    /// The default order expiry, checked.
    pub fn order_expiry(&self) -> Result<std::time::Duration> {
        let expiry =
            parse_duration(&self.order_expiry).map_err(|e| anyhow!("order_expiry: {e}"))?;
        if expiry < std::time::Duration::from_secs(1) {
            bail!("order_expiry must be at least 1s");
        }
        Ok(expiry)
    }

    /// The web wallet's address, checked (`None`: "off").
    pub fn web_listen(&self) -> Result<Option<std::net::SocketAddr>> {
        if self.web_listen == "off" {
            return Ok(None);
        }
        self.web_listen.parse().map(Some).map_err(|_| {
            anyhow!(
                "web_listen is neither \"off\" nor an address such as \"127.0.0.1:7413\" ({:?})",
                self.web_listen
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
             # Most wallets `scrip serve --notary` takes on per hour: each wallet a notary serves\n\
             # costs it memory and disk for good, and anyone can name any notary in a new wallet\n\
             # (default {DEFAULT_NOTARY_NEW_WALLETS_PER_HOUR}; wallets it already serves are never refused).\n\
             notary_new_wallets_per_hour = {new_wallets}\n\
             \n\
             # Most entries per second `scrip serve --notary` keeps for wallets it does not vouch\n\
             # for (yours and those of the people you follow are not bound): its votes and what it\n\
             # learns for them are kept for good, and a stranger could otherwise take all of its\n\
             # work (default {DEFAULT_NOTARY_STRANGER_ENTRIES_PER_SEC}, ten seconds' worth at once).\n\
             notary_stranger_entries_per_sec = {strangers}\n\
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
             command_timeout = {timeout}\n\
             \n\
             # How long an order you pay can be accepted, unless `scrip pay --expires` says\n\
             # otherwise; after that you get it back (default \"{DEFAULT_ORDER_EXPIRY}\").\n\
             order_expiry = {expiry:?}\n\
             \n\
             # The bound on clock error, in seconds: a notary claims an order only until this\n\
             # long before its expiry and refunds it from this long after (default {DEFAULT_CLOCK_SKEW}).\n\
             clock_skew = {skew}\n\
             \n\
             # Whether `scrip serve` refunds your expired orders by itself (default true).\n\
             auto_refund = {refund}\n\
             \n\
             # Where `scrip serve` serves the web wallet (`scrip open` shows its address), or\n\
             # \"off\". Keep it on loopback: anyone who can reach it and has its token can spend\n\
             # (default \"{DEFAULT_WEB_LISTEN}\").\n\
             web_listen = {web:?}\n",
            listen = self.listen,
            notary = self.notary_listen,
            new_wallets = self.notary_new_wallets_per_hour,
            strangers = self.notary_stranger_entries_per_sec,
            key = self.network_key,
            hops = self.hops,
            timeout = self.command_timeout,
            expiry = self.order_expiry,
            skew = self.clock_skew,
            refund = self.auto_refund,
            web = self.web_listen,
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
        assert!(Config::parse("order_expiry = \"soon\"").is_err());
        assert!(Config::parse("order_expiry = \"0s\"").is_err());
        assert!(Config::parse("clock_skew = 99999").is_err());
        assert!(Config::parse("notary_new_wallets_per_hour = 0").is_err());
        assert!(Config::parse("notary_stranger_entries_per_sec = 0").is_err());
        assert!(Config::parse("notary_stranger_entries_per_sec = 100001").is_err());
        assert!(Config::parse("web_listen = \"localhost\"").is_err());
        assert!(Config::parse("web_listen = \"off\"").is_ok());
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("2h").unwrap().as_secs(), 7_200);
        assert_eq!(parse_duration("7d").unwrap().as_secs(), 7 * 86_400);
        assert_eq!(parse_duration("1h 30m").unwrap().as_secs(), 5_400);
        assert!(parse_duration("-1h").is_err());
        assert!(parse_duration("tomorrow").is_err());
    }
}
