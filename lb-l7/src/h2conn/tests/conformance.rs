//! RFC 9113's MUSTs a server enforces, one test per rule or small group (h2spec's sections
//! in the names).

use super::*;

#[test]
fn s3_4_our_settings_and_window_update_come_first() {
    let cfg = Config::default();
    let mut c = Client::raw(cfg.clone());
    let fs = c.frames();
    assert_eq!(fs[0].kind, kind::SETTINGS);
    let vals: Vec<(u16, u32)> = fs[0]
        .payload
        .chunks(6)
        .map(|p| (u16::from_be_bytes([p[0], p[1]]), frame::read_u32(&p[2..])))
        .collect();
    assert!(vals.contains(&(setting::MAX_CONCURRENT_STREAMS, 128)));
    assert!(vals.contains(&(setting::INITIAL_WINDOW_SIZE, cfg.initial_window_size)));
    assert!(vals.contains(&(setting::MAX_FRAME_SIZE, 16_384)));
    assert!(vals.contains(&(setting::MAX_HEADER_LIST_SIZE, 65_536)));
    assert_eq!(fs[1].kind, kind::WINDOW_UPDATE);
    assert_eq!(fs[1].code(), cfg.connection_window - 65_535);
}

#[test]
fn s3_4_the_preface_may_come_byte_by_byte() {
    let mut c = Client::raw(Config::default());
    c.frames();
    let mut hello = frame::PREFACE.to_vec();
    hello.extend(settings(&[(0x99, 1)]));
    for b in hello {
        c.send(&[b]);
    }
    let fs = c.frames();
    assert_eq!(fs.len(), 1);
    assert_eq!((fs[0].kind, fs[0].flags), (kind::SETTINGS, flag::ACK));
}

#[test]
fn s3_4_a_wrong_preface_is_a_protocol_error() {
    let mut c = Client::raw(Config::default());
    c.send(b"GET / HTTP/1.1\r\n\r\n");
    assert_conn_error(&mut c, Reason::PROTOCOL_ERROR);
}

#[test]
fn s3_4_the_first_frame_must_be_settings() {
    let mut c = Client::raw(Config::default());
    let mut b = frame::PREFACE.to_vec();
    b.extend(ping([0; 8]));
    c.send(&b);
    assert_conn_error(&mut c, Reason::PROTOCOL_ERROR);
}

#[test]
fn s4_1_unknown_frame_types_and_flags_are_ignored() {
    let mut c = Client::new(Config::default());
    c.send(&raw(0x20, 0xff, 0, b"whatever"));
    c.send(&raw(kind::PING, 0xfe, 0, &[1; 8]));
    let fs = c.frames();
    assert_eq!(fs.len(), 1);
    assert_eq!(
        (fs[0].kind, fs[0].flags, &fs[0].payload[..]),
        (kind::PING, flag::ACK, &[1u8; 8][..])
    );
}

#[test]
fn s4_2_a_frame_over_max_frame_size_is_refused_from_its_header() {
    let mut c = Client::new(Config::default());
    let mut head = Vec::new();
    frame::write_head(&mut head, 16_385, kind::DATA, 0, 1);
    c.send(&head);
    assert_conn_error(&mut c, Reason::FRAME_SIZE_ERROR);
}

#[test]
fn s4_3_a_broken_header_block_is_a_compression_error() {
    let mut c = Client::new(Config::default());
    c.send(&raw(
        kind::HEADERS,
        flag::END_HEADERS,
        1,
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ));
    assert_conn_error(&mut c, Reason::COMPRESSION_ERROR);
}

#[test]
fn s5_1_idle_stream_frames_other_than_headers_and_priority() {
    for f in [
        data(1, b"x", true),
        rst(1, Reason::CANCEL),
        window_update(1, 100),
        raw(kind::CONTINUATION, flag::END_HEADERS, 1, &[0x82]),
    ] {
        let mut c = Client::new(Config::default());
        c.send(&f);
        assert_conn_error(&mut c, Reason::PROTOCOL_ERROR);
    }
    let mut c = Client::new(Config::default());
    c.send(&priority(3, 0));
    assert!(c.frames().is_empty());
    c.request(1, GET, true);
    expect_request(&mut c);
}

#[test]
fn s5_1_half_closed_remote_data_and_headers_are_stream_closed() {
    let mut c = Client::new(Config::default());
    c.request(1, GET, true);
    expect_request(&mut c);
    c.send(&data(1, b"late", true));
    assert_stream_error(&mut c, 1, Reason::STREAM_CLOSED);
    assert!(matches!(
        c.events()[..],
        [Event::Reset {
            id: 1,
            code: Reason::STREAM_CLOSED
        }]
    ));
    let mut c = Client::new(Config::default());
    c.request(1, GET, true);
    c.events();
    c.request(1, GET, true);
    assert_stream_error(&mut c, 1, Reason::STREAM_CLOSED);
}

