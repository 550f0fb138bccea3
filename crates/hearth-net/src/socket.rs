//! The blocking NETLINK_ROUTE socket: one request at a time, its ACK or its dump read to the
//! end before the next request is sent.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::NetError;

/// A NETLINK_ROUTE socket in one network namespace, used synchronously (send a request, read
/// its answer). Every operation of this crate is a method of, or takes, a `Netlink`.
///
/// A socket stays in the namespace it was created in, so [`Netlink::in_netns`] opens it on a
/// short-lived thread that joined the target namespace; the same namespace is entered again for
/// the few steps that are not netlink (sysctl writes under `/proc/sys/net`, `tc`).
#[derive(Debug)]
pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
    /// The namespace this handle works in; `None` = the caller's.
    netns: Option<(PathBuf, File)>,
    /// The kernel's own text for the last refused request (extended ACK), if it gave one.
    extack: Option<String>,
}

impl Netlink {
    /// A handle in the calling thread's network namespace.
    pub fn open() -> Result<Netlink, NetError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| NetError::io("open a netlink socket", e))?;
        socket.bind_auto().map_err(|e| NetError::io("bind the netlink socket", e))?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(|e| NetError::io("connect the netlink socket", e))?;
        // Extended ACKs carry the kernel's own error text for some failures.
        let _ = socket.set_ext_ack(true);
        // NACKs then echo only the request's header, not the whole request.
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_rx_buf_sz(1 << 20);
        Ok(Netlink { socket, seq: 0, buf: Vec::with_capacity(1 << 16), netns: None, extack: None })
    }

    /// A handle in the network namespace at `path`: `/proc/<pid>/ns/net`, `/run/netns/NAME` or
    /// any other file naming a network namespace.
    pub fn in_netns(path: impl AsRef<Path>) -> Result<Netlink, NetError> {
        let path = path.as_ref();
        let file =
            File::open(path).map_err(|e| NetError::io(format!("open network namespace {}", path.display()), e))?;
        Netlink::in_netns_file(file, path)
    }

    /// A handle in the network namespace of an open namespace descriptor (`label` names it
    /// in errors, e.g. its path).
    pub fn in_netns_fd(fd: OwnedFd, label: impl AsRef<Path>) -> Result<Netlink, NetError> {
        Netlink::in_netns_file(File::from(fd), label.as_ref())
    }

    fn in_netns_file(file: File, path: &Path) -> Result<Netlink, NetError> {
        let mut handle = in_namespace(&file, path, Netlink::open)??;
        handle.netns = Some((path.to_owned(), file));
        Ok(handle)
    }

    /// The namespace file this handle was opened with, if not the caller's.
    pub fn netns_path(&self) -> Option<&Path> {
        self.netns.as_ref().map(|(p, _)| p.as_path())
    }

    /// Runs `f` in this handle's network namespace (on a short-lived thread when it is not the
    /// caller's): for `/proc/sys/net` writes and child processes such as `tc`.
    pub(crate) fn run_in_netns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetError> {
        match &self.netns {
            None => Ok(f()),
            Some((path, file)) => in_namespace(file, path, f),
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<u32, NetError> {
        let seq = self.next_seq();
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut bytes = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0).map_err(|e| NetError::io("send a netlink request", e))?;
        Ok(seq)
    }

    /// Reads datagrams until `done` says the answer to `seq` is complete; every message of
    /// `seq` is handed to `each`.
    fn read(
        &mut self,
        seq: u32,
        mut each: impl FnMut(NetlinkMessage<RouteNetlinkMessage>) -> Result<bool, NetError>,
    ) -> Result<(), NetError> {
        loop {
            self.buf.clear();
            self.socket.recv(&mut self.buf, 0).map_err(|e| NetError::io("read a netlink answer", e))?;
            let mut offset = 0;
            while offset < self.buf.len() {
                let bytes = &self.buf[offset..];
                let length =
                    NetlinkBuffer::new_checked(bytes).map_err(|e| NetError::decode(e.to_string()))?.length() as usize;
                if length == 0 {
                    break;
                }
                let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[..length.min(bytes.len())])
                    .map_err(|e| NetError::decode(e.to_string()))?;
                offset += (length + 3) & !3;
                if message.header.sequence_number != seq {
                    continue;
                }
                if each(message)? {
                    return Ok(());
                }
            }
        }
    }

    /// Sends a request that changes something and waits for its ACK; a NACK becomes the errno
    /// (and the kernel's text, if any, is kept for [`Netlink::step`]).
    pub(crate) fn request(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<(), i32> {
        self.extack = None;
        let seq = self.send(message, flags | NLM_F_ACK).map_err(|e| e.errno().unwrap_or(libc::EIO))?;
        let mut outcome = Ok(());
        let mut text = None;
        self.read(seq, |m| match m.payload {
            NetlinkPayload::Error(e) => {
                if let Some(code) = e.code {
                    outcome = Err(-code.get());
                    if m.header.flags & NLM_F_ACK_TLVS != 0 {
                        text = extack_message(&e.header, m.header.flags & NLM_F_CAPPED != 0);
                    }
                }
                Ok(true)
            }
            NetlinkPayload::Done(_) => Ok(true),
            _ => Ok(false),
        })
        .map_err(|e| e.errno().unwrap_or(libc::EIO))?;
        self.extack = text;
        outcome
    }

    /// One step's outcome: an errno becomes an error naming the interface, the step and, when
    /// the kernel said more, its words.
    pub(crate) fn step(
        &mut self,
        result: Result<(), i32>,
        ifname: &str,
        what: impl FnOnce() -> String,
    ) -> Result<(), NetError> {
        let detail = self.extack.take();
        result.map_err(|errno| NetError::Kernel { ifname: ifname.to_owned(), step: what(), errno, detail })
    }

    /// Sends a GET request (with `NLM_F_DUMP` when `dump`) and collects the answers.
    pub(crate) fn query(&mut self, message: RouteNetlinkMessage, dump: bool) -> Result<Vec<RouteNetlinkMessage>, i32> {
        let seq = self.send(message, if dump { NLM_F_DUMP } else { 0 }).map_err(|e| e.errno().unwrap_or(libc::EIO))?;
        let mut out = Vec::new();
        let mut failure = None;
        self.read(seq, |m| match m.payload {
            NetlinkPayload::InnerMessage(inner) => {
                out.push(inner);
                Ok(!dump)
            }
            NetlinkPayload::Error(e) => {
                failure = e.code.map(|c| -c.get());
                Ok(true)
            }
            NetlinkPayload::Done(_) => Ok(true),
            _ => Ok(false),
        })
        .map_err(|e| e.errno().unwrap_or(libc::EIO))?;
        match failure {
            Some(errno) => Err(errno),
            None => Ok(out),
        }
    }
}

