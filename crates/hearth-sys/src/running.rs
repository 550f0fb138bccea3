//! The guests an engine runs, kept in memory: each with its processes and a pidfd for each,
//! so "which guests run now" costs one `poll(2)` over every pidfd instead of reading pid files
//! and `/proc` once per guest.
//!
//! A pidfd becomes readable when its process exits, whoever ended it, so a guest killed from
//! outside drops out of the answer at once, before its watcher has cleaned up.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// One guest's processes: the first is the one reported (QEMU, a container's init); the guest
/// runs while every one of them does.
#[derive(Debug)]
struct Tracked {
    pids: Vec<(u32, Option<OwnedFd>)>,
}

impl Tracked {
    fn open(pids: &[u32]) -> Tracked {
        let pids = pids
            .iter()
            .map(|&pid| (pid, i32::try_from(pid).ok().and_then(|p| crate::process::pidfd_open(p).ok())))
            .collect();
        Tracked { pids }
    }
}

/// What an engine says of a guest one of whose processes exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// It runs, now as these processes (the reported one first).
    Running(Vec<u32>),
    /// It is between two processes: not running now, asked again next time.
    NotNow,
    /// It is gone.
    Gone,
}

/// Running guests by id.
#[derive(Debug)]
pub struct RunningSet<K> {
    guests: Mutex<BTreeMap<K, Tracked>>,
}

impl<K> Default for RunningSet<K> {
    fn default() -> Self {
        RunningSet { guests: Mutex::new(BTreeMap::new()) }
    }
}

impl<K: Ord + Copy> RunningSet<K> {
    /// Records that guest `id` runs as `pids` (the reported process first), replacing what
    /// was known of it. A process whose pidfd cannot be opened is checked with `kill(pid, 0)`.
    pub fn insert(&self, id: K, pids: &[u32]) {
        self.lock().insert(id, Tracked::open(pids));
    }

    /// Forgets guest `id`, if it is still recorded with `pid` as its reported process (a
    /// watcher of an old run must not forget a newer one).
    pub fn remove(&self, id: K, pid: u32) {
        let mut guests = self.lock();
        if guests.get(&id).is_some_and(|t| t.pids.first().map(|p| p.0) == Some(pid)) {
            guests.remove(&id);
        }
    }

    /// The reported process of guest `id` if it runs.
    pub fn pid(&self, id: K) -> Option<u32> {
        let mut guests = self.lock();
        let alive = guests.get(&id).map(alive)?;
        if !alive {
            guests.remove(&id);
            return None;
        }
        guests.get(&id).and_then(|t| t.pids.first().map(|p| p.0))
    }

    /// Every guest that runs now with its reported process. The pidfds of all guests are
    /// checked in one `poll`; guests with an exited process are forgotten.
    pub fn running(&self) -> BTreeMap<K, u32> {
        self.running_rechecked(|_| Recheck::Gone)
    }

