//! Small helpers shared by the log and the storages.

use prost::Message as _;
use raftkv_proto::eraftpb::Entry;

/// Truncates `entries` so their encoded size stays within `max_size`, keeping at least one.
pub fn limit_size(entries: &mut Vec<Entry>, max_size: u64) {
    if entries.len() <= 1 || max_size == crate::NO_LIMIT {
        return;
    }
    let mut size = 0u64;
    let keep = entries
        .iter()
        .take_while(|e| {
            size += entry_size(e);
            size <= max_size
        })
        .count()
        .max(1);
    entries.truncate(keep);
}

/// The bytes an entry takes on the wire, the unit of every size limit.
pub fn entry_size(entry: &Entry) -> u64 {
    entry.encoded_len() as u64
}
