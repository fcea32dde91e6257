//! Sorting the result of one attempt by what it promises: done, certainly did not happen
//! (so another store may be tried), or outcome unknown.
//!
//! SPEC's table: `not_leader`, `region_not_found`, `key_not_in_region`, `epoch_not_match`,
//! `store_not_match` and `server_is_busy` are returned before proposing; `stale_command`, a
//! deadline exceeded or a connection broken after the request left are outcome unknown. A
//! connection that could not be opened carried nothing.

use std::time::Duration;

use raftkv_proto::errorpb;
use tonic::{Code, Status};

/// What one attempt tells the routing loop.
#[derive(Debug)]
pub(crate) enum Outcome<T> {
    /// The store answered the request.
    Done(T),
    /// The store rejected the request as invalid; retrying cannot help. Did not happen.
    Invalid(String),
    /// The store is not the leader; `leader` is the store id of the one it knows of. Did
    /// not happen.
    NotLeader { leader: Option<u64> },
    /// The store's queues are full; try it again after a pause. Did not happen.
    Busy { backoff: Option<Duration>, reason: String },
    /// The request certainly did not take effect there; try another store.
    Rejected(String),
    /// The request may or may not have taken effect.
    Unknown(String),
}

/// Sorts a `region_error` by SPEC's promise for each kind.
pub(crate) fn classify_region_error<T>(e: &errorpb::Error) -> Outcome<T> {
    if let Some(not_leader) = &e.not_leader {
        let leader = not_leader.leader.as_ref().map(|p| p.store_id).filter(|&id| id != 0);
        return Outcome::NotLeader { leader };
    }
    if let Some(busy) = &e.server_is_busy {
        let backoff = (busy.backoff_ms > 0).then(|| Duration::from_millis(busy.backoff_ms));
        let reason = if busy.reason.is_empty() { e.message.clone() } else { busy.reason.clone() };
        return Outcome::Busy { backoff, reason };
    }
    if e.stale_command.is_some() {
        return Outcome::Unknown(with_message(
            "stale command: leadership changed while the command was in the log",
            &e.message,
        ));
    }
    let not_applied = if e.region_not_found.is_some() {
        "region not found"
    } else if e.key_not_in_region.is_some() {
        "key not in region"
    } else if e.epoch_not_match.is_some() {
        "epoch not match"
    } else if e.store_not_match.is_some() {
        "store not match"
    } else {
        // A kind of region error this client does not know: it cannot tell whether the
        // request happened, so it assumes the worst.
        return Outcome::Unknown(with_message("unrecognized region error", &e.message));
    };
    Outcome::Rejected(with_message(not_applied, &e.message))
}

/// Sorts a gRPC failure: a connection that could not be opened carried nothing; a
/// framework rejection of the message itself is invalid; anything else happened after the
/// request may have left, so its outcome is unknown.
pub(crate) fn classify_status<T>(status: &Status) -> Outcome<T> {
    if let Some(why) = never_sent(status) {
        return Outcome::Rejected(why);
    }
    let text = describe_status(status);
    match status.code() {
        Code::InvalidArgument | Code::OutOfRange => Outcome::Invalid(text),
        Code::Unimplemented | Code::Unauthenticated | Code::PermissionDenied => {
            Outcome::Rejected(text)
        }
        _ => Outcome::Unknown(text),
    }
}

