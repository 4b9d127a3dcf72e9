//! What a stack's database holds at rest, for tests that assert a secret is
//! never stored in clear: the SQLite file with its WAL and shared-memory
//! files, or a plain-text `pg_dump` of the stack's PostgreSQL database (text
//! columns as written, `bytea` as hex — [`Stack::database_holds`] searches
//! both forms). It does not decide which backend a stack runs on
//! ([`crate::common::Stack`] and `deploy/postgres.rs` do).

use std::process::{Command, Stdio};

use crate::common::*;

impl Stack {
    /// Every byte the database keeps: the `drover.db*` files on SQLite, the
    /// `pg_dump` output on PostgreSQL. Fails the test when nothing
    /// substantial was read (so "not found" is never a read that failed).
    pub fn database_at_rest(&self) -> Vec<u8> {
        let bytes = match test_database_url(&self.data_dir) {
            Some(url) => {
                let out = Command::new(pg_program("pg_dump"))
                    .args(["--no-owner", "--dbname", &url])
                    .stdin(Stdio::null())
                    .output()
                    .expect("running pg_dump");
                assert!(
                    out.status.success(),
                    "pg_dump failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                out.stdout
            }
            None => {
                let mut bytes = Vec::new();
                for f in std::fs::read_dir(&self.data_dir).unwrap() {
                    let p = f.unwrap().path();
                    let name = p.file_name().unwrap().to_string_lossy().to_string();
                    if name.starts_with("drover.db") {
                        bytes.extend(std::fs::read(&p).unwrap());
                    }
                }
                bytes
            }
        };
        assert!(
            bytes.len() > 4096,
            "the database was read ({} bytes)",
            bytes.len()
        );
        bytes
    }

    /// Whether `needle` is stored anywhere in the database, as raw bytes or
    /// (on PostgreSQL's dump) as the hex of a `bytea` value.
    pub fn database_holds(&self, needle: &[u8]) -> bool {
        let at_rest = self.database_at_rest();
        let hex: Vec<u8> = needle
            .iter()
            .flat_map(|b| format!("{b:02x}").into_bytes())
            .collect();
        [needle.to_vec(), hex]
            .iter()
            .any(|n| !n.is_empty() && at_rest.windows(n.len()).any(|w| w == n.as_slice()))
    }
}
