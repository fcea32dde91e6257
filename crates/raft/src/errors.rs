//! The two error kinds of the crate: what `RawNode` refuses, and what `Storage` cannot give.

/// A storage failure the core understands and reacts to; anything else is `Other`.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The requested index precedes the first index still in storage.
    #[error("log compacted: requested index is older than the first retained entry")]
    Compacted,
    /// The requested index is past the last entry in storage.
    #[error("log unavailable: requested index is past the last entry")]
    Unavailable,
    /// The snapshot is older than one the storage already has.
    #[error("snapshot out of date")]
    SnapshotOutOfDate,
    /// A snapshot is being generated; the core retries later.
    #[error("snapshot temporarily unavailable: being generated")]
    SnapshotTemporarilyUnavailable,
    /// The storage itself failed (a disk error, a corrupt record).
    #[error("storage failure: {0}")]
    Other(#[from] Box<dyn std::error::Error + Send + Sync>),
}

/// Why `RawNode` refused a request. None of these changes any state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The proposal was not appended: this node is not the leader, a leader transfer is in
    /// progress, or a membership change is already pending. Safe to retry elsewhere.
    #[error("proposal dropped")]
    ProposalDropped,
    /// A local-only message (Hup, Beat) was passed to `step`.
    #[error("cannot step a local message")]
    StepLocalMsg,
    /// A response came from a node that is not in the configuration.
    #[error("message from a node not in the configuration")]
    StepPeerNotFound,
    /// The configuration is inconsistent.
    #[error("invalid config: {0}")]
    ConfigInvalid(String),
    /// A membership change could not be decoded or applied.
    #[error("invalid membership change: {0}")]
    ConfChangeInvalid(String),
    /// Storage could not answer.
    #[error(transparent)]
    Store(#[from] StorageError),
}

pub type Result<T> = std::result::Result<T, Error>;
