//! A call (one INVITE dialog), whichever side started it: the handle the
//! layer above drives, and the task turning rsipstack dialog states into
//! [`CallEvent`]s.

use crate::core::{content_type, extra_headers, Core};
use crate::dtmf;
use crate::error::Error;
use crate::events::{CallEvent, OfferKind, Party};
use crate::outgoing_headers::Outgoing;
use crate::reliable::{PeerReliability, RSeqCounter};
use crate::session_timer::{self, Agreed, Refresher};
use crate::transfer;
use rsipstack::dialog::dialog::{DialogState, TerminatedReason, TransactionHandle};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::prelude::{HasHeaders, HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, Method, Request, Response, StatusCode};
use rsipstack::transaction::key::TransactionRole;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, Notify};
use tracing::debug;

/// Which side sent the INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We called.
    Outgoing,
    /// We were called.
    Incoming,
}

pub(crate) struct CallInner {
    pub core: Arc<Core>,
    pub call_id: String,
    pub direction: Direction,
    pub dialog: Mutex<Option<InviteDialog>>,
    pub pending_offer: Mutex<Option<TransactionHandle>>,
    /// A REFER waiting for [`Call::accept_refer`] or [`Call::reject_refer`].
    pub pending_refer: Mutex<Option<TransactionHandle>>,
    pub events: mpsc::UnboundedSender<CallEvent>,
    pub established: AtomicBool,
    pub ended: AtomicBool,
    pub cancel_requested: AtomicBool,
    pub cancel_notify: Notify,
    /// Incoming INVITE without SDP: the answer comes in the ACK.
    pub offerless: bool,
    /// Incoming: the caller's stand on reliable provisional responses.
    pub peer_reliability: PeerReliability,
    /// Incoming: RSeq numbers of our reliable provisional responses.
    pub rseq: RSeqCounter,
    /// The session interval in effect (RFC 4028), once agreed.
    pub session: Mutex<Option<Agreed>>,
    /// Wakes the session timer when `session` changes (a refresh).
    pub session_changed: Notify,
    /// Incoming: the interval our 2xx grants; a peer's re-INVITE/UPDATE:
    /// the one its 2xx will grant.
    pub session_offered: Mutex<Option<Agreed>>,
    /// Our last SDP (offer or answer): the body of a refreshing re-INVITE.
    pub local_sdp: Mutex<Option<String>>,
    /// The peer listed UPDATE in Allow: refreshes go as UPDATE.
    pub peer_allows_update: AtomicBool,
    /// Peer slot to release when the call ends.
    pub peer_ip: Option<IpAddr>,
    /// Set once a final event (Answered, Failed, Ended) went out: later
    /// provisional events are stale (the INVITE's result and its dialog's
    /// 1xx states arrive on two tasks) and must not follow it.
    pub setup_done: Mutex<bool>,
    /// Header fields of the 2xx that answered our INVITE.
    pub answer_headers: Mutex<Vec<(String, String)>>,
    /// Header fields of the BYE that ended the call, when the peer sent it.
    pub bye_headers: Mutex<Vec<(String, String)>>,
}

impl CallInner {
    /// A call's shared state, and the receiving end of its events.
    pub fn new(
        core: &Arc<Core>,
        call_id: String,
        direction: Direction,
        dialog: Option<InviteDialog>,
        invite: Option<&Request>,
        peer_ip: Option<IpAddr>,
    ) -> (Arc<CallInner>, mpsc::UnboundedReceiver<CallEvent>) {
        let (events, receiver) = mpsc::unbounded_channel();
        let inner = Arc::new(CallInner {
            core: core.clone(),
            call_id,
            direction,
            dialog: Mutex::new(dialog),
            pending_offer: Mutex::new(None),
            pending_refer: Mutex::new(None),
            events,
            established: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            cancel_requested: AtomicBool::new(false),
            cancel_notify: Notify::new(),
            offerless: invite.is_some_and(|r| r.body.is_empty()),
            peer_reliability: invite.map(PeerReliability::of).unwrap_or(PeerReliability::Unsupported),
            rseq: RSeqCounter::new(),
            session: Mutex::new(None),
            session_changed: Notify::new(),
            session_offered: Mutex::new(None),
            local_sdp: Mutex::new(None),
            peer_allows_update: AtomicBool::new(invite.is_some_and(allows_update)),
            peer_ip,
            setup_done: Mutex::new(false),
            answer_headers: Mutex::default(),
            bye_headers: Mutex::default(),
        });
        (inner, receiver)
    }

