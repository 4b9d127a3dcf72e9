//! Agent release manifests (JSON, signed by the release key) as agents,
//! rootd and the control plane open them: an unsigned text checked against
//! a fixed key, and the manifest behind a valid signature (the fuzzed text
//! is signed, so the JSON decoder and `check` are reached). Downloading and
//! hashing the binary is not fuzzed here.
#![no_main]

use bus_schema::signing::release::ReleaseSigner;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = drover_fuzz::split(data) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let signer = ReleaseSigner::from_seed(&[13; 32]);
    let key = signer.public();
    if which % 2 == 0 {
        let _ = key.open(text, "AAAA");
    } else {
        let signature = drover_fuzz::sign_release_text(&[13; 32], text);
        if let Ok(m) = key.open(text, &signature) {
            let (again_text, again_sig) = signer.sign(&m).expect("a checked manifest signs");
            assert_eq!(key.open(&again_text, &again_sig).expect("opens"), m);
        }
    }
});
