//! JWKS and PEM key documents (what a key file or a fetched jwks_uri may hold).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_tfgate_module::jwt::KeySet;

fuzz_target!(|data: &[u8]| {
    if let Ok((keys, skipped)) = KeySet::parse(data) {
        // Every key kept or skipped is accounted for, and a merge keeps them all.
        let merged = KeySet::merge([&keys, &keys]);
        assert_eq!(merged.keys().len(), 2 * keys.keys().len());
        let _ = skipped;
    }
});
