// sipbridge softphone: the page side of the gateway's WebSocket API
// (JSON-RPC 2.0, docs/protocol.md, section Gateway). Only WebSocket and
// RTCPeerConnection; no framework, no build step.
'use strict';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const phone = {
  ws: null,
  nextId: 1,
  pending: new Map(), // id -> {resolve}
  registered: false,
  call: null, // {id, direction, peer, pc, held, recording, candidates: [], canTrickle}
  mic: null,
  remoteStream: null,
  events: [],
  iceServers: [], // the gateway's STUN/TURN servers, from its `ready` message
};
// Test hook and console helper: window.softphone.request('sip.calls', {}).
window.softphone = phone;

// ------------------------------------------------------------ WebSocket
function wsUrl() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const token = params.get('token');
  return `${proto}//${location.host}/ws${token ? `?token=${encodeURIComponent(token)}` : ''}`;
}

function setPill(el, text, cls) {
  el.textContent = text;
  el.className = `pill ${cls}`;
}

function connect() {
  setPill($('conn'), 'connecting…', 'wait');
  const ws = new WebSocket(wsUrl());
  phone.ws = ws;
  ws.onopen = () => setPill($('conn'), 'connected', 'on');
  ws.onclose = () => {
    setPill($('conn'), 'offline', 'bad');
    setRegistered(false, 'not registered');
    for (const p of phone.pending.values()) p.resolve({ error: { code: -1, message: 'connection closed' } });
    phone.pending.clear();
    if (phone.call) endCall('connection lost');
    notify({ event: 'ws', state: 'closed' });
    setTimeout(connect, 3000); // reconnect; the gateway hung up our calls
  };
  ws.onmessage = (m) => {
    let msg;
    try { msg = JSON.parse(m.data); } catch { return; }
    if (msg.id !== undefined && msg.id !== null && phone.pending.has(msg.id)) {
      const p = phone.pending.get(msg.id);
      phone.pending.delete(msg.id);
      p.resolve(msg.error ? { error: msg.error } : { result: msg.result });
    } else if (msg.method === 'sip.event') {
      onEvent(msg.params);
    } else if (msg.method === 'ready') {
      $('version').textContent = `v${msg.params.version}, protocol ${msg.params.protocol}`;
      phone.iceServers = msg.params.iceServers || [];
      notify({ event: 'ws', state: 'ready' });
      updateButtons();
    } else if (msg.error) {
      notify({ event: 'rpcerror', error: msg.error }); // an answer to a bad message
    }
  };
}

/** Sends a request; resolves to {result} or {error: {code, message}}. */
phone.request = (method, params = {}) => new Promise((resolve) => {
  if (!phone.ws || phone.ws.readyState !== WebSocket.OPEN) {
    resolve({ error: { code: -1, message: 'not connected to the gateway' } });
    return;
  }
  const id = phone.nextId++;
  phone.pending.set(id, { resolve });
  phone.ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
});
/** For tests: any text, as is. */
phone.sendRaw = (text) => phone.ws.send(text);

function notify(ev) {
  phone.events.push(ev);
  if (window.softphoneEvent) window.softphoneEvent(ev); // set by the test driver
}

async function must(method, params) {
  const r = await phone.request(method, params);
  if (r.error) {
    toast(`${method}: ${r.error.message} (${r.error.code})`);
    throw new Error(r.error.message);
  }
  return r.result;
}

function toast(text) {
  addItem($('msglist'), text, 'sys');
}

function addItem(list, text, cls, small) {
  const li = document.createElement('li');
  li.textContent = text;
  if (cls) li.className = cls;
  if (small) {
    const s = document.createElement('small');
    s.textContent = small;
    li.appendChild(s);
  }
  list.prepend(li);
}

// ------------------------------------------------------------ media
async function microphone() {
  if (!phone.mic) {
    // Voice processing off: it mangles tones and music; a headset user can
    // turn it back on here.
    phone.mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      video: false,
    });
    meter(phone.mic, $('micLevel'));
  }
  return phone.mic;
}