#[test]
fn s5_1_closed_after_the_client_reset_it_is_a_stream_error() {
    let mut c = Client::new(Config::default());
    c.request(1, GET, false);
    c.events();
    c.send(&rst(1, Reason::CANCEL));
    assert!(matches!(
        c.events()[..],
        [Event::Reset {
            id: 1,
            code: Reason::CANCEL
        }]
    ));
    c.send(&data(1, b"test", true));
    assert_stream_error(&mut c, 1, Reason::STREAM_CLOSED);
    // Once we answered STREAM_CLOSED, later frames on it are ignored.
    c.send(&data(1, b"test", true));
    assert!(c.frames().is_empty());
    let mut c = Client::new(Config::default());
    c.request(1, GET, false);
    c.send(&rst(1, Reason::CANCEL));
    c.request(1, GET, true);
    assert_stream_error(&mut c, 1, Reason::STREAM_CLOSED);
}

#[test]
fn s5_1_closed_after_both_ended_is_a_connection_error() {
    for late_headers in [false, true] {
        let mut c = Client::new(Config::default());
        c.request(1, GET, true);
        c.events();
        c.conn
            .send_response(1, StatusCode::OK, &HeaderMap::new(), true)
            .unwrap();
        assert_eq!(c.conn.active_streams(), 0);
        c.frames();
        if late_headers {
            c.request(1, GET, true);
        } else {
            c.send(&data(1, b"test", true));
        }
        assert_conn_error(&mut c, Reason::STREAM_CLOSED);
    }
}

#[test]
fn s5_1_frames_on_a_stream_we_reset_are_ignored() {
    let mut c = Client::new(small());
    c.request(1, POST, false);
    c.events();
    c.conn.reset(1, Reason::CANCEL);
    assert_eq!(resets(&c.frames()), vec![(1, Reason::CANCEL)]);
    c.send(&data(1, &[0; 50], false));
    c.send(&window_update(1, 10));
    c.send(&priority(1, 0));
    assert!(c.frames().is_empty());
    assert!(c.events().is_empty());
    assert!(!c.conn.is_closed());
}

#[test]
fn s5_1_1_stream_ids_must_be_odd_and_increasing() {
    let mut c = Client::new(Config::default());
    c.request(2, GET, true);
    assert_conn_error(&mut c, Reason::PROTOCOL_ERROR);
    let mut c = Client::new(Config::default());
    c.request(5, GET, true);
    c.request(3, GET, true);
    assert_conn_error(&mut c, Reason::PROTOCOL_ERROR);
}

#[test]
fn s5_1_2_streams_over_the_limit_are_refused() {
    let cfg = Config {
        max_concurrent_streams: 2,
        ..Config::default()
    };
    let mut c = Client::new(cfg);
    c.request(1, GET, true);
    c.request(3, GET, true);
    c.request(5, GET, true);
    assert_stream_error(&mut c, 5, Reason::REFUSED_STREAM);
    let evs = c.events();
    assert_eq!(evs.len(), 3, "{evs:?}");
    assert!(matches!(
        evs[2],
        Event::Refused {
            id: 5,
            status: None,
            ..
        }
    ));
    assert_eq!(c.conn.active_streams(), 2);
    c.conn
        .send_response(1, StatusCode::OK, &HeaderMap::new(), true)
        .unwrap();
    c.request(7, GET, true);
    assert_eq!(c.conn.active_streams(), 2);
}

#[test]
fn s5_3_1_a_stream_depending_on_itself_is_a_stream_error() {
    let mut c = Client::new(Config::default());
    c.send(&priority(1, 1));
    assert_stream_error(&mut c, 1, Reason::PROTOCOL_ERROR);
    let mut c = Client::new(Config::default());
    let mut p = 3u32.to_be_bytes().to_vec();
    p.push(15);
    p.extend(c.block(GET));
    c.send(&raw(
        kind::HEADERS,
        flag::END_HEADERS | flag::END_STREAM | flag::PRIORITY,
        3,
        &p,
    ));
    assert_stream_error(&mut c, 3, Reason::PROTOCOL_ERROR);
    assert_refused(&mut c, 3, None);
    // HPACK stayed in step: the next request decodes.
    c.request(5, GET, true);
    expect_request(&mut c);
}

