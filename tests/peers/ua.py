#!/usr/bin/env python3
"""A real, independent SIP user agent for pbx-bridge's end-to-end tests.

One process is one user agent: PJSUA2 (PJSIP 2.15, the stack of many
softphones), headless and on loopback only. It talks to the test that started
it through JSON lines on stdout (one object per line, each with an "event"),
and writes PJSIP's own log to stderr.

Subcommands:

  register  REGISTER with digest auth, report the final status, optionally
            hold the binding (refreshing it), unregister, or vanish without
            unregistering (a crashed phone, for expiry tests).
  agent     register (or, with --no-register, just listen) and stay reachable
            until stdin closes or SIGTERM, handling any number of sequential
            calls: ring then answer after a delay (--answer-after), ring until
            CANCEL (--never-answer), reject (--reject 486), play a WAV into
            the call (--play), record the far side (--record), hang up after
            a while (--hangup-after). Emits "ready" once reachable.
  call      a caller: optionally register (--no-register: none, credentials
            still answer digest challenges), INVITE --to, then play, record,
            send DTMF, hold/unhold, hang up or CANCEL as asked; exits when the
            call ends.

Per-call events (JSON lines, each with "call": the call's number in this
process, from 1): incoming (agent: from, to, call_id, request_uri,
x_protocol, x_headers), calling (caller), ringing (a 18x received by the
caller, or the agent's own 180), answered (agent sent 200), rejected (agent
sent --reject), confirmed, media (status active|local_hold|remote_hold|none|
error, on each change), dtmf (digit received), dtmf_sent, hold, unhold,
cancel, hangup, play_done (a --no-loop WAV played to its end), call_ended
(status = last SIP status, reason, invite_status = final response to the
INVITE, confirmed, duration = seconds from CONFIRMED to the end, ended_by
local|remote, dtmf = digits received, recording). call_ended is emitted once
the call's recording is closed (its WAV is complete). A caller then emits
"result" (ok, status, ...) and "exit".

Exit codes: 0 the registration (and any requested unregistration) succeeded,
or (call) the call ran as requested: it was confirmed, or with --cancel-after
it was cancelled before any answer, or with --expect-status its INVITE got
that final status; 1 the registrar refused it (the final code is in the
"result" line) or the call did not go as requested; 2 bad arguments or PJSUA2
could not start; 3 timeout.

Facts from PEERS.md kept here: threadCnt = 0 with libHandleEvents polling,
null audio device, 8 kHz, transports bound to 127.0.0.1 on an explicit port,
and every PJSUA2 object dropped and gc.collect() run before libDestroy().
"""

import argparse
import gc
import json
import os
import select
import signal
import socket
import sys
import time

try:
    import pjsua2 as pj
except ImportError as exc:  # reported to the test as a JSON line
    print(json.dumps({"event": "error", "message": f"pjsua2 missing: {exc}"}), flush=True)
    sys.exit(2)

# Only our JSON lines go to the real stdout: PJSIP writes to fd 1 before its log
# writer is installed, so fd 1 becomes stderr and the JSON goes to a dup.
_JSON_OUT = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

EXIT_OK, EXIT_REFUSED, EXIT_SETUP, EXIT_TIMEOUT = 0, 1, 2, 3
DEFAULT_USER_AGENT = "pbx-bridge-test-ua/1 (PJSUA2 2.15)"


def emit(event, **fields):
    """One machine-readable line on stdout."""
    fields = {"event": event, **fields, "t": round(time.monotonic(), 3)}
    _JSON_OUT.write(json.dumps(fields, sort_keys=True) + "\n")
    _JSON_OUT.flush()


