//! The agent ↔ rootd Unix socket: a byte stream cut into frames by the
//! length-delimited codec (4-byte big-endian length, at most
//! `MAX_FRAME_BYTES`), each frame decoded as rootd reads it (`RootRequest`)
//! and as the agent reads it (`RootFrame`), with a stable round trip.
//! What rootd does with a request is not fuzzed here.
#![no_main]

use bus_schema::rootd_proto::{self, RootFrame, RootRequest};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = rootd_proto::codec();
    let mut buf = BytesMut::from(data);
    // Every frame takes at least its 4-byte header, so this loop ends.
    for _ in 0..=data.len() / 4 {
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => {
                let limit = rootd_proto::MAX_FRAME_BYTES;
                assert!(frame.len() <= limit, "a frame over the limit got through");
                if let Ok(r) = bus_schema::codec::decode_limited::<RootRequest>(&frame, None, limit)
                {
                    let again = bus_schema::codec::decode_limited::<RootRequest>(
                        &bus_schema::encode(&r),
                        None,
                        usize::MAX,
                    )
                    .expect("a request re-encoded decodes");
                    assert_eq!(bus_schema::encode(&again), bus_schema::encode(&r));
                }
                let _ = bus_schema::codec::decode_limited::<RootFrame>(&frame, None, limit);
            }
            Ok(None) | Err(_) => break,
        }
    }
    // Past the header, the frame and request decoders also see the bytes
    // directly (a frame whose header was right).
    drover_fuzz::msgpack::<RootRequest>(data);
});
