//! A journal segment as read back at load: after a crash, a full disk or a
//! bad sector its bytes can be anything. The reader must never panic, and
//! what it accepts must re-encode to exactly the bytes it accepted (checked
//! inside `fuzz_read_segment`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    ddns_engine::journal::fuzz_read_segment(bytes);
    // Most random inputs fail at the magic; also try them behind a valid
    // header of each version the reader accepts so the record parser sees them.
    for version in [1u8, 2] {
        let mut with_header = b"LDNSJRNL\x00\x00\x00\x00".to_vec();
        with_header[8] = version;
        with_header.extend_from_slice(bytes);
        ddns_engine::journal::fuzz_read_segment(&with_header);
    }
});
