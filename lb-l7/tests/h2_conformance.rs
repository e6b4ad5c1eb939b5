//! HTTP/2 conformance and protection, at the socket level, for each HTTP/2 server engine.
//!
//! h2spec's server cases (generic, http2 and hpack sections; the list is the checklist, the
//! code is weir's own) driven by a raw frame writer (`common/h2frames.rs`) against a real
//! worker and a real HTTP/1.1 backend; then the protections (CONTINUATION, rapid reset,
//! MadeYouReset, SETTINGS/PING/empty DATA/WINDOW_UPDATE floods, concurrency, header list size,
//! idle deadlines), then real clients (Python `h2` in a hostile order, `httpx` over TLS).
//!
//! Each case runs once per engine: `engines!` below generates a module per engine
//! (`on_hyper::…`, `on_weir::…`), so a failing case names its engine. A case is an
//! `async fn(Ctx) -> Check`: it sends frames and checks the reaction RFC 9113 requires (a
//! connection error: GOAWAY with the code, or the connection closed; a stream error:
//! RST_STREAM with the code, or a connection error with it, as h2spec accepts; or a response),
//! each within a short limit, and fails with what was expected and what came.
//! The table of what is covered is docs/http2.md.

mod common;
#[path = "common/h2frames.rs"]
mod h2frames;

use common::*;
use h2frames::*;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// How long a reaction may take.
const T: Duration = Duration::from_secs(3);

/// What a case gets: the worker's plain (h2c) and TLS ports, the CA its certificate is signed
/// by (for 127.0.0.1), and the backend's request count.
#[derive(Clone)]
struct Ctx {
    engine: &'static str,
    port: u16,
    tls_port: u16,
    ca: std::path::PathBuf,
    hits: Arc<AtomicUsize>,
}

/// Memory-measuring cases run alone (write); the others share (read).
static LOCK: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The `[load_balancer]` line choosing the engine.
fn engine_key(engine: &str) -> &'static str {
    match engine {
        "hyper" => "http2_engine = \"hyper\"",
        "weir" => "http2_engine = \"weir\"",
        other => panic!("unknown engine {other}"),
    }
}

/// `[load_balancer]` settings a case needs besides the engine.
fn extra_for(case: &str) -> &'static str {
    match case {
        "p_connection_idle_deadline" | "p_stream_idle_deadline" => {
            "idle_timeout.timeout_seconds = 2"
        }
        _ => "",
    }
}

async fn run_case<F, Fut>(engine: &'static str, case: &'static str, alone: bool, f: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = Check>,
{
    let _g = if alone {
        (None, Some(LOCK.write().await))
    } else {
        (Some(LOCK.read().await), None)
    };
    let be = backend("conf").await;
    let pki = TestPki::new(&format!("h2conf-{engine}-{case}"));
    let (w, port, tls_port) = start_plain_and_tls(
        &pki,
        &["127.0.0.1"],
        be.addr.port(),
        &format!("{}\n{}", engine_key(engine), extra_for(case)),
    );
    let ctx = Ctx {
        engine,
        port,
        tls_port,
        ca: pki.ca.clone(),
        hits: be.hits.clone(),
    };
    let t0 = Instant::now();
    let verdict = tokio::time::timeout(Duration::from_secs(40), f(ctx)).await;
    w.stop().await;
    let known = KNOWN
        .iter()
        .find(|(e, c, _)| *e == engine && *c == case)
        .map(|k| k.2);
    match (verdict, known) {
        (Err(_), _) => panic!("[{engine}] {case}: no verdict within 40 s"),
        (Ok(Err(e)), Some(k)) if e.contains(k) => {
            eprintln!("[{engine}] {case}: known deviation: {e}")
        }
        (Ok(Err(e)), _) => panic!("[{engine}] {case}: FAILED: {e}"),
        (Ok(Ok(())), Some(k)) => {
            panic!("[{engine}] {case}: passes now; remove it from KNOWN (it failed with {k:?})")
        }
        (Ok(Ok(())), None) => eprintln!("[{engine}] {case}: ok ({:?})", t0.elapsed()),
    }
}

/// What hyper's h2 answers instead of RFC 9113's code (h2 loads a malformed frame, or
/// decodes a bad HPACK block, as a PROTOCOL_ERROR; h2spec's own check passes these because it
/// also accepts the connection's close).
const H2_PROTOCOL: &str = "got GOAWAY(stream 0, flags 0x0, 8 bytes, PROTOCOL_ERROR)";

/// Cases an engine is known to fail, with a fragment of the failure message: deviations of a
/// crate weir does not change (hyper's h2). Such a case passes while it fails with exactly
/// that, and fails once it passes or fails otherwise, so the list stays true. docs/http2.md
/// has the table.
const KNOWN: &[(&str, &str, &str)] = &[
    ("hyper", "hp2_3_3_1_indexed_invalid_index", H2_PROTOCOL),
    ("hyper", "hp2_3_3_2_literal_invalid_name_index", H2_PROTOCOL),
    ("hyper", "hp4_2_1_size_update_at_end_of_block", H2_PROTOCOL),
    ("hyper", "hp5_2_1_huffman_padding_over_7_bits", H2_PROTOCOL),
    ("hyper", "hp5_2_2_huffman_padded_by_zero", H2_PROTOCOL),
    ("hyper", "hp5_2_3_huffman_eos", H2_PROTOCOL),
    ("hyper", "hp6_1_1_index_0", H2_PROTOCOL),
    ("hyper", "hp6_3_1_size_update_over_settings", H2_PROTOCOL),
    ("hyper", "s4_3_1_invalid_header_block", H2_PROTOCOL),
    ("hyper", "s5_1_5_half_closed_data", H2_PROTOCOL),
    ("hyper", "s5_1_6_half_closed_headers", H2_PROTOCOL),
    ("hyper", "s5_1_9_closed_by_rst_headers", H2_PROTOCOL),
    ("hyper", "s6_1_2_data_half_closed", H2_PROTOCOL),
    ("hyper", "s6_3_2_priority_length_4", H2_PROTOCOL),
    ("hyper", "s6_4_3_rst_length_3", H2_PROTOCOL),
    ("hyper", "s6_5_1_settings_ack_with_payload", H2_PROTOCOL),
    (
        "hyper",
        "s6_5_3_settings_length_not_multiple_of_6",
        H2_PROTOCOL,
    ),
    (
        "hyper",
        "s6_5_2_2_initial_window_size_over_max",
        H2_PROTOCOL,
    ),
    ("hyper", "s6_7_4_ping_length_6", H2_PROTOCOL),
    ("hyper", "s6_9_2_3_initial_window_over_max", H2_PROTOCOL),
    ("hyper", "s6_9_3_window_update_length_3", H2_PROTOCOL),
    // h2 takes a pseudo-header field in trailers; the request is answered.
    (
        "hyper",
        "s8_1_2_1_3_pseudo_header_in_trailers",
        "expected RST_STREAM(1, PROTOCOL_ERROR), got a response",
    ),
    // h2 (the `http` crate's `PathAndQuery`) cuts a fragment from `:path` before weir sees the
    // request: `/a#/../admin` is forwarded as `/a`.
    (
        "hyper",
        "x8_3_1_path_with_fragment",
        "the malformed request was forwarded",
    ),
    // h2 takes a field value that begins or ends with whitespace (RFC 9113 §8.2.1: malformed)
    // and weir's http2/ request checks do not refuse it either: forwarded (the HTTP/1.1
    // target reads the whitespace as optional whitespace). Fixable in weir, not in h2.
    // As s5_1_5: DATA on a half-closed (remote) stream is a connection PROTOCOL_ERROR.
    (
        "hyper",
        "rc_python_h2_hostile_order",
        r#"DATA after END_STREAM: expected STREAM_CLOSED, got {"goaway":1"#,
    ),
];

/// One module of tests per engine, one test per case. `alone` cases measure the process's
/// memory and run with no other case of this file.
macro_rules! engines {
    ([$($engine:ident),*] $cases:tt $alone:tt) => {
        $( engine_tests!($engine $cases $alone); )*
    };
}

macro_rules! engine_tests {
    ($engine:ident [$($case:ident),* $(,)?] [$($alone:ident),* $(,)?]) => {
        mod $engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let engine = stringify!($engine).trim_start_matches("on_");
                    super::run_case(engine, stringify!($case), false, super::$case).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $alone() {
                    let engine = stringify!($engine).trim_start_matches("on_");
                    super::run_case(engine, stringify!($alone), true, super::$alone).await;
                }
            )*
        }
    };
}

// The engines every case runs on (`[load_balancer] http2_engine`).
engines!(
    [on_hyper, on_weir]
    [
        // generic
        g1_preface_is_accepted,
        g2_1_priority_on_idle_stream,
        g2_2_window_update_on_half_closed_remote,
        g2_3_priority_on_half_closed_remote,
        g2_4_rst_stream_on_half_closed_remote,
        g2_5_priority_on_closed_stream,
        g3_1_1_data,
        g3_1_2_multiple_data,
        g3_1_3_data_with_padding,
        g3_2_1_headers,
        g3_2_2_headers_with_padding,
        g3_2_3_headers_with_priority,
        g3_3_1_priority_weight_1,
        g3_3_2_priority_weight_256,
        g3_3_3_priority_dependency,
        g3_3_4_priority_exclusive,
        g3_3_5_priority_idle_then_lower_headers,
        g3_4_rst_stream,
        g3_5_settings,
        g3_7_ping,
        g3_8_goaway,
        g3_9_1_window_update_connection,
        g3_9_2_window_update_stream,
        g3_10_1_continuation,
        g3_10_2_multiple_continuation,
        g4_1_get,
        g4_2_head,
        g4_3_post,
        g4_4_post_with_trailers,
        g5_1_indexed,
        g5_2_incremental_indexed_name,
        g5_3_incremental_indexed_name_huffman,
        g5_4_incremental_new_name,
        g5_5_incremental_new_name_huffman,
        g5_6_without_indexing_indexed_name,
        g5_7_without_indexing_indexed_name_huffman,
        g5_8_without_indexing_new_name,
        g5_9_without_indexing_new_name_huffman,
        g5_10_never_indexed_indexed_name,
        g5_11_never_indexed_indexed_name_huffman,
        g5_12_never_indexed_new_name,
        g5_13_never_indexed_new_name_huffman,
        g5_14_dynamic_table_size_update,
        g5_15_multiple_dynamic_table_size_updates,
        // hpack
        hp2_3_3_1_indexed_invalid_index,
        hp2_3_3_2_literal_invalid_name_index,
        hp4_2_1_size_update_at_end_of_block,
        hp5_2_1_huffman_padding_over_7_bits,
        hp5_2_2_huffman_padded_by_zero,
        hp5_2_3_huffman_eos,
        hp6_1_1_index_0,
        hp6_3_1_size_update_over_settings,
        // http2
        s3_5_1_preface_then_settings_h2c,
        s3_5_1_preface_then_settings_tls,
        s3_5_2_invalid_preface_tls,
        s3_5_2_invalid_preface_h2c,
        s4_1_1_unknown_frame_type,
        s4_1_2_undefined_flag,
        s4_1_3_reserved_bit,
        s4_2_1_data_16384,
        s4_2_2_data_over_max_frame_size,
        s4_2_3_headers_over_max_frame_size,
        s4_3_1_invalid_header_block,
        s4_3_2_priority_inside_header_block,
        s4_3_3_headers_of_another_stream_inside_header_block,
        s5_1_1_idle_data,
        s5_1_2_idle_rst_stream,
        s5_1_3_idle_window_update,
        s5_1_4_idle_continuation,
        s5_1_5_half_closed_data,
        s5_1_6_half_closed_headers,
        s5_1_7_half_closed_continuation,
        s5_1_8_closed_by_rst_data,
        s5_1_9_closed_by_rst_headers,
        s5_1_10_closed_by_rst_continuation,
        s5_1_11_closed_data,
        s5_1_12_closed_headers,
        s5_1_13_closed_continuation,
        s5_1_1_1_even_stream_id,
        s5_1_1_2_decreasing_stream_id,
        s5_1_2_1_concurrency_129th_stream_refused,
        s5_3_1_1_headers_depends_on_itself,
        s5_3_1_2_priority_depends_on_itself,
        s5_4_1_1_connection_error_closes,
        s5_4_1_2_connection_error_sends_goaway,
        s5_5_1_unknown_extension_frame,
        s5_5_2_unknown_frame_inside_header_block,
        s6_1_1_data_stream_0,
        s6_1_2_data_half_closed,
        s6_1_3_data_invalid_pad_length,
        s6_2_1_headers_then_priority,
        s6_2_2_headers_then_headers_of_another_stream,
        s6_2_3_headers_stream_0,
        s6_2_4_headers_invalid_pad_length,
        s6_3_1_priority_stream_0,
        s6_3_2_priority_length_4,
        s6_4_1_rst_stream_0,
        s6_4_2_rst_idle,
        s6_4_3_rst_length_3,
        s6_5_1_settings_ack_with_payload,
        s6_5_2_settings_stream_1,
        s6_5_3_settings_length_not_multiple_of_6,
        s6_5_2_1_enable_push_2,
        s6_5_2_2_initial_window_size_over_max,
        s6_5_2_3_max_frame_size_too_small,
        s6_5_2_4_max_frame_size_too_large,
        s6_5_2_5_unknown_setting,
        s6_5_3_1_settings_values_in_order,
        s6_5_3_2_settings_acknowledged,
        s6_7_1_ping_answered,
        s6_7_2_ping_ack_not_answered,
        s6_7_3_ping_stream_1,
        s6_7_4_ping_length_6,
        s6_8_1_goaway_stream_1,
        s6_9_1_window_update_0_connection,
        s6_9_2_window_update_0_stream,
        s6_9_3_window_update_length_3,
        s6_9_1_1_window_1_data_of_1,
        s6_9_1_2_connection_window_overflow,
        s6_9_1_3_stream_window_overflow,
        s6_9_2_1_initial_window_change_applies_to_open_streams,
        s6_9_2_2_negative_window,
        s6_9_2_3_initial_window_over_max,
        s6_10_1_multiple_continuation,
        s6_10_2_continuation_then_data,
        s6_10_3_continuation_stream_0,
        s6_10_4_continuation_after_end_headers,
        s6_10_5_continuation_after_continuation_end_headers,
        s6_10_6_continuation_after_data,
        s7_1_goaway_unknown_code,
        s7_2_rst_stream_unknown_code,
        s8_1_1_second_headers_without_end_stream,
        s8_1_2_1_uppercase_field_name,
        s8_1_2_1_1_unknown_pseudo_header,
        s8_1_2_1_2_response_pseudo_header,
        s8_1_2_1_3_pseudo_header_in_trailers,
        s8_1_2_1_4_pseudo_header_after_regular,
        s8_1_2_2_1_connection_specific_field,
        s8_1_2_2_2_te_other_than_trailers,
        s8_1_2_3_1_empty_path,
        s8_1_2_3_2_no_method,
        s8_1_2_3_3_no_scheme,
        s8_1_2_3_4_no_path,
        s8_1_2_3_5_two_methods,
        s8_1_2_3_6_two_schemes,
        s8_1_2_3_7_two_paths,
        s8_1_2_6_1_content_length_above_data,
        s8_1_2_6_2_content_length_below_data,
        s8_2_1_push_promise_from_client,
        // RFC 9113 field rules h2spec does not test (what an HTTP/1.1 target could be
        // smuggled with after the downgrade)
        x8_2_1_value_with_crlf,
        x8_2_1_value_with_lf,
        x8_2_1_value_with_nul,
        x8_2_1_value_with_leading_space,
        x8_2_1_value_with_trailing_tab,
        x8_2_1_name_with_space,
        x8_2_1_name_with_colon,
        x8_2_1_empty_name,
        x8_2_2_transfer_encoding,
        x8_2_2_upgrade,
        x8_2_2_keep_alive,
        x8_2_2_proxy_connection,
        x8_2_2_te_trailers_is_accepted,
        x8_3_1_authority_with_userinfo,
        x8_3_1_path_not_absolute,
        x8_3_1_path_with_fragment,
        x8_3_1_empty_authority,
        x8_3_1_asterisk_for_get,
        x8_3_1_options_asterisk_host_from_authority,
        x8_1_1_content_length_not_a_number,
        x8_1_1_two_content_lengths,
        // what the server sends
        x6_9_1_connection_window_and_frame_size_respected,
        xhp4_2_table_size_0_honoured,
        x5_1_1_highest_stream_id,
        x6_8_goaway_on_shutdown_finishes_streams,
        // legitimate traffic the protections must let through
        l_empty_data_with_end_stream,
        l_many_small_data_frames,
        l_priority_tree_of_idle_streams,
        l_some_cancelled_streams,
        // protections
        p_hpack_bomb,
        p_rapid_reset_flood,
        p_made_you_reset,
        p_empty_data_flood,
        p_window_update_flood,
        p_header_list_over_64_kib,
        p_connection_idle_deadline,
        p_stream_idle_deadline,
        // real clients
        rc_python_h2_hostile_order,
        rc_httpx_100_requests,
    ]
    [
        p_continuation_flood,
        p_settings_flood_unread,
        p_ping_flood_unread,
    ]
);