#[test]
fn s5_5_unknown_frames_inside_a_header_block_are_an_error() {
    let mut c = Client::new(Config::default());
    let b = c.block(GET);
    c.send(&raw(kind::HEADERS, flag::END_STREAM, 1, &b));
    c.send(&raw(0x20, 0, 1, b"x"));
    assert_conn_error(&mut c, Reason::PROTOCOL_ERROR);
}

#[test]
fn s6_1_data_rules() {
    let mut c = Client::new(Config::default());
    c.send(&data(0, b"x", true));
    assert_conn_error(&mut c, Reason::PROTOCOL_ERROR);
    let mut c = Client::new(Config::default());
    c.request(1, POST, false);
    c.events();
    c.send(&raw(kind::DATA, flag::PADDED, 1, &[5, b'a', b'b', 0, 0]));
    assert_conn_error(&mut c, Reason::PROTOCOL_ERROR);
}

#[test]
fn s6_1_padded_data_and_headers_are_unpadded() {
    let mut c = Client::new(Config::default());
    let b = c.block(POST);
    let mut p = vec![3];
    p.extend(&b);
    p.extend([0, 0, 0]);
    c.send(&raw(kind::HEADERS, flag::END_HEADERS | flag::PADDED, 1, &p));
    expect_request(&mut c);
    c.send(&raw(
        kind::DATA,
        flag::PADDED | flag::END_STREAM,
        1,
        &[2, b'h', b'i', 0, 0],
    ));
    match &c.events()[..] {
        [
            Event::Data {
                id: 1,
                data,
                end_stream: true,
            },
        ] => assert_eq!(&data[..], b"hi"),
        e => panic!("{e:?}"),
    }
}

#[test]
fn s6_2_headers_rules() {
    let mut c = Client::new(Config::default());
    c.request(0, GET, true);
    assert_conn_error(&mut c, Reason::PROTOCOL_ERROR);
    let mut c = Client::new(Config::default());
    let b = c.block(GET);
    let mut p = vec![200];
    p.extend(&b);
    c.send(&raw(kind::HEADERS, flag::END_HEADERS | flag::PADDED, 1, &p));
    assert_conn_error(&mut c, Reason::PROTOCOL_ERROR);
}

/// §4.2: a frame too small to contain its mandatory fields — a PADDED frame without its pad
/// length byte, a HEADERS frame with the PRIORITY flag and fewer than 5 bytes — is a
/// FRAME_SIZE_ERROR (it was answered PROTOCOL_ERROR, the code for padding too long).
#[test]
fn s4_2_a_frame_too_small_for_its_fields_is_a_frame_size_error() {
    for (kind, flags, payload) in [
        (
            kind::HEADERS,
            flag::END_HEADERS | flag::PRIORITY,
            &[0u8, 0, 0][..],
        ),
        (kind::HEADERS, flag::END_HEADERS | flag::PADDED, &[][..]),
        (
            kind::HEADERS,
            flag::END_HEADERS | flag::PADDED | flag::PRIORITY,
            &[0, 0, 0, 0][..],
        ),
        (kind::DATA, flag::PADDED, &[][..]),
    ] {
        let mut c = Client::new(Config::default());
        c.request(1, POST, false);
        c.events();
        let id = if kind == kind::DATA { 1 } else { 3 };
        c.send(&raw(kind, flags, id, payload));
        assert_conn_error(&mut c, Reason::FRAME_SIZE_ERROR);
    }
}

#[test]
fn s6_3_priority_rules() {
    let mut c = Client::new(Config::default());
    c.send(&raw(kind::PRIORITY, 0, 1, &[0, 0, 0, 0]));
    assert_stream_error(&mut c, 1, Reason::FRAME_SIZE_ERROR);
    let mut c = Client::new(Config::default());
    c.send(&priority(0, 1));
    assert_conn_error(&mut c, Reason::PROTOCOL_ERROR);
    // Accepted on an open and on a half-closed stream.
    let mut c = Client::new(Config::default());
    c.request(1, GET, false);
    c.send(&priority(1, 0));
    c.request(3, GET, true);
    c.send(&priority(3, 1));
    assert!(c.frames().is_empty());
}

#[test]
fn s6_4_rst_stream_rules() {
    let mut c = Client::new(Config::default());
    c.send(&rst(0, Reason::CANCEL));
    assert_conn_error(&mut c, Reason::PROTOCOL_ERROR);
    let mut c = Client::new(Config::default());
    c.request(1, GET, false);
    c.send(&raw(kind::RST_STREAM, 0, 1, &[0, 0, 8]));
    assert_conn_error(&mut c, Reason::FRAME_SIZE_ERROR);
}

