//! Upgraded connections (WebSocket): bytes both ways until either side closes or nothing moves
//! for the tunnel's idle timeout.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub async fn run(client: OnUpgrade, target: OnUpgrade, idle: Duration) {
    let (c, t) = tokio::join!(client, target);
    let (c, t) = match (c, t) {
        (Ok(c), Ok(t)) => (TokioIo::new(c), TokioIo::new(t)),
        (c, t) => {
            tracing::debug!(
                client_ok = c.is_ok(),
                target_ok = t.is_ok(),
                "upgrade failed"
            );
            return;
        }
    };
    let (mut cr, mut cw) = tokio::io::split(c);
    let (mut tr, mut tw) = tokio::io::split(t);
    let (mut a, mut b) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let (mut client_open, mut target_open) = (true, true);
    while client_open || target_open {
        tokio::select! {
            r = cr.read(&mut a), if client_open => match r {
                Ok(n) if n > 0 => if tw.write_all(&a[..n]).await.is_err() { break },
                _ => { client_open = false; let _ = tw.shutdown().await; }
            },
            r = tr.read(&mut b), if target_open => match r {
                Ok(n) if n > 0 => if cw.write_all(&b[..n]).await.is_err() { break },
                _ => { target_open = false; let _ = cw.shutdown().await; }
            },
            _ = tokio::time::sleep(idle) => {
                tracing::debug!("tunnel idle timeout");
                break;
            }
        }
    }
}
