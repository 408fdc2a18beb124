//! [`SipCall`]: one SIP dialog and the RTP leg facing its peer, and the
//! task (the pump) that answers what the peer sends.

use super::error::CallError;
use super::events::{DtmfMethod, Event, Events, Phase};
use super::handover::{Handover, Referral};
use super::negotiation::{self, blocking};
use super::registry::{Calls, Slot};
use crate::ops::CallTally;
use pipelines::sdp::Direction;
use pipelines::{Leg, LegEvent, RecordFormat, Recorder};
use signaling::{Call, CallEvent, Caller, IncomingCall, OfferKind, Party};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

/// How long our own hang-up (BYE, CANCEL) may take before the call is
/// ended anyway.
const HANGUP_TIMEOUT: Duration = Duration::from_secs(4);

/// One SIP dialog and its RTP leg.
pub struct SipCall {
    /// The SIP Call-ID.
    pub id: String,
    pub direction: signaling::Direction,
    /// The SIP peer's URI (From of an incoming call, the target of an outgoing one).
    pub peer: String,
    pub(super) sip: Call,
    rtp: Leg,
    pub(super) state: Mutex<State>,
    pub(super) events: mpsc::UnboundedSender<Event>,
    /// The service's calls: a transfer places its new call among them.
    pub(super) calls: Arc<Calls>,
    /// Who a transfer's new call is from: the account or URI this call
    /// was placed from, or the URI an incoming one was addressed to.
    pub(super) caller: Caller,
    /// What a REFER (or an INVITE with Replaces) gets: the policy of the
    /// account the call came through or was placed from, else the service's.
    pub(super) transfer_policy: super::TransferPolicy,
}

impl std::fmt::Debug for SipCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipCall").field("id", &self.id).field("peer", &self.peer).finish_non_exhaustive()
    }
}

pub(super) struct State {
    pub(super) phase: Phase,
    /// Incoming: the SDP of our 200 (the answer, or our offer when the
    /// INVITE had none).
    local_sdp: Option<String>,
    /// Incoming without an offer: the answer comes in the ACK.
    offerless: bool,
    /// Outgoing: the SDP of the first 18x that had one.
    early_sdp: Option<String>,
    /// Our hold (`SendOnly` or `Inactive`), if we hold the call.
    hold: Option<Direction>,
    recorders: Vec<Recorder>,
    slot: Option<Slot>,
    /// The call's metrics and record, written when it ends.
    tally: Option<CallTally>,
    /// A front-end's leg joined to ours (`joined`), whose figures go into
    /// the record too.
    joined: Option<(&'static str, Leg)>,
    pub(super) handover: Handover,
    /// A REFER the front-end was asked about (policy `ask`).
    pub(super) asked: Option<Referral>,
    /// The call that took this one's place (a transfer).
    pub(super) successor: Option<Arc<SipCall>>,
}

impl SipCall {
    /// An incoming INVITE: a slot under the limit, the RTP leg answering
    /// the offer (or offering, for an offerless INVITE). On failure the
    /// INVITE is rejected with the error's SIP status and the error
    /// returned. The caller then rings, answers or declines.
    pub async fn incoming(calls: &Arc<Calls>, incoming: IncomingCall) -> Result<(Arc<SipCall>, Events), CallError> {
        let IncomingCall { call: sip, from, to, sdp_offer, .. } = incoming;
        let caller = Caller::Guest { uri: to.clone(), display_name: None };
        let tally = calls.ops.tally(sip.id(), &from, &to, "inbound");
        let prepared = async {
            let slot = calls.admit()?;
            let offerless = sdp_offer.is_none();
            let (rtp, leg_events, local) =
                negotiation::new_leg(&format!("call-{}", slot.seq), calls.legs.clone(), sdp_offer).await?;
            Ok::<_, CallError>((slot, offerless, rtp, leg_events, local))
        };
        let (slot, offerless, rtp, leg_events, local) = match prepared.await {
            Ok(v) => v,
            Err(err) => {
                warn!(code = err.sip_status(), error = %err, "call refused");
                if let Err(e) = sip.reject(err.sip_status(), Some(err.reason())) {
                    warn!(error = %e, "cannot send the rejection");
                }
                tally.ended("local", err.sip_status(), &err.to_string());
                return Err(err);
            }
        };
        let state = State::new(Phase::Ringing, slot, Some(local), offerless, tally);
        Ok(SipCall::start(calls, caller, sip, from, rtp, leg_events, state))
    }

