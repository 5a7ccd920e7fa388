//! The control protocol between the `failup` command and a running daemon, over a Unix socket
//! in the home (proto/control.md). Each request is one frame, answered by one frame: a 4-byte
//! big-endian length and a postcard-encoded [`Request`] or [`Response`].
//!
//! The requests are the node's own ([`failup_node::request`]): the daemon hands each to the
//! same `Node::execute` a command calls when no daemon runs, so a command behaves the same
//! either way.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

pub use failup_node::request::*;
use failup_node::{ErrorKind, Failure};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use crate::Event;
use crate::frame::{self, FrameError};

/// Largest control frame, in bytes: an import of a large journal travels in one request.
pub const MAX_CONTROL_FRAME: u32 = 1 << 30;
pub use failup_home::SOCKET_FILE;

/// Why talking to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket could not be used.
    #[error("daemon connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// A frame was malformed.
    #[error("daemon sent a malformed answer: {0}")]
    Malformed(String),
    /// The daemon closed the connection before the request was sent: nothing was done.
    #[error(
        "the daemon stopped before the request reached it: nothing was done; run the command \
         again (with no daemon running it works on its own)"
    )]
    NotSent,
    /// The daemon closed the connection after the request was sent, before answering.
    #[error(
        "the daemon stopped before answering: the request reached it and may or may not have \
         been carried out; check (failup list, failup peers) before running it again"
    )]
    NoAnswer,
}

/// Whether an I/O error means the other end went away.
fn gone(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | BrokenPipe | ConnectionReset | ConnectionAborted
    )
}

impl From<FrameError> for ControlError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Io(e) => ControlError::Io(e),
            FrameError::Malformed(m) => ControlError::Malformed(m),
        }
    }
}

/// Writes one control frame.
pub fn write_frame(
    w: &mut impl std::io::Write,
    value: &impl Serialize,
) -> Result<(), ControlError> {
    Ok(frame::write(w, value, MAX_CONTROL_FRAME)?)
}

/// Reads one control frame.
pub fn read_frame<T: DeserializeOwned>(r: &mut impl std::io::Read) -> Result<T, ControlError> {
    Ok(frame::read(r, MAX_CONTROL_FRAME)?)
}

/// Serves the control socket: one request, one answer, as many as a client sends.
pub(crate) async fn serve(
    listener: tokio::net::UnixListener,
    events: mpsc::UnboundedSender<Event>,
) {
    while let Ok((mut stream, _)) = listener.accept().await {
        let events = events.clone();
        tokio::spawn(async move {
            while let Ok(payload) = frame::read_payload_async(&mut stream, MAX_CONTROL_FRAME).await
            {
                let response = match frame::decode_payload::<Request>(&payload) {
                    Ok(request) => {
                        let (tx, rx) = oneshot::channel();
                        if events.send(Event::Control(Box::new(request), tx)).is_err() {
                            return;
                        }
                        rx.await.unwrap_or_else(|_| stopping())
                    }
                    Err(e) => Response::Error(Failure::new(
                        ErrorKind::Invalid,
                        format!("malformed control request: {e}"),
                    )),
                };
                if frame::write_async(&mut stream, &response, MAX_CONTROL_FRAME)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}

/// The answer to a request the daemon could not finish because it is stopping.
pub(crate) fn stopping() -> Response {
    Response::Error(Failure::new(ErrorKind::Internal, "the daemon is stopping"))
}

/// A connection to a running daemon, used by the `failup` command.
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connects to the daemon of `home`, if one is running.
    pub fn connect(home: &Path) -> Option<Client> {
        let stream = UnixStream::connect(home.join(SOCKET_FILE)).ok()?;
        Some(Client { stream })
    }

    /// Sends a request and waits for the answer, at most `timeout` (none: wait as long as it
    /// takes).
    pub fn call(
        &mut self,
        request: &Request,
        timeout: Option<Duration>,
    ) -> Result<Response, ControlError> {
        self.stream.set_read_timeout(timeout)?;
        match write_frame(&mut self.stream, request) {
            Err(ControlError::Io(e)) if gone(&e) => return Err(ControlError::NotSent),
            r => r?,
        }
        match read_frame(&mut self.stream) {
            Err(ControlError::Io(e)) if gone(&e) => Err(ControlError::NoAnswer),
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(value: &impl Serialize) -> String {
        let mut out = Vec::new();
        write_frame(&mut out, value).expect("frame");
        data_encoding::HEXLOWER.encode(&out)
    }

    #[test]
    fn frames_match_the_spec() {
        let spec = include_str!("../../../proto/control.md");
        let vectors = [
            ("status", frame(&Request::Status)),
            ("invite-600", frame(&Request::Invite { ttl_secs: 600 })),
            (
                "resolve-01k",
                frame(&Request::Resolve {
                    prefix: "01K".into(),
                }),
            ),
            ("done", frame(&Response::Done)),
            (
                "error",
                frame(&Response::Error(Failure::new(ErrorKind::Busy, "busy"))),
            ),
        ];
        for (name, hex) in vectors {
            let line = format!("frame {name}: {hex}");
            assert!(spec.contains(&line), "proto/control.md lacks `{line}`");
        }
        let mut bytes: &[u8] = &[0, 0, 0, 1, 10];
        assert!(matches!(
            read_frame::<Request>(&mut bytes),
            Ok(Request::Status)
        ));
    }

    #[test]
    fn short_oversized_and_garbage_frames_are_errors() {
        let mut short: &[u8] = &[0, 0, 0, 9, 1];
        assert!(read_frame::<Request>(&mut short).is_err());
        let mut huge: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(read_frame::<Request>(&mut huge).is_err());
        let mut garbage: &[u8] = &[0, 0, 0, 2, 0xff, 0xff];
        assert!(read_frame::<Request>(&mut garbage).is_err());
    }
}