    /// [`RunningSet::running`] for engines whose guests may replace a process while they run
    /// (a container's init after a reboot inside it): a guest with an exited process is asked
    /// about once through `recheck`, which says whether it runs with new processes, is between
    /// two (kept, and asked again next time) or is gone.
    pub fn running_rechecked(&self, recheck: impl Fn(K) -> Recheck) -> BTreeMap<K, u32> {
        let mut guests = self.lock();
        let mut changed = Vec::new();
        {
            let mut fds = Vec::new();
            let mut owners = Vec::new();
            for (id, tracked) in guests.iter() {
                for (pid, fd) in &tracked.pids {
                    match fd {
                        Some(fd) => {
                            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                            owners.push(*id);
                        }
                        None if !pid_exists(*pid) => changed.push(*id),
                        None => {}
                    }
                }
            }
            let polled = loop {
                match poll(&mut fds, PollTimeout::ZERO) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other,
                }
            };
            match polled {
                Ok(0) => {}
                Ok(_) => {
                    for (fd, id) in fds.iter().zip(&owners) {
                        if fd.revents().is_some_and(|r| !r.is_empty()) {
                            changed.push(*id);
                        }
                    }
                }
                // Cannot poll (too many descriptors for the limit): ask per process.
                Err(_) => changed.extend(guests.iter().filter(|(_, t)| !alive(t)).map(|(id, _)| *id)),
            }
        }
        changed.dedup();
        let mut between = Vec::new();
        for id in changed {
            match recheck(id) {
                Recheck::Running(pids) => {
                    let tracked = Tracked::open(&pids);
                    // A process reported that has already exited (an init its monitor has
                    // not reaped yet, its pid file not yet removed) does not run: the guest
                    // is between two and asked about again next time.
                    if alive(&tracked) {
                        guests.insert(id, tracked);
                    } else {
                        between.push(id);
                    }
                }
                Recheck::NotNow => between.push(id),
                Recheck::Gone => {
                    guests.remove(&id);
                }
            }
        }
        guests
            .iter()
            .filter(|(id, _)| !between.contains(id))
            .filter_map(|(id, t)| Some((*id, t.pids.first()?.0)))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<K, Tracked>> {
        self.guests.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn pid_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    !matches!(kill(Pid::from_raw(pid), None), Err(nix::errno::Errno::ESRCH))
}

/// Whether every process of a guest still runs.
fn alive(tracked: &Tracked) -> bool {
    tracked.pids.iter().all(|(pid, fd)| match fd {
        Some(fd) => {
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        }
        None => pid_exists(*pid),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_killed_process_drops_out_at_once() {
        let mut child = Command::new("sleep").arg("60").spawn().expect("sleep runs");
        let other = Command::new("sleep").arg("60").spawn().expect("sleep runs");
        let set = RunningSet::default();
        set.insert(1u32, &[child.id()]);
        set.insert(2u32, &[other.id(), child.id()]);
        assert_eq!(set.running(), BTreeMap::from([(1, child.id()), (2, other.id())]));
        let pidfd = crate::process::pidfd_open(child.id() as i32).expect("pidfd");
        child.kill().expect("kill");
        // SIGKILL is delivered asynchronously: wait until the process has exited (a zombie,
        // not reaped yet, has exited all the same) before the set is asked.
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        assert_eq!(poll(&mut fds, PollTimeout::from(10_000u16)), Ok(1), "the child exits");
        assert_eq!(set.running(), BTreeMap::new(), "both guests depended on the killed process");
        assert_eq!(set.pid(1), None);
        child.wait().expect("reap");
        set.insert(3u32, &[other.id()]);
        assert_eq!(set.pid(3), Some(other.id()));
        set.remove(3, 12345);
        assert_eq!(set.pid(3), Some(other.id()), "a remove for another run keeps the guest");
        set.remove(3, other.id());
        assert_eq!(set.running(), BTreeMap::new());
        // A guest whose reported process is replaced while it runs.
        let mut first = Command::new("sleep").arg("60").spawn().expect("sleep runs");
        let second = Command::new("sleep").arg("60").spawn().expect("sleep runs");
        set.insert(4u32, &[first.id(), other.id()]);
        let pidfd = crate::process::pidfd_open(first.id() as i32).expect("pidfd");
        first.kill().expect("kill");
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        assert_eq!(poll(&mut fds, PollTimeout::from(10_000u16)), Ok(1), "the process exits");
        assert_eq!(set.running_rechecked(|_| Recheck::NotNow), BTreeMap::new(), "between two processes");
        // A recheck that still reports the exited (unreaped) process: not running.
        let stale = [first.id(), other.id()];
        assert_eq!(set.running_rechecked(|_| Recheck::Running(stale.to_vec())), BTreeMap::new(), "a stale report");
        let now = [second.id(), other.id()];
        assert_eq!(set.running_rechecked(|_| Recheck::Running(now.to_vec())), BTreeMap::from([(4, second.id())]));
        assert_eq!(set.running(), BTreeMap::from([(4, second.id())]), "the new process is watched");
        first.wait().expect("reap");
        for mut child in [second, other] {
            child.kill().expect("kill");
            child.wait().expect("reap");
        }
    }
}
