//! `pjsip_pbx_bridge.conf`: endpoints, auths and aors of the extensions
//! (through templates, as the fixture's agents), the carrier trunks (with
//! registration and identify sections) and the `bridge` trunk.

use std::fmt::Write;

use super::names::{self, RenderError};
use super::{Plan, dialplan};
use crate::domain::Transport;

/// Transports the including `pjsip.conf` defines (as the fixture's
/// `transport-udp`).
pub(crate) const TRANSPORT_UDP: &str = "transport-udp";
pub(crate) const TRANSPORT_TCP: &str = "transport-tcp";
/// The endpoint (and aor, identify) of the trunk to the bridge.
pub const BRIDGE: &str = "bridge";

const TEMPLATE_ENDPOINT: &str = "pbx-bridge-extension-endpoint";
const TEMPLATE_AOR: &str = "pbx-bridge-extension-aor";
const TEMPLATE_AUTH: &str = "pbx-bridge-extension-auth";

/// Media options every endpoint shares (the fixture's, less the
/// machine-specific `media_address`).
const MEDIA: &str = "disallow = all\n\
                     allow = ulaw,alaw\n\
                     direct_media = no\n\
                     rtp_symmetric = yes\n";

pub(crate) fn render(plan: &Plan) -> Result<String, RenderError> {
    let mut out = String::new();
    out.push_str(
        "; Rendered by `pbx-bridge asterisk render` from the pbx-bridge database.\n\
         ; Do not edit: the next render replaces this file. Include it from pjsip.conf,\n\
         ; which defines [global] and the transports transport-udp (and transport-tcp\n\
         ; when a trunk uses TCP):\n\
         ;   #include pjsip_pbx_bridge.conf\n\n",
    );
    templates(&mut out);
    for e in &plan.extensions {
        let x = &e.extension;
        let n = &x.number;
        let password = names::value(&format!("secret of extension {n}"), &e.secret)?;
        let _ = write!(
            out,
            "; ---------- extension {n} {} ----------\n\
             [{n}]({TEMPLATE_ENDPOINT})\n\
             context = {}\n\
             auth = {n}\n\
             aors = {n}\n\
             callerid = {}\n\n\
             [{n}]({TEMPLATE_AOR})\n\n\
             [{n}]({TEMPLATE_AUTH})\n\
             username = {n}\n\
             password = {password}\n\n",
            names::comment(&x.display_name),
            dialplan::extension_context(n),
            names::callerid(&x.display_name, n),
        );
    }
    for (name, t) in &plan.trunks {
        trunk(&mut out, name, t)?;
    }
    bridge(&mut out, plan);
    Ok(out)
}

fn templates(out: &mut String) {
    let _ = write!(
        out,
        "; ---------- extension templates ----------\n\
         [{TEMPLATE_ENDPOINT}](!)\n\
         type = endpoint\n\
         transport = {TRANSPORT_UDP}\n\
         {MEDIA}\
         force_rport = yes\n\
         rewrite_contact = yes\n\
         dtmf_mode = rfc4733\n\n\
         [{TEMPLATE_AOR}](!)\n\
         type = aor\n\
         max_contacts = 1\n\
         remove_existing = yes\n\
         qualify_frequency = 0\n\n\
         [{TEMPLATE_AUTH}](!)\n\
         type = auth\n\
         auth_type = userpass\n\n"
    );
}

