//! The play, record and conference presets, called by baresip (which plays
//! a tone and records what it hears): the caller hears the played file's
//! tone; the recording holds the caller's tone and is a finished file after
//! SIGTERM mid-call; in a conference of three, each hears the other two and
//! not itself, the two left still hear each other after one hangs up, and
//! the room recording holds all three.

use e2e::audio::{read_wav, tone, write_wav, Pcm};
use e2e::baresip::{Baresip, BaresipAccount, BaresipOptions};
use e2e::daemon::Daemon;
use e2e::process::test_dir;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A baresip in its own directory under `dir`, calling without a
/// registrar, playing `play` (a tone WAV) and recording what it hears.
fn caller(dir: &Path, name: &str, play: Option<PathBuf>) -> Baresip {
    let own = dir.join(name);
    std::fs::create_dir_all(&own).unwrap();
    Baresip::start(
        &own,
        &BaresipOptions {
            accounts: vec![BaresipAccount {
                aor: format!("sip:{name}@127.0.0.1"),
                password: None,
                outbound: None,
                auto_answer: false,
                regint: 0,
                params: String::new(),
            }],
            play,
            record: true,
            limit: Duration::from_secs(60),
        },
    )
    .unwrap()
}

fn tone_file(dir: &Path, freq: f64, seconds: f64) -> PathBuf {
    let path = dir.join(format!("tone-{freq}-{seconds}.wav"));
    write_wav(&path, &tone(freq, seconds, 8000, 0.3)).unwrap();
    path
}

/// What baresip heard (sndfile's `*-dec.wav`), once it exists.
fn heard(b: &Baresip) -> Pcm {
    b.heard().unwrap()
}

/// The one file in `dir` (a recordings directory).
fn only_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// A WAV whose RIFF and data sizes were written at the end: a finished file.
fn assert_finished_wav(path: &Path) {
    let data = std::fs::read(path).unwrap();
    assert!(data.len() > 44 && &data[0..4] == b"RIFF", "{} is not a WAV", path.display());
    let riff = u32::from_le_bytes(data[4..8].try_into().unwrap()) as usize;
    assert_eq!(riff, data.len() - 8, "RIFF size not finalized in {}", path.display());
}

#[test]
fn play_caller_hears_the_file() {
    let dir = test_dir("daemon_play");
    let file = tone_file(&dir, 850.0, 3.0);
    let config = format!("preset = \"play\"\n[play]\nfile = \"{}\"\n", file.display());
    let daemon = Daemon::start(&dir, &config, &[]).unwrap();
    let b = caller(&dir, "alice", Some(tone_file(&dir, 440.0, 20.0)));
    b.command("dial", &daemon.uri("announcement")).unwrap();
    b.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    // The daemon hangs up when the file ends.
    b.wait_event("call", "CALL_CLOSED", Duration::from_secs(10)).unwrap();
    daemon.wait_lines(&["playback finished"], 1, Duration::from_secs(2)).unwrap();
    daemon.wait_lines(&["call ended by us (BYE)"], 1, Duration::from_secs(5)).unwrap();
    let pcm = heard(&b);
    let part = pcm.slice(0.5, 2.5);
    assert!(
        part.tone_share(850.0) > 0.8,
        "the caller should hear the file's 850 Hz: share {}, rms {}",
        part.tone_share(850.0),
        part.rms()
    );
    assert!(part.tone_share(440.0) < 0.05, "and not itself");
}

#[test]
fn record_holds_the_callers_tone_after_sigterm_mid_call() {
    let dir = test_dir("daemon_record");
    let rec = dir.join("rec");
    let config = format!("preset = \"record\"\n[record]\ndir = \"{}\"\n", rec.display());
    let mut daemon = Daemon::start(&dir, &config, &[]).unwrap();
    let b = caller(&dir, "alice", Some(tone_file(&dir, 523.0, 20.0)));
    b.command("dial", &daemon.uri("record")).unwrap();
    b.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let status = daemon.terminate(Duration::from_secs(15)).unwrap();
    assert!(status.success(), "{status}");
    // The caller got our BYE.
    b.wait_event("call", "CALL_CLOSED", Duration::from_secs(5)).unwrap();
    let file = only_file(&rec);
    assert!(file.to_string_lossy().ends_with(".wav"), "{}", file.display());
    assert_finished_wav(&file);
    let pcm = read_wav(&file).unwrap();
    let part = pcm.slice(0.5, pcm.seconds());
    assert!(pcm.seconds() > 2.0, "recording only {} s", pcm.seconds());
    assert!(
        part.tone_share(523.0) > 0.8,
        "the recording should hold the caller's 523 Hz: share {}, rms {}",
        part.tone_share(523.0),
        part.rms()
    );
    daemon.wait_lines(&["recording finished"], 1, Duration::from_secs(1)).unwrap();
}