    pub fn emit(&self, ev: CallEvent) {
        let mut setup_done = self.setup_done.lock().unwrap();
        match ev {
            CallEvent::Trying | CallEvent::Ringing | CallEvent::Progress { .. } if *setup_done => return,
            CallEvent::Answered { .. } | CallEvent::Failed { .. } | CallEvent::Ended { .. } => *setup_done = true,
            _ => {}
        }
        if matches!(ev, CallEvent::Ended { .. } | CallEvent::Failed { .. }) {
            if self.ended.swap(true, Ordering::SeqCst) {
                return;
            }
            if let Some(ip) = self.peer_ip {
                self.core.release_peer_slot(ip);
            }
            if let Some(d) = self.dialog.lock().unwrap().as_ref() {
                self.core.dialogs.remove_dialog(&d.id());
            }
            // The session timer may be waiting for a refresh that never
            // comes (or a deadline 30 minutes away) while holding this
            // call: wake it so it sees the end and lets go.
            self.session_changed.notify_one();
        }
        let _ = self.events.send(ev);
    }

    pub fn dialog(&self) -> Result<InviteDialog, Error> {
        self.dialog.lock().unwrap().clone().ok_or_else(|| Error::InvalidState("no dialog yet".into()))
    }
}

/// Handle of one call. Methods that do not apply to the call's direction or
/// state return [`Error::InvalidState`].
#[derive(Debug)]
pub struct Call {
    pub(crate) inner: Arc<CallInner>,
    pub(crate) events: mpsc::UnboundedReceiver<CallEvent>,
}

impl std::fmt::Debug for CallInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Call({}, {:?})", self.call_id, self.direction)
    }
}

/// Whether a message's `Allow` lists UPDATE.
pub(crate) fn allows_update<M: HasHeaders>(m: &M) -> bool {
    m.headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case("Allow"))
        .any(|h| h.value().split(',').any(|t| t.trim().eq_ignore_ascii_case("UPDATE")))
}

impl CallInner {
    /// The call is up: its session timer starts (if one was agreed) and
    /// runs until the call ends.
    pub fn established_with(self: &Arc<Self>, agreed: Option<Agreed>) {
        self.established.store(true, Ordering::SeqCst);
        if self.core.config.session_timer.is_none() {
            return;
        }
        if let Some(agreed) = agreed {
            session_timing::arm(self, agreed);
        }
        tokio::spawn(session_timing::run(self.clone()));
    }

    /// Headers of our re-INVITE/UPDATE with an offer: it refreshes the
    /// session too (RFC 4028 §7.4), so it names the interval in effect.
    fn offer_headers(&self) -> Vec<Header> {
        let mut headers = vec![content_type("application/sdp")];
        if let Some(agreed) = *self.session.lock().unwrap() {
            headers.push(Header::Supported(crate::extensions::supported_value().into()));
            headers.push(agreed.header());
        }
        headers
    }

    /// Our offer `sdp` was answered 2xx in `resp`: it is our SDP now, and
    /// the session timer starts again.
    fn offer_answered(self: &Arc<Self>, sdp: &str, resp: &Response) {
        *self.local_sdp.lock().unwrap() = Some(sdp.to_string());
        let current = *self.session.lock().unwrap();
        if let Some(agreed) = session_timer::from_response(resp).or(current) {
            session_timing::arm(self, agreed);
        }
    }

    /// Our role in refresher terms.
    pub fn role(&self) -> Refresher {
        match self.direction {
            Direction::Outgoing => Refresher::Uac,
            Direction::Incoming => Refresher::Uas,
        }
    }
}

/// `Allow` and `Supported` for our INVITEs and their 1xx/2xx: what this
/// agent implements, so the peer knows what it may ask for.
pub(crate) fn capabilities() -> Vec<Header> {
    vec![
        Header::Allow(crate::validate::ALLOWED_METHODS.to_string().into()),
        Header::Supported(crate::extensions::supported_value().into()),
    ]
}

/// Body of a message as text, `None` when empty.
pub(crate) fn body_text(body: &[u8]) -> Option<String> {
    (!body.is_empty()).then(|| String::from_utf8_lossy(body).into_owned())
}

pub(crate) fn content_type_of<T: HasHeaders>(m: &T) -> String {
    m.headers()
        .iter()
        .find_map(|h| match h {
            Header::ContentType(c) => Some(c.value().to_string()),
            _ => None,
        })
        .unwrap_or_default()
}

