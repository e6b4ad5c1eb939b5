//! The response side: heads, bodies within the windows and frame sizes, trailers, the
//! transmit bound, back-pressure and `Event::Writable`.

use super::*;

fn data_frames(fs: &[F]) -> Vec<&F> {
    fs.iter().filter(|f| f.kind == kind::DATA).collect()
}

fn started(cfg: Config) -> Client {
    let mut c = Client::new(cfg);
    c.request(1, GET, true);
    c.events();
    c
}

#[test]
fn a_response_head_is_hpack_encoded_without_connection_fields() {
    let mut c = started(Config::default());
    let mut h = HeaderMap::new();
    h.insert("content-type", "text/plain".parse().unwrap());
    h.insert("connection", "keep-alive".parse().unwrap());
    h.insert("transfer-encoding", "chunked".parse().unwrap());
    h.insert("x-served-by", "weir".parse().unwrap());
    c.conn
        .send_response(1, StatusCode::NOT_FOUND, &h, true)
        .unwrap();
    let fs = c.frames();
    assert_eq!(fs.len(), 1);
    assert_eq!(fs[0].flags, flag::END_HEADERS | flag::END_STREAM);
    let got = c.decode(&fs[0].payload);
    assert_eq!(
        got,
        vec![
            (":status".into(), "404".into()),
            ("content-type".into(), "text/plain".into()),
            ("x-served-by".into(), "weir".into()),
        ]
    );
    assert_eq!(c.conn.active_streams(), 0);
}

#[test]
fn a_large_head_goes_out_in_continuation_frames() {
    let mut c = started(Config::default());
    let mut h = HeaderMap::new();
    for i in 0..40 {
        let name: http::HeaderName = format!("x-h{i}").parse().unwrap();
        h.insert(name, "v".repeat(1000).parse().unwrap());
    }
    c.conn.send_response(1, StatusCode::OK, &h, true).unwrap();
    let fs = c.frames();
    assert!(fs.len() >= 3);
    assert_eq!(fs[0].kind, kind::HEADERS);
    assert!(
        fs[1..]
            .iter()
            .all(|f| f.kind == kind::CONTINUATION && f.payload.len() <= 16_384)
    );
    assert!(fs.last().unwrap().flags & flag::END_HEADERS != 0);
    let block: Vec<u8> = fs.iter().flat_map(|f| f.payload.clone()).collect();
    assert_eq!(c.decode(&block).len(), 41);
}

#[test]
fn bodies_respect_max_frame_size_and_the_windows() {
    let mut c = started(Config {
        max_send_buffer_per_stream: 1 << 20,
        ..Config::default()
    });
    c.send(&window_update(0, 100_000));
    c.send(&window_update(1, 100_000));
    c.conn
        .send_response(1, StatusCode::OK, &HeaderMap::new(), false)
        .unwrap();
    c.conn
        .send_data(1, Bytes::from(vec![1u8; 200_000]), true)
        .unwrap();
    let fs = c.frames();
    let d = data_frames(&fs);
    assert!(d.iter().all(|f| f.payload.len() <= 16_384));
    let sent: usize = d.iter().map(|f| f.payload.len()).sum();
    assert_eq!(sent, 165_535, "the stream window: 65,535 + 100,000");
    assert!(d.iter().all(|f| f.flags & flag::END_STREAM == 0));
    // A bigger MAX_FRAME_SIZE from the client, and more window: the rest, ending the stream.
    c.send(&settings(&[(setting::MAX_FRAME_SIZE, 65_536)]));
    c.send(&window_update(0, 100_000));
    c.send(&window_update(1, 100_000));
    let fs = c.frames();
    let d = data_frames(&fs);
    assert!(d.iter().any(|f| f.payload.len() > 16_384));
    assert_eq!(d.iter().map(|f| f.payload.len()).sum::<usize>(), 34_465);
    assert_eq!(d.last().unwrap().flags, flag::END_STREAM);
    assert_eq!(c.conn.active_streams(), 0);
}

#[test]
fn the_connection_window_is_shared_and_waits_for_its_update() {
    let mut c = Client::new(Config::default());
    c.request(1, GET, true);
    c.request(3, GET, true);
    c.events();
    for id in [1, 3] {
        c.conn
            .send_response(id, StatusCode::OK, &HeaderMap::new(), false)
            .unwrap();
        c.conn
            .send_data(id, Bytes::from(vec![0u8; 40_000]), true)
            .unwrap();
    }
    let fs = c.frames();
    assert_eq!(
        data_frames(&fs)
            .iter()
            .map(|f| f.payload.len())
            .sum::<usize>(),
        65_535
    );
    let streams: std::collections::BTreeSet<u32> =
        data_frames(&fs).iter().map(|f| f.stream).collect();
    assert_eq!(streams.len(), 2, "round robin: both streams got some");
    assert!(!c.conn.wants_write());
    c.send(&window_update(0, 20_000));
    assert!(c.conn.wants_write());
    let fs = c.frames();
    assert_eq!(
        data_frames(&fs)
            .iter()
            .map(|f| f.payload.len())
            .sum::<usize>(),
        14_465
    );
    assert_eq!(c.conn.active_streams(), 0);
}