def free_port(kind):
    """A port free on 127.0.0.1 for both UDP and TCP (kind is only a hint)."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        other = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "udp" else socket.SOCK_DGRAM)
        try:
            other.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            other.close()
    raise OSError("no free port on 127.0.0.1")


class StderrLog(pj.LogWriter):
    def write(self, entry):
        sys.stderr.write(entry.msg if entry.msg.endswith("\n") else entry.msg + "\n")
        sys.stderr.flush()


MEDIA_STATUS = {
    pj.PJSUA_CALL_MEDIA_NONE: "none",
    pj.PJSUA_CALL_MEDIA_ACTIVE: "active",
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "local_hold",
    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "remote_hold",
    pj.PJSUA_CALL_MEDIA_ERROR: "error",
}


def sip_headers(whole_msg):
    """(start line, [(name, value)]) of a SIP message's header part."""
    head = whole_msg.replace("\r\n", "\n").split("\n\n", 1)[0]
    lines = head.split("\n")
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # folded continuation
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
        elif ":" in line:
            name, value = line.split(":", 1)
            headers.append((name.strip(), value.strip()))
    return lines[0] if lines else "", headers


COMPACT = {"f": "from", "t": "to", "i": "call-id"}


def header(headers, name):
    for n, v in headers:
        if COMPACT.get(n.lower(), n.lower()) == name:
            return v
    return None


def uri_host(uri):
    """The host of a SIP URI (sip:user@host:port;params or <...>)."""
    u = uri.strip().strip("<>")
    u = u.split(":", 1)[1] if u.lower().startswith(("sip:", "sips:")) else u
    u = u.split("@", 1)[-1]
    u = u.split(";", 1)[0].split("?", 1)[0].split(">", 1)[0]
    if u.startswith("["):
        return u[1:].split("]", 1)[0]
    return u.split(":", 1)[0]


class Account(pj.Account):
    """Keeps every final registration result; the main loop reads them.
    Incoming calls go to the user agent's agent behaviour (if any)."""

    def __init__(self, ua=None):
        pj.Account.__init__(self)
        self.ua = ua
        self.states = []

    def onRegState(self, prm):
        info = self.getInfo()
        state = {
            "code": int(prm.code),
            "reason": str(prm.reason),
            "expires": int(prm.expiration),
            "active": bool(info.regIsActive),
        }
        self.states.append(state)
        emit("reg_state", **state)

    def onIncomingCall(self, prm):
        ua = self.ua
        call = UaCall(ua, self, prm.callId, role="agent")
        ua.calls.append(call)
        start, headers = sip_headers(str(prm.rdata.wholeMsg))
        parts = start.split(" ")
        x_headers = {n: v for n, v in headers if n.lower().startswith("x-")}
        emit("incoming", call=call.n, request_uri=parts[1] if len(parts) > 1 else None,
             **{"from": header(headers, "from")}, to=header(headers, "to"),
             call_id=header(headers, "call-id"), x_protocol=header(headers, "x-protocol"),
             x_headers=x_headers, src=str(prm.rdata.srcAddress))
        if ua.args.cmd != "agent":
            call.respond(486)  # a caller is busy
            return
        call.agent_incoming()


class Player(pj.AudioMediaPlayer):
    def __init__(self, call_n, path):
        pj.AudioMediaPlayer.__init__(self)
        self.call_n = call_n
        self.path = path

    def onEof2(self):
        emit("play_done", call=self.call_n, wav=self.path)


