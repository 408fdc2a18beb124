//! One browser <-> SIP call: a call-layer [`SipCall`] (the SIP dialog and
//! the RTP leg towards the SIP peer), a WebRTC leg towards the browser, a
//! [`Link`] between them (passthrough or transcoding), and the task turning
//! call events and WebRTC leg events into the web user's `sip.event`s.
//!
//! Hold is the call layer's re-INVITE (`a=sendonly` or `a=inactive`) plus
//! the link cut, so the browser hears silence.

use super::browser::Browser;
use super::errors::{call_state, codes, err, from_call, from_media};
use crate::call::{blocking, CallError, Calls, DtmfMethod, Event, Events, Phase, SipCall};
use crate::protocol::{stats, RpcError};
use pipelines::sdp::Direction;
use pipelines::{DescriptionKind, Leg, LegEvent, Link, RecordFormat};
use serde_json::{json, Value};
use signaling::{Caller, IncomingCall, OfferKind, Party};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

struct State {
    link: Option<Link>,
    dtmf_method: DtmfMethod,
    /// Incoming: the browser's answer is applied (by sip.progress or sip.accept).
    browser_answered: bool,
}

pub struct GwCall {
    pub id: String,
    /// The SIP side; another call once the SIP peer transferred this one.
    sip: Mutex<Arc<SipCall>>,
    webrtc: Leg,
    state: Mutex<State>,
    browser: Browser,
    recordings_dir: PathBuf,
}

type LegRx = mpsc::UnboundedReceiver<LegEvent>;

/// The browser's leg, made off the async threads (ICE gathering blocks):
/// the answer to the browser's offer, or an offer of ours.
async fn webrtc_leg(calls: &Calls, id: &str, offer: Option<String>) -> Result<(Leg, LegRx, Value), RpcError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (name, options) = (format!("{id}-webrtc"), calls.legs.clone());
    let (leg, jsep) = blocking(move || {
        let events: pipelines::EventHandler = Arc::new(move |ev| {
            let _ = tx.send(ev);
        });
        let leg = Leg::new_webrtc(&name, options, events)?;
        let local = (|| {
            if let Some(sdp) = &offer {
                leg.set_remote_description(DescriptionKind::Offer, sdp)?;
            }
            leg.local_description()
        })();
        match local {
            Ok(d) => Ok((leg, jsep(d.kind, d.sdp))),
            Err(e) => {
                leg.close("setup failed");
                Err(e.into())
            }
        }
    })
    .await
    .map_err(from_call)?;
    Ok((leg, rx, jsep))
}

pub fn jsep(kind: DescriptionKind, sdp: String) -> Value {
    json!({ "type": kind.as_str(), "sdp": sdp })
}

impl GwCall {
    /// `sip.call`: with the browser's offer we answer it at once (so ICE and
    /// DTLS come up while the SIP side rings, ready for early media);
    /// without one we offer. Returns the call and the JSEP for the browser.
    #[allow(clippy::too_many_arguments)]
    pub async fn outgoing(
        calls: &Arc<Calls>,
        browser: Browser,
        recordings_dir: PathBuf,
        id: String,
        caller: Caller,
        uri: &str,
        headers: &[(String, String)],
        offer: Option<String>,
        dtmf_method: DtmfMethod,
    ) -> Result<(Arc<GwCall>, Value), RpcError> {
        let (webrtc, legs, browser_jsep) = webrtc_leg(calls, &id, offer).await?;
        let (sip, events) = match SipCall::outgoing(calls, caller, uri, headers).await {
            Ok(v) => v,
            Err(e) => {
                close_leg(webrtc).await;
                return Err(from_call(e));
            }
        };
        let call = GwCall::join(id, sip, webrtc, browser, recordings_dir, dtmf_method);
        tokio::spawn(call.clone().pump(events, legs));
        Ok((call, browser_jsep))
    }

