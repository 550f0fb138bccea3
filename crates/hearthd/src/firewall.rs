//! The firewall: `etc/hearth/firewall/{cluster,host,<vmid>}.toml`, compiled with the guests'
//! NICs into one nftables ruleset and applied in one transaction.
//!
//! Every change is validated, compiled and applied before it is saved, so a change that the
//! compiler or nft refuses changes nothing. The ruleset is recompiled at once when a rule,
//! option, set, alias or group changes and when a guest's configuration changes
//! ([`guests_changed`]); a watcher thread also re-applies it when the kernel's copy differs from
//! what Hearth applied (someone ran `nft flush ruleset`) and rolls back an unconfirmed
//! `apply --confirm-timeout`.
//!
//! **Nothing is applied until the firewall is configured:** a node without
//! `etc/hearth/firewall/cluster.toml` never runs nft, so a test daemon never touches the host.
//! Rules go into the network namespace hearthd runs in (tests start it inside a private one).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use hearth_core::GuestKind;
use hearth_core::firewall::{self as model, FirewallConfig, Level, Rule, Verdict, fwfile};
use hearth_fw::{Endpoint, FirewallInput, GuestFirewall, GuestNic, Nft, Packet, Ruleset};
use hearth_proto::{ErrorKind, ErrorReply, FirewallRequest, FirewallScope, Payload};

use crate::Daemon;

/// How often the watcher compares the kernel's ruleset with Hearth's.
const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Management ports a host or cluster change must not cut off without `--force`.
const MANAGEMENT: &[(u16, &str)] = &[(22, "SSH"), (8006, "API")];

/// A trial started by `apply --confirm-timeout`: the configuration to go back to.
#[derive(Debug)]
struct Trial {
    deadline: Instant,
    saved: BTreeMap<PathBuf, Option<Vec<u8>>>,
}

#[derive(Debug, Default)]
struct State {
    /// The kernel's Hearth tables as `nft list` printed them right after the last apply.
    applied: Option<String>,
    /// The ruleset last applied, from which the next change is a delta where it can be.
    last: Option<Ruleset>,
    last_error: Option<String>,
    trial: Option<Trial>,
    watcher: bool,
}

/// The firewall's state in a running hearthd.
#[derive(Debug, Default)]
pub struct Firewall {
    state: Mutex<State>,
    nft: Nft,
}

fn err(kind: ErrorKind, m: impl Into<String>) -> ErrorReply {
    ErrorReply::new(kind, m)
}

fn invalid(e: impl std::fmt::Display) -> ErrorReply {
    err(ErrorKind::Invalid, e.to_string())
}

fn dir(root: &Path) -> PathBuf {
    root.join("etc/hearth/firewall")
}

fn file(root: &Path, scope: FirewallScope) -> PathBuf {
    dir(root).join(match scope {
        FirewallScope::Cluster => "cluster.toml".to_string(),
        FirewallScope::Host => "host.toml".to_string(),
        FirewallScope::Guest(v) => format!("{}.toml", v.get()),
    })
}

fn level(scope: FirewallScope) -> Level {
    match scope {
        FirewallScope::Cluster => Level::Cluster,
        FirewallScope::Host => Level::Host,
        FirewallScope::Guest(_) => Level::Guest,
    }
}

fn load(path: &Path) -> Result<FirewallConfig, ErrorReply> {
    match std::fs::read_to_string(path) {
        Ok(t) => {
            FirewallConfig::from_toml(&t).map_err(|e| err(ErrorKind::Internal, format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FirewallConfig::default()),
        Err(e) => Err(err(ErrorKind::Internal, format!("reading {}: {e}", path.display()))),
    }
}

/// All firewall files: cluster, host and every guest's.
#[derive(Clone, Debug, Default)]
struct Files {
    cluster: FirewallConfig,
    host: FirewallConfig,
    guests: BTreeMap<u32, FirewallConfig>,
}

impl Files {
    fn load(root: &Path) -> Result<Files, ErrorReply> {
        let mut f = Files {
            cluster: load(&file(root, FirewallScope::Cluster))?,
            host: load(&file(root, FirewallScope::Host))?,
            guests: BTreeMap::new(),
        };
        if let Ok(entries) = std::fs::read_dir(dir(root)) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(id) = name.strip_suffix(".toml").and_then(|n| n.parse::<u32>().ok()) {
                    f.guests.insert(id, load(&e.path())?);
                }
            }
        }
        Ok(f)
    }

    fn get_mut(&mut self, scope: FirewallScope) -> &mut FirewallConfig {
        match scope {
            FirewallScope::Cluster => &mut self.cluster,
            FirewallScope::Host => &mut self.host,
            FirewallScope::Guest(v) => self.guests.entry(v.get()).or_default(),
        }
    }

    fn get(&self, scope: FirewallScope) -> FirewallConfig {
        match scope {
            FirewallScope::Cluster => self.cluster.clone(),
            FirewallScope::Host => self.host.clone(),
            FirewallScope::Guest(v) => self.guests.get(&v.get()).cloned().unwrap_or_default(),
        }
    }
}

