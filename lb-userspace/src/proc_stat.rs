//! Fields of a `/proc/PID/stat` line (proc(5)), shared by whatever reads them (the workers
//! `weir status` lists, `weir top`'s CPU time, the health file's writer check). The command
//! name (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.

/// Field `n` of `stat` as proc(5) numbers them (3 = state, 4 = ppid, 14 = utime, 22 =
/// starttime); `None` for fields 1–2 or a line too short.
pub fn field(stat: &str, n: usize) -> Option<&str> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(n.checked_sub(3)?)
}

/// Field `n` as a number.
pub fn number(stat: &str, n: usize) -> Option<u64> {
    field(stat, n)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_after_the_command_name() {
        let stat =
            "4242 (we ir) (x)) S 17 4242 4242 0 -1 4194560 1 0 0 0 60 40 0 0 20 0 1 0 98765 1";
        assert_eq!(field(stat, 3), Some("S"));
        assert_eq!(number(stat, 4), Some(17));
        assert_eq!(number(stat, 14), Some(60));
        assert_eq!(number(stat, 22), Some(98765));
        assert_eq!(field(stat, 2), None);
        assert_eq!(field("garbage", 3), None);
        assert_eq!(field("1 (x) S 1", 14), None);
    }
}
