//! Admission control: how much of hearthd one unprivileged peer, and all of them together, may
//! hold — connections (each costs a descriptor) and bytes of frames still arriving (each costs
//! memory). Root is never counted: whatever unprivileged peers do, `root@pam` gets in.
//!
//! **Architecture invariant:** unprivileged peers cannot exhaust hearthd. Every connection of a
//! uid other than 0 holds an [`Admission`] ticket from accept to close, and every frame buffer
//! it grows is reserved against the same ticket first; a peer over a limit is refused with a
//! `Busy` error frame, never queued.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_proto::{ErrorKind, ErrorReply};

/// Connections one unprivileged uid may hold open at once. Every CLI call takes one connection
/// for its duration, so this is a user's parallelism (`xargs -P`, several terminals), with room
/// to spare; a peer that opens more only wants to use up descriptors.
pub const CONNECTIONS_PER_UID: usize = 128;

/// Connections all unprivileged uids together may hold open. Bounds what several users (or one
/// user who controls several uids) can take; [`serve`](crate::serve) lowers it further to half
/// of the descriptor limit, so root, guests' sockets, task logs and image files always have
/// descriptors left.
pub const CONNECTIONS_UNPRIVILEGED: usize = 1024;

/// Bytes of request frames one unprivileged uid may have in flight (received, not yet parsed).
/// Two maximum-size frames: real requests are a few hundred bytes, so this only stops a peer
/// from making hearthd hold many large frames at once.
pub const FRAME_BYTES_PER_UID: usize = 2 * hearth_proto::MAX_FRAME;

/// Bytes of request frames all unprivileged uids together may have in flight.
pub const FRAME_BYTES_UNPRIVILEGED: usize = 8 * hearth_proto::MAX_FRAME;

/// How long a client may take from connecting to the end of its Hello frame.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a frame may take from its first byte to its last (and the files a request carries
/// to arrive after it). A local client writes a whole frame at once; one that trickles it only
/// wants to hold a buffer.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// The limits [`serve`](crate::serve) enforces. [`Default`] holds the constants above; tests
/// pass smaller ones to reach the limits quickly.
#[derive(Clone, Debug)]
pub struct ServeLimits {
    /// Open connections per unprivileged uid.
    pub connections_per_uid: usize,
    /// Open connections of all unprivileged uids together.
    pub connections_unprivileged: usize,
    /// Frame bytes in flight per unprivileged uid.
    pub frame_bytes_per_uid: usize,
    /// Frame bytes in flight of all unprivileged uids together.
    pub frame_bytes_unprivileged: usize,
    /// From connecting to the end of the Hello frame.
    pub hello_timeout: Duration,
    /// From one answer to the first byte of the next request (every caller, root too).
    pub idle_timeout: Duration,
    /// From a frame's first byte to its last.
    pub frame_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> ServeLimits {
        ServeLimits {
            connections_per_uid: CONNECTIONS_PER_UID,
            connections_unprivileged: CONNECTIONS_UNPRIVILEGED,
            frame_bytes_per_uid: FRAME_BYTES_PER_UID,
            frame_bytes_unprivileged: FRAME_BYTES_UNPRIVILEGED,
            hello_timeout: HELLO_TIMEOUT,
            idle_timeout: hearth_proto::IDLE_TIMEOUT,
            frame_timeout: FRAME_TIMEOUT,
        }
    }
}

impl ServeLimits {
    /// These limits within a budget of `descriptors` (the soft `RLIMIT_NOFILE`): unprivileged
    /// connections get at most half of it, the rest stays for root and the work itself.
    pub fn within_descriptors(mut self, descriptors: u64) -> ServeLimits {
        let half = usize::try_from(descriptors / 2).unwrap_or(usize::MAX);
        self.connections_unprivileged = self.connections_unprivileged.min(half);
        self.connections_per_uid = self.connections_per_uid.min(self.connections_unprivileged);
        self
    }
}

#[derive(Debug, Default)]
struct Usage {
    connections: usize,
    frame_bytes: usize,
}

