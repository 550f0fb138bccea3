//! The frame reader against a hostile byte stream: a client's side of a whole conversation
//! (a Hello, then requests), and a server's answers as a client reads them. Whatever arrives,
//! reading ends in a frame or an error, never a panic, and never allocates more than arrived
//! plus the decoder's own overhead.

#![no_main]

use hearth_proto::{ClientHello, Request, Response, read_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // As hearthd reads a client: the Hello, then requests until the stream ends or breaks.
    let mut stream = data;
    if let Ok(Some(_)) = read_frame::<ClientHello>(&mut stream) {
        while let Ok(Some(_)) = read_frame::<Request>(&mut stream) {}
    }
    // As a client reads hearthd's answers.
    let mut stream = data;
    while let Ok(Some(_)) = read_frame::<Response>(&mut stream) {}
});
