//! ACL paths: the objects permissions are granted on (`/`, `/vms/100`, `/storage/local`,
//! `/pool/prod`, …), checked against the list Proxmox VE accepts, and their ancestors.

use std::fmt;
use std::str::FromStr;

use super::ids::is_simple_name;
use crate::vmid::Vmid;

/// A path that is not an ACL path, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid ACL path '{path}': {reason}")]
pub struct PathError {
    pub path: String,
    pub reason: String,
}

/// Every form, for messages.
const ALLOWED: &str = "/, /access, /access/groups[/GROUP], /access/realm[/REALM], /nodes[/NODE], \
                       /pool[/POOL[/SUB[/SUB]]], /storage[/STORAGE], /vms[/VMID], /mapping[/TYPE[/ID]], \
                       /sdn, /sdn/zones[/ZONE[/VNET[/VLAN]]], \
                       /sdn/{controllers,dns,ipams,fabrics,prefix-lists,route-maps}[/ID]";

const TOP_LEVELS: &[&str] = &["access", "mapping", "nodes", "pool", "sdn", "storage", "vms"];

const SDN_KINDS: &[&str] = &["controllers", "dns", "fabrics", "ipams", "prefix-lists", "route-maps", "zones"];

/// A valid ACL path in normal form: one leading `/`, no empty components, no trailing `/`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AclPath(String);

impl AclPath {
    /// `/`.
    pub fn root() -> AclPath {
        AclPath("/".to_owned())
    }

    /// `/vms/<vmid>`.
    pub fn vm(vmid: Vmid) -> AclPath {
        AclPath(format!("/vms/{vmid}"))
    }

    /// `/storage/<id>`.
    pub fn storage(id: &str) -> Result<AclPath, PathError> {
        format!("/storage/{id}").parse()
    }

    /// `/pool/<name>`.
    pub fn pool(pool: &super::PoolName) -> AclPath {
        AclPath(format!("/pool/{pool}"))
    }

