//! What can go wrong at the storage boundary, and what each error promises.
//!
//! Only `UnknownCf` and `InvalidArgument` are rejections of bad input: they are returned
//! before anything is written, so the engine is unchanged. `Io` and `Fjall` from a write or
//! a sync are fatal to the store: the caller stops the node instead of retrying, because a
//! failed fsync may have dropped dirty pages that a retried fsync would report as clean
//! (Rebello et al., "Can Applications Recover from fsync Failures?", ATC '20). fjall enforces
//! the same rule: after a failed journal write or fsync it poisons the database and refuses
//! every later write with `fjall::Error::Poisoned`.

use std::fmt::Write as _;

/// The engine's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// An error of the storage boundary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system operation of the engine itself (outside fjall) failed.
    #[error("engine I/O: {0}")]
    Io(#[from] std::io::Error),
    /// fjall failed: I/O, an unrecoverable journal, a data directory locked by another
    /// process, or `Poisoned` after an earlier failed write or fsync.
    #[error("fjall: {0}")]
    Fjall(#[from] fjall::Error),
    /// The column family was not among those the engine was opened with.
    #[error("unknown column family {0:?}")]
    UnknownCf(String),
    /// Stored bytes could not be decoded; the message names the column family and key (hex).
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A request fjall cannot store (empty or oversized key, oversized value) or an invalid
    /// configuration. Nothing was written.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Lower-case hex of `bytes`, for keys in error messages.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::hex;

    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0a, 0xff]), "000aff");
        assert_eq!(hex(&[]), "");
    }
}
