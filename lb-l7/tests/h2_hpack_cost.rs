//! An HTTP/2 client that makes weir's HPACK decoder work: header blocks of one-byte
//! Huffman-coded names and values, 6,552 strings in each 16 KB HEADERS frame. The decoder
//! weir used before session 15 (loona-hpack's) built a hash map of the Huffman code for every
//! string: 130 ms of the worker's thread per frame in a release build, so a client sending a
//! few such frames a second kept a worker busy. Now each frame costs well under a millisecond:
//! the worker answers them all and a second client's request is served without waiting.

mod common;
use common::*;
use std::time::{Duration, Instant};

#[path = "common/h2frames.rs"]
mod h2frames;
use h2frames::{END_HEADERS, END_STREAM, GOAWAY, Got, H2, HEADERS, frame, request};

/// Frames the attacker sends.
const FRAMES: u32 = 12;
/// What they may take the worker, all of them (debug build; the old decoder took ~1 s each).
const BOUND: Duration = Duration::from_secs(3);

/// A 16 KB header block of literal fields with new names, name and value each one Huffman-coded
/// byte ('a': 00011 and five bits of padding).
fn tiny_huffman_block() -> Vec<u8> {
    let mut block = Vec::new();
    while block.len() + 5 <= 16 * 1024 - 9 {
        block.extend_from_slice(&[0x00, 0x81, 0x1f, 0x81, 0x1f]);
    }
    block
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_of_tiny_huffman_strings_do_not_stall_the_worker() {
    attack("weir").await;
}

/// The same against hyper's engine (the `h2` crate's decoder, table-driven).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_of_tiny_huffman_strings_do_not_stall_a_hyper_engine_worker() {
    attack("hyper").await;
}

async fn attack(engine: &str) {
    let be = backend("be").await;
    let p = free_port();
    let engine = format!("http2_engine = \"{engine}\"");
    let toml = one_target_config(p, be.addr.port(), &engine, "", "");
    let _w = start(&toml);
    let block = tiny_huffman_block();
    let mut attacker = H2::connect(p, &[]).await;
    let started = Instant::now();
    for i in 0..FRAMES {
        let f = frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, &block);
        if attacker.send(&f).await.is_err() {
            break;
        }
    }
    // Every block is decoded (or the connection ended by glitch accounting) before the
    // worker answers the last one: read until the last stream's answer, a GOAWAY or the end.
    let last = 1 + 2 * (FRAMES - 1);
    let ended = loop {
        match attacker.next(Duration::from_secs(60)).await {
            Got::Frame(f) if f.ty == GOAWAY => break "GOAWAY",
            Got::Frame(f) if f.stream == last => break "the last stream answered",
            Got::Frame(_) => {}
            Got::Closed => break "closed",
            Got::Quiet => panic!("no answer in 60 s: {}", attacker.trace()),
        }
    };
    let took = started.elapsed();
    // The worker is free: another client's request is answered at once.
    let mut victim = H2::connect(p, &[]).await;
    victim.send(&request(1, "/after", &[], true)).await.unwrap();
    let t = Instant::now();
    let (body, done) = victim.body(1, Duration::from_secs(10)).await;
    assert!(done && body.contains("be"), "{}", victim.trace());
    println!(
        "{engine}: {FRAMES} frames of tiny Huffman strings: {took:?} ({ended}); then a request in {:?}",
        t.elapsed()
    );
    assert!(took < BOUND, "{FRAMES} blocks took the worker {took:?}");
}