#[test]
fn s6_4_a_reset_before_the_request_was_polled_leaves_no_trace() {
    let mut c = Client::new(Config::default());
    c.request(1, POST, false);
    c.send(&data(1, b"abc", false));
    c.send(&rst(1, Reason::CANCEL));
    assert!(c.events().is_empty());
    assert_eq!(c.conn.active_streams(), 0);
}

#[test]
fn s6_5_settings_rules() {
    let cases: Vec<(Vec<u8>, Reason)> = vec![
        (
            raw(kind::SETTINGS, flag::ACK, 0, &[0; 6]),
            Reason::FRAME_SIZE_ERROR,
        ),
        (raw(kind::SETTINGS, 0, 1, &[]), Reason::PROTOCOL_ERROR),
        (raw(kind::SETTINGS, 0, 0, &[0; 5]), Reason::FRAME_SIZE_ERROR),
        (
            settings(&[(setting::ENABLE_PUSH, 2)]),
            Reason::PROTOCOL_ERROR,
        ),
        (
            settings(&[(setting::INITIAL_WINDOW_SIZE, 1 << 31)]),
            Reason::FLOW_CONTROL_ERROR,
        ),
        (
            settings(&[(setting::MAX_FRAME_SIZE, 16_383)]),
            Reason::PROTOCOL_ERROR,
        ),
        (
            settings(&[(setting::MAX_FRAME_SIZE, 1 << 24)]),
            Reason::PROTOCOL_ERROR,
        ),
    ];
    for (f, code) in cases {
        let mut c = Client::new(Config::default());
        c.send(&f);
        assert_conn_error(&mut c, code);
    }
    let mut c = Client::new(Config::default());
    c.send(&settings(&[
        (0xff, 7),
        (setting::ENABLE_PUSH, 0),
        (setting::MAX_FRAME_SIZE, 1 << 20),
    ]));
    let fs = c.frames();
    assert_eq!(fs.len(), 1);
    assert_eq!(
        (fs[0].kind, fs[0].flags, fs[0].payload.len()),
        (kind::SETTINGS, flag::ACK, 0)
    );
}

#[test]
fn s6_7_ping_rules() {
    let mut c = Client::new(Config::default());
    c.send(&ping(*b"01234567"));
    c.send(&raw(kind::PING, flag::ACK, 0, b"ackackac"));
    let fs = c.frames();
    assert_eq!(fs.len(), 1);
    assert_eq!(
        (fs[0].kind, fs[0].flags, &fs[0].payload[..]),
        (kind::PING, flag::ACK, &b"01234567"[..])
    );
    let mut c = Client::new(Config::default());
    c.send(&raw(kind::PING, 0, 1, &[0; 8]));
    assert_conn_error(&mut c, Reason::PROTOCOL_ERROR);
    let mut c = Client::new(Config::default());
    c.send(&raw(kind::PING, 0, 0, &[0; 6]));
    assert_conn_error(&mut c, Reason::FRAME_SIZE_ERROR);
}

#[test]
fn s6_8_goaway_from_the_client_ends_the_connection_after_its_streams() {
    let mut c = Client::new(Config::default());
    c.request(1, GET, true);
    c.events();
    let mut p = 0u32.to_be_bytes().to_vec();
    p.extend(Reason::NO_ERROR.0.to_be_bytes());
    c.send(&raw(kind::GOAWAY, 0, 0, &p));
    assert!(matches!(c.events()[..], [Event::GoAway { error: None }]));
    assert!(!c.conn.is_closed());
    c.conn
        .send_response(1, StatusCode::OK, &HeaderMap::new(), true)
        .unwrap();
    assert!(c.conn.is_closed());
    let mut c = Client::new(Config::default());
    c.send(&raw(kind::GOAWAY, 0, 1, &p));
    assert_conn_error(&mut c, Reason::PROTOCOL_ERROR);
    let mut c = Client::new(Config::default());
    let mut p = 0u32.to_be_bytes().to_vec();
    p.extend(Reason::ENHANCE_YOUR_CALM.0.to_be_bytes());
    c.send(&raw(kind::GOAWAY, 0, 0, &p));
    assert!(matches!(
        c.events()[..],
        [Event::GoAway {
            error: Some(Reason::ENHANCE_YOUR_CALM)
        }]
    ));
}

