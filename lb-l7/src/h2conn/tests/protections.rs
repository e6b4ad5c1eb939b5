//! Every protection, driven by raw frames: CONTINUATION floods, rapid reset, MadeYouReset,
//! SETTINGS/PING/empty-frame/WINDOW_UPDATE floods, unread control replies, oversized header
//! lists, idle and header-read deadlines; and the core never panics on random input.

use super::super::glitch::{CHATTER_FREE, REFUND_EVERY};
use super::*;

fn calm(max_glitches: u32) -> Config {
    Config {
        max_glitches,
        ..Config::default()
    }
}

#[test]
fn continuation_flood_by_count() {
    let mut c = Client::new(Config::default());
    let b = c.block(GET);
    c.send(&raw(kind::HEADERS, 0, 1, &b));
    for _ in 0..super::super::conn::MAX_CONTINUATIONS {
        c.send(&raw(kind::CONTINUATION, 0, 1, b"a"));
    }
    assert!(!c.conn.is_closed());
    c.send(&raw(kind::CONTINUATION, 0, 1, b"a"));
    assert_conn_error(&mut c, Reason::ENHANCE_YOUR_CALM);
}

#[test]
fn continuation_flood_by_bytes() {
    let cfg = Config {
        max_header_list_size: 4096,
        ..Config::default()
    };
    let mut c = Client::new(cfg);
    c.send(&raw(kind::HEADERS, 0, 1, &[0u8; 4000]));
    c.send(&raw(kind::CONTINUATION, 0, 1, &[0u8; 4000]));
    assert!(!c.conn.is_closed());
    c.send(&raw(kind::CONTINUATION, 0, 1, &[0u8; 500]));
    assert_conn_error(&mut c, Reason::ENHANCE_YOUR_CALM);
}

#[test]
fn empty_continuations_are_glitches() {
    let mut c = Client::new(calm(5));
    let b = c.block(GET);
    c.send(&raw(kind::HEADERS, 0, 1, &b));
    for _ in 0..6 {
        c.send(&raw(kind::CONTINUATION, 0, 1, &[]));
    }
    assert_conn_error(&mut c, Reason::ENHANCE_YOUR_CALM);
}

#[test]
fn rapid_reset_is_counted_and_stopped() {
    let mut c = Client::new(calm(100));
    let mut id = 1;
    for _ in 0..100 {
        c.request(id, GET, false);
        c.send(&rst(id, Reason::CANCEL));
        id += 2;
    }
    assert!(!c.conn.is_closed());
    assert!(
        c.events().is_empty(),
        "the driver never saw the reset streams"
    );
    c.request(id, GET, false);
    c.send(&rst(id, Reason::CANCEL));
    assert_conn_error(&mut c, Reason::ENHANCE_YOUR_CALM);
}

#[test]
fn a_reset_after_the_response_finished_is_no_glitch_and_completions_refund() {
    let mut c = Client::new(calm(1));
    // A glitch: reset of an unanswered stream.
    c.request(1, GET, false);
    c.send(&rst(1, Reason::CANCEL));
    // Completed streams pay it back.
    let mut id = 3;
    for _ in 0..REFUND_EVERY {
        c.request(id, GET, true);
        c.conn
            .send_response(id, StatusCode::OK, &HeaderMap::new(), true)
            .unwrap();
        id += 2;
    }
    c.request(id, GET, false);
    c.send(&rst(id, Reason::CANCEL));
    assert!(!c.conn.is_closed());
    c.request(id + 2, GET, false);
    c.send(&rst(id + 2, Reason::CANCEL));
    c.request(id + 4, GET, false);
    c.send(&rst(id + 4, Reason::CANCEL));
    assert!(c.conn.is_closed());
}

#[test]
fn made_you_reset_stream_errors_we_send_are_counted() {
    let mut c = Client::new(calm(10));
    let mut id = 1;
    for _ in 0..10 {
        c.request(id, GET, false);
        c.send(&window_update(id, 0));
        id += 2;
    }
    assert!(!c.conn.is_closed());
    c.request(id, GET, false);
    c.send(&window_update(id, 0));
    assert_conn_error(&mut c, Reason::ENHANCE_YOUR_CALM);
}