// ---- helpers ----------------------------------------------------------------------------

/// A connection with the preface sent and the server's SETTINGS read (and acknowledged).
async fn open(c: &Ctx) -> Result<H2, String> {
    open_with(c, &[]).await
}

async fn open_with(c: &Ctx, pairs: &[(u16, u32)]) -> Result<H2, String> {
    let mut h = H2::connect(c.port, pairs).await;
    h.until(T, |f| {
        (f.ty == SETTINGS && f.flags & ACK == 0).then_some(())
    })
    .await
    .map_err(|e| format!("no SETTINGS from the server: {e}"))?;
    Ok(h)
}

async fn send(h: &mut H2, bytes: &[u8]) -> Check {
    h.send(bytes)
        .await
        .map_err(|e| format!("write failed: {e}; frames: {}", h.trace()))
}

/// The value of setting `id` in a SETTINGS payload.
fn setting(payload: &[u8], id: u16) -> Option<u32> {
    payload.chunks_exact(6).find_map(|p| {
        (u16::from_be_bytes([p[0], p[1]]) == id)
            .then(|| u32::from_be_bytes([p[2], p[3], p[4], p[5]]))
    })
}

fn post(stream: u32, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields = vec![
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "app.test"),
        (":path", path),
    ];
    fields.extend_from_slice(extra);
    headers(stream, &fields, END_HEADERS)
}

/// The request pseudo-fields HPACK-indexed (GET, http, /) and `:authority` app.test.
fn indexed_base() -> Vec<u8> {
    let mut b = vec![0x82, 0x86, 0x84, 0x01];
    hpack_str(&mut b, b"app.test");
    b
}

/// A response on `stream` whose body the backend wrote (it names the request).
async fn expect_forwarded(h: &mut H2, stream: u32) -> Result<String, String> {
    let body = h.expect_response(stream, T).await?;
    if !body.contains("backend=conf") {
        return Err(format!("expected the backend's answer, got body {body:?}"));
    }
    Ok(body)
}

fn nothing_forwarded(c: &Ctx) -> Check {
    match c.hits.load(SeqCst) {
        0 => Ok(()),
        n => Err(format!(
            "the malformed request was forwarded ({n} backend hits)"
        )),
    }
}

/// A stream error on stream 1 for a malformed request, and nothing forwarded.
async fn malformed(c: Ctx, block: Vec<u8>) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &block).await?;
    h.expect_stream_error(1, &[PROTOCOL_ERROR], T).await?;
    nothing_forwarded(&c)
}

async fn conn_error(c: Ctx, bytes: Vec<u8>, codes: &[u32]) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &bytes).await?;
    h.expect_conn_error(codes, T).await
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

// ---- generic ----------------------------------------------------------------------------

async fn g1_preface_is_accepted(c: Ctx) -> Check {
    open(&c).await?.expect_alive(T).await
}

async fn g2_1_priority_on_idle_stream(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(
        &mut h,
        &cat(&[priority(3, 0, false, 16), request(1, "/", &[], true)]),
    )
    .await?;
    expect_forwarded(&mut h, 1).await.map(drop)
}

async fn g2_2_window_update_on_half_closed_remote(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(
        &mut h,
        &cat(&[request(1, "/slow?ms=200", &[], true), window_update(1, 1)]),
    )
    .await?;
    expect_forwarded(&mut h, 1).await.map(drop)
}

async fn g2_3_priority_on_half_closed_remote(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(
        &mut h,
        &cat(&[
            request(1, "/slow?ms=200", &[], true),
            priority(1, 0, false, 16),
        ]),
    )
    .await?;
    expect_forwarded(&mut h, 1).await.map(drop)
}

async fn g2_4_rst_stream_on_half_closed_remote(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(
        &mut h,
        &cat(&[request(1, "/slow?ms=200", &[], true), rst(1, CANCEL)]),
    )
    .await?;
    h.expect_alive(T).await
}

async fn g2_5_priority_on_closed_stream(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &request(1, "/", &[], true)).await?;
    expect_forwarded(&mut h, 1).await?;
    send(&mut h, &priority(1, 0, false, 16)).await?;
    h.expect_alive(T).await
}

async fn body_bytes(h: &mut H2, stream: u32, n: usize) -> Check {
    let body = expect_forwarded(h, stream).await?;
    let want = format!("body-bytes={n}\n");
    if !body.contains(&want) {
        return Err(format!("the backend did not get {n} body bytes: {body:?}"));
    }
    Ok(())
}

async fn g3_1_1_data(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &cat(&[post(1, "/", &[]), data(1, b"test", true)])).await?;
    body_bytes(&mut h, 1, 4).await
}

async fn g3_1_2_multiple_data(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let mut b = post(1, "/", &[]);
    for i in 0..5 {
        b.extend(data(1, b"test", i == 4));
    }
    send(&mut h, &b).await?;
    body_bytes(&mut h, 1, 20).await
}

async fn g3_1_3_data_with_padding(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let mut p = vec![8u8];
    p.extend_from_slice(b"test");
    p.extend_from_slice(&[0; 8]);
    send(
        &mut h,
        &cat(&[post(1, "/", &[]), frame(DATA, END_STREAM | PADDED, 1, &p)]),
    )
    .await?;
    body_bytes(&mut h, 1, 4).await
}

async fn g3_2_1_headers(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &request(1, "/", &[], true)).await?;
    expect_forwarded(&mut h, 1).await.map(drop)
}

async fn g3_2_2_headers_with_padding(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let mut p = vec![4u8];
    p.extend(hpack(&head("GET", "/")));
    p.extend_from_slice(&[0; 4]);
    send(
        &mut h,
        &frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 1, &p),
    )
    .await?;
    expect_forwarded(&mut h, 1).await.map(drop)
}

async fn g3_2_3_headers_with_priority(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let mut p = vec![0, 0, 0, 0, 15];
    p.extend(hpack(&head("GET", "/")));
    send(
        &mut h,
        &frame(HEADERS, END_HEADERS | END_STREAM | PRIORITY_FLAG, 1, &p),
    )
    .await?;
    expect_forwarded(&mut h, 1).await.map(drop)
}

async fn priority_then_alive(c: Ctx, f: Vec<u8>) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &f).await?;
    h.expect_alive(T).await
}

async fn g3_3_1_priority_weight_1(c: Ctx) -> Check {
    priority_then_alive(c, priority(1, 0, false, 1)).await
}

async fn g3_3_2_priority_weight_256(c: Ctx) -> Check {
    priority_then_alive(c, priority(1, 0, false, 256)).await
}

async fn g3_3_3_priority_dependency(c: Ctx) -> Check {
    priority_then_alive(
        c,
        cat(&[priority(1, 0, false, 16), priority(3, 1, false, 16)]),
    )
    .await
}

async fn g3_3_4_priority_exclusive(c: Ctx) -> Check {
    priority_then_alive(
        c,
        cat(&[priority(1, 0, false, 16), priority(3, 1, true, 16)]),
    )
    .await
}

async fn g3_3_5_priority_idle_then_lower_headers(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(
        &mut h,
        &cat(&[priority(5, 0, false, 16), request(3, "/", &[], true)]),
    )
    .await?;
    expect_forwarded(&mut h, 3).await.map(drop)
}

async fn g3_4_rst_stream(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &cat(&[post(1, "/", &[]), rst(1, CANCEL)])).await?;
    h.expect_alive(T).await
}

async fn g3_5_settings(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(
        &mut h,
        &settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 100_000)]),
    )
    .await?;
    h.until(T, |f| {
        (f.ty == SETTINGS && f.flags & ACK != 0).then_some(())
    })
    .await
    .map_err(|e| format!("expected a SETTINGS ACK: {e}"))
}

async fn g3_7_ping(c: Ctx) -> Check {
    open(&c).await?.expect_alive(T).await
}

async fn g3_8_goaway(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let p = *b"goaway!!";
    send(&mut h, &cat(&[goaway(0, NO_ERROR), ping(p)])).await?;
    // A PING ACK, or a close (after a GOAWAY without error, if any).
    let until = Instant::now() + T;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match h.next(left).await {
            Got::Frame(f) if f.ty == PING && f.flags & ACK != 0 && f.payload == p => return Ok(()),
            Got::Frame(f) if f.ty == GOAWAY && f.code() != Some(NO_ERROR) => {
                return Err(format!("expected a PING ACK or a close, got {f}"));
            }
            Got::Frame(_) => {}
            Got::Closed => return Ok(()),
            Got::Quiet => break,
        }
    }
    Err(format!(
        "expected a PING ACK or a close; frames: {}",
        h.trace()
    ))
}

async fn g3_9_1_window_update_connection(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &window_update(0, 1)).await?;
    h.expect_alive(T).await
}

async fn g3_9_2_window_update_stream(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(
        &mut h,
        &cat(&[
            post(1, "/", &[]),
            window_update(1, 1),
            data(1, b"test", true),
        ]),
    )
    .await?;
    body_bytes(&mut h, 1, 4).await
}

/// HEADERS with the pseudo-fields, then `n` CONTINUATION frames of one field each.
fn continued(stream: u32, n: usize) -> Vec<u8> {
    let mut b = frame(HEADERS, END_STREAM, stream, &hpack(&head("GET", "/")));
    for i in 0..n {
        let flags = if i + 1 == n { END_HEADERS } else { 0 };
        b.extend(frame(
            CONTINUATION,
            flags,
            stream,
            &hpack(&[("x-dummy", "dummy")]),
        ));
    }
    b
}

async fn g3_10_1_continuation(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &continued(1, 1)).await?;
    expect_forwarded(&mut h, 1).await.map(drop)
}

async fn g3_10_2_multiple_continuation(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &continued(1, 3)).await?;
    expect_forwarded(&mut h, 1).await.map(drop)
}

async fn g4_1_get(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &request(1, "/get", &[], true)).await?;
    let body = expect_forwarded(&mut h, 1).await?;
    body.contains("GET /get")
        .then_some(())
        .ok_or_else(|| format!("the backend did not see GET /get: {body:?}"))
}

async fn g4_2_head(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(
        &mut h,
        &headers(1, &head("HEAD", "/"), END_HEADERS | END_STREAM),
    )
    .await?;
    let body = h.expect_response(1, T).await?;
    body.is_empty()
        .then_some(())
        .ok_or_else(|| format!("a HEAD response with a body: {body:?}"))
}

