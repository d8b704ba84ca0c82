//! Networks in CIDR notation as inputs read them: a bad one is refused with
//! a reason that says what was expected (ipnet alone says "invalid IP
//! address syntax", even when only the prefix length is wrong).

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

const EXPECTED: &str = "must be a network in CIDR notation, such as 10.0.0.0/8 or 2001:db8::/32";

/// One network, its parse error explained.
struct Cidr(IpNet);

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)
            .map_err(|_| serde::de::Error::custom(format!("{EXPECTED} (a string)")))?;
        text.trim()
            .parse()
            .map(Cidr)
            .map_err(|_| serde::de::Error::custom(format!("{EXPECTED}, not {text:?}")))
    }
}

/// `deserialize_with` for an `IpNet` field.
pub(crate) fn cidr<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
    Cidr::deserialize(d).map(|c| c.0)
}

/// `deserialize_with` for a `Vec<IpNet>` field: errors name the element.
pub(crate) fn cidr_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    Ok(Vec::<Cidr>::deserialize(d)?
        .into_iter()
        .map(|c| c.0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct One {
        #[serde(deserialize_with = "cidr")]
        net: IpNet,
    }

    #[derive(Deserialize)]
    struct Many {
        #[serde(deserialize_with = "cidr_list")]
        nets: Vec<IpNet>,
    }

    #[test]
    fn reads_networks_and_explains_bad_ones() {
        let one: One = serde_json::from_str(r#"{"net": "10.0.0.0/8"}"#).unwrap();
        assert_eq!(one.net.to_string(), "10.0.0.0/8");
        let many: Many = serde_json::from_str(r#"{"nets": ["2001:db8::/32"]}"#).unwrap();
        assert_eq!(many.nets.len(), 1);
        for bad in [r#""10.0.0.300/8""#, r#""10.0.0.0/33""#, "7"] {
            let err = serde_json::from_str::<One>(&format!(r#"{{"net": {bad}}}"#))
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains("CIDR notation"), "{err}");
        }
    }
}
