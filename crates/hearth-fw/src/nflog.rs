//! Reading the firewall's log statements: an nfnetlink_log listener bound to one NFLOG group
//! (the `log group` of the compiled rules), in the network namespace of the calling thread.
//! Each message becomes the rule's prefix (`VMID LOGID CHAIN POLICY: `) and a one-line summary
//! of the packet in the style of the kernel's LOG target (`IN=… SRC=… DST=… PROTO=TCP SPT=… DPT=…`).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, sendto, socket,
};

const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULA_IFINDEX_INDEV: u16 = 4;
const NFULA_IFINDEX_OUTDEV: u16 = 5;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;

/// One logged packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// The rule's log prefix, without the trailing `: `.
    pub prefix: String,
    /// `IN=<ifindex> OUT=<ifindex> SRC=… DST=… PROTO=… [SPT=… DPT=…]`.
    pub packet: String,
}

/// A socket receiving one NFLOG group's packets.
#[derive(Debug)]
pub struct NflogListener {
    fd: OwnedFd,
}

fn nlmsg(kind: u16, flags: u16, group: u16, attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = vec![0u8 /* AF_UNSPEC */, 0 /* NFNETLINK_V0 */];
    body.extend_from_slice(&group.to_be_bytes());
    for (t, data) in attrs {
        let len = 4 + data.len();
        body.extend_from_slice(&(len as u16).to_ne_bytes());
        body.extend_from_slice(&t.to_ne_bytes());
        body.extend_from_slice(data);
        while body.len() % 4 != 0 {
            body.push(0);
        }
    }
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    msg
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_ne_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn summary(indev: Option<u32>, outdev: Option<u32>, p: &[u8]) -> String {
    let mut s = format!(
        "IN={} OUT={}",
        indev.map(|i| i.to_string()).unwrap_or_default(),
        outdev.map(|i| i.to_string()).unwrap_or_default()
    );
    let (src, dst, proto, l4) = match p.first().map(|b| b >> 4) {
        Some(4) if p.len() >= 20 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]).to_string();
            let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]).to_string();
            (src, dst, p[9], p.get(ihl..).unwrap_or(&[]))
        }
        Some(6) if p.len() >= 40 => {
            let a = |o: usize| -> [u8; 16] { p[o..o + 16].try_into().expect("16 bytes") };
            (Ipv6Addr::from(a(8)).to_string(), Ipv6Addr::from(a(24)).to_string(), p[6], &p[40..])
        }
        _ => return s,
    };
    let name = match proto {
        6 => "TCP".to_string(),
        17 => "UDP".to_string(),
        1 => "ICMP".to_string(),
        58 => "ICMPv6".to_string(),
        n => n.to_string(),
    };
    s.push_str(&format!(" SRC={src} DST={dst} PROTO={name}"));
    if matches!(proto, 6 | 17) && l4.len() >= 4 {
        s.push_str(&format!(" SPT={} DPT={}", u16::from_be_bytes([l4[0], l4[1]]), u16::from_be_bytes([l4[2], l4[3]])));
    }
    if matches!(proto, 1 | 58) && l4.len() >= 2 {
        s.push_str(&format!(" TYPE={} CODE={}", l4[0], l4[1]));
    }
    s
}

impl NflogListener {
    /// Binds NFLOG group `group` (copying up to 128 bytes of each packet).
    pub fn bind(group: u16) -> io::Result<NflogListener> {
        let fd = socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkNetFilter)?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        let kernel = NetlinkAddr::new(0, 0);
        let config = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
        let mut mode = 128u32.to_be_bytes().to_vec();
        mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
        for attrs in [vec![(NFULA_CFG_CMD, vec![NFULNL_CFG_CMD_BIND])], vec![(NFULA_CFG_MODE, mode)]] {
            let msg = nlmsg(config, NLM_F_REQUEST | NLM_F_ACK, group, &attrs);
            sendto(fd.as_raw_fd(), &msg, &kernel, MsgFlags::empty())?;
            let mut buf = [0u8; 512];
            let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            if n >= 20 && u16_at(&buf, 4) == NLMSG_ERROR {
                let code = u32_at(&buf, 16) as i32;
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
            }
        }
        Ok(NflogListener { fd })
    }

    /// Waits for the next batch of logged packets.
    pub fn recv(&self) -> io::Result<Vec<LogRecord>> {
        let mut buf = vec![0u8; 65536];
        let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        let buf = &buf[..n];
        let mut out = Vec::new();
        let mut off = 0;
        while off + 16 <= buf.len() {
            let len = u32_at(buf, off) as usize;
            if len < 16 || off + len > buf.len() {
                break;
            }
            let kind = u16_at(buf, off + 4);
            if kind == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET {
                let (mut prefix, mut payload, mut indev, mut outdev) = (String::new(), &[][..], None, None);
                let mut a = off + 20;
                while a + 4 <= off + len {
                    let alen = usize::from(u16_at(buf, a));
                    if alen < 4 || a + alen > off + len {
                        break;
                    }
                    let data = &buf[a + 4..a + alen];
                    match u16_at(buf, a + 2) & 0x3fff {
                        NFULA_PREFIX => prefix = String::from_utf8_lossy(data).trim_end_matches('\0').to_string(),
                        NFULA_PAYLOAD => payload = data,
                        NFULA_IFINDEX_INDEV if data.len() == 4 => {
                            indev = Some(u32::from_be_bytes(data.try_into().expect("4 bytes")))
                        }
                        NFULA_IFINDEX_OUTDEV if data.len() == 4 => {
                            outdev = Some(u32::from_be_bytes(data.try_into().expect("4 bytes")))
                        }
                        _ => {}
                    }
                    a += (alen + 3) & !3;
                }
                out.push(LogRecord {
                    prefix: prefix.trim_end().trim_end_matches(':').to_string(),
                    packet: summary(indev, outdev, payload),
                });
            }
            off += (len + 3) & !3;
        }
        Ok(out)
    }
}
