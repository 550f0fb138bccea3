//! hearth-net: the one place in Hearth that changes network links.
//!
//! Bridges, VLAN interfaces, bonds, VXLANs and veth pairs are created, queried, changed and
//! deleted through a [`Netlink`] handle that speaks NETLINK_ROUTE to the kernel directly, one
//! request and its acknowledgement at a time, in the caller's network namespace or in another
//! one ([`Netlink::in_netns`]). Guest NICs are wired with [`plug_port`], which does what
//! Proxmox's `PVE::Network::tap_plug` does for a tap or a container's veth (MTU, IPv6 off on the
//! port, bridge, VLANs, learning/isolation flags, rate limit, link state).
//!
//! **Why these crates.** Messages are built and parsed with `netlink-packet-route` (every
//! rtnetlink family this crate needs: links with their `IFLA_INFO_DATA` per kind, bridge port
//! data, `AF_BRIDGE` VLAN info, neighbours for the FDB, addresses, routes) and sent over the
//! plain blocking socket of `netlink-sys`. The `rtnetlink` crate on top of them is async and
//! needs tokio; the container runtime is single-threaded with no executor, and one blocking
//! request/ACK is all either start path needs. Compared with running `ip`/`bridge` once per
//! step, no process is started per change and errors come back as errno values that are
//! reported with the interface and the step (`vmbr1: set master br0: Device or resource busy`).
//!
//! **Not netlink:** `disable_ipv6`/`forwarding` are written under `/proc/sys/net` inside the
//! handle's namespace (the kernel has no netlink setter for them), and the `rate=` limit runs
//! `/usr/sbin/tc` (iproute2): `netlink-packet-route` has no HTB qdisc/class or police action
//! messages. Taps are not created here: QEMU creates its own (`-netdev tap,ifname=…`).

mod links;
mod plug;
mod socket;
mod types;

pub use links::{BondOptions, BridgeOptions, PeerNetns, PortFlags, PortVlan, VethPeer, VxlanOptions};
pub use plug::{PlugReport, PortPlug, plug_port, set_rate};
pub use socket::Netlink;
pub use types::{
    Address, BondInfo, BondMode, BridgeInfo, BridgePortInfo, IpCidr, Link, LinkKind, MacAddr, Route, VlanInfo,
    VlanProtocol, VlanRange, VxlanInfo, XmitHashPolicy, check_ifname, parse_trunks,
};

/// Everything that can go wrong changing or reading links. Errors from the kernel name the
/// interface and the step; bad input names what was wrong and what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The kernel refused a step (`vmbr1: set master br0: Device or resource busy`), with the
    /// kernel's own words when it gave some (`… (Can not enslave a bridge to a bridge)`).
    #[error("{ifname}: {step}: {}{}", errno_text(*errno), detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Kernel { ifname: String, step: String, errno: i32, detail: Option<String> },
    /// No interface of that name in the handle's namespace.
    #[error("interface {0} does not exist")]
    NotFound(String),
    /// A bridge was expected.
    #[error("{0} is not a bridge")]
    NotABridge(String),
    /// Bad input: what it is and the value.
    #[error("invalid {what} '{value}'")]
    Invalid { what: &'static str, value: String },
    /// A port MTU above its bridge's (Proxmox refuses these too).
    #[error("{ifname}: MTU {mtu} is larger than the MTU {bridge_mtu} of bridge {bridge}")]
    MtuAboveBridge { ifname: String, mtu: u32, bridge: String, bridge_mtu: u32 },
    /// A VLAN tag or trunks on a bridge without VLAN filtering.
    #[error("{ifname}: VLAN tag or trunks need VLAN filtering on bridge {bridge} (bridge-vlan-aware yes)")]
    NoVlanFiltering { ifname: String, bridge: String },
    /// The socket, a namespace or a file under /proc/sys.
    #[error("{step}: {source}")]
    Io { step: String, source: std::io::Error },
    /// The kernel's answer could not be parsed.
    #[error("netlink: cannot decode the kernel's answer: {0}")]
    Decode(String),
    /// A helper program (`tc`) failed.
    #[error("{ifname}: {step}: {message}")]
    Tool { ifname: String, step: String, message: String },
}

impl NetError {
    pub(crate) fn io(step: impl Into<String>, source: std::io::Error) -> NetError {
        NetError::Io { step: step.into(), source }
    }

    pub(crate) fn decode(text: String) -> NetError {
        NetError::Decode(text)
    }

    pub(crate) fn kernel(ifname: &str, step: impl Into<String>, errno: i32) -> NetError {
        NetError::Kernel { ifname: ifname.to_owned(), step: step.into(), errno, detail: None }
    }

    /// The errno behind a kernel or I/O error.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetError::Kernel { errno, .. } => Some(*errno),
            NetError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

fn errno_text(errno: i32) -> &'static str {
    nix::errno::Errno::from_raw(errno).desc()
}
