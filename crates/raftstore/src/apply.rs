//! Applying committed entries: one kvdb write batch per Ready holds the data *and* the new
//! `applied_index`, so the two can never disagree. It is not fsynced: after a crash the
//! durable raft log replays whatever the batch lost.

use engine::{CF_DEFAULT, WriteBatch};
use prost::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, Entry, EntryType};
use raftkv_proto::errorpb;
use raftkv_proto::metapb::{Peer as PeerMeta, RegionEpoch};
use raftkv_proto::raft_cmdpb::{AdminCmdType, AdminRequest, CmdType, RaftCmdRequest};
use raftkv_proto::raft_serverpb::{PeerState, RegionLocalState};

use crate::errors::{self, Result, StoreError};
use crate::keys;
use crate::metrics;
use crate::msg::WriteCallback;
use crate::peer::{Compacted, Peer};

/// Applies `entries` (committed, in order) and answers the proposals they settle.
pub fn apply_committed(peer: &mut Peer, entries: Vec<Entry>) -> Result<()> {
    let region_id = peer.region_id();
    let mut wb = WriteBatch::new();
    let mut answers: Vec<(WriteCallback, std::result::Result<(), errorpb::Error>)> = Vec::new();
    let mut last = None;
    for e in &entries {
        let outcome = match e.entry_type() {
            EntryType::EntryNormal if e.data.is_empty() => Ok(()),
            EntryType::EntryNormal => apply_command(peer, e, &mut wb)?,
            EntryType::EntryConfChange => {
                apply_conf_change(peer, e, &mut wb)?;
                Ok(())
            }
        };
        settle_proposals(peer, e, outcome, &mut answers);
        last = Some(e.index);
    }
    let Some(last) = last else { return Ok(()) };
    let store = peer.raw.store_mut();
    store.set_applied_index(last);
    wb.put_msg(CF_DEFAULT, &keys::apply_state_key(region_id), store.apply_state());
    // Applies are redone from the raft log after a crash (the log is only compacted once
    // the apply state that covers it is synced), so they need not reach the OS now.
    store.kv_engine().write_buffered(wb)?;
    for (cb, result) in answers {
        cb(result);
    }
    Ok(())
}

/// Matches the applied entry against the proposals waiting for it. A proposal whose entry
/// was overwritten by a newer leader is answered `stale_command`, as SPEC's error table
/// says (the client treats it as outcome unknown, never as success).
fn settle_proposals(
    peer: &mut Peer,
    e: &Entry,
    outcome: std::result::Result<(), errorpb::Error>,
    answers: &mut Vec<(WriteCallback, std::result::Result<(), errorpb::Error>)>,
) {
    while let Some(front) = peer.proposals.front() {
        if front.index > e.index {
            break;
        }
        let Some(p) = peer.proposals.pop_front() else { break };
        peer.proposal_done(p.size_bytes);
        let result = if p.index == e.index && p.term == e.term {
            outcome.clone()
        } else {
            Err(errors::stale_command("the proposal's log entry was overwritten"))
        };
        answers.push((p.cb, result));
    }
}

fn apply_command(
    peer: &mut Peer,
    e: &Entry,
    wb: &mut WriteBatch,
) -> Result<std::result::Result<(), errorpb::Error>> {
    let cmd = RaftCmdRequest::decode(e.data.as_ref()).map_err(|err| {
        StoreError::Corrupt(format!("committed entry {} is not a command: {err}", e.index))
    })?;
    if let Some(admin) = &cmd.admin_request {
        apply_admin(peer, e, admin, wb)?;
        return Ok(Ok(()));
    }
    // A command proposed against an older key range must not apply: every replica decides
    // the same from the same log.
    let want = cmd.header.as_ref().and_then(|h| h.region_epoch).map_or(0, |ep| ep.version);
    let have = peer.region().region_epoch.map_or(0, |ep| ep.version);
    if want != have {
        return Ok(Err(errors::epoch_not_match(peer.region())));
    }
    let kv = peer.raw.store().kv_engine().clone();
    for req in &cmd.requests {
        match req.cmd_type() {
            CmdType::Put => {
                let put = req.put.as_ref().ok_or_else(|| malformed(e, "put without body"))?;
                let cf = cf_name(&put.cf);
                if !kv.has_cf(cf) {
                    return Ok(Err(invalid(format!("unknown column family {cf:?}"))));
                }
                wb.put(cf, &keys::data_key(&put.key), &put.value);
            }
            CmdType::Delete => {
                let del = req.delete.as_ref().ok_or_else(|| malformed(e, "delete without body"))?;
                let cf = cf_name(&del.cf);
                if !kv.has_cf(cf) {
                    return Ok(Err(invalid(format!("unknown column family {cf:?}"))));
                }
                wb.delete(cf, &keys::data_key(&del.key));
            }
            other => return Err(malformed(e, &format!("unexpected command {other:?} in the log"))),
        }
    }
    metrics::APPLIED_COMMANDS.inc();
    Ok(Ok(()))
}

