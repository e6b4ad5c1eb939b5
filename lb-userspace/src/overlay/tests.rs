use super::*;

const FILE: &str = r#"
[[listener]]
address = "127.0.0.1"
port = 8080
default_action = { type = "forward", target_group = "web" }
[[target_group]]
name = "web"
port = 9000
target = [{ id = "10.0.0.1", weight = 3 }, { id = "10.0.0.2" }]
[[target_group]]
name = "other"
target = [{ id = "10.0.0.5" }]
"#;

/// No target draining.
const NONE: &BTreeSet<SocketAddr> = &BTreeSet::new();

fn file() -> Config {
    Config::parse("w.toml", FILE).unwrap()
}

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn reg(group: &str, t: &[&str]) -> TargetChange {
    TargetChange::Register {
        group: group.into(),
        targets: t.iter().map(|s| a(s)).collect(),
    }
}

fn dereg(group: &str, t: &[&str]) -> TargetChange {
    TargetChange::Deregister {
        group: group.into(),
        targets: t.iter().map(|s| a(s)).collect(),
    }
}

fn found(group: &str, t: &[&str]) -> TargetChange {
    TargetChange::Discovered {
        group: group.into(),
        targets: t.iter().map(|s| SetTarget::plain(a(s))).collect(),
    }
}

/// The group's targets in force as `ip:port`, from the configuration built.
fn in_force(o: &Overlay, group: &str) -> Vec<String> {
    let c = o.apply(&file());
    let g = c.l7.target_group(group).unwrap();
    g.target
        .iter()
        .map(|t| target_sets::address(g, t).unwrap().to_string())
        .collect()
}

#[test]
fn register_adds_after_the_file_and_again_is_a_no_op() {
    let f = file();
    let mut o = Overlay::default();
    assert_eq!(
        o.change(&f, &reg("web", &["10.0.0.9:9000", "10.0.0.3:9000"]), NONE),
        Ok(true)
    );
    assert_eq!(
        in_force(&o, "web"),
        [
            "10.0.0.1:9000",
            "10.0.0.2:9000",
            "10.0.0.3:9000",
            "10.0.0.9:9000"
        ]
    );
    let before = o.clone();
    assert_eq!(
        o.change(&f, &reg("web", &["10.0.0.9:9000"]), NONE),
        Ok(false)
    );
    assert_eq!(
        o.change(&f, &reg("web", &["10.0.0.1:9000"]), NONE),
        Ok(false),
        "in the file"
    );
    assert_eq!(o, before);
    assert_eq!(
        o.source(&f, "web", a("10.0.0.9:9000")),
        Some(Source::Runtime)
    );
    assert_eq!(
        o.source(&f, "web", a("10.0.0.1:9000")),
        Some(Source::Config)
    );
    assert_eq!(o.source(&f, "web", a("10.0.0.7:9000")), None);
    // The file's entry (weight) stays; a registered target has weight 1.
    let c = o.apply(&f);
    let w: Vec<u32> =
        c.l7.target_group("web")
            .unwrap()
            .target
            .iter()
            .map(|t| t.weight)
            .collect();
    assert_eq!(w, [3, 1, 1, 1]);
    assert_eq!(in_force(&o, "other"), ["10.0.0.5:80"]);
}

#[test]
fn deregister_removes_file_and_runtime_targets_and_refuses_strangers_whole() {
    let f = file();
    let mut o = Overlay::default();
    o.change(&f, &reg("web", &["10.0.0.9:9000"]), NONE).unwrap();
    assert_eq!(
        o.change(&f, &dereg("web", &["10.0.0.1:9000", "10.0.0.9:9000"]), NONE),
        Ok(true)
    );
    assert_eq!(in_force(&o, "web"), ["10.0.0.2:9000"]);
    // Not registered (any more, or on another port): refused, nothing changed.
    let before = o.clone();
    for bad in [
        dereg("web", &["10.0.0.2:9000", "10.0.0.1:9000"]),
        dereg("web", &["10.0.0.2:9001"]),
    ] {
        let e = o.change(&f, &bad, NONE).unwrap_err();
        assert!(
            matches!(&e, OverlayError::InvalidTarget(m) if m.contains("not registered")),
            "{e}"
        );
        assert_eq!(o, before);
    }
    // Registered again: a file target is back in file order with its entry.
    assert_eq!(
        o.change(&f, &reg("web", &["10.0.0.1:9000"]), NONE),
        Ok(true)
    );
    assert_eq!(in_force(&o, "web"), ["10.0.0.1:9000", "10.0.0.2:9000"]);
    assert!(o.is_empty(), "nothing left over the file");
    // Every target can leave: the group has none.
    o.change(&f, &dereg("web", &["10.0.0.1:9000", "10.0.0.2:9000"]), NONE)
        .unwrap();
    assert!(in_force(&o, "web").is_empty());
}

