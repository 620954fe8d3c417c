//! Integration tests of the public API: one binary, a module per area.

mod append;
mod checkpoints;
mod compaction;
mod corruption;
mod events;
mod exhaustive;
mod fs_faults;
mod model;
mod partitioned;
mod replica;
mod soak;
mod support;