/// Runs `f` on a thread that joined the network namespace `file` (named `path` in errors).
fn in_namespace<T: Send>(file: &File, path: &Path, f: impl FnOnce() -> T + Send) -> Result<T, NetError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| NetError::io(format!("enter network namespace {}", path.display()), e.into()))?;
                Ok(f())
            })
            .join()
            .map_err(|_| NetError::io("enter a network namespace", std::io::Error::other("thread panicked")))?
    })
}

/// `NLMSGERR_ATTR_MSG` of an extended ACK: `payload` is the echoed request (only its 16-byte
/// header when `capped`) followed by attributes.
fn extack_message(payload: &[u8], capped: bool) -> Option<String> {
    let echoed = if capped { 16 } else { u32::from_ne_bytes(payload.get(..4)?.try_into().ok()?) as usize };
    let mut rest = payload.get((echoed + 3) & !3..)?;
    while rest.len() >= 4 {
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if len < 4 || len > rest.len() {
            return None;
        }
        if kind == 1 {
            let text = String::from_utf8_lossy(&rest[4..len]).trim_end_matches('\0').trim().to_owned();
            return (!text.is_empty()).then_some(text);
        }
        rest = rest.get((len + 3) & !3..).unwrap_or(&[]);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::extack_message;

    #[test]
    fn extended_ack_text_is_found_after_the_echoed_header() {
        let mut payload = vec![0u8; 16];
        let text = b"Unknown device type\0";
        payload.extend_from_slice(&((4 + text.len()) as u16).to_ne_bytes());
        payload.extend_from_slice(&1u16.to_ne_bytes());
        payload.extend_from_slice(text);
        assert_eq!(extack_message(&payload, true).as_deref(), Some("Unknown device type"));
        assert_eq!(extack_message(&payload[..16], true), None);
    }
}
