//! The request parser: any payload either fails to decode or decodes to a value that encodes
//! and decodes back to itself, so what hearthd authorizes is exactly what it then handles.

#![no_main]

use hearth_proto::{ClientHello, Request, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A value that decodes may still be too large to send back (a 16 MiB string): skip those.
    if let Ok(request) = decode::<Request>(data)
        && let Ok(frame) = encode(&request)
    {
        let again: Request = decode(&frame[4..]).expect("an encoded request decodes");
        assert_eq!(again, request, "a request changes on its way through the wire format");
    }
    if let Ok(hello) = decode::<ClientHello>(data)
        && let Ok(frame) = encode(&hello)
    {
        let again: ClientHello = decode(&frame[4..]).expect("an encoded Hello decodes");
        assert_eq!(again, hello, "a Hello changes on its way through the wire format");
    }
});
