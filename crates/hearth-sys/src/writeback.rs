//! Starting write-back of a file range early (`sync_file_range(2)`), so that a long
//! sequential write does not leave gigabytes of dirty pages for one final `fdatasync`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Asks the kernel to start writing `len` bytes at `offset` of `file` to its device, without
/// waiting for them (`SYNC_FILE_RANGE_WRITE`). It promises no durability: a later
/// `fdatasync` still does; it only lets write-back run while the caller produces more data.
pub fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (libc::off64_t::try_from(offset), libc::off64_t::try_from(len)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    // SAFETY: the descriptor is owned by `file` and open for the whole call; the call takes
    // no pointers.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn starts_writeback_of_a_written_range() {
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(&[7u8; 8192]).expect("write");
        start_writeback(&file, 0, 8192).expect("sync_file_range on a regular file");
        assert_eq!(
            start_writeback(&file, u64::MAX, 1).expect_err("offset beyond off64_t").kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
