//! Pruning a group's snapshots with Proxmox's keep-* rules (hearth-core's `prune::mark`).
//! Protected snapshots are never removed; snapshots in use (a running backup's own, or its
//! base) are skipped. Of the incomplete snapshots only the newest is kept, and only while it is
//! newer than the newest complete one. Prune removes snapshot directories; their chunks go at
//! a later GC.

use hearth_core::prune::{Backup, KeepOptions, Mark, mark};

use crate::ChunkStore;
use crate::error::Error;
use crate::snapshot::{BackupType, SnapshotRef, list_snapshots, remove_snapshot};
use crate::time::rfc3339;

/// What prune decided (and, unless a dry run, did).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneResult {
    pub kept: Vec<SnapshotRef>,
    pub removed: Vec<SnapshotRef>,
    pub protected: Vec<SnapshotRef>,
    /// Marked for removal but in use by a running task; left alone.
    pub busy: Vec<SnapshotRef>,
}

/// Prunes one group. `utc_offset(t)` is the local time's offset from UTC in seconds at `t`,
/// which decides the hourly/daily/… periods.
pub fn prune_group(
    store: &ChunkStore,
    backup_type: BackupType,
    id: &str,
    keep: &KeepOptions,
    utc_offset: impl Fn(i64) -> i32,
    dry_run: bool,
) -> Result<PruneResult, Error> {
    let snapshots = list_snapshots(store, backup_type, id)?;
    let newest_complete = snapshots.iter().filter(|s| s.complete()).map(|s| s.snapshot.time).max();
    let newest_incomplete = snapshots.iter().filter(|s| !s.complete()).map(|s| s.snapshot.time).max();
    let guest = format!("{}/{id}", backup_type.as_str());
    let backups: Vec<Backup> = snapshots
        .iter()
        .filter(|s| s.complete())
        .map(|s| Backup {
            id: rfc3339(s.snapshot.time),
            guest: guest.clone(),
            time: s.snapshot.time,
            protected: s.protected,
            standard_name: true,
        })
        .collect();
    let mut result = PruneResult::default();
    let mut to_remove = Vec::new();
    for group in mark(&backups, keep, utc_offset) {
        for marked in group.backups {
            let snap = SnapshotRef::new(backup_type, id, marked.time);
            match marked.mark {
                Mark::Keep | Mark::Renamed => result.kept.push(snap),
                Mark::Protected => result.protected.push(snap),
                Mark::Remove => to_remove.push(snap),
            }
        }
    }
    for s in snapshots.iter().filter(|s| !s.complete()) {
        let keep_partial =
            Some(s.snapshot.time) == newest_incomplete && newest_complete.is_none_or(|c| s.snapshot.time > c);
        if s.protected {
            result.protected.push(s.snapshot.clone());
        } else if keep_partial {
            result.kept.push(s.snapshot.clone());
        } else {
            to_remove.push(s.snapshot.clone());
        }
    }
    for snap in to_remove {
        if dry_run {
            result.removed.push(snap);
            continue;
        }
        match remove_snapshot(store, &snap) {
            Ok(()) => result.removed.push(snap),
            Err(Error::Busy { .. }) => result.busy.push(snap),
            Err(e) => return Err(e),
        }
    }
    for list in [&mut result.kept, &mut result.removed, &mut result.protected, &mut result.busy] {
        list.sort_by_key(|s| std::cmp::Reverse(s.time));
    }
    Ok(result)
}