fn check_response(resp: Option<Response>) -> Result<Response, Error> {
    let resp = resp.ok_or(Error::Timeout)?;
    let code = resp.status_code.code();
    if (200..300).contains(&code) {
        Ok(resp)
    } else {
        Err(Error::Rejected { code, reason: crate::registration::reason(&resp) })
    }
}

impl Call {
    /// The SIP Call-ID.
    pub fn id(&self) -> &str {
        &self.inner.call_id
    }

    /// Incoming or outgoing.
    pub fn direction(&self) -> Direction {
        self.inner.direction
    }

    /// The next event; `None` once the call is over and all events were
    /// read.
    pub async fn next_event(&mut self) -> Option<CallEvent> {
        self.events.recv().await
    }

    /// Takes the event stream out of the handle, so the handle can be
    /// shared (e.g. in an `Arc`) while a task reads the events; afterwards
    /// [`Call::next_event`] returns `None`.
    pub fn take_events(&mut self) -> mpsc::UnboundedReceiver<CallEvent> {
        let (_closed, empty) = mpsc::unbounded_channel();
        std::mem::replace(&mut self.events, empty)
    }

    /// Incoming: 180 Ringing (reliable when the caller requires 100rel).
    pub fn ringing(&self) -> Result<(), Error> {
        self.incoming_only()?;
        let dialog = self.inner.dialog()?;
        match self.inner.peer_reliability {
            PeerReliability::Required => reliable_sending::send(&self.inner, dialog, capabilities(), None),
            _ => Ok(dialog.ringing(Some(capabilities()), None)?),
        }
    }

    /// Incoming: 183 Session Progress with early-media SDP, reliable (RFC
    /// 3262) when the caller supports 100rel: the PRACK then confirms the
    /// caller has the early answer. Fails with [`Error::InvalidState`] while
    /// an earlier reliable response still waits for its PRACK.
    pub fn progress(&self, sdp: &str) -> Result<(), Error> {
        self.incoming_only()?;
        let dialog = self.inner.dialog()?;
        let mut headers = capabilities();
        headers.push(content_type("application/sdp"));
        let body = Some(sdp.as_bytes().to_vec());
        match self.inner.peer_reliability {
            PeerReliability::Unsupported => Ok(dialog.ringing(Some(headers), body)?),
            _ => reliable_sending::send(&self.inner, dialog, headers, body),
        }
    }

    /// Incoming: 200 OK with the SDP answer (or an offer, when the INVITE
    /// had none).
    pub fn answer(&self, sdp: &str) -> Result<(), Error> {
        self.answer_with(sdp, &[])
    }

    /// [`Call::answer`] with extra header fields (name, value) on the 200.
    pub fn answer_with(&self, sdp: &str, extra: &[(String, String)]) -> Result<(), Error> {
        self.incoming_only()?;
        let mut headers = capabilities();
        headers.extend(extra_headers(extra));
        headers.push(content_type("application/sdp"));
        let granted = *self.inner.session_offered.lock().unwrap();
        if let Some(agreed) = granted {
            headers.extend(session_timer::response_headers(agreed, Refresher::Uas));
        }
        self.inner.dialog()?.accept(Some(headers), Some(sdp.as_bytes().to_vec()))?;
        *self.inner.local_sdp.lock().unwrap() = Some(sdp.to_string());
        self.inner.established_with(granted);
        Ok(())
    }

    /// Incoming: a final failure response, e.g. 486, or 488 when no codec
    /// is in common.
    pub fn reject(&self, code: u16, reason: Option<&str>) -> Result<(), Error> {
        self.reject_with(code, reason, &[])
    }

    /// [`Call::reject`] with extra header fields (name, value) on the response.
    pub fn reject_with(&self, code: u16, reason: Option<&str>, extra: &[(String, String)]) -> Result<(), Error> {
        self.incoming_only()?;
        if !(300..700).contains(&code) {
            return Err(Error::InvalidState(format!("{code} is not a failure code")));
        }
        let dialog = self.inner.dialog()?;
        self.inner.core.outgoing_headers.add(&self.inner.call_id, Outgoing::Rejection, extra_headers(extra));
        dialog.reject(Some(StatusCode::from(code)), reason.map(str::to_string))?;
        self.inner.emit(CallEvent::Ended { by: Party::Local, reason: format!("rejected {code}") });
        Ok(())
    }

