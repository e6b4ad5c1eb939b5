//! Workers' stdout → weir's stdout. A worker prints `ready` once it serves, then its access-log
//! lines (`access_logs.path = "-"`). Each worker's pipe is read here and relayed in chunks of
//! whole lines through one writer, so lines of different workers never interleave, whatever
//! their length and whatever weir's stdout is (a terminal, a pipe, a file).
//!
//! The other design, workers inheriting weir's stdout and writing lines of at most `PIPE_BUF`
//! bytes atomically, was not taken: access-log lines carry the URL and the user agent and can be
//! longer than 4,096 bytes, and the atomicity holds only for pipes. The relay costs one copy
//! per line in the control plane; its back-pressure reaches the worker, whose bounded queue
//! then drops and counts lines instead of blocking (`lb_l7::access_log`).

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

/// Chunks (whole lines) queued for the writer; a relay waits when it is full.
const QUEUED_CHUNKS: usize = 64;
/// The writer joins queued chunks up to this size into one write.
const COALESCE_BYTES: usize = 64 << 10;
/// A worker's partial line is flushed as it is past this size (a worker bug; memory stays
/// bounded).
const MAX_PARTIAL: usize = 1 << 20;

/// The single writer of weir's stdout, shared by the relays.
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::Sender<Vec<u8>>,
}

impl Sink {
    /// A writer thread over weir's stdout.
    pub fn stdout() -> anyhow::Result<Sink> {
        Self::over(std::io::stdout())
    }

    /// A writer thread over `out`, writing each chunk with one `write_all`.
    pub fn over(mut out: impl std::io::Write + Send + 'static) -> anyhow::Result<Sink> {
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUED_CHUNKS);
        std::thread::Builder::new()
            .name("weir-stdout".into())
            .spawn(move || {
                while let Some(mut chunk) = rx.blocking_recv() {
                    // Chunks waiting behind this one go out in the same write (fewer syscalls
                    // under load); each is whole lines, so the batch is too.
                    while chunk.len() < COALESCE_BYTES
                        && let Ok(more) = rx.try_recv()
                    {
                        chunk.extend_from_slice(&more);
                    }
                    // Nowhere to report a failed write of the log itself.
                    let _ = out.write_all(&chunk).and_then(|()| out.flush());
                }
            })?;
        Ok(Sink { tx })
    }

    async fn send(&self, chunk: Vec<u8>) -> bool {
        self.tx.send(chunk).await.is_ok()
    }
}

/// Reads a worker's stdout to its end: calls `ready` at the `ready` line, relays every other
/// line to `sink` whole.
pub async fn worker_stdout(out: impl AsyncRead + Unpin, sink: &Sink, ready: impl FnOnce()) {
    let mut r = BufReader::with_capacity(64 << 10, out);
    let mut ready = Some(ready);
    // The handshake: lines up to `ready` (nothing else is printed before it, normally).
    let mut line = Vec::new();
    while ready.is_some() {
        line.clear();
        match r.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) if line.trim_ascii() == super::READY_LINE.as_bytes() => {
                if let Some(f) = ready.take() {
                    f();
                }
            }
            Ok(_) => {
                if !sink.send(std::mem::take(&mut line)).await {
                    return;
                }
            }
        }
    }
    relay_lines(&mut r, sink).await;
}

/// Relays whatever `r` holds, in chunks that end at a newline.
async fn relay_lines(r: &mut (impl AsyncBufRead + Unpin), sink: &Sink) {
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let buf = match r.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(b) => b,
        };
        let n = buf.len();
        let chunk = match buf.iter().rposition(|&b| b == b'\n') {
            Some(i) => {
                let mut c = std::mem::take(&mut partial);
                c.extend_from_slice(&buf[..=i]);
                partial.extend_from_slice(&buf[i + 1..]);
                Some(c)
            }
            None => {
                partial.extend_from_slice(buf);
                (partial.len() > MAX_PARTIAL).then(|| {
                    let mut c = std::mem::take(&mut partial);
                    c.push(b'\n');
                    c
                })
            }
        };
        r.consume(n);
        if let Some(c) = chunk
            && !sink.send(c).await
        {
            return;
        }
    }
    if !partial.is_empty() {
        partial.push(b'\n');
        sink.send(partial).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records each `write_all` separately.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);
    impl std::io::Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn ready_is_taken_and_every_write_is_whole_lines() {
        let w = Writes::default();
        let sink = Sink::over(w.clone()).unwrap();
        let (mut tx, rx) = tokio::io::duplex(64);
        let task = tokio::spawn(async move {
            let mut saw = false;
            worker_stdout(rx, &sink, || saw = true).await;
            saw
        });
        use tokio::io::AsyncWriteExt as _;
        // Lines split across writes at odd places, one longer than the pipe's buffer.
        let long = "L".repeat(300);
        let text = format!("ready\nline one\nline two\n{long}\nlast\n");
        for piece in text.as_bytes().chunks(7) {
            tx.write_all(piece).await.unwrap();
        }
        drop(tx);
        assert!(task.await.unwrap(), "the ready line was seen");
        let want = format!("line one\nline two\n{long}\nlast\n");
        for _ in 0..200 {
            if w.0.lock().unwrap().concat().len() >= want.len() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let writes = w.0.lock().unwrap().clone();
        assert!(writes.iter().all(|c| c.ends_with(b"\n")), "{writes:?}");
        let all: Vec<u8> = writes.concat();
        assert_eq!(String::from_utf8(all).unwrap(), want);
    }
}
