//! What a container run needs, as plain data: hearthd builds it from the configuration and the
//! storage layer, hearth-ctmon reads it as JSON on its stdin.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything hearth-ctmon needs to start (and restart, on reboot) one container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub ctid: u32,
    /// The host name inside the container.
    pub hostname: String,
    /// `run/hearth/lxc/<ctid>` under the node root: pid files, console socket, the rootfs
    /// mount point (mounted in the monitor's private mount namespace only).
    pub run_dir: PathBuf,
    /// The log of this container's runs: `var/log/hearth/lxc/<ctid>.log`.
    pub log: PathBuf,
    pub rootfs: RootFs,
    /// `mpN` volumes, mounted in order after the rootfs.
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// `None` runs the container privileged (container root is host root).
    pub idmap: Option<IdMap>,
    /// The cgroup directory name under each hierarchy: `hearth/<ctid>` (hearthd makes it
    /// unique per node root so test nodes do not meet).
    pub cgroup: String,
    pub limits: Limits,
    #[serde(default)]
    pub nets: Vec<NetSpec>,
    #[serde(default)]
    pub features: Features,
    /// Number of `/dev/ttyN` ptys (pct's `tty`, default 2).
    pub ttys: u32,
    /// Whether `/dev/console` is a pty the monitor holds (pct's `console`, default on).
    pub console: bool,
    /// The program run as PID 1, inside the rootfs (pct's `entrypoint`); a name without `/`
    /// is looked up in the standard PATH.
    pub init: String,
    /// `devN` device nodes passed through.
    #[serde(default)]
    pub devices: Vec<DeviceSpec>,
    /// Arguments after the program (`entrypoint: /sbin/init splash`).
    #[serde(default)]
    pub init_args: Vec<String>,
    /// Extra environment for init (`container=lxc`, `TERM=linux` and `container_ttys` are
    /// always set).
    #[serde(default)]
    pub env: Vec<String>,
}

/// Where the root file system comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootFs {
    /// A directory or subvolume on the host, bind-mounted.
    Dir { path: PathBuf },
    /// A raw image with a file system, attached to a loop device and mounted.
    Image {
        path: PathBuf,
        /// `ext4` unless said otherwise.
        fstype: String,
    },
}

/// One `devN`: a host device node passed through, at the same path under the container's
/// /dev, as a node the monitor makes with the configured owner and mode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSpec {
    /// The path below /dev, e.g. `ttyUSB0` or `dri/renderD128`.
    pub name: String,
    pub block: bool,
    pub major: u32,
    pub minor: u32,
    /// Permission bits of the node (pct's `mode`, else the host node's).
    pub mode: u32,
    /// Owner and group inside the container (pct's `uid`/`gid`, default 0).
    pub uid: u32,
    pub gid: u32,
    /// Read-only (`deny-write=1`): the device rules allow no writes.
    pub readonly: bool,
}

/// One `mpN` volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    pub source: RootFs,
    /// Absolute path inside the container, resolved in its root.
    pub target: String,
    #[serde(default)]
    pub readonly: bool,
}

/// `lxc.idmap`: ranges of container ids mapped to host ids, for users and for groups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub uid: Vec<IdMapEntry>,
    pub gid: Vec<IdMapEntry>,
}

/// One range: container ids `inside..inside+count` are host ids `outside..outside+count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapEntry {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

impl IdMap {
    /// Proxmox's default for unprivileged containers: 0..65536 → 100000..165536.
    pub fn unprivileged_default() -> IdMap {
        let range = vec![IdMapEntry { inside: 0, outside: 100_000, count: 65_536 }];
        IdMap { uid: range.clone(), gid: range }
    }

    /// The host uid of container root, if mapped.
    pub fn root_uid(&self) -> Option<u32> {
        Self::host_id(&self.uid, 0)
    }

    /// The host gid of container root's group, if mapped.
    pub fn root_gid(&self) -> Option<u32> {
        Self::host_id(&self.gid, 0)
    }

    /// Host id for a container id in `ranges`.
    pub fn host_id(ranges: &[IdMapEntry], inside: u32) -> Option<u32> {
        ranges.iter().find_map(|r| {
            let offset = inside.checked_sub(r.inside)?;
            (offset < r.count).then(|| r.outside + offset)
        })
    }

