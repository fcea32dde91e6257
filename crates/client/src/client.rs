//! The client: public calls, and the routing loop that sends each to the leader, follows
//! not-leader hints, and retries only what certainly did not happen.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use raftkv_proto::kvrpcpb::{RawDeleteRequest, RawGetRequest, RawPutRequest, RawScanRequest};
use raftkv_proto::raftkvpb::{StatusRequest, StatusResponse};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::endpoints::Endpoints;
use crate::outcome::{Outcome, classify_region_error, classify_status};
use crate::rpc::Rpc;
use crate::trail::Trail;
use crate::{ClientOptions, Error, Result};

/// An async raftkv client. Cheap to clone; clones share connections and the leader cache.
///
/// Each call goes to the store believed to lead, follows `not_leader` hints (learning which
/// endpoint serves which store id from `Status`), backs off on `server_is_busy`, and moves
/// on from anything that certainly did not happen, until [`ClientOptions::deadline`]. A
/// write whose outcome became unknown is never retried: it fails with
/// [`Error::Unknown`]. Reads change nothing, so they are retried through anything.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    endpoints: Endpoints,
    options: ClientOptions,
}

impl Client {
    /// A client for the stores at `endpoints` (`host:port` each). Connections open on first
    /// use, so this fails only on a malformed address, an empty list, or when called
    /// outside a Tokio runtime.
    pub fn new(endpoints: Vec<String>, options: ClientOptions) -> Result<Client> {
        let endpoints = Endpoints::new(endpoints, &options)?;
        Ok(Client { inner: Arc::new(Inner { endpoints, options }) })
    }

    /// The endpoints, as given (without duplicates).
    pub fn endpoints(&self) -> Vec<String> {
        self.inner.endpoints.iter().map(|e| e.addr.clone()).collect()
    }

    /// The value of `key` in column family `cf` (empty: `default`), or `None` if absent.
    pub async fn get(&self, key: impl Into<Bytes>, cf: &str) -> Result<Option<Bytes>> {
        let request = RawGetRequest { context: None, key: key.into(), cf: cf.to_string() };
        let response = self.inner.execute(request).await?;
        Ok(if response.not_found { None } else { Some(response.value) })
    }

    /// Writes `key` = `value`; `Ok` once a quorum made it durable and it was applied.
    pub async fn put(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
        cf: &str,
    ) -> Result<()> {
        let request = RawPutRequest {
            context: None,
            key: key.into(),
            value: value.into(),
            cf: cf.to_string(),
        };
        self.inner.execute(request).await.map(drop)
    }

    /// Deletes `key`; deleting a missing key succeeds.
    pub async fn delete(&self, key: impl Into<Bytes>, cf: &str) -> Result<()> {
        let request = RawDeleteRequest { context: None, key: key.into(), cf: cf.to_string() };
        self.inner.execute(request).await.map(drop)
    }

    /// At most `limit` pairs with keys ≥ `start`, in key order.
    pub async fn scan(
        &self,
        start: impl Into<Bytes>,
        limit: u32,
        cf: &str,
    ) -> Result<Vec<(Bytes, Bytes)>> {
        let request =
            RawScanRequest { context: None, start_key: start.into(), limit, cf: cf.to_string() };
        let response = self.inner.execute(request).await?;
        let mut pairs = Vec::with_capacity(response.kvs.len());
        for pair in response.kvs {
            if let Some(e) = pair.error {
                return Err(Error::InvalidRequest(format!(
                    "the store returned a key error in a raw scan (retryable: {:?}, abort: {:?})",
                    e.retryable, e.abort
                )));
            }
            pairs.push((pair.key, pair.value));
        }
        Ok(pairs)
    }

    /// Asks every endpoint for its `Status`, concurrently, each bounded by
    /// [`ClientOptions::read_attempt_timeout`]. One entry per endpoint, in order.
    pub async fn status_all(&self) -> Vec<(String, Result<StatusResponse>)> {
        let all: Vec<usize> = (0..self.inner.endpoints.len()).collect();
        let timeout = self.inner.options.read_attempt_timeout.min(self.inner.options.deadline);
        let mut answers = self.inner.statuses(&all, timeout).await;
        answers.sort_by_key(|(index, _)| *index);
        answers
            .into_iter()
            .map(|(index, answer)| (self.inner.endpoints.get(index).addr.clone(), answer))
            .collect()
    }
}