let audioCtx = null;
function meter(stream, el) {
  audioCtx = audioCtx || new AudioContext();
  const analyser = audioCtx.createAnalyser();
  analyser.fftSize = 1024;
  audioCtx.createMediaStreamSource(stream).connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  const timer = setInterval(() => {
    if (!stream.active) { clearInterval(timer); el.value = 0; return; }
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    el.value = Math.min(1, Math.sqrt(sum / buf.length) * 3);
  }, 100);
}

async function newPeerConnection(call) {
  const pc = new RTCPeerConnection({ iceServers: phone.iceServers });
  call.pc = pc;
  for (const track of (await microphone()).getAudioTracks()) pc.addTrack(track, phone.mic);
  pc.ontrack = (e) => {
    notify({ event: 'track', kind: e.track.kind });
    const stream = e.streams[0] || new MediaStream([e.track]);
    phone.remoteStream = stream;
    $('remote').srcObject = stream; // an <audio> element pulls the receive path
    meter(stream, $('remoteLevel'));
  };
  // Trickle ICE: candidates wait until the bridge has our description.
  pc.onicecandidate = (e) => {
    const c = e.candidate ? { candidate: e.candidate.candidate, sdpMLineIndex: e.candidate.sdpMLineIndex } : { candidate: '' };
    if (call.canTrickle) trickle(call, c); else call.candidates.push(c);
  };
  pc.onconnectionstatechange = () => notify({ event: 'pcstate', state: pc.connectionState });
  return pc;
}

function trickle(call, c) {
  if (call.id) phone.request('sip.trickle', { call: call.id, ...c });
}

function startTrickle(call) {
  call.canTrickle = true;
  for (const c of call.candidates.splice(0)) trickle(call, c);
}

// ------------------------------------------------------------ UI state
function setRegistered(on, text, cls) {
  phone.registered = on;
  setPill($('reg'), text, cls || (on ? 'on' : 'off'));
  updateButtons();
}

function updateButtons() {
  const open = phone.ws && phone.ws.readyState === WebSocket.OPEN;
  const c = phone.call;
  $('register').disabled = !open || phone.registered;
  $('unregister').disabled = !open || !phone.registered;
  $('call').disabled = !open || !phone.registered || !!c;
  $('msgsend').disabled = !open || !phone.registered;
  $('incoming-actions').hidden = !(c && c.state === 'incoming');
  $('call-actions').hidden = !(c && (c.state === 'active' || c.state === 'calling'));
  $('hold').disabled = !(c && c.state === 'active');
  $('record').disabled = !(c && c.state === 'active');
  $('hold').textContent = c && c.held ? 'Resume' : 'Hold';
  $('hold').classList.toggle('active', !!(c && c.held));
  $('record').textContent = c && c.recording ? 'Stop recording' : 'Record';
  $('record').classList.toggle('active', !!(c && c.recording));
  const box = $('callbox');
  box.className = 'callbox ' + (!c ? 'idle' : c.held ? 'held' : c.state === 'incoming' || c.state === 'calling' ? 'ringing' : 'active');
}

function showCall(state, peer) {
  $('callstate').textContent = state;
  $('callpeer').textContent = peer || '';
}

function endCall(why) {
  const c = phone.call;
  if (!c) return;
  if (c.pc) c.pc.close();
  const secs = c.answeredAt ? Math.round((Date.now() - c.answeredAt) / 1000) : null;
  addItem($('calllog'), c.peer, c.answeredAt ? (c.direction === 'incoming' ? 'in' : 'out') : 'missed',
    `${new Date().toLocaleTimeString()} · ${secs !== null ? `${secs} s` : why}`);
  phone.call = null;
  phone.remoteStream = null;
  showCall(`Call ended: ${why}`);
  updateButtons();
}

