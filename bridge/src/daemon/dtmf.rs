//! Recognises a DTMF key sequence (the conference mute toggle, `*6` by
//! default) in the keys a caller presses, whether they arrive as RFC 4733
//! events or SIP INFO.

use std::time::{Duration, Instant};

/// Keys further apart than this start a new sequence.
const GAP: Duration = Duration::from_secs(3);

pub struct KeySequence {
    target: Vec<char>,
    typed: Vec<char>,
    last: Option<Instant>,
}

impl KeySequence {
    /// An empty `target` never matches.
    pub fn new(target: &str) -> KeySequence {
        KeySequence { target: target.chars().map(|c| c.to_ascii_uppercase()).collect(), typed: Vec::new(), last: None }
    }

    /// Records a key; true when it completes the sequence.
    pub fn push(&mut self, key: char) -> bool {
        self.push_at(key, Instant::now())
    }

    fn push_at(&mut self, key: char, now: Instant) -> bool {
        if self.target.is_empty() {
            return false;
        }
        if self.last.is_some_and(|t| now.duration_since(t) > GAP) {
            self.typed.clear();
        }
        self.last = Some(now);
        self.typed.push(key.to_ascii_uppercase());
        if self.typed.len() > self.target.len() {
            self.typed.remove(0);
        }
        if self.typed == self.target {
            self.typed.clear();
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_six_toggles_and_other_keys_do_not() {
        let mut k = KeySequence::new("*6");
        let t = Instant::now();
        assert!(!k.push_at('*', t));
        assert!(k.push_at('6', t));
        assert!(!k.push_at('6', t), "the sequence starts over after a match");
        assert!(!k.push_at('1', t) && !k.push_at('*', t));
        assert!(k.push_at('6', t));
        assert!(!k.push_at('*', t));
        assert!(!k.push_at('6', t + Duration::from_secs(5)), "too slow");
        assert!(!KeySequence::new("").push('*'));
    }
}
