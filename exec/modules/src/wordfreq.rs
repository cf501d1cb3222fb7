//! The `wordfreq` job: how often each word occurs in a text.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// At most this many distinct words are output (the first ones in output order), so
/// the output stays bounded whatever the input.
pub const WORD_FREQUENCY_MAX_WORDS: usize = 4096;

/// The output never exceeds this many bytes (the call ABI's output limit, 256 KiB):
/// lines are written in output order and the first one that would not fit ends the
/// output. Only inputs with very long words reach it (4096 lines of words up to ~50
/// bytes fit).
pub const WORD_FREQUENCY_MAX_OUTPUT: usize = 256 * 1024;

/// Counts the words of `text` and returns one ASCII line `"<word> <count>\n"` per
/// distinct word, sorted by count descending, then by word ascending (bytewise).
///
/// A word is a maximal run of ASCII alphanumeric bytes (`[0-9A-Za-z]+`), lowercased;
/// every other byte (punctuation, whitespace, non-ASCII UTF-8) separates words. The
/// count is in decimal without leading zeros. The output holds at most
/// [`WORD_FREQUENCY_MAX_WORDS`] lines and at most [`WORD_FREQUENCY_MAX_OUTPUT`] bytes,
/// always the top lines of that order; an empty text gives an empty output.
pub fn word_frequency(text: &[u8]) -> Vec<u8> {
    // Lowercase once, so that every key is a slice of one buffer (no allocation per
    // word, which matters under the never-freeing allocator of a job module).
    let lower = text.to_ascii_lowercase();
    let mut counts: BTreeMap<&[u8], u32> = BTreeMap::new();
    for word in lower
        .split(|b| !b.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        // A wasm32 input has fewer than 2^32 bytes, hence fewer words: never saturates.
        let n = counts.entry(word).or_insert(0);
        *n = n.saturating_add(1);
    }
    let mut ranked: Vec<(&[u8], u32)> = counts.into_iter().collect();
    // Words are distinct, so this order is total and an unstable sort is deterministic.
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));

    let mut out = Vec::new();
    let mut digits = [0u8; 10];
    for (word, count) in ranked.into_iter().take(WORD_FREQUENCY_MAX_WORDS) {
        let count = decimal(count, &mut digits);
        if out.len() + word.len() + 1 + count.len() + 1 > WORD_FREQUENCY_MAX_OUTPUT {
            break;
        }
        out.extend_from_slice(word);
        out.push(b' ');
        out.extend_from_slice(count);
        out.push(b'\n');
    }
    out
}

/// `n` in decimal, written at the end of `buf` (integer only: no `core::fmt`).
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::string::String;

    fn run(text: &str) -> String {
        String::from_utf8(word_frequency(text.as_bytes())).expect("ASCII output")
    }

    /// The output parsed back into (word, count) lines.
    fn parse(out: &[u8]) -> Vec<(Vec<u8>, u32)> {
        let text = std::str::from_utf8(out).expect("ASCII output");
        assert!(text.is_empty() || text.ends_with('\n'));
        text.lines()
            .map(|line| {
                let (word, count) = line.split_once(' ').expect("one space per line");
                (
                    word.as_bytes().to_vec(),
                    count.parse().expect("a decimal count"),
                )
            })
            .collect()
    }

    #[test]
    fn counts_sorted_by_count_then_word() {
        assert_eq!(
            run("The cat, the DOG; the cat! dog-cat? 42 times"),
            "cat 3\nthe 3\ndog 2\n42 1\ntimes 1\n"
        );
    }

    #[test]
    fn separators_and_non_ascii_split_words() {
        assert_eq!(run(""), "");
        assert_eq!(run(" \n\t.,;"), "");
        assert_eq!(run("caf\u{e9} caf\u{c9}"), "caf 2\n");
        assert_eq!(run("a_b"), "a 1\nb 1\n");
    }

    #[test]
    fn decimal_counts() {
        let mut buf = [0; 10];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(10, &mut buf), b"10");
        assert_eq!(decimal(u32::MAX, &mut buf), b"4294967295");
        assert_eq!(run(&"x ".repeat(1234)), "x 1234\n");
    }

    #[test]
    fn at_most_max_words_lines_the_most_frequent_first() {
        // 5000 distinct words; "w0" and "w1" twice, so they lead.
        let mut text: String = (0..5000).map(|i| std::format!("w{i} ")).collect();
        text.push_str("w1 w0");
        let lines = parse(run(&text).as_bytes());
        assert_eq!(lines.len(), WORD_FREQUENCY_MAX_WORDS);
        assert_eq!(lines[0], (b"w0".to_vec(), 2));
        assert_eq!(lines[1], (b"w1".to_vec(), 2));
        // Then the words seen once, in byte order: w10, w100, w1000, w1001, ...
        assert_eq!(lines[2], (b"w10".to_vec(), 1));
        assert_eq!(lines[3], (b"w100".to_vec(), 1));
    }

    #[test]
    fn output_bytes_are_bounded() {
        // 8 distinct words of 40 KiB each: only the first 6 lines fit in 256 KiB.
        let text: String = (b'a'..b'i')
            .map(|c| std::format!("{} ", String::from(c as char).repeat(40 * 1024)))
            .collect();
        let out = word_frequency(text.as_bytes());
        assert!(out.len() <= WORD_FREQUENCY_MAX_OUTPUT);
        assert_eq!(parse(&out).len(), 6);
    }

    proptest! {
        #[test]
        fn output_parses_back_to_the_counts(
            text in proptest::collection::vec(
                prop_oneof![Just(b' '), Just(b'.'), Just(b'A'), Just(b'a'), Just(b'b'), Just(b'7'), any::<u8>()],
                0..200,
            )
        ) {
            let out = word_frequency(&text);
            let lines = parse(&out);
            // Expected counts, computed another way.
            let mut expected: HashMap<Vec<u8>, u32> = HashMap::new();
            let mut words = 0;
            for word in text.split(|b| !b.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
                *expected.entry(word.to_ascii_lowercase()).or_default() += 1;
                words += 1;
            }
            prop_assert_eq!(lines.len(), expected.len());
            prop_assert_eq!(lines.iter().map(|l| l.1).sum::<u32>(), words);
            for (word, count) in &lines {
                prop_assert_eq!(expected.get(word), Some(count));
            }
            for pair in lines.windows(2) {
                prop_assert!(pair[0].1 > pair[1].1 || (pair[0].1 == pair[1].1 && pair[0].0 < pair[1].0));
            }
        }
    }
}