async fn g4_3_post(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(
        &mut h,
        &cat(&[
            post(1, "/", &[("content-length", "4")]),
            data(1, b"test", true),
        ]),
    )
    .await?;
    body_bytes(&mut h, 1, 4).await
}

async fn g4_4_post_with_trailers(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(
        &mut h,
        &cat(&[
            post(1, "/", &[]),
            data(1, b"test", false),
            headers(1, &[("x-trailer", "end")], END_HEADERS | END_STREAM),
        ]),
    )
    .await?;
    body_bytes(&mut h, 1, 4).await
}

/// A request whose header block is `block`, expected to be forwarded; `want` in the backend's
/// echo of the request, if given.
async fn hpack_accepted(c: Ctx, block: Vec<u8>, want: Option<&str>) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &frame(HEADERS, END_HEADERS | END_STREAM, 1, &block)).await?;
    let body = expect_forwarded(&mut h, 1).await?;
    match want {
        Some(w) if !body.contains(w) => Err(format!("the backend did not see {w:?}: {body:?}")),
        _ => Ok(()),
    }
}

/// RFC 7541 C.4.1: "www.example.com" Huffman-coded (12 bytes).
const HUFF_WWW: &[u8] = &[
    0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
];
/// RFC 7541 C.4.3: "custom-key" and "custom-value" Huffman-coded.
const HUFF_KEY: &[u8] = &[0x88, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f];
const HUFF_VALUE: &[u8] = &[0x89, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf];

/// GET / with `:authority` "www.example.com" as `first` (a representation with the indexed
/// name 1) followed by the Huffman string.
fn huffman_authority(first: u8) -> Vec<u8> {
    let mut b = vec![0x82, 0x86, 0x84, first];
    b.extend_from_slice(HUFF_WWW);
    b
}

/// GET / plus custom-key: custom-value as a new name of representation `first`.
fn new_name(first: u8, huffman: bool) -> Vec<u8> {
    let mut b = indexed_base();
    b.push(first);
    if huffman {
        b.extend_from_slice(HUFF_KEY);
        b.extend_from_slice(HUFF_VALUE);
    } else {
        hpack_str(&mut b, b"custom-key");
        hpack_str(&mut b, b"custom-value");
    }
    b
}

/// GET / with `:authority` app.test as `first` (indexed name 1), plain string.
fn plain_authority(first: u8) -> Vec<u8> {
    let mut b = vec![0x82, 0x86, 0x84, first];
    hpack_str(&mut b, b"app.test");
    b
}

const CUSTOM: Option<&str> = Some("custom-key: custom-value");
const WWW: Option<&str> = Some("host: www.example.com");

async fn g5_1_indexed(c: Ctx) -> Check {
    hpack_accepted(c, indexed_base(), Some("GET / ")).await
}
async fn g5_2_incremental_indexed_name(c: Ctx) -> Check {
    hpack_accepted(c, plain_authority(0x41), None).await
}
async fn g5_3_incremental_indexed_name_huffman(c: Ctx) -> Check {
    hpack_accepted(c, huffman_authority(0x41), WWW).await
}
async fn g5_4_incremental_new_name(c: Ctx) -> Check {
    hpack_accepted(c, new_name(0x40, false), CUSTOM).await
}
async fn g5_5_incremental_new_name_huffman(c: Ctx) -> Check {
    hpack_accepted(c, new_name(0x40, true), CUSTOM).await
}
async fn g5_6_without_indexing_indexed_name(c: Ctx) -> Check {
    hpack_accepted(c, plain_authority(0x01), None).await
}
async fn g5_7_without_indexing_indexed_name_huffman(c: Ctx) -> Check {
    hpack_accepted(c, huffman_authority(0x01), WWW).await
}
async fn g5_8_without_indexing_new_name(c: Ctx) -> Check {
    hpack_accepted(c, new_name(0x00, false), CUSTOM).await
}
async fn g5_9_without_indexing_new_name_huffman(c: Ctx) -> Check {
    hpack_accepted(c, new_name(0x00, true), CUSTOM).await
}
async fn g5_10_never_indexed_indexed_name(c: Ctx) -> Check {
    hpack_accepted(c, plain_authority(0x11), None).await
}
async fn g5_11_never_indexed_indexed_name_huffman(c: Ctx) -> Check {
    hpack_accepted(c, huffman_authority(0x11), WWW).await
}
async fn g5_12_never_indexed_new_name(c: Ctx) -> Check {
    hpack_accepted(c, new_name(0x10, false), CUSTOM).await
}
async fn g5_13_never_indexed_new_name_huffman(c: Ctx) -> Check {
    hpack_accepted(c, new_name(0x10, true), CUSTOM).await
}
async fn g5_14_dynamic_table_size_update(c: Ctx) -> Check {
    hpack_accepted(c, cat(&[vec![0x20], indexed_base()]), None).await
}
async fn g5_15_multiple_dynamic_table_size_updates(c: Ctx) -> Check {
    // 0, then 4096 (31 + 97 + 31·128).
    hpack_accepted(
        c,
        cat(&[vec![0x20, 0x3f, 0xe1, 0x1f], indexed_base()]),
        None,
    )
    .await
}

// ---- hpack (RFC 7541): decoding errors are connection errors of type COMPRESSION_ERROR ----

async fn compression_error(c: Ctx, block: Vec<u8>) -> Check {
    conn_error(
        c.clone(),
        frame(HEADERS, END_HEADERS | END_STREAM, 1, &block),
        &[COMPRESSION_ERROR],
    )
    .await?;
    nothing_forwarded(&c)
}

async fn hp2_3_3_1_indexed_invalid_index(c: Ctx) -> Check {
    // Index 62: past the static table, the dynamic one is empty.
    compression_error(c, cat(&[indexed_base(), vec![0x80 | 62]])).await
}
async fn hp2_3_3_2_literal_invalid_name_index(c: Ctx) -> Check {
    // Literal with incremental indexing, name index 63 + 3 = 66.
    let mut b = indexed_base();
    b.extend_from_slice(&[0x7f, 0x03]);
    hpack_str(&mut b, b"x");
    compression_error(c, b).await
}
async fn hp4_2_1_size_update_at_end_of_block(c: Ctx) -> Check {
    compression_error(c, cat(&[indexed_base(), vec![0x20]])).await
}
/// `x-test` with the Huffman-coded value `huff` (length byte included).
fn huffman_value(huff: &[u8]) -> Vec<u8> {
    let mut b = indexed_base();
    b.push(0x00);
    hpack_str(&mut b, b"x-test");
    b.extend_from_slice(huff);
    b
}
async fn hp5_2_1_huffman_padding_over_7_bits(c: Ctx) -> Check {
    // 'a' (00011) then 11 one bits of padding.
    compression_error(c, huffman_value(&[0x82, 0x1f, 0xff])).await
}
async fn hp5_2_2_huffman_padded_by_zero(c: Ctx) -> Check {
    // 'a' (00011) then 000: padding must be the EOS prefix (ones).
    compression_error(c, huffman_value(&[0x81, 0x18])).await
}
async fn hp5_2_3_huffman_eos(c: Ctx) -> Check {
    // 32 one bits: the 30-bit EOS symbol inside a string.
    compression_error(c, huffman_value(&[0x84, 0xff, 0xff, 0xff, 0xff])).await
}
async fn hp6_1_1_index_0(c: Ctx) -> Check {
    compression_error(c, cat(&[indexed_base(), vec![0x80]])).await
}
async fn hp6_3_1_size_update_over_settings(c: Ctx) -> Check {
    // 4097 (31 + 98 + 31·128) > SETTINGS_HEADER_TABLE_SIZE 4096.
    compression_error(c, cat(&[vec![0x3f, 0xe2, 0x1f], indexed_base()])).await
}

// ---- http2: 3.5 preface -----------------------------------------------------------------

async fn first_frame_is_settings(mut h: H2) -> Check {
    let mut hello = PREFACE.to_vec();
    hello.extend(settings(&[]));
    send(&mut h, &hello).await?;
    match h.next(T).await {
        Got::Frame(f) if f.ty == SETTINGS && f.flags & ACK == 0 => Ok(()),
        Got::Frame(f) => Err(format!(
            "expected SETTINGS as the server's first frame, got {f}"
        )),
        other => Err(format!(
            "expected SETTINGS as the server's first frame, got {other:?}"
        )),
    }
}

async fn s3_5_1_preface_then_settings_h2c(c: Ctx) -> Check {
    first_frame_is_settings(H2::raw(c.port).await).await
}

async fn s3_5_1_preface_then_settings_tls(c: Ctx) -> Check {
    first_frame_is_settings(H2::tls(c.tls_port, &c.ca).await).await
}

async fn invalid_preface(mut h: H2) -> Check {
    send(&mut h, b"INVALID CONNECTION PREFACE\r\n\r\n").await?;
    match h.closed_within(T).await {
        Some(_) => Ok(()),
        None => Err(format!(
            "expected the connection closed after an invalid preface; frames: {}",
            h.trace()
        )),
    }
}

async fn s3_5_2_invalid_preface_tls(c: Ctx) -> Check {
    invalid_preface(H2::tls(c.tls_port, &c.ca).await).await
}

async fn s3_5_2_invalid_preface_h2c(c: Ctx) -> Check {
    // A preface that begins like HTTP/2's and then differs.
    let mut h = H2::raw(c.port).await;
    send(&mut h, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n").await?;
    match h.closed_within(T).await {
        Some(_) => Ok(()),
        None => Err("expected the connection closed after an invalid preface".into()),
    }
}

// ---- 4.1 frame format, 4.2 frame size, 4.3 header compression ------------------------------

async fn s4_1_1_unknown_frame_type(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &frame(0x16, 0, 0, b"0123456789")).await?;
    h.expect_alive(T).await
}

async fn s4_1_2_undefined_flag(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let p = *b"flags!!!";
    send(&mut h, &frame(PING, 0x16, 0, &p)).await?;
    h.until(T, |f| {
        (f.ty == PING && f.flags & ACK != 0 && f.payload == p).then_some(())
    })
    .await
    .map_err(|e| format!("expected a PING ACK for a PING with undefined flags: {e}"))
}

async fn s4_1_3_reserved_bit(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let mut f = request(1, "/", &[], true);
    f[5] |= 0x80; // the reserved bit of the stream identifier
    send(&mut h, &f).await?;
    expect_forwarded(&mut h, 1).await.map(drop)
}

async fn s4_2_1_data_16384(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(
        &mut h,
        &cat(&[post(1, "/", &[]), data(1, &[b'x'; 16384], true)]),
    )
    .await?;
    body_bytes(&mut h, 1, 16384).await
}

async fn s4_2_2_data_over_max_frame_size(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(
        &mut h,
        &cat(&[post(1, "/", &[]), data(1, &[b'x'; 16385], true)]),
    )
    .await?;
    h.expect_stream_error(1, &[FRAME_SIZE_ERROR], T).await
}

async fn s4_2_3_headers_over_max_frame_size(c: Ctx) -> Check {
    let big = "x".repeat(16384);
    let mut fields = head("GET", "/");
    fields.push(("x-big", &big));
    conn_error(
        c,
        headers(1, &fields, END_HEADERS | END_STREAM),
        &[FRAME_SIZE_ERROR],
    )
    .await
}

async fn s4_3_1_invalid_header_block(c: Ctx) -> Check {
    // A literal whose name claims 5 bytes and has 1: the block ends inside it.
    compression_error(c, cat(&[indexed_base(), vec![0x00, 0x05, b'x']])).await
}

async fn s4_3_2_priority_inside_header_block(c: Ctx) -> Check {
    let b = cat(&[
        frame(HEADERS, END_STREAM, 1, &hpack(&head("GET", "/"))),
        priority(1, 0, false, 16),
        frame(CONTINUATION, END_HEADERS, 1, &hpack(&[("x-dummy", "d")])),
    ]);
    conn_error(c, b, &[PROTOCOL_ERROR]).await
}

async fn s4_3_3_headers_of_another_stream_inside_header_block(c: Ctx) -> Check {
    let b = cat(&[
        frame(HEADERS, END_STREAM, 1, &hpack(&head("GET", "/"))),
        request(3, "/", &[], true),
        frame(CONTINUATION, END_HEADERS, 1, &hpack(&[("x-dummy", "d")])),
    ]);
    conn_error(c, b, &[PROTOCOL_ERROR]).await
}

// ---- 5.1 stream states ------------------------------------------------------------------

async fn s5_1_1_idle_data(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &data(1, b"test", true)).await?;
    h.expect_stream_error(1, &[PROTOCOL_ERROR, STREAM_CLOSED], T)
        .await
}

async fn s5_1_2_idle_rst_stream(c: Ctx) -> Check {
    conn_error(c, rst(1, CANCEL), &[PROTOCOL_ERROR]).await
}

async fn s5_1_3_idle_window_update(c: Ctx) -> Check {
    conn_error(c, window_update(1, 100), &[PROTOCOL_ERROR]).await
}

async fn s5_1_4_idle_continuation(c: Ctx) -> Check {
    conn_error(
        c,
        frame(CONTINUATION, END_HEADERS, 1, &hpack(&head("GET", "/"))),
        &[PROTOCOL_ERROR],
    )
    .await
}

/// Stream 1 half-closed (remote): a request with END_STREAM whose answer takes 500 ms.
fn half_closed() -> Vec<u8> {
    request(1, "/slow?ms=500", &[], true)
}

async fn s5_1_5_half_closed_data(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &cat(&[half_closed(), data(1, b"test", true)])).await?;
    h.expect_stream_error(1, &[STREAM_CLOSED], T).await
}

async fn s5_1_6_half_closed_headers(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &cat(&[half_closed(), request(1, "/", &[], true)])).await?;
    h.expect_stream_error(1, &[STREAM_CLOSED], T).await
}

