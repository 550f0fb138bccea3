//! Terminals: the window size of a tty (TIOCGWINSZ/TIOCSWINSZ), which a program run in a fresh
//! pty on the caller's behalf should get too, and taking a controlling terminal (TIOCSCTTY).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

nix::ioctl_read_bad!(ioc_get_winsize, libc::TIOCGWINSZ, libc::winsize);

/// The size of the terminal `fd` refers to, as (rows, columns); an error if it is no terminal.
pub fn window_size(fd: BorrowedFd<'_>) -> io::Result<(u16, u16)> {
    let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: `fd` is open for the duration of the call (it is borrowed) and `size` is a valid,
    // writable `struct winsize`, the only memory TIOCGWINSZ writes.
    unsafe { ioc_get_winsize(fd.as_raw_fd(), &mut size) }?;
    Ok((size.ws_row, size.ws_col))
}

/// Makes the terminal `fd` the controlling terminal of this (session leader) process.
pub fn set_controlling_terminal(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal).
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Sets a terminal's size.
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer, which is valid for the call.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, std::ptr::addr_of!(size)) };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_file_has_no_window_size() {
        let file = tempfile::tempfile().expect("a temporary file");
        let err = window_size(file.as_fd()).expect_err("a file is no terminal");
        assert_eq!(err.raw_os_error(), Some(libc::ENOTTY));
    }
}
