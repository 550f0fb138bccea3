//! Passing open files between Hearth's clients and hearthd (SCM_RIGHTS), so hearthd streams
//! volume data into and out of files the caller opened with its own rights.
//!
//! Protocol: after a request frame that carries files, the client sends exactly one byte with
//! the descriptors attached; the server reads that byte with [`recv_fds`].

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

/// Sends `fd` over the connected Unix socket `socket`, attached to one byte.
pub fn send_fd(socket: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    send_fds(socket, &[fd])
}

/// Sends all of `fds` over the connected Unix socket `socket`, attached to one byte.
pub fn send_fds(socket: BorrowedFd<'_>, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let fds: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(b"F")];
    loop {
        match sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(io::Error::new(io::ErrorKind::WriteZero, "the descriptor byte was not sent")),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives the byte and descriptor [`send_fd`] sent. Non-blocking when `socket` is: then it
/// fails with [`io::ErrorKind::WouldBlock`] until the byte arrives.
pub fn recv_fd(socket: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut fds = recv_fds(socket, 1)?;
    fds.pop().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no file with the request"))
}

/// Receives the byte and exactly `count` descriptors (at most 8) that [`send_fds`] sent.
pub fn recv_fds(socket: BorrowedFd<'_>, count: usize) -> io::Result<Vec<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 8]);
    let msg = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    if msg.bytes == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before the file arrived"));
    }
    let mut received: Vec<RawFd> = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            received.extend(fds);
        }
    }
    let owned: Vec<OwnedFd> = received
        .into_iter()
        // SAFETY: each descriptor was just installed in this process by the kernel for this
        // message (SCM_RIGHTS, close-on-exec); nothing else refers to it, so taking ownership
        // is sound and closes it exactly once.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) || owned.len() != count {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("expected exactly {count} file(s) with the request, got {}", owned.len()),
        ));
    }
    Ok(owned)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn a_file_crosses_the_socket() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"payload").unwrap();
        send_fd(a.as_fd(), file.as_fd()).unwrap();
        let got = recv_fd(b.as_fd()).unwrap();
        let mut got = std::fs::File::from(got);
        let mut text = String::new();
        got.seek(SeekFrom::Start(0)).unwrap();
        got.read_to_string(&mut text).unwrap();
        assert_eq!(text, "payload");
    }

    #[test]
    fn a_byte_without_a_file_is_refused() {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"F").unwrap();
        assert_eq!(recv_fd(b.as_fd()).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
