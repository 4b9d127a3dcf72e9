//! Loopback ports for the servers a test starts ([`free_port`]): one place
//! that decides which port a nats-server, `drover serve`, PostgreSQL or a
//! receiver listens on. It does not start anything.
//!
//! Why not simply `bind("127.0.0.1:0")` and hand the port on: between that
//! probe and the server's own bind, the kernel may give the same port to
//! another test's probe (tests of one binary run in parallel) or to an
//! outgoing connection. Two servers of two tests then race for one port, the
//! loser exits, and its test talks to the winner: one CI run saw
//! `drover serve` answer a test's health check and then refuse its admin
//! token ("unknown or revoked token"), because the server was another test's.

use std::collections::HashSet;
use std::sync::Mutex;

/// Ports handed out by this test process; never handed out twice.
static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Lowest port [`free_port`] hands out (above the well-known and most
/// registered service ports).
const LOWEST: u16 = 10_000;

/// The kernel's ephemeral range, `/proc/sys/net/ipv4/ip_local_port_range`
/// ("32768\t60999" by default): the ports `bind(0)` and outgoing connections
/// get. `None` when unreadable.
fn ephemeral_range() -> Option<(u16, u16)> {
    let s = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
    Some((it.next()??, it.next()??))
}

/// Whether nothing listens on `127.0.0.1:port` now (a bind succeeds; std
/// sets `SO_REUSEADDR`, as the servers do, so old `TIME_WAIT` connections
/// do not count).
fn bindable(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A loopback TCP port nothing listens on, for a server the test starts
/// next. It comes from below the kernel's ephemeral range, so neither a
/// `bind(0)` nor an outgoing connection can take it before that server
/// binds, and this process never hands the same port out twice, so two
/// tests running side by side never get the same one. The search starts at
/// a random place in the range (test binaries run one after another, and a
/// previous binary's port may still be in `TIME_WAIT`) and tries each port
/// at most once. Panics when every port of the range is taken. Where the
/// ephemeral range leaves no room below it, falls back to the kernel's
/// choice (`bind(0)`), still never twice.
pub fn free_port() -> u16 {
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    let below = ephemeral_range().map_or(32_768, |(low, _)| low);
    if below > LOWEST + 1_000 {
        let span = u32::from(below - LOWEST);
        let start = uuid::Uuid::new_v4().as_u128() as u32 % span;
        for i in 0..span {
            let port = LOWEST + ((start + i) % span) as u16;
            if !given.contains(&port) && bindable(port) {
                given.insert(port);
                return port;
            }
        }
        panic!("no free loopback port in {LOWEST}..{below}: is something holding them all?");
    }
    for _ in 0..1_000 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if given.insert(port) {
            return port;
        }
    }
    panic!("bind(0) gave only ports this test process had already handed out");
}