    /// An incoming INVITE for this user: the SIP offer goes to the RTP leg
    /// (the call layer answers 488 when no codec fits), the WebRTC leg
    /// offers to the browser, and the SIP side hears 180 until `sip.accept`.
    pub async fn incoming(
        calls: &Arc<Calls>,
        browser: Browser,
        recordings_dir: PathBuf,
        id: String,
        inc: IncomingCall,
    ) -> Result<(Arc<GwCall>, Value), RpcError> {
        let (sip, events) = SipCall::incoming(calls, inc).await.map_err(from_call)?;
        let (webrtc, legs, browser_jsep) = match webrtc_leg(calls, &id, None).await {
            Ok(v) => v,
            Err(e) => {
                let status = e.data.as_ref().and_then(|d| d["sipStatus"].as_u64()).unwrap_or(500) as u16;
                let _ = sip.decline(status).await;
                return Err(e);
            }
        };
        if let Err(e) = sip.ringing() {
            tracing::warn!(call = %id, error = %e, "could not send 180");
        }
        let call = GwCall::join(id, sip, webrtc, browser, recordings_dir, DtmfMethod::Rfc4733);
        tokio::spawn(call.clone().pump(events, legs));
        Ok((call, browser_jsep))
    }

    fn join(
        id: String,
        sip: Arc<SipCall>,
        webrtc: Leg,
        browser: Browser,
        recordings_dir: PathBuf,
        dtmf_method: DtmfMethod,
    ) -> Arc<GwCall> {
        let link = Link::new(webrtc.port(), sip.leg().port());
        Arc::new(GwCall {
            id,
            sip: Mutex::new(sip),
            webrtc,
            state: Mutex::new(State { link: Some(link), dtmf_method, browser_answered: false }),
            browser,
            recordings_dir,
        })
    }

    fn sip(&self) -> Arc<SipCall> {
        self.sip.lock().unwrap().clone()
    }

    fn emit(&self, event: &str, mut params: Value) {
        params["call"] = json!(self.id);
        self.browser.emit(event, params);
    }

    pub fn is_ended(&self) -> bool {
        self.sip().is_ended()
    }

    /// `sip.progress`: the browser's answer to our offer, then 183 with SDP
    /// to the SIP caller: it hears the browser before the call is answered.
    pub async fn progress(self: &Arc<Self>, answer: String) -> Result<(), RpcError> {
        self.apply_browser_answer(answer).await?;
        self.sip().progress().map_err(from_call)?;
        self.emit("progress", json!({ "code": 183, "earlyMedia": true }));
        Ok(())
    }

    /// `sip.accept`: the browser's answer to our offer (unless `sip.progress`
    /// gave it already), then 200 OK (with `headers`) to the SIP caller.
    pub async fn accept(
        self: &Arc<Self>,
        answer: Option<String>,
        dtmf_method: Option<DtmfMethod>,
        headers: &[(String, String)],
    ) -> Result<(), RpcError> {
        match answer {
            Some(answer) => self.apply_browser_answer(answer).await?,
            None if !self.state.lock().unwrap().browser_answered => {
                return Err(err(codes::JSEP, "sip.accept needs the browser's answer in jsep"));
            }
            None => {}
        }
        if let Some(m) = dtmf_method {
            self.state.lock().unwrap().dtmf_method = m;
        }
        self.sip().answer_with(headers).map_err(from_call)?;
        self.media_joined();
        self.emit("accepted", json!({ "username": self.sip().peer }));
        Ok(())
    }

    /// The browser's answer to the offer of `incomingcall`, once.
    async fn apply_browser_answer(&self, answer: String) -> Result<(), RpcError> {
        if self.sip().direction != signaling::Direction::Incoming {
            return Err(call_state("this is for incoming calls; this one is outgoing"));
        }
        if self.sip().phase() != Phase::Ringing {
            return Err(call_state("the call has already been accepted or has ended"));
        }
        if self.state.lock().unwrap().browser_answered {
            return Err(call_state("the browser's answer was given already (sip.progress); sip.accept without jsep"));
        }
        let webrtc = self.webrtc.clone();
        blocking(move || Ok(webrtc.set_remote_description(DescriptionKind::Answer, &answer)?))
            .await
            .map_err(from_call)?;
        self.state.lock().unwrap().browser_answered = true;
        Ok(())
    }

    /// `sip.decline`: a final failure response (486 by default) with `headers`.
    pub async fn decline(self: &Arc<Self>, code: u16, headers: &[(String, String)]) -> Result<(), RpcError> {
        if !(300..700).contains(&code) {
            return Err(err(codes::INVALID_PARAMS, format!("code must be a SIP failure status (300-699), not {code}")));
        }
        if self.sip().direction != signaling::Direction::Incoming {
            return Err(call_state("only an incoming call that has not been accepted can be declined"));
        }
        self.sip().decline_with(code, headers).await.map_err(from_call)
    }