    /// Ends the call whatever its state: CANCEL an unanswered outgoing call,
    /// 603 an unanswered incoming one, BYE an established one.
    pub async fn hangup(&self) -> Result<(), Error> {
        self.hangup_with(&[]).await
    }

    /// [`Call::hangup`] with extra header fields (name, value) on the
    /// CANCEL, the failure response or the BYE.
    pub async fn hangup_with(&self, extra: &[(String, String)]) -> Result<(), Error> {
        let inner = &self.inner;
        if inner.ended.load(Ordering::SeqCst) {
            return Ok(());
        }
        if !inner.established.load(Ordering::SeqCst) {
            return match inner.direction {
                Direction::Incoming => self.reject_with(603, None, extra),
                Direction::Outgoing => {
                    inner.core.outgoing_headers.add(&inner.call_id, Outgoing::Cancel, extra_headers(extra));
                    inner.cancel_requested.store(true, Ordering::SeqCst);
                    inner.cancel_notify.notify_one();
                    Ok(())
                }
            };
        }
        self.bye_with(extra).await
    }

    /// BYE (established calls only).
    pub async fn bye(&self) -> Result<(), Error> {
        self.bye_with(&[]).await
    }

    /// BYE with extra header fields (name, value).
    pub async fn bye_with(&self, extra: &[(String, String)]) -> Result<(), Error> {
        let d = self.inner.dialog()?;
        let extra = extra_headers(extra);
        d.bye_with_headers((!extra.is_empty()).then_some(extra)).await?;
        self.inner.emit(CallEvent::Ended { by: Party::Local, reason: "BYE".into() });
        Ok(())
    }

    /// re-INVITE with a new offer (hold: `a=sendonly`; resume: `a=sendrecv`);
    /// returns the peer's SDP answer.
    pub async fn reinvite(&self, sdp: &str) -> Result<Option<String>, Error> {
        let (h, b) = (Some(self.inner.offer_headers()), Some(sdp.as_bytes().to_vec()));
        let resp = check_response(self.inner.dialog()?.reinvite(h, b).await?)?;
        self.inner.offer_answered(sdp, &resp);
        Ok(body_text(&resp.body))
    }

    /// UPDATE with a new offer (RFC 3311); returns the SDP answer.
    pub async fn update(&self, sdp: &str) -> Result<Option<String>, Error> {
        let (h, b) = (Some(self.inner.offer_headers()), Some(sdp.as_bytes().to_vec()));
        let resp = check_response(self.inner.dialog()?.update(h, b).await?)?;
        self.inner.offer_answered(sdp, &resp);
        Ok(body_text(&resp.body))
    }

    /// Answers the pending [`CallEvent::Offer`] with 200 and `sdp`.
    pub async fn accept_offer(&self, sdp: &str) -> Result<(), Error> {
        let handle = self.take_offer()?;
        let mut headers = vec![content_type("application/sdp")];
        let refreshed = self.inner.session_offered.lock().unwrap().take();
        if let Some(agreed) = refreshed {
            headers.extend(session_timer::response_headers(agreed, self.inner.role()));
        }
        handle
            .respond(StatusCode::OK, Some(headers), Some(sdp.as_bytes().to_vec()))
            .await
            .map_err(|_| Error::InvalidState("offer transaction gone".into()))?;
        *self.inner.local_sdp.lock().unwrap() = Some(sdp.to_string());
        if let Some(agreed) = refreshed {
            session_timing::arm(&self.inner, agreed);
        }
        Ok(())
    }

    /// Refuses the pending [`CallEvent::Offer`] (488 keeps the old session).
    pub async fn reject_offer(&self, code: u16) -> Result<(), Error> {
        let handle = self.take_offer()?;
        handle.reply(StatusCode::from(code)).await.map_err(|_| Error::InvalidState("offer transaction gone".into()))
    }

    /// Transfers the peer (REFER, RFC 3515) to `target`; with `replaces`
    /// (`callid;to-tag=..;from-tag=..`, RFC 3891) the peer's INVITE replaces
    /// that dialog (attended transfer). `Ok` once the peer accepted (2xx);
    /// the new call's progress arrives as [`CallEvent::ReferProgress`].
    pub async fn refer(&self, target: &str, replaces: Option<&str>) -> Result<(), Error> {
        let dialog = self.inner.dialog()?;
        let initial = dialog.initial_request();
        let local = match self.inner.direction {
            Direction::Outgoing => initial.from_header().ok().and_then(|f| f.typed().ok()).map(|f| f.uri),
            Direction::Incoming => initial.to_header().ok().and_then(|t| t.typed().ok()).map(|t| t.uri),
        };
        let headers = local.map(|uri| vec![Header::ReferredBy(format!("<{uri}>").into())]);
        check_response(dialog.refer(transfer::refer_to(target, replaces), headers, None).await?)?;
        Ok(())
    }

