//! Parsing and printing of digest header values.

use super::super::algorithm::Algorithm;
use super::super::header::{Challenge, Credentials, HeaderError, Qop};

const RFC7616_SHA256: &str = r#"Digest username="Mufasa",
       realm="http-auth@example.org",
       uri="/dir/index.html",
       algorithm=SHA-256,
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       nc=00000001,
       cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
       qop=auth,
       response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;

#[test]
fn parses_rfc7616_authorization_with_line_breaks() {
    let c = Credentials::parse(RFC7616_SHA256).unwrap();
    assert_eq!(c.username, "Mufasa");
    assert_eq!(c.realm, "http-auth@example.org");
    assert_eq!(c.uri, "/dir/index.html");
    assert_eq!(c.algorithm, Algorithm::Sha256);
    assert_eq!(c.nc, Some(1));
    assert_eq!(c.qop, Some(Qop::Auth));
    assert_eq!(
        c.cnonce.as_deref(),
        Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")
    );
    assert_eq!(
        c.opaque.as_deref(),
        Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
    );
    assert!(c.params.is_empty());
}

#[test]
fn parses_typical_sip_register_authorization() {
    // As sent by common softphones: no qop, MD5, no spaces after commas.
    let v = r#"Digest username="1001",realm="asterisk",nonce="abc123",uri="sip:pbx.example.com",response="653db8f6c8e8c109534caad6e2e4bcab",algorithm=MD5"#;
    let c = Credentials::parse(v).unwrap();
    assert_eq!(c.username, "1001");
    assert_eq!(c.algorithm, Algorithm::Md5);
    assert_eq!(c.qop, None);
    assert_eq!(c.nc, None);
}

#[test]
fn missing_algorithm_means_md5_and_names_are_case_insensitive() {
    let v = r#"digest USERNAME="a", Realm="r", NONCE="n", Uri="sip:x", RESPONSE="00""#;
    let c = Credentials::parse(v).unwrap();
    assert_eq!(c.algorithm, Algorithm::Md5);
    let v = r#"DIGEST username="a", realm="r", nonce="n", uri="sip:x", response="00", algorithm=sha-512-256-SESS, qop="AUTH", cnonce="c", nc=0000000a"#;
    let c = Credentials::parse(v).unwrap();
    assert_eq!(c.algorithm, Algorithm::Sha512_256Sess);
    assert_eq!(c.qop, Some(Qop::Auth));
    assert_eq!(c.nc, Some(10));
}

