//! `extensions_pbx_bridge.conf`: the dialplan contexts (see the module
//! documentation and `dialplans/README.md`).

use std::collections::HashMap;
use std::fmt::Write;

use super::Plan;
use super::names::{self, RenderError};
use super::pjsip::BRIDGE;
use crate::domain::{Id, OutboundRoute};

pub(crate) const EXTENSIONS: &str = "pbx-bridge-extensions";
pub(crate) const DEPARTMENTS: &str = "pbx-bridge-departments";
/// The pre-dial handler run on every channel to the bridge: it passes a
/// call's attendance (`PBX_BRIDGE_PROTOCOL`, set inheritable by the
/// bridge's `Originate` and by the `Setvar` before a `Redirect`) on in
/// `X-Protocol`, so that the bridge continues it instead of opening a
/// second one. The AMI tracker hands such a call over when a leg runs it.
pub(crate) const TO_BRIDGE: &str = "pbx-bridge-to-bridge";
pub const FROM_BRIDGE: &str = "pbx-bridge-from-bridge";
/// How long an extension rings when dialled directly.
const EXTENSION_RING_S: u32 = 30;
/// `GROUP()` category counting the channels out on each trunk.
const TRUNK_GROUP: &str = "pbx_bridge_trunks";

pub(crate) fn extension_context(number: &str) -> String {
    format!("pbx-bridge-ext-{number}")
}

pub(crate) fn route_context(id: Id) -> String {
    format!("pbx-bridge-route-{id}")
}

/// The context of a trunk endpoint (`trunk-x` → `pbx-bridge-from-trunk-x`).
pub fn trunk_context(endpoint: &str) -> String {
    format!("pbx-bridge-from-{endpoint}")
}

