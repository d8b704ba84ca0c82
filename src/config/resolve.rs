//! Resolution of the layers into [`Settings`]: flag, then environment (clap
//! reads both, flag first), then file, then the embedded default.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::{FileSettings, LogFormat, SettingError, Settings};
use crate::domain::DigestAlgorithm;

/// Settings as given on the command line or in the environment, unparsed so
/// that errors can name the setting the way the user wrote it.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct RawSettings {
    /// TOML file with settings (lowest precedence after the defaults).
    #[arg(long, env = "PBX_BRIDGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// SIP listen address (UDP and TCP). Default 127.0.0.1:5060.
    #[arg(long, env = "PBX_BRIDGE_SIP_LISTEN")]
    pub sip_listen: Option<String>,
    /// Admin API listen address. Default 127.0.0.1:8080.
    #[arg(long, env = "PBX_BRIDGE_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// RTP port range, `FIRST-LAST`. Default 20000-20999.
    #[arg(long, env = "PBX_BRIDGE_RTP_PORTS")]
    pub rtp_ports: Option<String>,
    /// Address written into SDP for media. Default 127.0.0.1.
    #[arg(long, env = "PBX_BRIDGE_MEDIA_ADDRESS")]
    pub media_address: Option<String>,
    /// `sqlite://…` or `postgres://…`. Default SQLite under the data dir.
    #[arg(long, env = "PBX_BRIDGE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory for the embedded database and state. Default ./data.
    #[arg(long, env = "PBX_BRIDGE_DATA_DIR")]
    pub data_dir: Option<String>,
    /// Directory for call recordings. Default ./recordings.
    #[arg(long, env = "PBX_BRIDGE_RECORDINGS_DIR")]
    pub recordings_dir: Option<String>,
    /// Admin token; without one, the first start creates and prints one.
    #[arg(long, env = "PBX_BRIDGE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Tracing filter, e.g. `info,pbx_bridge::sip=debug`. Default info.
    #[arg(long, env = "PBX_BRIDGE_LOG")]
    pub log: Option<String>,
    /// `text` or `json`. Default text.
    #[arg(long, env = "PBX_BRIDGE_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Installation time zone (protocol dates). Default America/Sao_Paulo.
    #[arg(long, env = "PBX_BRIDGE_TIME_ZONE")]
    pub time_zone: Option<String>,
    /// Hours without interaction before an open attendance is closed. Default 72.
    #[arg(long, env = "PBX_BRIDGE_INACTIVITY_CLOSE_H")]
    pub inactivity_close_h: Option<String>,
    /// Default digest algorithms offered to extensions, comma-separated. Default MD5.
    #[arg(long, env = "PBX_BRIDGE_DEFAULT_DIGEST_ALGORITHMS")]
    pub default_digest_algorithms: Option<String>,
    /// Seconds SIGTERM waits for live work before exiting. Default 30.
    #[arg(long, env = "PBX_BRIDGE_SHUTDOWN_GRACE_S")]
    pub shutdown_grace_s: Option<String>,
    /// Digest realm of the registrar. Default pbx-bridge.
    #[arg(long, env = "PBX_BRIDGE_SIP_REALM")]
    pub sip_realm: Option<String>,
    /// This node's name among the bridges sharing one database (the calls
    /// it owns, for crash recovery). Default: the host name.
    #[arg(long, env = "PBX_BRIDGE_NODE_ID")]
    pub node_id: Option<String>,
    /// Shortest registration a phone may ask for, seconds. Default 60.
    #[arg(long, env = "PBX_BRIDGE_REGISTER_MIN_EXPIRES_S")]
    pub register_min_expires_s: Option<String>,
    /// Longest registration granted, seconds. Default 3600.
    #[arg(long, env = "PBX_BRIDGE_REGISTER_MAX_EXPIRES_S")]
    pub register_max_expires_s: Option<String>,
    /// Failed authentications from one address before it is locked out. Default 5.
    #[arg(long, env = "PBX_BRIDGE_AUTH_MAX_FAILURES")]
    pub auth_max_failures: Option<String>,
    /// Window in which failures are counted, seconds. Default 300.
    #[arg(long, env = "PBX_BRIDGE_AUTH_FAILURE_WINDOW_S")]
    pub auth_failure_window_s: Option<String>,
    /// How long a locked-out address is refused, seconds. Default 900.
    #[arg(long, env = "PBX_BRIDGE_AUTH_LOCKOUT_S")]
    pub auth_lockout_s: Option<String>,
    /// Seconds without RTP after which a call is ended (dead media), 1-3600. Default 30.
    #[arg(long, env = "PBX_BRIDGE_RTP_TIMEOUT_S")]
    pub rtp_timeout_s: Option<String>,
}