#[test]
fn malformed_requests_are_counted_too() {
    let mut c = Client::new(calm(3));
    for id in [1, 3, 5, 7] {
        c.request(id, &[(":method", "GET")], true);
    }
    assert_conn_error(&mut c, Reason::ENHANCE_YOUR_CALM);
}

fn flood(frame: &[u8], max_glitches: u32) -> (Client, usize) {
    let mut c = Client::new(calm(max_glitches));
    let mut n = 0;
    while !c.conn.is_closed() && n < 10_000 {
        c.send(frame);
        c.frames();
        n += 1;
    }
    (c, n)
}

#[test]
fn ping_settings_priority_window_update_and_unknown_floods() {
    let frames = [
        ping([0; 8]),
        settings(&[]),
        priority(1, 0),
        window_update(0, 1),
        raw(0x42, 0, 0, &[]),
    ];
    for f in frames {
        let (mut c, n) = flood(&f, 10);
        let want = (CHATTER_FREE + 11) as usize;
        assert_eq!(n, want, "frame {f:?}");
        assert_eq!(c.conn.error_detail(), Some("a control-frame flood"));
        c.events();
    }
}

#[test]
fn progress_ends_a_row_of_control_frames() {
    let mut c = Client::new(calm(0));
    let mut id = 1;
    for _ in 0..5 {
        for _ in 0..CHATTER_FREE {
            c.send(&ping([0; 8]));
        }
        c.request(id, GET, true);
        id += 2;
    }
    assert!(!c.conn.is_closed());
}

#[test]
fn empty_data_frames_are_glitches() {
    let mut c = Client::new(calm(20));
    c.request(1, POST, false);
    for _ in 0..20 {
        c.send(&data(1, b"", false));
    }
    assert!(!c.conn.is_closed());
    c.send(&data(1, b"", false));
    assert_conn_error(&mut c, Reason::ENHANCE_YOUR_CALM);
}

#[test]
fn window_updates_on_a_stream_with_nothing_to_send_are_chatter() {
    let (c, n) = {
        let mut c = Client::new(calm(5));
        c.request(1, GET, false);
        let mut n = 0;
        while !c.conn.is_closed() && n < 1000 {
            c.send(&window_update(1, 1));
            n += 1;
        }
        (c, n)
    };
    assert_eq!(n, (CHATTER_FREE + 6) as usize);
    assert_eq!(c.conn.error_detail(), Some("a control-frame flood"));
}

#[test]
fn control_replies_the_client_never_reads_are_bounded() {
    let mut c = Client::new(calm(u32::MAX));
    let mut pings = Vec::new();
    for _ in 0..70_000 {
        pings.extend(ping([1; 8]));
    }
    c.send(&pings);
    assert!(c.conn.is_closed());
    assert_eq!(
        c.conn.error_detail(),
        Some("control replies pile up unread")
    );
    assert!(c.conn.unsent() <= super::super::conn::MAX_PENDING_OUT + 64);
}

#[test]
fn an_oversized_header_list_gets_431_and_the_connection_lives() {
    let cfg = Config {
        max_header_list_size: 2048,
        ..Config::default()
    };
    let mut c = Client::new(cfg);
    let big = "x".repeat(3000);
    let mut f = GET.to_vec();
    f.push(("x-big", &big));
    c.request(1, &f, true);
    assert_refused(&mut c, 1, Some(431));
    let fs = c.frames();
    assert_eq!(fs.len(), 1);
    assert_eq!(fs[0].flags & flag::END_STREAM, flag::END_STREAM);
    assert_eq!(
        c.decode(&fs[0].payload),
        vec![(":status".into(), "431".into())]
    );
    c.request(3, GET, true);
    expect_request(&mut c);
}

#[test]
fn a_huge_partial_frame_is_refused_at_once() {
    let mut c = Client::new(Config::default());
    let mut head = Vec::new();
    frame::write_head(&mut head, (1 << 24) - 1, kind::HEADERS, 0, 1);
    c.send(&head);
    assert_conn_error(&mut c, Reason::FRAME_SIZE_ERROR);
}

