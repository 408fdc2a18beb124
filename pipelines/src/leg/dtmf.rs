//! DTMF: RFC 4733 telephone-event parsing for incoming RTP, and the tone
//! alphabet shared by senders.
//!
//! Peers are untidy: some never set the marker bit on the first packet of an
//! event, all repeat the end packet three times, some send the start packet
//! with the end bit already set. An event is identified by its RTP
//! timestamp, so a new timestamp is a new key press, marker bit or not.

use crate::leg::events::{EventHandler, LegEvent};
use gst::prelude::*;
use std::sync::{Arc, Mutex};

/// The DTMF alphabet in RFC 4733 event-code order: 0-9, *, #, A-D.
const TONES: &str = "0123456789*#ABCD";

pub fn event_code(tone: char) -> Option<u8> {
    TONES.find(tone.to_ascii_uppercase()).map(|i| i as u8)
}

pub fn tone_of(code: u8) -> Option<char> {
    TONES.chars().nth(code as usize)
}

/// One RFC 4733 payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

impl TelephoneEvent {
    pub fn parse(payload: &[u8]) -> Option<Self> {
        if payload.len() < 4 {
            return None;
        }
        Some(TelephoneEvent {
            event: payload[0],
            end: payload[1] & 0x80 != 0,
            volume: payload[1] & 0x3f,
            duration: u16::from_be_bytes([payload[2], payload[3]]),
        })
    }
}

/// Turns a stream of telephone-event packets into one event per key press.
#[derive(Default)]
pub struct DtmfDetector {
    last: Option<(u32, u8)>,
}

impl DtmfDetector {
    /// Feeds one packet (its RTP timestamp and payload); returns the tone if
    /// this packet starts a new key press.
    pub fn feed(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let ev = TelephoneEvent::parse(payload)?;
        let key = (timestamp, ev.event);
        if self.last == Some(key) {
            return None;
        }
        self.last = Some(key);
        tone_of(ev.event)
    }

    /// Watches RTP buffers on `pad` and reports key presses to `events`.
    pub(crate) fn install(pad: &gst::Pad, events: EventHandler) {
        let detector = Arc::new(Mutex::new(DtmfDetector::default()));
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer() {
                if let Ok(rtp) = gst_rtp::RTPBuffer::from_buffer_readable(buffer) {
                    let tone = rtp.payload().ok().and_then(|p| detector.lock().unwrap().feed(rtp.timestamp(), p));
                    if let Some(tone) = tone {
                        events(LegEvent::Dtmf { tone });
                    }
                }
            }
            gst::PadProbeReturn::Ok
        });
    }
}

/// Checks a tone string for the protocol's `sendDtmf`.
pub fn parse_tones(tones: &str) -> Result<Vec<u8>, crate::Error> {
    if tones.is_empty() || tones.len() > 64 {
        return Err(crate::Error::Dtmf("give 1 to 64 tones".into()));
    }
    tones
        .chars()
        .map(|c| event_code(c).ok_or_else(|| crate::Error::Dtmf(format!("{c:?} is not a DTMF tone (0-9, *, #, A-D)"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(event: u8, end: bool, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [event, if end { 0x80 | 10 } else { 10 }, d[0], d[1]]
    }

    #[test]
    fn one_event_per_key_press_without_marker_bits() {
        let mut det = DtmfDetector::default();
        let mut seen = Vec::new();
        // '5': start, continuation, three end packets, all at timestamp 1000.
        for p in [
            packet(5, false, 160),
            packet(5, false, 320),
            packet(5, true, 800),
            packet(5, true, 800),
            packet(5, true, 800),
        ] {
            seen.extend(det.feed(1000, &p));
        }
        // '5' again: a new key press has a new timestamp.
        seen.extend(det.feed(5000, &packet(5, false, 160)));
        // '#' whose first packet already has the end bit.
        seen.extend(det.feed(9000, &packet(11, true, 400)));
        assert_eq!(seen, vec!['5', '5', '#']);
    }

    #[test]
    fn short_payloads_are_ignored() {
        assert_eq!(DtmfDetector::default().feed(1, &[1, 2]), None);
    }

    #[test]
    fn tone_alphabet() {
        assert_eq!(parse_tones("19*#ad").unwrap(), vec![1, 9, 10, 11, 12, 15]);
        assert!(parse_tones("12x").unwrap_err().to_string().contains("'x'"));
        assert!(parse_tones("").is_err());
    }
}