    /// Places a call to `uri` with an offer from a new RTP leg.
    pub async fn outgoing(
        calls: &Arc<Calls>,
        caller: Caller,
        uri: &str,
        headers: &[(String, String)],
    ) -> Result<(Arc<SipCall>, Events), CallError> {
        let slot = calls.admit()?;
        let (rtp, leg_events, offer) =
            negotiation::new_leg(&format!("call-{}", slot.seq), calls.legs.clone(), None).await?;
        let from = match &caller {
            Caller::Account(account) => account.aor.clone(),
            Caller::Guest { uri, .. } => uri.clone(),
        };
        let sip = match calls.ua.invite(caller.clone(), uri, Some(offer), headers) {
            Ok(c) => c,
            Err(e) => {
                negotiation::close(rtp, "setup failed").await;
                return Err(e.into());
            }
        };
        let mut tally = calls.ops.tally(sip.id(), &from, uri, "outbound");
        tally.leg("rtp", None);
        let state = State::new(Phase::Calling, slot, None, false, tally);
        Ok(SipCall::start(calls, caller, sip, uri.to_string(), rtp, leg_events, state))
    }

    fn start(
        calls: &Arc<Calls>,
        caller: Caller,
        mut sip: Call,
        peer: String,
        rtp: Leg,
        leg_events: mpsc::UnboundedReceiver<LegEvent>,
        state: State,
    ) -> (Arc<SipCall>, Events) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sip_events = sip.take_events();
        let draining = state.slot.as_ref().expect("a new call holds its slot").draining();
        let call = Arc::new(SipCall {
            id: sip.id().to_string(),
            direction: sip.direction(),
            peer,
            sip,
            rtp,
            state: Mutex::new(state),
            events: tx,
            calls: calls.clone(),
            transfer_policy: calls.transfer.for_uri(match &caller {
                Caller::Account(account) => &account.aor,
                Caller::Guest { uri, .. } => uri,
            }),
            caller,
        });
        let indexed: std::sync::Weak<SipCall> = Arc::downgrade(&call);
        calls.index(&call.id, indexed);
        let span = tracing::Span::current();
        tokio::spawn(tracing::Instrument::instrument(call.clone().pump(sip_events, leg_events, draining), span));
        (call, rx)
    }

    /// The leg facing the SIP peer, for front-ends to join to their media.
    pub fn leg(&self) -> &Leg {
        &self.rtp
    }

    pub fn phase(&self) -> Phase {
        self.state.lock().unwrap().phase
    }

    pub fn is_ended(&self) -> bool {
        self.phase() == Phase::Ended
    }

    /// Outgoing: the header fields of the 2xx that answered (once
    /// [`Event::Answered`] is out).
    pub fn answer_headers(&self) -> Vec<(String, String)> {
        self.sip.answer_headers()
    }

    /// The header fields of the peer's BYE (once [`Event::Ended`] is out;
    /// empty when the call ended otherwise).
    pub fn bye_headers(&self) -> Vec<(String, String)> {
        self.sip.bye_headers()
    }

    /// Our hold direction, when we hold the call.
    pub fn held(&self) -> Option<Direction> {
        self.state.lock().unwrap().hold
    }

    pub fn is_recording(&self) -> bool {
        !self.state.lock().unwrap().recorders.is_empty()
    }

    /// After [`Event::Transferred`]: the call that took this one's place.
    pub fn successor(&self) -> Option<Arc<SipCall>> {
        self.state.lock().unwrap().successor.clone()
    }

    pub(super) fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    pub(super) fn expect_phase(&self, phase: Phase, what: &str) -> Result<(), CallError> {
        match self.phase() {
            p if p == phase => Ok(()),
            Phase::Ended => Err(CallError::WrongState("the call has ended".into())),
            _ => Err(CallError::WrongState(what.into())),
        }
    }

    /// Incoming: 180 Ringing.
    pub fn ringing(&self) -> Result<(), CallError> {
        Ok(self.sip.ringing()?)
    }

    /// Incoming, not answered: 183 Session Progress with our SDP, so the
    /// caller hears early media (an announcement, ringback of our own).
    pub fn progress(&self) -> Result<(), CallError> {
        let sdp = {
            let st = self.state.lock().unwrap();
            if st.phase != Phase::Ringing {
                return Err(CallError::WrongState("only a ringing incoming call can send early media".into()));
            }
            if st.offerless {
                return Err(CallError::WrongState("the INVITE had no offer: no early media before its ACK".into()));
            }
            st.local_sdp.clone().unwrap_or_default()
        };
        Ok(self.sip.progress(&sdp)?)
    }

