//! The `[chain]` section of a daemon's config file and the `run` flags that override
//! it, written once for every role.
//!
//! A section holds what every role registers with — `url`, `key`, `stake`,
//! `advertise` — and the role's own fields ([`ChainRole`]: the hoster's `capacity` and
//! `max_feed_length`; nothing for the attestor), all in one TOML table:
//!
//! ```toml
//! [chain]
//! url = "ws://127.0.0.1:8000"
//! key = "dev:hoster-1"
//! stake = 100
//! capacity = 16
//! ```
//!
//! Unknown fields are refused, the common ones by [`ChainConfig`], the rest by the
//! role's type (serde's `flatten` cannot refuse them, so the table is split by hand).

use std::fmt::Debug;
use std::net::SocketAddr;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};

/// The fields of a `[chain]` section only one role has.
pub trait ChainRole:
    Clone + Debug + PartialEq + Eq + Default + Serialize + DeserializeOwned
{
    /// Stake bonded at registration when the file names none, in whole tokens.
    const DEFAULT_STAKE: u64;
    /// The key the commented example in a new config file shows (`dev:<name>`).
    const EXAMPLE_KEY: &'static str;
    /// The `advertise` address that example shows.
    const EXAMPLE_ADVERTISE: &'static str;
    /// Check the role's fields.
    fn validate(&self) -> anyhow::Result<()>;
    /// The role's fields as lines of TOML (`name = value\n` each).
    fn toml_lines(&self) -> String;
}

/// `[chain]`: how `run` registers with the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainConfig<R> {
    /// WebSocket URL of a chain node (`ws://127.0.0.1:8000` for the devnet).
    pub url: String,
    /// The chain account: `dev:<name>` (well-known devnet keys, e.g. `dev:hoster-1`) or
    /// the path of a 0600 key file holding `0x` + a 64-hex sr25519 seed.
    pub key: String,
    /// Stake bonded at registration, in whole tokens (default: the role's
    /// [`ChainRole::DEFAULT_STAKE`], the dev runtime's minimum).
    pub stake: u64,
    /// Address registered on chain for peers to dial (default: the listen address,
    /// unless it is an unspecified address such as `0.0.0.0`, which cannot be dialled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<SocketAddr>,
    /// The role's own fields.
    #[serde(flatten)]
    pub role: R,
}

/// The common fields, as read (`deny_unknown_fields` works here, without `flatten`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    url: String,
    key: String,
    stake: Option<u64>,
    advertise: Option<SocketAddr>,
}

const COMMON: [&str; 4] = ["url", "key", "stake", "advertise"];

impl<'de, R: ChainRole> Deserialize<'de> for ChainConfig<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut rest = toml::Table::deserialize(d)?;
        let mut common = toml::Table::new();
        for k in COMMON {
            if let Some(v) = rest.remove(k) {
                common.insert(k.to_string(), v);
            }
        }
        let c: Common = toml::Value::Table(common)
            .try_into()
            .map_err(D::Error::custom)?;
        let role: R = toml::Value::Table(rest)
            .try_into()
            .map_err(D::Error::custom)?;
        Ok(ChainConfig {
            url: c.url,
            key: c.key,
            stake: c.stake.unwrap_or(R::DEFAULT_STAKE),
            advertise: c.advertise,
            role,
        })
    }
}

impl<R: ChainRole> ChainConfig<R> {
    /// A section with the documented defaults.
    pub fn new(url: String, key: String) -> Self {
        ChainConfig {
            url,
            key,
            stake: R::DEFAULT_STAKE,
            advertise: None,
            role: R::default(),
        }
    }

