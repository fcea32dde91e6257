//! The snapshot file format: every key-value pair of a region, column family by column
//! family, in one sequential file that is written once and streamed as-is.
//!
//! ```text
//! file   := MAGIC record* END
//! record := cf:u8 key_len:u32le value_len:u32le key value
//! END    := 0xFF
//! ```
//!
//! `cf` indexes `engine::DATA_CFS`; keys are data keys (with the `z` prefix). Integrity is
//! the CRC-32 over every byte of the file together with its exact size, both carried in the
//! MsgSnapshot (`SnapshotMeta`): a receiver checks them before it applies anything, and the
//! apply checks them again before it clears the region's old data.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use raftkv_proto::raft_serverpb::SnapshotMeta;

use crate::errors::{Result, StoreError};

const MAGIC: &[u8; 8] = b"RKVSNAP1";
const END: u8 = 0xFF;
/// Larger keys or values cannot come from the engine; a file claiming one is corrupt.
const MAX_KEY_BYTES: u32 = u16::MAX as u32;
const MAX_VALUE_BYTES: u32 = 256 * 1024 * 1024;
const BUFFER_BYTES: usize = 256 * 1024;
/// A snapshot file is synced every this many bytes as it is written: the disk takes the
/// data at the pace it comes instead of a burst of writeback that would stall every
/// fsync on the machine (the stores' raft logs) for a while.
pub const BYTES_PER_SYNC: u64 = 4 * 1024 * 1024;

fn io_error(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    StoreError::Corrupt(format!("snapshot file {}: {what}: {e}", path.display()))
}

/// Writes a snapshot file, computing its size and checksum on the way.
pub struct SnapFileWriter {
    out: BufWriter<File>,
    hasher: crc32fast::Hasher,
    size: u64,
    synced: u64,
    path: std::path::PathBuf,
}

impl SnapFileWriter {
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|e| io_error(path, "cannot create", e))?;
        let mut w = SnapFileWriter {
            out: BufWriter::with_capacity(BUFFER_BYTES, file),
            hasher: crc32fast::Hasher::new(),
            size: 0,
            synced: 0,
            path: path.to_path_buf(),
        };
        w.put(MAGIC)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(|e| io_error(&self.path, "cannot write", e))?;
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        if self.size - self.synced >= BYTES_PER_SYNC {
            self.out.flush().map_err(|e| io_error(&self.path, "cannot write", e))?;
            self.out.get_ref().sync_data().map_err(|e| io_error(&self.path, "fsync", e))?;
            self.synced = self.size;
            super::drop_cached(self.out.get_ref(), self.synced);
        }
        Ok(())
    }

    pub fn add(&mut self, cf: u8, key: &[u8], value: &[u8]) -> Result<()> {
        let (klen, vlen) = (key.len() as u32, value.len() as u32);
        if klen > MAX_KEY_BYTES || vlen > MAX_VALUE_BYTES {
            return Err(StoreError::Corrupt(format!("pair of {klen}+{vlen} bytes is too large")));
        }
        let mut header = [0u8; 9];
        header[0] = cf;
        header[1..5].copy_from_slice(&klen.to_le_bytes());
        header[5..9].copy_from_slice(&vlen.to_le_bytes());
        self.put(&header)?;
        self.put(key)?;
        self.put(value)
    }

    /// Ends the file and flushes it to the OS (and to disk with `sync`); returns its meta.
    pub fn finish(mut self, cfs: &[&str], sync: bool) -> Result<SnapshotMeta> {
        self.put(&[END])?;
        let file = self.out.into_inner().map_err(|e| io_error(&self.path, "flush", e.into()))?;
        if sync {
            file.sync_all().map_err(|e| io_error(&self.path, "fsync", e))?;
        }
        Ok(SnapshotMeta {
            size_bytes: self.size,
            crc32: self.hasher.finalize(),
            cfs: cfs.iter().map(|cf| (*cf).to_string()).collect(),
        })
    }
}