#[test]
fn quoted_string_escapes() {
    let v = r#"Digest username="a\"b\\c", realm="r\ x", nonce="n", uri="sip:x", response="00""#;
    let c = Credentials::parse(v).unwrap();
    assert_eq!(c.username, r#"a"b\c"#);
    assert_eq!(c.realm, "r x");
    let printed = c.to_string();
    assert!(printed.contains(r#"username="a\"b\\c""#), "{printed}");
    assert_eq!(Credentials::parse(&printed).unwrap(), c);
}

#[test]
fn utf8_in_quoted_strings() {
    let v = "Digest username=\"José\", realm=\"são paulo\", nonce=\"n\", uri=\"sip:x\", response=\"00\"";
    let c = Credentials::parse(v).unwrap();
    assert_eq!(c.username, "José");
    assert_eq!(c.realm, "são paulo");
}

#[test]
fn unknown_params_are_kept_and_printed() {
    let v = r#"Digest username="a", realm="r", nonce="n", uri="sip:x", response="00", x-foo=bar, charset="UTF-8""#;
    let c = Credentials::parse(v).unwrap();
    assert_eq!(
        c.params,
        vec![
            ("x-foo".to_owned(), "bar".to_owned()),
            ("charset".to_owned(), "UTF-8".to_owned())
        ]
    );
    assert_eq!(Credentials::parse(&c.to_string()).unwrap(), c);
}

#[test]
fn tolerates_lws_and_empty_list_elements() {
    let v = "  Digest \t username = \"a\" ,, realm=\"r\",\r\n nonce=\"n\" , uri=\"sip:x\",response=\"00\" ,  ";
    let c = Credentials::parse(v).unwrap();
    assert_eq!(c.username, "a");
    assert_eq!(c.response, "00");
}

#[test]
fn rejects_bad_input_with_clear_errors() {
    let base = r#"username="a", realm="r", nonce="n", uri="sip:x", response="00""#;
    let cases: Vec<(String, HeaderError)> = vec![
        ("".into(), HeaderError::Empty),
        ("   ".into(), HeaderError::Empty),
        (
            format!("Basic {base}"),
            HeaderError::NotDigest("Basic".into()),
        ),
        (
            format!("Digest {base}, Realm=\"again\""),
            HeaderError::Duplicate("realm".into()),
        ),
        (
            r#"Digest realm="r", nonce="n", uri="sip:x", response="00""#.into(),
            HeaderError::Missing("username"),
        ),
        (
            format!("Digest {base}, algorithm=SHA256"),
            HeaderError::UnknownAlgorithm("SHA256".into()),
        ),
        (
            format!("Digest {base}, qop=auth, cnonce=\"c\", nc=1"),
            HeaderError::InvalidNc("1".into()),
        ),
        (
            format!("Digest {base}, qop=auth, nc=00000001"),
            HeaderError::Missing("cnonce"),
        ),
        (
            format!("Digest {base}, qop=auth, cnonce=\"c\""),
            HeaderError::Missing("nc"),
        ),
        (
            format!("Digest {base}, qop=bogus, cnonce=\"c\", nc=00000001"),
            HeaderError::InvalidQop("bogus".into()),
        ),
        (
            r#"Digest username="a"#.into(),
            HeaderError::UnterminatedQuote(16),
        ),
        (
            "Digest username=\"a\nb\"".into(),
            HeaderError::ControlChar(18),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(Credentials::parse(&input), Err(want), "{input:?}");
    }
    for junk in [
        "Digest",
        "Digest username",
        "Digest username=",
        "Digest =\"a\"",
        "Digest username=\"a\" realm=\"r\"",
        "Digest username=\"a\"; realm=\"r\"",
        "Digestusername=\"a\"",
        "Digest username=\"a\",\"b\"",
        "Digest abc==",
        "\"Digest\" username=\"a\"",
    ] {
        assert!(Credentials::parse(junk).is_err(), "{junk:?}");
    }
    let many: String = (0..40).map(|i| format!(", p{i}=v")).collect();
    assert_eq!(
        Credentials::parse(&format!("Digest {base}{many}")),
        Err(HeaderError::TooManyParams)
    );
}

#[test]
fn error_messages_are_readable() {
    let e = Credentials::parse("Digest username=\"a\" realm=\"r\"").unwrap_err();
    assert_eq!(
        e.to_string(),
        "syntax error at byte 20: expected ',' between parameters"
    );
    assert_eq!(
        HeaderError::UnknownAlgorithm("SHA256".into()).to_string(),
        "unknown digest algorithm \"SHA256\""
    );
}

#[test]
fn formats_challenge_as_rfc8760_spells_it() {
    let mut c = Challenge::new("pbx.example.com", "abc", Algorithm::Sha256);
    c.opaque = Some("op".into());
    assert_eq!(
        c.to_string(),
        r#"Digest realm="pbx.example.com", nonce="abc", opaque="op", algorithm=SHA-256, qop="auth""#
    );
    c.stale = true;
    c.algorithm = Algorithm::Md5;
    c.opaque = None;
    assert_eq!(
        c.to_string(),
        r#"Digest realm="pbx.example.com", nonce="abc", stale=true, algorithm=MD5, qop="auth""#
    );
    c.algorithm = Algorithm::Sha512_256;
    assert!(c.to_string().contains("algorithm=SHA-512-256,"));
}

#[test]
fn parses_challenges_from_servers() {
    let v = r#"Digest realm="asterisk",nonce="1a2b",opaque="x",algorithm=md5,qop="auth,auth-int,future",stale=TRUE"#;
    let c = Challenge::parse(v).unwrap();
    assert_eq!(c.realm, "asterisk");
    assert_eq!(c.algorithm, Algorithm::Md5);
    assert_eq!(c.qop, vec![Qop::Auth, Qop::AuthInt]);
    assert!(c.stale);
    let c = Challenge::parse(r#"Digest realm="r", nonce="n""#).unwrap();
    assert_eq!(c.algorithm, Algorithm::Md5);
    assert!(c.qop.is_empty());
    assert!(!c.stale);
    assert!(!c.to_string().contains("qop"));
    assert_eq!(
        Challenge::parse(r#"Digest nonce="n""#),
        Err(HeaderError::Missing("realm"))
    );
}

#[test]
fn printing_never_injects_header_lines_or_params() {
    let mut c = Challenge::new("evil\r\nVia: x", "n\"", Algorithm::Md5);
    c.params.push(("bad name".into(), "v".into()));
    c.params.push(("x\r\ny".into(), "v".into()));
    let s = c.to_string();
    assert!(!s.contains('\r') && !s.contains('\n'), "{s}");
    assert!(!s.contains("bad name"), "{s}");
    let back = Challenge::parse(&s).unwrap();
    assert_eq!(back.realm, "evilVia: x");
    assert_eq!(back.nonce, "n\"");
    assert!(back.params.is_empty());
}