    /// Check everything that can be checked without the chain: a ws:// or wss:// URL, a
    /// key, a stake, an `advertise` address peers can dial, the role's fields.
    pub fn validate(&self) -> anyhow::Result<()> {
        let url = &self.url;
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            anyhow::bail!("[chain] url must be a ws:// or wss:// URL, got {url:?}");
        }
        if self.key.trim().is_empty() {
            anyhow::bail!("[chain] key must be `dev:<name>` or the path of a key file");
        }
        if self.stake == 0 {
            anyhow::bail!("[chain] stake must be at least 1 token");
        }
        if let Some(a) = self.advertise
            && (a.ip().is_unspecified() || a.port() == 0)
        {
            anyhow::bail!("[chain] advertise must be an address peers can dial, got {a}");
        }
        self.role.validate()
    }

    /// The address to register: `advertise`, else the bound `listen` address if peers
    /// can dial it.
    pub fn advertised(&self, listen: SocketAddr) -> anyhow::Result<SocketAddr> {
        match self.advertise {
            Some(a) => Ok(a),
            None if !listen.ip().is_unspecified() => Ok(listen),
            None => anyhow::bail!(
                "listening on {listen}, which peers cannot dial: set [chain] advertise (or --advertise) to the address they reach this node at"
            ),
        }
    }

    /// The section as a config file has it. Without one, the example is written
    /// commented out.
    pub fn to_toml(section: Option<&Self>) -> String {
        let show = |c: &Self| {
            format!(
                "[chain]\nurl = {:?}\nkey = {:?}\nstake = {}\n{}{}",
                c.url,
                c.key,
                c.stake,
                c.role.toml_lines(),
                c.advertise
                    .map(|a| format!("advertise = \"{a}\"\n"))
                    .unwrap_or_default()
            )
        };
        match section {
            Some(c) => show(c),
            None => {
                let mut example = Self::new("ws://127.0.0.1:8000".into(), R::EXAMPLE_KEY.into());
                example.advertise = R::EXAMPLE_ADVERTISE.parse().ok();
                show(&example).lines().map(|l| format!("# {l}\n")).collect()
            }
        }
    }
}

/// The flags of `run` that override `[chain]` (flattened into each daemon's `run`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ChainFlags {
    /// Chain node (ws:// URL); overrides [chain] url.
    #[arg(long)]
    pub chain_url: Option<String>,
    /// Chain account: `dev:<name>` (devnet, e.g. dev:hoster-1) or a key file (0600,
    /// `0x` + 64 hex seed); overrides [chain] key.
    #[arg(long)]
    pub chain_key: Option<String>,
    /// Stake to bond when registering, in whole tokens (default: [chain] stake, else the
    /// dev runtime's minimum for the role).
    #[arg(long)]
    pub stake: Option<u64>,
    /// Address to register for peers to dial (default: the listen address, unless it is
    /// 0.0.0.0 / [::]).
    #[arg(long)]
    pub advertise: Option<SocketAddr>,
}

