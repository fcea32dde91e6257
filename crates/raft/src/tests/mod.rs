//! Unit tests of the core, after the course's 2A/2C tests, the Raft paper's §5 and etcd's.
//! File names read as the feature list.

mod harness;
mod smoke;

mod async_persist;
mod election;
mod paper_election;
mod paper_replication;
mod raw_node;
mod replication;
mod snapshot;

mod check_quorum;
mod flow_control;
mod leader_transfer;
mod membership;
mod pre_vote;
mod read_index;
