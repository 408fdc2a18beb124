//! Audio checks: read and write 16-bit PCM WAV files and find tones in them
//! with the Goertzel algorithm. A test asserts what a peer *heard*, not just
//! that signalling finished.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Mono samples in [-1, 1] and their sample rate.
pub struct Pcm {
    pub rate: u32,
    pub samples: Vec<f32>,
}

/// Reads a RIFF/WAVE file with 16-bit PCM samples; multi-channel files are
/// mixed down to mono.
pub fn read_wav(path: &Path) -> Result<Pcm> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if data.len() < 12 || &data[0..4] != b"RIFF" || &data[8..12] != b"WAVE" {
        bail!("{} is not a WAV file", path.display());
    }
    let (mut channels, mut rate, mut bits) = (0u16, 0u32, 0u16);
    let mut pos = 12;
    while pos + 8 <= data.len() {
        let id = &data[pos..pos + 4];
        let declared = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let body = pos + 8;
        // Streaming writers leave the data size at 0 or 0xffffffff: take the rest.
        let len = if id == b"data" && (declared == 0 || body + declared > data.len()) {
            data.len() - body
        } else {
            declared.min(data.len() - body)
        };
        if id == b"fmt " && len >= 16 {
            let fmt = &data[body..body + len];
            channels = u16::from_le_bytes([fmt[2], fmt[3]]);
            rate = u32::from_le_bytes(fmt[4..8].try_into().unwrap());
            bits = u16::from_le_bytes([fmt[14], fmt[15]]);
        } else if id == b"data" {
            if bits != 16 || channels == 0 {
                bail!("{}: only 16-bit PCM is supported (bits {bits}, channels {channels})", path.display());
            }
            let frame = 2 * channels as usize;
            let samples = data[body..body + len]
                .chunks_exact(frame)
                .map(|f| {
                    let sum: i32 = f.chunks_exact(2).map(|s| i16::from_le_bytes([s[0], s[1]]) as i32).sum();
                    sum as f32 / channels as f32 / 32768.0
                })
                .collect();
            return Ok(Pcm { rate, samples });
        }
        pos = body + len + (len & 1);
    }
    bail!("{}: no data chunk", path.display())
}

