//! One browser <-> SIP call: a WebRTC leg towards the browser, an RTP leg
//! towards the SIP peer, a [`Link`] between them (passthrough or
//! transcoding), and the task turning SIP call events and leg events into
//! the web user's `sip.event`s.
//!
//! Hold is done on the SIP side (re-INVITE with `a=sendonly` or
//! `a=inactive`) and by cutting the link, so the browser hears silence.

use super::errors::{call_state, codes, err, from_media, from_sip};
use super::user::User;
use super::Gateway;
use crate::protocol::RpcError;
use pipelines::{DescriptionKind, Leg, LegEvent, Link, RecordFormat, Recorder};
use serde_json::{json, Value};
use signaling::{Call, CallEvent, Caller, IncomingCall, Party};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Outgoing,
    Incoming,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Outgoing, no final answer yet.
    Calling,
    /// Incoming, waiting for `sip.accept` / `sip.decline`.
    Offered,
    /// Answered.
    Active,
    Ended,
}

/// How DTMF from the browser (RTCDTMFSender) and `sip.dtmf` go to the SIP peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DtmfMethod {
    /// RFC 4733 telephone-events on the RTP leg.
    Rfc4733,
    /// SIP INFO, `application/dtmf-relay`.
    Info,
}

#[derive(Clone, Copy)]
enum Side {
    Browser,
    Sip,
}

struct State {
    phase: Phase,
    link: Option<Link>,
    /// `sendonly` / `inactive` while on hold.
    hold: Option<&'static str>,
    /// Outgoing: the SIP answer (early or final) has been applied.
    answer_applied: bool,
    /// Outgoing: the 183's SDP, when early media came first.
    early_sdp: Option<String>,
    /// Incoming: the SDP for our 200 OK (answer, or offer when the INVITE had none).
    sip_sdp: Option<String>,
    recorders: Vec<Recorder>,
    dtmf_method: DtmfMethod,
}

pub struct GwCall {
    pub id: String,
    pub direction: Direction,
    /// The SIP peer's URI.
    pub peer: String,
    sip: Call,
    webrtc: Leg,
    rtp: Leg,
    user: Weak<User>,
    state: Mutex<State>,
    gw: Arc<Gateway>,
}

type LegRx = mpsc::UnboundedReceiver<(Side, LegEvent)>;

/// The two legs of a call, made off the async threads (ICE gathering blocks).
fn make_legs(gw: &Gateway, id: &str) -> Result<(Leg, Leg, LegRx), RpcError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = |side: Side| -> pipelines::EventHandler {
        let tx = tx.clone();
        Arc::new(move |ev| {
            let _ = tx.send((side, ev));
        })
    };
    let webrtc =
        Leg::new_webrtc(&format!("{id}-webrtc"), gw.config.legs.clone(), handler(Side::Browser)).map_err(from_media)?;
    let rtp = match Leg::new_rtp(&format!("{id}-rtp"), gw.config.legs.clone(), handler(Side::Sip)) {
        Ok(l) => l,
        Err(e) => {
            webrtc.close("setup failed");
            return Err(from_media(e));
        }
    };
    Ok((webrtc, rtp, rx))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, RpcError> + Send + 'static) -> Result<T, RpcError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| err(codes::INTERNAL, format!("media task failed: {e}")))?
}

pub fn jsep(kind: DescriptionKind, sdp: String) -> Value {
    json!({ "type": kind.as_str(), "sdp": sdp })
}

