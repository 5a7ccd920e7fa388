//! Why an operation failed, typed: the `failup` command maps each kind to its exit code and its
//! words without reading the message, whether the failure happened in this process or in a
//! running daemon (which sends the kind and the message over the control socket).

use failup_journal::JournalError;
use failup_store::StoreError;
use serde::{Deserialize, Serialize};

/// Everything that can go wrong in a node's operation.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The store failed or refused (its own kinds are told apart by [`NodeError::kind`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What was asked for does not exist here: no such partner, device or shared entry.
    #[error("{0}")]
    NotFound(String),
    /// The request itself is wrong: a bad address, label, code or field list.
    #[error("{0}")]
    Invalid(String),
    /// The circle's rules forbid it: a revoked device, a second circle, a used invite.
    #[error("{0}")]
    Refused(String),
    /// Not possible yet or not here: a document still to arrive by sync, a request only a
    /// running daemon can carry out.
    #[error("{0}")]
    Unavailable(String),
    /// A document that should read does not (damaged, or written by a modified client).
    #[error("{0}")]
    Corrupt(String),
    /// Another device could not be reached.
    #[error("{0}")]
    Unreachable(String),
    /// The operation was done, but not all of it: the message says what is left.
    #[error("{0}")]
    Incomplete(String),
}

impl From<automerge::AutomergeError> for NodeError {
    fn from(e: automerge::AutomergeError) -> Self {
        NodeError::Corrupt(e.to_string())
    }
}

impl From<JournalError> for NodeError {
    fn from(e: JournalError) -> Self {
        NodeError::Store(StoreError::Journal(e))
    }
}

/// A failure's kind, as the control protocol carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The request is wrong (a value breaks a rule, an id is ambiguous).
    Invalid,
    /// What was named does not exist.
    NotFound,
    /// The rules forbid it.
    Refused,
    /// Not possible yet, or not without a running daemon.
    Unavailable,
    /// The journal is held by another process.
    Busy,
    /// Stored or received data does not read.
    Corrupt,
    /// The disk or the database failed.
    Storage,
    /// Another device could not be reached.
    Unreachable,
    /// Done, but not all of it.
    Incomplete,
    /// The daemon itself failed (it is stopping, say).
    Internal,
}

/// A failure as it crosses the control socket: its kind and its one-line message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The message, as the node would print it.
    pub message: String,
}

impl Failure {
    /// A failure of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }
}

impl NodeError {
    /// The kind of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            NodeError::Store(e) => match e {
                StoreError::Busy(_) => ErrorKind::Busy,
                StoreError::NoMatch(_) => ErrorKind::NotFound,
                StoreError::Ambiguous { .. } => ErrorKind::Invalid,
                StoreError::Journal(JournalError::NotFound(_)) => ErrorKind::NotFound,
                StoreError::Journal(JournalError::Corrupt(_)) => ErrorKind::Corrupt,
                StoreError::Journal(_) => ErrorKind::Invalid,
                StoreError::NotAStore { .. } | StoreError::NewerSchema(_) => ErrorKind::Corrupt,
                StoreError::Record(_) => ErrorKind::Corrupt,
                StoreError::Refused { .. } => ErrorKind::Refused,
                StoreError::Db(_) | StoreError::Io { .. } | StoreError::ReadOnly(_) => {
                    ErrorKind::Storage
                }
            },
            NodeError::NotFound(_) => ErrorKind::NotFound,
            NodeError::Invalid(_) => ErrorKind::Invalid,
            NodeError::Refused(_) => ErrorKind::Refused,
            NodeError::Unavailable(_) => ErrorKind::Unavailable,
            NodeError::Corrupt(_) => ErrorKind::Corrupt,
            NodeError::Unreachable(_) => ErrorKind::Unreachable,
            NodeError::Incomplete(_) => ErrorKind::Incomplete,
        }
    }

    /// This failure as the control protocol carries it.
    pub fn to_failure(&self) -> Failure {
        Failure::new(self.kind(), self.to_string())
    }
}
