//! Integration tests of the public API: one binary, a module per area.

mod append;
mod corruption;
mod exhaustive;
mod fs_faults;
mod model;
mod support;
