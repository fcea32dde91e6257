//! The key layout of both engines (SPEC part B), after TiKV's `keys.rs`.
//!
//! | key | layout | engine |
//! |---|---|---|
//! | store ident | 0x01 0x01 | kv (default cf) |
//! | raft log entry | 0x01 0x02 region_id 0x01 log_index | raft |
//! | raft state | 0x01 0x02 region_id 0x02 | raft |
//! | apply state | 0x01 0x02 region_id 0x03 | kv (default cf) |
//! | applying snapshot | 0x01 0x02 region_id 0x04 | kv (default cf) |
//! | region state | 0x01 0x03 region_id 0x01 | kv (default cf) |
//! | user data | b'z' user_key | kv (default, lock, write cf) |
//!
//! Ids and indexes are big-endian so keys sort numerically. Every user key carries the
//! `z` prefix, so no user key can ever collide with a metadata key (0x01 ...).

pub const LOCAL_PREFIX: u8 = 0x01;
pub const DATA_PREFIX: u8 = b'z';

const STORE_IDENT_SUFFIX: u8 = 0x01;
const REGION_RAFT_PREFIX: u8 = 0x02;
const REGION_META_PREFIX: u8 = 0x03;
const RAFT_LOG_SUFFIX: u8 = 0x01;
const RAFT_STATE_SUFFIX: u8 = 0x02;
const APPLY_STATE_SUFFIX: u8 = 0x03;
const APPLYING_SNAPSHOT_SUFFIX: u8 = 0x04;
const REGION_STATE_SUFFIX: u8 = 0x01;

pub const STORE_IDENT_KEY: [u8; 2] = [LOCAL_PREFIX, STORE_IDENT_SUFFIX];

fn region_key(prefix: u8, region_id: u64, suffix: u8) -> [u8; 11] {
    let mut k = [0u8; 11];
    k[0] = LOCAL_PREFIX;
    k[1] = prefix;
    k[2..10].copy_from_slice(&region_id.to_be_bytes());
    k[10] = suffix;
    k
}

pub fn raft_log_key(region_id: u64, index: u64) -> [u8; 19] {
    let mut k = [0u8; 19];
    k[..11].copy_from_slice(&region_key(REGION_RAFT_PREFIX, region_id, RAFT_LOG_SUFFIX));
    k[11..].copy_from_slice(&index.to_be_bytes());
    k
}

/// The log index encoded in a raft log key, if `key` is one.
pub fn raft_log_index(key: &[u8]) -> Option<u64> {
    if key.len() != 19 || key[10] != RAFT_LOG_SUFFIX {
        return None;
    }
    Some(u64::from_be_bytes(key[11..].try_into().ok()?))
}

pub fn raft_state_key(region_id: u64) -> [u8; 11] {
    region_key(REGION_RAFT_PREFIX, region_id, RAFT_STATE_SUFFIX)
}

pub fn apply_state_key(region_id: u64) -> [u8; 11] {
    region_key(REGION_RAFT_PREFIX, region_id, APPLY_STATE_SUFFIX)
}

/// Present only while a received snapshot is being applied (region state `Applying`).
pub fn applying_snapshot_key(region_id: u64) -> [u8; 11] {
    region_key(REGION_RAFT_PREFIX, region_id, APPLYING_SNAPSHOT_SUFFIX)
}

pub fn region_state_key(region_id: u64) -> [u8; 11] {
    region_key(REGION_META_PREFIX, region_id, REGION_STATE_SUFFIX)
}

pub fn data_key(user_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(user_key.len() + 1);
    k.push(DATA_PREFIX);
    k.extend_from_slice(user_key);
    k
}

/// The user key of a data key (the inverse of `data_key`).
pub fn origin_key(data_key: &[u8]) -> &[u8] {
    debug_assert_eq!(data_key.first(), Some(&DATA_PREFIX));
    &data_key[1..]
}

/// The data key just past every user key: the end of the data key space.
pub const DATA_END_KEY: [u8; 1] = [DATA_PREFIX + 1];

/// The data-key form of a region's end (an empty user end key means "to the end").
pub fn data_end_key(user_end: &[u8]) -> Vec<u8> {
    if user_end.is_empty() { DATA_END_KEY.to_vec() } else { data_key(user_end) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_index_and_round_trip() {
        let a = raft_log_key(1, 5);
        let b = raft_log_key(1, 256);
        assert!(a < b);
        assert_eq!(raft_log_index(&b), Some(256));
        assert!(raft_log_key(1, u64::MAX)[..] < raft_state_key(1)[..]);
        assert!(raft_state_key(1)[..] < raft_log_key(2, 0)[..]);
    }

    #[test]
    fn user_keys_never_collide_with_metadata() {
        for meta in
            [&STORE_IDENT_KEY[..], &raft_state_key(1), &apply_state_key(1), &region_state_key(1)]
        {
            assert_eq!(meta[0], LOCAL_PREFIX);
        }
        // Even a user key that looks like metadata is stored under the data prefix.
        let k = data_key(&apply_state_key(1));
        assert_eq!(k[0], DATA_PREFIX);
        assert_eq!(origin_key(&k), &apply_state_key(1));
        assert!(data_key(&[0xff; 8]) < DATA_END_KEY.to_vec());
    }
}