#[test]
fn send_capacity_is_back_pressure_and_writable_says_when_it_returns() {
    let mut c = started(Config {
        max_send_buffer_per_stream: 1000,
        ..Config::default()
    });
    c.conn
        .send_response(1, StatusCode::OK, &HeaderMap::new(), false)
        .unwrap();
    assert_eq!(c.conn.send_capacity(1), 1000);
    c.conn
        .send_data(1, Bytes::from(vec![0u8; 1000]), false)
        .unwrap();
    assert_eq!(c.conn.send_capacity(1), 0);
    c.frames();
    assert!(matches!(c.events()[..], [Event::Writable { id: 1 }]));
    assert_eq!(c.conn.send_capacity(1), 1000);
    // The stream window runs out: capacity follows the window.
    c.conn
        .send_data(1, Bytes::from(vec![0u8; 1000]), false)
        .unwrap();
    let mut sent = 2000;
    while sent < 65_535 {
        c.frames();
        c.events();
        let n = c.conn.send_capacity(1).min(65_535 - sent);
        c.conn
            .send_data(1, Bytes::from(vec![0u8; n]), false)
            .unwrap();
        sent += n;
    }
    c.frames();
    assert_eq!(c.conn.send_capacity(1), 0);
    c.events();
    c.send(&window_update(1, 10));
    assert!(matches!(c.events()[..], [Event::Writable { id: 1 }]));
    assert_eq!(c.conn.send_capacity(1), 10);
}

#[test]
fn a_client_that_does_not_read_gets_bounded_output() {
    let mut c = started(Config::default());
    c.send(&window_update(0, 10_000_000));
    c.send(&window_update(1, 10_000_000));
    c.conn
        .send_response(1, StatusCode::OK, &HeaderMap::new(), false)
        .unwrap();
    c.conn
        .send_data(1, Bytes::from(vec![0u8; 1 << 20]), true)
        .unwrap();
    let mut out = Vec::new();
    assert!(c.conn.poll_transmit(&mut out));
    assert!(out.len() <= super::super::conn::CHUNK);
    // Nothing else is framed while the driver has not taken more.
    assert!(c.conn.unsent() <= super::super::conn::CHUNK);
    assert_eq!(c.conn.send_capacity(1), 0);
}

#[test]
fn trailers_follow_the_data_and_end_the_stream() {
    let mut c = started(Config::default());
    c.conn
        .send_response(1, StatusCode::OK, &HeaderMap::new(), false)
        .unwrap();
    c.conn
        .send_data(1, Bytes::from_static(b"body"), false)
        .unwrap();
    let mut t = HeaderMap::new();
    t.insert("grpc-status", "0".parse().unwrap());
    c.conn.send_trailers(1, &t).unwrap();
    let fs = c.frames();
    let kinds: Vec<(u8, u8)> = fs.iter().map(|f| (f.kind, f.flags)).collect();
    assert_eq!(
        kinds,
        vec![
            (kind::HEADERS, flag::END_HEADERS),
            (kind::DATA, 0),
            (kind::HEADERS, flag::END_HEADERS | flag::END_STREAM)
        ]
    );
    c.decode(&fs[0].payload);
    assert_eq!(
        c.decode(&fs[2].payload),
        vec![("grpc-status".into(), "0".into())]
    );
    assert_eq!(c.conn.active_streams(), 0);
}

#[test]
fn trailers_without_data_need_no_empty_data_frame() {
    let mut c = started(Config::default());
    c.conn
        .send_response(1, StatusCode::OK, &HeaderMap::new(), false)
        .unwrap();
    let mut t = HeaderMap::new();
    t.insert("grpc-status", "0".parse().unwrap());
    c.conn.send_trailers(1, &t).unwrap();
    let kinds: Vec<u8> = c.frames().iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![kind::HEADERS, kind::HEADERS]);
}

#[test]
fn a_response_before_the_request_body_resets_the_request_side() {
    let mut c = Client::new(Config::default());
    c.request(1, POST, false);
    c.events();
    c.conn
        .send_response(1, StatusCode::OK, &HeaderMap::new(), true)
        .unwrap();
    let fs = c.frames();
    assert_eq!(resets(&fs), vec![(1, Reason::NO_ERROR)]);
    assert!(matches!(
        c.events()[..],
        [Event::Reset {
            id: 1,
            code: Reason::NO_ERROR
        }]
    ));
    c.send(&data(1, b"late", true));
    assert!(c.frames().is_empty());
    assert!(!c.conn.is_closed());
}

