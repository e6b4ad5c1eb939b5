//! The control plane's side of a worker's report pipe: each line into the [`Store`], until the
//! pipe closes (the process ended: its last report is final, [`Store::closed`]).

use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, BufReader};

use super::{series::Figures, store::Store};

/// A longer line is not a report: the worker's reports are ignored from then on (a sandboxed
/// worker must not be able to make the control plane buffer without bound).
const MAX_LINE: u64 = 64 << 20;

/// A worker's report pipe: our end, ready for [`read`], and the write end the worker inherits
/// (both close-on-exec; the supervisor clears it on the write end in the child only).
pub fn pipe() -> std::io::Result<(tokio::net::unix::pipe::Receiver, std::os::fd::OwnedFd)> {
    let (r, w) = std::io::pipe()?;
    let r = tokio::net::unix::pipe::Receiver::from_owned_fd(r.into())?;
    Ok((r, w.into()))
}

/// Reads the reports of process `incarnation` of `worker` to the end of its pipe.
pub async fn read(out: impl AsyncRead + Unpin, store: Store, worker: usize, incarnation: u64) {
    let mut r = BufReader::with_capacity(64 << 10, out);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut r).take(MAX_LINE).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) if line.last() != Some(&b'\n') && line.len() as u64 >= MAX_LINE => {
                tracing::warn!(
                    worker,
                    "metrics report over {MAX_LINE} bytes: ignoring this worker's reports"
                );
                break;
            }
            Ok(_) => match Figures::from_line(line.trim_ascii_end()) {
                Ok(f) => store.report(worker, incarnation, f),
                Err(e) => bad_line(worker, &e),
            },
        }
    }
    store.closed(worker, incarnation);
}

fn bad_line(worker: usize, e: &serde_json::Error) {
    tracing::warn!(worker, error = %e, "unreadable metrics report from the worker");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::series::Key;
    use tokio::io::AsyncWriteExt as _;

    #[tokio::test]
    async fn lines_split_anywhere_are_read_whole_and_the_end_is_final() {
        let store = Store::new(1);
        store.started(0, 1, Some(1));
        let (mut tx, rx) = tokio::io::duplex(16);
        let task = tokio::spawn(read(rx, store.clone(), 0, 1));
        let mut f = Figures::default();
        for n in [3u64, 5] {
            f.counters.insert(Key::plain("RequestCount"), n);
            for piece in f.to_line().as_bytes().chunks(5) {
                tx.write_all(piece).await.unwrap();
            }
        }
        tx.write_all(b"garbage\n").await.unwrap();
        drop(tx);
        task.await.unwrap();
        let w = &store.workers()[0];
        assert!(!w.live);
        assert_eq!(w.counters[&Key::plain("RequestCount")], 5);
    }
}