/// Why the failure certainly happened before the request reached a store's handler, or
/// `None` if it may have reached it.
fn never_sent(status: &Status) -> Option<String> {
    // The generated client's message when the channel never became ready to send.
    if status.message().starts_with("Service was not ready") {
        return Some(describe_status(status));
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(err) = source {
        let refused = err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
        if refused || err.is::<tonic::ConnectError>() {
            return Some(format!("cannot connect: {}", root_cause(err)));
        }
        // HTTP/2 REFUSED_STREAM (h2's wording for it): the server promises it did not
        // process the stream, e.g. during a graceful shutdown. Matching text is safe here:
        // a miss only makes the client more cautious.
        if err.to_string().contains("refused stream before processing") {
            return Some(format!("refused before processing: {}", root_cause(err)));
        }
        source = err.source();
    }
    None
}

/// The innermost cause of `err`: for a connection, the operating system's reason.
fn root_cause(mut err: &(dyn std::error::Error + 'static)) -> String {
    while let Some(source) = err.source() {
        err = source;
    }
    err.to_string()
}

/// A one-line description of a gRPC failure with its causes, without tonic's metadata dump.
pub(crate) fn describe_status(status: &Status) -> String {
    let mut text = format!("{:?}", status.code());
    let mut last = String::new();
    let mut push = |part: String, text: &mut String| {
        if !part.is_empty() && part != last && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        last = part;
    };
    push(status.message().to_string(), &mut text);
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(err) = source {
        push(err.to_string(), &mut text);
        source = err.source();
    }
    text
}

fn with_message(what: &str, message: &str) -> String {
    if message.is_empty() { what.to_string() } else { format!("{what} ({message})") }
}

#[cfg(test)]
mod tests {
    use raftkv_proto::metapb;

    use super::*;

    fn region_error(f: impl FnOnce(&mut errorpb::Error)) -> errorpb::Error {
        let mut e = errorpb::Error::default();
        f(&mut e);
        e
    }

    #[test]
    fn not_leader_carries_the_hint() {
        let e = region_error(|e| {
            e.not_leader = Some(errorpb::NotLeader {
                region_id: 1,
                leader: Some(metapb::Peer { id: 3, store_id: 3 }),
            })
        });
        assert!(matches!(classify_region_error::<()>(&e), Outcome::NotLeader { leader: Some(3) }));
        let e = region_error(|e| e.not_leader = Some(errorpb::NotLeader::default()));
        assert!(matches!(classify_region_error::<()>(&e), Outcome::NotLeader { leader: None }));
    }

    #[test]
    fn stale_command_is_unknown_and_routing_errors_did_not_happen() {
        let stale = region_error(|e| e.stale_command = Some(errorpb::StaleCommand {}));
        assert!(matches!(classify_region_error::<()>(&stale), Outcome::Unknown(_)));
        let not_found = region_error(|e| e.region_not_found = Some(Default::default()));
        assert!(matches!(classify_region_error::<()>(&not_found), Outcome::Rejected(_)));
        let epoch = region_error(|e| e.epoch_not_match = Some(Default::default()));
        assert!(matches!(classify_region_error::<()>(&epoch), Outcome::Rejected(_)));
        let store = region_error(|e| e.store_not_match = Some(Default::default()));
        assert!(matches!(classify_region_error::<()>(&store), Outcome::Rejected(_)));
        let key = region_error(|e| e.key_not_in_region = Some(Default::default()));
        assert!(matches!(classify_region_error::<()>(&key), Outcome::Rejected(_)));
        let unrecognized = region_error(|e| e.message = "something new".into());
        assert!(matches!(classify_region_error::<()>(&unrecognized), Outcome::Unknown(_)));
    }

    #[test]
    fn busy_uses_the_servers_backoff() {
        let e = region_error(|e| {
            e.server_is_busy =
                Some(errorpb::ServerIsBusy { reason: "queue full".into(), backoff_ms: 30 })
        });
        match classify_region_error::<()>(&e) {
            Outcome::Busy { backoff, reason } => {
                assert_eq!(backoff, Some(Duration::from_millis(30)));
                assert_eq!(reason, "queue full");
            }
            other => panic!("expected busy, got {other:?}"),
        }
    }

    #[test]
    fn statuses_from_the_wire_are_unknown_unless_they_reject_the_message() {
        assert!(matches!(
            classify_status::<()>(&Status::invalid_argument("bad")),
            Outcome::Invalid(_)
        ));
        assert!(matches!(
            classify_status::<()>(&Status::unimplemented("no")),
            Outcome::Rejected(_)
        ));
        assert!(matches!(
            classify_status::<()>(&Status::internal("h2 reset")),
            Outcome::Unknown(_)
        ));
        assert!(matches!(
            classify_status::<()>(&Status::unavailable("broken pipe")),
            Outcome::Unknown(_)
        ));
        assert!(matches!(
            classify_status::<()>(&Status::cancelled("timeout")),
            Outcome::Unknown(_)
        ));
    }

    #[test]
    fn a_refused_connection_never_carried_the_request() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let status = Status::from_error(Box::new(tonic::ConnectError(Box::new(refused))));
        assert_eq!(status.code(), Code::Unavailable);
        match classify_status::<()>(&status) {
            Outcome::Rejected(why) => assert_eq!(why, "cannot connect: connection refused"),
            other => panic!("expected rejected, got {other:?}"),
        }
    }
}