// ------------------------------------------------------------ events
function onEvent(ev) {
  notify(ev);
  const c = phone.call;
  const mine = c && ev.call === c.id;
  switch (ev.event) {
    case 'registering': setRegistered(false, 'registering…', 'wait'); break;
    case 'registered': setRegistered(true, ev.guest ? 'guest' : 'registered'); break;
    case 'registration_failed':
      setRegistered(false, `failed: ${ev.code}`, 'bad');
      toast(`Registration failed: ${ev.code} ${ev.reason}`);
      break;
    case 'unregistered': setRegistered(false, 'not registered'); break;
    case 'calling': if (c) showCall('Calling…', c.peer); break;
    case 'ringing': if (mine) showCall('Ringing…', c.peer); break;
    case 'progress': if (mine) showCall('Early media…', c.peer); break;
    case 'accepted':
      if (mine) {
        c.state = 'active';
        c.answeredAt = Date.now();
        showCall('In call', c.peer);
        updateButtons();
      }
      break;
    case 'incomingcall':
      if (c) break; // the gateway answers 486 for us when busy
      phone.call = { id: ev.call, direction: 'incoming', peer: ev.displayName ? `${ev.displayName} <${ev.caller}>` : ev.caller,
        offer: ev.jsep, state: 'incoming', candidates: [], canTrickle: false };
      showCall('Incoming call', phone.call.peer);
      updateButtons();
      break;
    case 'missed_call':
      addItem($('calllog'), ev.displayName || ev.caller, 'missed', `${new Date().toLocaleTimeString()} · missed`);
      break;
    case 'updatingcall': if (mine) toast(`The other side changed the call (${ev.direction})`); break;
    case 'hangup': if (mine) endCall(`${ev.reason} (${ev.code})`); break;
    case 'message': addItem($('msglist'), ev.content, 'in', ev.sender); break;
    case 'info': toast(`INFO ${ev.contentType}: ${ev.content}`); break;
    case 'notify': toast(`${ev.package}: ${ev.content.trim()}`); break; // e.g. voicemail waiting
    case 'dtmf': toast(`DTMF from the other side: ${ev.tone}`); break;
    case 'recordingupdated': if (mine) { c.recording = ev.recording; updateButtons(); } break;
    default: break;
  }
}

// ------------------------------------------------------------ actions
phone.register = async () => {
  const p = { username: $('username').value.trim() };
  const opt = (id, key = id) => { const v = $(id).value.trim(); if (v) p[key] = v; };
  if ($('guest').checked) p.guest = true; else p.secret = $('secret').value;
  opt('displayName'); opt('authUser'); opt('proxy'); opt('transport');
  if ($('expires').value) p.expires = Number($('expires').value);
  return must('sip.register', p);
};

phone.dial = async (uri, headers) => {
  if (phone.call) throw new Error('already in a call');
  const call = { id: null, direction: 'outgoing', peer: uri, state: 'calling', candidates: [], canTrickle: false };
  phone.call = call;
  showCall('Calling…', uri);
  updateButtons();
  try {
    const pc = await newPeerConnection(call);
    await pc.setLocalDescription(await pc.createOffer());
    const jsep = { type: 'offer', sdp: pc.localDescription.sdp };
    const r = await must('sip.call', { uri, jsep, dtmfMethod: dtmfMethod(), ...(headers ? { headers } : {}) });
    call.id = r.call;
    await pc.setRemoteDescription(r.jsep);
    startTrickle(call);
    return r;
  } catch (e) {
    endCall(e.message);
    throw e;
  }
};

// The browser's answer to an incoming call's offer, made once.
async function answerOffer(call) {
  const pc = await newPeerConnection(call);
  await pc.setRemoteDescription(call.offer);
  await pc.setLocalDescription(await pc.createAnswer());
  call.early = true;
  startTrickle(call);
  return { type: 'answer', sdp: pc.localDescription.sdp };
}

// Early media: the caller hears this page (183 with SDP) before it answers.
phone.earlyMedia = async () => {
  const call = phone.call;
  if (!call || call.state !== 'incoming' || call.early) throw new Error('no incoming call to send early media on');
  await must('sip.progress', { call: call.id, jsep: await answerOffer(call) });
};

// `headers` (optional): extra SIP headers for the 200, the failure
// response or the BYE/CANCEL, e.g. {'X-Reason': 'away'}.
phone.answer = async (headers) => {
  const call = phone.call;
  if (!call || call.state !== 'incoming') throw new Error('no incoming call');
  const p = { call: call.id, dtmfMethod: dtmfMethod(), ...(headers ? { headers } : {}) };
  if (!call.early) p.jsep = await answerOffer(call);
  await must('sip.accept', p);
  call.state = 'active';
  call.answeredAt = Date.now();
  showCall('In call', call.peer);
  updateButtons();
};