    /// `sip.hangup`: CANCEL, 603 or BYE, whichever fits, with `headers`.
    pub async fn hangup(self: &Arc<Self>, headers: &[(String, String)]) -> Result<(), RpcError> {
        let reason = match self.sip().phase() {
            Phase::Ended => return Err(call_state("the call has already ended")),
            Phase::Calling => "cancelled",
            Phase::Ringing => "declined",
            Phase::Active => "hangup",
        };
        self.sip().hangup_with(reason, headers).await.map_err(from_call)
    }

    /// `sip.hold` (`sendonly` or `inactive`) and `sip.unhold` (`None`):
    /// re-INVITE towards the SIP peer; the link is cut while held.
    pub async fn set_hold(self: &Arc<Self>, hold: Option<Direction>) -> Result<Value, RpcError> {
        if self.sip().phase() != Phase::Active {
            return Err(call_state("hold and unhold need an answered call"));
        }
        if hold.is_some() && self.sip().held().is_none() {
            self.state.lock().unwrap().link = None; // the browser hears silence
        }
        let result = self.sip().hold(hold).await;
        let held = self.sip().held().is_some();
        {
            let mut st = self.state.lock().unwrap();
            if !held && !self.sip().is_ended() && st.link.is_none() {
                st.link = Some(Link::new(self.webrtc.port(), self.sip().leg().port()));
            }
        }
        let peer = result.map_err(from_call)?;
        let direction = hold.unwrap_or(Direction::SendRecv);
        Ok(json!({ "held": held, "direction": direction.as_str(), "peerDirection": peer.as_str() }))
    }

    /// `sip.update`: renegotiation with the browser. An offer is answered;
    /// no JSEP asks the bridge to offer; an answer completes that offer.
    pub async fn update(self: &Arc<Self>, jsep_in: Option<(DescriptionKind, String)>) -> Result<Value, RpcError> {
        if self.is_ended() {
            return Err(call_state("the call has ended"));
        }
        let webrtc = self.webrtc.clone();
        blocking(move || match jsep_in {
            Some((DescriptionKind::Answer, sdp)) => {
                webrtc.set_remote_description(DescriptionKind::Answer, &sdp)?;
                Ok(json!({}))
            }
            offer => {
                if let Some((_, sdp)) = offer {
                    webrtc.set_remote_description(DescriptionKind::Offer, &sdp)?;
                }
                let d = webrtc.local_description()?;
                Ok(json!({ "jsep": jsep(d.kind, d.sdp) }))
            }
        })
        .await
        .map_err(from_call)
    }

    /// `sip.trickle`: a candidate from the browser (empty: end of candidates).
    pub async fn trickle(self: &Arc<Self>, candidate: String, index: u32) -> Result<(), RpcError> {
        let webrtc = self.webrtc.clone();
        blocking(move || Ok(webrtc.add_ice_candidate(&candidate, index)?)).await.map_err(from_call)
    }

    /// `sip.dtmf`: tones to the SIP peer, RFC 4733 or INFO.
    pub async fn dtmf(
        self: &Arc<Self>,
        tones: String,
        method: Option<DtmfMethod>,
        duration: u32,
    ) -> Result<(), RpcError> {
        pipelines::dtmf::parse_tones(&tones).map_err(from_media)?;
        let method = method.unwrap_or(self.state.lock().unwrap().dtmf_method);
        self.sip().send_dtmf(&tones, method, duration).await.map_err(from_call)
    }

    /// `sip.transfer` with `target`: the SIP peer is asked (REFER) to call
    /// it; its progress comes as `transfer` events.
    pub async fn transfer_to(&self, target: &str) -> Result<(), RpcError> {
        self.sip().transfer_to(target).await.map_err(from_call)
    }

    /// `sip.transfer` with `replaces`: the SIP peer is asked to call
    /// `other`'s SIP peer, replacing that call (attended transfer).
    pub async fn transfer_replacing(&self, other: &GwCall) -> Result<(), RpcError> {
        self.sip().transfer_replacing(&other.sip()).await.map_err(from_call)
    }

    /// `sip.answerTransfer`: the browser's answer to `transferrequest`.
    pub async fn answer_transfer(&self, accept: bool) -> Result<(), RpcError> {
        self.sip().answer_transfer(accept).await.map_err(from_call)
    }