impl GwCall {
    /// `sip.call`: with the browser's offer we answer it at once (so ICE and
    /// DTLS come up while the SIP side rings, ready for early media);
    /// without one we offer. Returns the call and the JSEP for the browser.
    pub async fn outgoing(
        gw: Arc<Gateway>,
        user: &Arc<User>,
        id: String,
        caller: Caller,
        uri: String,
        headers: Vec<(String, String)>,
        offer: Option<String>,
        dtmf_method: DtmfMethod,
    ) -> Result<(Arc<GwCall>, Value), RpcError> {
        let g = gw.clone();
        let cid = id.clone();
        let (webrtc, rtp, legs, browser_jsep, sip_offer) = blocking(move || {
            let (webrtc, rtp, legs) = make_legs(&g, &cid)?;
            let result = (|| {
                let local = match &offer {
                    Some(sdp) => {
                        webrtc.set_remote_description(DescriptionKind::Offer, sdp)?;
                        webrtc.local_description()?
                    }
                    None => webrtc.local_description()?,
                };
                let sip_offer = rtp.local_description()?.sdp;
                Ok::<_, pipelines::Error>((jsep(local.kind, local.sdp), sip_offer))
            })();
            match result {
                Ok((j, o)) => Ok((webrtc, rtp, legs, j, o)),
                Err(e) => {
                    webrtc.close("setup failed");
                    rtp.close("setup failed");
                    Err(from_media(e))
                }
            }
        })
        .await?;
        let mut sip = match gw.ua.invite(caller, &uri, Some(sip_offer), &headers) {
            Ok(c) => c,
            Err(e) => {
                webrtc.close("setup failed");
                rtp.close("setup failed");
                return Err(from_sip(e));
            }
        };
        let events = sip.take_events();
        let link = Link::new(webrtc.port(), rtp.port());
        let call = Arc::new(GwCall {
            id,
            direction: Direction::Outgoing,
            peer: uri,
            sip,
            webrtc,
            rtp,
            user: Arc::downgrade(user),
            state: Mutex::new(State {
                phase: Phase::Calling,
                link: Some(link),
                hold: None,
                answer_applied: false,
                early_sdp: None,
                sip_sdp: None,
                recorders: Vec::new(),
                dtmf_method,
            }),
            gw,
        });
        tokio::spawn(call.clone().pump(events, legs));
        Ok((call, browser_jsep))
    }

    /// An incoming INVITE for this user: the SIP offer goes to the RTP leg
    /// (488 when no codec fits), the WebRTC leg offers to the browser, and
    /// the SIP side hears 180 until `sip.accept`.
    pub async fn incoming(
        gw: Arc<Gateway>,
        user: &Arc<User>,
        id: String,
        inc: IncomingCall,
    ) -> Result<(Arc<GwCall>, Value), RpcError> {
        let g = gw.clone();
        let cid = id.clone();
        let sip_offer = inc.sdp_offer.clone();
        let setup = blocking(move || {
            let (webrtc, rtp, legs) = make_legs(&g, &cid)?;
            let result = (|| {
                let sip_sdp = match &sip_offer {
                    Some(sdp) => {
                        rtp.set_remote_description(DescriptionKind::Offer, sdp)?;
                        rtp.local_description()?.sdp
                    }
                    None => rtp.local_description()?.sdp,
                };
                let offer = webrtc.local_description()?;
                Ok::<_, pipelines::Error>((sip_sdp, jsep(offer.kind, offer.sdp)))
            })();
            match result {
                Ok((s, j)) => Ok((webrtc, rtp, legs, s, j)),
                Err(e) => {
                    webrtc.close("setup failed");
                    rtp.close("setup failed");
                    Err(from_media(e))
                }
            }
        })
        .await;
        let mut sip = inc.call;
        let (webrtc, rtp, legs, sip_sdp, browser_jsep) = match setup {
            Ok(v) => v,
            Err(e) => {
                let status = e.data.as_ref().and_then(|d| d["sipStatus"].as_u64()).unwrap_or(500) as u16;
                let _ = sip.reject(status, None);
                return Err(e);
            }
        };
        let events = sip.take_events();
        if let Err(e) = sip.ringing() {
            tracing::warn!(call = %id, error = %e, "could not send 180");
        }
        let link = Link::new(webrtc.port(), rtp.port());
        let call = Arc::new(GwCall {
            id,
            direction: Direction::Incoming,
            peer: inc.from,
            sip,
            webrtc,
            rtp,
            user: Arc::downgrade(user),
            state: Mutex::new(State {
                phase: Phase::Offered,
                link: Some(link),
                hold: None,
                answer_applied: true,
                early_sdp: None,
                sip_sdp: Some(sip_sdp),
                recorders: Vec::new(),
                dtmf_method: DtmfMethod::Rfc4733,
            }),
            gw,
        });
        tokio::spawn(call.clone().pump(events, legs));
        Ok((call, browser_jsep))
    }