#[derive(Debug, Default)]
struct Counts {
    per_uid: HashMap<u32, Usage>,
    total: Usage,
    /// Connections refused since the last warning about refusals.
    refused: usize,
    last_warning: Option<std::time::Instant>,
}

/// How often refusals are logged at most: a flood of connections must not become a flood of
/// log lines.
const REFUSAL_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// The shared counts of what unprivileged peers hold.
#[derive(Debug)]
pub struct Admission {
    limits: ServeLimits,
    counts: Mutex<Counts>,
}

/// One admitted connection; counted until dropped.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    /// `None` for root, who is never counted.
    uid: Option<u32>,
}

/// Frame bytes reserved for one connection's buffer; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    admission: Arc<Admission>,
    uid: Option<u32>,
    bytes: usize,
}

impl Admission {
    pub fn new(limits: ServeLimits) -> Arc<Admission> {
        Arc::new(Admission { limits, counts: Mutex::new(Counts::default()) })
    }

    pub fn limits(&self) -> &ServeLimits {
        &self.limits
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent even if a holder panicked: every change is one statement.
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a new connection of `uid`, or says which limit it would break.
    pub fn admit(self: &Arc<Admission>, uid: u32) -> Result<Ticket, ErrorReply> {
        if uid == 0 {
            return Ok(Ticket { admission: Arc::clone(self), uid: None });
        }
        let mut counts = self.counts();
        let mine = counts.per_uid.get(&uid).map_or(0, |u| u.connections);
        let refusal = if mine >= self.limits.connections_per_uid {
            Some(format!(
                "uid {uid} already has {mine} connections open to hearthd, the most one user may hold; \
                 close some and try again"
            ))
        } else if counts.total.connections >= self.limits.connections_unprivileged {
            Some(format!(
                "hearthd already serves {} connections of unprivileged users, the most it takes; try again later",
                counts.total.connections
            ))
        } else {
            None
        };
        if let Some(message) = refusal {
            counts.refused += 1;
            let now = std::time::Instant::now();
            if counts.last_warning.is_none_or(|last| now.duration_since(last) >= REFUSAL_WARNING_INTERVAL) {
                tracing::warn!(uid, refused = counts.refused, "refusing connections: {message}");
                counts.refused = 0;
                counts.last_warning = Some(now);
            }
            return Err(ErrorReply::new(ErrorKind::Busy, message));
        }
        counts.per_uid.entry(uid).or_default().connections += 1;
        counts.total.connections += 1;
        Ok(Ticket { admission: Arc::clone(self), uid: Some(uid) })
    }

    /// How many connections unprivileged peers hold now, and of them `uid`.
    pub fn connections(&self, uid: u32) -> (usize, usize) {
        let counts = self.counts();
        (counts.total.connections, counts.per_uid.get(&uid).map_or(0, |u| u.connections))
    }
}

impl Ticket {
    /// An empty reservation to grow a frame buffer under.
    pub fn reservation(&self) -> Reservation {
        Reservation { admission: Arc::clone(&self.admission), uid: self.uid, bytes: 0 }
    }

    pub fn limits(&self) -> &ServeLimits {
        &self.admission.limits
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Some(uid) = self.uid else { return };
        let mut counts = self.admission.counts();
        counts.total.connections -= 1;
        if let Some(usage) = counts.per_uid.get_mut(&uid) {
            usage.connections -= 1;
            if usage.connections == 0 && usage.frame_bytes == 0 {
                counts.per_uid.remove(&uid);
            }
        }
    }
}

impl Reservation {
    /// Reserves `more` bytes on top of what this reservation holds, or says which limit that
    /// would break (and reserves nothing).
    pub fn grow(&mut self, more: usize) -> Result<(), ErrorReply> {
        let Some(uid) = self.uid else {
            self.bytes += more;
            return Ok(());
        };
        let limits = &self.admission.limits;
        let mut counts = self.admission.counts();
        let mine = counts.per_uid.get(&uid).map_or(0, |u| u.frame_bytes);
        if mine + more > limits.frame_bytes_per_uid {
            return Err(ErrorReply::new(
                ErrorKind::Busy,
                format!(
                    "uid {uid} is already sending {mine} bytes of requests to hearthd, the most one user may have \
                     in flight; try again"
                ),
            ));
        }
        if counts.total.frame_bytes + more > limits.frame_bytes_unprivileged {
            return Err(ErrorReply::new(
                ErrorKind::Busy,
                "hearthd is already receiving as many bytes of requests from unprivileged users as it takes; \
                 try again later",
            ));
        }
        counts.per_uid.entry(uid).or_default().frame_bytes += more;
        counts.total.frame_bytes += more;
        self.bytes += more;
        Ok(())
    }