class UaCall(pj.Call):
    """One call of either role, with the behaviours asked on the command line.
    PJSUA2 objects are only touched from the main loop (callbacks and timers)."""

    def __init__(self, ua, acc, call_id=pj.PJSUA_INVALID_ID, role="caller"):
        pj.Call.__init__(self, acc, call_id)
        self.ua = ua
        self.args = ua.args
        self.role = role
        ua.call_count += 1
        self.n = ua.call_count
        self.started_at = time.monotonic()
        self.player = None
        self.recorder = None
        self.record_path = None
        self.confirmed_at = None
        self.ended_at = None
        self.ended = False  # DISCONNECTED seen
        self.reaped = False  # objects dropped, call_ended emitted
        self.end = {}
        self.ringing = False
        self.invite_status = None
        self.local_end = None  # why we ended it: hangup, cancel, reject, shutdown
        self.media_status = None
        self.media_seen = False
        self.dtmf_scheduled = False
        self.dtmf_rx = ""

    # --- actions (main loop) ------------------------------------------------
    def respond(self, code):
        prm = pj.CallOpParam(True)
        prm.statusCode = code
        self.answer(prm)

    def agent_incoming(self):
        a = self.args
        if a.reject:
            self.local_end = "reject"
            self.respond(a.reject)
            emit("rejected", call=self.n, code=a.reject)
            return
        self.respond(180)
        self.ringing = True
        emit("ringing", call=self.n, code=180)
        if not a.never_answer:
            self.ua.after(a.answer_after, self, self.agent_answer)

    def agent_answer(self):
        if self.ended:
            return
        self.respond(200)
        emit("answered", call=self.n, code=200)

    def do_hangup(self, why):
        if self.ended:
            return
        self.local_end = why
        emit(why, call=self.n)
        try:
            self.hangup(pj.CallOpParam(True))
        except pj.Error as exc:
            emit("error", call=self.n, message=f"hangup: {exc.info()}")

    def cancel(self):
        if self.ended:
            return
        if self.confirmed_at is not None:
            emit("cancel_too_late", call=self.n)
        self.do_hangup("cancel")

    def hold(self):
        if self.ended:
            return
        try:
            self.setHold(pj.CallOpParam(True))
            emit("hold", call=self.n)
        except pj.Error as exc:
            emit("error", call=self.n, message=f"hold: {exc.info()}")
            return
        self.ua.after(self.args.hold_for, self, self.unhold)

    def unhold(self):
        if self.ended:
            return
        prm = pj.CallOpParam(True)
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        try:
            self.reinvite(prm)
            emit("unhold", call=self.n)
        except pj.Error as exc:
            emit("error", call=self.n, message=f"unhold: {exc.info()}")

    def transfer(self):
        """Blind transfer (RFC 3515 REFER); the far end's NOTIFY reports it."""
        if self.ended:
            return
        try:
            self.xfer(self.args.transfer_to, pj.CallOpParam(True))
            emit("transfer", call=self.n, to=self.args.transfer_to)
        except pj.Error as exc:
            emit("error", call=self.n, message=f"transfer: {exc.info()}")

    def onCallTransferStatus(self, prm):
        emit("transfer_status", call=self.n, code=int(prm.statusCode), final=bool(prm.finalNotify))
        if prm.finalNotify and 200 <= int(prm.statusCode) < 300:
            self.ua.after(0.0, self, lambda: self.do_hangup("hangup"))

    def send_dtmf(self):
        if self.ended:
            return
        try:
            self.dialDtmf(self.args.dtmf)
            emit("dtmf_sent", call=self.n, digits=self.args.dtmf)
        except pj.Error as exc:
            emit("error", call=self.n, message=f"dtmf: {exc.info()}")

    def _maybe_dtmf(self):
        dtmf = getattr(self.args, "dtmf", None)
        if dtmf and not self.dtmf_scheduled and self.media_seen and self.confirmed_at is not None:
            self.dtmf_scheduled = True
            self.ua.after(self.args.dtmf_after, self, self.send_dtmf)

    # --- callbacks ------------------------------------------------------------
    def onCallState(self, prm):
        info = self.getInfo()
        st, code = info.state, int(info.lastStatusCode)
        if st == pj.PJSIP_INV_STATE_EARLY and self.role == "caller" and not self.ringing and 100 < code < 200:
            self.ringing = True
            emit("ringing", call=self.n, code=code, reason=str(info.lastReason))
        elif st in (pj.PJSIP_INV_STATE_CONNECTING, pj.PJSIP_INV_STATE_CONFIRMED) and self.invite_status is None:
            self.invite_status = code
        if st == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_at is None:
            self.confirmed_at = time.monotonic()
            emit("confirmed", call=self.n, code=code)
            a = self.args
            if a.hangup_after is not None:
                self.ua.after(a.hangup_after, self, lambda: self.do_hangup("hangup"))
            if getattr(a, "hold_after", None) is not None:
                self.ua.after(a.hold_after, self, self.hold)
            if getattr(a, "transfer_to", None) and self.role != "caller":
                self.ua.after(a.transfer_after, self, self.transfer)
            self._maybe_dtmf()
        elif st == pj.PJSIP_INV_STATE_DISCONNECTED and not self.ended:
            self.ended = True
            self.ended_at = time.monotonic()
            if self.invite_status is None:
                self.invite_status = code
            self.end = {
                "status": code,
                "reason": str(info.lastReason),
                "invite_status": self.invite_status,
                "confirmed": self.confirmed_at is not None,
                "duration": round(self.ended_at - self.confirmed_at, 3) if self.confirmed_at else 0.0,
                "ended_by": "local" if self.local_end else "remote",
                "local_end": self.local_end,
            }

    def onCallMediaState(self, prm):
        info = self.getInfo()
        for mi in info.media:
            if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            status = MEDIA_STATUS.get(mi.status, str(mi.status))
            if status != self.media_status:
                self.media_status = status
                emit("media", call=self.n, status=status, index=int(mi.index))
            if mi.status not in (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_LOCAL_HOLD,
                                 pj.PJSUA_CALL_MEDIA_REMOTE_HOLD):
                continue
            try:
                aud = self.getAudioMedia(mi.index)
            except pj.Error:
                continue
            # Connect again on every change: a re-INVITE may give a new conference slot.
            a = self.args
            if a.play:
                if self.player is None:
                    self.player = Player(self.n, a.play)
                    self.player.createPlayer(a.play, pj.PJMEDIA_FILE_NO_LOOP if a.no_loop else 0)
                self.player.startTransmit(aud)
            if a.record:
                if self.recorder is None:
                    self.record_path = a.record.replace("{n}", str(self.n))
                    self.recorder = pj.AudioMediaRecorder()
                    self.recorder.createRecorder(self.record_path)
                aud.startTransmit(self.recorder)
            if mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self.media_seen = True
                self._maybe_dtmf()

    def onDtmfDigit(self, prm):
        self.dtmf_rx += str(prm.digit)
        emit("dtmf", call=self.n, digit=str(prm.digit), method=int(prm.method))

    # --- the end ----------------------------------------------------------------
    def release_media(self):
        """Drops player and recorder; the recorder's WAV header is written when
        PJSUA2 destroys it (the caller runs gc.collect() next)."""
        self.player = None
        self.recorder = None