async fn s5_1_7_half_closed_continuation(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let cont = frame(CONTINUATION, END_HEADERS, 1, &hpack(&[("x-dummy", "d")]));
    send(&mut h, &cat(&[half_closed(), cont])).await?;
    h.expect_stream_error(1, &[STREAM_CLOSED, PROTOCOL_ERROR], T)
        .await
}

/// Stream 1 closed by the client's RST_STREAM.
fn reset_stream() -> Vec<u8> {
    cat(&[post(1, "/", &[]), rst(1, CANCEL)])
}

async fn s5_1_8_closed_by_rst_data(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &cat(&[reset_stream(), data(1, b"test", true)])).await?;
    h.expect_stream_error(1, &[STREAM_CLOSED], T).await
}

async fn s5_1_9_closed_by_rst_headers(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &cat(&[reset_stream(), request(1, "/", &[], true)])).await?;
    h.expect_stream_error(1, &[STREAM_CLOSED], T).await
}

async fn s5_1_10_closed_by_rst_continuation(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let cont = frame(CONTINUATION, END_HEADERS, 1, &hpack(&[("x-dummy", "d")]));
    send(&mut h, &cat(&[reset_stream(), cont])).await?;
    h.expect_stream_error(1, &[STREAM_CLOSED, PROTOCOL_ERROR], T)
        .await
}

/// Stream 1 closed: its request and whole response are done.
async fn closed_stream(c: &Ctx) -> Result<H2, String> {
    let mut h = open(c).await?;
    send(&mut h, &request(1, "/", &[], true)).await?;
    expect_forwarded(&mut h, 1).await?;
    Ok(h)
}

async fn s5_1_11_closed_data(c: Ctx) -> Check {
    let mut h = closed_stream(&c).await?;
    send(&mut h, &data(1, b"test", true)).await?;
    h.expect_stream_error(1, &[STREAM_CLOSED], T).await
}

async fn s5_1_12_closed_headers(c: Ctx) -> Check {
    let mut h = closed_stream(&c).await?;
    send(&mut h, &request(1, "/", &[], true)).await?;
    // h2spec asks for STREAM_CLOSED; §5.1.1 (a stream identifier not above all before it)
    // makes PROTOCOL_ERROR as right.
    h.expect_conn_error(&[STREAM_CLOSED, PROTOCOL_ERROR], T)
        .await
}

async fn s5_1_13_closed_continuation(c: Ctx) -> Check {
    let mut h = closed_stream(&c).await?;
    send(
        &mut h,
        &frame(CONTINUATION, END_HEADERS, 1, &hpack(&[("x-dummy", "d")])),
    )
    .await?;
    h.expect_conn_error(&[STREAM_CLOSED, PROTOCOL_ERROR], T)
        .await
}

async fn s5_1_1_1_even_stream_id(c: Ctx) -> Check {
    conn_error(c, request(2, "/", &[], true), &[PROTOCOL_ERROR]).await
}

async fn s5_1_1_2_decreasing_stream_id(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &request(5, "/", &[], true)).await?;
    expect_forwarded(&mut h, 5).await?;
    send(&mut h, &request(3, "/", &[], true)).await?;
    h.expect_conn_error(&[PROTOCOL_ERROR], T).await
}

/// Also the concurrency protection: the server advertises 128 concurrent streams, takes 128
/// open streams and refuses the 129th.
async fn s5_1_2_1_concurrency_129th_stream_refused(c: Ctx) -> Check {
    let mut h = H2::connect(c.port, &[]).await;
    let max = h
        .until(T, |f| {
            (f.ty == SETTINGS && f.flags & ACK == 0)
                .then(|| setting(&f.payload, SETTINGS_MAX_CONCURRENT_STREAMS))
        })
        .await?
        .ok_or("the server's SETTINGS have no SETTINGS_MAX_CONCURRENT_STREAMS")?;
    if max != 128 {
        return Err(format!(
            "SETTINGS_MAX_CONCURRENT_STREAMS is {max}, weir's limit is 128"
        ));
    }
    let mut b = Vec::new();
    for i in 0..max {
        b.extend(post(1 + 2 * i, "/", &[]));
    }
    send(&mut h, &b).await?;
    // The 128 are taken: none is refused (give the server time to see them all).
    let early = h
        .until(Duration::from_millis(500), |f| {
            (f.ty == RST_STREAM || f.ty == GOAWAY).then(|| f.to_string())
        })
        .await;
    if let Ok(f) = early {
        return Err(format!("{f} with only {max} streams open"));
    }
    let last = 1 + 2 * max;
    send(&mut h, &post(last, "/", &[])).await?;
    h.expect_stream_error(last, &[REFUSED_STREAM, PROTOCOL_ERROR], T)
        .await
}

// ---- 5.3 priority, 5.4 error handling, 5.5 extensions -------------------------------------

async fn s5_3_1_1_headers_depends_on_itself(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let mut p = vec![0, 0, 0, 1, 15];
    p.extend(hpack(&head("GET", "/")));
    send(
        &mut h,
        &frame(HEADERS, END_HEADERS | END_STREAM | PRIORITY_FLAG, 1, &p),
    )
    .await?;
    h.expect_stream_error(1, &[PROTOCOL_ERROR], T).await
}

async fn s5_3_1_2_priority_depends_on_itself(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &priority(1, 1, false, 16)).await?;
    h.expect_stream_error(1, &[PROTOCOL_ERROR], T).await
}

/// A PING of 6 bytes: a connection error (FRAME_SIZE_ERROR).
fn bad_ping() -> Vec<u8> {
    frame(PING, 0, 0, b"123456")
}

async fn s5_4_1_1_connection_error_closes(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &bad_ping()).await?;
    match h.closed_within(T).await {
        Some(_) => Ok(()),
        None => Err(format!(
            "expected the TCP connection closed; frames: {}",
            h.trace()
        )),
    }
}

async fn s5_4_1_2_connection_error_sends_goaway(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &bad_ping()).await?;
    h.until(T, |f| (f.ty == GOAWAY).then_some(()))
        .await
        .map_err(|e| format!("expected a GOAWAY before the close: {e}"))
}

async fn s5_5_1_unknown_extension_frame(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &frame(0xff, 0, 0, b"0123456789")).await?;
    h.expect_alive(T).await
}

async fn s5_5_2_unknown_frame_inside_header_block(c: Ctx) -> Check {
    let b = cat(&[
        frame(HEADERS, END_STREAM, 1, &hpack(&head("GET", "/"))),
        frame(0xff, 0, 0, b"0123456789"),
        frame(CONTINUATION, END_HEADERS, 1, &hpack(&[("x-dummy", "d")])),
    ]);
    conn_error(c, b, &[PROTOCOL_ERROR]).await
}

// ---- 6.1 DATA, 6.2 HEADERS, 6.3 PRIORITY, 6.4 RST_STREAM ----------------------------------

async fn s6_1_1_data_stream_0(c: Ctx) -> Check {
    conn_error(
        c,
        cat(&[post(1, "/", &[]), data(0, b"test", true)]),
        &[PROTOCOL_ERROR],
    )
    .await
}

async fn s6_1_2_data_half_closed(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &cat(&[half_closed(), data(1, b"test", true)])).await?;
    h.expect_stream_error(1, &[STREAM_CLOSED], T).await
}

async fn s6_1_3_data_invalid_pad_length(c: Ctx) -> Check {
    // Pad length 6 in a 5-byte payload.
    let b = cat(&[
        post(1, "/", &[]),
        frame(DATA, END_STREAM | PADDED, 1, &[6, b't', b'e', b's', b't']),
    ]);
    conn_error(c, b, &[PROTOCOL_ERROR]).await
}

async fn s6_2_1_headers_then_priority(c: Ctx) -> Check {
    let b = cat(&[
        frame(HEADERS, END_STREAM, 1, &hpack(&head("GET", "/"))),
        priority(1, 0, false, 16),
    ]);
    conn_error(c, b, &[PROTOCOL_ERROR]).await
}

async fn s6_2_2_headers_then_headers_of_another_stream(c: Ctx) -> Check {
    let b = cat(&[
        frame(HEADERS, END_STREAM, 1, &hpack(&head("GET", "/"))),
        request(3, "/", &[], true),
    ]);
    conn_error(c, b, &[PROTOCOL_ERROR]).await
}

async fn s6_2_3_headers_stream_0(c: Ctx) -> Check {
    conn_error(c, request(0, "/", &[], true), &[PROTOCOL_ERROR]).await
}

async fn s6_2_4_headers_invalid_pad_length(c: Ctx) -> Check {
    // Pad length 255 in a shorter payload.
    let mut p = vec![255u8];
    p.extend(hpack(&head("GET", "/")));
    conn_error(
        c,
        frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 1, &p),
        &[PROTOCOL_ERROR],
    )
    .await
}

async fn s6_3_1_priority_stream_0(c: Ctx) -> Check {
    conn_error(c, priority(0, 1, false, 16), &[PROTOCOL_ERROR]).await
}

async fn s6_3_2_priority_length_4(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(
        &mut h,
        &cat(&[post(1, "/", &[]), frame(PRIORITY, 0, 1, &[0, 0, 0, 0])]),
    )
    .await?;
    h.expect_stream_error(1, &[FRAME_SIZE_ERROR], T).await
}

async fn s6_4_1_rst_stream_0(c: Ctx) -> Check {
    conn_error(c, rst(0, CANCEL), &[PROTOCOL_ERROR]).await
}

async fn s6_4_2_rst_idle(c: Ctx) -> Check {
    conn_error(c, rst(3, CANCEL), &[PROTOCOL_ERROR]).await
}

async fn s6_4_3_rst_length_3(c: Ctx) -> Check {
    conn_error(
        c,
        cat(&[post(1, "/", &[]), frame(RST_STREAM, 0, 1, &[0, 0, 8])]),
        &[FRAME_SIZE_ERROR],
    )
    .await
}

// ---- 6.5 SETTINGS ------------------------------------------------------------------------

async fn s6_5_1_settings_ack_with_payload(c: Ctx) -> Check {
    conn_error(
        c,
        frame(SETTINGS, ACK, 0, &[0, 4, 0, 0, 0, 1]),
        &[FRAME_SIZE_ERROR],
    )
    .await
}

async fn s6_5_2_settings_stream_1(c: Ctx) -> Check {
    conn_error(
        c,
        frame(SETTINGS, 0, 1, &[0, 4, 0, 0, 0, 1]),
        &[PROTOCOL_ERROR],
    )
    .await
}

async fn s6_5_3_settings_length_not_multiple_of_6(c: Ctx) -> Check {
    conn_error(c, frame(SETTINGS, 0, 0, &[0, 4, 0, 0]), &[FRAME_SIZE_ERROR]).await
}

async fn s6_5_2_1_enable_push_2(c: Ctx) -> Check {
    conn_error(c, settings(&[(SETTINGS_ENABLE_PUSH, 2)]), &[PROTOCOL_ERROR]).await
}

async fn s6_5_2_2_initial_window_size_over_max(c: Ctx) -> Check {
    conn_error(
        c,
        settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 1 << 31)]),
        &[FLOW_CONTROL_ERROR],
    )
    .await
}

async fn s6_5_2_3_max_frame_size_too_small(c: Ctx) -> Check {
    conn_error(
        c,
        settings(&[(SETTINGS_MAX_FRAME_SIZE, 16383)]),
        &[PROTOCOL_ERROR],
    )
    .await
}

async fn s6_5_2_4_max_frame_size_too_large(c: Ctx) -> Check {
    conn_error(
        c,
        settings(&[(SETTINGS_MAX_FRAME_SIZE, 1 << 24)]),
        &[PROTOCOL_ERROR],
    )
    .await
}

async fn settings_acked(h: &mut H2) -> Check {
    h.until(T, |f| {
        (f.ty == SETTINGS && f.flags & ACK != 0).then_some(())
    })
    .await
    .map_err(|e| format!("expected a SETTINGS ACK: {e}"))
}

async fn s6_5_2_5_unknown_setting(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &settings(&[(0xff, 1)])).await?;
    settings_acked(&mut h).await?;
    h.expect_alive(T).await
}

/// The first DATA frame of `stream`'s response must carry exactly `n` bytes (a window of `n`).
async fn first_data_of(h: &mut H2, stream: u32, n: usize) -> Check {
    let len = h
        .until(T, |f| {
            (f.ty == DATA && f.stream == stream).then_some(f.payload.len())
        })
        .await
        .map_err(|e| format!("expected a DATA frame of {n} bytes: {e}"))?;
    if len != n {
        return Err(format!("DATA of {len} bytes with a window of {n}"));
    }
    // And nothing more until the window grows.
    match h
        .until(Duration::from_millis(300), |f| {
            (f.ty == DATA && f.stream == stream).then_some(f.payload.len())
        })
        .await
    {
        Ok(more) => Err(format!(
            "another DATA frame of {more} bytes beyond a window of {n}"
        )),
        Err(_) => Ok(()),
    }
}

async fn s6_5_3_1_settings_values_in_order(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    // The last value wins: a window of 1.
    send(
        &mut h,
        &settings(&[
            (SETTINGS_INITIAL_WINDOW_SIZE, 100),
            (SETTINGS_INITIAL_WINDOW_SIZE, 1),
        ]),
    )
    .await?;
    settings_acked(&mut h).await?;
    send(&mut h, &request(1, "/", &[], true)).await?;
    first_data_of(&mut h, 1, 1).await
}

async fn s6_5_3_2_settings_acknowledged(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &settings(&[(SETTINGS_MAX_CONCURRENT_STREAMS, 100)])).await?;
    settings_acked(&mut h).await
}

// ---- 6.7 PING, 6.8 GOAWAY, 6.9 WINDOW_UPDATE -------------------------------------------------

async fn s6_7_1_ping_answered(c: Ctx) -> Check {
    open(&c).await?.expect_alive(T).await
}

