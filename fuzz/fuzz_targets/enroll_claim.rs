//! Enrolment, from both ends: the control plane's reading of a claim
//! (`AgentSigned` envelope, then the claim behind the agent's signature —
//! the fuzzed body is signed with a fixed agent key so that decoder is
//! reached), and the agent's reading of an answer (`open_answer`, sealed to
//! a fixed reply key). Whether a claim is approved is not decoding.
#![no_main]

use bus_schema::enroll::{self, EnrollClaim, EnrollReply};
use bus_schema::signing::agent::{agent_open, AgentSigned};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = drover_fuzz::split(data) else {
        return;
    };
    let agent = drover_fuzz::agent_key();
    match which % 4 {
        0 => {
            // The envelope as it arrives, checked against the fixed key.
            if let Some(signed) = drover_fuzz::msgpack::<AgentSigned>(rest) {
                let _ = agent_open::<EnrollClaim>(&agent.public_key(), &signed);
            }
        }
        1 => {
            // The claim behind a valid signature.
            let signed = AgentSigned {
                v: bus_schema::signing::PROTOCOL_VERSION,
                body: rest.to_vec(),
                signature: agent.sign(rest).expect("signs"),
            };
            if let Ok(claim) = agent_open::<EnrollClaim>(&agent.public_key(), &signed) {
                let again: EnrollClaim =
                    bus_schema::codec::decode_msgpack(&bus_schema::encode(&claim))
                        .expect("a claim re-encoded decodes");
                assert_eq!(bus_schema::encode(&again), bus_schema::encode(&claim));
            }
        }
        2 => {
            // An answer on the inbox, as the agent opens it.
            let _ = enroll::open_answer(rest, &drover_fuzz::reply_key(), "UA", 1);
        }
        _ => {
            // The reply inside a genuine seal.
            let me = drover_fuzz::reply_key();
            let sender = nkeys::XKey::new_from_raw([5; 32]);
            let Ok(sealed) = sender.seal(rest, &me) else {
                return;
            };
            let answer = bus_schema::encode(&enroll::EnrollAnswer::Sealed {
                sender: sender.public_key(),
                sealed,
            });
            if let Ok(r) = enroll::open_answer(&answer, &me, "UA", 1) {
                let r: EnrollReply = r;
                assert_eq!((r.agent_id.as_str(), r.claim_at), ("UA", 1));
            }
        }
    }
});