/// One NIC of a guest configuration: `netN` with `firewall=1`, its MAC and, for containers,
/// its configured addresses.
fn nics(kind: GuestKind, vmid: u32, section: &hearth_core::guest::Section) -> Vec<GuestNic> {
    let mut out = Vec::new();
    for (key, value) in section {
        let Some(index) = key.strip_prefix("net").and_then(|n| n.parse::<u32>().ok()) else { continue };
        let text = value.to_string();
        let mut mac = None;
        let mut firewall = false;
        let mut ips = Vec::new();
        for (i, part) in text.split(',').enumerate() {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            match k {
                "firewall" => firewall = v == "1",
                "hwaddr" | "macaddr" => mac = Some(v.to_ascii_lowercase()),
                "ip" | "ip6" => {
                    if let Some(n) = model::IpNet::parse(v) {
                        ips.push(model::IpNet { addr: n.addr, prefix: if n.addr.is_ipv4() { 32 } else { 128 } });
                    }
                }
                // A VM NIC starts with `model=MAC`.
                _ if i == 0 && kind == GuestKind::Vm && v.contains(':') => mac = Some(v.to_ascii_lowercase()),
                _ => {}
            }
        }
        let port = match kind {
            GuestKind::Vm => format!("tap{vmid}i{index}"),
            GuestKind::Ct => format!("veth{vmid}i{index}"),
        };
        out.push(GuestNic { index, port, mac, ips, firewall });
    }
    out
}

fn input(daemon: &Daemon, files: &Files) -> Result<FirewallInput, ErrorReply> {
    let mut guests: BTreeMap<u32, GuestFirewall> = BTreeMap::new();
    for kind in [GuestKind::Vm, GuestKind::Ct] {
        let listed = daemon.store.list(kind).map_err(|e| err(ErrorKind::Internal, e.to_string()))?;
        for l in listed {
            let Ok(cfg) = l.config.as_ref() else { continue };
            let vmid = l.vmid.get();
            guests.insert(
                vmid,
                GuestFirewall {
                    vmid,
                    config: files.guests.get(&vmid).cloned().unwrap_or_default(),
                    nics: nics(kind, vmid, &cfg.current),
                },
            );
        }
    }
    // Firewall files of guests that do not exist (yet) still validate and define sets.
    for (vmid, cfg) in &files.guests {
        guests.entry(*vmid).or_insert_with(|| GuestFirewall { vmid: *vmid, config: cfg.clone(), nics: Vec::new() });
    }
    Ok(FirewallInput {
        cluster: files.cluster.clone(),
        host: files.host.clone(),
        guests: guests.into_values().collect(),
    })
}

fn compile(daemon: &Daemon, files: &Files) -> Result<Ruleset, ErrorReply> {
    hearth_fw::compile(&input(daemon, files)?).map_err(invalid)
}

/// One address of a `/proc/net/tcp{,6}` line: hex words in the kernel's byte order, then the
/// port.
fn proc_net_addr(field: &str) -> Option<(IpAddr, u16)> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for i in (0..ip.len()).step_by(8) {
        bytes.extend(u32::from_str_radix(ip.get(i..i + 8)?, 16).ok()?.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => {
            let v6 = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some((ip, port))
}

/// The node's open management connections (established TCP to a local port 22 or 8006) in
/// hearthd's network namespace: (local address, local port, remote address, remote port).
fn management_sessions() -> Vec<(IpAddr, u16, IpAddr, u16)> {
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // State 01 is TCP_ESTABLISHED.
            if f.len() < 4 || f[3] != "01" {
                continue;
            }
            if let (Some((lip, lport)), Some((rip, rport))) = (proc_net_addr(f[1]), proc_net_addr(f[2]))
                && MANAGEMENT.iter().any(|(p, _)| *p == lport)
                && !rip.is_loopback()
            {
                out.push((lip, lport, rip, rport));
            }
        }
    }
    out
}