    pub async fn info(self: &Arc<Self>, content_type: &str, body: &str) -> Result<(), RpcError> {
        self.sip().info(content_type, body).await.map_err(from_call)
    }

    pub async fn message(self: &Arc<Self>, content_type: &str, body: &str) -> Result<(), RpcError> {
        self.sip().message(content_type, body).await.map_err(from_call)
    }

    /// `sip.recording`: WAV files of what the SIP peer sends (`peer`) and
    /// what the browser sends (`user`).
    pub async fn recording(
        self: &Arc<Self>,
        start: bool,
        peer: bool,
        user: bool,
        name: Option<String>,
    ) -> Result<Value, RpcError> {
        if self.is_ended() {
            return Err(call_state("the call has ended"));
        }
        if !start {
            let files = self.sip().stop_recording().await.map_err(recording_error)?;
            let v = json!({ "recording": false, "files": files });
            self.emit("recordingupdated", v.clone());
            return Ok(v);
        }
        if !peer && !user {
            return Err(err(codes::INVALID_PARAMS, "nothing to record: set peer and/or user"));
        }
        let base = match name {
            Some(n)
                if !n.is_empty()
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    && !n.starts_with('.') =>
            {
                n
            }
            Some(_) => {
                return Err(err(
                    codes::INVALID_PARAMS,
                    "filename may hold only letters, digits, '-', '_' and '.' (no directories)",
                ))
            }
            None => format!(
                "{}-{}",
                self.id,
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
            ),
        };
        let dir = &self.recordings_dir;
        let mut targets = Vec::new();
        if peer {
            targets.push((self.sip().leg().clone(), dir.join(format!("{base}-peer.wav"))));
        }
        if user {
            targets.push((self.webrtc.clone(), dir.join(format!("{base}-user.wav"))));
        }
        let files = self.sip().start_recording(targets, RecordFormat::Wav).await.map_err(recording_error)?;
        let v = json!({ "recording": true, "files": files });
        self.emit("recordingupdated", v.clone());
        Ok(v)
    }

    /// Both legs' quality now: `peer` the SIP side's RTP leg, `user` the
    /// browser's WebRTC leg (docs/protocol.md, `session.getStats`'s reports).
    pub async fn stats(&self) -> Result<Value, RpcError> {
        let (peer, user) = (self.sip().leg().clone(), self.webrtc.clone());
        let (peer, user) = blocking(move || Ok((peer.stats()?, user.stats()?))).await.map_err(from_call)?;
        Ok(json!({ "peer": stats::reports(&peer), "user": stats::reports(&user) }))
    }