/// `addrs` as a set, the draining targets a caller passes.
fn set(addrs: &[&str]) -> BTreeSet<SocketAddr> {
    addrs.iter().map(|s| a(s)).collect()
}

#[test]
fn deregistering_a_draining_target_again_succeeds_and_changes_nothing() {
    let f = file();
    let mut o = Overlay::default();
    o.change(&f, &reg("web", &["10.0.0.9:9000"]), NONE).unwrap();
    assert_eq!(
        o.change(&f, &dereg("web", &["10.0.0.1:9000", "10.0.0.9:9000"]), NONE),
        Ok(true)
    );
    // Retried while both drain (a file target and a registered one): a success, no change.
    let draining = set(&["10.0.0.1:9000", "10.0.0.9:9000"]);
    let before = o.clone();
    for again in [
        dereg("web", &["10.0.0.1:9000", "10.0.0.9:9000"]),
        dereg("web", &["10.0.0.9:9000"]),
    ] {
        assert_eq!(o.change(&f, &again, &draining), Ok(false), "{again:?}");
        assert_eq!(o, before);
    }
    assert_eq!(in_force(&o, "web"), ["10.0.0.2:9000"]);
    // A draining target with one that is neither: refused whole, naming the stranger.
    let e = o
        .change(
            &f,
            &dereg("web", &["10.0.0.1:9000", "10.0.0.7:9000"]),
            &draining,
        )
        .unwrap_err();
    assert_eq!(
        e,
        OverlayError::InvalidTarget(
            "target 10.0.0.7:9000 is not registered in target group web".into()
        )
    );
    assert_eq!(o, before);
    // A draining target with a registered one: the registered one leaves.
    assert_eq!(
        o.change(
            &f,
            &dereg("web", &["10.0.0.1:9000", "10.0.0.2:9000"]),
            &draining
        ),
        Ok(true)
    );
    assert!(in_force(&o, "web").is_empty());
    // Its drain over (no longer draining): not registered, as ALB says.
    let e = o
        .change(&f, &dereg("web", &["10.0.0.1:9000"]), NONE)
        .unwrap_err();
    assert!(matches!(e, OverlayError::InvalidTarget(_)), "{e}");
}

#[test]
fn unknown_groups_are_refused() {
    let mut o = Overlay::default();
    for c in [
        reg("nope", &["10.0.0.1:80"]),
        dereg("nope", &["10.0.0.1:80"]),
        found("nope", &[]),
    ] {
        assert_eq!(
            o.change(&file(), &c, NONE),
            Err(OverlayError::TargetGroupNotFound("nope".into()))
        );
    }
    assert!(o.is_empty());
}

#[test]
fn discovered_targets_are_a_third_source() {
    let f = file();
    let mut o = Overlay::default();
    assert_eq!(
        o.change(&f, &found("web", &["10.0.1.2:9000", "10.0.0.2:9000"]), NONE),
        Ok(true)
    );
    assert_eq!(
        in_force(&o, "web"),
        ["10.0.0.1:9000", "10.0.0.2:9000", "10.0.1.2:9000"]
    );
    assert_eq!(
        o.source(&f, "web", a("10.0.1.2:9000")),
        Some(Source::Discovered)
    );
    assert_eq!(
        o.source(&f, "web", a("10.0.0.2:9000")),
        Some(Source::Config)
    );
    // Deregistered, it stays out whatever discovery says; registered again, it is back.
    o.change(&f, &dereg("web", &["10.0.1.2:9000"]), NONE)
        .unwrap();
    assert_eq!(
        o.change(&f, &found("web", &["10.0.1.2:9000"]), NONE),
        Ok(false)
    );
    assert_eq!(in_force(&o, "web"), ["10.0.0.1:9000", "10.0.0.2:9000"]);
    o.change(&f, &reg("web", &["10.0.1.2:9000"]), NONE).unwrap();
    assert_eq!(
        o.source(&f, "web", a("10.0.1.2:9000")),
        Some(Source::Discovered)
    );
    // A new answer replaces the old one.
    assert_eq!(
        o.change(&f, &found("web", &["10.0.1.3:9000"]), NONE),
        Ok(true)
    );
    assert_eq!(
        in_force(&o, "web"),
        ["10.0.0.1:9000", "10.0.0.2:9000", "10.0.1.3:9000"]
    );
}

