use super::*;

/// A self-signed certificate for `names`, valid from `from` to `to` (y, m, d), with `key`.
fn pem(names: &[&str], from: (i32, u8, u8), to: (i32, u8, u8), key: &rcgen::KeyPair) -> String {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut p = rcgen::CertificateParams::new(names).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "a.example");
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "Example");
    p.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
    p.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
    p.serial_number = Some(vec![0x0a, 0x1b, 0xff].into());
    p.self_signed(key).unwrap().pem()
}

/// 2030-01-01T00:00:00Z.
const NOT_AFTER: i64 = 1_893_456_000;
const DAY: i64 = 86_400;

fn ec() -> rcgen::KeyPair {
    rcgen::KeyPair::generate().unwrap()
}

#[test]
fn describes_subject_sans_issuer_serial_dates_and_key() {
    let text = pem(
        &["a.example", "*.b.example", "192.0.2.7"],
        (2020, 1, 1),
        (2030, 1, 1),
        &ec(),
    );
    let i = describe_pem(text.as_bytes()).unwrap();
    assert_eq!(i.subject, "CN=a.example, O=Example");
    assert_eq!(i.issuer, i.subject, "self-signed");
    assert_eq!(i.sans, ["DNS:a.example", "DNS:*.b.example", "IP:192.0.2.7"]);
    assert_eq!(i.serial, "0A1BFF");
    assert_eq!(i.not_before, 1_577_836_800);
    assert_eq!(i.not_after, NOT_AFTER);
    assert_eq!(rfc3339(i.not_after), "2030-01-01T00:00:00Z");
    assert_eq!(i.key_type, "EC P-256");
}

#[test]
fn names_the_key_types() {
    let kt = |k: rcgen::KeyPair| {
        describe_pem(pem(&["a.example"], (2020, 1, 1), (2030, 1, 1), &k).as_bytes())
            .unwrap()
            .key_type
    };
    assert_eq!(
        kt(rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap()),
        "EC P-384"
    );
    assert_eq!(
        kt(rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap()),
        "Ed25519"
    );
    assert_eq!(
        kt(
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap()
        ),
        "RSA 2048"
    );
}

/// The served certificate is the chain's first; anything else is an error, not a guess.
#[test]
fn describes_the_first_of_a_chain_and_refuses_what_is_not_one() {
    let leaf = pem(&["leaf.example"], (2020, 1, 1), (2030, 1, 1), &ec());
    let other = pem(&["ca.example"], (2020, 1, 1), (2031, 1, 1), &ec());
    let i = describe_pem(format!("{leaf}{other}").as_bytes()).unwrap();
    assert_eq!(i.sans, ["DNS:leaf.example"]);
    assert!(matches!(
        describe_pem(b"no pem here"),
        Err(CertInfoError::NoCertificate)
    ));
    let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        describe_pem(broken.as_bytes()),
        Err(CertInfoError::X509(_))
    ));
}

#[test]
fn validity_at_each_side_of_its_bounds() {
    let i =
        describe_pem(pem(&["a.example"], (2020, 1, 1), (2030, 1, 1), &ec()).as_bytes()).unwrap();
    assert_eq!(i.validity(i.not_before - 1), Validity::NotYetValid);
    assert_eq!(i.validity(i.not_before), Validity::Valid);
    assert_eq!(i.validity(NOT_AFTER - WARN_DAYS * DAY - 1), Validity::Valid);
    assert_eq!(
        i.validity(NOT_AFTER - WARN_DAYS * DAY),
        Validity::ExpiresSoon
    );
    // notAfter is the last valid second.
    assert_eq!(i.validity(NOT_AFTER), Validity::ExpiresSoon);
    assert_eq!(i.validity(NOT_AFTER + 1), Validity::Expired);
    assert_eq!(i.days_left(NOT_AFTER - 10 * DAY), 10);
    assert_eq!(i.days_left(NOT_AFTER - 1), 0);
    assert_eq!(i.days_left(NOT_AFTER + 1), -1);
    assert_eq!(i.days_left(NOT_AFTER + 3 * DAY + 1), -4);
}

#[test]
fn warnings_name_listener_file_subject_and_dates() {
    let i =
        describe_pem(pem(&["a.example"], (2020, 1, 1), (2030, 1, 1), &ec()).as_bytes()).unwrap();
    let w = |now| warning("0.0.0.0:443", "/etc/weir/a.pem", &i, now);
    assert_eq!(w(NOT_AFTER - 31 * DAY), None);
    let soon = w(NOT_AFTER - 12 * DAY).unwrap();
    assert!(soon.starts_with("expires in 12 days: listener 0.0.0.0:443 certificate /etc/weir/a.pem (subject \"CN=a.example, O=Example\", notAfter 2030-01-01T00:00:00Z)"), "{soon}");
    let expired = w(NOT_AFTER + 3 * DAY).unwrap();
    assert!(
        expired.starts_with("EXPIRED 3 days ago: listener 0.0.0.0:443 certificate /etc/weir/a.pem"),
        "{expired}"
    );
    assert!(expired.contains("weir serves it anyway"), "{expired}");
    let early = w(i.not_before - 7200).unwrap();
    assert!(
        early.starts_with(
            "NOT YET VALID (notBefore 2020-01-01T00:00:00Z, in 2 hours): listener 0.0.0.0:443"
        ),
        "{early}"
    );
    assert!(
        w(NOT_AFTER + 30)
            .unwrap()
            .starts_with("EXPIRED 30 seconds ago")
    );
}
