//! HTTP/2 requests through the pipeline, for both HTTP/2 engines (hyper's, `crate::h2`, and
//! weir's own, `crate::h2weir`): `service` runs one request's phases (`crate::pipeline`),
//! `forward` sends it over the same raw pooled HTTP/1.1 target connections as the HTTP/1.1
//! engine (`upload`: its body, ended by the target's early answer) and `body` is the target's
//! response as the body the engine sends on (`unread`: a
//! response of weir's own before the request body was read); `orphan` finishes a target's
//! response whose stream was cancelled; `h2rules` the pure rules of HTTP/2 requests; `frames`
//! follows a client's frame boundaries (both engines' header-read deadline). A
//! request's body is any [`RequestBody`] (hyper's `Incoming`, or weir's engine's stream body).
//! Knows no engine: the engines import it, never the reverse (`crate::layering` checks).

pub mod body;
pub mod forward;
pub mod frames;
pub mod h2rules;
pub mod orphan;
pub mod service;
pub mod unread;
mod upload;

use crate::body::BoxError;
use bytes::Bytes;

/// A client's request body as an engine hands it to `service::handle`.
pub trait RequestBody:
    http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{
}

impl<T> RequestBody for T where
    T: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{
}