fn trunk(out: &mut String, name: &str, t: &super::TrunkAccount) -> Result<(), RenderError> {
    let tr = &t.trunk;
    let what = format!("trunk {} ({})", tr.id, names::comment(&tr.name));
    let transport = match tr.transport {
        Transport::Udp => TRANSPORT_UDP,
        Transport::Tcp => TRANSPORT_TCP,
    };
    let uri_params = match tr.transport {
        Transport::Udp => "",
        // `;` would start a comment: Asterisk reads `\;` as `;`.
        Transport::Tcp => "\\;transport=tcp",
    };
    let host = host_port(&tr.host, tr.port);
    names::check_host(&format!("{what}: host"), &tr.host)?;
    let username = match &tr.username {
        Some(u) => {
            names::check_sip_user(&format!("{what}: username"), u)?;
            Some(u.as_str())
        }
        None => None,
    };
    let auth = match (username, &t.secret) {
        (Some(u), Some(s)) => Some((u, names::value(&format!("{what}: secret"), s)?)),
        _ => None,
    };
    if tr.register && auth.is_none() {
        return Err(RenderError(format!(
            "{what} registers but has no username and secret"
        )));
    }
    let _ = write!(
        out,
        "; ---------- trunk {} ----------\n\
         [{name}]\n\
         type = endpoint\n\
         transport = {transport}\n\
         context = {}\n\
         {MEDIA}\
         aors = {name}\n\
         dtmf_mode = rfc4733\n",
        names::comment(&tr.name),
        dialplan::trunk_context(name),
    );
    if let Some((u, _)) = &auth {
        let _ = write!(out, "outbound_auth = {name}\nfrom_user = {u}\n");
    }
    let _ = write!(
        out,
        "\n[{name}]\n\
         type = aor\n\
         contact = sip:{host}{uri_params}\n\
         qualify_frequency = 0\n\n"
    );
    if let Some((u, password)) = &auth {
        let _ = write!(
            out,
            "[{name}]\n\
             type = auth\n\
             auth_type = userpass\n\
             username = {u}\n\
             password = {password}\n\n"
        );
        if tr.register {
            let _ = write!(
                out,
                "[{name}]\n\
                 type = registration\n\
                 transport = {transport}\n\
                 outbound_auth = {name}\n\
                 server_uri = sip:{host}{uri_params}\n\
                 client_uri = sip:{u}@{host}{uri_params}\n\
                 contact_user = {u}\n\
                 expiration = {}\n\
                 retry_interval = 60\n\n",
                tr.register_expires_s
            );
        }
    }
    // Calls from the carrier: its networks, or its host when none is set.
    let mut matches: Vec<String> = tr.inbound.iter().map(|n| n.to_string()).collect();
    if matches.is_empty() {
        matches.push(tr.host.clone());
    }
    matches.sort();
    let _ = write!(
        out,
        "[{name}]\n\
         type = identify\n\
         endpoint = {name}\n\
         match = {}\n\n",
        matches.join(",")
    );
    Ok(())
}

/// The trunk to the bridge, as the fixture's `bridge` endpoint: calls to
/// department codes go out on it, calls from the bridge (agents rung
/// through the PBX, outbound numbers) come in on it, identified by the
/// bridge's SIP address and port and never challenged (no `auth`: the
/// bridge has no credentials here), their caller ID taken as the bridge
/// sends it (`trust_id_inbound`).
fn bridge(out: &mut String, plan: &Plan) {
    let hp = plan.bridge.host_port();
    let _ = write!(
        out,
        "; ---------- trunk to the bridge service on {hp} ----------\n\
         [{BRIDGE}]\n\
         type = endpoint\n\
         transport = {TRANSPORT_UDP}\n\
         context = {}\n\
         {MEDIA}\
         aors = {BRIDGE}\n\
         dtmf_mode = rfc4733\n\
         send_pai = yes\n\
         trust_id_inbound = yes\n\n\
         [{BRIDGE}]\n\
         type = aor\n\
         contact = sip:{BRIDGE}@{hp}\n\
         qualify_frequency = 0\n\n\
         [{BRIDGE}]\n\
         type = identify\n\
         endpoint = {BRIDGE}\n\
         match = {hp}\n",
        dialplan::FROM_BRIDGE,
    );
}

/// `host:port` for a URI, brackets around an IPv6 literal.
fn host_port(host: &str, port: u16) -> String {
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