    /// This dialog as the peer would name it in a Replaces (RFC 3891 §6.1:
    /// Call-ID, the peer's tag as to-tag, ours as from-tag): what an
    /// attended transfer's REFER, sent on another call, puts in its
    /// Refer-To so that the transferee's INVITE replaces this call.
    pub fn replaces_value(&self) -> Result<String, Error> {
        let id = self.inner.dialog()?.id();
        Ok(format!("{};to-tag={};from-tag={}", id.call_id, id.remote_tag, id.local_tag))
    }

    /// Accepts the pending [`CallEvent::Refer`]: 202, then the first NOTIFY
    /// (100 Trying) of the implicit subscription.
    pub async fn accept_refer(&self) -> Result<(), Error> {
        let handle = self.take_refer()?;
        handle.reply(StatusCode::Accepted).await.map_err(|_| Error::InvalidState("REFER transaction gone".into()))?;
        // The 202 leaves on the transaction's task and our NOTIFY on the
        // dialog's, so the NOTIFY could overtake it. RFC 3515 allows that,
        // but peers that expect the 202 first (SIPp scenarios, some PBXs)
        // fail on it: give the 202 a moment's head start.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        self.notify_refer(100).await
    }

    /// Refuses the pending [`CallEvent::Refer`] (e.g. 603).
    pub async fn reject_refer(&self, code: u16) -> Result<(), Error> {
        let handle = self.take_refer()?;
        handle.reply(StatusCode::from(code)).await.map_err(|_| Error::InvalidState("REFER transaction gone".into()))
    }

    /// Reports the referred call's status to the peer that sent the REFER
    /// (NOTIFY `message/sipfrag`); a final code (>= 200) ends the
    /// subscription.
    pub async fn notify_refer(&self, code: u16) -> Result<(), Error> {
        let (headers, body) = transfer::progress_notify(code);
        check_response(self.inner.dialog()?.notify(Some(headers), Some(body)).await?)?;
        Ok(())
    }

    /// Outgoing: the header fields of the 2xx that answered the INVITE
    /// (complete once [`CallEvent::Answered`] is out).
    pub fn answer_headers(&self) -> Vec<(String, String)> {
        self.inner.answer_headers.lock().unwrap().clone()
    }

    /// The header fields of the peer's BYE (complete once
    /// [`CallEvent::Ended`] is out; empty when the call ended otherwise).
    pub fn bye_headers(&self) -> Vec<(String, String)> {
        self.inner.bye_headers.lock().unwrap().clone()
    }

    fn take_offer(&self) -> Result<TransactionHandle, Error> {
        self.inner.pending_offer.lock().unwrap().take().ok_or_else(|| Error::InvalidState("no pending offer".into()))
    }

    fn take_refer(&self) -> Result<TransactionHandle, Error> {
        self.inner.pending_refer.lock().unwrap().take().ok_or_else(|| Error::InvalidState("no pending REFER".into()))
    }

    /// INFO with any body.
    pub async fn info(&self, content_type_value: &str, body: &str) -> Result<(), Error> {
        let d = self.inner.dialog()?;
        check_response(d.info(Some(vec![content_type(content_type_value)]), Some(body.as_bytes().to_vec())).await?)?;
        Ok(())
    }

    /// One DTMF digit as `application/dtmf-relay` INFO.
    pub async fn send_dtmf(&self, digit: char, duration_ms: u32) -> Result<(), Error> {
        self.info(dtmf::DTMF_RELAY, &dtmf::format_relay(digit, duration_ms)).await
    }

    /// MESSAGE inside the call.
    pub async fn message(&self, content_type_value: &str, body: &str) -> Result<(), Error> {
        let d = self.inner.dialog()?;
        check_response(
            d.request(Method::Message, Some(vec![content_type(content_type_value)]), Some(body.as_bytes().to_vec()))
                .await?,
        )?;
        Ok(())
    }

