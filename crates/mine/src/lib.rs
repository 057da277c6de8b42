//! Miners that turn raw dumps into training pairs: one module per source (StackExchange,
//! Reddit, Wikipedia), streaming parsers, the 2021 filters and atomic, sharded writers. It has no
//! ML dependency.
