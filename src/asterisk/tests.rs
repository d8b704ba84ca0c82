//! Renderer tests: structure of the output, and the "conventions" test that
//! reads the fixture installation's `pjsip.conf`/`extensions.conf` and
//! checks the output uses the same section types and option names.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use chrono::{TimeZone, Utc};

use super::*;
use crate::domain::{DidRoute, DigestAlgorithm, FollowMe, Transport};

fn at() -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).unwrap()
}

pub(crate) fn extension(id: Id, number: &str, name: &str) -> ExtensionAccount {
    ExtensionAccount {
        extension: Extension {
            id,
            number: number.into(),
            display_name: name.into(),
            digest_algorithms: vec![DigestAlgorithm::Md5],
            agent_id: None,
            active: true,
            follow_me: FollowMe::default(),
            created_at: at(),
            updated_at: at(),
        },
        secret: format!("secret-{number}"),
    }
}

fn trunk(id: Id, name: &str, register: bool) -> TrunkAccount {
    TrunkAccount {
        trunk: Trunk {
            id,
            name: name.into(),
            host: format!("sip{id}.carrier.example"),
            port: 5060,
            transport: Transport::Udp,
            username: Some(format!("user{id}")),
            has_secret: true,
            register,
            register_expires_s: 600,
            max_channels: None,
            inbound: vec![],
            did_routes: vec![],
            created_at: at(),
            updated_at: at(),
        },
        secret: Some(format!("trunk-secret-{id}")),
    }
}

fn department(id: Id, name: &str, code: Option<u16>) -> Department {
    Department {
        name: name.into(),
        order: id,
        pabx_code: code,
        created_at: at(),
        updated_at: at(),
        ..crate::domain::fixtures::department(id)
    }
}

fn route(id: Id, priority: i64, patterns: &[&str], trunks: &[Id]) -> OutboundRoute {
    OutboundRoute {
        id,
        name: format!("route {id}"),
        priority,
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
        strip: 0,
        prepend: String::new(),
        trunk_ids: trunks.to_vec(),
        allowed_extension_ids: vec![],
        created_at: at(),
        updated_at: at(),
    }
}

/// 3 extensions, 2 departments (701, 702; one without a code), 2 trunks,
/// 2 routes (the mobile one restricted, priority order opposite to ids).
fn snapshot() -> Snapshot {
    let mut carrier = trunk(1, "carrier", true);
    carrier.trunk.inbound = vec!["203.0.113.0/24".parse().unwrap()];
    carrier.trunk.max_channels = Some(30);
    carrier.trunk.did_routes = vec![
        DidRoute {
            did: "551130000701".into(),
            department_id: Some(1),
            extension_id: None,
        },
        DidRoute {
            did: "551130001001".into(),
            department_id: None,
            extension_id: Some(1),
        },
    ];
    let mut backup = trunk(2, "Backup Carrier", false);
    backup.trunk.transport = Transport::Tcp;
    let mut mobile = route(1, 20, &["_0[6-9]XXXXXXXX"], &[1, 2]);
    mobile.strip = 1;
    mobile.prepend = "0041".into();
    mobile.allowed_extension_ids = vec![2];
    let mut local = route(2, 10, &["_0[2-5]XXXXXXX", "_00."], &[2, 1]);
    local.strip = 1;
    Snapshot {
        extensions: vec![
            extension(3, "1003", "Carla; \"Support\""),
            extension(1, "1001", "Ana"),
            extension(2, "1002", "Bruno"),
        ],
        trunks: vec![backup, carrier],
        departments: vec![
            department(2, "Vendas", Some(702)),
            department(1, "Suporte", Some(701)),
            department(3, "Sem código", None),
        ],
        outbound_routes: vec![mobile, local],
        bridge: BridgeAddress("127.0.0.1:5070".parse::<SocketAddr>().unwrap()),
        pbx_sip_host: None,
    }
}

