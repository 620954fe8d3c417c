//! Integration tests of the public API: one binary, a module per area.

mod append;
mod corruption;
mod exhaustive;
mod full_disk;
mod model;
mod support;