#[test]
fn s6_8_our_graceful_goaway_lets_open_streams_finish() {
    let mut c = Client::new(Config::default());
    c.request(1, GET, true);
    c.events();
    c.conn.go_away();
    // Step one: GOAWAY(2^31-1) and a PING; nothing refused yet.
    let fs = c.frames();
    let g = fs.iter().find(|f| f.kind == kind::GOAWAY).unwrap();
    assert_eq!(frame::read_u32(&g.payload), (1 << 31) - 1);
    assert_eq!(g.code(), 0);
    let p = fs.iter().find(|f| f.kind == kind::PING).unwrap();
    assert_eq!(p.flags, 0);
    let opaque: [u8; 8] = p.payload.clone().try_into().unwrap();
    // A stream the client sent before it saw the GOAWAY: processed.
    c.request(3, GET, true);
    assert!(
        matches!(c.events()[..], [Event::Request { id: 3, .. }]),
        "a stream on the wire during the first GOAWAY is served"
    );
    // Step two at the PING's ACK: GOAWAY(last id); later streams are not processed.
    c.send(&raw(kind::PING, flag::ACK, 0, &opaque));
    let fs = c.frames();
    let g = fs.iter().find(|f| f.kind == kind::GOAWAY).unwrap();
    assert_eq!(frame::read_u32(&g.payload), 3);
    assert_eq!(g.code(), 0);
    c.request(5, GET, true);
    assert!(
        c.events().is_empty(),
        "a stream after the second GOAWAY is not processed"
    );
    assert!(!c.conn.is_closed());
    for id in [1, 3] {
        c.conn
            .send_response(id, StatusCode::OK, &HeaderMap::new(), true)
            .unwrap();
    }
    assert!(c.conn.is_closed());
}

/// The frame kinds (and streams) of `fs`, for order checks.
fn kinds(fs: &[F]) -> Vec<(u8, u32)> {
    fs.iter().map(|f| (f.kind, f.stream)).collect()
}

#[test]
fn s6_8_the_first_goaway_goes_ahead_of_responses_not_yet_transmitted() {
    // The request limit is reached while a response is queued: the client must read the
    // GOAWAY first, or it opens a request in the slot the response frees that it then may not
    // send (nghttp2 fails it REFUSED_STREAM; e2e_reload's storm lost requests so).
    let mut c = Client::new(Config::default());
    c.request(1, GET, true);
    c.request(3, GET, true);
    c.events();
    c.conn
        .send_response(1, StatusCode::OK, &HeaderMap::new(), true)
        .unwrap();
    c.conn.go_away();
    c.conn
        .send_response(3, StatusCode::OK, &HeaderMap::new(), true)
        .unwrap();
    assert_eq!(
        kinds(&c.frames()),
        [
            (kind::GOAWAY, 0),
            (kind::PING, 0),
            (kind::HEADERS, 1),
            (kind::HEADERS, 3)
        ]
    );
}

#[test]
fn s6_8_the_first_goaway_waits_for_a_frame_and_header_block_a_transmit_began() {
    // A ~100 KB response head: HEADERS and CONTINUATIONs past one transmit (64 KiB), so the
    // first transmit ends inside a CONTINUATION. The GOAWAY goes after that header block (its
    // frames stay together, §6.10) and ahead of the next response.
    let mut c = Client::new(Config::default());
    c.request(1, GET, true);
    c.request(3, GET, true);
    c.events();
    let mut big = HeaderMap::new();
    big.insert("x-big", "a".repeat(160_000).parse().unwrap());
    c.conn.send_response(1, StatusCode::OK, &big, true).unwrap();
    c.conn
        .send_response(3, StatusCode::OK, &HeaderMap::new(), true)
        .unwrap();
    let mut bytes = Vec::new();
    assert!(c.conn.poll_transmit(&mut bytes));
    assert_eq!(
        bytes.len(),
        super::super::conn::CHUNK,
        "a transmit ends inside a frame"
    );
    c.conn.go_away();
    loop {
        let mut chunk = Vec::new();
        if !c.conn.poll_transmit(&mut chunk) {
            break;
        }
        bytes.extend(chunk);
    }
    let fs = parse(&bytes);
    let k = kinds(&fs);
    let goaway_at = k.iter().position(|&(t, _)| t == kind::GOAWAY).unwrap();
    assert!(
        k[1..goaway_at]
            .iter()
            .all(|&(t, s)| (t, s) == (kind::CONTINUATION, 1)),
        "{k:?}"
    );
    assert_eq!(
        fs[goaway_at - 1].flags & flag::END_HEADERS,
        flag::END_HEADERS,
        "the GOAWAY follows the whole header block: {k:?}"
    );
    assert_eq!(
        k[goaway_at..],
        [(kind::GOAWAY, 0), (kind::PING, 0), (kind::HEADERS, 3)]
    );
}