/// Refuses a ruleset under which the management ports would not answer: checked from every
/// address of the `management` IP set (or an arbitrary outside address without one), and for
/// each open SSH or API connection to the node, from its address to its port (a request over
/// the Unix socket has no peer address of its own).
fn lockout_check(rs: &Ruleset, files: &Files) -> Result<(), ErrorReply> {
    if !rs.host_enabled {
        return Ok(());
    }
    let mut sources: Vec<IpAddr> = files
        .cluster
        .ipsets
        .get("management")
        .map(|s| {
            s.entries
                .iter()
                .filter(|e| !e.nomatch)
                .filter_map(|e| model::IpNet::parse(&e.cidr))
                .map(|n| n.network())
                .collect()
        })
        .unwrap_or_default();
    if sources.is_empty() {
        sources.push(IpAddr::from([203, 0, 113, 1]));
    }
    // A new TCP connection from `source:sport` to `dest:dport` must still be accepted;
    // `connection` says which one in the refusal.
    let must_pass = |source: IpAddr, dest: IpAddr, sport: u16, dport: u16, connection: String| {
        let packet = Packet {
            from: Endpoint::Outside,
            to: Endpoint::Host,
            source,
            dest,
            proto: 6,
            sport: Some(sport),
            dport: Some(dport),
            icmp: None,
            iface: None,
        };
        let d = hearth_fw::simulate(rs, &packet);
        if d.verdict == Verdict::Accept {
            return Ok(());
        }
        Err(err(
            ErrorKind::Conflict,
            format!(
                "this change would lock out management: {connection} would be {} by {}; add an ACCEPT rule or the address to ipset management, or repeat with --force",
                d.verdict.as_str(),
                d.decided_by
            ),
        ))
    };
    for src in sources {
        for (port, what) in MANAGEMENT {
            let dest = if src.is_ipv4() {
                IpAddr::from([192, 0, 2, 1])
            } else {
                "2001:db8::1".parse().expect("a valid address")
            };
            must_pass(src, dest, 50000, *port, format!("tcp/{port} ({what}) from {src}"))?;
        }
    }
    for (local, lport, remote, rport) in management_sessions() {
        let what = MANAGEMENT.iter().find(|(p, _)| *p == lport).map_or("management", |(_, w)| *w);
        must_pass(
            remote,
            local,
            rport,
            lport,
            format!("the open {what} session from {remote} to tcp/{lport} could not connect again, it"),
        )?;
    }
    Ok(())
}

/// Host options that are conntrack sysctls of the node's network namespace.
const CONNTRACK_SYSCTLS: &[&str] =
    &["nf_conntrack_max", "nf_conntrack_tcp_timeout_established", "nf_conntrack_tcp_timeout_syn_recv"];

fn sysctl_path(key: &str) -> PathBuf {
    Path::new("/proc/sys/net/netfilter").join(key)
}

/// The conntrack sysctls the host options set explicitly (an unset option leaves the kernel's
/// value alone), with their values.
fn conntrack_settings(host: &FirewallConfig) -> Vec<(&'static str, String)> {
    CONNTRACK_SYSCTLS.iter().filter_map(|k| host.options.get(*k).map(|v| (*k, v.trim().to_string()))).collect()
}

