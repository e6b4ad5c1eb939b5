//! `is_closed` of a plain target connection and `readable` against the polls they replaced
//! (the oracles below): real sockets, every state an idle pooled connection can be in, each
//! looked at before and after the reactor saw the peer's move, and twice (a look can change
//! the state: a stale readiness is cleared, a byte is read).

use super::{Pooled, readable};
use std::io::Write;
use std::task::{Context, Waker};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// `is_closed` before: a poll of the read readiness with no waiter, then a 1-byte `try_read`.
fn is_closed_old(s: &mut TcpStream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    if s.poll_read_ready(&mut cx).is_pending() {
        return false;
    }
    let mut probe = [0u8; 1];
    !matches!(s.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// `readable` before: the same poll.
fn readable_old(s: &TcpStream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    s.poll_read_ready(&mut cx).is_ready()
}

/// What the target does to an idle pooled connection.
#[derive(Debug, Clone, Copy)]
enum Move {
    Nothing,
    Bytes,
    Fin,
    Reset,
    /// Bytes weir read exactly (the readiness stays set with nothing to read).
    StaleReadiness,
    BytesThenFin,
}

const MOVES: [Move; 6] = [
    Move::Nothing,
    Move::Bytes,
    Move::Fin,
    Move::Reset,
    Move::StaleReadiness,
    Move::BytesThenFin,
];

async fn pair(l: &TcpListener) -> (TcpStream, std::net::TcpStream) {
    let ours = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (peer, _) = l.accept().await.unwrap();
    (ours, peer.into_std().unwrap())
}

/// Makes `m` happen; `settle`: then lets the reactor see it. Returns the peer if it is open.
async fn make(
    m: Move,
    ours: &TcpStream,
    mut peer: std::net::TcpStream,
    settle: bool,
) -> Option<std::net::TcpStream> {
    let mut open = None;
    match m {
        Move::Nothing => open = Some(peer),
        Move::Bytes => {
            peer.write_all(b"HTTP/1.1 200 OK\r\n").unwrap();
            open = Some(peer);
        }
        Move::Fin => drop(peer),
        Move::Reset => {
            socket2::SockRef::from(&peer)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(peer);
        }
        Move::StaleReadiness => {
            peer.write_all(b"abcd").unwrap();
            ours.readable().await.unwrap();
            let mut four = [0u8; 4];
            assert_eq!(ours.try_read(&mut four).unwrap(), 4);
            open = Some(peer);
        }
        Move::BytesThenFin => {
            peer.write_all(b"x").unwrap();
            drop(peer);
        }
    }
    if settle {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    open
}

#[tokio::test]
async fn is_closed_and_readable_say_what_the_polls_said() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    for m in MOVES {
        for settle in [false, true] {
            let (mut old, old_peer) = pair(&l).await;
            let (mut new, new_peer) = pair(&l).await;
            // Both connections see the move, then both are looked at with no await between.
            let _a = make(m, &old, old_peer, false).await;
            let _b = make(m, &new, new_peer, settle).await;
            for look in 0..2 {
                let what = format!("{m:?} settled {settle} look {look}");
                assert_eq!(readable(&new), readable_old(&new), "{what}");
                assert_eq!(new.is_closed(), is_closed_old(&mut old), "{what}");
                if settle {
                    // The second look after the reactor turned again.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
}

/// The cases the comparison must not pass vacuously: a closed, reset or talking target is
/// seen, an idle one and a stale readiness are not.
#[tokio::test]
async fn a_closed_target_connection_is_seen_once_the_reactor_saw_it() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    for (m, closed) in [
        (Move::Nothing, false),
        (Move::Bytes, true),
        (Move::Fin, true),
        (Move::Reset, true),
        (Move::StaleReadiness, false),
        (Move::BytesThenFin, true),
    ] {
        let (mut ours, peer) = pair(&l).await;
        let _peer = make(m, &ours, peer, true).await;
        assert_eq!(ours.is_closed(), closed, "{m:?}");
    }
}
