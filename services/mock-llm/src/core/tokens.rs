//! Deterministic token counting: one token per whitespace-separated word. Real tokenizers
//! differ by model; what tests need is a count they can compute themselves.

pub fn count(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_words() {
        assert_eq!(super::count("Hello,  world!\nHow are you?"), 5);
        assert_eq!(super::count(""), 0);
    }
}