#[test]
fn conference_of_three_mix_minus_and_room_recording() {
    let dir = test_dir("daemon_conference");
    let rec = dir.join("rec");
    let config = format!("preset = \"conference\"\n[conference]\nrecord = true\nrecord_dir = \"{}\"\n", rec.display());
    let daemon = Daemon::start(&dir, &config, &[]).unwrap();
    let freqs = [440.0, 700.0, 1100.0];
    // C's file is short: baresip hangs up when it ends.
    let callers = [
        caller(&dir, "a", Some(tone_file(&dir, freqs[0], 9.0))),
        caller(&dir, "b", Some(tone_file(&dir, freqs[1], 9.0))),
        caller(&dir, "c", Some(tone_file(&dir, freqs[2], 3.5))),
    ];
    for b in &callers {
        b.command("dial", &daemon.uri("4242")).unwrap();
    }
    for b in &callers {
        b.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    }
    daemon.wait_lines(&["joined the conference", "room=4242"], 3, Duration::from_secs(5)).unwrap();
    callers[2].wait_event("call", "CALL_CLOSED", Duration::from_secs(10)).unwrap();
    for b in &callers[..2] {
        b.wait_event("call", "CALL_CLOSED", Duration::from_secs(15)).unwrap();
    }
    daemon.wait_lines(&["room recording finished"], 1, Duration::from_secs(5)).unwrap();

    for (i, b) in callers.iter().enumerate() {
        let pcm = heard(b);
        // All three in the room: 1.0 s to 3.0 s.
        let together = pcm.slice(1.0, 3.0);
        let others: Vec<f64> = (0..3).filter(|j| *j != i).map(|j| freqs[j]).collect();
        for f in &others {
            assert!(
                together.tone_share(*f) > 0.25,
                "caller {i} should hear {f} Hz: share {}, rms {}",
                together.tone_share(*f),
                together.rms()
            );
        }
        assert!(
            together.tone_share(freqs[i]) < 0.05,
            "caller {i} must not hear itself: share {}",
            together.tone_share(freqs[i])
        );
        if i < 2 {
            // After C left (at ~3.5 s): only the other one of A and B.
            let after = pcm.slice(5.0, 8.0);
            let other = freqs[1 - i];
            assert!(
                after.tone_share(other) > 0.8,
                "caller {i} should still hear {other} Hz: share {}, rms {}",
                after.tone_share(other),
                after.rms()
            );
            assert!(after.tone_share(freqs[2]) < 0.05 && after.tone_share(freqs[i]) < 0.05, "caller {i} after C left");
        }
    }
    let file = only_file(&rec);
    assert_finished_wav(&file);
    let room = read_wav(&file).unwrap();
    let together = room.slice(1.0, 3.0);
    for f in freqs {
        assert!(
            together.tone_share(f) > 0.2,
            "the room recording should hold {f} Hz: share {}",
            together.tone_share(f)
        );
    }
}