    async fn pump(self: Arc<Self>, mut events: Events, mut legs: LegRx) {
        // `stats` events at the user's interval (sip.register), if any.
        let interval = self.browser.stats_interval();
        let mut ticks = tokio::time::interval(interval.unwrap_or(std::time::Duration::from_secs(3600)));
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = ticks.tick(), if interval.is_some() => match self.stats().await {
                    Ok(stats) => self.emit("stats", stats),
                    Err(e) => tracing::debug!(error = %e.message, "no stats"),
                },
                ev = events.recv() => match ev {
                    Some(Event::Ended { by, code, reason }) => {
                        self.ended(by, code, &reason).await;
                        return;
                    }
                    Some(ev) => self.on_call(ev),
                    None => return,
                },
                Some(ev) = legs.recv() => self.on_browser_leg(ev),
            }
        }
    }

    /// The call is over: the browser's leg down, `hangup` sent, the slot freed.
    async fn ended(&self, by: Party, code: u16, reason: &str) {
        let link = self.state.lock().unwrap().link.take();
        drop(link);
        close_leg(self.webrtc.clone()).await;
        let by = if by == Party::Local { "local" } else { "remote" };
        let headers = self.browser.pick_headers(&self.sip().bye_headers());
        self.emit("hangup", json!({ "code": code, "reason": reason, "by": by, "headers": headers }));
        self.browser.call_ended(&self.id);
    }

    /// Both legs negotiated: the browser's leg and how audio crosses the
    /// link go into the call's metrics and record.
    fn media_joined(&self) {
        let passthrough = self.state.lock().unwrap().link.as_ref().is_some_and(Link::is_passthrough);
        self.sip().joined("webrtc", &self.webrtc, passthrough);
    }

    fn on_call(&self, ev: Event) {
        match ev {
            Event::Ringing => self.emit("ringing", json!({})),
            Event::Progress { code, early_media } => self.emit(
                if early_media { "progress" } else { "ringing" },
                json!({ "code": code, "earlyMedia": early_media }),
            ),
            Event::Answered => {
                self.media_joined();
                let headers = self.browser.pick_headers(&self.sip().answer_headers());
                self.emit("accepted", json!({ "username": self.sip().peer, "headers": headers }))
            }
            Event::Reoffered { kind, direction } => {
                let request = if kind == OfferKind::Update { "UPDATE" } else { "re-INVITE" };
                self.emit("updatingcall", json!({ "request": request, "direction": direction.as_str() }));
            }
            Event::Dtmf { digit, method, duration_ms } => {
                let mut v = json!({ "tone": digit.to_string(), "method": method.as_str() });
                if let Some(d) = duration_ms {
                    v["duration"] = json!(d);
                }
                self.emit("dtmf", v)
            }
            Event::Info { content_type, body } => {
                self.emit("info", json!({ "contentType": content_type, "content": body }))
            }
            Event::Message { content_type, body } => {
                self.emit("message", json!({ "sender": self.sip().peer, "contentType": content_type, "content": body }))
            }
            Event::TransferRequested { target, referred_by } => {
                self.emit("transferrequest", json!({ "target": target, "referredBy": referred_by }))
            }
            Event::TransferProgress { code, reason, done } => {
                self.emit("transfer", json!({ "code": code, "reason": reason, "done": done }))
            }
            Event::Media(pipelines::ConnectionState::Connected) => {
                self.emit("mediastate", json!({ "leg": "sip", "state": "connected" }))
            }
            Event::Transferred { call_id } => self.transferred(&call_id),
            Event::Confirmed | Event::Media(_) | Event::Ended { .. } => {}
        }
    }

    /// The SIP peer transferred the call (`transfer.policy = "accept"`) and
    /// the target answered: the browser's leg is linked to the new call's
    /// leg (the old call gets its BYE from the call layer), and the browser
    /// hears `transferred` with the new peer.
    fn transferred(&self, call_id: &str) {
        let Some(next) = self.sip().successor() else { return };
        *self.sip.lock().unwrap() = next.clone();
        self.state.lock().unwrap().link = Some(Link::new(self.webrtc.port(), next.leg().port()));
        self.media_joined();
        self.emit("transferred", json!({ "peer": next.peer, "sipCallId": call_id }));
    }

    fn on_browser_leg(self: &Arc<Self>, ev: LegEvent) {
        match ev {
            LegEvent::Dtmf { tone } if self.sip().phase() == Phase::Active => {
                // RTCDTMFSender in the browser: relay to the SIP peer.
                let method = self.state.lock().unwrap().dtmf_method;
                let me = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = me.sip().send_dtmf(&tone.to_string(), method, 100).await {
                        tracing::warn!(call = %me.id, error = %e, "DTMF relay failed");
                    }
                });
            }
            LegEvent::ConnectionStateChange(state) => {
                self.emit("mediastate", json!({ "leg": "browser", "state": state.as_str() }))
            }
            // The browser went away without closing its WebSocket first.
            LegEvent::MediaTimeout { .. } if self.sip().phase() == Phase::Active => {
                let me = self.clone();
                tokio::spawn(async move {
                    let _ = me.sip().hangup("browser media timeout").await;
                });
            }
            _ => {}
        }
    }

    pub fn summary(&self) -> Value {
        let phase = match self.sip().phase() {
            Phase::Calling => "calling",
            Phase::Ringing => "incoming",
            Phase::Active => "active",
            Phase::Ended => "ended",
        };
        let outgoing = self.sip().direction == signaling::Direction::Outgoing;
        json!({
            "call": self.id,
            "direction": if outgoing { "outgoing" } else { "incoming" },
            "peer": self.sip().peer,
            "state": phase,
            "held": self.sip().held().is_some(),
            "recording": self.sip().is_recording(),
        })
    }
}

async fn close_leg(leg: Leg) {
    let _ = tokio::task::spawn_blocking(move || leg.close("call ended")).await;
}

fn recording_error(e: CallError) -> RpcError {
    match e {
        CallError::WrongState(m) => err(codes::RECORDING, m),
        other => err(codes::RECORDING, other.to_string()),
    }
}
