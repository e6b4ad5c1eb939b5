//! ALB wildcard matching: `*` is zero or more characters, `?` exactly one. Pure.

/// Does `text` match `pattern`? With `fold`, ASCII case is ignored.
pub fn matches(pattern: &str, text: &str, fold: bool) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let eq = |a: u8, b: u8| {
        if fold {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut pi, mut ti) = (0usize, 0usize);
    // Position after the last `*` in the pattern and the text index it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || (p[pi] != b'*' && eq(p[pi], t[ti]))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi + 1, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn table() {
        let cases = [
            ("*.example.com", "www.example.com", true, true),
            ("*.example.com", "example.com", true, false),
            ("*.example.com", "a.b.example.com", true, true),
            ("www.example.com", "WWW.Example.COM", true, true),
            ("/img/*", "/img/a.png", false, true),
            ("/img/*", "/IMG/a.png", false, false),
            ("/img/*", "/img", false, false),
            ("/api/v?/x", "/api/v1/x", false, true),
            ("/api/v?/x", "/api/v10/x", false, false),
            ("*", "", false, true),
            ("?", "", false, false),
            ("a*b*c", "aXXbYYc", false, true),
            ("a*b*c", "aXXbYY", false, false),
            ("**", "anything", false, true),
            ("", "", false, true),
            ("", "x", false, false),
        ];
        for (p, t, fold, want) in cases {
            assert_eq!(matches(p, t, fold), want, "pattern {p:?} text {t:?}");
        }
    }
}
