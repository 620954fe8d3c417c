//! The `mmlog` command-line tool.
fn main() {}
