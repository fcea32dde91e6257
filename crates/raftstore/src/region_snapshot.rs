//! A consistent view of one region's user data, handed to a read once its ReadIndex is
//! applied. Keys in and out are user keys; the data prefix stays inside.

use std::sync::Arc;

use bytes::Bytes;
use raftkv_proto::metapb::Region;

use crate::keys;

pub struct RegionSnapshot {
    snap: Arc<engine::Snapshot>,
    region: Region,
}

impl RegionSnapshot {
    pub(crate) fn new(snap: Arc<engine::Snapshot>, region: Region) -> Self {
        RegionSnapshot { snap, region }
    }

    pub fn region(&self) -> &Region {
        &self.region
    }

    pub fn get(&self, cf: &str, key: &[u8]) -> engine::Result<Option<Bytes>> {
        self.snap.get(cf, &keys::data_key(key))
    }

    /// Pairs with keys >= `start` inside the region, in order, at most `limit`.
    pub fn scan(
        &self,
        cf: &str,
        start: &[u8],
        limit: usize,
    ) -> engine::Result<Vec<(Bytes, Bytes)>> {
        let start = keys::data_key(start.max(self.region.start_key.as_ref()));
        let end = keys::data_end_key(&self.region.end_key);
        let pairs = self.snap.scan(cf, &start, Some(&end), limit)?;
        Ok(pairs.into_iter().map(|(k, v)| (k.slice(1..), v)).collect())
    }
}
