//! The shipped example configurations parse and validate (apart from certificate files that
//! only exist on a real host).

use lb_l7::L7Config;

#[test]
fn example_configs_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("l7-") || !name.ends_with(".toml") {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg: L7Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let errors: Vec<_> = cfg
            .validate()
            .into_iter()
            .filter(|e| {
                !(e.path.ends_with(".certificate_file") || e.path.ends_with(".private_key_file"))
            })
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
        assert!(!cfg.listener.is_empty(), "{name}");
    }
    assert!(seen >= 2);
}
