//! Job submissions on `drover.jobs.submit`: the `SignedJob` envelope checked
//! against a fixed automation key, and the `JobSubmission` behind a valid
//! signature (the fuzzed body is signed, so `open_job`'s decoder is
//! reached), with a stable round trip. The selector inside is
//! `selector`'s target; which keys may submit is the control plane's.
#![no_main]

use bus_schema::jobs::JobSubmission;
use bus_schema::signing::automation::{open_job, SignedJob};
use ed25519_dalek::Signer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = drover_fuzz::split(data) else {
        return;
    };
    let (key, public) = drover_fuzz::automation_key();
    if which % 2 == 0 {
        if let Some(signed) = drover_fuzz::msgpack::<SignedJob>(rest) {
            let _ = open_job(&public, &signed);
        }
    } else {
        let signed = SignedJob {
            v: bus_schema::signing::PROTOCOL_VERSION,
            body: rest.to_vec(),
            signature: key.sign(rest).to_bytes().to_vec(),
            key_id: String::new(),
        };
        if let Ok(job) = open_job(&public, &signed) {
            let again: JobSubmission = bus_schema::codec::decode_msgpack(&bus_schema::encode(&job))
                .expect("a job re-encoded decodes");
            assert_eq!(bus_schema::encode(&again), bus_schema::encode(&job));
        }
    }
});