/// Refuses settings the kernel will not take in hearthd's network namespace: it lets only the
/// initial namespace set `nf_conntrack_max` (the table size is global), so there a value other
/// than the current one cannot be applied.
fn check_sysctls(settings: &[(&'static str, String)]) -> Result<(), ErrorReply> {
    for (key, value) in settings {
        let path = sysctl_path(key);
        let Ok(current) = std::fs::read_to_string(&path) else {
            // Not there until nf_conntrack is loaded, which applying the ruleset does.
            continue;
        };
        if current.trim() == value {
            continue;
        }
        if let Err(e) = std::fs::OpenOptions::new().write(true).open(&path) {
            return Err(err(
                ErrorKind::Invalid,
                format!(
                    "{key}: the kernel does not let hearthd's network namespace set net.netfilter.{key} ({e}; only the initial namespace may); it stays {}: unset the option or set it to that value",
                    current.trim()
                ),
            ));
        }
    }
    Ok(())
}

/// Writes the settings; the error names the first one the kernel refused.
fn write_sysctls(settings: &[(&'static str, String)]) -> Result<(), ErrorReply> {
    for (key, value) in settings {
        let path = sysctl_path(key);
        if std::fs::read_to_string(&path).is_ok_and(|c| c.trim() == value) {
            continue;
        }
        std::fs::write(&path, format!("{value}\n"))
            .map_err(|e| err(ErrorKind::Invalid, format!("{key}: cannot set net.netfilter.{key} to {value}: {e}")))?;
    }
    Ok(())
}

impl Firewall {
    fn configured(root: &Path) -> bool {
        file(root, FirewallScope::Cluster).exists()
    }

    /// Applies a ruleset: only the chains and sets that changed since the last apply when that
    /// is all that changed, else the whole ruleset (`full` forces that: a repair).
    fn apply(&self, rs: &Ruleset, full: bool) -> Result<(), ErrorReply> {
        let mut st = self.state.lock().expect("the firewall state lock is never poisoned");
        let delta = if full { None } else { st.last.as_ref().and_then(|old| rs.delta_nft(old)) };
        let result = match delta {
            Some(d) if d.is_empty() => return Ok(()),
            // A delta meets the kernel's tables as Hearth left them; if someone changed them
            // meanwhile it may not apply, and the whole ruleset is loaded instead.
            Some(d) => self.nft.apply(&d).or_else(|_| self.nft.apply(&rs.to_nft())),
            None => self.nft.apply(&rs.to_nft()),
        };
        match result {
            Ok(()) => {
                st.applied = self.nft.list_own().ok();
                st.last = Some(rs.clone());
                st.last_error = None;
                Ok(())
            }
            Err(e) => {
                st.last_error = Some(e.to_string());
                Err(err(ErrorKind::Invalid, e.to_string()))
            }
        }
    }
}

fn fw(daemon: &Daemon) -> &Firewall {
    &daemon.firewall
}

/// Recompiles and applies from the files on disk (a guest changed, the watcher repairs).
pub fn refresh(daemon: &Daemon) -> Result<(), ErrorReply> {
    reload(daemon, false)
}

fn reload(daemon: &Daemon, full: bool) -> Result<(), ErrorReply> {
    if !Firewall::configured(&daemon.root) {
        return Ok(());
    }
    let files = Files::load(&daemon.root)?;
    let rs = compile(daemon, &files)?;
    fw(daemon).apply(&rs, full)?;
    write_sysctls(&conntrack_settings(&files.host))
}

/// At start: a configured firewall is applied again and watched.
pub fn startup(daemon: &Arc<Daemon>) {
    if !Firewall::configured(&daemon.root) {
        return;
    }
    if let Err(e) = refresh(daemon) {
        tracing::error!("firewall not applied at start: {}", e.message);
    }
    ensure_watcher(daemon);
}

/// A guest's configuration changed (created, NIC edited, destroyed) or it started or stopped:
/// the ruleset follows at once. Failures are logged; the previous ruleset stays.
pub fn guests_changed(daemon: &Daemon) {
    if let Err(e) = refresh(daemon) {
        tracing::warn!("firewall not updated after a guest change: {}", e.message);
    }
}

fn ensure_watcher(daemon: &Arc<Daemon>) {
    let mut st = fw(daemon).state.lock().expect("the firewall state lock is never poisoned");
    if st.watcher {
        return;
    }
    st.watcher = true;
    start_logger(daemon);
    let weak: Weak<Daemon> = Arc::downgrade(daemon);
    std::thread::Builder::new()
        .name("firewall-watch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(CHECK_INTERVAL / 4);
                let Some(d) = weak.upgrade() else { return };
                watch_once(&d);
            }
        })
        .expect("spawning the firewall watcher");
}

fn log_file(root: &Path) -> PathBuf {
    root.join("var/log/hearth/firewall.log")
}

/// Writes what the rules' `log` statements send (NFLOG) to `var/log/hearth/firewall.log`, one
/// line per packet: `VMID LOGID CHAIN TIMESTAMP POLICY: PACKET`, as pvefw-logger.
fn start_logger(daemon: &Arc<Daemon>) {
    let listener = match hearth_fw::NflogListener::bind(0) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("firewall log not available (nfnetlink_log): {e}");
            return;
        }
    };
    let path = log_file(&daemon.root);
    std::thread::Builder::new()
        .name("firewall-log".into())
        .spawn(move || {
            use std::io::Write;
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            loop {
                let Ok(records) = listener.recv() else { return };
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
                let stamp = hearth_core::time::rfc3339(now);
                let mut text = String::new();
                for r in records {
                    let mut f = r.prefix.splitn(4, ' ');
                    let (vmid, id, chain, policy) = (
                        f.next().unwrap_or("0"),
                        f.next().unwrap_or("-"),
                        f.next().unwrap_or("-"),
                        f.next().unwrap_or("-"),
                    );
                    text.push_str(&format!("{vmid} {id} {chain} {stamp} {policy}: {}\n", r.packet));
                }
                if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(&path) {
                    let _ = file.write_all(text.as_bytes());
                }
            }
        })
        .expect("spawning the firewall logger");
}

fn read_log(root: &Path, since: Option<u64>) -> Result<Payload, ErrorReply> {
    let text = match std::fs::read_to_string(log_file(root)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(err(ErrorKind::Internal, format!("reading the firewall log: {e}"))),
    };
    let keep = |line: &&str| match since {
        None => true,
        Some(s) => line
            .split(' ')
            .nth(3)
            .and_then(hearth_core::time::parse_rfc3339)
            .is_some_and(|t| t >= i64::try_from(s).unwrap_or(i64::MAX)),
    };
    Ok(Payload::Text(text.lines().filter(keep).map(|l| format!("{l}\n")).collect()))
}