/// A trunk admitting the PBX itself (how Asterisk was once let in) is
/// never rendered into Asterisk: its `match` would capture local phones.
#[test]
fn a_trunk_that_admits_the_pbx_itself_is_not_rendered() {
    let mut s = snapshot();
    let mut pbx_trunk = trunk(3, "PBX Itself", false);
    pbx_trunk.trunk.inbound = vec!["127.0.0.9/32".parse().unwrap()];
    s.trunks.push(pbx_trunk);
    s.pbx_sip_host = Some("127.0.0.9".parse().unwrap());
    let config = render(&s).unwrap();
    let all: String = config.files.iter().map(|(_, t)| t.as_str()).collect();
    assert!(!all.contains("PBX Itself"), "{all}");
    assert!(
        all.contains("Backup Carrier"),
        "the carriers are still there"
    );
}

fn rendered() -> (String, String) {
    let r = render(&snapshot()).unwrap();
    (
        r.file(PJSIP_FILE).unwrap().to_owned(),
        r.file(EXTENSIONS_FILE).unwrap().to_owned(),
    )
}

/// A parsed config section: name, template marker/parents, options.
#[derive(Debug, Clone)]
struct Section {
    name: String,
    is_template: bool,
    parents: Vec<String>,
    options: Vec<(String, String)>,
}

/// A small reader for Asterisk's config format: `[name](!)`,
/// `[name](parent)`, `key = value`, `key => value`, `;` comments (`\;`
/// escaped), leading ` same =>` continuation lines.
fn parse(text: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    for raw in text.lines() {
        let mut line = String::new();
        let mut prev = '\0';
        for c in raw.chars() {
            if c == ';' && prev != '\\' {
                break;
            }
            line.push(c);
            prev = c;
        }
        let line = line.replace("\\;", ";");
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let (name, tail) = rest.split_once(']').expect("section name closed");
            let mut is_template = false;
            let mut parents = Vec::new();
            if let Some(t) = tail.strip_prefix('(') {
                for p in t.trim_end_matches(')').split(',') {
                    if p == "!" {
                        is_template = true;
                    } else {
                        parents.push(p.to_owned());
                    }
                }
            }
            sections.push(Section {
                name: name.to_owned(),
                is_template,
                parents,
                options: Vec::new(),
            });
            continue;
        }
        let (key, value) = line
            .split_once("=>")
            .or_else(|| line.split_once('='))
            .unwrap_or_else(|| panic!("not an option line: {line:?}"));
        sections
            .last_mut()
            .expect("option before any section")
            .options
            .push((key.trim().to_owned(), value.trim().to_owned()));
    }
    sections
}

/// A pjsip object: (type, name, options with its templates' first).
type Object = (String, String, Vec<(String, String)>);

/// pjsip sections with their templates applied.
fn pjsip_objects(text: &str) -> Vec<Object> {
    let sections = parse(text);
    let templates: BTreeMap<String, Section> = sections
        .iter()
        .filter(|s| s.is_template)
        .map(|s| (s.name.clone(), s.clone()))
        .collect();
    sections
        .iter()
        .filter(|s| !s.is_template)
        .map(|s| {
            let mut options = Vec::new();
            for p in &s.parents {
                options.extend(templates[p].options.clone());
            }
            options.extend(s.options.clone());
            let ty = options
                .iter()
                .find(|(k, _)| k == "type")
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("section {} has no type", s.name));
            (ty, s.name.clone(), options)
        })
        .collect()
}

fn get<'a>(options: &'a [(String, String)], key: &str) -> Option<&'a str> {
    options
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn object<'a>(objects: &'a [Object], ty: &str, name: &str) -> &'a [(String, String)] {
    &objects
        .iter()
        .find(|(t, n, _)| t == ty && n == name)
        .unwrap_or_else(|| panic!("no {ty} {name}"))
        .2
}

/// The dialplan: context → its lines (`exten`, `same`, `include` values).
fn contexts(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    parse(text)
        .into_iter()
        .map(|s| (s.name, s.options))
        .collect()
}

