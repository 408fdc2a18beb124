//! Opus decoding through libopus's single-stream API.
//!
//! GStreamer's `opusdec` goes through the multistream API, and libopus
//! 1.3's multistream decode detects the CPU (`cpuid`) on every call. On a
//! virtual machine `cpuid` traps to the hypervisor: 65 us per 20 ms frame
//! here against 18 us single-stream at 48 kHz, and 3.5 us at 8 kHz (a
//! quarter of a transcoded call's CPU went to `cpuid` in the profile). So
//! the raw branch of an Opus leg decodes here, at the rate its consumers
//! want: a link to a G.711 leg gets 8 kHz straight from the decoder, with
//! no resampling after it.

use std::ffi::c_int;
use std::ptr::NonNull;

#[repr(C)]
struct OpusDecoderState {
    _opaque: [u8; 0],
}

#[link(name = "opus")]
extern "C" {
    fn opus_decoder_create(fs: i32, channels: c_int, error: *mut c_int) -> *mut OpusDecoderState;
    fn opus_decode(
        st: *mut OpusDecoderState,
        data: *const u8,
        len: i32,
        pcm: *mut i16,
        frame_size: c_int,
        decode_fec: c_int,
    ) -> c_int;
    fn opus_decoder_destroy(st: *mut OpusDecoderState);
}

/// Rates libopus decodes to natively.
const RATES: [u32; 5] = [8000, 12000, 16000, 24000, 48000];
/// The longest Opus packet holds 120 ms.
const MAX_PACKET_MS: u32 = 120;

/// A mono decoder (stereo streams are downmixed by libopus).
pub(crate) struct OpusDecoder {
    state: NonNull<OpusDecoderState>,
    rate: u32,
    pcm: Vec<i16>,
}

// The state is only touched through &mut self.
unsafe impl Send for OpusDecoder {}

impl OpusDecoder {
    /// A decoder at the smallest native rate of at least `rate`.
    pub fn new(rate: u32) -> Result<OpusDecoder, String> {
        let rate = native_rate(rate);
        let mut error: c_int = 0;
        // SAFETY: valid rate and channel count; the error out-pointer is ours.
        let state = unsafe { opus_decoder_create(rate as i32, 1, &mut error) };
        let state = NonNull::new(state).ok_or_else(|| format!("opus_decoder_create failed ({error})"))?;
        Ok(OpusDecoder { state, rate, pcm: vec![0; (rate * MAX_PACKET_MS / 1000) as usize] })
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Decodes one packet, or conceals a lost one (`None`, `lost_samples`
    /// long), returning the samples.
    pub fn decode(&mut self, packet: Option<&[u8]>, lost_samples: usize) -> Result<&[i16], String> {
        let (data, len, frame) = match packet {
            Some(p) => (p.as_ptr(), p.len() as i32, self.pcm.len()),
            None => (std::ptr::null(), 0, lost_samples.min(self.pcm.len())),
        };
        // SAFETY: `pcm` has room for `frame` samples (mono); `data` is
        // `len` bytes or null for concealment.
        let n = unsafe { opus_decode(self.state.as_ptr(), data, len, self.pcm.as_mut_ptr(), frame as c_int, 0) };
        if n < 0 {
            return Err(format!("opus_decode failed ({n})"));
        }
        Ok(&self.pcm[..n as usize])
    }
}

impl Drop for OpusDecoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create, destroyed once.
        unsafe { opus_decoder_destroy(self.state.as_ptr()) }
    }
}

pub(crate) fn native_rate(rate: u32) -> u32 {
    RATES.into_iter().find(|r| *r >= rate).unwrap_or(48000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_round_up_to_what_opus_decodes_natively() {
        assert_eq!(native_rate(8000), 8000);
        assert_eq!(native_rate(11025), 12000);
        assert_eq!(native_rate(44100), 48000);
        assert_eq!(native_rate(96000), 48000);
    }

    #[test]
    fn garbage_is_an_error_and_loss_is_concealed() {
        let mut d = OpusDecoder::new(8000).unwrap();
        assert_eq!(d.rate(), 8000);
        // TOC byte code 3 with a frame count of 0 is invalid.
        assert!(d.decode(Some(&[0x03, 0x00]), 0).is_err());
        assert_eq!(d.decode(None, 160).unwrap().len(), 160);
    }
}