/// Checks a whole file against its meta without interpreting it.
pub fn verify(path: &Path, meta: &SnapshotMeta) -> Result<()> {
    let mut file = File::open(path).map_err(|e| io_error(path, "cannot open", e))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; BUFFER_BYTES];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| io_error(path, "cannot read", e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let crc = hasher.finalize();
    if size != meta.size_bytes || crc != meta.crc32 {
        return Err(StoreError::Corrupt(format!(
            "snapshot file {} has {size} bytes with crc {crc:#010x}, expected {} bytes with \
             crc {:#010x}",
            path.display(),
            meta.size_bytes,
            meta.crc32
        )));
    }
    Ok(())
}

/// Reads the pairs of a snapshot file in order (verify it first: this checks structure only).
pub struct SnapFileReader {
    input: BufReader<File>,
    path: std::path::PathBuf,
    done: bool,
}

/// One pair of a snapshot file.
pub struct SnapPair {
    pub cf: u8,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl SnapFileReader {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| io_error(path, "cannot open", e))?;
        let mut r = SnapFileReader {
            input: BufReader::with_capacity(BUFFER_BYTES, file),
            path: path.to_path_buf(),
            done: false,
        };
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(StoreError::Corrupt(format!(
                "{} is not a raftkv snapshot file",
                path.display()
            )));
        }
        Ok(r)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.input.read_exact(buf).map_err(|e| io_error(&self.path, "truncated", e))
    }

    /// The next pair, or `None` at the end marker.
    pub fn next_pair(&mut self) -> Result<Option<SnapPair>> {
        if self.done {
            return Ok(None);
        }
        let mut cf = [0u8; 1];
        self.read_exact(&mut cf)?;
        if cf[0] == END {
            self.done = true;
            let mut rest = [0u8; 1];
            return match self.input.read(&mut rest) {
                Ok(0) => Ok(None),
                Ok(_) => Err(StoreError::Corrupt(format!(
                    "snapshot file {}: bytes after the end marker",
                    self.path.display()
                ))),
                Err(e) => Err(io_error(&self.path, "cannot read", e)),
            };
        }
        let mut lens = [0u8; 8];
        self.read_exact(&mut lens)?;
        let klen = u32::from_le_bytes([lens[0], lens[1], lens[2], lens[3]]);
        let vlen = u32::from_le_bytes([lens[4], lens[5], lens[6], lens[7]]);
        if klen > MAX_KEY_BYTES || vlen > MAX_VALUE_BYTES {
            return Err(StoreError::Corrupt(format!(
                "snapshot file {}: pair of {klen}+{vlen} bytes",
                self.path.display()
            )));
        }
        let mut key = vec![0u8; klen as usize];
        self.read_exact(&mut key)?;
        let mut value = vec![0u8; vlen as usize];
        self.read_exact(&mut value)?;
        Ok(Some(SnapPair { cf: cf[0], key, value }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_and_any_flipped_byte_fails_the_check() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("s.snap");
        let mut w = SnapFileWriter::create(&path).expect("create");
        w.add(0, b"za", b"1").expect("add");
        w.add(1, b"zb", &[7u8; 1000]).expect("add");
        w.add(2, b"zc", b"").expect("add");
        let meta = w.finish(&engine::DATA_CFS, true).expect("finish");
        assert_eq!(meta.size_bytes, std::fs::metadata(&path).expect("stat").len());
        verify(&path, &meta).expect("intact file verifies");

        let mut r = SnapFileReader::open(&path).expect("open");
        let mut got = Vec::new();
        while let Some(p) = r.next_pair().expect("read") {
            got.push((p.cf, p.key, p.value.len()));
        }
        assert_eq!(
            got,
            vec![(0, b"za".to_vec(), 1), (1, b"zb".to_vec(), 1000), (2, b"zc".to_vec(), 0)]
        );

        let mut bytes = std::fs::read(&path).expect("read");
        bytes[20] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write");
        let err = verify(&path, &meta).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("expected"), "{err}");
        bytes.pop();
        std::fs::write(&path, &bytes).expect("write");
        assert!(verify(&path, &meta).is_err(), "a truncated file must fail the check");
    }
}
