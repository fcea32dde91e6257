//! The replicated application: the ordered list of proposal ids it applied.
//!
//! It is durable together with its applied index (as a real store writes both in one
//! batch), so a crash never loses or repeats an application of an entry.

use std::collections::HashSet;

use bytes::Bytes;
use raft::eraftpb::{ConfState, Entry, Snapshot};

#[derive(Debug, Clone, Default)]
pub struct StateMachine {
    pub applied_index: u64,
    pub conf_state: ConfState,
    ids: Vec<u64>,
    seen: HashSet<u64>,
}

pub fn encode_id(id: u64) -> Bytes {
    Bytes::copy_from_slice(&id.to_le_bytes())
}

pub fn decode_id(data: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(data.try_into().ok()?))
}

impl StateMachine {
    pub fn new(conf_state: ConfState) -> Self {
        StateMachine { conf_state, ..Default::default() }
    }

    /// Applies the next entry; an entry out of order or a proposal applied twice is a bug.
    pub fn apply(&mut self, e: &Entry) -> Result<(), String> {
        if e.index != self.applied_index + 1 {
            return Err(format!(
                "entry {} applied out of order (applied index {})",
                e.index, self.applied_index
            ));
        }
        self.applied_index = e.index;
        if let Some(id) = decode_id(&e.data) {
            if !self.seen.insert(id) {
                return Err(format!("proposal {id} applied twice (again at index {})", e.index));
            }
            self.ids.push(id);
        }
        Ok(())
    }

    pub fn contains(&self, id: u64) -> bool {
        self.seen.contains(&id)
    }

    pub fn snapshot_data(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.ids.len() * 8);
        for id in &self.ids {
            out.extend_from_slice(&id.to_le_bytes());
        }
        out.into()
    }

    pub fn restore(&mut self, snap: &Snapshot) {
        let meta = snap.metadata.clone().unwrap_or_default();
        self.applied_index = meta.index;
        self.conf_state = meta.conf_state.unwrap_or_default();
        self.ids = snap.data.chunks_exact(8).filter_map(decode_id).collect();
        self.seen = self.ids.iter().copied().collect();
    }
}