/// Merges the layers and validates every value.
pub fn resolve(raw: &RawSettings) -> Result<Settings, SettingError> {
    let file = match &raw.config {
        Some(path) => FileSettings::load(path)?,
        None => FileSettings::default(),
    };
    let pick = |flag: &Option<String>, file: &Option<String>| flag.clone().or(file.clone());

    let data_dir =
        PathBuf::from(pick(&raw.data_dir, &file.data_dir).unwrap_or_else(|| "./data".to_owned()));
    let recordings_dir = PathBuf::from(
        pick(&raw.recordings_dir, &file.recordings_dir)
            .unwrap_or_else(|| "./recordings".to_owned()),
    );
    let database_url = pick(&raw.database_url, &file.database_url)
        .unwrap_or_else(|| format!("sqlite://{}/pbx-bridge.db?mode=rwc", data_dir.display()));
    if !(database_url.starts_with("sqlite:")
        || database_url.starts_with("postgres://")
        || database_url.starts_with("postgresql://"))
    {
        return Err(SettingError::new(
            "PBX_BRIDGE_DATABASE_URL",
            "must start with sqlite:// or postgres://",
        ));
    }

    let log_format = match pick(&raw.log_format, &file.log_format).as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(SettingError::new(
                "PBX_BRIDGE_LOG_FORMAT",
                format!("{other:?} is not text or json"),
            ));
        }
    };

    let algorithms = match (
        &raw.default_digest_algorithms,
        &file.default_digest_algorithms,
    ) {
        (Some(s), _) => s.split(',').map(|a| a.trim().to_owned()).collect(),
        (None, Some(list)) => list.clone(),
        (None, None) => vec!["MD5".to_owned()],
    };
    let default_digest_algorithms = algorithms
        .iter()
        .map(|a| {
            a.parse::<DigestAlgorithm>().map_err(|_| {
                SettingError::new(
                    "PBX_BRIDGE_DEFAULT_DIGEST_ALGORITHMS",
                    format!("{a:?} is not one of SHA-256, SHA-512-256, MD5"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if default_digest_algorithms.is_empty() {
        return Err(SettingError::new(
            "PBX_BRIDGE_DEFAULT_DIGEST_ALGORITHMS",
            "at least one algorithm is needed",
        ));
    }

    let inactivity_h = number(
        "PBX_BRIDGE_INACTIVITY_CLOSE_H",
        raw.inactivity_close_h.as_deref(),
        file.inactivity_close_h,
        72,
    )?;
    let grace_s = number(
        "PBX_BRIDGE_SHUTDOWN_GRACE_S",
        raw.shutdown_grace_s.as_deref(),
        file.shutdown_grace_s,
        30,
    )?;

    let min_expires = number(
        "PBX_BRIDGE_REGISTER_MIN_EXPIRES_S",
        raw.register_min_expires_s.as_deref(),
        file.register_min_expires_s,
        60,
    )?;
    let max_expires = number(
        "PBX_BRIDGE_REGISTER_MAX_EXPIRES_S",
        raw.register_max_expires_s.as_deref(),
        file.register_max_expires_s,
        3600,
    )?;
    if min_expires == 0 || min_expires > max_expires || max_expires > 86_400 {
        return Err(SettingError::new(
            "PBX_BRIDGE_REGISTER_MIN_EXPIRES_S",
            format!("{min_expires}..{max_expires} must satisfy 1 <= min <= max <= 86400"),
        ));
    }
    let auth_max_failures = number(
        "PBX_BRIDGE_AUTH_MAX_FAILURES",
        raw.auth_max_failures.as_deref(),
        file.auth_max_failures,
        5,
    )?;
    if auth_max_failures == 0 {
        return Err(SettingError::new(
            "PBX_BRIDGE_AUTH_MAX_FAILURES",
            "must be at least 1",
        ));
    }
    let auth_window = number(
        "PBX_BRIDGE_AUTH_FAILURE_WINDOW_S",
        raw.auth_failure_window_s.as_deref(),
        file.auth_failure_window_s,
        300,
    )?;
    let auth_lockout = number(
        "PBX_BRIDGE_AUTH_LOCKOUT_S",
        raw.auth_lockout_s.as_deref(),
        file.auth_lockout_s,
        900,
    )?;
    let rtp_timeout_s = number(
        "PBX_BRIDGE_RTP_TIMEOUT_S",
        raw.rtp_timeout_s.as_deref(),
        file.rtp_timeout_s,
        30,
    )?;
    if !(1..=3600).contains(&rtp_timeout_s) {
        return Err(SettingError::new(
            "PBX_BRIDGE_RTP_TIMEOUT_S",
            format!("{rtp_timeout_s} must be 1 to 3600 seconds"),
        ));
    }
    let sip_realm =
        pick(&raw.sip_realm, &file.sip_realm).unwrap_or_else(|| "pbx-bridge".to_owned());
    if sip_realm.is_empty() || sip_realm.chars().any(|c| c.is_control() || c == '"') {
        return Err(SettingError::new(
            "PBX_BRIDGE_SIP_REALM",
            "must be non-empty, without quotes or control characters",
        ));
    }

    let node_id = pick(&raw.node_id, &file.node_id).unwrap_or_else(host_name);
    if node_id.is_empty()
        || node_id.len() > 64
        || !node_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(SettingError::new(
            "PBX_BRIDGE_NODE_ID",
            "must be 1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }

    Ok(Settings {
        node_id,
        sip_listen: parse_setting(
            "PBX_BRIDGE_SIP_LISTEN",
            pick(&raw.sip_listen, &file.sip_listen),
            "127.0.0.1:5060",
        )?,
        http_listen: parse_setting(
            "PBX_BRIDGE_HTTP_LISTEN",
            pick(&raw.http_listen, &file.http_listen),
            "127.0.0.1:8080",
        )?,
        rtp_ports: parse_port_range(
            pick(&raw.rtp_ports, &file.rtp_ports)
                .as_deref()
                .unwrap_or("20000-20999"),
        )?,
        media_address: parse_setting::<IpAddr>(
            "PBX_BRIDGE_MEDIA_ADDRESS",
            pick(&raw.media_address, &file.media_address),
            "127.0.0.1",
        )?,
        database_url,
        data_dir,
        recordings_dir,
        admin_token: pick(&raw.admin_token, &file.admin_token).filter(|t| !t.is_empty()),
        log: pick(&raw.log, &file.log).unwrap_or_else(|| "info".to_owned()),
        log_format,
        time_zone: parse_setting(
            "PBX_BRIDGE_TIME_ZONE",
            pick(&raw.time_zone, &file.time_zone),
            "America/Sao_Paulo",
        )?,
        inactivity_close: Duration::from_secs(inactivity_h.saturating_mul(3600)),
        default_digest_algorithms,
        shutdown_grace: Duration::from_secs(grace_s),
        sip_realm,
        register_min_expires_s: min_expires as u32,
        register_max_expires_s: max_expires as u32,
        auth_max_failures: u32::try_from(auth_max_failures).unwrap_or(u32::MAX),
        auth_failure_window: Duration::from_secs(auth_window),
        auth_lockout: Duration::from_secs(auth_lockout),
        rtp_timeout: Duration::from_secs(rtp_timeout_s),
    })
}

fn parse_setting<T: FromStr>(
    name: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<T, SettingError>
where
    T::Err: std::fmt::Display,
{
    let text = value.unwrap_or_else(|| default.to_owned());
    text.parse::<T>()
        .map_err(|e| SettingError::new(name, format!("{text:?}: {e}")))
}

fn number(
    name: &'static str,
    flag: Option<&str>,
    file: Option<u64>,
    default: u64,
) -> Result<u64, SettingError> {
    match (flag, file) {
        (Some(text), _) => text
            .trim()
            .parse()
            .map_err(|_| SettingError::new(name, format!("{text:?} is not a whole number"))),
        (None, Some(n)) => Ok(n),
        (None, None) => Ok(default),
    }
}

/// The host name (Linux), else `pbx-bridge`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "pbx-bridge".to_owned())
}

fn parse_port_range(text: &str) -> Result<RangeInclusive<u16>, SettingError> {
    const NAME: &str = "PBX_BRIDGE_RTP_PORTS";
    let (first, last) = text
        .split_once('-')
        .ok_or_else(|| SettingError::new(NAME, format!("{text:?} is not FIRST-LAST")))?;
    let port = |s: &str| {
        s.trim()
            .parse::<u16>()
            .map_err(|_| SettingError::new(NAME, format!("{s:?} is not a port number")))
    };
    let (first, last) = (port(first)?, port(last)?);
    if first == 0 || first > last || (last - first) < 1 {
        return Err(SettingError::new(
            NAME,
            format!("{text:?} must be an increasing range of at least two ports"),
        ));
    }
    Ok(first..=last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let s = resolve(&RawSettings::default()).unwrap();
        assert_eq!(s.sip_listen.to_string(), "127.0.0.1:5060");
        assert_eq!(s.http_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.rtp_ports, 20000..=20999);
        assert!(s.database_url.starts_with("sqlite://./data/"));
        assert_eq!(s.default_digest_algorithms, vec![DigestAlgorithm::Md5]);
        assert_eq!(s.time_zone, chrono_tz::America::Sao_Paulo);
        assert_eq!(s.rtp_timeout, Duration::from_secs(30));
    }

    #[test]
    fn node_id_defaults_to_the_host_name_and_is_checked() {
        let s = resolve(&RawSettings::default()).unwrap();
        assert!(!s.node_id.is_empty());
        let ok = RawSettings {
            node_id: Some("bridge-2.sp".into()),
            ..Default::default()
        };
        assert_eq!(resolve(&ok).unwrap().node_id, "bridge-2.sp");
        for bad in ["", "a b", "x".repeat(65).as_str(), "nó"] {
            let raw = RawSettings {
                node_id: Some(bad.into()),
                ..Default::default()
            };
            let err = resolve(&raw).unwrap_err().to_string();
            assert!(err.contains("PBX_BRIDGE_NODE_ID"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn rtp_timeout_layers_and_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "rtp_timeout_s = 45\n").unwrap();
        let from_file = RawSettings {
            config: Some(path.clone()),
            ..Default::default()
        };
        assert_eq!(
            resolve(&from_file).unwrap().rtp_timeout,
            Duration::from_secs(45)
        );
        let flag = RawSettings {
            rtp_timeout_s: Some("5".into()),
            ..from_file
        };
        assert_eq!(resolve(&flag).unwrap().rtp_timeout, Duration::from_secs(5));
        for bad in ["0", "3601", "ten", "-1"] {
            let raw = RawSettings {
                rtp_timeout_s: Some(bad.into()),
                ..Default::default()
            };
            let err = resolve(&raw).unwrap_err().to_string();
            assert!(err.contains("PBX_BRIDGE_RTP_TIMEOUT_S"), "{bad}: {err}");
        }
        std::fs::write(&path, "rtp_timeout_s = 0\n").unwrap();
        let raw = RawSettings {
            config: Some(path),
            ..Default::default()
        };
        let err = resolve(&raw).unwrap_err().to_string();
        assert!(err.contains("PBX_BRIDGE_RTP_TIMEOUT_S"), "{err}");
    }

    #[test]
    fn flag_beats_file_and_errors_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "http_listen = \"127.0.0.1:9000\"\nsip_listen = \"127.0.0.1:5070\"\n",
        )
        .unwrap();
        let raw = RawSettings {
            config: Some(path.clone()),
            http_listen: Some("127.0.0.1:9100".into()),
            ..Default::default()
        };
        let s = resolve(&raw).unwrap();
        assert_eq!(s.http_listen.port(), 9100);
        assert_eq!(s.sip_listen.port(), 5070);

        let bad = RawSettings {
            rtp_ports: Some("3000-2000".into()),
            ..Default::default()
        };
        let err = resolve(&bad).unwrap_err().to_string();
        assert!(err.contains("PBX_BRIDGE_RTP_PORTS"), "{err}");

        std::fs::write(&path, "htp_listen = \"x\"\n").unwrap();
        let raw = RawSettings {
            config: Some(path),
            ..Default::default()
        };
        let err = resolve(&raw).unwrap_err().to_string();
        assert!(err.contains("htp_listen"), "{err}");
    }
}
