//! `pbx-bridge asterisk reload`: one short AMI connection (banner, `Login`
//! with events off, `Reload`, `Logoff`) over the sans-IO codec in
//! [`crate::ami`]. Independent of the long-lived AMI session the service
//! keeps, so it also works while the service is down.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use crate::ami::{Action, AmiCodec, Frame, Packet, ResponseStatus};

/// Why the reload did not happen. Each message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("cannot reach Asterisk's AMI at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("{addr} is not an Asterisk Manager Interface: {reason}")]
    NotAmi { addr: String, reason: String },
    #[error(
        "AMI login as {username:?} refused: {message} (check the pbx ami_username/ami_secret and manager.conf)"
    )]
    AuthFailed { username: String, message: String },
    #[error("Asterisk refused the Reload: {0}")]
    Refused(String),
    #[error("AMI connection to {addr} failed: {reason}")]
    Protocol { addr: String, reason: String },
    #[error("no answer from Asterisk's AMI at {addr} within {secs} s")]
    Timeout { addr: String, secs: u64 },
}

/// Connects to `host:port`, logs in and asks Asterisk to reload its
/// configuration. Returns Asterisk's message (e.g. `Module Reloaded`).
pub async fn reload(
    host: &str,
    port: u16,
    username: &str,
    secret: &str,
    timeout: Duration,
) -> Result<String, ReloadError> {
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match tokio::time::timeout(timeout, exchange(&addr, username, secret)).await {
        Ok(result) => result,
        Err(_) => Err(ReloadError::Timeout {
            addr,
            secs: timeout.as_secs(),
        }),
    }
}

async fn exchange(addr: &str, username: &str, secret: &str) -> Result<String, ReloadError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| ReloadError::Unreachable {
            addr: addr.to_owned(),
            reason: e.to_string(),
        })?;
    let mut ami = Framed::new(stream, AmiCodec::default());
    let protocol = |reason: String| ReloadError::Protocol {
        addr: addr.to_owned(),
        reason,
    };
    match ami.next().await {
        Some(Ok(Frame::Banner(_))) => {}
        Some(Ok(Frame::Packet(_))) => {
            return Err(ReloadError::NotAmi {
                addr: addr.to_owned(),
                reason: "no banner".into(),
            });
        }
        Some(Err(e)) => {
            return Err(ReloadError::NotAmi {
                addr: addr.to_owned(),
                reason: e.to_string(),
            });
        }
        None => return Err(protocol("closed before the banner".into())),
    }
    let login = Action::new("Login")
        .with_action_id("pbx-bridge-reload-1")
        .header("Username", username)
        .header("Secret", secret)
        .header("Events", "off");
    send(&mut ami, login, &protocol).await?;
    let answer = response(&mut ami, "pbx-bridge-reload-1", &protocol).await?;
    if answer.response() != Some(ResponseStatus::Success) {
        return Err(ReloadError::AuthFailed {
            username: username.to_owned(),
            message: answer.message().unwrap_or("no message").to_owned(),
        });
    }
    send(
        &mut ami,
        Action::new("Reload").with_action_id("pbx-bridge-reload-2"),
        &protocol,
    )
    .await?;
    let answer = response(&mut ami, "pbx-bridge-reload-2", &protocol).await?;
    let message = answer.message().unwrap_or("").to_owned();
    // Logoff is a courtesy: the reload is done whatever happens now.
    let _ = send(
        &mut ami,
        Action::new("Logoff").with_action_id("pbx-bridge-reload-3"),
        &protocol,
    )
    .await;
    if answer.response() == Some(ResponseStatus::Success) {
        Ok(message)
    } else {
        Err(ReloadError::Refused(if message.is_empty() {
            "no message".into()
        } else {
            message
        }))
    }
}

async fn send(
    ami: &mut Framed<TcpStream, AmiCodec>,
    action: Action,
    protocol: &impl Fn(String) -> ReloadError,
) -> Result<(), ReloadError> {
    ami.send(action).await.map_err(|e| protocol(e.to_string()))
}

/// The response to `action_id`, skipping events (a user with
/// `Events: off` may still get a few before the login takes effect).
async fn response(
    ami: &mut Framed<TcpStream, AmiCodec>,
    action_id: &str,
    protocol: &impl Fn(String) -> ReloadError,
) -> Result<Packet, ReloadError> {
    loop {
        match ami.next().await {
            Some(Ok(Frame::Packet(p))) if p.is_response() => {
                if p.action_id().is_none_or(|id| id == action_id) {
                    return Ok(p);
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(protocol(e.to_string())),
            None => return Err(protocol("connection closed before the response".into())),
        }
    }
}
