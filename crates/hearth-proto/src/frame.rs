//! Length-prefixed JSON frames: `u32` big-endian length, then JSON, at most [`MAX_FRAME`] bytes.

use std::io::{self, Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest frame either side accepts: 16 MiB.
pub const MAX_FRAME: usize = 16 << 20;

/// The largest Hello frame hearthd accepts: 64 KiB. A Hello holds a version, a program name and
/// at most an API token, a few hundred bytes; the peer is not yet known to be anyone, so it gets
/// no more than that.
pub const MAX_HELLO_FRAME: usize = 64 << 10;

/// How long hearthd keeps a connection on which no request arrives: 5 minutes, counted from the
/// last answer. Only the wait for the next request counts; a long request, a task being
/// followed or a console being handed over are never cut. A client that keeps a connection for
/// an interactive session reconnects after such a pause.
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME} bytes")]
    TooLarge(usize),
    #[error("frame is not valid JSON for this message")]
    Json(#[source] serde_json::Error),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Serialises `msg` into a complete frame, length prefix included.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut buf = vec![0u8; 4];
    serde_json::to_writer(&mut buf, msg).map_err(FrameError::Json)?;
    let len = buf.len() - 4;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let len = u32::try_from(len).map_err(|_| FrameError::TooLarge(len))?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

/// Parses a frame's payload (without the length prefix).
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(payload).map_err(FrameError::Json)
}

/// Writes one frame.
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), FrameError> {
    w.write_all(&encode(msg)?)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame; `Ok(None)` when the peer closed the connection between frames.
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> Result<Option<T>, FrameError> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    // The buffer grows with what arrives, so a peer that announces a large frame and sends
    // little of it costs little.
    let mut payload = Vec::new();
    r.take(len as u64).read_to_end(&mut payload)?;
    if payload.len() < len {
        return Err(FrameError::Truncated);
    }
    decode(&payload).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let frame = encode(&vec!["a", "b"]).unwrap();
        assert_eq!(&frame[..4], &9u32.to_be_bytes());
        let mut r = &frame[..];
        assert_eq!(read_frame::<Vec<String>>(&mut r).unwrap(), Some(vec!["a".to_owned(), "b".to_owned()]));
        assert!(read_frame::<Vec<String>>(&mut r).unwrap().is_none());

        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(matches!(read_frame::<Vec<String>>(&mut &huge[..]), Err(FrameError::TooLarge(_))));
        assert!(matches!(read_frame::<Vec<String>>(&mut &frame[..6]), Err(FrameError::Truncated)));
        let bad = [0, 0, 0, 3, b'{', b'x', b'}'];
        assert!(matches!(read_frame::<Vec<String>>(&mut &bad[..]), Err(FrameError::Json(_))));
    }
}