    /// Incoming: 200 OK with our SDP.
    pub fn answer(&self) -> Result<(), CallError> {
        self.answer_with(&[])
    }

    /// [`SipCall::answer`] with extra header fields (name, value) on the 200.
    pub fn answer_with(&self, headers: &[(String, String)]) -> Result<(), CallError> {
        let sdp = {
            let mut st = self.state.lock().unwrap();
            if st.phase != Phase::Ringing {
                return Err(CallError::WrongState("only a ringing incoming call can be answered".into()));
            }
            st.phase = Phase::Active;
            if let Some(tally) = &mut st.tally {
                tally.answered();
                tally.leg("rtp", self.rtp.port().send_codec().map(|c| c.sdp_name()));
            }
            st.local_sdp.clone().unwrap_or_default()
        };
        Ok(self.sip.answer_with(&sdp, headers)?)
    }

    /// Incoming, not answered: a final failure response (486, 603, ...).
    pub async fn decline(&self, code: u16) -> Result<(), CallError> {
        self.decline_with(code, &[]).await
    }

    /// [`SipCall::decline`] with extra header fields (name, value) on the response.
    pub async fn decline_with(&self, code: u16, headers: &[(String, String)]) -> Result<(), CallError> {
        self.expect_phase(Phase::Ringing, "only an incoming call that has not been answered can be declined")?;
        if !(300..700).contains(&code) {
            return Err(CallError::WrongState(format!("{code} is not a SIP failure status (300-699)")));
        }
        self.sip.reject_with(code, None, headers)?;
        self.end(Party::Local, code, "declined").await;
        Ok(())
    }

    /// Ends the call from our side, whatever its state: CANCEL an unanswered
    /// outgoing call, 603 an unanswered incoming one, BYE an answered one.
    /// The call is ended locally even when the peer does not answer.
    pub async fn hangup(&self, reason: &str) -> Result<(), CallError> {
        self.hangup_with(reason, &[]).await
    }

    /// [`SipCall::hangup`] with extra header fields (name, value) on the
    /// CANCEL, the failure response or the BYE.
    pub async fn hangup_with(&self, reason: &str, headers: &[(String, String)]) -> Result<(), CallError> {
        let code = match self.phase() {
            Phase::Ended => return Ok(()),
            Phase::Calling => 487,
            Phase::Ringing => 603,
            Phase::Active => 200,
        };
        // Recordings first, so their files are finished whatever SIP does next.
        let recorders = std::mem::take(&mut self.state.lock().unwrap().recorders);
        finish_recordings(recorders).await;
        let result = match tokio::time::timeout(HANGUP_TIMEOUT, self.sip.hangup_with(headers)).await {
            Ok(r) => r.map_err(CallError::from),
            Err(_) => Err(CallError::Sip(signaling::Error::Timeout)),
        };
        let request = match code {
            487 => "CANCEL",
            603 => "603",
            _ => "BYE",
        };
        match &result {
            Ok(()) => info!(%reason, "call ended by us ({request})"),
            Err(e) => warn!(%reason, error = %e, "hang-up did not complete; ending the call anyway"),
        }
        self.end(Party::Local, code, reason).await;
        result
    }

    /// Holds the call (`Some(SendOnly)` or `Some(Inactive)`) or resumes it
    /// (`None`) with a re-INVITE; returns the direction the peer answered.
    pub async fn hold(&self, hold: Option<Direction>) -> Result<Direction, CallError> {
        self.expect_phase(Phase::Active, "hold and resume need an answered call")?;
        if self.held() == hold {
            return Err(CallError::WrongState(
                if hold.is_some() { "the call is already on hold" } else { "the call is not on hold" }.into(),
            ));
        }
        let offer = negotiation::offer_with_direction(&self.rtp, hold.unwrap_or(Direction::SendRecv)).await?;
        let answer = self.sip.reinvite(&offer).await?;
        let peer = match answer {
            Some(answer) => negotiation::apply_answer(&self.rtp, answer).await?,
            None => Direction::SendRecv,
        };
        self.state.lock().unwrap().hold = hold;
        info!(hold = %hold.unwrap_or(Direction::SendRecv).as_str(), peer = %peer.as_str(), "hold changed");
        Ok(peer)
    }

