//! Standard base64 for etcdctl's `-w json` output and the JSON gateway (keys and values are base64 there).

use anyhow::{bail, Result};

/// Decodes standard (RFC 4648, padded) base64 into bytes.
pub fn decode(s: &str) -> Result<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let trimmed = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in trimmed.bytes() {
        let Some(v) = value(c) else {
            bail!("invalid base64 character {:?} in {s:?}", c as char);
        };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// Encodes bytes as standard (RFC 4648, padded) base64.
pub fn encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes base64 into a UTF-8 string (lossy: test keys and values are ASCII).
pub fn decode_str(s: &str) -> Result<String> {
    Ok(String::from_utf8_lossy(&decode(s)?).into_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_padded_and_unpadded_input() {
        assert_eq!(super::decode_str("Zm9v").unwrap(), "foo");
        assert_eq!(super::encode(b"foo"), "Zm9v");
        assert_eq!(super::encode(b"fo"), "Zm8=");
        assert_eq!(super::encode(b"f"), "Zg==");
        assert_eq!(super::decode_str("Zm9vYg==").unwrap(), "foob");
        assert_eq!(super::decode_str("Zm9vYmE=").unwrap(), "fooba");
        assert!(super::decode("Zm9v!").is_err());
    }
}
