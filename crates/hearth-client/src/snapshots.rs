//! Snapshots as the tree `qm listsnapshot` and `pct listsnapshot` print.

use std::collections::HashMap;
use std::fmt::Write as _;

use hearth_proto::SnapshotInfo;

use crate::cli;

/// The column qm lines the snapshot names up to, counted from the start of the line.
const NAME_COLUMN: usize = 30;

/// The tree as qm's `print_snapshot_tree` prints it: roots (no parent, or a parent not in the
/// list) first, children below their parent with one more space before the `` `-> ``, siblings
/// by time with the untimed `current` last.
pub fn render_tree(snapshots: &[SnapshotInfo]) -> String {
    let index: HashMap<&str, usize> = snapshots.iter().enumerate().rev().map(|(i, s)| (s.name.as_str(), i)).collect();
    let mut roots = Vec::new();
    let mut children = vec![Vec::new(); snapshots.len()];
    for (i, snapshot) in snapshots.iter().enumerate() {
        match snapshot.parent.as_deref().and_then(|p| index.get(p)) {
            Some(&parent) if parent != i => children[parent].push(i),
            _ => roots.push(i),
        }
    }
    let by_time = |i: &usize| (snapshots[*i].snaptime.is_none(), snapshots[*i].snaptime);
    roots.sort_by_key(by_time);
    for siblings in &mut children {
        siblings.sort_by_key(by_time);
    }
    let mut out = String::new();
    let mut shown = vec![false; snapshots.len()];
    // Entries on a cycle of parent links hang below no root; only a damaged configuration has
    // them, and they are shown after the rest rather than hidden.
    let starts = roots.into_iter().chain(0..snapshots.len());
    for start in starts {
        let mut stack = vec![(start, 0)];
        while let Some((i, depth)) = stack.pop() {
            if std::mem::replace(&mut shown[i], true) {
                continue;
            }
            line(&mut out, &snapshots[i], depth);
            stack.extend(children[i].iter().rev().map(|&child| (child, depth + 1)));
        }
    }
    out
}

/// One line of the tree, padded as qm's `printf("%s %-*s %-23s %s\n")` pads it.
fn line(out: &mut String, snapshot: &SnapshotInfo, depth: usize) {
    let prefix = format!("{:depth$}`->", "");
    let width = NAME_COLUMN.saturating_sub(prefix.len());
    let time = snapshot.snaptime.map(cli::format_utc).unwrap_or_default();
    let description = snapshot.description.as_deref().filter(|d| !d.is_empty()).unwrap_or("no-description");
    let description = description.lines().next().unwrap_or_default();
    let _ = writeln!(out, "{prefix} {:<width$} {time:<23} {description}", snapshot.name);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    fn snap(name: &str, parent: Option<&str>, snaptime: Option<i64>, description: Option<&str>) -> SnapshotInfo {
        SnapshotInfo {
            name: name.into(),
            parent: parent.map(str::to_owned),
            snaptime,
            description: description.map(str::to_owned),
        }
    }

    fn current(parent: Option<&str>) -> SnapshotInfo {
        snap("current", parent, None, Some("You are here!"))
    }

    #[test]
    fn no_snapshots_only_current() {
        assert_eq!(
            render_tree(&[current(None)]),
            "`-> current                                             You are here!\n"
        );
        assert_eq!(render_tree(&[]), "");
    }

    #[test]
    fn tree_like_qm_listsnapshot() {
        // base has two children; the VM was rolled back to the first, so current hangs there.
        // The list comes sorted by time, as hearthd sends it.
        let snapshots = [
            snap("base", None, Some(1_716_560_368), Some("fresh install\nwith a second line")),
            snap("upgrade", Some("base"), Some(1_716_563_968), None),
            snap("experiment", Some("base"), Some(1_716_567_568), Some("")),
            snap("after_experiment_with_a_long_name", Some("experiment"), Some(1_716_571_168), Some("tried")),
            current(Some("upgrade")),
        ];
        let expected = "\
`-> base                        2024-05-24 14:19:28     fresh install
 `-> upgrade                    2024-05-24 15:19:28     no-description
  `-> current                                           You are here!
 `-> experiment                 2024-05-24 16:19:28     no-description
  `-> after_experiment_with_a_long_name 2024-05-24 17:19:28     tried
";
        assert_eq!(render_tree(&snapshots), expected);
        // The order of the list does not matter, only parents and times.
        let mut shuffled = snapshots.clone();
        shuffled.reverse();
        assert_eq!(render_tree(&shuffled), expected);
    }

    #[test]
    fn orphans_and_cycles_are_shown() {
        let snapshots = [
            // A parent that is not in the list makes a root, as in qm.
            snap("orphan", Some("gone"), Some(200), Some("left over")),
            snap("first", None, Some(100), Some("a")),
            // Only a damaged configuration loops; the loop is still listed.
            snap("loop_a", Some("loop_b"), Some(300), None),
            snap("loop_b", Some("loop_a"), Some(400), None),
            current(Some("first")),
        ];
        assert_eq!(
            render_tree(&snapshots),
            "\
`-> first                       1970-01-01 00:01:40     a
 `-> current                                            You are here!
`-> orphan                      1970-01-01 00:03:20     left over
`-> loop_a                      1970-01-01 00:05:00     no-description
 `-> loop_b                     1970-01-01 00:06:40     no-description
"
        );
    }
}
