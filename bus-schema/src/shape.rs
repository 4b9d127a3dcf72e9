//! Structure pre-scans of untrusted bytes: how deep containers nest and how
//! many elements each declares, checked without recursion *before* serde
//! (whose decoders recurse once per level and can overflow a worker
//! thread's stack on a 1 KB message nested 1,000 deep).
//!
//! Owns only the walk over MessagePack markers and JSON brackets; it does
//! not say whether the bytes are otherwise valid (serde does that next), and
//! it does not define the limits: they come from the codec's `Limits`.

/// Why bytes were refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("nested deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("a collection declares {len} elements, the limit is {limit}")]
    TooLong { len: u64, limit: usize },
    #[error("a value declares {declared} bytes or elements but only {left} bytes follow")]
    Truncated { declared: u64, left: usize },
    #[error("byte 0x{marker:02x} at offset {at} is not a MessagePack marker")]
    BadMarker { marker: u8, at: usize },
    #[error("{0} bytes follow the value")]
    Trailing(usize),
    #[error("the input ends inside a value")]
    Unfinished,
}

/// What one MessagePack marker says follows it.
enum Next {
    /// A scalar: skip this many payload bytes.
    Skip(u64),
    /// A container of this many values (a map of `n` entries is `2n` values).
    Open { values: u64, declared: u64 },
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Reads a big-endian length of `n` bytes (1, 2 or 4).
    fn len(&mut self, n: usize) -> Result<u64, ShapeError> {
        if self.left() < n {
            return Err(ShapeError::Unfinished);
        }
        let v = self.bytes[self.pos..self.pos + n]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        self.pos += n;
        Ok(v)
    }

    fn skip(&mut self, n: u64) -> Result<(), ShapeError> {
        if n > self.left() as u64 {
            return Err(ShapeError::Truncated {
                declared: n,
                left: self.left(),
            });
        }
        self.pos += n as usize;
        Ok(())
    }

    fn marker(&mut self) -> Result<Next, ShapeError> {
        let at = self.pos;
        let Some(&m) = self.bytes.get(at) else {
            return Err(ShapeError::Unfinished);
        };
        self.pos += 1;
        let map = |n: u64| Next::Open {
            values: n * 2,
            declared: n,
        };
        let arr = |n: u64| Next::Open {
            values: n,
            declared: n,
        };
        Ok(match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => Next::Skip(0),
            0x80..=0x8f => map(u64::from(m & 0x0f)),
            0x90..=0x9f => arr(u64::from(m & 0x0f)),
            0xa0..=0xbf => Next::Skip(u64::from(m & 0x1f)),
            0xc4 | 0xd9 => Next::Skip(self.len(1)?),
            0xc5 | 0xda => Next::Skip(self.len(2)?),
            0xc6 | 0xdb => Next::Skip(self.len(4)?),
            // ext: length, then one type byte, then the data.
            0xc7 => Next::Skip(self.len(1)? + 1),
            0xc8 => Next::Skip(self.len(2)? + 1),
            0xc9 => Next::Skip(self.len(4)? + 1),
            0xca => Next::Skip(4),
            0xcb => Next::Skip(8),
            0xcc | 0xd0 => Next::Skip(1),
            0xcd | 0xd1 => Next::Skip(2),
            0xce | 0xd2 => Next::Skip(4),
            0xcf | 0xd3 => Next::Skip(8),
            0xd4 => Next::Skip(2),
            0xd5 => Next::Skip(3),
            0xd6 => Next::Skip(5),
            0xd7 => Next::Skip(9),
            0xd8 => Next::Skip(17),
            0xdc => arr(self.len(2)?),
            0xdd => arr(self.len(4)?),
            0xde => map(self.len(2)?),
            0xdf => map(self.len(4)?),
            0xc1 => return Err(ShapeError::BadMarker { marker: m, at }),
        })
    }
}

/// Checks one MessagePack value that fills `bytes` exactly: at most
/// `max_depth` nested containers, at most `max_len` elements (or map
/// entries) per container, and no declared length longer than what follows.
/// Iterative: its stack is a `Vec` of at most `max_depth` counters.
pub fn check_msgpack(bytes: &[u8], max_depth: usize, max_len: usize) -> Result<(), ShapeError> {
    let mut r = Reader { bytes, pos: 0 };
    // Values still expected in each open container, innermost last.
    let mut open: Vec<u64> = Vec::new();
    loop {
        match r.marker()? {
            Next::Skip(n) => r.skip(n)?,
            Next::Open { values, declared } => {
                if declared > max_len as u64 {
                    return Err(ShapeError::TooLong {
                        len: declared,
                        limit: max_len,
                    });
                }
                // Every value takes at least one byte.
                if values > r.left() as u64 {
                    return Err(ShapeError::Truncated {
                        declared: values,
                        left: r.left(),
                    });
                }
                if values > 0 {
                    if open.len() >= max_depth {
                        return Err(ShapeError::TooDeep { limit: max_depth });
                    }
                    open.push(values);
                    continue;
                }
            }
        }
        // One value is complete: count it in its container, closing every
        // container it completes.
        loop {
            match open.last_mut() {
                None => {
                    return match r.left() {
                        0 => Ok(()),
                        n => Err(ShapeError::Trailing(n)),
                    }
                }
                Some(n) => {
                    *n -= 1;
                    if *n > 0 {
                        break;
                    }
                    open.pop();
                }
            }
        }
    }
}