async fn s6_7_2_ping_ack_not_answered(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let (acked, asked) = (*b"ack-ack!", *b"asked!!!");
    send(&mut h, &cat(&[frame(PING, ACK, 0, &acked), ping(asked)])).await?;
    let p = h
        .until(T, |f| {
            (f.ty == PING && f.flags & ACK != 0).then(|| f.payload.clone())
        })
        .await?;
    if p != asked {
        return Err(format!("the server answered a PING ACK (payload {p:?})"));
    }
    Ok(())
}

async fn s6_7_3_ping_stream_1(c: Ctx) -> Check {
    conn_error(c, frame(PING, 0, 1, b"12345678"), &[PROTOCOL_ERROR]).await
}

async fn s6_7_4_ping_length_6(c: Ctx) -> Check {
    conn_error(c, bad_ping(), &[FRAME_SIZE_ERROR]).await
}

async fn s6_8_1_goaway_stream_1(c: Ctx) -> Check {
    let mut p = 0u32.to_be_bytes().to_vec();
    p.extend_from_slice(&NO_ERROR.to_be_bytes());
    conn_error(c, frame(GOAWAY, 0, 1, &p), &[PROTOCOL_ERROR]).await
}

async fn s6_9_1_window_update_0_connection(c: Ctx) -> Check {
    conn_error(c, window_update(0, 0), &[PROTOCOL_ERROR]).await
}

async fn s6_9_2_window_update_0_stream(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &cat(&[post(1, "/", &[]), window_update(1, 0)])).await?;
    h.expect_stream_error(1, &[PROTOCOL_ERROR], T).await
}

async fn s6_9_3_window_update_length_3(c: Ctx) -> Check {
    conn_error(
        c,
        frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1]),
        &[FRAME_SIZE_ERROR],
    )
    .await
}

async fn s6_9_1_1_window_1_data_of_1(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 1)])).await?;
    settings_acked(&mut h).await?;
    send(&mut h, &request(1, "/", &[], true)).await?;
    first_data_of(&mut h, 1, 1).await
}

async fn s6_9_1_2_connection_window_overflow(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(
        &mut h,
        &cat(&[window_update(0, 0x7fff_ffff), window_update(0, 0x7fff_ffff)]),
    )
    .await?;
    let f = h
        .until(T, |f| (f.ty == GOAWAY).then(|| (f.code(), f.to_string())))
        .await
        .map_err(|e| format!("expected GOAWAY(FLOW_CONTROL_ERROR): {e}"))?;
    match f.0 {
        Some(FLOW_CONTROL_ERROR) => Ok(()),
        _ => Err(format!("expected GOAWAY(FLOW_CONTROL_ERROR), got {}", f.1)),
    }
}

async fn s6_9_1_3_stream_window_overflow(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(
        &mut h,
        &cat(&[
            half_closed(),
            window_update(1, 0x7fff_ffff),
            window_update(1, 0x7fff_ffff),
        ]),
    )
    .await?;
    let f = h
        .until(T, |f| {
            ((f.ty == RST_STREAM && f.stream == 1) || f.ty == GOAWAY)
                .then(|| (f.ty, f.code(), f.to_string()))
        })
        .await
        .map_err(|e| format!("expected RST_STREAM(1, FLOW_CONTROL_ERROR): {e}"))?;
    match f {
        (RST_STREAM, Some(FLOW_CONTROL_ERROR), _) => Ok(()),
        (_, _, s) => Err(format!(
            "expected RST_STREAM(1, FLOW_CONTROL_ERROR), got {s}"
        )),
    }
}

async fn s6_9_2_1_initial_window_change_applies_to_open_streams(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 0)])).await?;
    settings_acked(&mut h).await?;
    send(&mut h, &request(1, "/", &[], true)).await?;
    // The response waits for window; then the stream's window becomes 1.
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(&mut h, &settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 1)])).await?;
    first_data_of(&mut h, 1, 1).await
}

async fn s6_9_2_2_negative_window(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 5)])).await?;
    settings_acked(&mut h).await?;
    send(&mut h, &request(1, "/", &[], true)).await?;
    first_data_of(&mut h, 1, 5).await?;
    // The window goes from 0 to 3 − 5 = −2; a WINDOW_UPDATE of 3 makes it 1.
    send(&mut h, &settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 3)])).await?;
    settings_acked(&mut h).await?;
    send(&mut h, &window_update(1, 3)).await?;
    first_data_of(&mut h, 1, 1).await
}

async fn s6_9_2_3_initial_window_over_max(c: Ctx) -> Check {
    conn_error(
        c,
        settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 1 << 31)]),
        &[FLOW_CONTROL_ERROR],
    )
    .await
}

// ---- 6.10 CONTINUATION -------------------------------------------------------------------

async fn s6_10_1_multiple_continuation(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &continued(1, 2)).await?;
    expect_forwarded(&mut h, 1).await.map(drop)
}

fn open_block() -> Vec<u8> {
    cat(&[
        frame(HEADERS, END_STREAM, 1, &hpack(&head("POST", "/"))),
        frame(CONTINUATION, 0, 1, &hpack(&[("x-dummy", "d")])),
    ])
}

async fn s6_10_2_continuation_then_data(c: Ctx) -> Check {
    conn_error(
        c,
        cat(&[open_block(), data(1, b"test", true)]),
        &[PROTOCOL_ERROR],
    )
    .await
}

async fn s6_10_3_continuation_stream_0(c: Ctx) -> Check {
    let b = cat(&[
        frame(HEADERS, END_STREAM, 1, &hpack(&head("GET", "/"))),
        frame(CONTINUATION, END_HEADERS, 0, &hpack(&[("x-dummy", "d")])),
    ]);
    conn_error(c, b, &[PROTOCOL_ERROR]).await
}

async fn s6_10_4_continuation_after_end_headers(c: Ctx) -> Check {
    let b = cat(&[
        request(1, "/slow?ms=500", &[], true),
        frame(CONTINUATION, END_HEADERS, 1, &hpack(&[("x-dummy", "d")])),
    ]);
    conn_error(c, b, &[PROTOCOL_ERROR]).await
}

async fn s6_10_5_continuation_after_continuation_end_headers(c: Ctx) -> Check {
    let b = cat(&[
        frame(HEADERS, END_STREAM, 1, &hpack(&head("GET", "/slow?ms=500"))),
        frame(CONTINUATION, END_HEADERS, 1, &hpack(&[("x-dummy", "d")])),
        frame(CONTINUATION, END_HEADERS, 1, &hpack(&[("x-dummy", "d")])),
    ]);
    conn_error(c, b, &[PROTOCOL_ERROR]).await
}

async fn s6_10_6_continuation_after_data(c: Ctx) -> Check {
    let b = cat(&[
        post(1, "/slow?ms=500", &[]),
        data(1, b"test", true),
        frame(CONTINUATION, END_HEADERS, 1, &hpack(&[("x-dummy", "d")])),
    ]);
    conn_error(c, b, &[PROTOCOL_ERROR]).await
}

// ---- 7 error codes -----------------------------------------------------------------------

async fn s7_1_goaway_unknown_code(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let p = *b"unknown!";
    send(&mut h, &cat(&[goaway(0, 0xff), ping(p)])).await?;
    let until = Instant::now() + T;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match h.next(left).await {
            Got::Frame(f) if f.ty == PING && f.flags & ACK != 0 && f.payload == p => return Ok(()),
            Got::Frame(f) if f.ty == GOAWAY && f.code() != Some(NO_ERROR) => {
                return Err(format!(
                    "a GOAWAY with an unknown code made the server answer {f}"
                ));
            }
            Got::Frame(_) => {}
            Got::Closed => return Ok(()),
            Got::Quiet => break,
        }
    }
    Err(format!(
        "expected a PING ACK or a close; frames: {}",
        h.trace()
    ))
}

async fn s7_2_rst_stream_unknown_code(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &cat(&[post(1, "/", &[]), rst(1, 0xff)])).await?;
    h.expect_alive(T).await
}

// ---- 8.1 HTTP request/response exchange -----------------------------------------------------

async fn s8_1_1_second_headers_without_end_stream(c: Ctx) -> Check {
    let b = cat(&[
        post(1, "/", &[]),
        data(1, b"test", false),
        headers(1, &[("x-trailer", "no end")], END_HEADERS),
    ]);
    let mut h = open(&c).await?;
    send(&mut h, &b).await?;
    h.expect_stream_error(1, &[PROTOCOL_ERROR], T).await
}

fn with(extra: &[(&str, &str)]) -> Vec<u8> {
    let mut f = head("GET", "/");
    f.extend_from_slice(extra);
    headers(1, &f, END_HEADERS | END_STREAM)
}

async fn s8_1_2_1_uppercase_field_name(c: Ctx) -> Check {
    malformed(c, with(&[("X-TEST", "ok")])).await
}
async fn s8_1_2_1_1_unknown_pseudo_header(c: Ctx) -> Check {
    malformed(c, with(&[(":test", "ok")])).await
}
async fn s8_1_2_1_2_response_pseudo_header(c: Ctx) -> Check {
    malformed(c, with(&[(":status", "200")])).await
}
async fn s8_1_2_1_3_pseudo_header_in_trailers(c: Ctx) -> Check {
    let b = cat(&[
        post(1, "/", &[]),
        data(1, b"test", false),
        headers(1, &[(":method", "POST")], END_HEADERS | END_STREAM),
    ]);
    let mut h = open(&c).await?;
    send(&mut h, &b).await?;
    h.expect_stream_error(1, &[PROTOCOL_ERROR], T).await
}
async fn s8_1_2_1_4_pseudo_header_after_regular(c: Ctx) -> Check {
    let f = [
        (":method", "GET"),
        (":scheme", "http"),
        ("x-test", "ok"),
        (":path", "/"),
        (":authority", "app.test"),
    ];
    malformed(c, headers(1, &f, END_HEADERS | END_STREAM)).await
}
async fn s8_1_2_2_1_connection_specific_field(c: Ctx) -> Check {
    malformed(c, with(&[("connection", "keep-alive")])).await
}
async fn s8_1_2_2_2_te_other_than_trailers(c: Ctx) -> Check {
    malformed(c, with(&[("te", "trailers, deflate")])).await
}

fn without(name: &str) -> Vec<u8> {
    let f: Vec<_> = head("GET", "/")
        .into_iter()
        .filter(|(n, _)| *n != name)
        .collect();
    headers(1, &f, END_HEADERS | END_STREAM)
}

async fn s8_1_2_3_1_empty_path(c: Ctx) -> Check {
    malformed(c, headers(1, &head("GET", ""), END_HEADERS | END_STREAM)).await
}
async fn s8_1_2_3_2_no_method(c: Ctx) -> Check {
    malformed(c, without(":method")).await
}
async fn s8_1_2_3_3_no_scheme(c: Ctx) -> Check {
    malformed(c, without(":scheme")).await
}
async fn s8_1_2_3_4_no_path(c: Ctx) -> Check {
    malformed(c, without(":path")).await
}
async fn s8_1_2_3_5_two_methods(c: Ctx) -> Check {
    malformed(c, with(&[(":method", "GET")])).await
}
async fn s8_1_2_3_6_two_schemes(c: Ctx) -> Check {
    malformed(c, with(&[(":scheme", "http")])).await
}
async fn s8_1_2_3_7_two_paths(c: Ctx) -> Check {
    malformed(c, with(&[(":path", "/")])).await
}

async fn content_length_mismatch(c: Ctx, frames: Vec<u8>) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &frames).await?;
    h.expect_stream_error(1, &[PROTOCOL_ERROR], T).await
}
async fn s8_1_2_6_1_content_length_above_data(c: Ctx) -> Check {
    content_length_mismatch(
        c,
        cat(&[
            post(1, "/", &[("content-length", "8")]),
            data(1, b"test", true),
        ]),
    )
    .await
}
async fn s8_1_2_6_2_content_length_below_data(c: Ctx) -> Check {
    content_length_mismatch(
        c,
        cat(&[
            post(1, "/", &[("content-length", "4")]),
            data(1, b"test", false),
            data(1, b"test", true),
        ]),
    )
    .await
}

async fn s8_2_1_push_promise_from_client(c: Ctx) -> Check {
    let mut p = 2u32.to_be_bytes().to_vec();
    p.extend(hpack(&head("GET", "/")));
    conn_error(
        c,
        cat(&[half_closed(), frame(PUSH_PROMISE, END_HEADERS, 1, &p)]),
        &[PROTOCOL_ERROR],
    )
    .await
}

// ---- RFC 9113 field rules beyond h2spec ------------------------------------------------

/// A malformed request (RFC 9113 §8.1.1): "Intermediaries … MUST NOT forward a malformed
/// request", it is a stream error of type PROTOCOL_ERROR and a server MAY answer first. So:
/// RST_STREAM(PROTOCOL_ERROR), a connection error PROTOCOL_ERROR, or weir's own response,
/// and nothing reaches the target.
async fn refused(c: Ctx, bytes: Vec<u8>) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &bytes).await?;
    let what = h
        .until(T, |f| {
            ((f.stream == 1 && (f.ty == RST_STREAM || f.ty == HEADERS)) || f.ty == GOAWAY)
                .then(|| (f.ty, f.code(), f.to_string()))
        })
        .await;
    match what {
        Ok((HEADERS, _, _)) => {
            let (body, _) = h.body(1, T).await;
            if body.contains("backend=conf") {
                return Err(format!("the malformed request was forwarded: {body:?}"));
            }
        }
        Ok((_, Some(PROTOCOL_ERROR), _)) => {}
        Ok((_, _, f)) => return Err(format!("expected RST_STREAM(1, PROTOCOL_ERROR), got {f}")),
        Err(e) if e.starts_with("connection closed") => {}
        Err(e) => return Err(format!("expected a refusal of a malformed request: {e}")),
    }
    // The target must not have seen it (give a forwarded request time to arrive).
    tokio::time::sleep(Duration::from_millis(100)).await;
    nothing_forwarded(&c)
}