fn watch_once(daemon: &Daemon) {
    let f = fw(daemon);
    let expired = {
        let mut st = f.state.lock().expect("the firewall state lock is never poisoned");
        match &st.trial {
            Some(t) if Instant::now() >= t.deadline => st.trial.take(),
            _ => None,
        }
    };
    if let Some(trial) = expired {
        tracing::warn!("firewall apply not confirmed in time: rolling back");
        for (path, content) in trial.saved {
            let _ = match content {
                Some(bytes) => crate::store::write_atomic(&path, &bytes).map_err(|e| e.to_string()),
                None => std::fs::remove_file(&path).map_err(|e| e.to_string()),
            };
        }
        if let Err(e) = refresh(daemon) {
            tracing::error!("firewall rollback failed: {}", e.message);
        }
        return;
    }
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    {
        let mut last = LAST.lock().expect("never poisoned");
        if last.is_some_and(|t| t.elapsed() < CHECK_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
    }
    let st = f.state.lock().expect("the firewall state lock is never poisoned");
    let Some(expected) = st.applied.clone() else { return };
    drop(st);
    match f.nft.list_own() {
        Ok(now) if now == expected => {}
        Ok(_) => {
            tracing::warn!("the kernel's firewall ruleset was changed behind Hearth's back: re-applying");
            if let Err(e) = reload(daemon, true) {
                tracing::error!("firewall repair failed: {}", e.message);
            }
        }
        Err(e) => tracing::warn!("cannot read the kernel's firewall ruleset: {e}"),
    }
}

/// Validates, compiles, checks for lock-out, applies, then saves one scope's change.
fn change(
    daemon: &Arc<Daemon>,
    scope: FirewallScope,
    force: bool,
    edit: impl FnOnce(&mut FirewallConfig) -> Result<(), ErrorReply>,
) -> Result<Payload, ErrorReply> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().expect("never poisoned");
    if let FirewallScope::Guest(v) = scope
        && daemon.store.locate(v).is_none()
    {
        return Err(err(ErrorKind::NotFound, format!("guest {v} does not exist")));
    }
    let mut files = Files::load(&daemon.root)?;
    edit(files.get_mut(scope))?;
    let dc = files.cluster.clone();
    let cfg = files.get(scope);
    cfg.validate(level(scope), if scope == FirewallScope::Cluster { None } else { Some(&dc) }).map_err(invalid)?;
    let rs = compile(daemon, &files)?;
    if !force && !matches!(scope, FirewallScope::Guest(_)) {
        lockout_check(&rs, &files)?;
    }
    let sysctls = conntrack_settings(&files.host);
    check_sysctls(&sysctls)?;
    fw(daemon).apply(&rs, false)?;
    write_sysctls(&sysctls)?;
    std::fs::create_dir_all(dir(&daemon.root)).map_err(|e| err(ErrorKind::Internal, e.to_string()))?;
    // The cluster file marks the firewall as configured.
    let cluster_path = file(&daemon.root, FirewallScope::Cluster);
    if !cluster_path.exists() {
        crate::store::write_atomic(&cluster_path, files.cluster.to_toml().as_bytes())
            .map_err(|e| err(ErrorKind::Internal, e.to_string()))?;
    }
    crate::store::write_atomic(&file(&daemon.root, scope), cfg.to_toml().as_bytes())
        .map_err(|e| err(ErrorKind::Internal, e.to_string()))?;
    ensure_watcher(daemon);
    Ok(Payload::Empty)
}

fn rules_of<'a>(cfg: &'a mut FirewallConfig, group: &Option<String>) -> Result<&'a mut Vec<Rule>, ErrorReply> {
    match group {
        None => Ok(&mut cfg.rules),
        Some(g) => cfg
            .groups
            .get_mut(&g.to_ascii_lowercase())
            .map(|g| &mut g.rules)
            .ok_or_else(|| err(ErrorKind::NotFound, format!("security group '{g}' does not exist"))),
    }
}

fn group_scope(scope: FirewallScope, group: &Option<String>) -> Result<(), ErrorReply> {
    if group.is_some() && scope != FirewallScope::Cluster {
        return Err(invalid("group: security groups belong to the cluster configuration"));
    }
    Ok(())
}

fn pos_err(pos: usize, len: usize) -> ErrorReply {
    invalid(format!("pos: no rule at position {pos} (there are {len} rules, positions 0 to {})", len.saturating_sub(1)))
}

fn list_rules(rules: &[Rule]) -> String {
    rules.iter().enumerate().map(|(i, r)| format!("{i}: {}\n", r.to_line())).collect()
}

fn references(files: &Files, what: &str) -> bool {
    let all = std::iter::once(&files.cluster).chain(std::iter::once(&files.host)).chain(files.guests.values());
    for cfg in all {
        let rules = cfg.rules.iter().chain(cfg.groups.values().flat_map(|g| g.rules.iter()));
        for r in rules {
            let line = format!(" {} ", r.to_line());
            if line.contains(&format!(" {what} "))
                || line.contains(&format!(" +{what} "))
                || line.contains(&format!("/{what} "))
            {
                return true;
            }
        }
    }
    false
}

