//! Lightning network identifiers of the wire (`lightning`, `lightning-regtest`, …) and their
//! BOLT11 currencies.

use std::fmt;
use std::str::FromStr;

use lightning_invoice::Currency;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Lightning network as named on the wire (the `network` fields of the
/// [wire contract](crate::protocol)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Network {
    /// Bitcoin mainnet: `lightning`, invoices `lnbc…`.
    Bitcoin,
    /// Bitcoin testnet: `lightning-testnet`, invoices `lntb…`.
    Testnet,
    /// Bitcoin signet: `lightning-signet`, invoices `lntbs…`.
    Signet,
    /// Bitcoin regtest: `lightning-regtest`, invoices `lnbcrt…`.
    Regtest,
}

/// A network name that is not one of the four Lightning networks of the
/// [wire contract](crate::protocol).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported network `{0}`: expected one of {known}", known = Network::NAMES.join(", "))]
pub struct UnknownNetwork(pub String);

impl Network {
    /// Every network, in the order of the [wire contract](crate::protocol).
    pub const ALL: [Network; 4] = [
        Network::Bitcoin,
        Network::Testnet,
        Network::Signet,
        Network::Regtest,
    ];

    const NAMES: [&'static str; 4] = [
        "lightning",
        "lightning-testnet",
        "lightning-signet",
        "lightning-regtest",
    ];

    /// The wire name, e.g. `"lightning-regtest"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Network::Bitcoin => Self::NAMES[0],
            Network::Testnet => Self::NAMES[1],
            Network::Signet => Self::NAMES[2],
            Network::Regtest => Self::NAMES[3],
        }
    }

    /// The BOLT11 currency of invoices on this network.
    pub const fn currency(self) -> Currency {
        match self {
            Network::Bitcoin => Currency::Bitcoin,
            Network::Testnet => Currency::BitcoinTestnet,
            Network::Signet => Currency::Signet,
            Network::Regtest => Currency::Regtest,
        }
    }

    /// The network of a BOLT11 currency; `None` for simnet, which x402 does not use.
    pub const fn from_currency(currency: &Currency) -> Option<Network> {
        match currency {
            Currency::Bitcoin => Some(Network::Bitcoin),
            Currency::BitcoinTestnet => Some(Network::Testnet),
            Currency::Signet => Some(Network::Signet),
            Currency::Regtest => Some(Network::Regtest),
            Currency::Simnet => None,
        }
    }

    /// The networks upstream's `lnbtc` scheme names (mainnet and testnet). Signet and regtest
    /// ids are this project's, opt-in: a facilitator or layer that accepts them says so.
    pub const LNBTC_UPSTREAM: [Network; 2] = [Network::Bitcoin, Network::Testnet];

    /// The x402 version 2 (CAIP-2) id of the network in the `lnbtc` namespace: `lnbtc:` and the
    /// first 32 hex characters of the genesis block hash, e.g.
    /// `lnbtc:000000000019d6689c085ae165831e93` for mainnet.
    pub const fn lnbtc_id(self) -> &'static str {
        match self {
            Network::Bitcoin => "lnbtc:000000000019d6689c085ae165831e93",
            Network::Testnet => "lnbtc:000000000933ea01ad0ee984209779ba",
            Network::Signet => "lnbtc:00000008819873e925422c1ff0f99f7c",
            Network::Regtest => "lnbtc:0f9188f13cb7b2c71f2a335e3a4fc328",
        }
    }

    /// The network of an `lnbtc:` id (exact spelling, lowercase); `None` for any other string.
    pub fn from_lnbtc_id(id: &str) -> Option<Network> {
        Network::ALL
            .into_iter()
            .find(|network| network.lnbtc_id() == id)
    }

    /// The invoice prefix: `lnbc`, `lntb`, `lntbs` or `lnbcrt`.
    pub const fn bolt11_prefix(self) -> &'static str {
        match self {
            Network::Bitcoin => "lnbc",
            Network::Testnet => "lntb",
            Network::Signet => "lntbs",
            Network::Regtest => "lnbcrt",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Network {
    type Err = UnknownNetwork;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Network::ALL
            .into_iter()
            .find(|network| network.as_str() == s)
            .ok_or_else(|| UnknownNetwork(s.to_owned()))
    }
}

impl Serialize for Network {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NetworkVisitor;

        impl serde::de::Visitor<'_> for NetworkVisitor {
            type Value = Network;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Lightning network name such as \"lightning-regtest\"")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Network, E> {
                value.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(NetworkVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_map_to_their_currency() {
        for network in Network::ALL {
            assert_eq!(network.as_str().parse::<Network>(), Ok(network));
            assert_eq!(Network::from_currency(&network.currency()), Some(network));
        }
        assert_eq!(Network::Regtest.currency(), Currency::Regtest);
        assert_eq!(Network::Testnet.currency(), Currency::BitcoinTestnet);
    }

    #[test]
    fn lnbtc_ids_round_trip_and_refuse_other_spellings() {
        for network in Network::ALL {
            assert_eq!(Network::from_lnbtc_id(network.lnbtc_id()), Some(network));
        }
        assert_eq!(
            Network::from_lnbtc_id("lnbtc:000000000019D6689C085AE165831E93"),
            None
        );
        assert_eq!(Network::from_lnbtc_id("lightning"), None);
        assert_eq!(
            Network::from_lnbtc_id("lnbtc:00000000000000000000000000000000"),
            None
        );
    }

    #[test]
    fn unknown_names_are_rejected_with_the_list_of_known_ones() {
        let err = "base-sepolia".parse::<Network>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported network `base-sepolia`: expected one of lightning, lightning-testnet, \
             lightning-signet, lightning-regtest"
        );
        assert!(Network::from_currency(&Currency::Simnet).is_none());
    }
}