    fn emit(&self, event: &str, mut params: Value) {
        params["call"] = json!(self.id);
        if let Some(user) = self.user.upgrade() {
            user.emit(event, params);
        }
    }

    fn phase(&self) -> Phase {
        self.state.lock().unwrap().phase
    }

    pub fn is_ended(&self) -> bool {
        self.phase() == Phase::Ended
    }

    /// `sip.accept`: the browser's answer to our offer, then 200 OK to the
    /// SIP peer.
    pub async fn accept(self: &Arc<Self>, answer: String, dtmf_method: Option<DtmfMethod>) -> Result<(), RpcError> {
        if self.direction != Direction::Incoming {
            return Err(call_state("sip.accept is for incoming calls; this one is outgoing"));
        }
        if self.phase() != Phase::Offered {
            return Err(call_state("the call has already been accepted or has ended"));
        }
        let webrtc = self.webrtc.clone();
        blocking(move || webrtc.set_remote_description(DescriptionKind::Answer, &answer).map_err(from_media)).await?;
        let sdp = {
            let mut st = self.state.lock().unwrap();
            if st.phase != Phase::Offered {
                return Err(call_state("the call ended while it was being accepted"));
            }
            st.phase = Phase::Active;
            if let Some(m) = dtmf_method {
                st.dtmf_method = m;
            }
            st.sip_sdp.clone().unwrap_or_default()
        };
        self.sip.answer(&sdp).map_err(from_sip)?;
        self.emit("accepted", json!({ "username": self.peer }));
        Ok(())
    }

    /// `sip.decline`: a final failure response (486 by default).
    pub async fn decline(self: &Arc<Self>, code: u16) -> Result<(), RpcError> {
        if self.direction != Direction::Incoming || self.phase() != Phase::Offered {
            return Err(call_state("only an incoming call that has not been accepted can be declined"));
        }
        if !(300..700).contains(&code) {
            return Err(err(codes::INVALID_PARAMS, format!("code must be a SIP failure status (300-699), not {code}")));
        }
        self.sip.reject(code, None).map_err(from_sip)?;
        self.end(Party::Local, code, "declined").await;
        Ok(())
    }

    /// `sip.hangup`: CANCEL, 603 or BYE, whichever fits.
    pub async fn hangup(self: &Arc<Self>) -> Result<(), RpcError> {
        if self.is_ended() {
            return Err(call_state("the call has already ended"));
        }
        let (code, reason) = match self.phase() {
            Phase::Calling => (487, "cancelled"),
            Phase::Offered => (603, "declined"),
            _ => (200, "hangup"),
        };
        let result = self.sip.hangup().await;
        self.end(Party::Local, code, reason).await;
        result.map_err(from_sip)
    }