#[test]
fn conference_star_six_mutes_and_unmutes() {
    let dir = test_dir("daemon_conference_mute");
    let daemon = Daemon::start(&dir, "preset = \"conference\"\n", &[]).unwrap();
    let a = caller(&dir, "a", Some(tone_file(&dir, 440.0, 9.0)));
    let b = caller(&dir, "b", Some(tone_file(&dir, 700.0, 9.0)));
    a.command("dial", &daemon.uri("77")).unwrap();
    a.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    let t0 = Instant::now();
    b.command("dial", &daemon.uri("77")).unwrap();
    b.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    let press = |keys: &str| {
        for k in keys.chars() {
            b.command("sndcode", &k.to_string()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    std::thread::sleep(Duration::from_secs(2).saturating_sub(t0.elapsed()));
    press("*6");
    let muted_at = t0.elapsed().as_secs_f64();
    daemon.wait_lines(&["mute toggled", "muted=true"], 1, Duration::from_secs(3)).unwrap();
    std::thread::sleep(Duration::from_secs(5).saturating_sub(t0.elapsed()));
    press("*6");
    let unmuted_at = t0.elapsed().as_secs_f64();
    daemon.wait_lines(&["mute toggled", "muted=false"], 1, Duration::from_secs(3)).unwrap();
    a.wait_event("call", "CALL_CLOSED", Duration::from_secs(15)).unwrap();
    let pcm = heard(&a);
    let before = pcm.slice(0.8, 1.8);
    let muted = pcm.slice(muted_at + 0.6, unmuted_at - 0.6);
    let after = pcm.slice(unmuted_at + 0.8, unmuted_at + 2.5);
    assert!(before.tone_share(700.0) > 0.8, "A hears B before the mute: {}", before.tone_share(700.0));
    assert!(
        muted.rms() < 0.01,
        "A must not hear muted B ({muted_at:.1}-{unmuted_at:.1} s): rms {}, share {}",
        muted.rms(),
        muted.tone_share(700.0)
    );
    assert!(after.tone_share(700.0) > 0.8, "A hears B again after *6: {}", after.tone_share(700.0));
}

/// Runs a gst-launch-1.0 pipeline to its end (bounded by `timeout`).
fn gst_launch(pipeline: &str) {
    let out = std::process::Command::new("timeout")
        .args(["20", "gst-launch-1.0", "-q"])
        .args(pipeline.split_whitespace())
        .output()
        .unwrap();
    assert!(out.status.success(), "gst-launch-1.0 {pipeline}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn play_ogg_opus_and_record_ogg_opus() {
    let dir = test_dir("daemon_ogg");
    // The file to play, as Ogg/Opus.
    let wav = tone_file(&dir, 950.0, 3.0);
    let ogg = dir.join("tone-950.ogg");
    gst_launch(&format!(
        "filesrc location={} ! wavparse ! audioconvert ! audioresample ! opusenc ! oggmux ! filesink location={}",
        wav.display(),
        ogg.display()
    ));
    let config = format!("preset = \"play\"\n[play]\nfile = \"{}\"\n", ogg.display());
    let player = Daemon::start_named(&dir, "sipbridge-play", &config, &[], &[]).unwrap();
    let b = caller(&dir, "alice", Some(tone_file(&dir, 440.0, 20.0)));
    b.command("dial", &player.uri("x")).unwrap();
    b.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    b.wait_event("call", "CALL_CLOSED", Duration::from_secs(10)).unwrap();
    let part = heard(&b).slice(0.5, 2.5);
    assert!(
        part.tone_share(950.0) > 0.8,
        "the caller should hear the Ogg file's 950 Hz: share {}, rms {}",
        part.tone_share(950.0),
        part.rms()
    );

    // Recording to Ogg/Opus: the caller hangs up (its file ends); the file
    // must decode and hold its tone.
    let rec = dir.join("rec");
    let config = format!("preset = \"record\"\n[record]\ndir = \"{}\"\nformat = \"ogg\"\n", rec.display());
    let recorder = Daemon::start_named(&dir, "sipbridge-record", &config, &[], &[]).unwrap();
    let c = caller(&dir, "carol", Some(tone_file(&dir, 620.0, 3.0)));
    c.command("dial", &recorder.uri("rec")).unwrap();
    c.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    c.wait_event("call", "CALL_CLOSED", Duration::from_secs(10)).unwrap();
    recorder.wait_lines(&["recording finished"], 1, Duration::from_secs(5)).unwrap();
    let file = only_file(&rec);
    assert!(file.to_string_lossy().ends_with(".ogg"), "{}", file.display());
    let decoded = dir.join("decoded.wav");
    gst_launch(&format!(
        "filesrc location={} ! oggdemux ! opusdec ! audioconvert ! audioresample ! audio/x-raw,format=S16LE,channels=1,rate=16000 ! wavenc ! filesink location={}",
        file.display(),
        decoded.display()
    ));
    let pcm = read_wav(&decoded).unwrap();
    assert!(pcm.seconds() > 2.0, "decoded only {} s", pcm.seconds());
    let part = pcm.slice(0.5, pcm.seconds() - 0.3);
    assert!(
        part.tone_share(620.0) > 0.8,
        "the Ogg recording should hold 620 Hz: share {}, rms {}",
        part.tone_share(620.0),
        part.rms()
    );
}

#[test]
fn sigterm_mid_conference_byes_everyone_and_finishes_the_room_recording() {
    let dir = test_dir("daemon_conference_sigterm");
    let rec = dir.join("rec");
    let config = format!("preset = \"conference\"\n[conference]\nrecord = true\nrecord_dir = \"{}\"\n", rec.display());
    let mut daemon = Daemon::start(&dir, &config, &[]).unwrap();
    let a = caller(&dir, "a", Some(tone_file(&dir, 440.0, 20.0)));
    let b = caller(&dir, "b", Some(tone_file(&dir, 1100.0, 20.0)));
    for c in [&a, &b] {
        c.command("dial", &daemon.uri("9")).unwrap();
        c.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    let status = daemon.terminate(Duration::from_secs(15)).unwrap();
    assert!(status.success(), "{status}");
    for c in [&a, &b] {
        c.wait_event("call", "CALL_CLOSED", Duration::from_secs(5)).unwrap();
    }
    assert_eq!(daemon.lines_with(&["call ended by us (BYE)"]).len(), 2, "{}", daemon.log());
    daemon.wait_lines(&["room recording finished"], 1, Duration::from_secs(1)).unwrap();
    let file = only_file(&rec);
    assert_finished_wav(&file);
    let room = read_wav(&file).unwrap();
    let part = room.slice(1.0, room.seconds() - 0.2);
    assert!(room.seconds() > 2.0, "room recording only {} s", room.seconds());
    for f in [440.0, 1100.0] {
        assert!(part.tone_share(f) > 0.3, "the room recording should hold {f} Hz: share {}", part.tone_share(f));
    }
}
