//! How much of what a caller sent a message repeats: configuration errors,
//! refused events and log lines all cut it the same way.

/// The most characters of anything a caller sent that a message repeats.
pub const ECHO_LIMIT: usize = 512;

/// `text` when it is at most `limit` characters; otherwise its start and how long it was.
pub fn capped(text: &str, limit: usize) -> String {
    let length = text.chars().count();
    if length <= limit {
        return text.to_string();
    }
    let start: String = text.chars().take(limit).collect();
    format!("{start}… ({length} characters, cut)")
}
