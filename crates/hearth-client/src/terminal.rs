//! A console on this terminal: the relay `vmctl terminal` and `ctctl console` share, and the
//! raw mode and window size `ctctl exec` needs.
//!
//! hearthd opens the guest's console and hands the connection over; from then on the client
//! relays bytes without hearthd: the console's output to stdout on a thread of its own, stdin to
//! the console on the main thread. The main thread waits with poll() on stdin, on a socket the
//! output thread closes when it ends, and on a signalfd for SIGINT, SIGTERM and SIGHUP, so
//! whichever comes first ends the session and the terminal's settings are always restored.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::thread;

use anyhow::{Context, anyhow};
use hearth_proto::Request;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};

/// Ctrl+O, qm's default escape: leaves the console and is not sent to the guest.
pub const ESCAPE: u8 = 0x0f;

/// Asks hearthd, as `bin`, for a guest's console with `request` (`what` names it in errors:
/// "opening tty2 of CT 200"), then relays it on this terminal as [`attach`] does, printing
/// `banner` first. hearthd is no longer involved once the console is handed over.
pub fn open(bin: &str, request: &Request, what: impl Fn() -> String, banner: &str) -> anyhow::Result<()> {
    let mut client = crate::cli::connect(bin)?;
    let console = client.call_for_file(request).with_context(what)?;
    drop(client);
    attach(console, banner)
}

/// Connects this process's stdin and stdout to `console` until the user leaves with Ctrl+O,
/// the guest closes the console, or a signal arrives.
///
/// On a terminal, stdin is switched to raw mode for the session (every key, Ctrl+C included,
/// goes to the guest) after `banner` is printed to stderr. Otherwise stdin is sent as it is,
/// Ctrl+O included, until it ends, and output is copied until the guest closes the console.
/// SIGINT, SIGTERM and SIGHUP end the session and then the process the usual way, after the
/// terminal's settings are restored.
pub fn attach(console: OwnedFd, banner: &str) -> anyhow::Result<()> {
    let stdin = io::stdin();
    let interactive = stdin.is_terminal();
    let input = stdin.as_fd().try_clone_to_owned().context("duplicating standard input")?;
    // Declared before the raw mode so that it is dropped after it: a signal that ends the
    // session is delivered only once the terminal is back to normal.
    let signals = StopSignals::block().context("blocking SIGINT, SIGTERM and SIGHUP")?;
    let raw_mode = if interactive {
        eprintln!("{banner}");
        Some(RawMode::enter(stdin.as_fd()).context("switching the terminal to raw mode")?)
    } else {
        None
    };
    let mode = if interactive { InputMode::Keyboard } else { InputMode::Script };
    let ended = relay(UnixStream::from(console), input, io::stdout(), mode, Some(signals.fd.as_fd()));
    drop(raw_mode);
    drop(signals);
    ended.map(|_| ())
}

/// The size of the caller's terminal as (rows, columns), from stdout or else stdin; `None`
/// when neither is a terminal.
pub fn window_size() -> Option<(u16, u16)> {
    [io::stdout().as_fd(), io::stdin().as_fd()]
        .into_iter()
        .find_map(|fd| hearth_sys::tty::window_size(fd).ok())
        .filter(|&(rows, cols)| rows > 0 && cols > 0)
}

/// How standard input is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InputMode {
    /// A person at a terminal in raw mode: Ctrl+O leaves, a hangup leaves.
    Keyboard,
    /// Anything else: sent as is until it ends; the session goes on until the guest closes.
    Script,
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The user typed Ctrl+O or the terminal went away.
    Detached,
    /// The guest side closed the console, or standard output went away.
    Closed,
    /// SIGINT, SIGTERM or SIGHUP arrived.
    Signalled,
}

