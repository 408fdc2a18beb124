//! The fuzz harness every crate's fuzz tests share (no libFuzzer, no
//! nightly): seed corpora mutated deterministically (byte flips, cuts,
//! splices, duplicated slices, inserted tokens, random bytes), run for a
//! bounded time (`SIPBRIDGE_FUZZ_SECS`, default 3 s per target) so every
//! `make test` runs them. A panic names the seed and the input, which is
//! also written to `target/fuzz-failures/`, so it reproduces.
//!
//! Used by the e2e tests as `e2e::mutate` and by the crates' own fuzz tests
//! through `#[path]` (it needs nothing but std).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// xorshift64*: deterministic, so a run reproduces from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// How long each fuzz target runs.
pub fn budget() -> Duration {
    let secs = std::env::var("SIPBRIDGE_FUZZ_SECS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(3.0);
    Duration::from_secs_f64(secs.max(0.1))
}

/// Every `*.ext` file in `dir`, sorted by name: a seed corpus.
pub fn read_corpus(dir: &Path, ext: &str) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == ext))
        .collect();
    paths.sort();
    let corpus: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(!corpus.is_empty(), "empty corpus {}", dir.display());
    corpus
}

/// One mutant of a corpus entry: 1-6 mutations, `tokens` being pieces of
/// the format worth inserting (separators, keywords, odd numbers).
pub fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], tokens: &[&[u8]]) -> Vec<u8> {
    let mut m = corpus[rng.below(corpus.len())].clone();
    for _ in 0..1 + rng.below(6) {
        let len = m.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                m[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => m.truncate(rng.below(len)),
            2 if !tokens.is_empty() => {
                let t = tokens[rng.below(tokens.len())];
                let i = rng.below(len + 1);
                m.splice(i..i, t.iter().copied());
            }
            3 if len > 1 => {
                let a = rng.below(len);
                let b = (a + rng.below(64)).min(len);
                m.drain(a..b);
            }
            4 if len > 1 => {
                // Duplicate a slice (repeated headers, lines, members).
                let a = rng.below(len);
                let b = (a + rng.below(200)).min(len);
                let chunk = m[a..b].to_vec();
                let i = rng.below(m.len() + 1);
                m.splice(i..i, chunk);
            }
            5 => {
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(m.len() + 1);
                let from = rng.below(other.len() + 1);
                m.truncate(cut);
                m.extend_from_slice(&other[from..]);
            }
            6 => m = (0..rng.below(300)).map(|_| rng.next_u64() as u8).collect(),
            _ => {
                let i = rng.below(len + 1);
                let n = rng.below(3000);
                m.splice(i..i, std::iter::repeat_n(b'a', n));
            }
        }
    }
    m
}

/// Feeds mutants of `corpus` (the seeds themselves first) to `target`
/// until `budget` has passed; returns how many inputs ran. A panic in the
/// target is reported with the seed, the input's number and the input.
pub fn run(
    name: &str,
    seed: u64,
    corpus: &[Vec<u8>],
    tokens: &[&[u8]],
    budget: Duration,
    mut target: impl FnMut(&[u8]),
) -> usize {
    let mut rng = Rng(seed);
    let until = Instant::now() + budget;
    let mut n = 0;
    while n < corpus.len() || Instant::now() < until {
        let input = match corpus.get(n) {
            Some(seed_input) => seed_input.clone(),
            None => mutate(&mut rng, corpus, tokens),
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&input)));
        if outcome.is_err() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-failures");
            let file = dir.join(format!("{name}-{seed:x}-{n}.bin"));
            let saved = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&file, &input));
            panic!(
                "fuzz target {name} panicked on input {n} of seed {seed:#x} (saved: {}): {:?}",
                saved.map(|_| file.display().to_string()).unwrap_or_else(|e| e.to_string()),
                String::from_utf8_lossy(&input)
            );
        }
        n += 1;
    }
    n
}