    fn incoming_only(&self) -> Result<(), Error> {
        if self.inner.direction != Direction::Incoming {
            return Err(Error::InvalidState("only for incoming calls".into()));
        }
        Ok(())
    }
}

/// Translates dialog states into call events until the dialog ends.
pub(crate) async fn pump(inner: Arc<CallInner>, mut states: mpsc::UnboundedReceiver<DialogState>) {
    let mut confirmed_once = false;
    while let Some(state) = states.recv().await {
        debug!(call = %inner.call_id, %state, "dialog state");
        match state {
            DialogState::Trying(_) if inner.direction == Direction::Outgoing => inner.emit(CallEvent::Trying),
            DialogState::Early(_, resp) if inner.direction == Direction::Outgoing => {
                let code = resp.status_code.code();
                let sdp = body_text(&resp.body);
                inner.emit(if code == 180 && sdp.is_none() {
                    CallEvent::Ringing
                } else {
                    CallEvent::Progress { code, sdp }
                });
            }
            DialogState::Confirmed(..) if inner.direction == Direction::Incoming && !confirmed_once => {
                confirmed_once = true;
                let sdp = if inner.offerless {
                    inner
                        .dialog
                        .lock()
                        .unwrap()
                        .as_ref()
                        .and_then(|d| d.last_remote_ack())
                        .and_then(|a| body_text(&a.body))
                } else {
                    None
                };
                inner.emit(CallEvent::Confirmed { sdp });
            }
            DialogState::Updated(_, req, handle) => {
                let sender = if inner.role() == Refresher::Uac { Refresher::Uas } else { Refresher::Uac };
                let current = *inner.session.lock().unwrap();
                let refreshed = session_timer::for_refresh(&req, current, sender);
                if req.method == Method::Update && req.body.is_empty() {
                    // A session refresh (RFC 4028 §10): nothing for the
                    // layer above, answered here.
                    let headers = refreshed.map(|a| session_timer::response_headers(a, inner.role()));
                    let _ = handle.respond(StatusCode::OK, headers, None).await;
                    if let Some(agreed) = refreshed {
                        session_timing::arm(&inner, agreed);
                    }
                    continue;
                }
                let kind = if req.method == Method::Invite { OfferKind::ReInvite } else { OfferKind::Update };
                *inner.session_offered.lock().unwrap() = refreshed;
                *inner.pending_offer.lock().unwrap() = Some(handle);
                inner.emit(CallEvent::Offer { kind, sdp: body_text(&req.body) });
            }
            DialogState::Info(_, req, handle) => {
                let _ = handle.reply(StatusCode::OK).await;
                let ct = content_type_of(&req);
                let body = String::from_utf8_lossy(&req.body).into_owned();
                let dtmf = dtmf::parse(&ct, &body);
                inner.emit(CallEvent::Info { content_type: ct, body, dtmf });
            }
            DialogState::Message(_, req, handle) => {
                let _ = handle.reply(StatusCode::OK).await;
                inner.emit(CallEvent::Message {
                    content_type: content_type_of(&req),
                    body: String::from_utf8_lossy(&req.body).into_owned(),
                });
            }
            DialogState::Options(_, _, handle) => {
                let _ = handle.reply(StatusCode::OK).await;
            }
            DialogState::Notify(_, req, handle) => {
                let _ = handle.reply(StatusCode::OK).await;
                if let Some((code, reason, done)) = transfer::parse_progress(&req, &req.body) {
                    inner.emit(CallEvent::ReferProgress { code, reason, done });
                }
            }
            DialogState::Refer(_, req, handle) => {
                let Some(refer_to) = req.header_value("Refer-To") else {
                    let _ = handle.reply(StatusCode::BadRequest).await;
                    continue;
                };
                let (target, replaces) = transfer::parse_refer_to(&refer_to);
                let referred_by = req.header_value("Referred-By");
                *inner.pending_refer.lock().unwrap() = Some(handle);
                inner.emit(CallEvent::Refer { target, referred_by, replaces });
            }
            DialogState::Publish(_, _, handle) => {
                let _ = handle.reply(StatusCode::NotImplemented).await;
            }
            DialogState::Terminated(_, reason) => {
                let role = if inner.direction == Direction::Outgoing {
                    TransactionRole::Client
                } else {
                    TransactionRole::Server
                };
                if inner.direction == Direction::Outgoing && !inner.established.load(Ordering::SeqCst) {
                    // Setup outcomes (challenges, failures) are reported by
                    // the task driving the INVITE.
                    continue;
                }
                let (by, why) = ended_by(role, &reason);
                if let Some(bye) = inner.core.bye_headers.lock().unwrap().remove(&inner.call_id) {
                    *inner.bye_headers.lock().unwrap() = bye;
                }
                inner.emit(CallEvent::Ended { by, reason: why });
                if inner.established.load(Ordering::SeqCst) || inner.direction == Direction::Incoming {
                    break;
                }
            }
            _ => {}
        }
    }
}