#[test]
fn s6_8_goaway_at_once_names_the_last_id_without_a_ping() {
    let mut c = Client::new(Config::default());
    c.request(1, GET, true);
    c.events();
    c.conn.go_away_at_once();
    let fs = c.frames();
    assert!(fs.iter().all(|f| f.kind != kind::PING), "{fs:?}");
    let g = fs.iter().find(|f| f.kind == kind::GOAWAY).unwrap();
    assert_eq!(frame::read_u32(&g.payload), 1);
    c.request(3, GET, true);
    assert!(c.events().is_empty(), "a stream after it is not processed");
}

#[test]
fn s6_8_graceful_goaway_waits_for_the_ping_ack_before_closing() {
    let mut c = Client::new(Config::default());
    c.conn.go_away();
    c.conn.go_away();
    let fs = c.frames();
    assert_eq!(
        fs.iter().filter(|f| f.kind == kind::GOAWAY).count(),
        1,
        "one first step: {fs:?}"
    );
    assert!(
        !c.conn.is_closed(),
        "no stream, but the client may have streams on the wire"
    );
    // A keep-alive-looking ACK with other data does not end the first step.
    c.send(&raw(kind::PING, flag::ACK, 0, &[0; 8]));
    assert!(c.frames().iter().all(|f| f.kind != kind::GOAWAY));
    let opaque: [u8; 8] = fs
        .iter()
        .find(|f| f.kind == kind::PING)
        .unwrap()
        .payload
        .clone()
        .try_into()
        .unwrap();
    c.send(&raw(kind::PING, flag::ACK, 0, &opaque));
    let fs = c.frames();
    let g = fs.iter().find(|f| f.kind == kind::GOAWAY).unwrap();
    assert_eq!(frame::read_u32(&g.payload), 0);
    assert!(c.conn.is_closed());
}

#[test]
fn s6_9_window_update_rules() {
    let cases: Vec<(Vec<u8>, Reason)> = vec![
        (window_update(0, 0), Reason::PROTOCOL_ERROR),
        (window_update(0, (1 << 31) - 1), Reason::FLOW_CONTROL_ERROR),
        (
            raw(kind::WINDOW_UPDATE, 0, 0, &[0, 0, 1]),
            Reason::FRAME_SIZE_ERROR,
        ),
    ];
    for (f, code) in cases {
        let mut c = Client::new(Config::default());
        c.send(&f);
        assert_conn_error(&mut c, code);
    }
    let mut c = Client::new(Config::default());
    c.request(1, GET, false);
    c.events();
    c.send(&window_update(1, 0));
    assert_stream_error(&mut c, 1, Reason::PROTOCOL_ERROR);
    let mut c = Client::new(Config::default());
    c.request(1, GET, false);
    c.events();
    c.send(&window_update(1, (1 << 31) - 1));
    assert_stream_error(&mut c, 1, Reason::FLOW_CONTROL_ERROR);
}

#[test]
fn s6_9_1_data_beyond_our_windows() {
    // The stream window: 100 bytes (small()); 101 is a stream error.
    let mut c = Client::new(small());
    c.request(1, POST, false);
    c.events();
    c.send(&data(1, &[0; 101], false));
    assert_stream_error(&mut c, 1, Reason::FLOW_CONTROL_ERROR);
    // The connection window: 65,535 over many streams.
    let cfg = Config {
        initial_window_size: 60_000,
        connection_window: 65_535,
        ..Config::default()
    };
    let mut c = Client::new(cfg);
    c.request(1, POST, false);
    c.request(3, POST, false);
    c.send(&data(1, &[0; 16_000], false));
    c.send(&data(1, &[0; 16_000], false));
    c.send(&data(3, &[0; 16_000], false));
    c.send(&data(3, &[0; 16_000], false));
    assert!(!c.conn.is_closed());
    c.send(&data(3, &[0; 2000], false));
    assert_conn_error(&mut c, Reason::FLOW_CONTROL_ERROR);
}

#[test]
fn s6_9_consumed_bytes_are_credited_back_in_batches() {
    let mut c = Client::new(small());
    c.request(1, POST, false);
    c.events();
    c.send(&data(1, &[7; 40], false));
    c.conn.release_capacity(1, 40);
    assert!(
        c.frames().is_empty(),
        "under half the stream window: no update yet"
    );
    c.send(&data(1, &[7; 40], false));
    c.conn.release_capacity(1, 40);
    let fs = c.frames();
    assert_eq!(fs.len(), 1);
    assert_eq!(
        (fs[0].kind, fs[0].stream, fs[0].code()),
        (kind::WINDOW_UPDATE, 1, 80)
    );
    // The stream window is back to 100: another 100 bytes are fine.
    c.send(&data(1, &[7; 100], true));
    assert_eq!(c.events().len(), 3);
    assert!(!c.conn.is_closed());
}