    /// `sip.hold` (`sendonly` or `inactive`) and `sip.unhold` (`None`):
    /// re-INVITE towards the SIP peer; the link is cut while held.
    pub async fn set_hold(self: &Arc<Self>, hold: Option<&'static str>) -> Result<Value, RpcError> {
        {
            let st = self.state.lock().unwrap();
            if st.phase != Phase::Active {
                return Err(call_state("hold and unhold need an answered call"));
            }
            if st.hold == hold {
                return Err(call_state(if hold.is_some() {
                    "the call is already on hold"
                } else {
                    "the call is not on hold"
                }));
            }
        }
        let rtp = self.rtp.clone();
        let offer = blocking(move || rtp.local_description().map_err(from_media)).await?.sdp;
        let direction = hold.unwrap_or("sendrecv");
        let offer = with_direction(&offer, direction);
        if hold.is_some() {
            self.state.lock().unwrap().link = None; // the browser hears silence
        }
        let answer = match self.sip.reinvite(&offer).await {
            Ok(a) => a,
            Err(e) => {
                self.relink_if_active();
                return Err(from_sip(e));
            }
        };
        let peer_direction = answer.as_deref().map(sdp_direction);
        if let Some(answer) = answer {
            let rtp = self.rtp.clone();
            if let Err(e) =
                blocking(move || rtp.set_remote_description(DescriptionKind::Answer, &answer).map_err(from_media)).await
            {
                tracing::warn!(call = %self.id, error = %e.message, "hold answer not applied");
            }
        }
        let mut st = self.state.lock().unwrap();
        st.hold = hold;
        if hold.is_none() && st.phase == Phase::Active && st.link.is_none() {
            st.link = Some(Link::new(self.webrtc.port(), self.rtp.port()));
        }
        Ok(json!({ "held": hold.is_some(), "direction": direction, "peerDirection": peer_direction }))
    }

    fn relink_if_active(&self) {
        let mut st = self.state.lock().unwrap();
        if st.phase == Phase::Active && st.hold.is_none() && st.link.is_none() {
            st.link = Some(Link::new(self.webrtc.port(), self.rtp.port()));
        }
    }

    /// `sip.update`: renegotiation with the browser. An offer is answered;
    /// no JSEP asks the bridge to offer; an answer completes that offer.
    pub async fn update(self: &Arc<Self>, jsep_in: Option<(DescriptionKind, String)>) -> Result<Value, RpcError> {
        if self.is_ended() {
            return Err(call_state("the call has ended"));
        }
        let webrtc = self.webrtc.clone();
        blocking(move || match jsep_in {
            Some((DescriptionKind::Offer, sdp)) => {
                webrtc.set_remote_description(DescriptionKind::Offer, &sdp).map_err(from_media)?;
                let a = webrtc.local_description().map_err(from_media)?;
                Ok(json!({ "jsep": jsep(a.kind, a.sdp) }))
            }
            Some((DescriptionKind::Answer, sdp)) => {
                webrtc.set_remote_description(DescriptionKind::Answer, &sdp).map_err(from_media)?;
                Ok(json!({}))
            }
            None => {
                let o = webrtc.local_description().map_err(from_media)?;
                Ok(json!({ "jsep": jsep(o.kind, o.sdp) }))
            }
        })
        .await
    }

    /// `sip.trickle`: a candidate from the browser (empty: end of candidates).
    pub async fn trickle(self: &Arc<Self>, candidate: String, index: u32) -> Result<(), RpcError> {
        let webrtc = self.webrtc.clone();
        blocking(move || webrtc.add_ice_candidate(&candidate, index).map_err(from_media)).await
    }

    /// `sip.dtmf`: tones to the SIP peer, RFC 4733 or INFO.
    pub async fn dtmf(
        self: &Arc<Self>,
        tones: String,
        method: Option<DtmfMethod>,
        duration: u32,
    ) -> Result<(), RpcError> {
        if self.phase() != Phase::Active {
            return Err(call_state("DTMF needs an answered call"));
        }
        let method = method.unwrap_or(self.state.lock().unwrap().dtmf_method);
        self.send_dtmf(tones, method, duration).await
    }

    async fn send_dtmf(&self, tones: String, method: DtmfMethod, duration: u32) -> Result<(), RpcError> {
        pipelines::dtmf::parse_tones(&tones).map_err(from_media)?;
        match method {
            DtmfMethod::Rfc4733 => {
                let rtp = self.rtp.clone();
                blocking(move || rtp.send_dtmf(&tones, duration).map_err(from_media)).await
            }
            DtmfMethod::Info => {
                for digit in tones.chars() {
                    self.sip.send_dtmf(digit.to_ascii_uppercase(), duration).await.map_err(from_sip)?;
                }
                Ok(())
            }
        }
    }