async fn x8_2_1_value_with_crlf(c: Ctx) -> Check {
    refused(c, with(&[("x-test", "a\r\nx-injected: 1")])).await
}
async fn x8_2_1_value_with_lf(c: Ctx) -> Check {
    refused(c, with(&[("x-test", "a\nx-injected: 1")])).await
}
async fn x8_2_1_value_with_nul(c: Ctx) -> Check {
    refused(c, with(&[("x-test", "a\0b")])).await
}
async fn x8_2_1_value_with_leading_space(c: Ctx) -> Check {
    refused(c, with(&[("x-test", " a")])).await
}
async fn x8_2_1_value_with_trailing_tab(c: Ctx) -> Check {
    refused(c, with(&[("x-test", "a\t")])).await
}
async fn x8_2_1_name_with_space(c: Ctx) -> Check {
    refused(c, with(&[("x test", "a")])).await
}
async fn x8_2_1_name_with_colon(c: Ctx) -> Check {
    refused(c, with(&[("x:test", "a")])).await
}
async fn x8_2_1_empty_name(c: Ctx) -> Check {
    refused(c, with(&[("", "a")])).await
}
async fn x8_2_2_transfer_encoding(c: Ctx) -> Check {
    let b = cat(&[
        post(1, "/", &[("transfer-encoding", "chunked")]),
        data(1, b"0\r\n\r\n", true),
    ]);
    refused(c, b).await
}
async fn x8_2_2_upgrade(c: Ctx) -> Check {
    refused(c, with(&[("upgrade", "websocket")])).await
}
async fn x8_2_2_keep_alive(c: Ctx) -> Check {
    refused(c, with(&[("keep-alive", "timeout=5")])).await
}
async fn x8_2_2_proxy_connection(c: Ctx) -> Check {
    refused(c, with(&[("proxy-connection", "keep-alive")])).await
}
async fn x8_2_2_te_trailers_is_accepted(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &with(&[("te", "trailers")])).await?;
    expect_forwarded(&mut h, 1).await.map(drop)
}
async fn x8_3_1_authority_with_userinfo(c: Ctx) -> Check {
    let f = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "user:pw@app.test"),
        (":path", "/"),
    ];
    refused(c, headers(1, &f, END_HEADERS | END_STREAM)).await
}
async fn x8_3_1_path_not_absolute(c: Ctx) -> Check {
    refused(
        c,
        headers(1, &head("GET", "index.html"), END_HEADERS | END_STREAM),
    )
    .await
}
/// `#` is in neither absolute-path nor query (§8.3.1): the `http` crate cuts a fragment from a
/// path, so `/a#/../admin` was forwarded as `GET /a`.
async fn x8_3_1_path_with_fragment(c: Ctx) -> Check {
    refused(
        c,
        headers(1, &head("GET", "/a#/../admin"), END_HEADERS | END_STREAM),
    )
    .await
}
/// §8.3.1: `:authority` and `host`, when present, MUST NOT be empty (an empty `:authority`
/// beside a `host` was forwarded with the `host`'s name; without one, weir's address).
async fn x8_3_1_empty_authority(c: Ctx) -> Check {
    let f = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", ""),
        (":path", "/"),
        ("host", "app.test"),
    ];
    refused(c, headers(1, &f, END_HEADERS | END_STREAM)).await
}
/// §8.3.1: `*` is OPTIONS's only (RFC 9112 §3.2.4); `GET * HTTP/1.1` reached the target.
async fn x8_3_1_asterisk_for_get(c: Ctx) -> Check {
    refused(c, headers(1, &head("GET", "*"), END_HEADERS | END_STREAM)).await
}
/// §8.3.1: an intermediary forwarding over HTTP/1.1 MUST make `Host` from `:authority` when
/// the request has none: `OPTIONS *` with `:authority app.test` reached the target with
/// weir's own address as its Host.
async fn x8_3_1_options_asterisk_host_from_authority(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(
        &mut h,
        &headers(1, &head("OPTIONS", "*"), END_HEADERS | END_STREAM),
    )
    .await?;
    let body = expect_forwarded(&mut h, 1).await?;
    if !body.contains("\nOPTIONS * HTTP/1.1\n") || !body.contains("\nhost: app.test:") {
        return Err(format!(
            "expected OPTIONS * with host app.test, got {body:?}"
        ));
    }
    Ok(())
}
async fn x8_1_1_content_length_not_a_number(c: Ctx) -> Check {
    let b = cat(&[
        post(1, "/", &[("content-length", "4x")]),
        data(1, b"test", true),
    ]);
    refused(c, b).await
}
async fn x8_1_1_two_content_lengths(c: Ctx) -> Check {
    let b = cat(&[
        post(1, "/", &[("content-length", "4"), ("content-length", "5")]),
        data(1, b"test", true),
    ]);
    refused(c, b).await
}

// ---- what the server sends ---------------------------------------------------------------

/// RFC 9113 §6.9.1 and §4.2: with stream windows of 1 MiB but the connection's left at
/// 65,535, eight responses of ~15 KiB each stop at 65,535 bytes in all until a WINDOW_UPDATE
/// on stream 0; no frame is larger than SETTINGS_MAX_FRAME_SIZE (16,384); then all complete.
async fn x6_9_1_connection_window_and_frame_size_respected(c: Ctx) -> Check {
    let mut h = open_with(&c, &[(SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20)]).await?;
    // The backend echoes the request's fields: a 14 KiB field makes a ~15 KiB body.
    let big = "e".repeat(14 * 1024);
    let mut b = Vec::new();
    for i in 0..8u32 {
        b.extend(request(1 + 2 * i, "/", &[("x-echo", &big)], true));
    }
    send(&mut h, &b).await?;
    let (mut got, mut ended) = (0usize, 0);
    let mut oversize = None;
    // Read until the window is used up and 300 ms more pass quietly (or 5 s in all).
    let until = Instant::now() + Duration::from_secs(5);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        let wait = if got >= 65_535 {
            Duration::from_millis(300)
        } else {
            left
        };
        match h.next(wait.min(left)).await {
            Got::Frame(f) => {
                if f.payload.len() > 16_384 {
                    oversize = Some(f.to_string());
                }
                if f.ty == DATA {
                    got += f.payload.len();
                    ended += usize::from(f.flags & END_STREAM != 0);
                }
            }
            Got::Quiet => break, // stalled on the connection window
            Got::Closed => return Err(format!("closed; frames: {}", h.trace())),
        }
    }
    if let Some(f) = oversize {
        return Err(format!("a frame over SETTINGS_MAX_FRAME_SIZE: {f}"));
    }
    if got > 65_535 {
        return Err(format!(
            "{got} DATA bytes sent on a connection window of 65,535"
        ));
    }
    if got < 60_000 {
        return Err(format!(
            "only {got} of the 65,535 bytes the window allows came"
        ));
    }
    send(&mut h, &window_update(0, 1 << 20)).await?;
    let until = Instant::now() + T;
    while ended < 8 {
        let Some(left) = until.checked_duration_since(Instant::now()) else {
            return Err(format!(
                "{ended} of 8 responses ended after the WINDOW_UPDATE"
            ));
        };
        match h.next(left).await {
            Got::Frame(f) if f.ty == DATA => {
                if f.payload.len() > 16_384 {
                    return Err(format!("a frame over SETTINGS_MAX_FRAME_SIZE: {f}"));
                }
                ended += usize::from(f.flags & END_STREAM != 0);
            }
            Got::Frame(_) => {}
            other => return Err(format!("{ended} of 8 responses ended: {other:?}")),
        }
    }
    Ok(())
}

/// One HPACK representation of a header block: (kind, index), kind one of `indexed`,
/// `incremental`, `size-update`, `literal`; index 0 for a new name.
fn hpack_walk(mut b: &[u8]) -> Result<Vec<(&'static str, usize)>, String> {
    fn int(b: &mut &[u8], n: u32) -> Result<usize, String> {
        let max = (1usize << n) - 1;
        let (&first, rest) = b.split_first().ok_or("truncated integer")?;
        *b = rest;
        let mut v = usize::from(first) & max;
        if v < max {
            return Ok(v);
        }
        let mut shift = 0;
        loop {
            let (&x, rest) = b.split_first().ok_or("truncated integer")?;
            *b = rest;
            v += (usize::from(x) & 0x7f) << shift;
            shift += 7;
            if x & 0x80 == 0 || shift > 28 {
                return Ok(v);
            }
        }
    }
    fn string(b: &mut &[u8]) -> Result<(), String> {
        let len = int(b, 7)?;
        if b.len() < len {
            return Err("truncated string".into());
        }
        *b = &b[len..];
        Ok(())
    }
    let mut out = Vec::new();
    while let Some(&first) = b.first() {
        let (kind, n) = match first {
            x if x & 0x80 != 0 => ("indexed", 7),
            x if x & 0xc0 == 0x40 => ("incremental", 6),
            x if x & 0xe0 == 0x20 => ("size-update", 5),
            _ => ("literal", 4),
        };
        let idx = int(&mut b, n)?;
        if kind == "incremental" || kind == "literal" {
            if idx == 0 {
                string(&mut b)?;
            }
            string(&mut b)?;
        }
        out.push((kind, idx));
    }
    Ok(out)
}

/// RFC 7541 §4.2 and §6.3: a client that sets SETTINGS_HEADER_TABLE_SIZE to 0 gets a dynamic
/// table size update of 0 at the start of the first header block after it, and no field
/// refers to the dynamic table (an index over 61).
async fn xhp4_2_table_size_0_honoured(c: Ctx) -> Check {
    let mut h = open_with(&c, &[(SETTINGS_HEADER_TABLE_SIZE, 0)]).await?;
    let mut blocks = Vec::new();
    for i in 0..3u32 {
        let id = 1 + 2 * i;
        send(&mut h, &request(id, "/", &[], true)).await?;
        let block = h
            .until(T, |f| {
                (f.ty == HEADERS && f.stream == id).then(|| f.payload.clone())
            })
            .await?;
        h.body(id, T).await;
        blocks.push(block);
    }
    for (i, block) in blocks.iter().enumerate() {
        let reps = hpack_walk(block).map_err(|e| format!("response {i}: {e}: {block:02x?}"))?;
        if i == 0 && reps.first() != Some(&("size-update", 0)) {
            return Err(format!(
                "the first response's block does not begin with a size update to 0: {reps:?}"
            ));
        }
        if let Some(r) = reps
            .iter()
            .find(|(k, idx)| *k != "size-update" && *idx > 61)
        {
            return Err(format!(
                "response {i} refers to the dynamic table ({r:?}) after SETTINGS_HEADER_TABLE_SIZE 0"
            ));
        }
        if let Some(r) = reps.iter().find(|(k, idx)| *k == "size-update" && *idx > 0) {
            return Err(format!("response {i} raises the table over 0: {r:?}"));
        }
    }
    Ok(())
}

/// RFC 9113 §5.1.1: a client may open its first stream at 2³¹−1 (the last one it can open).
async fn x5_1_1_highest_stream_id(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &request(0x7fff_ffff, "/", &[], true)).await?;
    expect_forwarded(&mut h, 0x7fff_ffff).await.map(drop)
}

/// RFC 9113 §6.8: a worker that stops sends GOAWAY(NO_ERROR) whose last stream identifier
/// covers the stream in flight, which still gets its whole response; a stream the client
/// opens after the GOAWAY is not forwarded; then the connection closes.
async fn x6_8_goaway_on_shutdown_finishes_streams(c: Ctx) -> Check {
    let be = backend("drain").await;
    let port = free_port();
    let w = start(&format!(
        r#"
[load_balancer]
{}
drain_timeout_seconds = 5
[[listener]]
address = "127.0.0.1"
port = {port}
default_action = {{ type = "forward", target_group = "t" }}
[[target_group]]
name = "t"
target = [{{ id = "127.0.0.1", port = {} }}]
"#,
        engine_key(c.engine),
        be.addr.port()
    ));
    let mut h = H2::connect(port, &[]).await;
    send(&mut h, &request(1, "/slow?ms=1500", &[], true)).await?;
    let hits = be.hits.clone();
    let reached = async {
        let until = Instant::now() + T;
        while hits.load(SeqCst) == 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        hits.load(SeqCst) == 1
    };
    if !reached.await {
        return Err("the request did not reach the target".into());
    }
    let stopping = tokio::spawn(w.stop());
    // A graceful shutdown may take two GOAWAYs (the first with the highest identifier, the
    // last naming the last stream processed): read them until the last is below 2³¹−1.
    let mut goaways = Vec::new();
    let last = h
        .until(T, |f| {
            if f.ty != GOAWAY {
                return None;
            }
            let p = &f.payload;
            let last = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff;
            goaways.push((last, f.code()));
            (f.code() != Some(NO_ERROR) || last < 0x7fff_ffff).then_some((last, f.code()))
        })
        .await
        .map_err(|e| format!("expected a GOAWAY when the worker stops (got {goaways:?}): {e}"))?;
    if last.1 != Some(NO_ERROR) || last.0 != 1 {
        return Err(format!(
            "expected GOAWAY(NO_ERROR) with last stream 1, got last {} code {:?}",
            last.0, last.1
        ));
    }
    // A stream opened after it is not processed.
    let _ = h.send(&request(3, "/late", &[], true)).await;
    let body = h
        .expect_response(1, T)
        .await
        .map_err(|e| format!("the stream in flight did not finish after the GOAWAY: {e}"))?;
    if !body.contains("backend=drain") {
        return Err(format!("stream 1's response: {body:?}"));
    }
    if h.closed_within(Duration::from_secs(6)).await.is_none() {
        return Err("the connection stayed open after its last stream".into());
    }
    let _ = stopping.await;
    match be.hits.load(SeqCst) {
        1 => Ok(()),
        n => Err(format!(
            "{n} requests reached the target: one opened after the GOAWAY was forwarded"
        )),
    }
}