/// Checks JSON text for nesting depth and elements per array or object,
/// skipping strings (with their escapes). Anything else about the text is
/// left to the JSON parser. Iterative, as [`check_msgpack`].
pub fn check_json(bytes: &[u8], max_depth: usize, max_len: usize) -> Result<(), ShapeError> {
    // Elements seen so far in each open container, and whether the current
    // element has begun (so `[]` counts 0 and `[1]` counts 1).
    let mut open: Vec<(u64, bool)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if i >= bytes.len() {
                    return Err(ShapeError::Unfinished);
                }
                mark_begun(&mut open, max_len)?;
            }
            b'[' | b'{' => {
                mark_begun(&mut open, max_len)?;
                if open.len() >= max_depth {
                    return Err(ShapeError::TooDeep { limit: max_depth });
                }
                open.push((0, false));
            }
            b']' | b'}' => {
                open.pop();
            }
            b',' => {
                if let Some(top) = open.last_mut() {
                    top.1 = false;
                }
            }
            b' ' | b'\t' | b'\r' | b'\n' | b':' => {}
            _ => mark_begun(&mut open, max_len)?,
        }
        i += 1;
    }
    Ok(())
}

fn mark_begun(open: &mut [(u64, bool)], max_len: usize) -> Result<(), ShapeError> {
    if let Some((count, begun)) = open.last_mut() {
        if !*begun {
            *begun = true;
            *count += 1;
            if *count > max_len as u64 {
                return Err(ShapeError::TooLong {
                    len: *count,
                    limit: max_len,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `{"x": [[[...nil...]]]}` with `arrays` nested arrays: depth `arrays + 1`.
    fn nested_msgpack(arrays: usize) -> Vec<u8> {
        let mut v = b"\x81\xa1x".to_vec();
        v.extend(std::iter::repeat_n(0x91u8, arrays));
        v.push(0xc0);
        v
    }

    fn nested_json(arrays: usize) -> String {
        format!("{{\"x\":{}null{}}}", "[".repeat(arrays), "]".repeat(arrays))
    }

    #[test]
    fn msgpack_depth_just_under_and_over() {
        assert_eq!(check_msgpack(&nested_msgpack(31), 32, 100), Ok(()));
        assert_eq!(
            check_msgpack(&nested_msgpack(32), 32, 100),
            Err(ShapeError::TooDeep { limit: 32 })
        );
        assert_eq!(
            check_msgpack(&nested_msgpack(1000), 32, 100),
            Err(ShapeError::TooDeep { limit: 32 })
        );
    }

    #[test]
    fn json_depth_just_under_and_over() {
        assert_eq!(check_json(nested_json(31).as_bytes(), 32, 100), Ok(()));
        assert_eq!(
            check_json(nested_json(32).as_bytes(), 32, 100),
            Err(ShapeError::TooDeep { limit: 32 })
        );
        // Brackets inside strings are text, not nesting.
        let s = format!("{{\"x\":\"{}\\\"{}\"}}", "[".repeat(500), "{".repeat(500));
        assert_eq!(check_json(s.as_bytes(), 2, 100), Ok(()));
    }

    #[test]
    fn long_collections() {
        let list: Vec<u32> = (0..1000).collect();
        let packed = rmp_serde::to_vec(&list).unwrap();
        assert_eq!(check_msgpack(&packed, 4, 1000), Ok(()));
        assert_eq!(
            check_msgpack(&packed, 4, 999),
            Err(ShapeError::TooLong {
                len: 1000,
                limit: 999
            })
        );
        let json = serde_json::to_vec(&list).unwrap();
        assert_eq!(check_json(&json, 4, 1000), Ok(()));
        assert!(matches!(
            check_json(&json, 4, 999),
            Err(ShapeError::TooLong { len: 1000, .. })
        ));
        assert_eq!(check_json(b"{\"a\":[],\"b\":{}}", 4, 2), Ok(()));
        assert!(check_json(b"{\"a\":1,\"b\":2,\"c\":3}", 4, 2).is_err());
    }

    #[test]
    fn huge_declared_lengths_with_short_bodies() {
        // array32 of 4 billion, map32 of 4 billion, str32 and bin32 of 4 GB,
        // each followed by a few bytes.
        for bytes in [
            &b"\xdd\xff\xff\xff\xff\x01\x02"[..],
            &b"\xdf\xff\xff\xff\xff\x01\x02"[..],
            &b"\xdb\xff\xff\xff\xffabc"[..],
            &b"\xc6\xff\xff\xff\xffabc"[..],
            &b"\xdc\x00\x05\x01"[..],
        ] {
            let r = check_msgpack(bytes, 32, usize::MAX);
            assert!(
                matches!(r, Err(ShapeError::Truncated { .. })),
                "{bytes:?}: {r:?}"
            );
        }
        assert!(matches!(
            check_msgpack(b"\xdd\x00\x01\x00\x00\x01", 32, 1000),
            Err(ShapeError::TooLong { len: 65536, .. })
        ));
        assert_eq!(
            check_msgpack(b"\xdd\x00", 32, 10),
            Err(ShapeError::Unfinished)
        );
    }

    #[test]
    fn real_values_pass_and_garbage_is_named() {
        let v = serde_json::json!({"a": [1, 2.5, -3, "s", null, true, {"b": []}], "c": {}});
        assert_eq!(
            check_msgpack(&rmp_serde::to_vec_named(&v).unwrap(), 8, 10),
            Ok(())
        );
        assert_eq!(check_json(&serde_json::to_vec(&v).unwrap(), 8, 10), Ok(()));
        assert_eq!(
            check_msgpack(b"\xc1", 8, 10),
            Err(ShapeError::BadMarker {
                marker: 0xc1,
                at: 0
            })
        );
        assert_eq!(
            check_msgpack(b"\x01\x02", 8, 10),
            Err(ShapeError::Trailing(1))
        );
        assert_eq!(check_msgpack(b"", 8, 10), Err(ShapeError::Unfinished));
    }
}