fn apply_admin(
    peer: &mut Peer,
    e: &Entry,
    admin: &AdminRequest,
    wb: &mut WriteBatch,
) -> Result<()> {
    match admin.cmd_type() {
        AdminCmdType::RecordIncarnation => {
            let rec = admin
                .record_incarnation
                .as_ref()
                .ok_or_else(|| malformed(e, "empty RecordIncarnation"))?;
            // The first record wins; a later one for the same store (a leader that did not
            // know of an earlier record) changes nothing.
            peer.recording.remove(&rec.store_id);
            if let std::collections::btree_map::Entry::Vacant(v) =
                peer.store_incarnations.entry(rec.store_id)
            {
                v.insert(rec.incarnation);
                write_region_state(peer, wb);
            }
            Ok(())
        }
        AdminCmdType::CompactLog => {
            let req = admin.compact_log.as_ref().ok_or_else(|| malformed(e, "empty CompactLog"))?;
            let store = peer.raw.store_mut();
            // Every replica decides the same: compact only forward, only applied entries.
            if req.compact_index > store.truncated_index() && req.compact_index < e.index {
                let first = store.truncated_index() + 1;
                store.compact_to(req.compact_index, req.compact_term);
                // Merged with an earlier compaction of this apply batch, if any.
                let first = match peer.compacted {
                    None => Some(first),
                    Some(c) => c.first.map(|f| f.min(first)),
                };
                peer.compacted = Some(Compacted { first, last: req.compact_index });
            }
            Ok(())
        }
        other => Err(malformed(e, &format!("admin command {other:?} is not supported"))),
    }
}

fn write_region_state(peer: &mut Peer, wb: &mut WriteBatch) {
    peer.meta_changed = true;
    let state = RegionLocalState {
        state: PeerState::Normal as i32,
        region: Some(peer.region().clone()),
        store_incarnations: peer.store_incarnations.clone(),
    };
    wb.put_msg(CF_DEFAULT, &keys::region_state_key(peer.region_id()), &state);
}

fn apply_conf_change(peer: &mut Peer, e: &Entry, wb: &mut WriteBatch) -> Result<()> {
    let cc = ConfChange::decode(e.data.as_ref()).map_err(|err| {
        StoreError::Corrupt(format!("entry {} is not a conf change: {err}", e.index))
    })?;
    peer.raw.apply_conf_change(&cc);
    let mut region = peer.region().clone();
    match cc.change_type() {
        ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
            if !region.peers.iter().any(|p| p.id == cc.node_id) {
                region.peers.push(PeerMeta { id: cc.node_id, store_id: cc.node_id });
            }
        }
        ConfChangeType::RemoveNode => {
            region.peers.retain(|p| p.id != cc.node_id);
            // A replacement store with the same id starts a new incarnation.
            peer.store_incarnations.remove(&cc.node_id);
        }
    }
    let epoch = region.region_epoch.get_or_insert(RegionEpoch { conf_ver: 0, version: 1 });
    epoch.conf_ver += 1;
    peer.raw.store_mut().set_region(region);
    write_region_state(peer, wb);
    Ok(())
}

/// The wire's empty column family name means `default`.
pub fn cf_name(cf: &str) -> &str {
    if cf.is_empty() { CF_DEFAULT } else { cf }
}

fn malformed(e: &Entry, what: &str) -> StoreError {
    StoreError::Corrupt(format!("committed entry {}: {what}", e.index))
}

fn invalid(message: String) -> errorpb::Error {
    errorpb::Error { message, ..Default::default() }
}