#[test]
fn s6_9_2_a_new_initial_window_moves_open_streams_windows() {
    let mut c = Client::new(Config::default());
    c.send(&settings(&[(setting::INITIAL_WINDOW_SIZE, 0)]));
    c.request(1, GET, true);
    c.events();
    c.frames();
    c.conn
        .send_response(1, StatusCode::OK, &HeaderMap::new(), false)
        .unwrap();
    assert_eq!(c.conn.send_capacity(1), 0);
    c.conn
        .send_data(1, Bytes::from_static(b"hello"), true)
        .unwrap();
    let fs = c.frames();
    assert_eq!(fs.iter().filter(|f| f.kind == kind::DATA).count(), 0);
    c.send(&settings(&[(setting::INITIAL_WINDOW_SIZE, 3)]));
    let fs = c.frames();
    let d: Vec<&F> = fs.iter().filter(|f| f.kind == kind::DATA).collect();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].payload, b"hel");
    c.send(&window_update(1, 2));
    let fs = c.frames();
    assert_eq!(
        (fs[0].kind, fs[0].flags, &fs[0].payload[..]),
        (kind::DATA, flag::END_STREAM, &b"lo"[..])
    );
    // A settings change that overflows an open stream's window.
    let mut c = Client::new(Config::default());
    c.request(1, GET, true);
    c.send(&window_update(1, (1 << 31) - 1 - 65_535));
    c.send(&settings(&[(setting::INITIAL_WINDOW_SIZE, 65_536)]));
    assert_conn_error(&mut c, Reason::FLOW_CONTROL_ERROR);
}

#[test]
fn s6_10_continuation_rules() {
    let mut c = Client::new(Config::default());
    let b = c.block(GET);
    let (x, y) = b.split_at(3);
    c.send(&raw(kind::HEADERS, flag::END_STREAM, 1, x));
    c.send(&raw(kind::CONTINUATION, 0, 1, &[]));
    c.send(&raw(kind::CONTINUATION, flag::END_HEADERS, 1, y));
    let parts = expect_request(&mut c);
    assert_eq!(parts.uri, "https://example.com/");
    // Interleaved: another stream's frame, or a CONTINUATION for another stream.
    for bad in [
        ping([0; 8]),
        raw(kind::CONTINUATION, flag::END_HEADERS, 3, y),
    ] {
        let mut c = Client::new(Config::default());
        let b = c.block(GET);
        c.send(&raw(kind::HEADERS, flag::END_STREAM, 1, &b[..3]));
        c.send(&bad);
        assert_conn_error(&mut c, Reason::PROTOCOL_ERROR);
    }
    // After a finished block.
    let mut c = Client::new(Config::default());
    c.request(1, GET, false);
    c.send(&raw(kind::CONTINUATION, flag::END_HEADERS, 1, &[0x82]));
    assert_conn_error(&mut c, Reason::PROTOCOL_ERROR);
}

#[test]
fn s8_1_trailers_must_end_the_stream_and_carry_no_pseudo_headers() {
    let mut c = Client::new(Config::default());
    c.request(1, POST, false);
    c.events();
    c.request(1, &[("grpc-status", "0")], true);
    match &c.events()[..] {
        [Event::Trailers { id: 1, trailers }] => assert_eq!(trailers["grpc-status"], "0"),
        e => panic!("{e:?}"),
    }
    let mut c = Client::new(Config::default());
    c.request(1, POST, false);
    c.events();
    c.request(1, &[("x", "y")], false);
    assert_stream_error(&mut c, 1, Reason::PROTOCOL_ERROR);
    let mut c = Client::new(Config::default());
    c.request(1, POST, false);
    c.events();
    c.request(1, &[(":path", "/")], true);
    assert_stream_error(&mut c, 1, Reason::PROTOCOL_ERROR);
}

#[test]
fn s8_1_content_length_must_match_the_data() {
    let with_cl = |cl: &'static str| {
        let mut v = POST.to_vec();
        v.push(("content-length", cl));
        v
    };
    let mut c = Client::new(Config::default());
    c.request(1, &with_cl("4"), false);
    c.events();
    c.send(&data(1, b"abcde", true));
    assert_stream_error(&mut c, 1, Reason::PROTOCOL_ERROR);
    let mut c = Client::new(Config::default());
    c.request(1, &with_cl("4"), false);
    c.events();
    c.send(&data(1, b"abc", true));
    assert_stream_error(&mut c, 1, Reason::PROTOCOL_ERROR);
    let mut c = Client::new(Config::default());
    c.request(1, &with_cl("4"), true);
    assert_stream_error(&mut c, 1, Reason::PROTOCOL_ERROR);
    let mut c = Client::new(Config::default());
    c.request(1, &with_cl("4"), false);
    c.send(&data(1, b"ab", false));
    c.send(&data(1, b"cd", true));
    assert_eq!(c.events().len(), 3);
    assert!(c.frames().is_empty());
}