#[test]
fn every_extension_has_endpoint_auth_and_aor() {
    let (pjsip, _) = rendered();
    let objects = pjsip_objects(&pjsip);
    for n in ["1001", "1002", "1003"] {
        let ep = object(&objects, "endpoint", n);
        assert_eq!(get(ep, "auth"), Some(n));
        assert_eq!(get(ep, "aors"), Some(n));
        assert_eq!(
            get(ep, "context"),
            Some(format!("pbx-bridge-ext-{n}").as_str())
        );
        assert_eq!(get(ep, "transport"), Some("transport-udp"));
        assert_eq!(get(ep, "allow"), Some("ulaw,alaw"));
        let auth = object(&objects, "auth", n);
        assert_eq!(get(auth, "auth_type"), Some("userpass"));
        assert_eq!(get(auth, "username"), Some(n));
        let aor = object(&objects, "aor", n);
        assert_eq!(get(aor, "max_contacts"), Some("1"));
    }
    assert_eq!(
        get(object(&objects, "auth", "1001"), "password"),
        Some("secret-1001")
    );
    // Quotes dropped and `;` escaped (`\;`, read back as `;`) in the
    // caller ID name.
    assert!(pjsip.contains("callerid = \"Carla\\; Support\" <1003>"));
    assert_eq!(
        get(object(&objects, "endpoint", "1003"), "callerid"),
        Some("\"Carla; Support\" <1003>")
    );
}

#[test]
fn trunks_have_registration_identify_and_the_bridge_is_identified_by_its_address() {
    let (pjsip, _) = rendered();
    let objects = pjsip_objects(&pjsip);
    let ep = object(&objects, "endpoint", "carrier");
    assert_eq!(get(ep, "outbound_auth"), Some("carrier"));
    assert_eq!(get(ep, "context"), Some("pbx-bridge-from-carrier"));
    let reg = object(&objects, "registration", "carrier");
    assert_eq!(
        get(reg, "server_uri"),
        Some("sip:sip1.carrier.example:5060")
    );
    assert_eq!(
        get(reg, "client_uri"),
        Some("sip:user1@sip1.carrier.example:5060")
    );
    assert_eq!(get(reg, "expiration"), Some("600"));
    assert_eq!(
        get(object(&objects, "identify", "carrier"), "match"),
        Some("203.0.113.0/24")
    );
    assert_eq!(
        get(object(&objects, "auth", "carrier"), "password"),
        Some("trunk-secret-1")
    );
    // A name that is not a safe section name gets a slug; no registration
    // when `register` is false; TCP transport; identified by its host.
    let backup = object(&objects, "endpoint", "trunk-backup-carrier");
    assert_eq!(get(backup, "transport"), Some("transport-tcp"));
    assert!(
        !objects
            .iter()
            .any(|(t, n, _)| t == "registration" && n == "trunk-backup-carrier")
    );
    assert_eq!(
        get(object(&objects, "aor", "trunk-backup-carrier"), "contact"),
        Some("sip:sip2.carrier.example:5060;transport=tcp")
    );
    assert_eq!(
        get(
            object(&objects, "identify", "trunk-backup-carrier"),
            "match"
        ),
        Some("sip2.carrier.example")
    );
    let bridge = object(&objects, "endpoint", "bridge");
    assert_eq!(get(bridge, "context"), Some("pbx-bridge-from-bridge"));
    assert_eq!(
        get(object(&objects, "aor", "bridge"), "contact"),
        Some("sip:bridge@127.0.0.1:5070")
    );
    assert_eq!(
        get(object(&objects, "identify", "bridge"), "match"),
        Some("127.0.0.1:5070")
    );
}

/// The bridge rings agents registered on Asterisk "through the PBX": an
/// INVITE for `sip:<extension>@<pbx>` from the bridge's SIP address. The
/// rendered `bridge` endpoint must take it without a challenge (identified
/// by that address and port, no `auth`), keep the caller ID the bridge
/// sends (`trust_id_inbound`), and its context must dial the extension.
#[test]
fn invites_from_the_bridge_are_identified_unchallenged_and_dial_the_extension() {
    let (pjsip, ext) = rendered();
    let objects = pjsip_objects(&pjsip);
    let bridge = object(&objects, "endpoint", "bridge");
    assert_eq!(get(bridge, "auth"), None, "no challenge for the bridge");
    assert_eq!(get(bridge, "trust_id_inbound"), Some("yes"));
    assert_eq!(get(bridge, "send_pai"), Some("yes"));
    assert_eq!(get(bridge, "transport"), Some("transport-udp"));
    let identify = object(&objects, "identify", "bridge");
    assert_eq!(get(identify, "endpoint"), Some("bridge"));
    assert_eq!(get(identify, "match"), Some("127.0.0.1:5070"));
    let ctx = contexts(&ext);
    let from_bridge = &ctx[get(bridge, "context").unwrap()];
    assert!(
        from_bridge
            .iter()
            .any(|(k, v)| k == "include" && v == "pbx-bridge-extensions"),
        "{from_bridge:?}"
    );
    assert!(
        !from_bridge
            .iter()
            .any(|(k, v)| k == "include" && v == "pbx-bridge-departments"),
        "a department code never loops back to the bridge"
    );
    let e = &ctx["pbx-bridge-extensions"];
    for n in ["1001", "1002", "1003"] {
        assert!(
            e.iter()
                .any(|(k, v)| k == "exten" && v.starts_with(&format!("{n},1,"))),
            "{n}"
        );
    }
    assert!(
        e.iter()
            .any(|(k, v)| k == "same" && v == "n,Dial(PJSIP/${EXTEN},30)")
    );
}

