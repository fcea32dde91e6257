//! Bad input gets a clear error and changes nothing (SPEC part B): every client request is
//! checked here BEFORE it reaches the store. Each check returns the text that goes in the
//! response's `error` field.

use crate::config::ServerSection;

/// The client-facing limits of `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_scan_limit: u32,
}

impl Limits {
    pub fn from_config(server: &ServerSection) -> Self {
        Limits {
            max_key_bytes: server.max_key_bytes,
            max_value_bytes: server.max_value_bytes,
            max_scan_limit: server.max_scan_limit,
        }
    }

    /// A key names one entry: non-empty and at most `max_key_bytes`.
    pub fn check_key(&self, key: &[u8]) -> Result<(), String> {
        if key.is_empty() {
            return Err("key is empty".to_string());
        }
        self.check_key_len(key)
    }

    /// A scan's start may be empty (the first key) but is no longer than a key.
    pub fn check_scan_start(&self, start: &[u8]) -> Result<(), String> {
        self.check_key_len(start)
    }

    fn check_key_len(&self, key: &[u8]) -> Result<(), String> {
        if key.len() > self.max_key_bytes {
            return Err(format!(
                "key is {} bytes, over the limit of {} (server.max_key_bytes)",
                key.len(),
                self.max_key_bytes
            ));
        }
        Ok(())
    }

    pub fn check_value(&self, value: &[u8]) -> Result<(), String> {
        if value.len() > self.max_value_bytes {
            return Err(format!(
                "value is {} bytes, over the limit of {} (server.max_value_bytes)",
                value.len(),
                self.max_value_bytes
            ));
        }
        Ok(())
    }

    /// A scan returns at least one and at most `max_scan_limit` pairs.
    pub fn check_scan_limit(&self, limit: u32) -> Result<(), String> {
        if limit == 0 {
            return Err("scan limit is 0; it must be at least 1".to_string());
        }
        if limit > self.max_scan_limit {
            return Err(format!(
                "scan limit {limit} is over the limit of {} (server.max_scan_limit)",
                self.max_scan_limit
            ));
        }
        Ok(())
    }
}

/// A column family is empty (meaning `default`) or one of the data column families.
pub fn check_cf(cf: &str) -> Result<(), String> {
    if cf.is_empty() || engine::DATA_CFS.contains(&cf) {
        return Ok(());
    }
    Err(format!(
        "unknown column family {cf:?}; expected one of {:?} (empty means \"default\")",
        engine::DATA_CFS
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { max_key_bytes: 4, max_value_bytes: 8, max_scan_limit: 10 }
    }

    #[test]
    fn keys_are_non_empty_and_bounded() {
        assert!(limits().check_key(b"").is_err());
        assert!(limits().check_key(b"abcd").is_ok());
        let err = limits().check_key(b"abcde").expect_err("5 > 4");
        assert!(err.contains("max_key_bytes"), "{err}");
        assert!(limits().check_scan_start(b"").is_ok(), "a scan may start at the first key");
        assert!(limits().check_scan_start(b"abcde").is_err());
    }

    #[test]
    fn values_are_bounded_and_may_be_empty() {
        assert!(limits().check_value(b"").is_ok());
        assert!(limits().check_value(&[0; 8]).is_ok());
        assert!(limits().check_value(&[0; 9]).is_err());
    }

    #[test]
    fn scan_limit_is_between_one_and_the_cap() {
        assert!(limits().check_scan_limit(0).is_err());
        assert!(limits().check_scan_limit(1).is_ok());
        assert!(limits().check_scan_limit(10).is_ok());
        assert!(limits().check_scan_limit(11).is_err());
    }

    #[test]
    fn only_data_column_families() {
        for cf in ["", "default", "lock", "write"] {
            assert!(check_cf(cf).is_ok(), "{cf}");
        }
        for cf in ["raft", "Default", "x"] {
            assert!(check_cf(cf).is_err(), "{cf}");
        }
    }
}