    /// The bytes this reservation holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let Some(uid) = self.uid else { return };
        if self.bytes == 0 {
            return;
        }
        let mut counts = self.admission.counts();
        counts.total.frame_bytes -= self.bytes;
        if let Some(usage) = counts.per_uid.get_mut(&uid) {
            usage.frame_bytes -= self.bytes;
            if usage.connections == 0 && usage.frame_bytes == 0 {
                counts.per_uid.remove(&uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Arc<Admission> {
        Admission::new(ServeLimits {
            connections_per_uid: 2,
            connections_unprivileged: 3,
            frame_bytes_per_uid: 100,
            frame_bytes_unprivileged: 150,
            ..ServeLimits::default()
        })
    }

    #[test]
    fn connections_are_limited_per_uid_and_in_total_but_never_for_root() {
        let admission = small();
        let a1 = admission.admit(1000).expect("first");
        let _a2 = admission.admit(1000).expect("second");
        let err = admission.admit(1000).expect_err("third of one uid");
        assert_eq!(err.kind, ErrorKind::Busy);
        assert!(err.message.contains("uid 1000 already has 2 connections"), "{}", err.message);
        let _b1 = admission.admit(1001).expect("another uid");
        let err = admission.admit(1002).expect_err("over the total");
        assert!(err.message.contains("3 connections of unprivileged users"), "{}", err.message);
        let roots: Vec<Ticket> = (0..10).map(|_| admission.admit(0).expect("root always gets in")).collect();
        assert_eq!(admission.connections(1000), (3, 2));
        drop(a1);
        assert_eq!(admission.connections(1000), (2, 1));
        let _a3 = admission.admit(1000).expect("a slot was freed");
        drop(roots);
        assert_eq!(admission.connections(1000), (3, 2));
    }

    #[test]
    fn frame_bytes_are_limited_and_released() {
        let admission = small();
        let a = admission.admit(1000).expect("a");
        let b = admission.admit(1001).expect("b");
        let mut ra = a.reservation();
        ra.grow(60).expect("within");
        ra.grow(40).expect("exactly the per-uid limit");
        let err = ra.grow(1).expect_err("over the per-uid limit");
        assert_eq!(err.kind, ErrorKind::Busy);
        assert_eq!(ra.bytes(), 100);
        let mut rb = b.reservation();
        rb.grow(50).expect("within the total");
        rb.grow(1).expect_err("over the total");
        drop(ra);
        rb.grow(50).expect("released bytes are free again");
        let mut root = admission.admit(0).expect("root").reservation();
        root.grow(1 << 30).expect("root is not counted");
        drop(rb);
        drop((a, b));
        assert!(admission.counts().per_uid.is_empty(), "nothing is left counted");
        assert_eq!(admission.counts().total.frame_bytes, 0);
    }

    #[test]
    fn descriptor_budget_lowers_the_total() {
        let limits = ServeLimits::default().within_descriptors(1024);
        assert_eq!(limits.connections_unprivileged, 512);
        assert_eq!(limits.connections_per_uid, CONNECTIONS_PER_UID);
        let limits = ServeLimits::default().within_descriptors(100);
        assert_eq!((limits.connections_unprivileged, limits.connections_per_uid), (50, 50));
        let limits = ServeLimits::default().within_descriptors(1 << 20);
        assert_eq!(limits.connections_unprivileged, CONNECTIONS_UNPRIVILEGED);
    }
}
