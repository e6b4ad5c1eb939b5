//! The ports a worker listens on, as the generations' listeners come and go, shared by every
//! generation: an HTTP/2 connection waits here (one `watch` receiver, off its request path) to
//! learn that a reload removed its listener, so it starts its graceful GOAWAY at once instead of
//! at its next stream (idle HTTP/1.1 connections learn it through `crate::idle`).

use std::sync::Arc;
use tokio::sync::watch;

/// The ports of the newest generation's listeners (set when a worker follows a generation).
#[derive(Debug)]
pub struct ListenerPorts(watch::Sender<Arc<[u16]>>);

impl Default for ListenerPorts {
    fn default() -> Self {
        ListenerPorts(watch::Sender::new(Arc::from(Vec::new())))
    }
}

impl ListenerPorts {
    /// The listeners are now those on `ports`: connections waiting in [`Self::removed`] wake.
    pub fn set(&self, ports: &[u16]) {
        self.0.send_if_modified(|cur| {
            if **cur == *ports {
                return false;
            }
            *cur = Arc::from(ports);
            true
        });
    }

    /// Completes once a set made after this call no longer has `port` (never if none does).
    pub fn removed(&self, port: u16) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            loop {
                if rx.changed().await.is_err() {
                    return std::future::pending().await;
                }
                if !rx.borrow_and_update().contains(&port) {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_set_without_the_port_wakes_and_one_with_it_does_not() {
        let p = ListenerPorts::default();
        p.set(&[80, 443]);
        let mut gone = std::pin::pin!(p.removed(443));
        p.set(&[80, 443, 8080]);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), gone.as_mut())
                .await
                .is_err()
        );
        p.set(&[80, 8080]);
        tokio::time::timeout(Duration::from_secs(1), gone)
            .await
            .expect("the removal is seen");
        // A connection that starts after the removal waits for a later one.
        let later = p.removed(443);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), later)
                .await
                .is_err()
        );
    }
}
