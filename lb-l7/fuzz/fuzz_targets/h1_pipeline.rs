//! Bytes a client sends → what weir forwards to a target, through the functions the HTTP/1.1
//! engine calls (`lb_l7::h1::fuzz`); the target must parse exactly the requests weir routed.
//! The first byte picks the desync mode, the body limit and the read size.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lb_l7::h1::fuzz::check(data);
});
