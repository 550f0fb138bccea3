//! The consoles a monitor holds: the pty master of `/dev/console` and of each `/dev/ttyN`, the
//! last 64 KiB each printed (replayed to whoever attaches, so nothing printed before an attach
//! is lost), and one attached client per console on a Unix socket.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::pty::{OpenptyResult, openpty};

/// How much output a console keeps for the next client.
const BACKLOG: usize = 64 * 1024;

/// A pty pair for one console; the slave goes into the container.
#[derive(Debug)]
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

impl Pty {
    /// A new pty whose slave belongs to the container's root (`owner`), mode 0620.
    pub fn open(owner: Option<(u32, u32)>) -> io::Result<Pty> {
        let OpenptyResult { master, slave } = openpty(None, None)?;
        if let Some((uid, gid)) = owner {
            nix::unistd::fchown(
                &slave,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid + 5)),
            )?;
        }
        nix::sys::stat::fchmod(&slave, nix::sys::stat::Mode::from_bits_truncate(0o620))?;
        Ok(Pty { master, slave })
    }

    /// The slave's path on the host's devpts and its device number.
    pub fn slave_path(&self) -> (PathBuf, u64) {
        let path = nix::unistd::ttyname(&self.slave).unwrap_or_default();
        let rdev = nix::sys::stat::fstat(&self.slave).map_or(0, |st| st.st_rdev);
        (path, rdev)
    }
}

/// One console as the monitor serves it.
#[derive(Debug)]
pub struct Console {
    pub master: std::fs::File,
    pub listener: UnixListener,
    pub socket_path: PathBuf,
    pub client: Option<UnixStream>,
    backlog: VecDeque<u8>,
    /// The container side is gone (EIO on the master).
    pub hung_up: bool,
}

impl Console {
    /// Serves `master` on a new socket at `socket_path` (mode 0600; hearthd connects to it).
    pub fn serve(master: OwnedFd, socket_path: &Path) -> io::Result<Console> {
        let _ = std::fs::remove_file(socket_path);
        let listener = UnixListener::bind(socket_path)?;
        std::fs::set_permissions(socket_path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(Console {
            master: std::fs::File::from(master),
            listener,
            socket_path: socket_path.to_owned(),
            client: None,
            backlog: VecDeque::new(),
            hung_up: false,
        })
    }

    /// Swaps in a new pty master after a reboot, keeping socket, client and backlog.
    pub fn replace_master(&mut self, master: OwnedFd) {
        self.master = std::fs::File::from(master);
        self.hung_up = false;
    }

    /// The descriptors to poll: master (unless hung up), listener, client.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds = vec![self.listener.as_fd()];
        if !self.hung_up {
            fds.push(self.master.as_fd());
        }
        if let Some(client) = &self.client {
            fds.push(client.as_fd());
        }
        fds
    }

    /// Output from the container: keep it and pass it on.
    pub fn on_master(&mut self) {
        let mut buf = [0u8; 8192];
        match self.master.read(&mut buf) {
            Ok(0) | Err(_) => self.hung_up = true,
            Ok(n) => {
                self.backlog.extend(&buf[..n]);
                let excess = self.backlog.len().saturating_sub(BACKLOG);
                self.backlog.drain(..excess);
                if let Some(client) = &mut self.client
                    && client.write_all(&buf[..n]).is_err()
                {
                    self.client = None;
                }
            }
        }
    }

    /// A new client replaces the old one and first gets the backlog.
    pub fn on_listener(&mut self) {
        while let Ok((mut stream, _)) = self.listener.accept() {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_write_timeout(Some(std::time::Duration::from_secs(2)));
            let (a, b) = self.backlog.as_slices();
            if stream.write_all(a).and_then(|()| stream.write_all(b)).is_ok() {
                self.client = Some(stream);
            }
        }
    }

    /// Input from the client goes to the container.
    pub fn on_client(&mut self) {
        let Some(client) = &mut self.client else { return };
        let mut buf = [0u8; 4096];
        match client.read(&mut buf) {
            Ok(0) | Err(_) => self.client = None,
            Ok(n) => {
                if !self.hung_up {
                    let _ = self.master.write_all(&buf[..n]);
                }
            }
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket_path);
    }
}