/// Answers one firewall request.
pub fn handle(daemon: &Arc<Daemon>, request: FirewallRequest) -> Result<Payload, ErrorReply> {
    use FirewallRequest as R;
    match request {
        R::RulesList { scope, group } => {
            group_scope(scope, &group)?;
            let mut cfg = Files::load(&daemon.root)?.get(scope);
            Ok(Payload::Text(list_rules(rules_of(&mut cfg, &group)?)))
        }
        R::RuleAdd { scope, group, rule, pos, force } => {
            group_scope(scope, &group)?;
            let rule = Rule::parse_line(&rule).map_err(invalid)?;
            change(daemon, scope, force, |cfg| {
                let rules = rules_of(cfg, &group)?;
                let at = pos.unwrap_or(0);
                if at > rules.len() {
                    return Err(pos_err(at, rules.len()));
                }
                rules.insert(at, rule);
                Ok(())
            })
        }
        R::RuleSet { scope, group, pos, rule, moveto, force } => {
            group_scope(scope, &group)?;
            let rule = rule.map(|r| Rule::parse_line(&r)).transpose().map_err(invalid)?;
            change(daemon, scope, force, |cfg| {
                let rules = rules_of(cfg, &group)?;
                if pos >= rules.len() {
                    return Err(pos_err(pos, rules.len()));
                }
                if let Some(r) = rule {
                    rules[pos] = r;
                }
                if let Some(to) = moveto {
                    if to >= rules.len() {
                        return Err(invalid(format!(
                            "moveto: position {to} is past the end (there are {} rules)",
                            rules.len()
                        )));
                    }
                    let r = rules.remove(pos);
                    rules.insert(to, r);
                }
                Ok(())
            })
        }
        R::RuleDelete { scope, group, pos, force } => {
            group_scope(scope, &group)?;
            change(daemon, scope, force, |cfg| {
                let rules = rules_of(cfg, &group)?;
                if pos >= rules.len() {
                    return Err(pos_err(pos, rules.len()));
                }
                rules.remove(pos);
                Ok(())
            })
        }
        R::OptionsGet { scope, defaults } => {
            let cfg = Files::load(&daemon.root)?.get(scope);
            let lvl = level(scope);
            let mut out = String::new();
            for key in model::option_keys(lvl) {
                let v = cfg.options.get(key).map(String::as_str).or(if defaults {
                    model::option_default(lvl, key)
                } else {
                    None
                });
                if let Some(v) = v {
                    out.push_str(&format!("{key}: {v}\n"));
                }
            }
            Ok(Payload::Text(out))
        }
        R::OptionsSet { scope, options, delete, force } => {
            let lvl = level(scope);
            let mut checked = Vec::new();
            for (k, v) in options {
                checked.push((k.clone(), model::check_option(lvl, &k, &v).map_err(invalid)?));
            }
            for k in &delete {
                if !model::option_keys(lvl).contains(&k.as_str()) {
                    return Err(invalid(format!("{k}: unknown {} option", lvl.as_str())));
                }
            }
            change(daemon, scope, force, |cfg| {
                for (k, v) in checked {
                    cfg.options.insert(k, v);
                }
                for k in delete {
                    cfg.options.remove(&k);
                }
                Ok(())
            })
        }
        R::IpSetList { scope } => {
            let cfg = Files::load(&daemon.root)?.get(scope);
            let only = FirewallConfig { ipsets: cfg.ipsets, ..FirewallConfig::default() };
            Ok(Payload::Text(fwfile::write(&only)))
        }
        R::IpSetCreate { scope, name, comment } => {
            let name = name.to_ascii_lowercase();
            if !model::addr::valid_object_name(&name) {
                return Err(invalid(format!(
                    "name: invalid ipset name '{name}' (a letter, then letters, digits, '-' or '_'; 2 to 64 characters)"
                )));
            }
            change(daemon, scope, false, |cfg| {
                if cfg.ipsets.contains_key(&name) {
                    return Err(err(ErrorKind::Conflict, format!("ipset '{name}' already exists")));
                }
                cfg.ipsets.insert(name, model::IpSet { comment, entries: Vec::new() });
                Ok(())
            })
        }
        R::IpSetDelete { scope, name } => {
            let name = name.to_ascii_lowercase();
            if references(&Files::load(&daemon.root)?, &name) {
                return Err(err(ErrorKind::Conflict, format!("ipset '{name}' is used by a rule")));
            }
            change(daemon, scope, true, |cfg| {
                cfg.ipsets
                    .remove(&name)
                    .map(|_| ())
                    .ok_or_else(|| err(ErrorKind::NotFound, format!("ipset '{name}' does not exist")))
            })
        }
        R::IpSetAdd { scope, name, cidr, nomatch, comment } => {
            let name = name.to_ascii_lowercase();
            let (bang, cidr) = match cidr.strip_prefix('!') {
                Some(c) => (true, c.to_string()),
                None => (false, cidr),
            };
            if model::IpNet::parse(&cidr).is_none() && !model::addr::valid_object_name(&cidr) {
                return Err(invalid(format!("cidr: invalid IP address, CIDR or alias '{cidr}'")));
            }
            change(daemon, scope, false, |cfg| {
                let set = cfg
                    .ipsets
                    .get_mut(&name)
                    .ok_or_else(|| err(ErrorKind::NotFound, format!("ipset '{name}' does not exist")))?;
                if set.entries.iter().any(|e| e.cidr == cidr) {
                    return Err(err(ErrorKind::Conflict, format!("'{cidr}' is already in ipset '{name}'")));
                }
                set.entries.push(model::IpSetEntry { cidr, nomatch: nomatch || bang, comment });
                Ok(())
            })
        }
        R::IpSetRemove { scope, name, cidr } => {
            let name = name.to_ascii_lowercase();
            change(daemon, scope, false, |cfg| {
                let set = cfg
                    .ipsets
                    .get_mut(&name)
                    .ok_or_else(|| err(ErrorKind::NotFound, format!("ipset '{name}' does not exist")))?;
                let before = set.entries.len();
                set.entries.retain(|e| e.cidr != cidr);
                if set.entries.len() == before {
                    return Err(err(ErrorKind::NotFound, format!("'{cidr}' is not in ipset '{name}'")));
                }
                Ok(())
            })
        }
        R::AliasList { scope } => {
            let cfg = Files::load(&daemon.root)?.get(scope);
            let only = FirewallConfig { aliases: cfg.aliases, ..FirewallConfig::default() };
            Ok(Payload::Text(fwfile::write(&only)))
        }
        R::AliasSet { scope, name, cidr, comment } => {
            let name = name.to_ascii_lowercase();
            if !model::addr::valid_object_name(&name) {
                return Err(invalid(format!("name: invalid alias name '{name}'")));
            }
            model::addr::parse_cidr("cidr", &cidr).map_err(invalid)?;
            change(daemon, scope, false, |cfg| {
                cfg.aliases.insert(name, model::Alias { cidr, comment });
                Ok(())
            })
        }
        R::AliasDelete { scope, name } => {
            let name = name.to_ascii_lowercase();
            change(daemon, scope, false, |cfg| {
                cfg.aliases
                    .remove(&name)
                    .map(|_| ())
                    .ok_or_else(|| err(ErrorKind::NotFound, format!("alias '{name}' does not exist")))
            })
        }
        R::GroupList => {
            let cfg = Files::load(&daemon.root)?.cluster;
            let only = FirewallConfig { groups: cfg.groups, ..FirewallConfig::default() };
            Ok(Payload::Text(fwfile::write(&only)))
        }
        R::GroupCreate { name, comment } => {
            let name = name.to_ascii_lowercase();
            if !model::valid_group_name(&name) {
                return Err(invalid(format!(
                    "name: invalid security group name '{name}' (2 to 18 characters: a letter, then letters, digits, '-' or '_')"
                )));
            }
            change(daemon, FirewallScope::Cluster, false, |cfg| {
                if cfg.groups.contains_key(&name) {
                    return Err(err(ErrorKind::Conflict, format!("security group '{name}' already exists")));
                }
                cfg.groups.insert(name, model::Group { comment, rules: Vec::new() });
                Ok(())
            })
        }
        R::GroupDelete { name } => {
            let name = name.to_ascii_lowercase();
            change(daemon, FirewallScope::Cluster, false, |cfg| {
                cfg.groups
                    .remove(&name)
                    .map(|_| ())
                    .ok_or_else(|| err(ErrorKind::NotFound, format!("security group '{name}' does not exist")))
            })
        }
        R::Import { scope, text, force } => {
            let parsed = fwfile::parse(&text).map_err(invalid)?;
            change(daemon, scope, force, |cfg| {
                *cfg = parsed;
                Ok(())
            })
        }
        R::Export { scope } => Ok(Payload::Text(fwfile::write(&Files::load(&daemon.root)?.get(scope)))),
        R::Compile => {
            let files = Files::load(&daemon.root)?;
            Ok(Payload::Text(compile(daemon, &files)?.to_nft()))
        }
        R::Status => status(daemon),
        R::Enable { enable, force } => change(daemon, FirewallScope::Cluster, force, |cfg| {
            cfg.options.insert("enable".into(), if enable { "1" } else { "0" }.into());
            Ok(())
        }),
        R::Simulate { from, to, source, dest, proto, dport, sport, iface } => {
            let files = Files::load(&daemon.root)?;
            let rs = compile(daemon, &files)?;
            let ep = |k: &str, s: &str| {
                Endpoint::parse(s).ok_or_else(|| {
                    invalid(format!("{k}: expected host, outside, routed, vmN, ctN or N (optionally /netN), got '{s}'"))
                })
            };
            let ip =
                |k: &str, s: &str| s.parse::<IpAddr>().map_err(|_| invalid(format!("{k}: invalid IP address '{s}'")));
            let proto_n = model::port::protocol_number(&proto)
                .ok_or_else(|| invalid(format!("proto: unknown protocol '{proto}'")))?;
            let (src, dst) = (ip("source", &source)?, ip("dest", &dest)?);
            if src.is_ipv4() != dst.is_ipv4() {
                return Err(invalid("dest: source and dest must be of the same IP version"));
            }
            let p = Packet {
                from: ep("from", &from)?,
                to: ep("to", &to)?,
                source: src,
                dest: dst,
                proto: proto_n,
                sport,
                dport,
                icmp: None,
                iface,
            };
            let d = hearth_fw::simulate(&rs, &p);
            let mut out = d.trace.join("\n");
            out.push_str(&format!("\nverdict: {} (by {})\n", d.verdict.as_str(), d.decided_by));
            Ok(Payload::Text(out.trim_start().to_string()))
        }
        R::Log { since } => read_log(&daemon.root, since),
        R::Apply { confirm_timeout } => {
            if confirm_timeout == 0 {
                return Err(invalid("confirm-timeout: must be at least 1 second"));
            }
            let mut saved = BTreeMap::new();
            for scope_file in std::fs::read_dir(dir(&daemon.root)).into_iter().flatten().flatten() {
                let p = scope_file.path();
                saved.insert(p.clone(), std::fs::read(&p).ok());
            }
            let mut st = fw(daemon).state.lock().expect("never poisoned");
            st.trial = Some(Trial { deadline: Instant::now() + Duration::from_secs(confirm_timeout), saved });
            drop(st);
            refresh(daemon)?;
            ensure_watcher(daemon);
            Ok(Payload::Text(format!(
                "applied; run 'fwctl confirm' within {confirm_timeout} s or the previous configuration returns\n"
            )))
        }
        R::Confirm => {
            let mut st = fw(daemon).state.lock().expect("never poisoned");
            if st.trial.take().is_none() {
                return Err(err(ErrorKind::NotFound, "nothing to confirm: no apply --confirm-timeout is pending"));
            }
            Ok(Payload::Empty)
        }
    }
}

