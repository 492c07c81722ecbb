//! How much of what a caller sent a message repeats: configuration errors,
//! refused events, decision records and log lines all cut it the same way.

/// The most bytes of anything a caller sent that a message repeats. Bytes,
/// not characters: a message stays under 1,000 bytes with two echoes in it,
/// whatever characters they hold.
pub const ECHO_LIMIT: usize = 300;

/// `text` when it is at most `limit` bytes; otherwise its start (cut at a
/// character boundary) and how long it was.
pub fn capped(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let end = (0..=limit)
        .rev()
        .find(|at| text.is_char_boundary(*at))
        .unwrap_or(0);
    format!("{}… ({} bytes, cut)", &text[..end], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_by_bytes_at_a_character_boundary() {
        assert_eq!(capped("short", 10), "short");
        assert_eq!(capped("abcdef", 3), "abc… (6 bytes, cut)");
        // "é" is two bytes: three bytes keep one whole character.
        assert_eq!(capped("éé", 3), "é… (4 bytes, cut)");
        let wide = "\u{1F600}".repeat(1 << 16);
        assert!(capped(&wide, ECHO_LIMIT).len() < ECHO_LIMIT + 40);
    }
}