#[test]
fn department_codes_go_to_the_bridge() {
    let (_, ext) = rendered();
    let ctx = contexts(&ext);
    let d = &ctx["pbx-bridge-departments"];
    let codes: Vec<&str> = d
        .iter()
        .filter(|(k, _)| k == "exten")
        .map(|(_, v)| v.split(',').next().unwrap())
        .collect();
    assert_eq!(codes, ["701", "702"]);
    assert!(
        d.iter().any(|(k, v)| k == "same"
            && v == "n,Dial(PJSIP/${EXTEN}@bridge,,b(pbx-bridge-to-bridge^s^1))")
    );
    // The pre-dial handler passes the call's attendance on in X-Protocol
    // (only when it has one) and returns to the Dial.
    let handler = &ctx["pbx-bridge-to-bridge"];
    assert_eq!(
        handler.as_slice(),
        [
            (
                "exten".to_owned(),
                "s,1,ExecIf($[\"${PBX_BRIDGE_PROTOCOL}\" != \"\"]?Set(PJSIP_HEADER(add,X-Protocol)=${PBX_BRIDGE_PROTOCOL}))".to_owned()
            ),
            ("same".to_owned(), "n,Return()".to_owned()),
        ]
    );
    // Extension-to-extension dialing.
    let e = &ctx["pbx-bridge-extensions"];
    assert!(
        e.iter()
            .any(|(k, v)| k == "exten" && v.starts_with("1003,1,"))
    );
    assert!(
        e.iter()
            .any(|(k, v)| k == "same" && v == "n,Dial(PJSIP/${EXTEN},30)")
    );
}

