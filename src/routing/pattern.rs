//! Asterisk-style dial patterns, as admins already write them for outbound
//! routes: `_` starts a pattern (`X`=0-9, `Z`=1-9, `N`=2-9, `[1-5]` a class,
//! `.` one or more of anything, `!` zero or more); a string without `_`
//! matches exactly.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    Literal(u8),
    /// Byte ranges, inclusive.
    Class(Vec<(u8, u8)>),
    OneOrMore,
    ZeroOrMore,
}

/// A parsed dial pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialPattern {
    atoms: Vec<Atom>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most 64 characters")]
    TooLong,
    #[error("character {0:?} at {1} is not allowed (digits, *, #, + and X Z N [ ] . ! after _)")]
    BadChar(char, usize),
    #[error("character class opened at {0} is not closed")]
    Unclosed(usize),
    #[error("character class at {0} is empty or malformed")]
    BadClass(usize),
}

fn dial_char(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b'*' | b'#' | b'+')
}

impl DialPattern {
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text.len() > 64 {
            return Err(PatternError::TooLong);
        }
        let bytes = text.as_bytes();
        let Some(body) = text.strip_prefix('_') else {
            if let Some((i, c)) = text.char_indices().find(|(_, c)| !dial_char_c(*c)) {
                return Err(PatternError::BadChar(c, i));
            }
            return Ok(Self {
                atoms: bytes.iter().map(|b| Atom::Literal(*b)).collect(),
            });
        };
        if body.is_empty() {
            return Err(PatternError::Empty);
        }
        let b = body.as_bytes();
        let mut atoms = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let pos = i + 1;
            match b[i] {
                b'X' | b'x' => atoms.push(Atom::Class(vec![(b'0', b'9')])),
                b'Z' | b'z' => atoms.push(Atom::Class(vec![(b'1', b'9')])),
                b'N' | b'n' => atoms.push(Atom::Class(vec![(b'2', b'9')])),
                b'.' => atoms.push(Atom::OneOrMore),
                b'!' => atoms.push(Atom::ZeroOrMore),
                b'[' => {
                    let close = b[i..]
                        .iter()
                        .position(|c| *c == b']')
                        .ok_or(PatternError::Unclosed(pos))?;
                    let inner = &b[i + 1..i + close];
                    atoms.push(Atom::Class(
                        parse_class(inner).ok_or(PatternError::BadClass(pos))?,
                    ));
                    i += close;
                }
                c if dial_char(c) => atoms.push(Atom::Literal(c)),
                _ => {
                    let c = body[i..].chars().next().unwrap_or('?');
                    return Err(PatternError::BadChar(c, pos));
                }
            }
            i += 1;
        }
        Ok(Self { atoms })
    }

    /// Whether `number` matches the whole pattern.
    pub fn matches(&self, number: &str) -> bool {
        match_from(&self.atoms, number.as_bytes())
    }
}

fn dial_char_c(c: char) -> bool {
    c.is_ascii() && dial_char(c as u8)
}

fn parse_class(inner: &[u8]) -> Option<Vec<(u8, u8)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < inner.len() {
        let lo = inner[i];
        if !dial_char(lo) {
            return None;
        }
        if inner.get(i + 1) == Some(&b'-') {
            let hi = *inner.get(i + 2)?;
            if !dial_char(hi) || hi < lo {
                return None;
            }
            out.push((lo, hi));
            i += 3;
        } else {
            out.push((lo, lo));
            i += 1;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Backtracking match; patterns are at most 64 atoms and numbers short, and
/// wildcards are rare, so the worst case stays small.
fn match_from(atoms: &[Atom], s: &[u8]) -> bool {
    let Some((first, rest)) = atoms.split_first() else {
        return s.is_empty();
    };
    match first {
        Atom::Literal(c) => s.first() == Some(c) && match_from(rest, &s[1..]),
        Atom::Class(ranges) => {
            s.first()
                .is_some_and(|c| ranges.iter().any(|(lo, hi)| (lo..=hi).contains(&c)))
                && match_from(rest, &s[1..])
        }
        Atom::OneOrMore => (1..=s.len()).any(|n| match_from(rest, &s[n..])),
        Atom::ZeroOrMore => (0..=s.len()).any(|n| match_from(rest, &s[n..])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(p: &str, n: &str) -> bool {
        DialPattern::parse(p).unwrap().matches(n)
    }

    #[test]
    fn asterisk_semantics() {
        assert!(m("100", "100"));
        assert!(!m("100", "1000"));
        assert!(m("_0800XXXXXXX", "08001234567"));
        assert!(!m("_0800XXXXXXX", "0800123456"));
        assert!(m("_NXXXXXXX", "23456789"));
        assert!(!m("_NXXXXXXX", "13456789"));
        assert!(m("_Z.", "19"));
        assert!(!m("_Z.", "1"));
        assert!(m("_0!", "0"));
        assert!(m("_[1-5]XX", "512"));
        assert!(!m("_[1-5]XX", "612"));
        assert!(m("_[13-5]", "4"));
        assert!(!m("_[13-5]", "2"));
        assert!(m("_+55.", "+5511999"));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in ["", "_", "_[12", "_[]", "_[5-1]", "_abc", "12a", "_X X"] {
            assert!(DialPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,80}", n in "[0-9*#+]{0,20}") {
            if let Ok(p) = DialPattern::parse(&s) {
                let _ = p.matches(&n);
            }
        }

        #[test]
        fn exact_strings_match_only_themselves(a in "[0-9]{1,12}", b in "[0-9]{1,12}") {
            let p = DialPattern::parse(&a).unwrap();
            prop_assert_eq!(p.matches(&b), a == b);
        }
    }
}
