//! How keys and values are printed: bytes that are not printable ASCII, and tab, newline
//! and backslash, become `\xNN`, so every pair is one line, `key<TAB>value`, and the output
//! can be decoded back to the exact bytes.

use std::fmt::Write;

/// `bytes` with every byte outside printable ASCII (0x20..=0x7e), and `\t`, `\n` and `\`,
/// written as `\xNN` (two lowercase hex digits).
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    escape_into(&mut out, bytes);
    out
}

/// Appends `escape(bytes)` to `out`.
pub fn escape_into(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if (0x20..=0x7e).contains(&b) && b != b'\\' {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_is_kept() {
        assert_eq!(escape(b"hello world ~!{}"), "hello world ~!{}");
        assert_eq!(escape(b""), "");
    }

    #[test]
    fn tab_newline_and_backslash_are_escaped() {
        assert_eq!(escape(b"a\tb\nc\\d"), "a\\x09b\\x0ac\\x5cd");
    }

    #[test]
    fn control_delete_and_non_ascii_bytes_are_escaped() {
        assert_eq!(escape(&[0x00, 0x1f, 0x7f, 0x80, 0xff]), "\\x00\\x1f\\x7f\\x80\\xff");
        assert_eq!(escape("é".as_bytes()), "\\xc3\\xa9");
    }

    #[test]
    fn output_decodes_back_to_the_input() {
        let input: Vec<u8> = (0..=255).collect();
        let escaped = escape(&input);
        assert!(escaped.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        assert!(!escaped.contains('\t'));
        let mut decoded = Vec::new();
        let mut rest = escaped.as_str();
        while let Some(c) = rest.chars().next() {
            if let Some(hex) = rest.strip_prefix("\\x") {
                decoded.push(u8::from_str_radix(&hex[..2], 16).expect("two hex digits"));
                rest = &hex[2..];
            } else {
                decoded.push(c as u8);
                rest = &rest[1..];
            }
        }
        assert_eq!(decoded, input);
    }
}