fn status(daemon: &Arc<Daemon>) -> Result<Payload, ErrorReply> {
    let files = Files::load(&daemon.root)?;
    let input = input(daemon, &files)?;
    let st = fw(daemon).state.lock().expect("never poisoned");
    let mut out = String::new();
    let enabled = files.cluster.flag(Level::Cluster, "enable");
    out.push_str(&format!(
        "Status: {}/{}\n",
        if enabled { "enabled" } else { "disabled" },
        if st.applied.is_some() { "running" } else { "stopped" }
    ));
    out.push_str(&format!(
        "host: {}\n",
        if files.host.flag(Level::Host, "enable") { "enabled" } else { "disabled (host.fw enable: 0)" }
    ));
    for g in &input.guests {
        let on = g.config.flag(Level::Guest, "enable");
        for n in &g.nics {
            let why = match (enabled, on, n.firewall) {
                (false, _, _) => "off (cluster enable: 0)",
                (_, false, _) => "off (guest enable: 0)",
                (_, _, false) => "off (firewall=0 on the NIC)",
                _ => "filtered",
            };
            out.push_str(&format!("{} net{} ({}): {why}\n", g.vmid, n.index, n.port));
        }
    }
    if let Some(e) = &st.last_error {
        out.push_str(&format!("last error: {e}\n"));
    }
    if st.trial.is_some() {
        out.push_str("an apply is waiting for 'fwctl confirm'\n");
    }
    Ok(Payload::Text(out))
}