    /// Normalises a path as Proxmox does (runs of `/` collapse, a trailing `/` goes, a missing
    /// leading `/` is added) and checks it against the forms ACLs may name.
    pub fn parse(raw: &str) -> Result<AclPath, PathError> {
        let err = |reason: String| PathError { path: raw.to_owned(), reason };
        if raw.is_empty() {
            return Err(err(format!("the path is empty; expected one of {ALLOWED}")));
        }
        let parts: Vec<&str> = raw.split('/').filter(|p| !p.is_empty()).collect();
        check_parts(&parts).map_err(err)?;
        Ok(AclPath(format!("/{}", parts.join("/"))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The components after the leading `/`; none for `/`.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// The path one level up; `None` for `/`.
    pub fn parent(&self) -> Option<AclPath> {
        let (head, _) = self.0.rsplit_once('/')?;
        if self.is_root() {
            return None;
        }
        Some(if head.is_empty() { AclPath::root() } else { AclPath(head.to_owned()) })
    }

    /// The path and its ancestors, as text, from `/` down to the path itself.
    pub(crate) fn prefixes(&self) -> impl Iterator<Item = &str> {
        prefixes(&self.0)
    }

    /// `/`, then each ancestor, then the path itself: `/`, `/vms`, `/vms/100`. Every ancestor of
    /// a valid path is itself valid.
    pub fn ancestors(&self) -> impl Iterator<Item = AclPath> + '_ {
        self.prefixes().map(|p| AclPath(p.to_owned()))
    }

    /// Whether `self` is `other` or one of its ancestors.
    pub fn is_ancestor_or_self(&self, other: &AclPath) -> bool {
        self.is_root() || other.0 == self.0 || other.0.strip_prefix(&self.0).is_some_and(|rest| rest.starts_with('/'))
    }

    /// The guest of a `/vms/<vmid>` path.
    pub fn vmid(&self) -> Option<Vmid> {
        self.0.strip_prefix("/vms/")?.parse().ok()
    }

    /// The storage of a `/storage/<id>` path.
    pub fn storage_id(&self) -> Option<&str> {
        self.0.strip_prefix("/storage/")
    }

    /// The pool of a `/pool/<name>` path, nested names included.
    pub fn pool_name(&self) -> Option<&str> {
        self.0.strip_prefix("/pool/")
    }
}

/// `/` and every ancestor of a normal-form path, down to the path itself.
pub(crate) fn prefixes(path: &str) -> impl Iterator<Item = &str> {
    let ends = path.match_indices('/').skip(1).map(|(i, _)| i).chain((path != "/").then_some(path.len()));
    std::iter::once("/").chain(ends.map(move |end| &path[..end]))
}

fn check_parts(parts: &[&str]) -> Result<(), String> {
    let Some((top, rest)) = parts.split_first() else { return Ok(()) };
    let name = |what: &str, v: &str| {
        if is_simple_name(v) { Ok(()) } else { Err(format!("'{v}' is not a valid {what} ([A-Za-z0-9.-_]+)")) }
    };
    let alnum = |what: &str, v: &str, extra: &[u8]| {
        let ok = !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b));
        if ok {
            Ok(())
        } else {
            let extra: String = extra.iter().map(|b| char::from(*b)).collect();
            Err(format!("'{v}' is not a valid {what} ([A-Za-z0-9{extra}]+)"))
        }
    };
    let too_deep = |form: &str| Err(format!("too many levels; /{top} takes {form}"));
    match (*top, rest) {
        ("access", []) => Ok(()),
        ("access", ["groups"] | ["realm"]) => Ok(()),
        ("access", ["groups", g]) => name("group name", g),
        ("access", ["realm", r]) => name("realm", r),
        ("access", [other, ..]) if !["groups", "realm"].contains(other) => {
            Err(format!("'{other}' is not under /access (allowed: /access/groups, /access/realm)"))
        }
        ("access", _) => too_deep("/access/groups[/GROUP] or /access/realm[/REALM]"),
        ("nodes", []) => Ok(()),
        ("nodes", [n]) => name("node name", n),
        ("nodes", _) => too_deep("/nodes[/NODE]"),
        ("pool", levels) if levels.len() <= 3 => levels.iter().try_for_each(|l| name("pool name", l)),
        ("pool", _) => too_deep("/pool[/POOL[/SUB[/SUB]]]; pools nest at most three levels"),
        ("storage", []) => Ok(()),
        ("storage", [id]) => name("storage id", id),
        ("storage", _) => too_deep("/storage[/STORAGE]"),
        ("vms", []) => Ok(()),
        ("vms", [id]) => id.parse::<Vmid>().map(|_| ()).map_err(|_| format!("'{id}' is not a VMID (100 to 999999999)")),
        ("vms", _) => too_deep("/vms[/VMID]"),
        ("mapping", levels) if levels.len() <= 2 => levels.iter().try_for_each(|l| name("mapping name", l)),
        ("mapping", _) => too_deep("/mapping[/TYPE[/ID]]"),
        ("sdn", []) => Ok(()),
        ("sdn", [kind, ..]) if !SDN_KINDS.contains(kind) => {
            Err(format!("'{kind}' is not under /sdn (allowed: {})", SDN_KINDS.join(", ")))
        }
        ("sdn", ["zones", levels @ ..]) => match levels {
            [] => Ok(()),
            [zone, more @ ..] if more.len() <= 2 => {
                alnum("zone", zone, b"._-")?;
                if let Some(vnet) = more.first() {
                    alnum("vnet", vnet, b"._-")?;
                }
                match more.get(1) {
                    Some(vlan) if !is_vlan(vlan) => Err(format!("'{vlan}' is not a VLAN tag (1 to 9999)")),
                    _ => Ok(()),
                }
            }
            _ => too_deep("/sdn/zones[/ZONE[/VNET[/VLAN]]]"),
        },
        ("sdn", [_]) => Ok(()),
        ("sdn", ["controllers", id]) => alnum("controller id", id, b"_-"),
        ("sdn", [kind, id]) => {
            let what = match *kind {
                "dns" => "DNS id",
                "ipams" => "IPAM id",
                "fabrics" => "fabric id",
                "prefix-lists" => "prefix list id",
                _ => "route map id",
            };
            alnum(what, id, b"")
        }
        ("sdn", [kind, ..]) => Err(format!("too many levels; /sdn/{kind} takes /sdn/{kind}[/ID]")),
        (other, _) => {
            let hint = super::did_you_mean(super::closest(other, TOP_LEVELS.iter().copied()).map(|t| match t {
                "access" => "/access",
                "mapping" => "/mapping",
                "nodes" => "/nodes",
                "pool" => "/pool",
                "sdn" => "/sdn",
                "storage" => "/storage",
                _ => "/vms",
            }));
            Err(format!("unknown top level '/{other}'{hint}; expected one of {ALLOWED}"))
        }
    }
}

/// `[1-9][0-9]{0,3}`, as Proxmox's path check has it.
fn is_vlan(s: &str) -> bool {
    (1..=4).contains(&s.len()) && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit())
}

impl FromStr for AclPath {
    type Err = PathError;

    fn from_str(s: &str) -> Result<AclPath, PathError> {
        AclPath::parse(s)
    }
}

impl TryFrom<String> for AclPath {
    type Error = PathError;
    fn try_from(s: String) -> Result<AclPath, PathError> {
        AclPath::parse(&s)
    }
}

impl From<AclPath> for String {
    fn from(p: AclPath) -> String {
        p.0
    }
}