impl Inner {
    /// Sends `request` until it succeeds, is refused for good, its outcome becomes unknown
    /// (writes only), or the deadline passes.
    async fn execute<R: Rpc>(&self, request: R) -> Result<R::Response> {
        let deadline = Instant::now() + self.options.deadline;
        let mut trail = Trail::default();
        let mut backoff = Backoff::new(&self.options);
        let mut target = self.endpoints.first_choice();
        // Attempts in a row that moved on to another endpoint; after a whole round of them
        // (an election in progress, or every store down) the client pauses.
        let mut misses = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(trail.give_up(self.options.deadline));
            }
            let budget = if R::IDEMPOTENT {
                remaining.min(self.options.read_attempt_timeout)
            } else {
                remaining
            };
            let addr = &self.endpoints.get(target).addr;
            trail.attempt();
            match self.attempt(target, &request, budget).await {
                Outcome::Done(response) => {
                    self.endpoints.set_leader(target);
                    return Ok(response);
                }
                Outcome::Invalid(message) => return Err(Error::InvalidRequest(message)),
                Outcome::Busy { backoff: suggested, reason } => {
                    trail.record(addr, format!("server is busy ({reason})"));
                    let pause = suggested.unwrap_or_else(|| backoff.next());
                    tokio::time::sleep_until(deadline.min(Instant::now() + pause)).await;
                    continue;
                }
                Outcome::NotLeader { leader } => {
                    let hint = match leader {
                        Some(id) => format!("not leader (leader: store {id})"),
                        None => "not leader (leader unknown)".to_string(),
                    };
                    trail.record(addr, hint);
                    self.endpoints.forget_leader(target);
                    target = match leader {
                        Some(id) => match self.locate(id, deadline).await {
                            Some(index) if index != target => index,
                            _ => self.endpoints.next_after(target),
                        },
                        None => self.endpoints.next_after(target),
                    };
                }
                Outcome::Rejected(why) => {
                    trail.record(addr, why);
                    self.endpoints.forget_leader(target);
                    target = self.endpoints.next_after(target);
                }
                Outcome::Unknown(why) if R::IDEMPOTENT => {
                    trail.record(addr, why);
                    self.endpoints.forget_leader(target);
                    target = self.endpoints.next_after(target);
                }
                Outcome::Unknown(why) => {
                    self.endpoints.forget_leader(target);
                    return Err(Error::Unknown(format!("{} sent to {addr}: {why}", R::NAME)));
                }
            }
            misses += 1;
            if misses >= self.endpoints.len() {
                misses = 0;
                tokio::time::sleep_until(deadline.min(Instant::now() + backoff.next())).await;
            }
        }
    }

    /// One RPC to endpoint `target`, bounded by `budget`.
    async fn attempt<R: Rpc>(
        &self,
        target: usize,
        request: &R,
        budget: Duration,
    ) -> Outcome<R::Response> {
        // The deadline is kept here, not sent as a grpc-timeout header: the server would
        // arm a timer per request for a bound the client enforces anyway.
        let message = tonic::Request::new(request.clone());
        let sent = R::send(self.endpoints.client(target), message);
        let response = match tokio::time::timeout(budget, sent).await {
            Err(_) => return Outcome::Unknown(format!("no answer within {budget:?}")),
            Ok(Err(status)) => return classify_status(&status),
            Ok(Ok(response)) => response.into_inner(),
        };
        if let Some(e) = R::region_error(&response) {
            return classify_region_error(e);
        }
        let error = R::error(&response);
        if !error.is_empty() {
            return Outcome::Invalid(error.to_string());
        }
        Outcome::Done(response)
    }

    /// The endpoint serving store `store_id`, asking unidentified endpoints for their
    /// `Status` if needed.
    async fn locate(&self, store_id: u64, deadline: Instant) -> Option<usize> {
        if let Some(index) = self.endpoints.find_store(store_id) {
            return Some(index);
        }
        let unknown = self.endpoints.unidentified();
        if unknown.is_empty() {
            return None;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        self.statuses(&unknown, remaining.min(self.options.read_attempt_timeout)).await;
        self.endpoints.find_store(store_id)
    }

    /// `Status` of the endpoints `indexes`, concurrently; learns store ids from the answers.
    /// Answers come back in completion order, tagged with their endpoint index.
    async fn statuses(
        &self,
        indexes: &[usize],
        timeout: Duration,
    ) -> Vec<(usize, Result<StatusResponse>)> {
        let mut calls = JoinSet::new();
        for &index in indexes {
            let mut client = self.endpoints.client(index);
            let addr = self.endpoints.get(index).addr.clone();
            calls.spawn(async move {
                let mut request = tonic::Request::new(StatusRequest {});
                request.set_timeout(timeout);
                let unavailable = |last: String| Error::Unavailable {
                    attempts: 1,
                    tried: format!("{addr}: {last}"),
                    last,
                };
                let answer = match tokio::time::timeout(timeout, client.status(request)).await {
                    Err(_) => Err(unavailable(format!("no answer within {timeout:?}"))),
                    Ok(Err(status)) => Err(match classify_status::<()>(&status) {
                        Outcome::Invalid(message) => Error::InvalidRequest(message),
                        Outcome::Rejected(why) | Outcome::Unknown(why) => unavailable(why),
                        Outcome::Busy { reason, .. } => unavailable(reason),
                        Outcome::NotLeader { .. } | Outcome::Done(()) => {
                            unavailable(crate::outcome::describe_status(&status))
                        }
                    }),
                    Ok(Ok(response)) => Ok(response.into_inner()),
                };
                (index, answer)
            });
        }
        let mut answers = Vec::with_capacity(indexes.len());
        while let Some(joined) = calls.join_next().await {
            // A panicked or cancelled status task has nothing to report; its endpoint simply
            // stays unidentified.
            let Ok((index, answer)) = joined else { continue };
            if let Ok(status) = &answer {
                self.endpoints.learn(index, status);
            }
            answers.push((index, answer));
        }
        answers
    }
}

/// Exponential pauses between rounds of attempts.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(options: &ClientOptions) -> Self {
        Backoff { next: options.min_backoff, max: options.max_backoff }
    }

    fn next(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        pause
    }
}