#[test]
fn routes_in_priority_order_with_restrictions_strip_prepend_and_failover() {
    let (_, ext) = rendered();
    let ctx = contexts(&ext);
    let includes = |c: &str| -> Vec<String> {
        ctx[c]
            .iter()
            .filter(|(k, _)| k == "include")
            .map(|(_, v)| v.clone())
            .collect()
    };
    // Route 2 (priority 10) before route 1 (priority 20); route 1 only
    // for extension 1002 (id 2).
    assert_eq!(
        includes("pbx-bridge-ext-1002"),
        [
            "pbx-bridge-extensions",
            "pbx-bridge-departments",
            "pbx-bridge-route-2",
            "pbx-bridge-route-1"
        ]
    );
    assert_eq!(
        includes("pbx-bridge-ext-1001"),
        [
            "pbx-bridge-extensions",
            "pbx-bridge-departments",
            "pbx-bridge-route-2"
        ]
    );
    assert_eq!(
        includes("pbx-bridge-from-bridge"),
        [
            "pbx-bridge-extensions",
            "pbx-bridge-route-2",
            "pbx-bridge-route-1"
        ]
    );
    // Route contexts appear in priority order in the file too.
    let pos = |s: &str| ext.find(s).unwrap();
    assert!(pos("[pbx-bridge-route-2]") < pos("[pbx-bridge-route-1]"));

    let mobile: Vec<String> = ctx["pbx-bridge-route-1"]
        .iter()
        .map(|(_, v)| v.clone())
        .collect();
    assert!(mobile[0].starts_with("_0[6-9]XXXXXXXX,1,"));
    assert!(mobile.contains(&"n,Set(PBX_BRIDGE_NUMBER=0041${EXTEN:1})".to_owned()));
    let dials: Vec<&String> = mobile.iter().filter(|v| v.contains("Dial(")).collect();
    assert_eq!(
        dials,
        [
            "n,Dial(PJSIP/${PBX_BRIDGE_NUMBER}@carrier)",
            "n,Dial(PJSIP/${PBX_BRIDGE_NUMBER}@trunk-backup-carrier)"
        ]
    );
    // Failover on CHANUNAVAIL/CONGESTION to the next trunk, then give up.
    assert!(mobile.iter().any(|v| v
        == "n,GotoIf($[\"${DIALSTATUS}\" = \"CHANUNAVAIL\" | \"${DIALSTATUS}\" = \"CONGESTION\"]?trunk2)"));
    assert!(mobile.iter().any(|v| v.ends_with("?exhausted)")));
    assert!(mobile.iter().any(|v| v == "n,Congestion()"));
    // The carrier's channel limit.
    assert!(
        mobile
            .iter()
            .any(|v| v == "n,GotoIf($[${GROUP_COUNT(carrier@pbx_bridge_trunks)} >= 30]?trunk2)")
    );

    let local: Vec<String> = ctx["pbx-bridge-route-2"]
        .iter()
        .map(|(_, v)| v.clone())
        .collect();
    let patterns: Vec<&str> = ctx["pbx-bridge-route-2"]
        .iter()
        .filter(|(k, _)| k == "exten")
        .map(|(_, v)| v.split(',').next().unwrap())
        .collect();
    assert_eq!(patterns, ["_0[2-5]XXXXXXX", "_00."]);
    assert!(local.contains(&"n,Set(PBX_BRIDGE_NUMBER=${EXTEN:1})".to_owned()));
    let dials: Vec<&String> = local.iter().filter(|v| v.contains("Dial(")).collect();
    assert_eq!(
        dials[..2],
        [
            "n,Dial(PJSIP/${PBX_BRIDGE_NUMBER}@trunk-backup-carrier)",
            "n,Dial(PJSIP/${PBX_BRIDGE_NUMBER}@carrier)"
        ]
    );
}

#[test]
fn trunk_dids_go_to_the_bridge_or_the_extension() {
    let (_, ext) = rendered();
    let ctx = contexts(&ext);
    let c: Vec<String> = ctx["pbx-bridge-from-carrier"]
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    assert!(c.contains(&"exten 551130000701,1,NoOp(DID ${EXTEN} to department 701)".into()));
    assert!(c.contains(&"same n,Dial(PJSIP/701@bridge)".into()));
    assert!(c.contains(&"same n,Dial(PJSIP/1001,30)".into()));
}

#[test]
fn every_referenced_context_and_endpoint_exists() {
    let (pjsip, ext) = rendered();
    let ctx = contexts(&ext);
    let objects = pjsip_objects(&pjsip);
    for (ty, name, options) in &objects {
        if ty == "endpoint" {
            let c = get(options, "context").unwrap();
            assert!(ctx.contains_key(c), "endpoint {name}: no context {c}");
        }
    }
    for (name, lines) in &ctx {
        for (k, v) in lines {
            if k == "include" {
                assert!(ctx.contains_key(v), "{name} includes missing {v}");
            }
            if let Some(at) = v.find("Dial(PJSIP/") {
                let arg = &v[at + 11..];
                let arg = &arg[..arg.find([',', ')']).unwrap()];
                let endpoint = arg.rsplit('@').next().unwrap();
                let endpoint = if endpoint == "${EXTEN}" {
                    continue;
                } else {
                    endpoint
                };
                assert!(
                    objects
                        .iter()
                        .any(|(t, n, _)| t == "endpoint" && n == endpoint),
                    "{name}: Dial to unknown endpoint {endpoint}"
                );
            }
        }
    }
}

#[test]
fn rendering_is_deterministic_whatever_the_input_order() {
    let a = render(&snapshot()).unwrap();
    let mut s = snapshot();
    s.extensions.reverse();
    s.trunks.reverse();
    s.departments.reverse();
    s.outbound_routes.reverse();
    assert_eq!(a, render(&s).unwrap());
}