// ---- legitimate traffic the protections must let through ----------------------------------

/// A body ended by an empty DATA frame with END_STREAM (what many clients send).
async fn l_empty_data_with_end_stream(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &cat(&[post(1, "/", &[]), data(1, b"", true)])).await?;
    body_bytes(&mut h, 1, 0).await
}

/// A body of 2,000 one-byte DATA frames: each carries data, none is a flood frame.
async fn l_many_small_data_frames(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let mut b = post(1, "/", &[]);
    for i in 0..2000 {
        b.extend(data(1, b"x", i == 1999));
    }
    send(&mut h, &b).await?;
    body_bytes(&mut h, 1, 2000).await
}

/// Firefox's old priority tree: PRIORITY frames for idle streams 3–11, then requests on 13
/// and 15 that depend on them.
async fn l_priority_tree_of_idle_streams(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let mut b = cat(&[
        priority(3, 0, false, 201),
        priority(5, 0, false, 101),
        priority(7, 0, false, 1),
        priority(9, 7, false, 1),
        priority(11, 3, false, 1),
    ]);
    for id in [13u32, 15] {
        let mut p = 11u32.to_be_bytes().to_vec();
        p.push(41);
        p.extend(hpack(&head("GET", "/")));
        b.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM | PRIORITY_FLAG,
            id,
            &p,
        ));
    }
    send(&mut h, &b).await?;
    let bodies = h.expect_responses(&[13, 15], T).await?;
    match bodies.iter().find(|b| !b.contains("backend=conf")) {
        Some(b) => Err(format!("expected the backend's answer, got body {b:?}")),
        None => Ok(()),
    }
}

/// 200 requests, one in four cancelled at once (a browser navigating away now and then): no
/// GOAWAY, every other request answered.
async fn l_some_cancelled_streams(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    for i in 0..200u32 {
        let id = 1 + 2 * i;
        if i % 4 == 3 {
            send(
                &mut h,
                &cat(&[request(id, "/", &[], true), rst(id, CANCEL)]),
            )
            .await?;
            continue;
        }
        send(&mut h, &request(id, "/", &[], true)).await?;
        expect_forwarded(&mut h, id)
            .await
            .map_err(|e| format!("request {i} of 200 (every 4th cancelled): {e}"))?;
    }
    if let Ok(f) = h
        .until(Duration::from_millis(300), |f| {
            (f.ty == GOAWAY).then(|| f.to_string())
        })
        .await
    {
        return Err(format!("{f} for 50 cancelled streams of 200"));
    }
    Ok(())
}

// ---- protections ----

/// An HPACK bomb: a 4,000-byte field put in the dynamic table once, then referred to 2,000
/// times by one-byte indexed fields: 6 KiB on the wire, ~8 MB decoded. The header
/// list limit applies to the decoded size (RFC 9113 §6.5.2): refused, never forwarded, memory
/// bounded, and others still served.
async fn p_hpack_bomb(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let mut block = indexed_base();
    block.push(0x40);
    hpack_str(&mut block, b"x-bomb");
    hpack_str(&mut block, "b".repeat(4000).as_bytes());
    block.extend(std::iter::repeat_n(0x80 | 62, 2000));
    let mut b = frame(HEADERS, END_STREAM, 1, &block[..4000]);
    b.extend(frame(CONTINUATION, END_HEADERS, 1, &block[4000..]));
    let rss0 = rss_bytes();
    send(&mut h, &b).await?;
    let reaction = h
        .until(T, |f| {
            ((f.stream == 1 && (f.ty == HEADERS || f.ty == RST_STREAM)) || f.ty == GOAWAY)
                .then(|| f.to_string())
        })
        .await;
    let growth = rss_bytes().saturating_sub(rss0);
    let reaction = match reaction {
        Ok(r) => r,
        Err(e) if e.starts_with("connection closed") => "close".into(),
        Err(e) => {
            return Err(format!(
                "expected a refusal of an 8 MB decoded header list: {e}"
            ));
        }
    };
    eprintln!(
        "[{}] HPACK bomb ({} bytes on the wire): {reaction}, RSS +{} KiB",
        c.engine,
        block.len(),
        growth >> 10
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    nothing_forwarded(&c)?;
    if growth > 16 << 20 {
        return Err(format!("RSS grew by {} KiB", growth >> 10));
    }
    let mut other = open(&c).await?;
    send(&mut other, &request(1, "/", &[], true)).await?;
    expect_forwarded(&mut other, 1).await.map(drop)
}

/// Reads whatever the server sent so far without waiting; `Err` once it closed.
async fn drain(h: &mut H2, goaways: &mut Vec<u32>) -> Result<(), ()> {
    loop {
        match h.next(Duration::from_millis(1)).await {
            Got::Frame(f) if f.ty == GOAWAY => goaways.push(f.code().unwrap_or(u32::MAX)),
            Got::Frame(_) => {}
            Got::Quiet => return Ok(()),
            Got::Closed => return Err(()),
        }
    }
}

/// The reaction to a flood: a GOAWAY with ENHANCE_YOUR_CALM among those seen (reading on for
/// up to `T`), then the connection closed.
async fn calmed(h: &mut H2, mut goaways: Vec<u32>, what: &str) -> Check {
    let until = Instant::now() + T;
    let mut closed = false;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match h.next(left).await {
            Got::Frame(f) if f.ty == GOAWAY => goaways.push(f.code().unwrap_or(u32::MAX)),
            Got::Frame(_) => {}
            Got::Closed => {
                closed = true;
                break;
            }
            Got::Quiet => break,
        }
        if goaways.contains(&ENHANCE_YOUR_CALM) {
            break;
        }
    }
    if goaways.contains(&ENHANCE_YOUR_CALM) {
        return Ok(());
    }
    if goaways.is_empty() && h.reset {
        // The server reset the connection with the flood unread: the GOAWAY it sent first
        // was dropped by TCP with the rest of what the client had not read.
        eprintln!("{what}: connection reset, its GOAWAY not observable");
        return Ok(());
    }
    let seen: Vec<String> = goaways.iter().map(|c| code_name(*c)).collect();
    Err(format!(
        "{what}: expected GOAWAY(ENHANCE_YOUR_CALM), got GOAWAYs {seen:?}, closed: {closed}"
    ))
}

/// Rapid reset (CVE-2023-44487): HEADERS + RST_STREAM pairs as fast as they can be written.
async fn p_rapid_reset_flood(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let mut goaways = Vec::new();
    let mut sent = 0u32;
    'flood: for batch in 0..20u32 {
        let mut b = Vec::new();
        for i in 0..50 {
            let id = 1 + 2 * (batch * 50 + i);
            b.extend(request(id, "/slow?ms=2000", &[], true));
            b.extend(rst(id, CANCEL));
        }
        if h.send(&b).await.is_err() {
            break;
        }
        sent += 50;
        if drain(&mut h, &mut goaways).await.is_err() || !goaways.is_empty() {
            break 'flood;
        }
    }
    eprintln!(
        "[{}] rapid reset: {sent} streams sent and reset, {} reached the backend, GOAWAYs {goaways:?}",
        c.engine,
        c.hits.load(SeqCst)
    );
    calmed(&mut h, goaways, &format!("{sent} streams reset")).await?;
    if sent > 500 {
        return Err(format!("{sent} reset streams before the GOAWAY"));
    }
    Ok(())
}

/// MadeYouReset (CVE-2025-8671): streams the server must reset (a WINDOW_UPDATE overflowing
/// the stream's window) in batches of 20.
async fn p_made_you_reset(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let mut goaways = Vec::new();
    let mut sent = 0u32;
    for batch in 0..25u32 {
        let mut b = Vec::new();
        for i in 0..20 {
            let id = 1 + 2 * (batch * 20 + i);
            b.extend(request(id, "/slow?ms=300", &[], true));
            b.extend(window_update(id, 0x7fff_ffff));
            b.extend(window_update(id, 0x7fff_ffff));
        }
        if h.send(&b).await.is_err() {
            break;
        }
        sent += 20;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if drain(&mut h, &mut goaways).await.is_err() || !goaways.is_empty() {
            break;
        }
    }
    eprintln!(
        "[{}] MadeYouReset: {sent} streams, {} reached the backend, GOAWAYs {goaways:?}",
        c.engine,
        c.hits.load(SeqCst)
    );
    // Any GOAWAY ends the abuse (hyper's path: weir's own accounting sends NO_ERROR).
    let until = Instant::now() + T;
    while goaways.is_empty() {
        let Some(left) = until.checked_duration_since(Instant::now()) else {
            break;
        };
        match h.next(left).await {
            Got::Frame(f) if f.ty == GOAWAY => goaways.push(f.code().unwrap_or(u32::MAX)),
            Got::Frame(_) => {}
            Got::Closed | Got::Quiet => break,
        }
    }
    if goaways.is_empty() {
        return Err(format!("no GOAWAY after {sent} server-reset streams"));
    }
    if sent > 300 {
        return Err(format!("{sent} server-reset streams before the GOAWAY"));
    }
    Ok(())
}

/// CONTINUATION flood (2024, VU#421644): a header block that never ends, 16 KiB at a time.
/// The connection must end with a GOAWAY after a bounded amount, holding bounded memory.
async fn p_continuation_flood(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let rss0 = rss_bytes();
    let mut chunk = Vec::new();
    let v = "v".repeat(1000);
    while chunk.len() < 16 * 1024 - 1100 {
        chunk.extend(hpack(&[("x-flood", &v)]));
    }
    send(
        &mut h,
        &frame(HEADERS, END_STREAM, 1, &hpack(&head("GET", "/"))),
    )
    .await?;
    let mut goaways = Vec::new();
    let (mut sent, mut closed) = (0usize, false);
    let mut peak = rss0;
    while sent < 64 << 20 {
        let mut b = Vec::new();
        for _ in 0..16 {
            b.extend(frame(CONTINUATION, 0, 1, &chunk));
        }
        match tokio::time::timeout(T, h.send(&b)).await {
            Ok(Ok(())) => sent += b.len(),
            Ok(Err(_)) => {
                closed = true;
                break;
            }
            Err(_) => {
                return Err(format!(
                    "the server stopped reading after {} KiB of an open header block and kept the connection",
                    sent >> 10
                ));
            }
        }
        peak = peak.max(rss_bytes());
        if drain(&mut h, &mut goaways).await.is_err() {
            closed = true;
            break;
        }
    }
    let growth = peak.saturating_sub(rss0);
    eprintln!(
        "[{}] CONTINUATION flood: {} KiB sent, GOAWAYs {goaways:?}, closed {closed}, RSS +{} KiB",
        c.engine,
        sent >> 10,
        growth >> 10
    );
    if !closed && goaways.is_empty() && h.closed_within(T).await.is_some() {
        closed = true;
    }
    // A GOAWAY is required unless the connection was reset: TCP drops what the client had
    // not read yet (the GOAWAY) when the server closes with our flood unread.
    if goaways.is_empty() && !h.reset {
        return Err(format!(
            "no GOAWAY after {} KiB of CONTINUATION (closed: {closed})",
            sent >> 10
        ));
    }
    if sent > 4 << 20 {
        return Err(format!(
            "{} KiB of CONTINUATION taken before the GOAWAY",
            sent >> 10
        ));
    }
    if growth > 16 << 20 {
        return Err(format!("RSS grew by {} KiB during the flood", growth >> 10));
    }
    nothing_forwarded(&c)
}

/// A flood of `one` frames from a client that reads nothing (CVE-2019-9512 ping flood,
/// CVE-2019-9515 settings flood): the answers must not pile up in memory. The server either
/// closes the connection or stops reading (the client's writes block); either way its memory
/// stays bounded and it keeps serving others.
async fn unread_flood(c: Ctx, one: Vec<u8>, what: &str) -> Check {
    let mut h = open(&c).await?;
    let rss0 = rss_bytes();
    let mut batch = Vec::new();
    for _ in 0..1000 {
        batch.extend_from_slice(&one);
    }
    let (mut frames, mut outcome) = (0usize, "all sent");
    let mut peak = rss0;
    while frames < 500_000 {
        match tokio::time::timeout(Duration::from_secs(2), h.send(&batch)).await {
            Ok(Ok(())) => frames += 1000,
            Ok(Err(_)) => {
                outcome = "closed by the server";
                break;
            }
            Err(_) => {
                outcome = "the server stopped reading";
                break;
            }
        }
        if frames % 20_000 == 0 {
            peak = peak.max(rss_bytes());
        }
    }
    peak = peak.max(rss_bytes());
    let growth = peak.saturating_sub(rss0);
    eprintln!(
        "[{}] {what} flood, nothing read: {frames} frames, {outcome}, RSS +{} KiB",
        c.engine,
        growth >> 10
    );
    if growth > 16 << 20 {
        return Err(format!(
            "{what} flood: RSS grew by {} KiB ({frames} frames, {outcome})",
            growth >> 10
        ));
    }
    drop(h);
    // Others are still served.
    let mut other = open(&c).await?;
    send(&mut other, &request(1, "/", &[], true)).await?;
    expect_forwarded(&mut other, 1).await.map(drop)
}

async fn p_settings_flood_unread(c: Ctx) -> Check {
    unread_flood(
        c,
        settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 65_535)]),
        "SETTINGS",
    )
    .await
}

async fn p_ping_flood_unread(c: Ctx) -> Check {
    unread_flood(c, ping(*b"floodpng"), "PING").await
}