/// Writes mono 16-bit PCM.
pub fn write_wav(path: &Path, pcm: &Pcm) -> Result<()> {
    let mut out = Vec::with_capacity(44 + pcm.samples.len() * 2);
    let data_len = (pcm.samples.len() * 2) as u32;
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&pcm.rate.to_le_bytes());
    out.extend_from_slice(&(pcm.rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in &pcm.samples {
        out.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// A sine tone of `freq` Hz, `seconds` long, at amplitude `level` (0..1).
pub fn tone(freq: f64, seconds: f64, rate: u32, level: f32) -> Pcm {
    let n = (seconds * rate as f64) as usize;
    let samples =
        (0..n).map(|i| level * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin() as f32).collect();
    Pcm { rate, samples }
}

impl Pcm {
    /// Root mean square level, 0..1.
    pub fn rms(&self) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        (self.samples.iter().map(|s| (*s as f64).powi(2)).sum::<f64>() / self.samples.len() as f64).sqrt()
    }

    /// The part between `from` and `to` seconds.
    pub fn slice(&self, from: f64, to: f64) -> Pcm {
        let a = ((from * self.rate as f64) as usize).min(self.samples.len());
        let b = ((to * self.rate as f64) as usize).clamp(a, self.samples.len());
        Pcm { rate: self.rate, samples: self.samples[a..b].to_vec() }
    }

    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / self.rate as f64
    }

    /// Share of the signal's energy that sits at `freq` (0..1). Measured
    /// by Goertzel over 100 ms blocks, energy-weighted, so a tone a few Hz
    /// off (clock drift, resampling) still counts: a clean tone scores near
    /// 1, a tone mixed with an equally loud other tone about 0.5, silence or
    /// noise near 0.
    pub fn tone_share(&self, freq: f64) -> f64 {
        let block = (self.rate as usize / 10).max(1);
        let (mut tone, mut total) = (0.0, 0.0);
        for chunk in self.samples.chunks(block).filter(|c| c.len() == block) {
            let energy: f64 = chunk.iter().map(|s| (*s as f64).powi(2)).sum();
            tone += goertzel_share(chunk, self.rate, freq) * energy;
            total += energy;
        }
        if total <= f64::EPSILON {
            0.0
        } else {
            tone / total
        }
    }

    /// The strongest of `candidates`, with its share, if any stands out
    /// above `min_share`.
    pub fn dominant_tone(&self, candidates: &[f64], min_share: f64) -> Option<(f64, f64)> {
        candidates
            .iter()
            .map(|f| (*f, self.tone_share(*f)))
            .filter(|(_, share)| *share >= min_share)
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

/// G.711 µ-law encoding of one linear sample (ITU-T G.711, bias 0x84).
pub fn ulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut x = sample as i32;
    let sign = if x < 0 {
        x = -x;
        0x80
    } else {
        0
    };
    x = x.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && x & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (x >> (exponent + 3)) & 0x0f;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// G.711 µ-law decoding to [-1, 1].
pub fn ulaw_decode(byte: u8) -> f32 {
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let mantissa = (u & 0x0f) as i32;
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    let v = if u & 0x80 != 0 { -magnitude } else { magnitude };
    v as f32 / 32768.0
}

/// Goertzel power at `freq`, normalised by the block's energy so that a
/// pure sine of any amplitude gives (almost) exactly 1.
fn goertzel_share(samples: &[f32], rate: u32, freq: f64) -> f64 {
    let energy: f64 = samples.iter().map(|s| (*s as f64).powi(2)).sum();
    if energy <= f64::EPSILON {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq / rate as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for x in samples {
        let s0 = *x as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    (2.0 * power / samples.len() as f64 / energy).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goertzel_finds_the_tone_and_only_the_tone() {
        let pcm = tone(440.0, 1.0, 8000, 0.3);
        assert!(pcm.tone_share(440.0) > 0.95, "{}", pcm.tone_share(440.0));
        assert!(pcm.tone_share(1000.0) < 0.01, "{}", pcm.tone_share(1000.0));
        assert_eq!(pcm.dominant_tone(&[300.0, 440.0, 1000.0], 0.5).map(|t| t.0), Some(440.0));
    }

    #[test]
    fn two_tones_share_the_energy() {
        let a = tone(440.0, 1.0, 48000, 0.3);
        let b = tone(1000.0, 1.0, 48000, 0.3);
        let mix = Pcm { rate: 48000, samples: a.samples.iter().zip(&b.samples).map(|(x, y)| x + y).collect() };
        assert!((mix.tone_share(440.0) - 0.5).abs() < 0.05);
        assert!((mix.tone_share(1000.0) - 0.5).abs() < 0.05);
    }

    #[test]
    fn a_slightly_detuned_tone_still_counts() {
        let pcm = tone(441.5, 2.0, 16000, 0.3);
        assert!(pcm.tone_share(440.0) > 0.8, "{}", pcm.tone_share(440.0));
    }

    #[test]
    fn ulaw_round_trip() {
        for s in [-32768i16, -12345, -100, -1, 0, 1, 100, 12345, 32767] {
            let back = ulaw_decode(ulaw_encode(s)) * 32768.0;
            assert!((back - s as f32).abs() <= (s as f32).abs() / 16.0 + 8.0, "{s} -> {back}");
        }
        assert_eq!(ulaw_encode(0), 0xff);
    }

    #[test]
    fn silence_has_no_tone() {
        let pcm = Pcm { rate: 8000, samples: vec![0.0; 8000] };
        assert_eq!(pcm.tone_share(440.0), 0.0);
        assert_eq!(pcm.rms(), 0.0);
    }

    #[test]
    fn wav_round_trip() {
        let dir = crate::process::test_dir("wav_round_trip");
        let path = dir.join("t.wav");
        write_wav(&path, &tone(697.0, 0.5, 16000, 0.5)).unwrap();
        let back = read_wav(&path).unwrap();
        assert_eq!(back.rate, 16000);
        assert_eq!(back.samples.len(), 8000);
        assert!(back.tone_share(697.0) > 0.95);
    }
}