#[test]
fn a_smaller_client_table_size_is_signalled_before_the_next_head() {
    let mut c = Client::new(Config::default());
    c.send(&settings(&[(setting::HEADER_TABLE_SIZE, 0)]));
    c.request(1, GET, true);
    c.events();
    c.frames();
    let mut h = HeaderMap::new();
    h.insert("x-a", "1".parse().unwrap());
    c.conn.send_response(1, StatusCode::OK, &h, true).unwrap();
    let fs = c.frames();
    assert_eq!(fs[0].payload[0], 0x20, "a size update to 0 first");
    assert_eq!(c.decode(&fs[0].payload).len(), 2);
}

#[test]
fn reset_by_the_driver_sends_rst_stream_and_forgets_the_stream() {
    let mut c = started(Config::default());
    c.conn.reset(1, Reason::INTERNAL_ERROR);
    assert_eq!(resets(&c.frames()), vec![(1, Reason::INTERNAL_ERROR)]);
    assert_eq!(c.conn.active_streams(), 0);
    assert!(c.events().is_empty());
    c.conn.reset(1, Reason::INTERNAL_ERROR);
    assert!(c.frames().is_empty());
}

#[test]
fn a_connection_error_resets_every_stream_for_the_driver() {
    let mut c = Client::new(Config::default());
    c.request(1, GET, true);
    c.request(3, GET, false);
    c.events();
    c.send(&window_update(0, 0));
    let evs = c.events();
    assert!(matches!(
        evs[..],
        [
            Event::Reset {
                id: 1,
                code: Reason::PROTOCOL_ERROR
            },
            Event::Reset {
                id: 3,
                code: Reason::PROTOCOL_ERROR
            },
            Event::GoAway {
                error: Some(Reason::PROTOCOL_ERROR)
            }
        ]
    ));
    assert_eq!(c.conn.error_detail(), Some("a zero WINDOW_UPDATE"));
    assert_eq!(
        c.conn
            .send_response(1, StatusCode::OK, &HeaderMap::new(), true),
        Err(StreamError::Closed)
    );
    assert_eq!(c.conn.poll_timeout(), None);
}

/// The core's cost per request (GET in, 200 with a small body out), for profiling:
/// `cargo test -p lb-l7 --release --lib h2conn::tests::responses::cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn cost_per_request() {
    let mut c = Client::new(Config::default());
    let fields: Vec<(&str, &str)> = vec![
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "bench.example"),
        (":path", "/index.html"),
        ("user-agent", "h2load nghttp2/1.59"),
        ("accept", "*/*"),
        ("accept-encoding", "gzip, deflate, br"),
    ];
    let mut h = HeaderMap::new();
    h.insert("content-type", "text/plain".parse().unwrap());
    h.insert("content-length", "13".parse().unwrap());
    h.insert("date", "Sat, 05 Dec 2026 06:40:00 GMT".parse().unwrap());
    h.insert("server", "weir".parse().unwrap());
    let body = Bytes::from_static(b"hello, world\n");
    let n = 200_000u32;
    let mut out = Vec::with_capacity(1 << 16);
    // After the first request every field is in the client's dynamic table: one block serves.
    c.headers(1, &fields, true);
    let mut frame = c.headers(1, &fields, true);
    let (mut t_in, mut t_app, mut t_out) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let t = Instant::now();
    for i in 0..n {
        let id = 2 * i + 1;
        frame[5..9].copy_from_slice(&id.to_be_bytes());
        if i % 1000 == 0 {
            c.conn.recv(&window_update(0, 13_000), c.now);
        }
        let t0 = Instant::now();
        c.conn.recv(&frame, c.now);
        let Some(Event::Request { id, .. }) = c.conn.poll_event() else {
            panic!("a request");
        };
        let t1 = Instant::now();
        c.conn.send_response(id, StatusCode::OK, &h, false).unwrap();
        c.conn.send_data(id, body.clone(), true).unwrap();
        let t2 = Instant::now();
        out.clear();
        while c.conn.poll_transmit(&mut out) {}
        t_out += t2.elapsed();
        t_app += t2 - t1;
        t_in += t1 - t0;
        assert_eq!(c.conn.active_streams(), 0, "{id}");
    }
    let per = t.elapsed() / n;
    println!(
        "h2conn: {per:?} per request (GET in, 200 + 13 bytes out): in {:?}, respond {:?}, transmit {:?}",
        t_in / n,
        t_app / n,
        t_out / n
    );
}
