//! Names and values as they may appear in Asterisk configuration files.
//!
//! Section names are built by us from safe characters only (extension
//! numbers, `bridge`, `trunk-<slug>`). Values that come from admins are
//! checked: a newline would start a new line of configuration, so control
//! characters are refused; `;` starts a comment, so it is written `\;`
//! (Asterisk's escape); leading or trailing blanks would be trimmed by
//! Asterisk, so they are refused rather than silently changing a secret.

use std::collections::HashSet;

use crate::domain::Id;

/// A value that cannot be written to the configuration without changing
/// its meaning. The message names the resource and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot render the Asterisk configuration: {0}")]
pub struct RenderError(pub String);

/// An option value: refused if it would break the line, `;` escaped.
pub(crate) fn value(what: &str, v: &str) -> Result<String, RenderError> {
    if v.is_empty() {
        return Err(RenderError(format!("{what} is empty")));
    }
    if v.chars().any(char::is_control) {
        return Err(RenderError(format!("{what} contains a control character")));
    }
    if v.trim() != v {
        return Err(RenderError(format!(
            "{what} starts or ends with a blank, which Asterisk would drop"
        )));
    }
    Ok(v.replace(';', "\\;"))
}

/// A dial string or number used as an extension or inside a `Dial()`:
/// digits, `*`, `#` and a leading `+` (what the domain validates).
pub(crate) fn check_number(what: &str, v: &str) -> Result<(), RenderError> {
    let body = v.strip_prefix('+').unwrap_or(v);
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
    {
        return Err(RenderError(format!("{what} {v:?} is not a dial string")));
    }
    Ok(())
}

/// A dial pattern as an `exten =>` name: the characters the routing
/// engine's parser accepts, and nothing that ends the field (`,`) or the
/// line (`;`, control characters).
pub(crate) fn check_pattern(what: &str, v: &str) -> Result<(), RenderError> {
    let ok = !v.is_empty()
        && v.bytes().all(|b| {
            b.is_ascii_digit()
                || matches!(
                    b,
                    b'_' | b'*' | b'#' | b'+' | b'X' | b'x' | b'Z' | b'z' | b'N' | b'n'
                )
                || matches!(b, b'[' | b']' | b'-' | b'.' | b'!')
        });
    if ok {
        Ok(())
    } else {
        Err(RenderError(format!("{what} {v:?} is not a dial pattern")))
    }
}

/// Text for a `;` comment or a `NoOp()` argument: one line, no characters
/// the dialplan would read as syntax (`,` `(` `)` `$` `{` `}` `;` `\`
/// `"`), at most 60 characters.
pub(crate) fn comment(v: &str) -> String {
    let cleaned: String = v
        .chars()
        .map(|c| {
            if c.is_control()
                || matches!(
                    c,
                    ',' | '(' | ')' | '$' | '{' | '}' | ';' | '\\' | '"' | '[' | ']'
                )
            {
                ' '
            } else {
                c
            }
        })
        .take(60)
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `callerid = "Name" <1001>`: the name without quotes, angle brackets or
/// backslashes, `;` escaped; just `<1001>` without a name.
pub(crate) fn callerid(display_name: &str, number: &str) -> String {
    let name: String = display_name
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '<' | '>' | '\\'))
        .collect();
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() {
        format!("<{number}>")
    } else {
        format!("\"{}\" <{number}>", name.replace(';', "\\;"))
    }
}

/// A SIP URI user part (trunk usernames): RFC 3261 unreserved characters
/// and the user-unreserved ones that are harmless in a config value.
pub(crate) fn check_sip_user(what: &str, v: &str) -> Result<(), RenderError> {
    let ok = !v.is_empty()
        && v.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'&' | b'=' | b'+' | b'$'
                )
        });
    if ok {
        Ok(())
    } else {
        Err(RenderError(format!(
            "{what} {v:?} has characters that cannot go into a SIP URI"
        )))
    }
}

/// Lower-case ASCII letters and digits of `name`, runs of anything else
/// as one `-`.
pub(crate) fn slug(name: &str) -> String {
    let mut out = String::new();
    let mut gap = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('-');
            }
            gap = false;
            out.push(c.to_ascii_lowercase());
        } else {
            gap = true;
        }
    }
    out.truncate(40);
    out.trim_end_matches('-').to_owned()
}

/// The endpoint (and aor/auth/registration/identify) name of a trunk: its
/// name itself when that is a safe section name (ASCII letters, digits,
/// `-`, `_`, `.`; not only digits, which extensions use; not `bridge` or
/// our `pbx-bridge-` templates), else `trunk-<slug of the name>`
/// (`trunk-<slug>-<id>` when taken, `trunk-<id>` when the name has no
/// ASCII letter or digit).
pub(crate) fn trunk_endpoint(name: &str, id: Id, taken: &HashSet<String>) -> String {
    let safe = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.bytes().all(|b| b.is_ascii_digit())
        && !name.eq_ignore_ascii_case("bridge")
        && !name.to_ascii_lowercase().starts_with("pbx-bridge-");
    if safe && !taken.contains(name) {
        return name.to_owned();
    }
    let slug = slug(name);
    if slug.is_empty() {
        return format!("trunk-{id}");
    }
    let plain = format!("trunk-{slug}");
    if taken.contains(&plain) {
        format!("trunk-{slug}-{id}")
    } else {
        plain
    }
}

/// A host name or IP literal: letters, digits, `.`, `-` and (IPv6) `:`.
pub(crate) fn check_host(what: &str, v: &str) -> Result<(), RenderError> {
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
    if ok {
        Ok(())
    } else {
        Err(RenderError(format!(
            "{what} {v:?} is not a host name or address"
        )))
    }
}