#[test]
fn inactive_extensions_and_departments_are_left_out() {
    let mut s = snapshot();
    s.extensions[0].extension.active = false; // 1003
    s.departments[0].active = false; // 702
    let r = render(&s).unwrap();
    let pjsip = r.file(PJSIP_FILE).unwrap();
    let ext = r.file(EXTENSIONS_FILE).unwrap();
    assert!(!pjsip.contains("[1003]"));
    assert!(!ext.contains("exten => 1003,"));
    assert!(!ext.contains("exten => 702,"));
    assert!(ext.contains("exten => 701,"));
}

#[test]
fn values_that_would_break_the_file_are_refused_or_escaped() {
    let mut s = snapshot();
    s.extensions[1].secret = "abc\ndef-ghij".into();
    let e = render(&s).unwrap_err();
    assert!(e.to_string().contains("secret of extension 1001"), "{e}");

    let mut s = snapshot();
    s.extensions[1].secret = "pass;word[1]".into();
    let r = render(&s).unwrap();
    let objects = pjsip_objects(r.file(PJSIP_FILE).unwrap());
    assert_eq!(
        get(object(&objects, "auth", "1001"), "password"),
        Some("pass;word[1]")
    );

    let mut s = snapshot();
    s.extensions[1].secret = " padded secret".into();
    assert!(render(&s).is_err());

    let mut s = snapshot();
    s.trunks[1].trunk.username = Some("user;x".into());
    assert!(render(&s).unwrap_err().to_string().contains("username"));

    // Names with `[`, `]`, `;` or newlines never become section names.
    let mut s = snapshot();
    s.trunks[0].trunk.name = "evil]\n[1001".into();
    let r = render(&s).unwrap();
    let pjsip = r.file(PJSIP_FILE).unwrap();
    assert!(pjsip.contains("[trunk-evil-1001]"));
    assert!(!pjsip.contains("evil]"));
    s.departments[0].name = "x\n[y]; z".into();
    let r = render(&s).unwrap();
    assert!(!r.file(EXTENSIONS_FILE).unwrap().contains("[y]"));
}

#[test]
fn trunk_endpoint_names_are_unique_and_safe() {
    let names = trunk_endpoints([
        (1, "carrier"),
        (2, "Carrier B"),
        (3, "bridge"),
        (4, "1001"),
        (5, "trunk-carrier-b"),
        (6, "São Paulo"),
        (7, "***"),
    ]);
    assert_eq!(names[&1], "carrier");
    assert_eq!(names[&2], "trunk-carrier-b");
    assert_eq!(names[&3], "trunk-bridge");
    assert_eq!(names[&4], "trunk-1001");
    assert_eq!(names[&5], "trunk-trunk-carrier-b");
    assert_eq!(names[&6], "trunk-s-o-paulo");
    assert_eq!(names[&7], "trunk-7");
    let unique: BTreeSet<&String> = names.values().collect();
    assert_eq!(unique.len(), names.len());
}

#[test]
fn bridge_address_falls_back_to_the_media_address() {
    let mut settings = crate::config::resolve(&crate::config::RawSettings::default()).unwrap();
    settings.sip_listen = "0.0.0.0:5070".parse().unwrap();
    settings.media_address = "192.0.2.10".parse().unwrap();
    assert_eq!(
        BridgeAddress::from_settings(&settings).host_port(),
        "192.0.2.10:5070"
    );
    settings.sip_listen = "[::1]:5070".parse().unwrap();
    assert_eq!(
        BridgeAddress::from_settings(&settings).host_port(),
        "[::1]:5070"
    );
}

// ---------- conventions of the fixture installation ----------

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/asterisk-config"
);

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURE}/{name}")).expect("fixture file")
}

/// Options we write that the fixture installation does not use, each for
/// a reason the fixture has no case of (it has no carrier trunk).
const EXTRA_OPTIONS: &[(&str, &str)] = &[
    // Carrier trunks authenticate outbound (the fixture's bridge trunk
    // needs no auth).
    ("endpoint", "outbound_auth"),
    ("endpoint", "from_user"),
    ("registration", "type"),
    ("registration", "transport"),
    ("registration", "outbound_auth"),
    ("registration", "server_uri"),
    ("registration", "client_uri"),
    ("registration", "contact_user"),
    ("registration", "expiration"),
    ("registration", "retry_interval"),
];

