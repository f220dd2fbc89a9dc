//! The TF Serving REST path grammar shared by the module and the daemon: never panics, and a
//! parsed path written back canonically parses to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tfgate_common::parse_rest_path;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = parse_rest_path(data) {
        let canonical = parsed.to_path();
        assert_eq!(parse_rest_path(canonical.as_bytes()).as_ref(), Ok(&parsed), "{canonical}");
    }
});
