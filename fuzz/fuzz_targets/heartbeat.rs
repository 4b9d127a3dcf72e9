//! Heartbeats, the message every agent sends every interval and the control
//! plane ingests first: decoded as MessagePack (even first byte) or JSON
//! (odd), round-tripped, then validated as the ingest does (against its own
//! agent id and a foreign one). Other envelopes are `envelope_*`'s.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = drover_fuzz::split(data) else {
        return;
    };
    let format = if which % 2 == 0 {
        drover_fuzz::Format::MessagePack
    } else {
        drover_fuzz::Format::Json
    };
    // Type 1 of `envelope` is the heartbeat (decode, round trip, validate).
    drover_fuzz::envelope(1, rest, format);
});