impl ChainFlags {
    /// Apply the flags to `section`: `--chain-url` without a section makes one (with
    /// `--chain-key`); the others need a section.
    pub fn apply<R: ChainRole>(self, section: &mut Option<ChainConfig<R>>) -> anyhow::Result<()> {
        if let Some(url) = self.chain_url {
            match section.as_mut() {
                Some(c) => c.url = url,
                None => {
                    let key = self.chain_key.clone().ok_or_else(|| {
                        anyhow::anyhow!(
                            "--chain-url needs --chain-key (or a [chain] section with `key`)"
                        )
                    })?;
                    *section = Some(ChainConfig::new(url, key));
                }
            }
        }
        let Some(c) = section.as_mut() else {
            if self.chain_key.is_some() || self.stake.is_some() || self.advertise.is_some() {
                anyhow::bail!(
                    "--chain-key/--stake/--advertise need a chain: --chain-url or a [chain] section"
                );
            }
            return Ok(());
        };
        if let Some(k) = self.chain_key {
            c.key = k;
        }
        if let Some(s) = self.stake {
            c.stake = s;
        }
        if self.advertise.is_some() {
            c.advertise = self.advertise;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A role with one field of its own.
    #[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Role {
        slots: u32,
    }

    impl ChainRole for Role {
        const DEFAULT_STAKE: u64 = 7;
        const EXAMPLE_KEY: &'static str = "dev:role-1";
        const EXAMPLE_ADVERTISE: &'static str = "203.0.113.7:1";
        fn validate(&self) -> anyhow::Result<()> {
            anyhow::ensure!(self.slots < 100, "[chain] slots must be under 100");
            Ok(())
        }
        fn toml_lines(&self) -> String {
            format!("slots = {}\n", self.slots)
        }
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        chain: Option<ChainConfig<Role>>,
    }

    fn parse(text: &str) -> anyhow::Result<Option<ChainConfig<Role>>> {
        Ok(toml::from_str::<File>(text)?.chain)
    }

    #[test]
    fn a_section_round_trips_with_defaults_and_refuses_unknown_fields() {
        let mut c = ChainConfig::<Role>::new("ws://x:1".into(), "dev:a".into());
        assert_eq!(
            parse(&ChainConfig::to_toml(Some(&c))).unwrap(),
            Some(c.clone())
        );
        c.advertise = Some("10.0.0.1:7".parse().unwrap());
        c.role.slots = 9;
        c.stake = 3;
        assert_eq!(
            parse(&ChainConfig::to_toml(Some(&c))).unwrap(),
            Some(c.clone())
        );
        let c = parse("[chain]\nurl = \"ws://x:1\"\nkey = \"dev:b\"\n")
            .unwrap()
            .unwrap();
        assert_eq!((c.stake, c.advertise, c.role.slots), (7, None, 0));
        // A typo among the common fields and among the role's: both refused.
        for bad in [
            "[chain]\nurl = \"ws://x:1\"\nkey = \"dev:b\"\nstak = 1\n",
            "[chain]\nurl = \"ws://x:1\"\nkey = \"dev:b\"\nslot = 1\n",
            "[chain]\nkey = \"dev:b\"\n",
            "[chain]\nurl = 5\nkey = \"dev:b\"\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        // The example is all comments.
        let example = ChainConfig::<Role>::to_toml(None);
        assert!(example.lines().all(|l| l.starts_with("# ")), "{example}");
        assert_eq!(parse(&example).unwrap(), None);
        let uncommented: String = example.lines().map(|l| format!("{}\n", &l[2..])).collect();
        let c = parse(&uncommented).unwrap().unwrap();
        assert_eq!(c.key, "dev:role-1");
        c.validate().unwrap();
    }

    #[test]
    fn a_section_is_checked() {
        let ok = ChainConfig::<Role>::new("ws://x:1".into(), "dev:a".into());
        ok.validate().unwrap();
        let l: SocketAddr = "127.0.0.1:7100".parse().unwrap();
        assert_eq!(ok.advertised(l).unwrap(), l);
        assert!(ok.advertised("0.0.0.0:7100".parse().unwrap()).is_err());
        for bad in [
            ChainConfig::new("http://x".into(), "dev:a".into()),
            ChainConfig::new("ws://x:1".into(), " ".into()),
            ChainConfig {
                stake: 0,
                ..ok.clone()
            },
            ChainConfig {
                advertise: Some("0.0.0.0:1".parse().unwrap()),
                ..ok.clone()
            },
            ChainConfig {
                role: Role { slots: 100 },
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flags_override_the_section_or_make_one() {
        let mut none: Option<ChainConfig<Role>> = None;
        ChainFlags::default().apply(&mut none).unwrap();
        assert_eq!(none, None);
        let stake_only = ChainFlags {
            stake: Some(1),
            ..ChainFlags::default()
        };
        assert!(stake_only.clone().apply(&mut none).is_err());
        let url_only = ChainFlags {
            chain_url: Some("ws://y:2".into()),
            ..ChainFlags::default()
        };
        assert!(
            url_only.clone().apply(&mut none).is_err(),
            "a new section needs a key"
        );
        ChainFlags {
            chain_key: Some("dev:c".into()),
            advertise: Some("10.0.0.2:3".parse().unwrap()),
            ..url_only.clone()
        }
        .apply(&mut none)
        .unwrap();
        let c = none.clone().unwrap();
        assert_eq!(
            (c.url.as_str(), c.key.as_str(), c.stake, c.advertise),
            ("ws://y:2", "dev:c", 7, Some("10.0.0.2:3".parse().unwrap()))
        );
        stake_only.apply(&mut none).unwrap();
        ChainFlags {
            chain_url: Some("ws://z:3".into()),
            ..ChainFlags::default()
        }
        .apply(&mut none)
        .unwrap();
        let c = none.unwrap();
        assert_eq!(
            (c.url.as_str(), c.key.as_str(), c.stake),
            ("ws://z:3", "dev:c", 1)
        );
    }
}