#[test]
fn s8_3_malformed_requests_are_stream_errors_and_hpack_stays_in_step() {
    let bad: Vec<Vec<(&str, &str)>> = vec![
        vec![
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "a"),
            (":path", "/"),
            ("X-Up", "1"),
        ],
        vec![
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/"),
            ("connection", "close"),
        ],
        vec![
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/"),
            ("te", "gzip"),
        ],
        vec![
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/"),
            (":status", "200"),
        ],
        vec![(":method", "GET"), (":scheme", "https"), (":path", "")],
        vec![(":method", "GET"), (":scheme", "https")],
        vec![
            ("x", "1"),
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/"),
        ],
        vec![
            (":method", "GET"),
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/"),
        ],
    ];
    let mut c = Client::new(Config::default());
    let mut id = 1;
    for b in &bad {
        c.request(id, b, true);
        assert_stream_error(&mut c, id, Reason::PROTOCOL_ERROR);
        assert_refused(&mut c, id, None);
        id += 2;
    }
    c.request(id, GET, true);
    expect_request(&mut c);
}

#[test]
fn s8_5_connect_is_answered_405() {
    let mut c = Client::new(Config::default());
    c.request(1, &[(":method", "CONNECT"), (":authority", "x:443")], false);
    assert_refused(&mut c, 1, Some(405));
    let fs = c.frames();
    assert_eq!(fs[0].kind, kind::HEADERS);
    assert_eq!(
        c.decode(&fs[0].payload),
        vec![(":status".into(), "405".into())]
    );
    assert_eq!(resets(&fs), vec![(1, Reason::NO_ERROR)]);
    c.send(&data(1, b"ignored", false));
    assert!(c.frames().is_empty());
}

#[test]
fn s8_4_push_promise_from_a_client_is_a_protocol_error() {
    let mut c = Client::new(Config::default());
    c.request(1, GET, false);
    c.send(&raw(
        kind::PUSH_PROMISE,
        flag::END_HEADERS,
        1,
        &[0, 0, 0, 2, 0x82],
    ));
    assert_conn_error(&mut c, Reason::PROTOCOL_ERROR);
}

#[test]
fn a_request_builds_parts_and_the_body_arrives_as_slices() {
    let mut c = Client::new(Config::default());
    let mut f = POST.to_vec();
    f.extend([
        ("content-type", "text/plain"),
        ("cookie", "a=1"),
        ("cookie", "b=2"),
    ]);
    c.request(1, &f, false);
    let parts = expect_request(&mut c);
    assert_eq!(parts.method, http::Method::POST);
    assert_eq!(parts.uri, "https://example.com/upload");
    assert_eq!(parts.version, http::Version::HTTP_2);
    assert_eq!(parts.headers["content-type"], "text/plain");
    assert_eq!(parts.headers["cookie"], "a=1; b=2");
    assert!(!parts.headers.contains_key(":method"));
    let mut both = data(1, b"hello ", false);
    both.extend(data(1, b"world", true));
    c.send(&both);
    let evs = c.events();
    let body: Vec<u8> = evs
        .iter()
        .flat_map(|e| match e {
            Event::Data { data, .. } => data.to_vec(),
            _ => vec![],
        })
        .collect();
    assert_eq!(body, b"hello world");
    assert!(matches!(
        evs[1],
        Event::Data {
            end_stream: true,
            ..
        }
    ));
}

#[test]
fn stream_errors_on_closed_connections_and_unknown_streams() {
    let mut c = Client::new(Config::default());
    assert_eq!(
        c.conn.send_data(9, Bytes::new(), true),
        Err(StreamError::Closed)
    );
    c.request(1, GET, true);
    c.events();
    assert_eq!(
        c.conn.send_data(1, Bytes::new(), true),
        Err(StreamError::NotStarted)
    );
    c.conn
        .send_response(1, StatusCode::OK, &HeaderMap::new(), false)
        .unwrap();
    assert_eq!(
        c.conn
            .send_response(1, StatusCode::OK, &HeaderMap::new(), false),
        Err(StreamError::AlreadyStarted)
    );
    c.conn.send_data(1, Bytes::new(), true).unwrap();
    assert_eq!(
        c.conn.send_data(1, Bytes::new(), true),
        Err(StreamError::Closed)
    );
    assert_eq!(c.conn.send_capacity(1), 0);
}
