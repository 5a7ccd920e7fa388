//! The failup journal as a pure domain: what an entry is, the rules it follows, how entries are
//! laid out in Automerge documents, and the queries, statistics and export formats built on
//! them.
//!
//! This crate never touches the outside world: no files, no sockets, no clock, no random
//! numbers. Times and ids come in as arguments, so every behaviour can be tested and replayed
//! exactly.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod entry;
pub mod export;
pub mod inflate;
pub mod layout;
pub mod query;
mod serde_compact;
pub mod space;
pub mod stats;
pub mod text;
pub mod today;

pub use entry::{
    Entry, EntryId, EntryPatch, Iteration, IterationId, NewEntry, Outcome, REFRAME_QUESTIONS,
    ReframeField, Scale, Status,
};
pub use export::EntryView;
pub use layout::Bucket;
pub use query::Filter;
pub use stats::{Stats, StatsBuilder};
pub use today::Today;

/// Everything that can go wrong inside the journal domain.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A value breaks one of the journal's rules; the message names the rule.
    #[error("{0}")]
    Invalid(String),
    /// Text that should be an id is not one.
    #[error("{value:?} is not a valid {what}")]
    BadId {
        /// What kind of id was expected.
        what: &'static str,
        /// The offending text, shortened.
        value: String,
    },
    /// No entry has this id.
    #[error("no entry with id {0}")]
    NotFound(EntryId),
    /// A stored or received document does not read as a journal.
    #[error("corrupt journal document: {0}")]
    Corrupt(String),
    /// An import file cannot be used.
    #[error("{0}")]
    Import(String),
}
