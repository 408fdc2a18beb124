//! G.711 decoding (µ-law and A-law, ITU-T G.711), by table.
//!
//! A G.711 byte expands to one 16-bit sample through a fixed mapping, so a
//! leg decodes it where the frame arrives (its appsink's callback) instead
//! of through `mulawdec`/`alawdec` and the elements around them: four
//! elements fewer per G.711 leg, and the same samples (the tests compare
//! every byte with GStreamer's decoders).

/// The two companding laws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Law {
    /// PCMU (North America, Japan).
    Mu,
    /// PCMA (elsewhere).
    A,
}

const MU_LAW: [i16; 256] = table(Law::Mu);
const A_LAW: [i16; 256] = table(Law::A);

/// Decodes G.711 bytes into S16LE samples (two bytes per input byte).
pub(crate) fn decode(law: Law, encoded: &[u8]) -> Vec<u8> {
    let table = match law {
        Law::Mu => &MU_LAW,
        Law::A => &A_LAW,
    };
    encoded.iter().flat_map(|&b| table[b as usize].to_le_bytes()).collect()
}

const fn table(law: Law) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = match law {
            Law::Mu => expand_mu(i as u8),
            Law::A => expand_a(i as u8),
        };
        i += 1;
    }
    table
}

/// µ-law: the byte is stored inverted; 3 bits of segment (exponent) and 4
/// of mantissa, biased by 0x84 (33 in 14-bit units) so that every segment
/// starts on a power of two.
const fn expand_mu(byte: u8) -> i16 {
    let u = !byte;
    let magnitude = ((((u & 0x0f) as i32) << 3) + 0x84) << ((u & 0x70) >> 4);
    if u & 0x80 != 0 {
        (0x84 - magnitude) as i16
    } else {
        (magnitude - 0x84) as i16
    }
}

/// A-law: even bits inverted on the wire; segment 0 is linear, each
/// further segment doubles the step. The sign bit set means positive.
const fn expand_a(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let mantissa = ((a & 0x0f) as i32) << 4;
    let magnitude = match (a & 0x70) >> 4 {
        0 => mantissa + 8,
        1 => mantissa + 0x108,
        segment => (mantissa + 0x108) << (segment - 1),
    };
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gst::prelude::*;

    /// Every byte value decoded by GStreamer's element for `law`.
    fn decoded_by_gstreamer(law: Law) -> Vec<u8> {
        gst::init().unwrap();
        let (caps, decoder) = match law {
            Law::Mu => ("audio/x-mulaw", "mulawdec"),
            Law::A => ("audio/x-alaw", "alawdec"),
        };
        let pipeline = gst::parse::launch(&format!(
            "appsrc name=src caps={caps},rate=8000,channels=1 format=time ! {decoder} ! appsink name=sink sync=false"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let src = pipeline.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
        let sink = pipeline.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let all: Vec<u8> = (0..=255).collect();
        src.push_buffer(gst::Buffer::from_slice(all)).unwrap();
        let sample = sink.pull_sample().unwrap();
        let out = sample.buffer().unwrap().map_readable().unwrap().to_vec();
        pipeline.set_state(gst::State::Null).unwrap();
        out
    }

    #[test]
    fn mu_law_decodes_as_mulawdec_does() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(Law::Mu, &all), decoded_by_gstreamer(Law::Mu));
    }

    #[test]
    fn a_law_decodes_as_alawdec_does() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(Law::A, &all), decoded_by_gstreamer(Law::A));
    }

    #[test]
    fn silence_and_full_scale() {
        assert_eq!(MU_LAW[0xff], 0, "µ-law 0xff is zero");
        assert_eq!(MU_LAW[0x00], -32124);
        assert_eq!(A_LAW[0xd5], 8, "A-law 0xd5 is the smallest positive step");
        assert_eq!(A_LAW[0xaa], 32256);
    }
}