#[test]
fn a_reload_applies_the_file_and_keeps_discovery() {
    let f = file();
    let mut o = Overlay::default();
    o.change(&f, &reg("web", &["10.0.0.9:9000"]), NONE).unwrap();
    o.change(&f, &dereg("web", &["10.0.0.1:9000"]), NONE)
        .unwrap();
    o.change(&f, &found("other", &["10.0.2.1:80"]), NONE)
        .unwrap();
    let o = o.after_reload(&f);
    assert_eq!(in_force(&o, "web"), ["10.0.0.1:9000", "10.0.0.2:9000"]);
    assert_eq!(in_force(&o, "other"), ["10.0.0.5:80", "10.0.2.1:80"]);
    // A group the new file lacks loses its discovered targets.
    let without = Config::parse(
        "w.toml",
        &FILE.replace("name = \"other\"", "name = \"else\""),
    )
    .unwrap();
    assert!(o.after_reload(&without).is_empty());
}

#[test]
fn the_workers_get_only_the_groups_touched() {
    let f = file();
    let mut o = Overlay::default();
    assert!(o.target_sets(&f).is_empty());
    o.change(&f, &dereg("web", &["10.0.0.2:9000"]), NONE)
        .unwrap();
    let sets = o.target_sets(&f);
    assert_eq!(sets.len(), 1);
    let addrs: Vec<SocketAddr> = sets["web"].iter().map(|t| t.addr).collect();
    assert_eq!(addrs, [a("10.0.0.1:9000")]);
}

#[test]
fn discovered_weights_and_priorities_reach_the_groups_and_a_change_of_them_is_a_change() {
    let f = file();
    let mut o = Overlay::default();
    let srv = |s: &str, weight, priority| SetTarget {
        addr: a(s),
        weight,
        priority,
    };
    let answer = |t: Vec<SetTarget>| TargetChange::Discovered {
        group: "web".into(),
        targets: t,
    };
    // A discovered address the file has keeps the file's entry (weight 3, priority 0).
    let first = vec![
        srv("10.0.0.1:9000", 999, 20),
        srv("10.0.0.7:9000", 999, 10),
        srv("10.0.0.8:9000", 333, 10),
    ];
    assert!(o.change(&f, &answer(first.clone()), NONE).unwrap());
    let entries = |o: &Overlay| -> Vec<(String, u32, u16)> {
        let c = o.apply(&f);
        let g = c.l7.target_group("web").unwrap();
        g.target
            .iter()
            .map(|t| (t.id.clone(), t.weight, t.priority))
            .collect()
    };
    assert_eq!(
        entries(&o),
        [
            ("10.0.0.1".into(), 3, 0),
            ("10.0.0.2".into(), 1, 0),
            ("10.0.0.7".into(), 999, 10),
            ("10.0.0.8".into(), 333, 10),
        ]
    );
    // The same answer: nothing changed. Only a weight changed: a change (a new generation).
    assert!(!o.change(&f, &answer(first), NONE).unwrap());
    let reweighted = vec![srv("10.0.0.7:9000", 999, 10), srv("10.0.0.8:9000", 999, 10)];
    assert!(o.change(&f, &answer(reweighted), NONE).unwrap());
    assert_eq!(entries(&o)[3], ("10.0.0.8".into(), 999, 10));
    // Registering a discovered address keeps discovery's weight and priority; registering
    // another gives weight 1 and priority 0.
    assert!(!o.change(&f, &reg("web", &["10.0.0.7:9000"]), NONE).unwrap());
    assert!(o.change(&f, &reg("web", &["10.0.0.9:9000"]), NONE).unwrap());
    assert_eq!(
        entries(&o)[2..],
        [
            ("10.0.0.7".into(), 999, 10),
            ("10.0.0.8".into(), 999, 10),
            ("10.0.0.9".into(), 1, 0),
        ]
    );
    // A reload keeps the discovered weights and priorities.
    assert_eq!(entries(&o.after_reload(&f))[2..4], entries(&o)[2..4]);
}