impl fmt::Display for AclPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AclPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AclPath({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> String {
        AclPath::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}")).to_string()
    }

    fn err(s: &str) -> String {
        AclPath::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn accepts_every_form() {
        for p in [
            "/",
            "/access",
            "/access/groups",
            "/access/groups/admins",
            "/access/realm",
            "/access/realm/pve",
            "/nodes",
            "/nodes/node-1.example",
            "/pool",
            "/pool/prod",
            "/pool/prod/web",
            "/pool/prod/web/eu",
            "/storage",
            "/storage/local-lvm",
            "/vms",
            "/vms/100",
            "/vms/999999999",
            "/mapping",
            "/mapping/pci",
            "/mapping/pci/gpu0",
            "/sdn",
            "/sdn/zones",
            "/sdn/zones/zone1",
            "/sdn/zones/zone1/vnet1",
            "/sdn/zones/zone1/vnet1/4094",
            "/sdn/controllers",
            "/sdn/controllers/evpn_ctl-1",
            "/sdn/dns",
            "/sdn/dns/pdns1",
            "/sdn/ipams",
            "/sdn/ipams/netbox",
            "/sdn/fabrics",
            "/sdn/fabrics/fab1",
            "/sdn/prefix-lists",
            "/sdn/prefix-lists/pl1",
            "/sdn/route-maps",
            "/sdn/route-maps/rm1",
        ] {
            assert_eq!(ok(p), p);
        }
    }

    #[test]
    fn normalises_slashes() {
        assert_eq!(ok("/vms/"), "/vms");
        assert_eq!(ok("//vms///100//"), "/vms/100");
        assert_eq!(ok("vms/100"), "/vms/100");
        assert_eq!(ok("///"), "/");
    }

    #[test]
    fn refuses_with_reasons() {
        assert!(err("").contains("the path is empty; expected one of /, /access"));
        assert_eq!(
            err("/vm/100"),
            format!(
                "invalid ACL path '/vm/100': unknown top level '/vm'; did you mean '/vms'?; expected one of {ALLOWED}"
            )
        );
        assert_eq!(err("/vms/42"), "invalid ACL path '/vms/42': '42' is not a VMID (100 to 999999999)");
        assert_eq!(err("/vms/0100"), "invalid ACL path '/vms/0100': '0100' is not a VMID (100 to 999999999)");
        assert_eq!(err("/vms/100/disk"), "invalid ACL path '/vms/100/disk': too many levels; /vms takes /vms[/VMID]");
        assert_eq!(
            err("/pool/a/b/c/d"),
            "invalid ACL path '/pool/a/b/c/d': too many levels; /pool takes /pool[/POOL[/SUB[/SUB]]]; \
             pools nest at most three levels"
        );
        assert_eq!(
            err("/nodes/a b"),
            "invalid ACL path '/nodes/a b': 'a b' is not a valid node name ([A-Za-z0-9.-_]+)"
        );
        assert_eq!(
            err("/access/users"),
            "invalid ACL path '/access/users': 'users' is not under /access (allowed: /access/groups, /access/realm)"
        );
        assert_eq!(
            err("/sdn/vnets/x"),
            "invalid ACL path '/sdn/vnets/x': 'vnets' is not under /sdn (allowed: controllers, dns, fabrics, \
             ipams, prefix-lists, route-maps, zones)"
        );
        assert_eq!(err("/sdn/zones/z/v/0"), "invalid ACL path '/sdn/zones/z/v/0': '0' is not a VLAN tag (1 to 9999)");
        assert_eq!(err("/sdn/dns/a-b"), "invalid ACL path '/sdn/dns/a-b': 'a-b' is not a valid DNS id ([A-Za-z0-9]+)");
        assert!(err("/sdn/zones/z/v/1/x").contains("too many levels"));
        assert!(err("/storage/a/b").contains("too many levels"));
        assert!(err("/mapping/a/b/c").contains("too many levels"));
        assert!(err("/../etc").contains("unknown top level"));
    }

    #[test]
    fn ancestors_and_parents() {
        let p = AclPath::parse("/vms/100").unwrap();
        let a: Vec<String> = p.ancestors().map(|a| a.to_string()).collect();
        assert_eq!(a, ["/", "/vms", "/vms/100"]);
        assert_eq!(AclPath::root().ancestors().map(|a| a.to_string()).collect::<Vec<_>>(), ["/"]);
        assert_eq!(p.parent().unwrap().to_string(), "/vms");
        assert_eq!(p.parent().unwrap().parent(), Some(AclPath::root()));
        assert_eq!(AclPath::root().parent(), None);
        assert!(AclPath::root().is_ancestor_or_self(&p));
        assert!(AclPath::parse("/vms").unwrap().is_ancestor_or_self(&p));
        assert!(!AclPath::parse("/vms/10").is_ok_and(|x| x.is_ancestor_or_self(&p)));
        assert!(!AclPath::parse("/pool/a").unwrap().is_ancestor_or_self(&AclPath::parse("/pool/ab").unwrap()));
        assert_eq!(p.vmid().map(|v| v.get()), Some(100));
        assert_eq!(AclPath::parse("/storage/local").unwrap().storage_id(), Some("local"));
        assert_eq!(AclPath::parse("/pool/a/b").unwrap().pool_name(), Some("a/b"));
        assert_eq!(AclPath::parse("/vms").unwrap().vmid(), None);
    }

    #[test]
    fn every_ancestor_of_a_valid_path_is_valid() {
        for p in ["/sdn/zones/z/v/10", "/pool/a/b/c", "/access/groups/g", "/mapping/pci/x", "/sdn/route-maps/r"] {
            for a in AclPath::parse(p).unwrap().ancestors() {
                assert_eq!(AclPath::parse(a.as_str()).as_ref(), Ok(&a));
            }
        }
    }
}