#[test]
fn pjsip_output_follows_the_fixture_conventions() {
    let theirs = pjsip_objects(&fixture("pjsip.conf"));
    let (pjsip, _) = rendered();
    let ours = pjsip_objects(&pjsip);
    let mut known: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (ty, _, options) in &theirs {
        for (k, _) in options {
            known.entry(ty).or_default().insert(k);
        }
    }
    for (ty, k) in EXTRA_OPTIONS {
        known.entry(ty).or_default().insert(k);
    }
    let mut our_types = BTreeSet::new();
    for (ty, name, options) in &ours {
        our_types.insert(ty.as_str());
        let allowed = known
            .get(ty.as_str())
            .unwrap_or_else(|| panic!("section type {ty} ({name}) is not one the fixture uses"));
        for (k, _) in options {
            assert!(
                allowed.contains(k.as_str()),
                "{ty} {name}: option {k} is not one the fixture uses"
            );
        }
    }
    // Every object type the fixture uses for agents and the bridge is
    // rendered (transports and [global] stay in the including file).
    for ty in ["endpoint", "aor", "auth", "identify"] {
        assert!(our_types.contains(ty), "no {ty} rendered");
    }
    // The same agent conventions.
    let agent = object(&theirs, "endpoint", "1001");
    let ours_1001 = object(&ours, "endpoint", "1001");
    for key in [
        "type",
        "transport",
        "disallow",
        "allow",
        "direct_media",
        "rtp_symmetric",
        "force_rport",
        "rewrite_contact",
        "dtmf_mode",
    ] {
        assert_eq!(
            get(ours_1001, key),
            get(agent, key),
            "endpoint option {key}"
        );
    }
    for (ty, keys) in [
        (
            "aor",
            &["max_contacts", "remove_existing", "qualify_frequency"][..],
        ),
        ("auth", &["auth_type"][..]),
    ] {
        for key in keys {
            assert_eq!(
                get(object(&ours, ty, "1001"), key),
                get(object(&theirs, ty, "1001"), key),
                "{ty} option {key}"
            );
        }
    }
    // The bridge trunk as the fixture's, except where it points to.
    for ty in ["endpoint", "aor", "identify"] {
        let a: BTreeSet<&str> = object(&theirs, ty, "bridge")
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !matches!(*k, "media_address" | "bind_rtp_to_media_address"))
            .collect();
        let b: BTreeSet<&str> = object(&ours, ty, "bridge")
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(a, b, "bridge {ty} options");
    }
    assert_eq!(
        get(object(&ours, "identify", "bridge"), "match"),
        get(object(&theirs, "identify", "bridge"), "match"),
        "the test snapshot puts the bridge where the fixture has it"
    );
}

#[test]
fn dialplan_output_follows_the_fixture_conventions() {
    let theirs = parse(&fixture("extensions.conf"));
    let (_, ext) = rendered();
    let ours = parse(&ext);
    let keys = |s: &[Section]| -> BTreeSet<String> {
        s.iter()
            .flat_map(|s| s.options.iter().map(|(k, _)| k.clone()))
            .collect()
    };
    // Only the line kinds the fixture uses: exten, same, include.
    let their_keys = keys(&theirs);
    for k in keys(&ours) {
        assert!(their_keys.contains(&k), "line kind {k} not in the fixture");
    }
    let app = |v: &str| -> Option<String> {
        // `exten => X,1,App(...)` / `same => n(label),App(...)`.
        let mut parts = v.splitn(3, ',');
        let first = parts.next()?;
        let rest = if first == "n" || first.starts_with("n(") {
            v.split_once(',')?.1.to_owned()
        } else {
            parts.nth(1)?.to_owned()
        };
        Some(rest.split('(').next()?.to_owned())
    };
    let apps = |s: &[Section]| -> BTreeSet<String> {
        s.iter()
            .flat_map(|s| s.options.iter())
            .filter(|(k, _)| k == "exten" || k == "same")
            .filter_map(|(_, v)| app(v))
            .collect()
    };
    let mut known = apps(&theirs);
    // Flow control the fixture's straight-line dialplan has no need of.
    // The pre-dial handler of channels to the bridge: ExecIf, Return.
    for extra in ["GotoIf", "Congestion", "ExecIf", "Return"] {
        known.insert(extra.to_owned());
    }
    for a in apps(&ours) {
        assert!(known.contains(&a), "application {a} not in the fixture");
    }
    // Departments go to the bridge the way the fixture's `_9X.` does.
    let fixture_text = fixture("extensions.conf");
    assert!(fixture_text.contains("Dial(PJSIP/${EXTEN:1}@bridge,30)"));
    assert!(ext.contains("Dial(PJSIP/${EXTEN}@bridge,,b(pbx-bridge-to-bridge^s^1))"));
    // Internal calls ring the extension's endpoint like the fixture's.
    assert!(fixture_text.contains("Dial(PJSIP/${EXTEN},20)"));
    assert!(ext.contains("Dial(PJSIP/${EXTEN},30)"));
}