/// Relays between `console` and `input`/`output` until one side ends.
fn relay(
    console: UnixStream,
    input: OwnedFd,
    output: impl Write + Send,
    mode: InputMode,
    stop: Option<BorrowedFd<'_>>,
) -> anyhow::Result<End> {
    let from_guest = console.try_clone().context("duplicating the console connection")?;
    // The output thread holds one end and drops it when it ends, which wakes the main thread.
    let (done_tx, done_rx) = UnixStream::pair().context("creating a socket pair")?;
    thread::scope(|scope| {
        let copier = scope.spawn(move || {
            let _done = done_tx;
            copy_output(from_guest, output)
        });
        let ended = forward_input(&console, &File::from(input), &done_rx, mode, stop);
        // Leaving first: shutting the connection down ends the output thread's read.
        let _ = console.shutdown(Shutdown::Both);
        let copied = copier.join().map_err(|_| anyhow!("the console output thread panicked"))?;
        let ended = ended?;
        copied?;
        Ok(ended)
    })
}

/// Copies what the guest writes to `output` until the guest closes the console or nobody reads
/// `output` any more.
fn copy_output(mut from_guest: UnixStream, mut output: impl Write) -> anyhow::Result<()> {
    let mut buf = [0u8; 8192];
    loop {
        let n = match from_guest.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e).context("reading from the console"),
        };
        match output.write_all(&buf[..n]).and_then(|()| output.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e).context("writing to standard output"),
        }
    }
}