/// Empty DATA frames (CVE-2019-9518): each costs the server work and carries nothing. The
/// connection must get a GOAWAY (ENHANCE_YOUR_CALM) within 100,000 of them.
async fn p_empty_data_flood(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &post(1, "/slow?ms=5000", &[])).await?;
    let batch: Vec<u8> = (0..1000).flat_map(|_| data(1, b"", false)).collect();
    let mut goaways = Vec::new();
    let mut frames = 0;
    while frames < 100_000 {
        match tokio::time::timeout(T, h.send(&batch)).await {
            Ok(Ok(())) => frames += 1000,
            _ => break,
        }
        if drain(&mut h, &mut goaways).await.is_err() || !goaways.is_empty() {
            break;
        }
    }
    eprintln!(
        "[{}] empty DATA flood: {frames} frames, GOAWAYs {goaways:?}",
        c.engine
    );
    calmed(&mut h, goaways, &format!("{frames} empty DATA frames")).await
}

/// WINDOW_UPDATE flood: 100,000 increments of 1 (nothing to answer, nothing to queue). The
/// server either sends GOAWAY (ENHANCE_YOUR_CALM) or stays responsive: a request on the
/// same connection is answered within the usual limit.
async fn p_window_update_flood(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let batch: Vec<u8> = (0..1000).flat_map(|_| window_update(0, 1)).collect();
    let mut goaways = Vec::new();
    let mut frames = 0;
    let t0 = Instant::now();
    while frames < 100_000 {
        match tokio::time::timeout(T, h.send(&batch)).await {
            Ok(Ok(())) => frames += 1000,
            _ => break,
        }
        if drain(&mut h, &mut goaways).await.is_err() || !goaways.is_empty() {
            break;
        }
    }
    eprintln!(
        "[{}] WINDOW_UPDATE flood: {frames} frames in {:?}, GOAWAYs {goaways:?}",
        c.engine,
        t0.elapsed()
    );
    if goaways.contains(&ENHANCE_YOUR_CALM) {
        return Ok(());
    }
    if let Some(g) = goaways.first() {
        return Err(format!("WINDOW_UPDATE flood: GOAWAY({})", code_name(*g)));
    }
    send(&mut h, &request(1, "/", &[], true)).await?;
    expect_forwarded(&mut h, 1).await.map(drop)
}

/// A header list over 64 KiB (SETTINGS_MAX_HEADER_LIST_SIZE): refused (431, a stream reset,
/// or a connection error), never forwarded; 5 fields of 14 KiB in HEADERS + CONTINUATION.
async fn p_header_list_over_64_kib(c: Ctx) -> Check {
    let mut h = H2::connect(c.port, &[]).await;
    let advertised = h
        .until(T, |f| {
            (f.ty == SETTINGS && f.flags & ACK == 0)
                .then(|| setting(&f.payload, SETTINGS_MAX_HEADER_LIST_SIZE))
        })
        .await?;
    let v = "v".repeat(14 * 1024);
    let mut b = frame(HEADERS, END_STREAM, 1, &hpack(&head("GET", "/")));
    for i in 0..5 {
        let flags = if i == 4 { END_HEADERS } else { 0 };
        b.extend(frame(CONTINUATION, flags, 1, &hpack(&[("x-big", &v)])));
    }
    send(&mut h, &b).await?;
    let reaction = h
        .until(T, |f| {
            ((f.stream == 1 && (f.ty == HEADERS || f.ty == RST_STREAM)) || f.ty == GOAWAY)
                .then(|| f.to_string())
        })
        .await;
    let reaction = match reaction {
        Ok(r) => r,
        Err(e) if e.starts_with("connection closed") => "close".into(),
        Err(e) => return Err(format!("expected a refusal of a 70 KiB header list: {e}")),
    };
    eprintln!(
        "[{}] 70 KiB header list (advertised SETTINGS_MAX_HEADER_LIST_SIZE {advertised:?}): {reaction}",
        c.engine
    );
    nothing_forwarded(&c)
}

/// A connection that only answers the server's PINGs is closed at the idle timeout (2 s).
async fn p_connection_idle_deadline(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    let t0 = Instant::now();
    match h.closed_within(Duration::from_secs(6)).await {
        None => Err(format!(
            "an idle connection outlived its 2 s idle timeout by 4 s; frames: {}",
            h.trace()
        )),
        Some(_) if t0.elapsed() < Duration::from_millis(1500) => Err(format!(
            "closed after {:?}, before the idle timeout",
            t0.elapsed()
        )),
        Some(_) => Ok(()),
    }
}

/// A stream whose request body never comes (HEADERS without END_STREAM, then nothing) is
/// ended by the idle timeout (2 s): a reset, an error response, or the connection closed.
async fn p_stream_idle_deadline(c: Ctx) -> Check {
    let mut h = open(&c).await?;
    send(&mut h, &post(1, "/", &[("content-length", "10")])).await?;
    let t0 = Instant::now();
    let r = h
        .until(Duration::from_secs(6), |f| {
            ((f.stream == 1 && (f.ty == HEADERS || f.ty == RST_STREAM)) || f.ty == GOAWAY)
                .then(|| f.to_string())
        })
        .await;
    let took = t0.elapsed();
    match r {
        Err(e) if !e.starts_with("connection closed") => Err(format!(
            "a stream idle for 6 s was not ended (idle timeout 2 s): {e}"
        )),
        _ if took < Duration::from_millis(1500) => {
            Err(format!("the stream was ended after {took:?}: {r:?}"))
        }
        _ => {
            eprintln!("[{}] idle stream ended after {took:?}: {r:?}", c.engine);
            Ok(())
        }
    }
}

// ---- real clients ------------------------------------------------------------------------

/// Debian's python3 (with python3-h2, python3-httpx), not a virtualenv's.
const PYTHON: &str = "/usr/bin/python3";

const HOSTILE: &str = r#"
import json, socket, sys
import h2.config, h2.connection, h2.events
from hyperframe.frame import DataFrame, HeadersFrame

s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(3)
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
c.initiate_connection()
s.sendall(c.data_to_send())
out = {}

def hdr(m, p, *extra):
    return [(":method", m), (":scheme", "http"), (":authority", "app.test"), (":path", p)] + list(extra)

def wait(stream):
    """Reads until `stream` ends, is reset, or the connection ends; returns what happened."""
    status, body = None, b""
    while True:
        try:
            data = s.recv(65536)
        except socket.timeout:
            return {"timeout": True, "status": status}
        if not data:
            return {"closed": True, "status": status}
        try:
            events = c.receive_data(data)
        except Exception as e:
            return {"client_error": repr(e)}
        s.sendall(c.data_to_send())
        for e in events:
            if isinstance(e, h2.events.ResponseReceived) and e.stream_id == stream:
                status = dict(e.headers).get(":status")
            elif isinstance(e, h2.events.DataReceived) and e.stream_id == stream:
                body += e.data
                c.acknowledge_received_data(e.flow_controlled_length, stream)
            elif isinstance(e, h2.events.StreamEnded) and e.stream_id == stream:
                return {"status": status, "body": body.decode(errors="replace")}
            elif isinstance(e, h2.events.StreamReset) and e.stream_id == stream:
                return {"reset": int(e.error_code), "status": status}
            elif isinstance(e, h2.events.ConnectionTerminated):
                return {"goaway": int(e.error_code), "status": status}

def raw(frame):
    s.sendall(frame.serialize())

def step(name, stream):
    """Records what `stream` got; a connection that ended ends the sequence."""
    out[name] = r = wait(stream)
    if "goaway" in r or "closed" in r or "client_error" in r:
        print(json.dumps(out))
        sys.exit(0)

# 1. A plain GET.
c.send_headers(1, hdr("GET", "/one"), end_stream=True); s.sendall(c.data_to_send())
step("get", 1)
# 2. HEADERS without END_STREAM, the body later.
c.send_headers(3, hdr("POST", "/two", ("content-length", "5"))); s.sendall(c.data_to_send())
c.send_data(3, b"hello", end_stream=True); s.sendall(c.data_to_send())
step("post", 3)
# 3. A second HEADERS without END_STREAM in the middle of a body (not trailers).
c.send_headers(5, hdr("POST", "/three")); s.sendall(c.data_to_send())
c.send_data(5, b"part"); s.sendall(c.data_to_send())
f = HeadersFrame(5); f.data = c.encoder.encode([("x-late", "1")]); f.flags.add("END_HEADERS"); raw(f)
step("second_headers", 5)
# 4. The connection still serves.
c.send_headers(7, hdr("GET", "/four"), end_stream=True); s.sendall(c.data_to_send())
step("after", 7)
# 5. DATA after END_STREAM (the stream is half-closed (remote)).
c.send_headers(9, hdr("GET", "/slow?ms=300"), end_stream=True); s.sendall(c.data_to_send())
f = DataFrame(9); f.data = b"late"; f.flags.add("END_STREAM"); raw(f)
step("data_after_end_stream", 9)
# 6. HEADERS on a lower, closed stream id: a connection error.
f = HeadersFrame(3); f.data = c.encoder.encode(hdr("GET", "/six")); f.flags.add("END_HEADERS"); f.flags.add("END_STREAM"); raw(f)
step("lower_stream_id", 3)
print(json.dumps(out))
"#;

async fn rc_python_h2_hostile_order(c: Ctx) -> Check {
    let port = c.port.to_string();
    let (ok, out, err) = run(PYTHON, &["-c", HOSTILE, &port]).await;
    if !ok {
        return Err(format!("the Python h2 client failed: {err}"));
    }
    eprintln!("[{}] python h2 hostile order: {out}", c.engine);
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).map_err(|e| format!("{e}: {out}"))?;
    let step = |k: &str| v[k].clone();
    let ok_response = |k: &str, path: &str| -> Check {
        let s = step(k);
        if s["status"] == "200" && s["body"].as_str().is_some_and(|b| b.contains(path)) {
            Ok(())
        } else {
            Err(format!("{k}: expected 200 for {path}, got {s}"))
        }
    };
    ok_response("get", "/one")?;
    ok_response("post", "/two")?;
    if !step("post")["body"]
        .as_str()
        .unwrap_or("")
        .contains("body-bytes=5")
    {
        return Err(format!("post: the body did not arrive: {}", step("post")));
    }
    // A connection error ends the script's sequence: the steps after it are absent.
    let ended = |s: &serde_json::Value| s["goaway"].is_u64() || s["closed"].as_bool() == Some(true);
    let code = |s: &serde_json::Value| s["reset"].as_u64().or(s["goaway"].as_u64());
    let s = step("second_headers");
    if code(&s) != Some(u64::from(PROTOCOL_ERROR)) {
        return Err(format!(
            "second HEADERS without END_STREAM: expected PROTOCOL_ERROR, got {s}"
        ));
    }
    if ended(&s) {
        return Ok(());
    }
    ok_response("after", "/four")?;
    let s = step("data_after_end_stream");
    if code(&s) != Some(u64::from(STREAM_CLOSED)) && s["closed"].as_bool() != Some(true) {
        return Err(format!(
            "DATA after END_STREAM: expected STREAM_CLOSED, got {s}"
        ));
    }
    if ended(&s) {
        return Ok(());
    }
    let s = step("lower_stream_id");
    let c = s["goaway"].as_u64();
    if c != Some(u64::from(PROTOCOL_ERROR))
        && c != Some(u64::from(STREAM_CLOSED))
        && s["closed"].as_bool() != Some(true)
    {
        return Err(format!(
            "HEADERS on a closed lower stream: expected GOAWAY(PROTOCOL_ERROR or STREAM_CLOSED), got {s}"
        ));
    }
    Ok(())
}

const HTTPX: &str = r#"
import sys, httpx
port, ca = sys.argv[1], sys.argv[2]
ok = 0
with httpx.Client(http2=True, verify=ca, timeout=5) as client:
    for i in range(100):
        r = client.get(f"https://127.0.0.1:{port}/r{i}")
        if r.http_version == "HTTP/2" and r.status_code == 200 and f"GET /r{i} " in r.text:
            ok += 1
        else:
            print(r.http_version, r.status_code, r.text[:200], file=sys.stderr)
print(ok)
"#;

async fn rc_httpx_100_requests(c: Ctx) -> Check {
    let (port, ca) = (c.tls_port.to_string(), c.ca.display().to_string());
    let (ok, out, err) = run(PYTHON, &["-c", HTTPX, &port, &ca]).await;
    if !ok {
        return Err(format!("httpx failed: {err}"));
    }
    match out.trim() {
        "100" => Ok(()),
        n => Err(format!(
            "{n} of 100 httpx HTTP/2 requests answered by the backend: {err}"
        )),
    }
}

/// weir's engine answers the streams of one batch in the order they came: eight requests in one
/// write, each answered at once (a fixed response), get their HEADERS in stream order. Polled
/// from the end of the turn's list, the batch was answered newest first (15, 13, …, 1), so the
/// first request of a batch waited longest (its p99 under `h2load -m32` showed it).
#[tokio::test]
async fn weir_answers_a_batch_in_the_order_its_streams_came() {
    let port = free_port();
    let w = start(&format!(
        "[load_balancer]\nhttp2_engine = \"weir\"\n\
         [[listener]]\naddress = \"127.0.0.1\"\nport = {port}\n\
         default_action = {{ type = \"fixed-response\", status_code = 200, message_body = \"ok\" }}\n"
    ));
    let mut h = H2::connect(port, &[]).await;
    let ids: Vec<u32> = (0..8).map(|i| 1 + 2 * i).collect();
    let batch: Vec<u8> = ids
        .iter()
        .flat_map(|&id| request(id, &format!("/{id}"), &[], true))
        .collect();
    h.send(&batch).await.unwrap();
    let mut answered = Vec::new();
    while answered.len() < ids.len() {
        match h.next(T).await {
            Got::Frame(f) if f.ty == HEADERS => answered.push(f.stream),
            Got::Frame(_) => {}
            other => panic!("{other:?} after {answered:?}: {}", h.trace()),
        }
    }
    assert_eq!(answered, ids, "{}", h.trace());
    drop(h);
    w.stop().await;
}