#[test]
fn the_committed_example_is_current() {
    // `dialplans/` holds the output of the CLI test's seed; that test
    // compares it. Here: the example files exist and parse.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/dialplans");
    for name in [PJSIP_FILE, EXTENSIONS_FILE] {
        let text = std::fs::read_to_string(format!("{dir}/{name}")).expect("example file");
        assert!(!parse(&text).is_empty());
    }
}

// ---------- reload over a scripted AMI server ----------

/// A one-connection AMI server: banner, then answers Login (accepting
/// `secret`) and Reload; returns the actions it received.
async fn fake_ami(secret: &'static str) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (r, mut w) = stream.into_split();
        let mut lines = BufReader::new(r).lines();
        w.write_all(b"Asterisk Call Manager/11.0.0\r\n")
            .await
            .unwrap();
        // An event before anything is asked, as a busy PBX sends.
        w.write_all(b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n")
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut headers = BTreeMap::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if !line.is_empty() {
                if let Some((k, v)) = line.split_once(": ") {
                    headers.insert(k.to_owned(), v.to_owned());
                }
                continue;
            }
            let action = headers.get("Action").cloned().unwrap_or_default();
            let id = headers.get("ActionID").cloned().unwrap_or_default();
            seen.push(action.clone());
            let reply = match action.as_str() {
                "Login" if headers.get("Secret").map(String::as_str) == Some(secret) => {
                    "Response: Success\r\nMessage: Authentication accepted".to_owned()
                }
                "Login" => "Response: Error\r\nMessage: Authentication failed".to_owned(),
                "Reload" => "Response: Success\r\nMessage: Module Reloaded".to_owned(),
                "Logoff" => "Response: Goodbye\r\nMessage: Thanks for all the fish.".to_owned(),
                _ => "Response: Error\r\nMessage: Invalid/unknown command".to_owned(),
            };
            w.write_all(format!("{reply}\r\nActionID: {id}\r\n\r\n").as_bytes())
                .await
                .unwrap();
            headers.clear();
            if action == "Logoff" || reply.contains("Authentication failed") {
                break;
            }
        }
        seen
    });
    (port, task)
}

#[tokio::test]
async fn reload_logs_in_reloads_and_logs_off() {
    let (port, server) = fake_ami("bridge-secret").await;
    let message = reload(
        "127.0.0.1",
        port,
        "bridge",
        "bridge-secret",
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(message, "Module Reloaded");
    assert_eq!(server.await.unwrap(), ["Login", "Reload", "Logoff"]);
}

#[tokio::test]
async fn reload_reports_a_refused_login_and_an_unreachable_pbx() {
    let (port, server) = fake_ami("bridge-secret").await;
    let e = reload(
        "127.0.0.1",
        port,
        "bridge",
        "wrong-secret",
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ReloadError::AuthFailed { .. }), "{e}");
    assert!(e.to_string().contains("Authentication failed"), "{e}");
    assert_eq!(server.await.unwrap(), ["Login"]);

    // Nothing listens on a port just released.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = reload(
        "127.0.0.1",
        port,
        "bridge",
        "x",
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ReloadError::Unreachable { .. }), "{e}");
}
