//! Resource pools: add, modify (members), delete, list.

use hearth_core::Vmid;
use hearth_core::access::{AclPath, Pool, PoolName, Privilege};
use hearth_proto::{ErrorKind, ErrorReply, Payload, PoolInfo};

use super::text;
use crate::Daemon;
use crate::access::Caller;

fn parse_pool(s: &str) -> Result<PoolName, ErrorReply> {
    super::parse_id(s)
}

fn unknown_pool(name: &PoolName) -> ErrorReply {
    ErrorReply::new(ErrorKind::NotFound, format!("no such pool '{name}'"))
}

pub(super) fn add(
    daemon: &Daemon,
    caller: &Caller,
    pool: &str,
    comment: Option<String>,
    vms: Vec<Vmid>,
    storage: Vec<String>,
) -> Result<Payload, ErrorReply> {
    let name = parse_pool(pool)?;
    daemon.access.edit(caller, &format!("pool add {name}"), |m| {
        if m.pools.contains_key(&name) {
            return Err(ErrorReply::new(ErrorKind::Conflict, format!("pool '{name}' already exists")));
        }
        let pool =
            Pool { comment: text(comment), vms: vms.into_iter().collect(), storage: storage.into_iter().collect() };
        m.pools.insert(name.clone(), pool);
        Ok(())
    })?;
    Ok(Payload::Empty)
}

/// Adds the members, or with `delete` removes them; a comment given replaces the pool's.
pub(super) fn modify(
    daemon: &Daemon,
    caller: &Caller,
    pool: &str,
    comment: Option<String>,
    vms: &[Vmid],
    storage: &[String],
    delete: bool,
) -> Result<Payload, ErrorReply> {
    let name = parse_pool(pool)?;
    daemon.access.edit(caller, &format!("pool modify {name}"), |m| {
        let p = m.pools.get_mut(&name).ok_or_else(|| unknown_pool(&name))?;
        if comment.is_some() {
            p.comment = text(comment);
        }
        if delete {
            p.vms.retain(|v| !vms.contains(v));
            p.storage.retain(|s| !storage.contains(s));
        } else {
            p.vms.extend(vms);
            p.storage.extend(storage.iter().cloned());
        }
        Ok(())
    })?;
    Ok(Payload::Empty)
}

/// Removes an empty pool without sub-pools, and every ACL entry on it.
pub(super) fn delete(daemon: &Daemon, caller: &Caller, pool: &str) -> Result<Payload, ErrorReply> {
    let name = parse_pool(pool)?;
    daemon.access.edit(caller, &format!("pool delete {name}"), |m| {
        let p = m.pools.get(&name).ok_or_else(|| unknown_pool(&name))?;
        if !p.vms.is_empty() || !p.storage.is_empty() {
            return Err(ErrorReply::new(
                ErrorKind::Conflict,
                format!(
                    "pool '{name}' is not empty: remove its members first with `userctl pool modify {name} --vms … --storage … --delete`"
                ),
            ));
        }
        if let Some(child) = m.pools.keys().find(|c| c.parent().as_ref() == Some(&name)) {
            return Err(ErrorReply::new(
                ErrorKind::Conflict,
                format!("pool '{name}' has the sub-pool '{child}': delete it first"),
            ));
        }
        m.pools.remove(&name);
        let path = AclPath::pool(&name);
        m.acl.retain(|e| !path.is_ancestor_or_self(&e.path));
        Ok(())
    })?;
    Ok(Payload::Empty)
}

/// The pools on which the caller holds Pool.Audit.
pub(super) fn list(daemon: &Daemon, caller: &Caller) -> Payload {
    let access = &daemon.access;
    let model = access.model();
    let pools = model
        .pools
        .iter()
        .filter(|(name, _)| access.privileges(caller, &AclPath::pool(name)).contains(Privilege::PoolAudit))
        .map(|(name, p)| PoolInfo {
            pool: name.to_string(),
            comment: p.comment.clone(),
            vms: p.vms.iter().copied().collect(),
            storage: p.storage.iter().cloned().collect(),
        })
        .collect();
    Payload::Pools(pools)
}