phone.decline = async (headers) => {
  const call = phone.call;
  if (!call) throw new Error('no call');
  await must('sip.decline', { call: call.id, code: 486, ...(headers ? { headers } : {}) });
};

phone.hangup = async (headers) => {
  const call = phone.call;
  if (!call || !call.id) throw new Error('no call');
  await must('sip.hangup', { call: call.id, ...(headers ? { headers } : {}) });
};

phone.toggleHold = async () => {
  const call = phone.call;
  if (!call) throw new Error('no call');
  await must(call.held ? 'sip.unhold' : 'sip.hold', { call: call.id });
  call.held = !call.held;
  showCall(call.held ? 'On hold' : 'In call', call.peer);
  updateButtons();
};

/** Renegotiates with the gateway (sip.update); iceRestart after a network change. */
phone.renegotiate = async (iceRestart = false) => {
  const call = phone.call;
  if (!call || !call.id || !call.pc) throw new Error('no call');
  await call.pc.setLocalDescription(await call.pc.createOffer({ iceRestart }));
  const r = await must('sip.update', { call: call.id, jsep: { type: 'offer', sdp: call.pc.localDescription.sdp } });
  await call.pc.setRemoteDescription(r.jsep);
  return { ok: true };
};

function dtmfMethod() {
  const m = $('dtmfMethod').value;
  return m === 'info' ? 'info' : 'rfc4733';
}

phone.key = async (key) => {
  const call = phone.call;
  if (!call || call.state !== 'active') {
    $('target').value += key; // not in a call: the pad dials
    return;
  }
  if ($('dtmfMethod').value === 'browser') {
    const sender = call.pc.getSenders().find((s) => s.dtmf);
    sender.dtmf.insertDTMF(key, 100, 70);
  } else {
    await must('sip.dtmf', { call: call.id, tones: key, method: $('dtmfMethod').value });
  }
};

// A running clock on the call box while a call is up.
setInterval(() => {
  const c = phone.call;
  if (!c || !c.answeredAt) return;
  const s = Math.floor((Date.now() - c.answeredAt) / 1000);
  const clock = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  $('callstate').textContent = `${c.held ? 'On hold' : 'In call'} · ${clock}`;
}, 500);

// ------------------------------------------------------------ wiring
$('account-form').onsubmit = (e) => { e.preventDefault(); phone.register().catch(() => {}); };
$('unregister').onclick = () => must('sip.unregister').catch(() => {});
$('call').onclick = () => {
  let uri = $('target').value.trim();
  if (!uri) return;
  if (!/^sips?:/.test(uri)) {
    // A bare number or name: at the account's domain.
    const domain = ($('username').value.split('@')[1] || '').trim();
    uri = `sip:${uri}@${domain}`;
  }
  phone.dial(uri).catch(() => {});
};
$('target').onkeydown = (e) => { if (e.key === 'Enter') $('call').click(); };
$('answer').onclick = () => phone.answer().catch((e) => toast(e.message));
$('decline').onclick = () => phone.decline().catch(() => {});
$('hangup').onclick = () => phone.hangup().catch(() => {});
$('hold').onclick = () => phone.toggleHold().catch(() => {});
$('record').onclick = () => {
  const c = phone.call;
  if (c) must('sip.recording', { call: c.id, action: c.recording ? 'stop' : 'start' }).catch(() => {});
};
for (const b of $('pad').querySelectorAll('button')) b.onclick = () => phone.key(b.textContent).catch(() => {});
$('msgform').onsubmit = (e) => {
  e.preventDefault();
  const text = $('msgtext').value;
  if (!text) return;
  const c = phone.call;
  const p = c && c.state === 'active' ? { call: c.id, content: text } : { uri: $('target').value.trim(), content: text };
  must('sip.message', p).then(() => {
    addItem($('msglist'), text, 'out', c ? c.peer : p.uri);
    $('msgtext').value = '';
  }).catch(() => {});
};

// Remember the account form (never the password).
for (const id of ['username', 'displayName', 'authUser', 'proxy', 'transport', 'target']) {
  const saved = localStorage.getItem(`sipbridge.${id}`);
  if (saved && !$(id).value) $(id).value = saved;
  $(id).addEventListener('change', () => localStorage.setItem(`sipbridge.${id}`, $(id).value));
}

updateButtons();
connect();
