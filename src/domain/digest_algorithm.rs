//! Digest algorithms an extension may be challenged with (RFC 8760).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Spelled exactly as RFC 8760 registers them: softphones compare the string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum DigestAlgorithm {
    #[serde(rename = "SHA-256")]
    Sha256,
    #[serde(rename = "SHA-512-256")]
    Sha512_256,
    #[serde(rename = "MD5")]
    Md5,
}

impl DigestAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "SHA-256",
            Self::Sha512_256 => "SHA-512-256",
            Self::Md5 => "MD5",
        }
    }
}

impl std::fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DigestAlgorithm {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_uppercase().as_str() {
            "SHA-256" => Ok(Self::Sha256),
            "SHA-512-256" => Ok(Self::Sha512_256),
            "MD5" => Ok(Self::Md5),
            _ => Err(()),
        }
    }
}