    /// The text for `/proc/<pid>/uid_map` (`users`) or `gid_map`.
    pub fn map_text(ranges: &[IdMapEntry]) -> String {
        ranges.iter().map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count)).collect()
    }

    /// Parses `lxc.idmap` lines: `u 0 100000 65536` / `g 0 100000 65536`.
    pub fn parse_lxc(lines: &[&str]) -> Result<IdMap, String> {
        let mut map = IdMap { uid: Vec::new(), gid: Vec::new() };
        for line in lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [kind, inside, outside, count] = fields[..] else {
                return Err(format!("'{line}': expected 'u|g <container id> <host id> <count>'"));
            };
            let number = |s: &str| s.parse::<u32>().map_err(|_| format!("'{line}': '{s}' is not an id"));
            let entry = IdMapEntry { inside: number(inside)?, outside: number(outside)?, count: number(count)? };
            if entry.count == 0 || entry.inside.checked_add(entry.count).is_none() {
                return Err(format!("'{line}': the range is empty or overflows"));
            }
            match kind {
                "u" => map.uid.push(entry),
                "g" => map.gid.push(entry),
                _ => return Err(format!("'{line}': the kind must be u or g")),
            }
        }
        for (what, ranges) in [("uid", &map.uid), ("gid", &map.gid)] {
            if ranges.is_empty() {
                return Err(format!("no {what} range"));
            }
            for (i, a) in ranges.iter().enumerate() {
                for b in &ranges[i + 1..] {
                    let overlap = |x: u32, y: u32, n: u32, m: u32| x < y + m && y < x + n;
                    if overlap(a.inside, b.inside, a.count, b.count) || overlap(a.outside, b.outside, a.count, b.count)
                    {
                        return Err(format!("{what} ranges overlap"));
                    }
                }
            }
        }
        Ok(map)
    }
}

/// Resource limits (pct's memory, swap, cores, cpulimit, cpuunits) and a pids cap.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory in bytes.
    pub memory: Option<u64>,
    /// Swap in bytes (memory + swap is the v1 memsw limit).
    pub swap: Option<u64>,
    /// CPU time limit in CPUs (cpulimit; 0 or `None` = unlimited).
    pub cpulimit: Option<f64>,
    /// Relative CPU weight (cpuunits, default 100 in Proxmox's v2 scale, 1024 on v1).
    pub cpuunits: Option<u64>,
    /// Number of CPUs the container may run on (cores): the first `cores` CPUs the host allows.
    pub cores: Option<u32>,
    /// Maximum number of tasks.
    pub pids: Option<u64>,
}

/// One `netN` interface: a veth pair, the host end in a bridge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetSpec {
    /// N of `netN`.
    pub index: u32,
    /// The name inside the container: `eth0`.
    pub name: String,
    /// The host end: `veth<ctid>i<N>`.
    pub host_name: String,
    pub bridge: Option<String>,
    pub hwaddr: Option<String>,
    pub mtu: Option<u32>,
    /// Access VLAN through bridge VLAN filtering.
    pub tag: Option<u16>,
    /// Trunk VLANs (`10;20-30` as a list of ranges).
    #[serde(default)]
    pub trunks: Vec<(u16, u16)>,
    /// Addresses configured from the host over netlink before init starts (guests whose
    /// own network configuration Hearth does not write): CIDR, gateway.
    #[serde(default)]
    pub host_ipv4: Option<(String, Option<String>)>,
    #[serde(default)]
    pub host_ipv6: Option<(String, Option<String>)>,
    #[serde(default)]
    pub link_down: bool,
    /// `rate=` in MB/s on the host end.
    #[serde(default)]
    pub rate: Option<f64>,
}

/// pct's `features`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    pub nesting: bool,
    pub keyctl: bool,
    pub fuse: bool,
    pub mknod: bool,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lxc_idmap_lines() {
        let map =
            IdMap::parse_lxc(&["u 0 100000 1000", "u 1000 1000 1", "u 1001 101001 64535", "g 0 100000 65536"]).unwrap();
        assert_eq!(map.root_uid(), Some(100_000));
        assert_eq!(IdMap::host_id(&map.uid, 1000), Some(1000));
        assert_eq!(IdMap::host_id(&map.uid, 1001), Some(101_001));
        assert_eq!(IdMap::host_id(&map.uid, 65_536), None);
        assert_eq!(IdMap::map_text(&map.gid), "0 100000 65536\n");
        for (bad, why) in [
            (&["u 0 100000 65536"][..], "no gid range"),
            (&["u 0 100000 10", "u 5 200000 10", "g 0 1 1"], "overlap"),
            (&["x 0 1 1"], "u or g"),
            (&["u 0 1"], "expected"),
            (&["u 0 1 0", "g 0 1 1"], "empty"),
        ] {
            let err = IdMap::parse_lxc(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