    pub async fn info(self: &Arc<Self>, content_type: &str, body: &str) -> Result<(), RpcError> {
        if self.phase() != Phase::Active {
            return Err(call_state("INFO needs an answered call"));
        }
        self.sip.info(content_type, body).await.map_err(from_sip)
    }

    pub async fn message(self: &Arc<Self>, content_type: &str, body: &str) -> Result<(), RpcError> {
        if self.phase() != Phase::Active {
            return Err(call_state(
                "a MESSAGE inside a call needs an answered call; leave out `call` to send one outside",
            ));
        }
        self.sip.message(content_type, body).await.map_err(from_sip)
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
            let recorders = std::mem::take(&mut self.state.lock().unwrap().recorders);
            if recorders.is_empty() {
                return Err(err(codes::RECORDING, "the call is not being recorded"));
            }
            let files: Vec<PathBuf> = recorders.iter().map(|r| r.path().to_path_buf()).collect();
            blocking(move || {
                for r in recorders {
                    r.stop().map_err(from_media)?;
                }
                Ok(())
            })
            .await?;
            let v = json!({ "recording": false, "files": files });
            self.emit("recordingupdated", v.clone());
            return Ok(v);
        }
        if !peer && !user {
            return Err(err(codes::INVALID_PARAMS, "nothing to record: set peer and/or user"));
        }
        if !self.state.lock().unwrap().recorders.is_empty() {
            return Err(err(codes::RECORDING, "the call is already being recorded; stop first"));
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
        let dir = self.gw.config.recordings_dir.clone();
        let mut targets = Vec::new();
        if peer {
            targets.push((self.rtp.clone(), dir.join(format!("{base}-peer.wav"))));
        }
        if user {
            targets.push((self.webrtc.clone(), dir.join(format!("{base}-user.wav"))));
        }
        let recorders = blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| err(codes::RECORDING, format!("cannot create {}: {e}", dir.display())))?;
            let mut out = Vec::new();
            for (leg, path) in targets {
                out.push(
                    Recorder::start(leg.port(), &path, RecordFormat::Wav)
                        .map_err(|e| err(codes::RECORDING, e.to_string()))?,
                );
            }
            Ok(out)
        })
        .await?;
        let files: Vec<PathBuf> = recorders.iter().map(|r| r.path().to_path_buf()).collect();
        self.state.lock().unwrap().recorders = recorders;
        let v = json!({ "recording": true, "files": files });
        self.emit("recordingupdated", v.clone());
        Ok(v)
    }

    /// Ends the call once: media down, recordings finished, `hangup` sent,
    /// the user's slot freed.
    pub async fn end(self: &Arc<Self>, by: Party, code: u16, reason: &str) {
        let (link, recorders) = {
            let mut st = self.state.lock().unwrap();
            if st.phase == Phase::Ended {
                return;
            }
            st.phase = Phase::Ended;
            (st.link.take(), std::mem::take(&mut st.recorders))
        };
        drop(link);
        let (webrtc, rtp) = (self.webrtc.clone(), self.rtp.clone());
        let _ = tokio::task::spawn_blocking(move || {
            for r in recorders {
                let _ = r.stop();
            }
            webrtc.close("call ended");
            rtp.close("call ended");
        })
        .await;
        let by = if by == Party::Local { "local" } else { "remote" };
        tracing::info!(call = %self.id, %code, %reason, %by, "call ended");
        self.emit("hangup", json!({ "code": code, "reason": reason, "by": by }));
        if let Some(user) = self.user.upgrade() {
            user.call_ended(&self.id);
        }
    }

    /// Applies the SIP peer's answer (183 or 200) to the RTP leg, once.
    async fn apply_sip_answer(self: &Arc<Self>, sdp: String) {
        {
            let mut st = self.state.lock().unwrap();
            if st.answer_applied {
                return;
            }
            st.answer_applied = true;
        }
        let rtp = self.rtp.clone();
        if let Err(e) =
            blocking(move || rtp.set_remote_description(DescriptionKind::Answer, &sdp).map_err(from_media)).await
        {
            tracing::warn!(call = %self.id, error = %e.message, "SIP answer not usable");
        }
    }

    async fn pump(self: Arc<Self>, mut sip: mpsc::UnboundedReceiver<CallEvent>, mut legs: LegRx) {
        loop {
            tokio::select! {
                ev = sip.recv() => match ev {
                    Some(ev) => self.on_sip(ev).await,
                    None => break,
                },
                Some((side, ev)) = legs.recv() => self.on_leg(side, ev).await,
            }
            if self.is_ended() {
                break;
            }
        }
        // The SIP side went quiet without saying how: make sure it ends.
        self.end(Party::Remote, 500, "call gone").await;
    }

    async fn on_sip(self: &Arc<Self>, ev: CallEvent) {
        match ev {
            CallEvent::Trying => {}
            CallEvent::Ringing => self.emit("ringing", json!({})),
            CallEvent::Progress { code, sdp } => {
                let early = sdp.is_some();
                if let Some(sdp) = sdp {
                    self.state.lock().unwrap().early_sdp.get_or_insert(sdp.clone());
                    self.apply_sip_answer(sdp).await;
                }
                self.emit(if early { "progress" } else { "ringing" }, json!({ "code": code, "earlyMedia": early }));
            }
            CallEvent::Answered { sdp } => {
                if let Some(sdp) = sdp {
                    let early = self.state.lock().unwrap().early_sdp.clone();
                    match early {
                        // The 200 changed what the 183 said (a sendonly
                        // announcement becoming sendrecv): take the final one.
                        Some(e) if e.trim() != sdp.trim() => {
                            let rtp = self.rtp.clone();
                            let applied = blocking(move || {
                                rtp.local_description().map_err(from_media)?;
                                rtp.set_remote_description(DescriptionKind::Answer, &sdp).map_err(from_media)
                            })
                            .await;
                            if let Err(e) = applied {
                                tracing::warn!(call = %self.id, error = %e.message, "final SIP answer not usable");
                            }
                        }
                        Some(_) => {}
                        None => self.apply_sip_answer(sdp).await,
                    }
                }
                self.state.lock().unwrap().phase = Phase::Active;
                self.emit("accepted", json!({ "username": self.peer }));
            }
            CallEvent::Confirmed { sdp } => {
                if let Some(sdp) = sdp {
                    // Offerless INVITE: the answer came in the ACK.
                    let rtp = self.rtp.clone();
                    let _ =
                        blocking(move || rtp.set_remote_description(DescriptionKind::Answer, &sdp).map_err(from_media))
                            .await;
                }
            }
            CallEvent::Failed { code, reason } => self.end(Party::Remote, code, &reason).await,
            CallEvent::Ended { by, reason } => {
                let code = match reason.as_str() {
                    "CANCEL" => 487,
                    r if r.starts_with("rejected ") => r[9..].parse().unwrap_or(603),
                    _ => 200,
                };
                self.end(by, code, &reason).await
            }
            CallEvent::Offer { kind, sdp } => self.on_reoffer(kind, sdp).await,
            CallEvent::Info { content_type, body, dtmf } => match dtmf {
                Some(d) => self
                    .emit("dtmf", json!({ "tone": d.digit.to_string(), "method": "info", "duration": d.duration_ms })),
                None => self.emit("info", json!({ "contentType": content_type, "content": body })),
            },
            CallEvent::Message { content_type, body } => {
                self.emit("message", json!({ "sender": self.peer, "contentType": content_type, "content": body }))
            }
        }
    }

    /// A re-INVITE or UPDATE from the SIP peer (hold, resume, codec change):
    /// answered by the RTP leg; the browser is told with `updatingcall`.
    async fn on_reoffer(self: &Arc<Self>, kind: signaling::OfferKind, sdp: Option<String>) {
        let rtp = self.rtp.clone();
        let offered = sdp.clone();
        let answer = blocking(move || {
            if let Some(sdp) = &offered {
                rtp.set_remote_description(DescriptionKind::Offer, sdp).map_err(from_media)?;
            }
            Ok(rtp.local_description().map_err(from_media)?.sdp)
        })
        .await;
        match answer {
            Ok(answer) => {
                if let Err(e) = self.sip.accept_offer(&answer).await {
                    tracing::warn!(call = %self.id, error = %e, "re-offer answer not sent");
                }
                let direction = sdp.as_deref().map(sdp_direction).unwrap_or("sendrecv");
                let kind = if kind == signaling::OfferKind::Update { "UPDATE" } else { "re-INVITE" };
                self.emit("updatingcall", json!({ "request": kind, "direction": direction }));
            }
            Err(e) => {
                let status = e.data.as_ref().and_then(|d| d["sipStatus"].as_u64()).unwrap_or(488) as u16;
                let _ = self.sip.reject_offer(status).await;
            }
        }
    }

    async fn on_leg(self: &Arc<Self>, side: Side, ev: LegEvent) {
        match (side, ev) {
            (Side::Browser, LegEvent::Dtmf { tone }) => {
                // RTCDTMFSender in the browser: relay to the SIP peer.
                if self.phase() == Phase::Active {
                    let method = self.state.lock().unwrap().dtmf_method;
                    let me = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = me.send_dtmf(tone.to_string(), method, 100).await {
                            tracing::warn!(call = %me.id, error = %e.message, "DTMF relay failed");
                        }
                    });
                }
            }
            (Side::Sip, LegEvent::Dtmf { tone }) => {
                self.emit("dtmf", json!({ "tone": tone.to_string(), "method": "rfc4733" }))
            }
            (Side::Browser, LegEvent::ConnectionStateChange(state)) => {
                self.emit("mediastate", json!({ "leg": "browser", "state": state.as_str() }))
            }
            (Side::Sip, LegEvent::ConnectionStateChange(pipelines::ConnectionState::Connected)) => {
                self.emit("mediastate", json!({ "leg": "sip", "state": "connected" }))
            }
            _ => {}
        }
    }

    pub fn summary(&self) -> Value {
        let st = self.state.lock().unwrap();
        let phase = match st.phase {
            Phase::Calling => "calling",
            Phase::Offered => "incoming",
            Phase::Active => "active",
            Phase::Ended => "ended",
        };
        json!({
            "call": self.id,
            "direction": if self.direction == Direction::Outgoing { "outgoing" } else { "incoming" },
            "peer": self.peer,
            "state": phase,
            "held": st.hold.is_some(),
            "recording": !st.recorders.is_empty(),
        })
    }
}

/// `sdp` with its audio direction set to `direction` (replacing any).
fn with_direction(sdp: &str, direction: &str) -> String {
    let mut out = String::with_capacity(sdp.len() + 16);
    let mut done = false;
    for line in sdp.split_terminator("\r\n") {
        if matches!(line, "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive") {
            if !done {
                out.push_str(&format!("a={direction}\r\n"));
                done = true;
            }
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    if !done {
        out.push_str(&format!("a={direction}\r\n"));
    }
    out
}

fn sdp_direction(sdp: &str) -> &'static str {
    for line in sdp.lines().map(str::trim) {
        match line {
            "a=sendonly" => return "sendonly",
            "a=recvonly" => return "recvonly",
            "a=inactive" => return "inactive",
            _ => {}
        }
    }
    "sendrecv"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_direction_replaces_the_attribute() {
        let sdp = "v=0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";
        let held = with_direction(sdp, "sendonly");
        assert!(held.contains("a=sendonly\r\n") && !held.contains("sendrecv"), "{held}");
        assert_eq!(sdp_direction(&held), "sendonly");
        assert!(with_direction("v=0\r\nm=audio 1 RTP/AVP 0\r\n", "inactive").ends_with("a=inactive\r\n"));
    }
}