class UserAgent:
    """One PJSUA2 endpoint with one transport and (later) one account."""

    def __init__(self, args):
        self.args = args
        self.ep = pj.Endpoint()
        self.acc = None
        self.log_writer = StderrLog()
        self.calls = []  # live pj.Call objects (kept so they are not collected mid-call)
        self.call_count = 0
        self.timers = []  # (when, call or None, fn), run from the event loop
        self.stop = False
        self.stdin_open = True

        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.userAgent = args.user_agent
        cfg.uaConfig.maxCalls = 4
        cfg.logConfig.level = args.log_level
        cfg.logConfig.consoleLevel = args.log_level
        cfg.logConfig.writer = self.log_writer
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.noVad = True
        self.ep.libInit(cfg)

        ttype = pj.PJSIP_TRANSPORT_TCP if args.transport == "tcp" else pj.PJSIP_TRANSPORT_UDP
        # A port picked here may be taken by another process before PJSIP
        # binds it (tests run in parallel): then pick another.
        for attempt in range(1 if args.local_port else 5):
            self.local_port = args.local_port or free_port(args.transport)
            tcfg = pj.TransportConfig()
            tcfg.port = self.local_port
            tcfg.boundAddress = "127.0.0.1"
            tcfg.publicAddress = "127.0.0.1"
            try:
                self.ep.transportCreate(ttype, tcfg)
                break
            except pj.Error:
                if args.local_port or attempt == 4:
                    raise
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        for codec, prio in (("PCMU/8000", 255), ("PCMA/8000", 254)):
            try:
                self.ep.codecSetPriority(codec, prio)
            except pj.Error:
                pass

    # --- the account ------------------------------------------------------
    def add_account(self, register=True):
        a = self.args
        host = a.registrar.rsplit(":", 1)[0] if a.registrar else "127.0.0.1"
        domain = a.domain or host
        suffix = ";transport=tcp" if a.transport == "tcp" else ""
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{a.user}@{domain}"
        if register:
            acfg.regConfig.registrarUri = f"sip:{a.registrar}{suffix}"
            acfg.regConfig.timeoutSec = a.expires
            acfg.regConfig.retryIntervalSec = 0  # no automatic retry after a failure
            acfg.regConfig.firstRetryIntervalSec = 0
            acfg.regConfig.delayBeforeRefreshSec = max(1, min(5, a.expires // 2))
            acfg.regConfig.unregWaitMsec = 2000
        if a.password is not None:
            acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", a.user, 0, a.password))
        # Loopback, no NAT: keep Via/Contact exactly as bound, no re-REGISTER on rport.
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sipOutboundUse = 0
        acfg.natConfig.udpKaIntervalSec = 0
        acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        acfg.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
        self.acc = Account(self)
        self.acc.create(acfg)
        return self.acc

    # --- the event loop -----------------------------------------------------
    def after(self, seconds, call, fn):
        """Runs fn() from the event loop `seconds` from now (dropped if `call` is reaped)."""
        self.timers.append((time.monotonic() + max(0.0, seconds), call, fn))

    def _tick(self):
        now = time.monotonic()
        due = [t for t in self.timers if t[0] <= now]
        if due:
            self.timers = [t for t in self.timers if t[0] > now]
            for _, _, fn in sorted(due, key=lambda t: t[0]):
                try:
                    fn()
                except pj.Error as exc:
                    emit("error", message=f"pjsua2: {exc.info()}")
        if any(c.ended for c in self.calls):
            self._reap()

    def _reap(self):
        """Drops ended calls outside their callbacks: recorder closed, then call_ended."""
        ended = [c for c in self.calls if c.ended]
        self.calls = [c for c in self.calls if not c.ended]
        self.timers = [t for t in self.timers if t[1] is None or not t[1].ended]
        for c in ended:
            c.release_media()
            c.reaped = True
        gc.collect()  # the recorder's WAV is complete once it is destroyed
        for c in ended:
            emit("call_ended", call=c.n, role=c.role, dtmf=c.dtmf_rx, recording=c.record_path,
                 **c.end)

    def poll(self, seconds):
        """Handle PJSIP events for `seconds` (or until stop), watching stdin."""
        end = time.monotonic() + seconds
        while not self.stop and time.monotonic() < end:
            self.ep.libHandleEvents(10)
            self._tick()
            self._watch_stdin()

    def poll_until(self, predicate, timeout, honour_stop=True):
        end = time.monotonic() + timeout
        while not (honour_stop and self.stop) and time.monotonic() < end:
            if predicate():
                return True
            self.ep.libHandleEvents(10)
            self._tick()
            self._watch_stdin()
        return predicate()

    def _watch_stdin(self):
        if not self.stdin_open or not self.args.until_stdin_eof:
            return
        try:
            ready, _, _ = select.select([sys.stdin], [], [], 0)
        except (OSError, ValueError):
            self.stdin_open = False
            return
        if ready:
            data = os.read(sys.stdin.fileno(), 4096)
            if not data:
                self.stdin_open = False

    def wait_final(self, start_index, timeout):
        """The first registration result after `start_index`, or None."""
        acc = self.acc
        if self.poll_until(lambda: len(acc.states) > start_index, timeout):
            return acc.states[start_index]
        return None

    def hangup_all(self, timeout=3.0):
        """Ends every live call and lets PJSIP finish them (even after SIGTERM)."""
        for c in list(self.calls):
            c.do_hangup("shutdown")
        self.poll_until(lambda: not self.calls, timeout, honour_stop=False)

    # --- shutdown -------------------------------------------------------------
    def destroy(self):
        """PEERS.md quirk: drop every PJSUA2 object and collect before libDestroy."""
        for c in self.calls:
            c.release_media()
        self.calls.clear()
        self.timers.clear()
        if self.acc is not None:
            try:
                self.acc.shutdown()
            except pj.Error:
                pass
            self.acc = None
        gc.collect()
        self.ep.libDestroy()
        self.ep = None
        gc.collect()


# --- subcommands ------------------------------------------------------------

def hold(ua, args):
    """Keep the binding (PJSIP refreshes it) for --hold seconds or until stdin EOF."""
    if args.until_stdin_eof:
        emit("holding", until="stdin-eof")
        ua.poll_until(lambda: not ua.stdin_open, 24 * 3600)
    elif args.hold > 0:
        emit("holding", seconds=args.hold)
        ua.poll(args.hold)


def cmd_register(ua, args):
    emit("started", local=f"127.0.0.1:{ua.local_port}", transport=args.transport,
         user_agent=args.user_agent, user=args.user)
    acc = ua.add_account(register=True)
    first = ua.wait_final(0, args.timeout)
    if first is None:
        emit("result", ok=False, code=None, reason="timeout", local=f"127.0.0.1:{ua.local_port}")
        return EXIT_TIMEOUT
    ok = 200 <= first["code"] < 300 and first["expires"] > 0
    if ok:
        emit("registered", code=first["code"], reason=first["reason"], expires=first["expires"],
             local=f"127.0.0.1:{ua.local_port}")
    if not ok:
        emit("result", ok=False, code=first["code"], reason=first["reason"],
             local=f"127.0.0.1:{ua.local_port}")
        return EXIT_REFUSED

    if args.cmd == "agent":
        emit("ready", local=f"127.0.0.1:{ua.local_port}", registered=True)

    hold(ua, args)

    if args.cmd == "agent":
        ua.hangup_all()

    if args.vanish:
        # A phone that dies: no un-REGISTER, no libDestroy (which would send one).
        emit("result", ok=True, code=first["code"], reason=first["reason"], vanished=True,
             local=f"127.0.0.1:{ua.local_port}")
        _JSON_OUT.flush()
        sys.stderr.flush()
        os._exit(EXIT_OK)

    unreg = None
    if args.unregister_after:
        n = len(acc.states)
        acc.setRegistration(False)
        unreg = ua.wait_final(n, args.timeout)
        if unreg is None:
            emit("result", ok=False, code=first["code"], reason="unregister timeout",
                 local=f"127.0.0.1:{ua.local_port}")
            return EXIT_TIMEOUT
        emit("unregistered", code=unreg["code"], reason=unreg["reason"])
    ok_unreg = unreg is None or 200 <= unreg["code"] < 300
    emit("result", ok=ok_unreg, code=first["code"], reason=first["reason"],
         unregister_code=None if unreg is None else unreg["code"],
         local=f"127.0.0.1:{ua.local_port}", calls=ua.call_count)
    return EXIT_OK if ok_unreg else EXIT_REFUSED


def cmd_agent(ua, args):
    """Stay reachable (registered, or only listening with --no-register) and
    handle incoming calls with the behaviours given on the command line."""
    args.until_stdin_eof = args.until_stdin_eof or args.hold <= 0
    args.unregister_after = True
    if not args.no_register:
        return cmd_register(ua, args)
    local = f"127.0.0.1:{ua.local_port}"
    emit("started", local=local, transport=args.transport, user_agent=args.user_agent, user=args.user)
    ua.add_account(register=False)
    emit("ready", local=local, registered=False)
    hold(ua, args)
    ua.hangup_all()
    emit("result", ok=True, code=None, local=local, calls=ua.call_count)
    return EXIT_OK


def cmd_call(ua, args):
    local = f"127.0.0.1:{ua.local_port}"
    emit("started", local=local, transport=args.transport, user_agent=args.user_agent, user=args.user)
    acc = ua.add_account(register=not args.no_register)
    if not args.no_register:
        first = ua.wait_final(0, args.timeout)
        if first is None:
            emit("result", ok=False, code=None, reason="register timeout", local=local)
            return EXIT_TIMEOUT
        if not (200 <= first["code"] < 300 and first["expires"] > 0):
            emit("result", ok=False, code=first["code"], reason=first["reason"], local=local)
            return EXIT_REFUSED
        emit("registered", code=first["code"], reason=first["reason"], expires=first["expires"],
             local=local)

    call = UaCall(ua, acc, role="caller")
    ua.calls.append(call)
    prm = pj.CallOpParam(True)
    for h in args.header:
        name, _, value = h.partition(":")
        sh = pj.SipHeader()
        sh.hName = name.strip()
        sh.hValue = value.strip()
        prm.txOption.headers.append(sh)
    call.makeCall(args.to, prm)
    emit("calling", call=call.n, to=args.to, local=local)
    if args.cancel_after is not None:
        ua.after(args.cancel_after, call, call.cancel)

    if not ua.poll_until(lambda: call.reaped, args.max_duration):
        timed_out = not ua.stop
        ua.hangup_all()
        if timed_out:
            emit("result", ok=False, reason="max duration", local=local, **call.end)
            return EXIT_TIMEOUT
    end = call.end
    if not end:
        emit("result", ok=False, reason="stopped", local=local)
        return EXIT_REFUSED
    if args.expect_status is not None:
        ok = end["invite_status"] == args.expect_status
    elif args.cancel_after is not None:
        ok = call.local_end == "cancel" and not end["confirmed"]
    else:
        ok = end["confirmed"]
    emit("result", ok=ok, local=local, **end)
    return EXIT_OK if ok else EXIT_REFUSED


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp, need_registrar=True):
        sp.add_argument("--registrar", required=need_registrar, help="HOST:PORT of the registrar (loopback)")
        sp.add_argument("--user", required=need_registrar, default="pjsua")
        sp.add_argument("--password", required=need_registrar, default=None)
        sp.add_argument("--domain", help="domain of the AOR (default: the registrar host, else 127.0.0.1)")
        sp.add_argument("--expires", type=int, default=300)
        sp.add_argument("--transport", choices=["udp", "tcp"], default="udp")
        sp.add_argument("--local-port", type=int, default=0, help="0: pick a free one")
        sp.add_argument("--user-agent", default=DEFAULT_USER_AGENT)
        sp.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each final response")
        sp.add_argument("--hold", type=float, default=0.0, help="seconds to keep the binding")
        sp.add_argument("--until-stdin-eof", action="store_true", help="keep the binding until stdin closes")
        sp.add_argument("--log-level", type=int, default=3, help="PJSIP log level on stderr (0-6)")

    def media(sp):
        sp.add_argument("--play", metavar="WAV", help="play this WAV into each call once media is active")
        sp.add_argument("--no-loop", action="store_true", help="play --play once (default: loop)")
        sp.add_argument("--record", metavar="WAV",
                        help="record what the far side sends ({n} in the name: the call number)")
        sp.add_argument("--hangup-after", type=float, metavar="SECONDS",
                        help="hang up the call SECONDS after CONFIRMED (default: wait for the far side)")

    r = sub.add_parser("register", help="REGISTER and report the final status")
    common(r)
    g = r.add_mutually_exclusive_group()
    g.add_argument("--unregister-after", action="store_true", help="send Expires: 0 at the end")
    g.add_argument("--vanish", action="store_true", help="exit without unregistering")

    a = sub.add_parser("agent", help="stay reachable and handle incoming calls")
    common(a, need_registrar=False)
    a.add_argument("--no-register", action="store_true", help="no REGISTER: only listen on --local-port")
    media(a)
    b = a.add_mutually_exclusive_group()
    b.add_argument("--answer-after", type=float, default=0.0, metavar="SECONDS",
                   help="send 180 at once, then 200 after SECONDS (default 0)")
    b.add_argument("--never-answer", action="store_true", help="send 180 and ring until CANCEL")
    b.add_argument("--reject", type=int, metavar="CODE", help="answer the INVITE with CODE (e.g. 486)")
    a.add_argument("--transfer-to", metavar="URI",
                   help="blind-transfer (REFER) each answered call to URI after --transfer-after seconds")
    a.add_argument("--transfer-after", type=float, default=1.0, metavar="SECONDS")
    a.set_defaults(vanish=False, unregister_after=True)

    c = sub.add_parser("call", help="place one call and exit when it ends")
    common(c, need_registrar=False)
    c.add_argument("--no-register", action="store_true",
                   help="no REGISTER (credentials still answer digest challenges)")
    c.add_argument("--to", required=True, help="the URI to call (loopback), e.g. sip:100@127.0.0.1:5060")
    c.add_argument("--header", action="append", default=[], metavar="NAME:VALUE",
                   help="an extra header on the INVITE (repeatable)")
    media(c)
    c.add_argument("--cancel-after", type=float, metavar="SECONDS",
                   help="hang up SECONDS after sending the INVITE, before any answer (CANCEL)")
    c.add_argument("--dtmf", metavar="DIGITS", help="send these digits (RFC 4733) once answered")
    c.add_argument("--dtmf-after", type=float, default=0.5, metavar="SECONDS",
                   help="delay between active media and --dtmf (default 0.5)")
    c.add_argument("--hold-after", type=float, metavar="SECONDS",
                   help="SECONDS after CONFIRMED: re-INVITE sendonly (hold), then unhold")
    c.add_argument("--hold-for", type=float, default=1.0, metavar="SECONDS",
                   help="how long --hold-after holds before the unhold re-INVITE (default 1)")
    c.add_argument("--expect-status", type=int, metavar="CODE",
                   help="exit 0 only if the INVITE's final status is CODE")
    c.add_argument("--max-duration", type=float, default=120.0, metavar="SECONDS",
                   help="give up (hang up, exit 3) after SECONDS (default 120)")
    args = p.parse_args(argv)
    if args.cmd in ("agent", "call"):
        if not args.no_register and not args.registrar:
            p.error(f"{args.cmd}: --registrar is required unless --no-register")
        if not args.no_register and args.password is None:
            p.error(f"{args.cmd}: --password is required unless --no-register")
    if args.cmd == "call":
        args.until_stdin_eof = False
    return args


def main(argv):
    args = parse_args(argv)
    if args.registrar:
        host = args.registrar.rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost"):
            emit("error", message=f"refusing non-loopback registrar {args.registrar}")
            return EXIT_SETUP
    if args.cmd == "call" and uri_host(args.to) not in ("127.0.0.1", "localhost"):
        emit("error", message=f"refusing non-loopback target {args.to}")
        return EXIT_SETUP
    for opt in ("play",):
        path = getattr(args, opt, None)
        if path and not os.path.isfile(path):
            emit("error", message=f"--{opt}: no such file {path}")
            return EXIT_SETUP
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)

    ua = None
    try:
        ua = UserAgent(args)

        def on_term(_sig, _frm):
            ua.stop = True

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        if args.cmd == "register":
            code = cmd_register(ua, args)
        elif args.cmd == "agent":
            code = cmd_agent(ua, args)
        else:
            code = cmd_call(ua, args)
    except pj.Error as exc:
        emit("error", message=f"pjsua2: {exc.info()}")
        code = EXIT_SETUP
    finally:
        if ua is not None and ua.ep is not None:
            ua.destroy()
    emit("exit", code=code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