fn ended_by(role: TransactionRole, reason: &TerminatedReason) -> (Party, String) {
    use TerminatedReason::*;
    match (role, reason) {
        (TransactionRole::Server, UacBye) | (TransactionRole::Client, UasBye) => (Party::Remote, "BYE".into()),
        (_, UacBye) | (_, UasBye) => (Party::Local, "BYE".into()),
        (TransactionRole::Server, UacCancel) => (Party::Remote, "CANCEL".into()),
        (_, UacCancel) => (Party::Local, "CANCEL".into()),
        (_, Timeout) => (Party::Remote, "timeout".into()),
        (_, other) => (Party::Remote, format!("{other:?}")),
    }
}

/// All header fields of a message as (name, value).
pub(crate) fn header_pairs<M: HasHeaders>(m: &M) -> Vec<(String, String)> {
    m.headers()
        .iter()
        .map(|h| {
            let s = h.to_string();
            match s.split_once(':') {
                Some((n, v)) => (n.trim().to_string(), v.trim().to_string()),
                None => (s, String::new()),
            }
        })
        .collect()
}

/// The From display name and URI of a request.
pub(crate) fn from_parts(req: &Request) -> (Option<String>, String) {
    match req.from_header().ok().and_then(|f| f.typed().ok()) {
        Some(f) => (
            f.display_name.clone().map(|d| d.trim_matches('"').to_string()).filter(|d| !d.is_empty()),
            f.uri.to_string(),
        ),
        None => (None, String::new()),
    }
}

/// Sending reliable provisional responses (RFC 3262), see `crate::reliable`.
/// Kept in this file: it drives a call's own state.
mod reliable_sending {
    use super::CallInner;
    use crate::error::Error;
    use crate::events::{CallEvent, Party};
    use crate::reliable::*;
    use rsipstack::dialog::invite_dialog::InviteDialog;

    use rsipstack::sip::{Header, StatusCode};

    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use tokio::sync::oneshot;
    use tracing::{debug, warn};

    /// Sends a 180 (no body) or 183 (with `body`) reliably; returns once the
    /// first copy is out, the retransmissions run on their own task.
    pub(crate) fn send(
        inner: &Arc<CallInner>,
        dialog: InviteDialog,
        mut headers: Vec<Header>,
        body: Option<Vec<u8>>,
    ) -> Result<(), Error> {
        let (rseq, acked) = inner.core.pracks.register(&inner.call_id, &inner.rseq)?;
        headers.push(Header::Require("100rel".into()));
        headers.push(Header::RSeq(rseq.to_string().into()));
        if let Err(e) = dialog.ringing(Some(headers.clone()), body.clone()) {
            inner.core.pracks.forget(&inner.call_id);
            return Err(e.into());
        }
        tokio::spawn(retransmit(inner.clone(), dialog, headers, body, acked));
        Ok(())
    }

    async fn retransmit(
        inner: Arc<CallInner>,
        dialog: InviteDialog,
        headers: Vec<Header>,
        body: Option<Vec<u8>>,
        mut acked: oneshot::Receiver<()>,
    ) {
        let t1 = inner.core.config.t1;
        let give_up = tokio::time::Instant::now() + t1 * 64;
        let mut interval = t1;
        loop {
            tokio::select! {
                _ = &mut acked => {
                    debug!(call = %inner.call_id, "PRACK received");
                    return;
                }
                _ = tokio::time::sleep(interval) => {}
            }
            if inner.established.load(Ordering::SeqCst) || inner.ended.load(Ordering::SeqCst) {
                // §3: a final response ends the retransmissions.
                break;
            }
            if tokio::time::Instant::now() >= give_up {
                warn!(call = %inner.call_id, "reliable provisional response never acknowledged");
                let _ = dialog.reject(Some(StatusCode::ServerInternalError), Some("No PRACK".into()));
                inner.emit(CallEvent::Ended { by: Party::Remote, reason: "no PRACK".into() });
                break;
            }
            if dialog.ringing(Some(headers.clone()), body.clone()).is_err() {
                break;
            }
            interval = (interval * 2).min(T2);
        }
        inner.core.pracks.forget(&inner.call_id);
    }
}