    /// DTMF to the SIP peer, RFC 4733 or INFO.
    pub async fn send_dtmf(&self, tones: &str, method: DtmfMethod, duration_ms: u32) -> Result<(), CallError> {
        self.expect_phase(Phase::Active, "DTMF needs an answered call")?;
        pipelines::dtmf::parse_tones(tones)?;
        match method {
            DtmfMethod::Rfc4733 => {
                let (rtp, tones) = (self.rtp.clone(), tones.to_string());
                blocking(move || Ok(rtp.send_dtmf(&tones, duration_ms)?)).await
            }
            DtmfMethod::Info => {
                for digit in tones.chars() {
                    self.sip.send_dtmf(digit.to_ascii_uppercase(), duration_ms).await?;
                }
                Ok(())
            }
        }
    }

    /// INFO inside the call.
    pub async fn info(&self, content_type: &str, body: &str) -> Result<(), CallError> {
        self.expect_phase(Phase::Active, "INFO needs an answered call")?;
        Ok(self.sip.info(content_type, body).await?)
    }

    /// MESSAGE inside the call.
    pub async fn message(&self, content_type: &str, body: &str) -> Result<(), CallError> {
        self.expect_phase(Phase::Active, "a MESSAGE inside a call needs an answered call")?;
        Ok(self.sip.message(content_type, body).await?)
    }

