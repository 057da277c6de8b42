//! Miners that turn raw dumps into training pairs: one module per source (StackExchange,
//! Reddit, Wikipedia), streaming parsers, the 2021 filters and atomic, sharded writers. It has no
//! ML dependency.

// The synthetic Reddit generator builds a pushshift-sized JSON object with `json!`.
#![recursion_limit = "256"]

pub mod html;
pub mod io;
pub mod langcodes;
pub mod reddit;
pub mod siteinfo;
pub mod spill;
pub mod stackexchange;
pub mod wikipedia;
pub mod wikipedia_langlinks;
pub mod wikitext;
