//! raftkv's client library.
//!
//! A [`Client`] is given plain `host:port` endpoints, learns which store serves each from the
//! `Status` RPC, and keeps a leader cache. Every call has one overall deadline
//! ([`ClientOptions::deadline`]) and ends in one of three ways that say what happened:
//!
//! - success (`get` of a missing key is `Ok(None)`, not an error);
//! - a failure that certainly changed nothing: [`Error::InvalidRequest`] (the server refused
//!   the input), [`Error::InvalidConfig`], [`Error::Unavailable`] (no store accepted it in
//!   time);
//! - [`Error::Unknown`]: a write reached a store and its outcome was lost. Such a write is
//!   never retried by the client, since retrying could apply it twice.
//!
//! ```no_run
//! # async fn example() -> Result<(), client::Error> {
//! use client::{Client, ClientOptions};
//!
//! let client = Client::new(vec!["127.0.0.1:20161".into()], ClientOptions::default())?;
//! client.put("hello", "world", "").await?;
//! assert_eq!(client.get("hello", "").await?.as_deref(), Some(&b"world"[..]));
//! # Ok(())
//! # }
//! ```

mod client;
mod endpoints;
mod error;
mod options;
mod outcome;
mod rpc;
mod trail;

pub use client::Client;
pub use error::{Error, Result};
pub use options::ClientOptions;
pub use raftkv_proto::raftkvpb::StatusResponse;