    /// Starts recording what each leg receives, one file per leg. Files are
    /// finished by [`SipCall::stop_recording`] or when the call ends.
    pub async fn start_recording(
        &self,
        targets: Vec<(Leg, PathBuf)>,
        format: RecordFormat,
    ) -> Result<Vec<PathBuf>, CallError> {
        if self.is_ended() {
            return Err(CallError::WrongState("the call has ended".into()));
        }
        if self.is_recording() {
            return Err(CallError::WrongState("the call is already being recorded; stop first".into()));
        }
        let recorders = blocking(move || {
            let mut out = Vec::new();
            for (leg, path) in targets {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        CallError::Media(pipelines::Error::File(format!("cannot create {}: {e}", dir.display())))
                    })?;
                }
                out.push(Recorder::start(leg.port(), &path, format)?);
            }
            Ok(out)
        })
        .await?;
        let files: Vec<PathBuf> = recorders.iter().map(|r| r.path().to_path_buf()).collect();
        let too_late = {
            let mut st = self.state.lock().unwrap();
            if st.phase == Phase::Ended {
                Some(recorders)
            } else {
                st.recorders = recorders;
                if let Some(tally) = &mut st.tally {
                    files.iter().for_each(|f| tally.recording(f.clone()));
                }
                None
            }
        };
        match too_late {
            Some(recorders) => {
                finish_recordings(recorders).await;
                Err(CallError::WrongState("the call ended while recording started".into()))
            }
            None => Ok(files),
        }
    }

    /// Finishes the recordings; returns their files.
    pub async fn stop_recording(&self) -> Result<Vec<PathBuf>, CallError> {
        let recorders = std::mem::take(&mut self.state.lock().unwrap().recorders);
        if recorders.is_empty() {
            return Err(CallError::WrongState("the call is not being recorded".into()));
        }
        Ok(finish_recordings(recorders).await)
    }

    /// Ends the call once: recordings finished, the leg closed, the slot
    /// given back, [`Event::Ended`] sent.
    pub async fn end(&self, by: Party, code: u16, reason: &str) {
        let (recorders, slot, mut tally, joined) = {
            let mut st = self.state.lock().unwrap();
            if st.phase == Phase::Ended {
                return;
            }
            st.phase = Phase::Ended;
            (std::mem::take(&mut st.recorders), st.slot.take(), st.tally.take(), st.joined.take())
        };
        self.calls.forget(&self.id);
        finish_recordings(recorders).await;
        // The leg's figures, while it still has them (an RTP leg's are
        // counters read without blocking).
        if let (Some(tally), Ok(stats)) = (&mut tally, self.rtp.stats()) {
            tally.leg_quality("rtp", &stats);
        }
        // A WebRTC leg's are webrtcbin's, read through a promise: off the
        // async threads. Its owner closes it after our Event::Ended.
        if let (Some(tally), Some((kind, leg))) = (&mut tally, joined) {
            if let Ok(stats) = blocking(move || Ok(leg.stats()?)).await {
                tally.leg_quality(kind, &stats);
            }
        }
        negotiation::close(self.rtp.clone(), "call ended").await;
        let by_name = if by == Party::Local { "local" } else { "remote" };
        info!(by = %by_name, code, %reason, "call ended");
        if let Some(tally) = tally {
            tally.ended(by_name, code, reason);
        }
        let ended = self.state.lock().unwrap().handover.on_end(Event::Ended { by, code, reason: reason.to_string() });
        if let Some(ended) = ended {
            self.emit(ended);
        }
        drop(slot);
    }

    async fn pump(
        self: Arc<Self>,
        mut sip: mpsc::UnboundedReceiver<CallEvent>,
        mut legs: mpsc::UnboundedReceiver<LegEvent>,
        mut draining: watch::Receiver<bool>,
    ) {
        let mut told = false;
        loop {
            tokio::select! {
                // The service drains: hang up (once; then wait for the end).
                _ = async { drop(draining.wait_for(|d| *d).await) }, if !told => {
                    told = true;
                    let _ = self.hangup("shutdown").await;
                }
                ev = sip.recv() => match ev {
                    Some(ev) => self.on_sip(ev).await,
                    None => break,
                },
                Some(ev) = legs.recv() => self.on_leg(ev).await,
            }
            if self.is_ended() {
                return;
            }
        }
        // The SIP side went quiet without saying how: make sure it ends.
        self.end(Party::Remote, 500, "call gone").await;
    }

    async fn on_sip(self: &Arc<Self>, ev: CallEvent) {
        match ev {
            CallEvent::Trying => {}
            CallEvent::Ringing => self.emit(Event::Ringing),
            CallEvent::Progress { code, sdp } => {
                let early_media = sdp.is_some();
                if let Some(sdp) = sdp {
                    let first = self.state.lock().unwrap().early_sdp.is_none();
                    if first {
                        self.state.lock().unwrap().early_sdp = Some(sdp.clone());
                        if let Err(e) = negotiation::apply_answer(&self.rtp, sdp).await {
                            warn!(error = %e, "early SIP answer not usable");
                        }
                    }
                }
                self.emit(Event::Progress { code, early_media });
            }
            CallEvent::Answered { sdp } => {
                let early = self.state.lock().unwrap().early_sdp.clone();
                if let Some(sdp) = sdp {
                    let applied = match early {
                        None => negotiation::apply_answer(&self.rtp, sdp).await.map(drop),
                        // The 200 changed what the 183 said (a sendonly
                        // announcement becoming sendrecv): take the final one.
                        Some(e) if e.trim() != sdp.trim() => negotiation::reapply_answer(&self.rtp, sdp).await,
                        Some(_) => Ok(()),
                    };
                    if let Err(e) = applied {
                        warn!(error = %e, "SIP answer not usable");
                    }
                }
                {
                    let mut st = self.state.lock().unwrap();
                    st.phase = Phase::Active;
                    if let Some(tally) = &mut st.tally {
                        tally.answered();
                        tally.leg_codec("rtp", self.codec_name());
                    }
                }
                info!(codec = %self.codec_name(), "answered");
                self.emit(Event::Answered);
            }
            CallEvent::Confirmed { sdp } => {
                let offerless = self.state.lock().unwrap().offerless;
                if offerless {
                    let applied = match sdp {
                        Some(answer) => negotiation::apply_answer(&self.rtp, answer).await.map(drop),
                        None => Err(CallError::BadSdp("offerless INVITE and no answer in the ACK".into())),
                    };
                    if let Err(e) = applied {
                        warn!(error = %e, "the answer in the ACK is unusable");
                        let _ = self.hangup("bad answer in ACK").await;
                        return;
                    }
                    if let Some(tally) = &mut self.state.lock().unwrap().tally {
                        tally.leg_codec("rtp", self.codec_name());
                    }
                    info!(codec = %self.codec_name(), "media negotiated from the ACK");
                }
                debug!("ACK received");
                self.emit(Event::Confirmed);
            }
            CallEvent::Failed { code, reason } => self.end(Party::Remote, code, &reason).await,
            CallEvent::Ended { by, reason } => {
                let code = match reason.as_str() {
                    "CANCEL" => 487,
                    r => r.strip_prefix("rejected ").and_then(|c| c.parse().ok()).unwrap_or(200),
                };
                self.end(by, code, &reason).await
            }
            CallEvent::Offer { kind, sdp } => self.on_offer(kind, sdp).await,
            CallEvent::Info { content_type, body, dtmf } => match dtmf {
                Some(d) => {
                    self.emit(Event::Dtmf { digit: d.digit, method: DtmfMethod::Info, duration_ms: d.duration_ms })
                }
                None => self.emit(Event::Info { content_type, body }),
            },
            CallEvent::Message { content_type, body } => self.emit(Event::Message { content_type, body }),
            CallEvent::Refer { target, referred_by, replaces } => self.on_refer(target, referred_by, replaces).await,
            CallEvent::ReferProgress { code, reason, done } => {
                info!(code, %reason, done, "transfer progress");
                self.emit(Event::TransferProgress { code, reason, done })
            }
        }
    }

    /// A re-INVITE or UPDATE: hold, resume, a codec change. Answered from the
    /// same leg; a refused offer keeps the session as it was.
    async fn on_offer(&self, kind: OfferKind, sdp: Option<String>) {
        match negotiation::answer_offer(&self.rtp, sdp).await {
            Ok((answer, direction)) => {
                let answered = negotiation::audio_direction(&answer).unwrap_or(Direction::SendRecv);
                info!(?kind, offered = %direction.as_str(), direction = %answered.as_str(), "new offer answered");
                if let Err(e) = self.sip.accept_offer(&answer).await {
                    warn!(error = %e, "cannot answer the offer");
                }
                self.emit(Event::Reoffered { kind, direction });
            }
            Err(err) => {
                warn!(?kind, code = err.sip_status(), error = %err, "offer refused");
                let _ = self.sip.reject_offer(err.sip_status()).await;
            }
        }
    }

    async fn on_leg(&self, ev: LegEvent) {
        match ev {
            LegEvent::Dtmf { tone } => {
                self.emit(Event::Dtmf { digit: tone, method: DtmfMethod::Rfc4733, duration_ms: None })
            }
            // No RTP (on hold: no RTCP either) for `media.timeout` from a
            // peer that should be sending: a phone gone without a BYE.
            LegEvent::MediaTimeout { silent_for_ms, held } if self.phase() == Phase::Active => {
                warn!(silent_for_ms, held, "no media from the peer for the media timeout; hanging up");
                let _ = self.hangup("media timeout").await;
            }
            LegEvent::ConnectionStateChange(state) => self.emit(Event::Media(state)),
            LegEvent::Closed { reason } if !self.is_ended() => {
                warn!(%reason, "media stopped on its own");
                let _ = self.hangup("media stopped").await;
            }
            _ => {}
        }
    }

    /// A front-end joined this call's RTP leg to a leg of its own (`kind`
    /// `webrtc`), passing audio through or transcoding: for the metrics and
    /// the call record (its codec now, its quality at the end).
    pub fn joined(&self, kind: &'static str, leg: &Leg, passthrough: bool) {
        let mut st = self.state.lock().unwrap();
        if let Some(tally) = &mut st.tally {
            tally.leg(kind, leg.port().send_codec().map(|c| c.sdp_name()));
            tally.media_path(passthrough);
            st.joined = Some((kind, leg.clone()));
        }
    }

    fn codec_name(&self) -> &'static str {
        self.rtp.port().send_codec().map(|c| c.sdp_name()).unwrap_or("?")
    }
}

impl State {
    fn new(phase: Phase, slot: Slot, local_sdp: Option<String>, offerless: bool, tally: CallTally) -> State {
        State {
            phase,
            local_sdp,
            offerless,
            early_sdp: None,
            hold: None,
            recorders: Vec::new(),
            slot: Some(slot),
            tally: Some(tally),
            joined: None,
            handover: Handover::Idle,
            asked: None,
            successor: None,
        }
    }
}

/// Finishes recordings off the async threads (a recorder waits for its
/// file to be finalized); returns their files.
async fn finish_recordings(recorders: Vec<Recorder>) -> Vec<PathBuf> {
    if recorders.is_empty() {
        return Vec::new();
    }
    let span = tracing::Span::current();
    blocking(move || {
        let _enter = span.enter();
        let mut files = Vec::new();
        for r in recorders {
            let path = r.path().to_path_buf();
            match r.stop() {
                Ok(()) => info!(file = %path.display(), "recording finished"),
                Err(e) => warn!(file = %path.display(), error = %e, "recording could not be finished"),
            }
            files.push(path);
        }
        Ok(files)
    })
    .await
    .unwrap_or_default()
}
