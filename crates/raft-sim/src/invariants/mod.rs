//! Safety properties checked after every step, one per file. Each returns a description of
//! the violation; the scheduler turns it into a panic that names the seed.
//!
//! "No entry is applied twice" lives with the application (`state_machine.rs`), which sees
//! every apply.

mod committed_log;
mod election_safety;
mod log_matching;
mod monotonic;
mod read_index;

pub use committed_log::CommittedLog;
pub use election_safety::ElectionSafety;
pub use log_matching::check_log_matching;
pub use monotonic::Monotonic;
pub use read_index::ReadIndexCheck;

use raft::MemStorage;

/// A live node's log as the checkers see it.
pub type Log = raft::RaftLog<MemStorage>;

pub type Violation = String;
