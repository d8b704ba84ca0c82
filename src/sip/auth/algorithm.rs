//! Digest algorithms (RFC 7616 §3.4.3, RFC 8760 for SIP).
//!
//! The names are printed exactly as RFC 8760 spells them (`SHA-256`, never
//! `SHA256`): deployed phones compare the token literally, and printing a
//! variant they do not know makes them give up on the challenge.

use std::fmt;
use std::str::FromStr;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

/// A digest algorithm, hash function plus the `-sess` flag.
///
/// The default is MD5 because a missing `algorithm` parameter means MD5
/// (RFC 7616 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    #[default]
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
    Sha512_256,
    Sha512_256Sess,
}

/// The textual algorithm name was not one we implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown digest algorithm {0:?}")]
pub struct UnknownAlgorithm(pub String);

impl Algorithm {
    /// Every algorithm, in no particular order of preference.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::Md5,
        Algorithm::Md5Sess,
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
        Algorithm::Sha512_256,
        Algorithm::Sha512_256Sess,
    ];

    /// The RFC 8760 spelling, as put on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// `-sess` variants hash the nonce and cnonce into HA1 (RFC 7616 §3.4.2).
    pub fn is_session(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }

    /// Lower-case hex of the hash of `data`, the form every digest value takes.
    pub fn hex_digest(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex::encode(Md5::digest(data)),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex::encode(Sha256::digest(data)),
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => {
                hex::encode(Sha512_256::digest(data))
            }
        }
    }

    /// Length in hex characters of a response computed with this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 32,
            _ => 64,
        }
    }

    /// Parses a list of names such as the extension's `digest_algorithms`
    /// setting (`["SHA-256", "MD5"]`), keeping the order of preference and
    /// dropping repeats; an unknown name is an error, so a typo in the
    /// configuration is reported rather than silently offering less.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<Algorithm>, UnknownAlgorithm> {
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let alg: Algorithm = name.as_ref().parse()?;
            if !out.contains(&alg) {
                out.push(alg);
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    /// Case-insensitive, because RFC 7616 tokens are and phones vary.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownAlgorithm(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_case_insensitive() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.as_str().parse::<Algorithm>(), Ok(alg));
            assert_eq!(
                alg.as_str().to_ascii_lowercase().parse::<Algorithm>(),
                Ok(alg)
            );
            assert_eq!(
                alg.as_str().to_ascii_uppercase().parse::<Algorithm>(),
                Ok(alg)
            );
        }
        assert_eq!(Algorithm::Sha256.to_string(), "SHA-256");
        assert_eq!(Algorithm::Sha512_256Sess.to_string(), "SHA-512-256-sess");
    }

    #[test]
    fn rejects_unknown_spellings() {
        for bad in ["SHA256", "SHA-512", "", "MD5 ", "md5-session", "SHA-1"] {
            assert!(bad.parse::<Algorithm>().is_err(), "{bad}");
        }
    }

    #[test]
    fn default_is_md5() {
        assert_eq!(Algorithm::default(), Algorithm::Md5);
    }

    #[test]
    fn parse_list_keeps_order_and_drops_repeats() {
        assert_eq!(
            Algorithm::parse_list(&["SHA-256", "md5", "SHA-256"]),
            Ok(vec![Algorithm::Sha256, Algorithm::Md5])
        );
        assert!(Algorithm::parse_list(&["SHA256"]).is_err());
    }

    #[test]
    fn digest_lengths() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.hex_digest(b"x").len(), alg.hex_len());
        }
        // Independent oracle: `printf abc | md5sum` / `openssl dgst -sha512-256`.
        assert_eq!(
            Algorithm::Md5.hex_digest(b"abc"),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            Algorithm::Sha512_256.hex_digest(b"abc"),
            "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
        );
    }
}