/// Sends `input` to the console until the session ends; see [`InputMode`] for when.
fn forward_input(
    mut console: &UnixStream,
    mut input: &File,
    output_done: &UnixStream,
    mode: InputMode,
    stop: Option<BorrowedFd<'_>>,
) -> anyhow::Result<End> {
    let mut buf = [0u8; 4096];
    let mut input_open = true;
    loop {
        let mut fds = vec![PollFd::new(output_done.as_fd(), PollFlags::POLLIN)];
        if let Some(stop) = stop {
            fds.push(PollFd::new(stop, PollFlags::POLLIN));
        }
        let input_at = fds.len();
        if input_open {
            fds.push(PollFd::new(input.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            other => other.context("waiting for input")?,
        };
        let ready = |i: usize| fds.get(i).and_then(PollFd::revents).is_some_and(|events| !events.is_empty());
        if ready(0) {
            return Ok(End::Closed);
        }
        if stop.is_some() && ready(1) {
            return Ok(End::Signalled);
        }
        if !input_open || !ready(input_at) {
            continue;
        }
        let n = match input.read(&mut buf) {
            // In raw mode a terminal reads 0 bytes only when it hung up.
            Ok(0) if mode == InputMode::Keyboard => return Ok(End::Detached),
            Ok(0) => {
                input_open = false;
                continue;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading standard input"),
        };
        let escape_at = match mode {
            InputMode::Keyboard => buf[..n].iter().position(|&b| b == ESCAPE),
            InputMode::Script => None,
        };
        match console.write_all(&buf[..escape_at.unwrap_or(n)]) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset) => {
                return Ok(End::Closed);
            }
            Err(e) => return Err(e).context("writing to the console"),
        }
        if escape_at.is_some() {
            return Ok(End::Detached);
        }
    }
}

/// A terminal in raw mode; its previous settings come back when this is dropped, on every way
/// out of the caller, errors included.
#[derive(Debug)]
pub struct RawMode {
    terminal: OwnedFd,
    saved: Termios,
}

impl RawMode {
    /// Switches `terminal` to raw mode: no echo, no line editing, no signals from keys.
    pub fn enter(terminal: BorrowedFd<'_>) -> io::Result<RawMode> {
        let terminal = terminal.try_clone_to_owned()?;
        let saved = termios::tcgetattr(&terminal)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&terminal, SetArg::TCSANOW, &raw)?;
        Ok(RawMode { terminal, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(&self.terminal, SetArg::TCSANOW, &self.saved);
    }
}

/// SIGINT, SIGTERM and SIGHUP blocked and readable from a signalfd instead. Dropping this
/// unblocks them again: a signal that ended the session is still pending then and ends the process
/// the usual way, after everything dropped before it (the raw mode) was cleaned up.
#[derive(Debug)]
struct StopSignals {
    fd: SignalFd,
    previous: SigSet,
}

impl StopSignals {
    fn block() -> nix::Result<StopSignals> {
        let mut set = SigSet::empty();
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            set.add(signal);
        }
        // Blocked before the output thread starts, which inherits the mask, so that no thread
        // takes these signals the default way.
        let previous = set.thread_swap_mask(SigmaskHow::SIG_BLOCK)?;
        match SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
            Ok(fd) => Ok(StopSignals { fd, previous }),
            Err(e) => {
                let _ = previous.thread_set_mask();
                Err(e)
            }
        }
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        let _ = self.previous.thread_set_mask();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// The far ends of a relay running on its own thread.
    struct Session {
        /// What the guest side of the console sees and writes.
        vm: UnixStream,
        /// Standard input, as the user or a script would type it.
        typed: Option<UnixStream>,
        /// Standard output.
        printed: UnixStream,
        /// A stand-in for the signalfd.
        signal: UnixStream,
        ended: mpsc::Receiver<anyhow::Result<End>>,
    }

    fn session(mode: InputMode) -> Session {
        let (console, vm) = UnixStream::pair().unwrap();
        let (typed, input) = UnixStream::pair().unwrap();
        let (output, printed) = UnixStream::pair().unwrap();
        let (signal, stop) = UnixStream::pair().unwrap();
        for end in [&vm, &printed] {
            end.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        }
        let (tx, ended) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(relay(console, input.into(), output, mode, Some(stop.as_fd())));
        });
        Session { vm, typed: Some(typed), printed, signal, ended }
    }

    impl Session {
        fn type_in(&self, bytes: &[u8]) {
            self.typed.as_ref().unwrap().write_all(bytes).unwrap();
        }

        fn end(&self) -> End {
            self.ended.recv_timeout(Duration::from_secs(10)).unwrap().unwrap()
        }
    }

    fn read_exactly(mut from: &UnixStream, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        from.read_exact(&mut buf).unwrap();
        buf
    }

    fn read_to_end(mut from: &UnixStream) -> Vec<u8> {
        let mut buf = Vec::new();
        from.read_to_end(&mut buf).unwrap();
        buf
    }

    #[test]
    fn a_script_types_until_its_input_ends_and_reads_until_the_vm_closes() {
        let mut s = session(InputMode::Script);
        // Ctrl+O is just a byte for scripts.
        s.type_in(b"ls\x0f\n");
        assert_eq!(read_exactly(&s.vm, 4), b"ls\x0f\n");
        drop(s.typed.take());
        // Input has ended; output keeps flowing.
        (&s.vm).write_all(b"boot\r\nlogin: ").unwrap();
        assert_eq!(read_exactly(&s.printed, 13), b"boot\r\nlogin: ");
        assert!(s.ended.try_recv().is_err(), "the relay outlives its input");
        s.vm.shutdown(Shutdown::Both).unwrap();
        assert_eq!(s.end(), End::Closed);
        assert_eq!(read_to_end(&s.printed), b"");
    }

    #[test]
    fn ctrl_o_detaches_without_being_sent() {
        let s = session(InputMode::Keyboard);
        s.type_in(b"ab");
        assert_eq!(read_exactly(&s.vm, 2), b"ab");
        s.type_in(b"cd\x0fef");
        assert_eq!(s.end(), End::Detached);
        // The guest saw everything before Ctrl+O, then the connection closed.
        assert_eq!(read_to_end(&s.vm), b"cd");
    }

    #[test]
    fn a_terminal_that_goes_away_detaches() {
        let mut s = session(InputMode::Keyboard);
        drop(s.typed.take());
        assert_eq!(s.end(), End::Detached);
    }

    #[test]
    fn a_signal_ends_the_session() {
        let s = session(InputMode::Script);
        (&s.signal).write_all(b"x").unwrap();
        assert_eq!(s.end(), End::Signalled);
        assert_eq!(read_to_end(&s.vm), b"");
    }

    #[test]
    fn the_vm_closing_ends_a_keyboard_session() {
        let s = session(InputMode::Keyboard);
        (&s.vm).write_all(b"bye").unwrap();
        s.vm.shutdown(Shutdown::Both).unwrap();
        assert_eq!(s.end(), End::Closed);
        assert_eq!(read_to_end(&s.printed), b"bye");
    }
}