/// The session timer of an established call (RFC 4028), see `crate::session_timer`.
/// Kept in this file: it drives a call's own state.
mod session_timing {
    use super::CallInner;
    use crate::session_timer::*;

    use crate::events::{CallEvent, Party};

    use rsipstack::sip::Response;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;
    use tracing::{debug, info, warn};

    /// Starts (or restarts, after a refresh either way) the timer of a call.
    pub(crate) fn arm(inner: &Arc<CallInner>, agreed: Agreed) {
        debug!(call = %inner.call_id, ?agreed, "session timer");
        *inner.session.lock().unwrap() = Some(agreed);
        inner.session_changed.notify_one();
    }

    /// The timer task of an established call: waits for the next deadline,
    /// re-armed whenever [`arm`] is called, until the call ends (ending
    /// wakes it too, so the task and the call's state go with the call).
    pub(crate) async fn run(inner: Arc<CallInner>) {
        let our_role = match inner.direction {
            crate::call::Direction::Outgoing => Refresher::Uac,
            crate::call::Direction::Incoming => Refresher::Uas,
        };
        loop {
            if inner.ended.load(Ordering::SeqCst) {
                return;
            }
            let agreed = *inner.session.lock().unwrap();
            let Some(agreed) = agreed else {
                inner.session_changed.notified().await;
                continue;
            };
            let interval = Duration::from_secs(agreed.interval.into());
            let (wait, ours) = if agreed.refresher == our_role {
                // §10: refresh at half the interval.
                (interval / 2, true)
            } else {
                // §10: without a refresh by interval - min(32 s, interval/3), BYE.
                (interval - (interval / 3).min(Duration::from_secs(32)), false)
            };
            tokio::select! {
                _ = inner.session_changed.notified() => continue,
                _ = tokio::time::sleep(wait) => {}
            }
            if inner.ended.load(Ordering::SeqCst) {
                return;
            }
            if !ours {
                info!(call = %inner.call_id, "session expired: no refresh from the peer");
                end(&inner, "session expired").await;
                return;
            }
            match refresh(&inner, agreed, our_role).await {
                Ok(next) => {
                    *inner.session.lock().unwrap() = Some(next);
                }
                Err(why) => {
                    warn!(call = %inner.call_id, %why, "session refresh failed");
                    end(&inner, "session refresh failed").await;
                    return;
                }
            }
        }
    }

    /// One refresh, with a retry at the peer's Min-SE after a 422 (§7.4).
    async fn refresh(inner: &Arc<CallInner>, agreed: Agreed, our_role: Refresher) -> Result<Agreed, String> {
        let mut agreed = Agreed { refresher: our_role, ..agreed };
        for _ in 0..2 {
            let resp = send_refresh(inner, agreed).await?;
            let code = resp.status_code.code();
            if (200..300).contains(&code) {
                return Ok(from_response(&resp).unwrap_or(agreed));
            }
            match (code, min_se(&resp)) {
                (422, Some(floor)) if floor > agreed.interval => agreed.interval = floor,
                _ => return Err(format!("{code} {}", crate::registration::reason(&resp))),
            }
        }
        Err("422 again".into())
    }

    async fn send_refresh(inner: &Arc<CallInner>, agreed: Agreed) -> Result<Response, String> {
        let dialog = inner.dialog().map_err(|e| e.to_string())?;
        let mut headers = crate::call::capabilities();
        headers.push(agreed.header());
        let result = if inner.peer_allows_update.load(Ordering::SeqCst) {
            dialog.update(Some(headers), None).await
        } else {
            let sdp = inner.local_sdp.lock().unwrap().clone().ok_or("no SDP of ours to refresh with")?;
            headers.push(crate::core::content_type("application/sdp"));
            dialog.reinvite(Some(headers), Some(sdp.into_bytes())).await
        };
        result.map_err(|e| e.to_string())?.ok_or_else(|| "no response".to_string())
    }

    /// Ends the call with BYE and reports it.
    async fn end(inner: &Arc<CallInner>, reason: &str) {
        if let Ok(dialog) = inner.dialog() {
            let _ = dialog.bye().await;
        }
        inner.emit(CallEvent::Ended { by: Party::Local, reason: reason.into() });
    }
}