/// Requests after which the ruleset follows the guests' NICs: creation, configuration
/// changes, destruction, restores, clones, starts and stops.
pub fn affects_guests(request: &hearth_proto::Request) -> bool {
    use hearth_proto::{CtRequest as C, Request as Q, VmRequest as V};
    matches!(
        request,
        Q::Vm(
            V::Create(_) | V::Set(_) | V::Destroy(_) | V::Restore(_) | V::Clone(_) | V::Start { .. } | V::Stop { .. }
        ) | Q::Ct(
            C::Create(_) | C::Set(_) | C::Destroy(_) | C::Restore(_) | C::Clone(_) | C::Start { .. } | C::Stop { .. }
        )
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_addresses() {
        let v4 = u32::from_ne_bytes([10, 7, 0, 254]);
        assert_eq!(proc_net_addr(&format!("{v4:08X}:0016")), Some((IpAddr::from([10, 7, 0, 254]), 22)));
        let words: String = [[0u8, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0xff, 0xff], [10, 7, 0, 1]]
            .iter()
            .map(|w| format!("{:08X}", u32::from_ne_bytes(*w)))
            .collect();
        assert_eq!(proc_net_addr(&format!("{words}:1F46")), Some((IpAddr::from([10, 7, 0, 1]), 8006)));
        assert_eq!(proc_net_addr("nothex:0016"), None);
    }
}
