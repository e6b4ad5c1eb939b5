use super::*;

const DAY: i64 = 86_400;
/// 2030-01-01T00:00:00Z.
const NOT_AFTER: i64 = 1_893_456_000;

fn served(port: u16, file: &str, not_after: i64) -> ServedCertificate {
    ServedCertificate {
        listener: format!("0.0.0.0:{port}"),
        port,
        file: file.into(),
        info: CertInfo {
            subject: "CN=a.example".into(),
            sans: vec!["DNS:a.example".into()],
            issuer: "CN=Example CA".into(),
            serial: "0A".into(),
            not_before: not_after - 90 * DAY,
            not_after,
            key_type: "EC P-256".into(),
        },
    }
}

/// Expired and not-yet-valid certificates are loud, one expiring within 30 days is not, a
/// valid one says nothing.
#[test]
fn warnings_are_loud_for_what_clients_refuse_now() {
    let certs = [
        served(443, "/ok.pem", NOT_AFTER + 60 * DAY),
        served(443, "/soon.pem", NOT_AFTER + 10 * DAY),
        served(8443, "/old.pem", NOT_AFTER - DAY),
        served(8443, "/early.pem", NOT_AFTER + 100 * DAY),
    ];
    let w = warnings(&certs, NOT_AFTER);
    let got: Vec<(bool, &str)> = w
        .iter()
        .map(|w| (w.loud, w.message.split(':').next().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (false, "expires in 10 days"),
            (true, "EXPIRED 1 day ago"),
            (true, "NOT YET VALID (notBefore 2030-01-11T00")
        ]
    );
    assert!(
        w[1].message
            .contains("listener 0.0.0.0:8443 certificate /old.pem")
    );
}

/// A certificate's file, days left and status.
type Row<'a> = (&'a str, i64, &'a str);

/// Grouped by listener in the file's order, the default certificate first; days left and
/// status at the moment asked; one listener by port.
#[test]
fn the_list_groups_by_listener_and_counts_days_at_now() {
    let certs = [
        served(443, "/a.pem", NOT_AFTER),
        served(8443, "/b.pem", NOT_AFTER - 2 * DAY),
        served(443, "/c.pem", NOT_AFTER + 40 * DAY),
    ];
    let l = list(&certs, None, NOT_AFTER - 5 * DAY);
    let shape: Vec<(u16, Vec<Row>)> = l
        .listeners
        .iter()
        .map(|x| {
            let c = x.certificates.iter();
            (
                x.port,
                c.map(|c| (c.file.as_str(), c.days_left, c.status.as_str()))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (
                443,
                vec![("/a.pem", 5, "expires_soon"), ("/c.pem", 45, "valid")]
            ),
            (8443, vec![("/b.pem", 3, "expires_soon")]),
        ]
    );
    let one = list(&certs, Some(8443), NOT_AFTER + DAY);
    assert_eq!(one.listeners.len(), 1);
    let b = &one.listeners[0].certificates[0];
    assert_eq!((b.days_left, b.status.as_str()), (-3, "expired"));
    assert_eq!(b.not_after, "2029-12-30T00:00:00Z");
    assert_eq!(b.not_after_unix, NOT_AFTER - 2 * DAY);
    assert!(list(&certs, Some(80), NOT_AFTER).listeners.is_empty());
}

/// The status line's words count each kind; nothing while all are valid.
#[test]
fn the_summary_counts_what_needs_doing() {
    let certs = [
        served(443, "/ok.pem", NOT_AFTER + 60 * DAY),
        served(443, "/soon.pem", NOT_AFTER + 10 * DAY),
        served(443, "/soon2.pem", NOT_AFTER + 11 * DAY),
        served(8443, "/old.pem", NOT_AFTER - DAY),
    ];
    assert_eq!(
        summary(&certs, NOT_AFTER).as_deref(),
        Some("certificates: 1 EXPIRED, 2 expire within 30 days")
    );
    assert_eq!(summary(&certs[..1], NOT_AFTER), None);
}
