//! `raftkv status [--json]`: every endpoint's view of the cluster, one line (or one JSON
//! object) per endpoint.

use client::StatusResponse;
use serde::Serialize;

use crate::client_args::ClientArgs;
use crate::exit::Exit;
use crate::output;

/// One endpoint's answer, in SPEC's JSON shape.
#[derive(Debug, Serialize, PartialEq)]
#[serde(untagged)]
enum Row {
    Up { id: u64, address: String, role: String, term: u64, commit: u64, applied: u64, leader: u64 },
    Down { address: String, error: String },
}

impl Row {
    fn new(endpoint: String, answer: Result<StatusResponse, client::Error>) -> Row {
        match answer {
            Ok(s) => Row::Up {
                id: s.store_id,
                address: if s.address.is_empty() { endpoint } else { s.address },
                role: s.role,
                term: s.term,
                commit: s.commit,
                applied: s.applied,
                leader: s.leader_id,
            },
            Err(e) => Row::Down { address: endpoint, error: short_error(&e) },
        }
    }

    /// `id=1 address=... role=leader term=3 commit=12 applied=12 leader=1`, or
    /// `address=... error=...` for an endpoint that did not answer.
    fn line(&self) -> String {
        match self {
            Row::Up { id, address, role, term, commit, applied, leader } => format!(
                "id={id} address={address} role={role} term={term} commit={commit} \
                 applied={applied} leader={leader}"
            ),
            Row::Down { address, error } => format!("address={address} error={error}"),
        }
    }
}

/// For one endpoint, the cause is all that matters, not the retry summary.
fn short_error(e: &client::Error) -> String {
    match e {
        client::Error::Unavailable { last, .. } => last.clone(),
        other => other.to_string(),
    }
}

/// Exit 0 if at least one endpoint answered, else 3.
pub async fn run(args: &ClientArgs, json: bool) -> anyhow::Result<Exit> {
    let rows: Vec<Row> = args
        .client()?
        .status_all()
        .await
        .into_iter()
        .map(|(endpoint, answer)| Row::new(endpoint, answer))
        .collect();
    output::stdout(|out| {
        if json {
            serde_json::to_writer(&mut *out, &rows)?;
            writeln!(out)
        } else {
            rows.iter().try_for_each(|row| writeln!(out, "{}", row.line()))
        }
    })?;
    let answered = rows.iter().any(|row| matches!(row, Row::Up { .. }));
    Ok(if answered { Exit::Success } else { Exit::NotApplied })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader() -> StatusResponse {
        StatusResponse {
            store_id: 1,
            address: "127.0.0.1:20161".into(),
            role: "leader".into(),
            term: 3,
            commit: 12,
            applied: 11,
            leader_id: 1,
        }
    }

    #[test]
    fn json_has_specs_fields() {
        let down = client::Error::Unavailable {
            attempts: 1,
            last: "connection refused".into(),
            tried: "127.0.0.1:20162: connection refused".into(),
        };
        let rows = vec![
            Row::new("127.0.0.1:20161".into(), Ok(leader())),
            Row::new("127.0.0.1:20162".into(), Err(down)),
        ];
        let json = serde_json::to_value(&rows).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!([
                {"id": 1, "address": "127.0.0.1:20161", "role": "leader", "term": 3,
                 "commit": 12, "applied": 11, "leader": 1},
                {"address": "127.0.0.1:20162", "error": "connection refused"}
            ])
        );
    }

    #[test]
    fn lines_name_every_field() {
        let row = Row::new("x:1".into(), Ok(leader()));
        assert_eq!(
            row.line(),
            "id=1 address=127.0.0.1:20161 role=leader term=3 commit=12 applied=11 leader=1"
        );
    }
}