pub(crate) fn render(plan: &Plan) -> Result<String, RenderError> {
    let mut out = String::new();
    out.push_str(
        "; Rendered by `pbx-bridge asterisk render` from the pbx-bridge database.\n\
         ; Do not edit: the next render replaces this file. Include it from\n\
         ; extensions.conf:\n\
         ;   #include extensions_pbx_bridge.conf\n\n",
    );
    extensions(&mut out, plan);
    departments(&mut out, plan);
    for r in &plan.routes {
        route(&mut out, plan, r)?;
    }
    for e in &plan.extensions {
        let x = &e.extension;
        let _ = writeln!(
            out,
            "; What extension {} may dial: extensions, departments, then its routes by priority.",
            x.number
        );
        let _ = writeln!(out, "[{}]", extension_context(&x.number));
        let _ = writeln!(out, "include => {EXTENSIONS}");
        let _ = writeln!(out, "include => {DEPARTMENTS}");
        for r in plan.routes_of(x.id) {
            let _ = writeln!(out, "include => {}", route_context(r.id));
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "; Calls the bridge sends to Asterisk: extensions (the bridge rings agents\n\
         ; registered here with sip:<extension>@<this PBX>, the caller ID in From)\n\
         ; and every outbound route (the bridge already applied its own\n\
         ; restrictions). Department codes are not included: the bridge handles\n\
         ; them itself, so they cannot loop.\n\
         [{FROM_BRIDGE}]\n\
         include => {EXTENSIONS}"
    );
    for r in &plan.routes {
        let _ = writeln!(out, "include => {}", route_context(r.id));
    }
    for (endpoint, t) in &plan.trunks {
        out.push('\n');
        from_trunk(&mut out, plan, endpoint, t)?;
    }
    Ok(out)
}

fn extensions(out: &mut String, plan: &Plan) {
    let _ = writeln!(out, "; Extension-to-extension calls.\n[{EXTENSIONS}]");
    for e in &plan.extensions {
        let n = &e.extension.number;
        let _ = write!(
            out,
            "exten => {n},1,NoOp(Internal call to ${{EXTEN}})\n \
             same => n,Dial(PJSIP/${{EXTEN}},{EXTENSION_RING_S})\n \
             same => n,NoOp(DIALSTATUS=${{DIALSTATUS}})\n \
             same => n,Hangup()\n"
        );
    }
    out.push('\n');
}

fn departments(out: &mut String, plan: &Plan) {
    let _ = writeln!(
        out,
        "; Department PABX codes: the bridge rings the department's agents.\n[{DEPARTMENTS}]"
    );
    for d in &plan.departments {
        let Some(code) = d.pabx_code else { continue };
        let _ = write!(
            out,
            "; {code}: {}\n\
             exten => {code},1,NoOp(Department {code} to the bridge)\n \
             same => n,Set(CDR(userfield)=dept{code})\n \
             same => n,Dial(PJSIP/${{EXTEN}}@{BRIDGE},,b({TO_BRIDGE}^s^1))\n \
             same => n,Hangup()\n",
            names::comment(&d.name)
        );
    }
    let _ = write!(
        out,
        "\n; Pre-dial handler of the channels to the bridge: a call that has its\n\
         ; attendance already (PBX_BRIDGE_PROTOCOL, set by the bridge) passes it\n\
         ; on in X-Protocol, and the bridge continues it.\n\
         [{TO_BRIDGE}]\n\
         exten => s,1,ExecIf($[\"${{PBX_BRIDGE_PROTOCOL}}\" != \"\"]?Set(PJSIP_HEADER(add,X-Protocol)=${{PBX_BRIDGE_PROTOCOL}}))\n \
         same => n,Return()\n"
    );
    out.push('\n');
}

/// One outbound route: each pattern strips and prepends, then tries the
/// trunks in order. A trunk that is unavailable or congested
/// (`CHANUNAVAIL`, `CONGESTION`: Asterisk's reading of 5xx answers and
/// timeouts) or at its `max_channels` passes the call to the next one.
fn route(out: &mut String, plan: &Plan, r: &OutboundRoute) -> Result<(), RenderError> {
    let what = format!("outbound route {}", r.id);
    let ctx = route_context(r.id);
    let allowed = if r.allowed_extension_ids.is_empty() {
        "every extension".to_owned()
    } else {
        let mut numbers: Vec<&str> = r
            .allowed_extension_ids
            .iter()
            .filter_map(|id| plan.extension_numbers.get(id).copied())
            .collect();
        numbers.sort_by_key(|n| (n.len(), *n));
        format!("extensions {}", numbers.join(" "))
    };
    let _ = writeln!(
        out,
        "; Outbound route {} \"{}\" (priority {}), for {allowed}.\n[{ctx}]",
        r.id,
        names::comment(&r.name),
        r.priority
    );
    if !r.prepend.is_empty() {
        names::check_number(&format!("{what}: prepend"), &r.prepend)?;
    }
    let trunks: Vec<(&str, Option<u32>)> = r
        .trunk_ids
        .iter()
        .filter_map(|id| {
            let name = plan.trunk_names.get(id)?;
            let t = plan.trunks.iter().find(|(n, _)| n == name)?.1;
            Some((name.as_str(), t.trunk.max_channels))
        })
        .collect();
    let number = if r.strip > 0 {
        format!("{}${{EXTEN:{}}}", r.prepend, r.strip)
    } else {
        format!("{}${{EXTEN}}", r.prepend)
    };
    for p in &r.patterns {
        names::check_pattern(&format!("{what}: pattern"), p)?;
        let _ = write!(
            out,
            "exten => {p},1,NoOp(Route {} to ${{EXTEN}})\n \
             same => n,Set(PBX_BRIDGE_NUMBER={number})\n",
            r.id
        );
        for (i, (trunk, max)) in trunks.iter().enumerate() {
            let next = if i + 1 < trunks.len() {
                format!("trunk{}", i + 2)
            } else {
                "exhausted".to_owned()
            };
            let _ = writeln!(out, " same => n(trunk{}),NoOp(Trying {trunk})", i + 1);
            if let Some(max) = max {
                let _ = write!(
                    out,
                    " same => n,GotoIf($[${{GROUP_COUNT({trunk}@{TRUNK_GROUP})}} >= {max}]?{next})\n \
                     same => n,Set(GROUP({TRUNK_GROUP})={trunk})\n"
                );
            }
            let _ = write!(
                out,
                " same => n,Dial(PJSIP/${{PBX_BRIDGE_NUMBER}}@{trunk})\n \
                 same => n,GotoIf($[\"${{DIALSTATUS}}\" = \"CHANUNAVAIL\" | \"${{DIALSTATUS}}\" = \"CONGESTION\"]?{next})\n \
                 same => n,Hangup()\n"
            );
        }
        let _ = write!(
            out,
            " same => n(exhausted),NoOp(No trunk of route {} could take the call)\n \
             same => n,Congestion()\n",
            r.id
        );
    }
    out.push('\n');
    Ok(())
}

/// Calls from a carrier trunk, by DID: a department's DID goes to the
/// bridge with its PABX code, an extension's DID rings the extension.
fn from_trunk(
    out: &mut String,
    plan: &Plan,
    endpoint: &str,
    t: &super::TrunkAccount,
) -> Result<(), RenderError> {
    let codes: HashMap<Id, u16> = plan
        .departments
        .iter()
        .filter_map(|d| Some((d.id, d.pabx_code?)))
        .collect();
    let numbers: HashMap<Id, &str> = plan
        .extensions
        .iter()
        .map(|e| (e.extension.id, e.extension.number.as_str()))
        .collect();
    let _ = writeln!(
        out,
        "; Calls from trunk {}, by the DID dialled.\n[{}]",
        names::comment(&t.trunk.name),
        trunk_context(endpoint)
    );
    let mut dids: Vec<_> = t.trunk.did_routes.iter().collect();
    dids.sort_by(|a, b| a.did.cmp(&b.did));
    for d in dids {
        names::check_number(&format!("trunk {} DID", t.trunk.id), &d.did)?;
        let target = match (d.department_id, d.extension_id) {
            (Some(dept), _) => codes.get(&dept).map(|code| {
                (
                    format!("department {code}"),
                    format!("PJSIP/{code}@{BRIDGE}"),
                )
            }),
            (None, Some(x)) => numbers.get(&x).map(|n| {
                (
                    format!("extension {n}"),
                    format!("PJSIP/{n},{EXTENSION_RING_S}"),
                )
            }),
            (None, None) => None,
        };
        match target {
            Some((label, dial)) => {
                let _ = write!(
                    out,
                    "exten => {},1,NoOp(DID ${{EXTEN}} to {label})\n \
                     same => n,Dial({dial})\n \
                     same => n,Hangup()\n",
                    d.did
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "; DID {}: its department has no PABX code or is inactive, or its \
                     extension is inactive",
                    d.did
                );
            }
        }
    }
    Ok(())
}
