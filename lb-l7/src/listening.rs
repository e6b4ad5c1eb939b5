//! The accept loops a worker runs, one per listener (named by its port: ports are unique in a
//! configuration, and the control plane refuses a reload that moves a kept port to another
//! address). A generation that adds a listener starts its loop on the socket the control plane
//! sent over the socket channel (`crate::socket_channel`); one that removes a listener stops
//! its loop, which takes what is still queued and closes this worker's descriptor of the socket
//! (as at shutdown, per socket). Connections it accepted stay in the generation they started in.

use crate::accept;
use crate::pipeline::Shared;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinHandle;

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

struct Inner {
    running: HashMap<u16, Running>,
    /// Loops told to stop that may still be taking their queue (awaited at shutdown).
    stopping: Vec<JoinHandle<()>>,
    /// Sockets received for listeners no generation has named yet, by port.
    received: HashMap<u16, OwnedFd>,
    /// The drain token every connection holds (`Worker::serve` waits until it is the last
    /// holder): given to each loop, dropped here at shutdown.
    token: Option<Arc<()>>,
}

/// The accept loops of a worker, started and stopped as generations come.
pub struct Listening {
    inner: Mutex<Inner>,
    shutdown: watch::Receiver<bool>,
    /// The socket channel, when a control plane sends sockets.
    channel: Option<OwnedFd>,
    worker: usize,
    /// The worker's parking lot (idle plain connections), given to every loop.
    lot: Arc<accept::park::Lot>,
}

/// Why a worker could not follow a generation's listeners.
#[derive(Debug, thiserror::Error)]
pub enum ListeningError {
    #[error("listener on port {0}: the control plane sent no socket for it")]
    NoSocket(u16),
    #[error("listener on port {0}: {1}")]
    Socket(u16, std::io::Error),
    #[error(transparent)]
    Channel(#[from] crate::socket_channel::ChannelError),
}

impl Listening {
    pub fn new(
        token: Arc<()>,
        shutdown: watch::Receiver<bool>,
        channel: Option<OwnedFd>,
        worker: usize,
        lot: Arc<accept::park::Lot>,
    ) -> Listening {
        Listening {
            inner: Mutex::new(Inner {
                running: HashMap::new(),
                stopping: Vec::new(),
                received: HashMap::new(),
                token: Some(token),
            }),
            shutdown,
            channel,
            worker,
            lot,
        }
    }

    /// Starts the accept loop of listener `index` of generation `sh` on `socket`.
    pub fn start(&self, sh: &Arc<Shared>, index: usize, socket: std::net::TcpListener) {
        let Some(l) = sh.listeners.get(index) else {
            return;
        };
        let port = l.config.port;
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let Some(token) = inner.token.clone() else {
            return;
        };
        let tcp = match socket
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(socket))
        {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(worker = self.worker, port, error = %e, "cannot listen");
                return;
            }
        };
        tracing::info!(
            worker = self.worker,
            port,
            tls = l.tls.is_some(),
            generation = sh.generation,
            "listening"
        );
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept::accept_loop(
            sh.clone(),
            index,
            tcp,
            self.shutdown.clone(),
            stop_rx,
            token,
            self.lot.clone(),
        ));
        if let Some(old) = inner.running.insert(port, Running { stop, task }) {
            let _ = old.stop.send(true);
            inner.stopping.push(old.task);
        }
    }

    /// Takes what the socket channel holds: listening sockets are kept for the generation that
    /// names them (this one, or the next when a reopened access log was read first), an
    /// access-log file replaces the one `sh`'s log writes to.
    pub fn take_channel(&self, sh: &Shared) -> Result<(), ListeningError> {
        let Some(c) = &self.channel else {
            return Ok(());
        };
        let taken = crate::socket_channel::take_all(c)?;
        if let Some(f) = taken.access_log {
            sh.access_log.reopen(std::fs::File::from(f));
            tracing::info!(worker = self.worker, "access log reopened");
        }
        if !taken.sockets.is_empty()
            && let Ok(mut inner) = self.inner.lock()
        {
            for (addr, fd) in taken.sockets {
                inner.received.insert(addr.port(), fd);
            }
        }
        Ok(())
    }

    /// Makes the running loops those of `sh`'s listeners: the removed ones stop (taking their
    /// queue first), the added ones start on the sockets the control plane sent.
    pub fn follow(&self, sh: &Arc<Shared>) -> Result<(), ListeningError> {
        self.take_channel(sh)?;
        let mut to_start = Vec::new();
        {
            let Ok(mut inner) = self.inner.lock() else {
                return Ok(());
            };
            if inner.token.is_none() {
                return Ok(());
            }
            let wanted: Vec<u16> = sh.listeners.iter().map(|l| l.config.port).collect();
            let gone: Vec<u16> = inner
                .running
                .keys()
                .copied()
                .filter(|p| !wanted.contains(p))
                .collect();
            // HTTP/2 connections of a removed listener start their graceful GOAWAY now.
            sh.ports.set(&wanted);
            if !gone.is_empty() {
                // Idle HTTP/1.1 connections of a removed listener close now (FIN), as at
                // shutdown; the others are woken, see their listener is there, wait again.
                sh.idle.poke_all();
                self.lot.close_removed(sh);
            }
            for port in gone {
                if let Some(r) = inner.running.remove(&port) {
                    tracing::info!(
                        worker = self.worker,
                        port,
                        generation = sh.generation,
                        "listener removed: taking its queue, then closing it"
                    );
                    let _ = r.stop.send(true);
                    inner.stopping.push(r.task);
                }
            }
            inner.stopping.retain(|t| !t.is_finished());
            for (index, port) in wanted.iter().enumerate() {
                if inner.running.contains_key(port) {
                    continue;
                }
                let fd = inner
                    .received
                    .remove(port)
                    .ok_or(ListeningError::NoSocket(*port))?;
                to_start.push((index, *port, std::net::TcpListener::from(fd)));
            }
        }
        for (index, port, socket) in to_start {
            match socket.local_addr() {
                Ok(a) if a.port() == port => self.start(sh, index, socket),
                Ok(a) => {
                    return Err(ListeningError::Socket(
                        port,
                        std::io::Error::other(format!("the socket sent listens on {a}")),
                    ));
                }
                Err(e) => return Err(ListeningError::Socket(port, e)),
            }
        }
        Ok(())
    }

    /// Shutdown: every loop stops (each takes its queue, then closes its socket); returns them
    /// to be awaited. Nothing starts afterwards.
    pub fn close_all(&self) -> Vec<JoinHandle<()>> {
        let Ok(mut inner) = self.inner.lock() else {
            return Vec::new();
        };
        inner.token = None;
        inner.received.clear();
        let mut tasks = std::mem::take(&mut inner.stopping);
        for (_, r) in inner.running.drain() {
            let _ = r.stop.send(true);
            tasks.push(r.task);
        }
        tasks
    }
}
