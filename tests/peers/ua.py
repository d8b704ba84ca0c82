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
  agent     register and stay reachable until stdin closes or SIGTERM; the
            place where call behaviours (answer after a delay, never answer,
            reject 486, play a tone) belong when a test needs them.

Exit codes: 0 the registration (and any requested unregistration) succeeded;
1 the registrar refused it (the final code is in the "result" line);
2 bad arguments or PJSUA2 could not start; 3 timeout.

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


class Account(pj.Account):
    """Keeps every final registration result; the main loop reads them."""

    def __init__(self):
        pj.Account.__init__(self)
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


class UserAgent:
    """One PJSUA2 endpoint with one transport and (later) one account."""

    def __init__(self, args):
        self.args = args
        self.ep = pj.Endpoint()
        self.acc = None
        self.log_writer = StderrLog()
        self.calls = []  # live pj.Call objects (kept so they are not collected mid-call)
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
        host = a.registrar.rsplit(":", 1)[0]
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
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", a.user, 0, a.password))
        # Loopback, no NAT: keep Via/Contact exactly as bound, no re-REGISTER on rport.
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sipOutboundUse = 0
        acfg.natConfig.udpKaIntervalSec = 0
        acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        acfg.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
        self.acc = Account()
        self.acc.create(acfg)
        return self.acc

    # --- the event loop -----------------------------------------------------
    def poll(self, seconds):
        """Handle PJSIP events for `seconds` (or until stop), watching stdin."""
        end = time.monotonic() + seconds
        while not self.stop and time.monotonic() < end:
            self.ep.libHandleEvents(10)
            self._watch_stdin()

    def poll_until(self, predicate, timeout):
        end = time.monotonic() + timeout
        while not self.stop and time.monotonic() < end:
            if predicate():
                return True
            self.ep.libHandleEvents(10)
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

    # --- shutdown -------------------------------------------------------------
    def destroy(self):
        """PEERS.md quirk: drop every PJSUA2 object and collect before libDestroy."""
        self.calls.clear()
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

    hold(ua, args)

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
         local=f"127.0.0.1:{ua.local_port}")
    return EXIT_OK if ok_unreg else EXIT_REFUSED


def cmd_agent(ua, args):
    """Register and stay reachable. Call behaviours are added here by later issues."""
    args.until_stdin_eof = args.until_stdin_eof or args.hold <= 0
    args.unregister_after = True
    return cmd_register(ua, args)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--registrar", required=True, help="HOST:PORT of the registrar (loopback)")
        sp.add_argument("--user", required=True)
        sp.add_argument("--password", required=True)
        sp.add_argument("--domain", help="domain of the AOR (default: the registrar host)")
        sp.add_argument("--expires", type=int, default=300)
        sp.add_argument("--transport", choices=["udp", "tcp"], default="udp")
        sp.add_argument("--local-port", type=int, default=0, help="0: pick a free one")
        sp.add_argument("--user-agent", default=DEFAULT_USER_AGENT)
        sp.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each final response")
        sp.add_argument("--hold", type=float, default=0.0, help="seconds to keep the binding")
        sp.add_argument("--until-stdin-eof", action="store_true", help="keep the binding until stdin closes")
        sp.add_argument("--log-level", type=int, default=3, help="PJSIP log level on stderr (0-6)")

    r = sub.add_parser("register", help="REGISTER and report the final status")
    common(r)
    g = r.add_mutually_exclusive_group()
    g.add_argument("--unregister-after", action="store_true", help="send Expires: 0 at the end")
    g.add_argument("--vanish", action="store_true", help="exit without unregistering")

    a = sub.add_parser("agent", help="register and stay reachable (call behaviours to come)")
    common(a)
    a.set_defaults(vanish=False, unregister_after=True)
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    host = args.registrar.rsplit(":", 1)[0]
    if host not in ("127.0.0.1", "localhost"):
        emit("error", message=f"refusing non-loopback registrar {args.registrar}")
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
        else:
            code = cmd_agent(ua, args)
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
