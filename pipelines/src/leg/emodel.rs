//! The ITU-T G.107 E-model, simplified as VoIP monitors use it: every
//! impairment at its default but delay (`Id`) and codec plus packet loss
//! (`Ie,eff`), so R = 93.2 - Id - Ie,eff, and the MOS estimate from R
//! (G.107 Annex B). It says how a call sounds from figures a leg measures:
//! loss, one-way delay, the codec.

use crate::codec::Codec;

/// R with every impairment at its G.107 default (no delay, no loss, a
/// codec without impairment).
const R_DEFAULT: f64 = 93.2;

/// How much `codec` impairs speech by itself (`Ie`) and how robust it is
/// to random packet loss (`Bpl`), from ITU-T G.113 Appendix I. G.711 with
/// packet-loss concealment: Ie 0, Bpl 25.1. G.113 gives no narrowband
/// figures for G.722 or Opus; both carry at least G.711's quality and
/// conceal loss as well, so they are rated as G.711 (as common monitors
/// rate them), which keeps MOS comparable across a bridge's legs.
fn codec_impairment(codec: Option<Codec>) -> (f64, f64) {
    match codec {
        Some(Codec::Pcmu | Codec::Pcma | Codec::G722 | Codec::Opus) | None => (0.0, 25.1),
    }
}

/// The delay impairment `Id` for a one-way (mouth to ear) delay in ms:
/// 0.024 d, plus 0.11 (d - 177.3) beyond 177.3 ms, where talkers start to
/// step on each other (the simplified G.107 curve of Cole and Rosenbluth).
fn delay_impairment(one_way_ms: f64) -> f64 {
    let d = one_way_ms.max(0.0);
    0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 }
}

/// `Ie,eff` for `loss_percent` of packets lost at random (BurstR 1).
fn loss_impairment(codec: Option<Codec>, loss_percent: f64) -> f64 {
    let (ie, bpl) = codec_impairment(codec);
    let ppl = loss_percent.clamp(0.0, 100.0);
    ie + (95.0 - ie) * ppl / (ppl + bpl)
}

/// The rating factor R for a call with `codec`, `loss_percent` of its
/// packets lost and `one_way_ms` of delay.
pub fn r_factor(codec: Option<Codec>, loss_percent: f64, one_way_ms: f64) -> f64 {
    R_DEFAULT - delay_impairment(one_way_ms) - loss_impairment(codec, loss_percent)
}

/// The mean opinion score (1 to 4.5) that R predicts (G.107 Annex B).
pub fn mos(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7.0e-6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 0.01
    }

    #[test]
    fn a_perfect_g711_call_rates_r_93_2_and_mos_4_41() {
        let r = r_factor(Some(Codec::Pcmu), 0.0, 0.0);
        assert!(close(r, 93.2), "{r}");
        assert!(close(mos(r), 4.41), "{}", mos(r));
    }

    #[test]
    fn known_points_of_the_mos_curve() {
        // G.107 Annex B: R 50 is MOS 2.58 ("nearly all users dissatisfied"),
        // R 70 MOS 3.60, R 80 MOS 4.02; the ends are clamped.
        assert!(close(mos(50.0), 2.58), "{}", mos(50.0));
        assert!(close(mos(70.0), 3.60), "{}", mos(70.0));
        assert!(close(mos(80.0), 4.02), "{}", mos(80.0));
        assert_eq!((mos(-5.0), mos(0.0), mos(100.0), mos(120.0)), (1.0, 1.0, 4.5, 4.5));
    }

    #[test]
    fn loss_follows_g113_bpl_for_g711() {
        // Ie,eff = 95 Ppl / (Ppl + 25.1): 1 % costs 3.64, 5 % costs 15.78.
        assert!(close(R_DEFAULT - r_factor(Some(Codec::Pcma), 1.0, 0.0), 3.64));
        let r5 = r_factor(Some(Codec::Pcma), 5.0, 0.0);
        assert!(close(R_DEFAULT - r5, 15.78), "{r5}");
        assert!((3.85..3.95).contains(&mos(r5)), "5 % loss rates MOS {}", mos(r5));
    }

    #[test]
    fn delay_costs_little_until_177_ms_then_much_more() {
        assert!(close(delay_impairment(100.0), 2.4));
        assert!(close(delay_impairment(177.3), 4.2552));
        // 300 ms: 7.2 + 0.11 * 122.7.
        assert!(close(delay_impairment(300.0), 20.697));
        assert_eq!(delay_impairment(-1.0), 0.0);
    }
}