#[test]
fn idle_timeout_sends_goaway_no_error_and_closes() {
    let cfg = Config {
        idle_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    let mut c = Client::new(cfg);
    c.request(1, GET, true);
    c.events();
    assert_eq!(
        c.conn.poll_timeout(),
        Some(c.now + Duration::from_secs(5)),
        "a stream open: no idle deadline, the keep-alive PING's"
    );
    c.conn
        .send_response(1, StatusCode::OK, &HeaderMap::new(), true)
        .unwrap();
    let at = c.conn.poll_timeout().unwrap();
    assert_eq!(at, c.now + Duration::from_secs(5));
    c.advance(Duration::from_secs(4));
    assert!(!c.conn.is_closed());
    c.advance(Duration::from_secs(1));
    assert!(c.conn.is_closed());
    let fs = c.frames();
    assert_eq!(goaway(&fs), Some(Reason::NO_ERROR));
    assert!(matches!(c.events()[..], [Event::GoAway { error: None }]));
}

/// The PINGs among `fs`: (ACK flag set, opaque data).
fn pings(fs: &[F]) -> Vec<(bool, Vec<u8>)> {
    fs.iter()
        .filter(|f| f.kind == kind::PING)
        .map(|f| (f.flags & flag::ACK != 0, f.payload.clone()))
        .collect()
}

#[test]
fn keep_alive_ping_after_the_idle_timeout_without_a_read_and_no_ack_closes() {
    let idle = Duration::from_secs(5);
    let cfg = Config {
        idle_timeout: idle,
        ..Config::default()
    };
    let mut c = Client::new(cfg);
    c.request(1, GET, true);
    expect_request(&mut c);
    // A stream waits for its response; the client says nothing more.
    c.advance(idle - Duration::from_millis(1));
    assert!(pings(&c.frames()).is_empty(), "no PING before +idle");
    c.advance(Duration::from_millis(1));
    let ping = pings(&c.frames());
    assert_eq!(ping.len(), 1, "a PING at +idle");
    assert!(!ping[0].0, "not an ACK");
    assert_eq!(c.conn.poll_timeout(), Some(c.now + idle), "its ACK is due");
    assert!(!c.conn.is_closed());
    // No second PING while the first waits; no ACK by +2×idle: GOAWAY, the stream reset.
    c.advance(idle - Duration::from_millis(1));
    assert!(c.frames().is_empty());
    assert!(!c.conn.is_closed());
    c.advance(Duration::from_millis(1));
    assert!(c.conn.is_closed());
    assert_eq!(goaway(&c.frames()), Some(Reason::NO_ERROR));
    let evs = c.events();
    assert!(
        matches!(
            evs[..],
            [
                Event::Reset { id: 1, .. },
                Event::GoAway {
                    error: Some(Reason::NO_ERROR)
                }
            ]
        ),
        "{evs:?}"
    );
    assert_eq!(
        c.conn.error_detail(),
        Some("no PING ACK within the idle timeout")
    );
}

#[test]
fn keep_alive_ping_acked_keeps_the_connection() {
    let idle = Duration::from_secs(5);
    let cfg = Config {
        idle_timeout: idle,
        ..Config::default()
    };
    let mut c = Client::new(cfg);
    c.request(1, GET, true);
    expect_request(&mut c);
    let mut wait = idle;
    for round in 0..3 {
        c.advance(wait);
        let ping = pings(&c.frames());
        assert_eq!(ping.len(), 1, "round {round}: {ping:?}");
        // The client answers a second later: the next PING is due an idle timeout after.
        c.advance(Duration::from_secs(1));
        c.send(&raw(kind::PING, flag::ACK, 0, &ping[0].1));
        assert!(!c.conn.is_closed());
        assert!(
            c.events().is_empty(),
            "the ACK is not chatter, raises nothing"
        );
        assert_eq!(c.conn.poll_timeout(), Some(c.now + idle));
        c.advance(idle - Duration::from_millis(1));
        assert!(c.frames().is_empty(), "no PING before +idle after the ACK");
        assert!(!c.conn.is_closed());
        wait = Duration::from_millis(1);
    }
    // An ACK with other data is not ours: the PING stays unanswered.
    c.advance(wait);
    assert_eq!(pings(&c.frames()).len(), 1);
    c.send(&raw(kind::PING, flag::ACK, 0, b"notours!"));
    c.advance(idle);
    assert!(c.conn.is_closed());
    // A stream that ends after an answered PING: the idle GOAWAY takes over.
    let mut c = Client::new(Config {
        idle_timeout: idle,
        ..Config::default()
    });
    c.request(1, GET, true);
    expect_request(&mut c);
    c.advance(idle);
    let ping = pings(&c.frames());
    c.send(&raw(kind::PING, flag::ACK, 0, &ping[0].1));
    c.conn
        .send_response(1, StatusCode::OK, &HeaderMap::new(), true)
        .unwrap();
    // No stream: the idle GOAWAY an idle timeout after the last one ended, no more PINGs.
    assert_eq!(c.conn.poll_timeout(), Some(c.now + idle));
    c.advance(idle);
    let fs = c.frames();
    assert!(pings(&fs).is_empty(), "{fs:?}");
    assert_eq!(goaway(&fs), Some(Reason::NO_ERROR));
    assert!(matches!(c.events()[..], [Event::GoAway { error: None }]));
}

#[test]
fn a_connection_without_streams_gets_no_ping_only_the_idle_goaway() {
    let idle = Duration::from_secs(5);
    let mut c = Client::new(Config {
        idle_timeout: idle,
        ..Config::default()
    });
    assert_eq!(c.conn.poll_timeout(), Some(c.now + idle));
    c.advance(idle);
    let fs = c.frames();
    assert!(pings(&fs).is_empty(), "{fs:?}");
    assert_eq!(goaway(&fs), Some(Reason::NO_ERROR));
    assert!(c.conn.is_closed());
}

#[test]
fn header_read_timeout_for_an_unfinished_block_and_for_the_preface() {
    let cfg = Config {
        header_read_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    let mut c = Client::new(cfg.clone());
    let b = c.block(GET);
    c.send(&raw(kind::HEADERS, 0, 1, &b));
    assert_eq!(c.conn.poll_timeout(), Some(c.now + Duration::from_secs(2)));
    c.advance(Duration::from_secs(2));
    assert_conn_error(&mut c, Reason::ENHANCE_YOUR_CALM);
    let mut c = Client::raw(cfg);
    c.send(&frame::PREFACE[..10]);
    c.advance(Duration::from_secs(3));
    assert_conn_error(&mut c, Reason::ENHANCE_YOUR_CALM);
}

/// A small deterministic generator (xorshift), so the test needs no crate and no seed file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A random frame, biased to valid-looking ones so the deeper paths run.
fn random_frame(r: &mut Rng, c: &mut Client) -> Vec<u8> {
    let id = (r.below(8) * 2 + 1) as u32;
    match r.below(12) {
        0 => c.headers(id, GET, r.below(2) == 0),
        1 => c.headers(id, POST, false),
        2 => data(id, &vec![0; r.below(300) as usize], r.below(2) == 0),
        3 => rst(id, Reason(r.below(14) as u32)),
        4 => window_update(r.below(2) as u32 * id, r.below(1 << 20) as u32),
        5 => settings(&[(r.below(10) as u16, r.next() as u32)]),
        6 => ping([r.next() as u8; 8]),
        7 => priority(id, r.below(8) as u32),
        8 => raw(kind::CONTINUATION, r.next() as u8, id, &[r.next() as u8; 3]),
        9 => {
            let len = r.below(40) as usize;
            (0..len).map(|_| r.next() as u8).collect()
        }
        10 => raw(r.below(16) as u8, r.next() as u8, id, &[r.next() as u8; 5]),
        _ => raw(kind::HEADERS, r.next() as u8, id, &[r.next() as u8; 7]),
    }
}

#[test]
fn random_input_never_panics_and_the_driver_calls_stay_safe() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..300 {
        let mut c = Client::new(Config::default());
        for _ in 0..60 {
            let f = random_frame(&mut r, &mut c);
            let split = r.below(f.len() as u64 + 1) as usize;
            c.send(&f[..split]);
            c.send(&f[split..]);
            for e in c.events() {
                if let Event::Request { id, .. } = e {
                    let _ = c
                        .conn
                        .send_response(id, StatusCode::OK, &HeaderMap::new(), false);
                    let _ = c
                        .conn
                        .send_data(id, Bytes::from(vec![0; 100]), r.below(2) == 0);
                }
                if let Event::Data { id, data, .. } = e {
                    c.conn.release_capacity(id, data.len());
                }
            }
            let mut out = Vec::new();
            c.conn.poll_transmit(&mut out);
            c.advance(Duration::from_millis(r.below(3000)));
            if c.conn.is_closed() {
                break;
            }
        }
    }
}

/// Streams 1, 3, … `2n-1`, each with a response whose body waits at window 0.
fn waiting_at_window_zero(cfg: Config, n: u32) -> Client {
    let mut c = Client::new(cfg);
    c.send(&settings(&[(setting::INITIAL_WINDOW_SIZE, 0)]));
    for i in 0..n {
        let id = 2 * i + 1;
        c.request(id, GET, true);
        c.conn
            .send_response(id, StatusCode::OK, &HeaderMap::new(), false)
            .unwrap();
        c.conn
            .send_data(id, Bytes::from_static(b"body"), false)
            .unwrap();
    }
    c.events();
    c.frames();
    c
}

/// One SETTINGS frame may list INITIAL_WINDOW_SIZE thousands of times (legal: the last value
/// stands). Applied one by one, each 0 → 2^31-1 swing queued a `Writable` per stream: a 16 KB
/// frame with 128 streams open made ~350,000 events (115 MB held by the worker, 13 ms of CPU).
#[test]
fn a_settings_frame_swinging_the_initial_window_moves_the_streams_once() {
    let mut c = waiting_at_window_zero(Config::default(), 100);
    let swings: Vec<(u16, u32)> = (0..2_700)
        .map(|i| {
            (
                setting::INITIAL_WINDOW_SIZE,
                if i % 2 == 0 { (1 << 31) - 1 } else { 0 },
            )
        })
        .chain([(setting::INITIAL_WINDOW_SIZE, 1_000)])
        .collect();
    c.send(&settings(&swings));
    let evs = c.events();
    assert_eq!(evs.len(), 100, "one Writable per stream: {}", evs.len());
    assert!(evs.iter().all(|e| matches!(e, Event::Writable { .. })));
    // The last value stands: each body goes out, 996 bytes of window left.
    let fs = c.frames();
    let data: Vec<&F> = fs.iter().filter(|f| f.kind == kind::DATA).collect();
    assert_eq!(data.len(), 100);
    assert!(data.iter().all(|f| f.payload == b"body"));
    assert_eq!(c.conn.send_capacity(1), 996);
    assert!(!c.conn.is_closed());
}

/// Between two polls of the events, a stream's window reopened any number of times queues one
/// `Writable`; polled, the next reopening queues one again.
#[test]
fn a_stream_has_at_most_one_writable_event_waiting() {
    let mut c = waiting_at_window_zero(Config::default(), 1);
    for _ in 0..50 {
        c.send(&settings(&[(setting::INITIAL_WINDOW_SIZE, 0)]));
        c.send(&settings(&[(setting::INITIAL_WINDOW_SIZE, 1_000)]));
        if c.conn.is_closed() {
            break;
        }
    }
    let evs = c.events();
    assert!(matches!(evs[..], [Event::Writable { id: 1 }]), "{evs:?}");
    c.frames();
    c.conn
        .send_data(1, Bytes::from(vec![0u8; 996]), false)
        .unwrap();
    c.frames();
    c.send(&window_update(1, 10));
    assert!(matches!(c.events()[..], [Event::Writable { id: 1 }]));
}

/// Moving open streams' windows is one step per stream: the first SETTINGS that does it is
/// free, each later one a glitch, so a client swinging the window frame after frame — with
/// progress between the frames, which ends a row of control frames — is stopped.
#[test]
fn a_client_that_keeps_moving_the_initial_window_is_stopped() {
    let mut c = waiting_at_window_zero(calm(10), 20);
    let mut moves = 0;
    let mut id = 41;
    while !c.conn.is_closed() && moves < 1_000 {
        let w = if moves % 2 == 0 { 100 } else { 0 };
        c.send(&settings(&[(setting::INITIAL_WINDOW_SIZE, w)]));
        moves += 1;
        // Progress: a new stream (it ends a row of control frames, not the glitch count).
        c.request(id, GET, true);
        id += 2;
        c.events();
        c.frames();
    }
    assert_eq!(moves, 12, "1 free, 10 glitches allowed, the 11th over");
    assert_eq!(
        c.conn.error_detail(),
        Some("the initial window moved again")
    );
    // A client that sets it once more after its first SETTINGS (a window tuner) is fine.
    let mut c = waiting_at_window_zero(calm(10), 20);
    c.send(&settings(&[(setting::INITIAL_WINDOW_SIZE, 1 << 20)]));
    c.send(&settings(&[(setting::INITIAL_WINDOW_SIZE, 1 << 22)]));
    assert!(!c.conn.is_closed());
}

/// A client keeping its window at 0 (SETTINGS_INITIAL_WINDOW_SIZE 0, no WINDOW_UPDATE) and
/// answering PINGs: each stream whose response is held back is reset (RST_STREAM(CANCEL),
/// `Event::Stalled`) an idle timeout after the stall began, then the idle GOAWAY ends the
/// connection. Before, such streams lived as long as the client answered PINGs.
#[test]
fn a_response_held_back_by_a_zero_window_is_reset_at_the_idle_timeout() {
    let idle = Duration::from_secs(5);
    let ms = Duration::from_millis;
    let mut c = Client::new(Config {
        idle_timeout: idle,
        ..Config::default()
    });
    c.send(&settings(&[(setting::INITIAL_WINDOW_SIZE, 0)]));
    c.frames();
    c.request(1, GET, true);
    c.request(3, GET, true);
    assert_eq!(c.events().len(), 2);
    // The target answers 3 s later: the core's clock is the last read's (stale), so the
    // stall is stamped by the `handle_timeout` `poll_timeout` makes due at once.
    c.now += Duration::from_secs(3);
    for id in [1, 3] {
        c.conn
            .send_response(id, StatusCode::OK, &HeaderMap::new(), false)
            .unwrap();
    }
    assert_eq!(c.conn.send_capacity(1), 0, "the driver gets no capacity");
    assert!(c.conn.poll_timeout().is_some_and(|t| t <= c.now));
    c.advance(Duration::ZERO);
    let stamped = c.now;
    assert_eq!(
        c.conn.poll_timeout(),
        Some(stamped + ms(2000)),
        "the PING's"
    );
    let fs = c.frames();
    assert_eq!(fs.iter().filter(|f| f.kind == kind::HEADERS).count(), 2);
    // The client answers every PING and sends its own: no help.
    let mut t = Duration::ZERO;
    while t + ms(1000) < idle {
        c.advance(ms(1000));
        t += ms(1000);
        for (_, p) in pings(&c.frames()) {
            c.send(&raw(kind::PING, flag::ACK, 0, &p));
        }
        c.send(&ping(*b"clientpg"));
        assert!(resets(&c.frames()).is_empty(), "at +{t:?}");
        assert!(c.events().is_empty(), "at +{t:?}");
    }
    c.advance(stamped + idle - ms(1) - c.now);
    assert!(
        resets(&c.frames()).is_empty(),
        "not before the idle timeout"
    );
    c.advance(ms(1));
    let fs = c.frames();
    assert_eq!(
        resets(&fs),
        [(1, Reason::CANCEL), (3, Reason::CANCEL)],
        "{fs:?}"
    );
    let evs = c.events();
    assert!(
        matches!(
            evs[..],
            [Event::Stalled { id: 1 }, Event::Stalled { id: 3 }]
        ),
        "{evs:?}"
    );
    assert_eq!(c.conn.active_streams(), 0);
    assert!(!c.conn.is_closed());
    // No stream left: the PING ACKs keep nothing, the idle GOAWAY ends the connection.
    c.advance(idle);
    assert_eq!(goaway(&c.frames()), Some(Reason::NO_ERROR));
    assert!(c.conn.is_closed());
}

/// Slow is not stalled: a client letting 10 bytes through every 3 s (idle timeout 5 s) keeps
/// its stream for as long as it does; once it stops, the stream is reset an idle timeout
/// after the window ran out. A stream the target has not answered yet is not held back by
/// the window, whatever it is.
#[test]
fn a_window_that_lets_bytes_through_keeps_the_stream() {
    let idle = Duration::from_secs(5);
    let mut c = Client::new(Config {
        idle_timeout: idle,
        ..Config::default()
    });
    c.send(&settings(&[(setting::INITIAL_WINDOW_SIZE, 0)]));
    c.request(1, GET, true);
    c.request(3, GET, true);
    c.events();
    c.conn
        .send_response(1, StatusCode::OK, &HeaderMap::new(), false)
        .unwrap();
    c.conn
        .send_data(1, Bytes::from(vec![b'x'; 1000]), true)
        .unwrap();
    c.advance(Duration::ZERO);
    c.frames();
    for round in 0..6 {
        c.advance(Duration::from_secs(3));
        for (_, p) in pings(&c.frames()) {
            c.send(&raw(kind::PING, flag::ACK, 0, &p));
        }
        c.send(&window_update(0, 10));
        c.send(&window_update(1, 10));
        let fs = c.frames();
        let data: usize = fs
            .iter()
            .filter(|f| f.kind == kind::DATA && f.stream == 1)
            .map(|f| f.payload.len())
            .sum();
        assert_eq!(data, 10, "round {round}: {fs:?}");
        assert!(resets(&fs).is_empty(), "round {round}: {fs:?}");
        c.advance(Duration::ZERO);
    }
    assert!(
        c.events()
            .iter()
            .all(|e| !matches!(e, Event::Stalled { .. }))
    );
    let ran_out = c.now;
    c.advance(idle - Duration::from_millis(1));
    assert!(resets(&c.frames()).is_empty());
    c.advance(ran_out + idle - c.now);
    assert_eq!(resets(&c.frames()), [(1, Reason::CANCEL)]);
    assert!(matches!(c.events()[..], [Event::Stalled { id: 1 }]));
    assert_eq!(c.conn.active_streams(), 1, "stream 3 waits on its target");
}

/// The connection window at 0 with bytes queued: every stream with queued bytes is reset an
/// idle timeout later (they all wait on it); one with nothing queued waits on its target,
/// not on the client, and stays.
#[test]
fn a_connection_window_at_zero_resets_the_streams_it_holds_back() {
    let idle = Duration::from_secs(5);
    let mut c = Client::new(Config {
        idle_timeout: idle,
        ..Config::default()
    });
    for id in [1, 3, 5] {
        c.request(id, GET, true);
    }
    c.events();
    for id in [1, 3, 5] {
        c.conn
            .send_response(id, StatusCode::OK, &HeaderMap::new(), false)
            .unwrap();
    }
    // 40,000 + 40,000 bytes on a connection window of 65,535.
    for id in [1, 3] {
        c.conn
            .send_data(id, Bytes::from(vec![b'x'; 40_000]), true)
            .unwrap();
    }
    c.frames();
    c.advance(Duration::ZERO);
    c.frames();
    c.advance(idle - Duration::from_millis(1));
    for (_, p) in pings(&c.frames()) {
        c.send(&raw(kind::PING, flag::ACK, 0, &p));
    }
    assert!(resets(&c.frames()).is_empty());
    c.advance(Duration::from_millis(1));
    assert_eq!(
        resets(&c.frames()),
        [(1, Reason::CANCEL), (3, Reason::CANCEL)]
    );
    assert_eq!(c.conn.active_streams(), 1);
    // Stream 5 answered later is served from the window the others left.
    c.send(&window_update(0, 1000));
    c.conn
        .send_data(5, Bytes::from_static(b"hello"), true)
        .unwrap();
    let fs = c.frames();
    assert!(
        fs.iter()
            .any(|f| f.kind == kind::DATA && f.stream == 5 && f.flags & flag::END_STREAM != 0),
        "{fs:?}"
    );
}
