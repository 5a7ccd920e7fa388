//! Length-prefixed postcard frames on a byte stream, for the control socket and the pairing
//! exchange: the one place that reads and writes them, blocking (the `failup` command) or async
//! (the daemon). The framing itself (a 4-byte big-endian length, checked against a limit before
//! anything is allocated) is `failup_wire`'s, shared with sync frames.

use std::io::{Read, Write};

use failup_wire::FRAME_HEADER_BYTES;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed or ended.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The frame is over its limit, or its payload does not decode.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

fn encode(value: &impl Serialize, max: u32) -> Result<Vec<u8>, FrameError> {
    let payload = postcard::to_allocvec(value).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if payload.len() > max as usize {
        return Err(FrameError::Malformed(format!(
            "a frame of {} bytes is over the {max}-byte limit",
            payload.len()
        )));
    }
    Ok(failup_wire::frame(&payload))
}

fn payload_len(header: [u8; FRAME_HEADER_BYTES], max: u32) -> Result<usize, FrameError> {
    failup_wire::frame_len_within(header, max).map_err(|e| FrameError::Malformed(e.to_string()))
}

fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    postcard::from_bytes(payload).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Writes `value` as one frame of at most `max` payload bytes.
pub fn write(w: &mut impl Write, value: &impl Serialize, max: u32) -> Result<(), FrameError> {
    w.write_all(&encode(value, max)?)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame of at most `max` payload bytes.
pub fn read<T: DeserializeOwned>(r: &mut impl Read, max: u32) -> Result<T, FrameError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    r.read_exact(&mut header)?;
    let len = payload_len(header, max)?;
    let mut payload = Vec::new();
    r.take(len as u64).read_to_end(&mut payload)?;
    if payload.len() != len {
        return Err(FrameError::Malformed("the frame ends early".into()));
    }
    decode(&payload)
}

/// Writes `value` as one frame of at most `max` payload bytes, asynchronously.
pub async fn write_async(
    w: &mut (impl AsyncWrite + Unpin),
    value: &impl Serialize,
    max: u32,
) -> Result<(), FrameError> {
    w.write_all(&encode(value, max)?).await?;
    Ok(())
}

/// Reads the payload of one frame of at most `max` bytes, asynchronously, undecoded: the
/// control server answers a payload that does not decode rather than dropping the client.
pub async fn read_payload_async(
    r: &mut (impl AsyncRead + Unpin),
    max: u32,
) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    r.read_exact(&mut header).await?;
    let len = payload_len(header, max)?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(payload)
}

/// Reads one frame of at most `max` payload bytes, asynchronously.
pub async fn read_async<T: DeserializeOwned>(
    r: &mut (impl AsyncRead + Unpin),
    max: u32,
) -> Result<T, FrameError> {
    decode(&read_payload_async(r, max).await?)
}

/// Decodes a payload read by [`read_payload_async`].
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    decode(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_at_the_limit_passes_and_one_byte_more_is_refused() {
        let value = vec![7u8; 10];
        // postcard writes a one-byte length before ten bytes: an 11-byte payload.
        let mut out = Vec::new();
        write(&mut out, &value, 11).expect("at the limit");
        let back: Vec<u8> = read(&mut out.as_slice(), 11).expect("read at the limit");
        assert_eq!(back, value);
        assert!(write(&mut Vec::new(), &value, 10).is_err());
        assert!(read::<Vec<u8>>(&mut out.as_slice(), 10).is_err());
    }

    #[test]
    fn short_and_garbage_frames_are_errors() {
        assert!(read::<u8>(&mut [0u8, 0, 0, 9, 1].as_slice(), 100).is_err());
        assert!(read::<u8>(&mut [0xffu8, 0xff, 0xff, 0xff].as_slice(), 100).is_err());
        assert!(read::<bool>(&mut [0u8, 0, 0, 1, 0xff].as_slice(), 100).is_err());
    }
}
