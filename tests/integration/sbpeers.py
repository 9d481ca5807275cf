"""sbpeers.py: the peers of the Service Bus plugin tests, started and driven from Python.

- Emulator: tools/sb-emulator (SBEMU_BIN, set by CTest) on free 127.0.0.1 ports with a config
  written into the test's folder; stop (exit status checked: a leak under the sanitizer build
  fails it), kill -9, restart on the same port and persist file, and the broker's own message
  counts read from its runtime-properties HTTP endpoint.
- sdk_send / sdk_receive / sdk_peek: the official @azure/service-bus SDK, through the node
  scripts in tests/sb-emulator (sdk-send.mjs, sdk-receive.mjs).
- RabbitMQ: a private RabbitMQ node (Debian rabbitmq-server, AMQP 1.0 plugin) with its own epmd,
  data and log folders and free loopback ports; the system node of the package is never used.
- amqp_send / amqp_receive: a plain AMQP 1.0 client (rhea, tests/sb-emulator/amqp-client.mjs)
  for RabbitMQ or the emulator (SASL PLAIN with a user, else ANONYMOUS).
- PeersMixin: start_emulator() / start_rabbitmq() for a harness.IntakeTest; whatever was started
  is stopped in tearDown, and its log printed when the test failed (or SBPEERS_LOG=1).

Standard library only. Every peer listens on 127.0.0.1 only, and gets SIGTERM when the test
process dies without its tearDown (a CTest timeout).
"""
import base64
import ctypes
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = harness.SRC or os.path.dirname(os.path.dirname(HERE))
SBEMU_BIN = os.environ.get("SBEMU_BIN", "")
NODE_DIR = os.path.join(SRC, "tests", "sb-emulator")
KEY_NAME = "RootManageSharedAccessKey"
KEY = "SAS_KEY_VALUE"
# Sanitized peers start and stop more slowly.
SLOW = 3 if harness.SANITIZED else 1
SHOW_LOGS = os.environ.get("SBPEERS_LOG", "") not in ("", "0")

# Queue settings Emulator.start accepts, as the emulator's config names them.
QUEUE_SETTINGS = {
    "lock_duration_ms": int, "max_delivery_count": int, "default_ttl_ms": int,
    "dead_lettering_on_expiration": bool, "duplicate_detection": bool,
    "duplicate_window_ms": int, "requires_session": bool, "max_size_mb": int,
}
COUNTS_NS = "{http://schemas.microsoft.com/netservices/2011/06/servicebus}"


_LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """preexec_fn: SIGTERM to the peer when the test process dies (a CTest timeout kills it
    with no tearDown), so no emulator or RabbitMQ node outlives its test. Runs after Popen's
    user switch, which would clear it."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class PeerError(Exception):
    """A peer failed to start, stop or answer; the message carries the tail of its log."""


def tail(path, lines=80):
    """The last `lines` lines of a text file ("" when it does not exist)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def sas_token(uri, key_name=KEY_NAME, key=KEY, ttl=300):
    """A Service Bus SAS token for `uri`, as the JS SDK's admin client makes it: sr is the
    lower-cased, URI-encoded (encodeURIComponent) resource, signed with HMAC-SHA256 over
    "sr\\nexpiry"."""
    sr = urllib.parse.quote(uri.lower(), safe="-_.!~*'()").lower()
    se = int(time.time()) + ttl
    sig = hmac.new(key.encode(), ("%s\n%d" % (sr, se)).encode(), hashlib.sha256).digest()
    return "SharedAccessSignature sr=%s&sig=%s&se=%d&skn=%s" % (
        sr, urllib.parse.quote(base64.b64encode(sig).decode(), safe=""), se, key_name)


def _queue_config(q):
    """One queue of the emulator's config: `q` is a name or a dict with "name" and settings
    from QUEUE_SETTINGS; raises ValueError on an unknown setting or a wrong type."""
    if isinstance(q, str):
        q = {"name": q}
    q = dict(q)
    name = q.pop("name", None)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise ValueError("queue name %r: letters, digits, '.', '_' and '-' only" % (name,))
    parts = ['name = "%s";' % name]
    for k, v in q.items():
        kind = QUEUE_SETTINGS.get(k)
        if kind is None:
            raise ValueError("queue %s: unknown setting %r (known: %s)"
                             % (name, k, ", ".join(sorted(QUEUE_SETTINGS))))
        if type(v) is not kind:
            raise ValueError("queue %s: %s must be %s, got %r" % (name, k, kind.__name__, v))
        parts.append("%s = %s;" % (k, ("true" if v else "false") if kind is bool else v))
    return "{ %s }" % " ".join(parts)


class Emulator:
    """intake-sb-emulator on 127.0.0.1, its files in `workdir` (config, stdout, log)."""

    def __init__(self, workdir, name="sbemu", binary=None):
        self.dir = workdir
        self.name = name
        self.bin = binary or SBEMU_BIN
        self.proc = None
        self.config_path = os.path.join(workdir, name + ".cfg")
        self.log_path = os.path.join(workdir, name + ".log")
        self.out_path = os.path.join(workdir, name + ".out")
        self.persist_file = None
        self.verbose = False
        self._amqp_port = None
        self._http_port = None
        self.start_seconds = None

    # -- life cycle --------------------------------------------------------------------------

    def start(self, queues=("q1",), persist_file=None, persist_interval_ms=None,
              max_message_size=None, handshake_timeout_ms=None, verbose=False, keys=None):
        """Writes the config and starts the emulator on free ports; returns self.
        queues: names, or dicts like {"name": "q", "lock_duration_ms": 5000,
        "max_delivery_count": 3, "requires_session": True, "duplicate_detection": True,
        "duplicate_window_ms": 60000, "dead_lettering_on_expiration": True,
        "default_ttl_ms": 1000, "max_size_mb": 1}. keys: extra {name: key} beside the root key."""
        if not self.bin or not os.path.exists(self.bin):
            raise PeerError("SBEMU_BIN (%r) is not the intake-sb-emulator binary: run through ctest"
                            % self.bin)
        lines = ['listen = "127.0.0.1";', "port = 0;", "http_port = 0;", "log_level = 2;"]
        allkeys = {KEY_NAME: KEY}
        allkeys.update(keys or {})
        lines.append("keys = ( %s );" % ", ".join(
            '{ name = "%s"; key = "%s"; }' % kv for kv in allkeys.items()))
        lines.append("queues = ( %s );" % ", ".join(_queue_config(q) for q in queues))
        if persist_file:
            self.persist_file = os.path.abspath(persist_file)
            lines.append('persist_file = "%s";' % self.persist_file)
        for k, v in (("persist_interval_ms", persist_interval_ms),
                     ("max_message_size", max_message_size),
                     ("handshake_timeout_ms", handshake_timeout_ms)):
            if v is not None:
                lines.append("%s = %d;" % (k, v))
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.verbose = verbose
        self._launch(0)
        return self

    def _launch(self, port, timeout=10):
        """Starts the binary on `port` (0 = any) and waits for its READY line."""
        with open(self.log_path, "a") as log:
            log.write("--- %s: starting %s on port %d\n" % (time.strftime("%H:%M:%S"), self.name, port))
        args = [self.bin, "-c", self.config_path, "-p", str(port)] + (["-v"] if self.verbose else [])
        t0 = time.monotonic()
        with open(self.out_path, "w") as out, open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=log,
                                         preexec_fn=_die_with_parent)
        end = t0 + timeout * SLOW
        while time.monotonic() < end:
            m = re.search(r"READY amqp=(-?\d+) amqps=(-?\d+) http=(-?\d+)", tail(self.out_path))
            if m:
                self._amqp_port, self._http_port = int(m.group(1)), int(m.group(3))
                self.start_seconds = time.monotonic() - t0
                return
            if self.proc.poll() is not None:
                raise PeerError("%s exited with %d before READY:\n%s"
                                % (self.name, self.proc.returncode, tail(self.log_path)))
            time.sleep(0.02)
        self.proc.kill()
        self.proc.wait()
        raise PeerError("%s: no READY line within %d s:\n%s" % (self.name, timeout * SLOW,
                                                               tail(self.log_path)))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=30, check=True):
        """SIGTERM, then waits; returns the exit status. check: a status other than 0 (under
        the sanitizer build, a leak) raises PeerError with the log. A hang is killed and
        raises."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise PeerError("%s did not exit within %d s of SIGTERM:\n%s"
                                % (self.name, timeout * SLOW, tail(self.log_path)))
        rc = self.proc.returncode
        if check and rc != 0:
            raise PeerError("%s exited with %d:\n%s" % (self.name, rc, tail(self.log_path, 200)))
        return rc

    def kill9(self):
        """SIGKILL: no snapshot is written, connections die without a close."""
        if self.running():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def restart(self, timeout=10):
        """Stops it if it runs (exit status checked), starts it again on the same AMQP port,
        config and persist file. The HTTP port may change (http_port tells)."""
        if self.running():
            self.stop()
        self._launch(self._amqp_port, timeout)
        return self

    def wait_snapshot(self, since_ns=None, timeout=10):
        """Waits until persist_file was written after `since_ns` (time.time_ns(), default now):
        what was sent before the call survives a kill -9 from then on."""
        since_ns = time.time_ns() if since_ns is None else since_ns
        end = time.monotonic() + timeout * SLOW
        while time.monotonic() < end:
            try:
                if os.stat(self.persist_file).st_mtime_ns > since_ns:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise PeerError("%s: no snapshot in %s within %d s" % (self.name, self.persist_file, timeout))

    def cleanup(self):
        """Stops it when still running (exit status checked). For tearDown."""
        if self.running():
            self.stop()

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def print_log(self, why):
        sys.stderr.write("===== %s log (%s): %s\n%s===== end of %s log\n"
                         % (self.name, why, self.log_path, tail(self.log_path, 300), self.name))

    # -- addresses ---------------------------------------------------------------------------

    @property
    def amqp_port(self):
        return self._amqp_port

    @property
    def http_port(self):
        return self._http_port

    @property
    def connection_string(self):
        return self.connection_string_for(KEY_NAME, KEY)

    def connection_string_for(self, key_name, key):
        return ("Endpoint=sb://127.0.0.1:%d;SharedAccessKeyName=%s;SharedAccessKey=%s;"
                "UseDevelopmentEmulator=true" % (self._amqp_port, key_name, key))

    # -- runtime properties ------------------------------------------------------------------

    def counts(self, queue):
        """{"active", "dead_letter", "scheduled"} of `queue`, from the runtime-properties
        endpoint (ATOM, SAS-authorised like the SDK's admin client)."""
        url = "http://127.0.0.1:%d/%s?api-version=2021-05" % (self._http_port,
                                                              urllib.parse.quote(queue))
        req = urllib.request.Request(url, headers={"Authorization": sas_token(url)})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                doc = r.read()
        except urllib.error.HTTPError as e:
            raise PeerError("%s: GET /%s answered %d: %s"
                            % (self.name, queue, e.code, e.read()[:500].decode(errors="replace")))
        root = ET.fromstring(doc)
        out = {}
        for key, tag in (("active", "ActiveMessageCount"), ("dead_letter", "DeadLetterMessageCount"),
                         ("scheduled", "ScheduledMessageCount")):
            el = root.find(".//" + COUNTS_NS + tag)
            if el is None or not (el.text or "").isdigit():
                raise PeerError("%s: runtime properties of %s lack %s" % (self.name, queue, tag))
            out[key] = int(el.text)
        return out


# -- node scripts: the official SDK and rhea -------------------------------------------------

def _node(script, request, timeout=60):
    """Runs tests/sb-emulator/<script> with `request` as JSON on stdin; returns its stdout.
    Raises PeerError with its stderr when it exits non-zero (the request, which holds a key,
    is not repeated)."""
    node = shutil.which("node")
    if not node:
        raise PeerError("node is not on PATH (tools/deps --tests installs nodejs)")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
        raise PeerError("%s/node_modules is missing: run tools/deps --tests" % NODE_DIR)
    r = subprocess.run([node, script], input=json.dumps(request), capture_output=True, text=True,
                       cwd=NODE_DIR, timeout=timeout * SLOW)
    if r.returncode != 0:
        raise PeerError("%s exited with %d: %s" % (script, r.returncode, r.stderr.strip()[:2000]))
    return r.stdout


def _json_lines(text):
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def sdk_send(conn, queue, messages, batch=False, timeout=60):
    """Sends `messages` with the official SDK. Each is a dict with "body" (any JSON value) or
    "bodyBase64" (sent as a Buffer), and optional "messageId", "applicationProperties",
    "sessionId", "contentType", "correlationId", "subject", "timeToLive" (ms),
    "scheduledEnqueueTimeUtc" (ISO time). batch: through createMessageBatch (as many batches
    as needed) instead of one send per message. Returns {"sent": N, "batches": B}."""
    out = _node("sdk-send.mjs", {"connectionString": conn, "queue": queue, "batch": bool(batch),
                                  "messages": list(messages)}, timeout)
    return json.loads(out)


def sdk_receive(conn, queue, count, session_id=None, next_session=False, sub_queue=None,
                settle="complete", max_wait_ms=5000, timeout=60):
    """Receives up to `count` messages in peek-lock with the official SDK within max_wait_ms
    and settles each ("complete", "abandon", or "none" to let the lock expire). Returns a dict
    per message: body (as the SDK decoded it; a Buffer is {"base64": ...}), messageId,
    applicationProperties, sessionId, contentType, deliveryCount, sequenceNumber,
    enqueuedTimeUtc, deadLetterReason, ... sub_queue="deadLetter" reads the dead-letter queue;
    session_id (or next_session=True) reads one session."""
    req = {"connectionString": conn, "queue": queue, "count": count, "settle": settle,
           "maxWaitMs": max_wait_ms}
    if session_id is not None:
        req["sessionId"] = session_id
    if next_session:
        req["nextSessionId"] = True
    if sub_queue:
        req["subQueue"] = sub_queue
    return _json_lines(_node("sdk-receive.mjs", req, timeout))


def sdk_peek(conn, queue, count, session_id=None, sub_queue=None, timeout=60):
    """Up to `count` messages looked at without locking or settling them (same fields as
    sdk_receive)."""
    req = {"connectionString": conn, "queue": queue, "count": count, "peek": True}
    if session_id is not None:
        req["sessionId"] = session_id
    if sub_queue:
        req["subQueue"] = sub_queue
    return _json_lines(_node("sdk-receive.mjs", req, timeout))


def amqp_send(port, address, messages, user="guest", password="guest", durable_target=False,
              timeout=60):
    """Sends `messages` over plain AMQP 1.0 (rhea) and waits until the peer settled each.
    Each is a dict with "body" (amqp-value), "data" (text in a data section) or "bodyBase64"
    (bytes in a data section), and optional "messageId", "contentType",
    "applicationProperties", "durable", "ttl". user=None: SASL ANONYMOUS. durable_target:
    RabbitMQ auto-declares /queue/NAME durable (else not durable: gone after a restart).
    Returns {"sent", "accepted", "rejected", "released", "modified"}."""
    req = {"port": port, "address": address, "action": "send", "messages": list(messages),
           "durableTarget": bool(durable_target)}
    if user is not None:
        req.update(user=user, password=password)
    return json.loads(_node("amqp-client.mjs", req, timeout))


def amqp_receive(port, address, count, outcome="accept", max_wait_ms=5000, user="guest",
                 password="guest", timeout=60):
    """Receives up to `count` messages (exactly that much credit) within max_wait_ms and
    settles each with `outcome` ("accept", "release", "reject"). Returns a dict per message:
    body, bodyType ("value", "data" with body {"base64": ...}, "sequence"), messageId,
    contentType, applicationProperties, durable, deliveryCount, firstAcquirer."""
    req = {"port": port, "address": address, "action": "receive", "count": count,
           "outcome": outcome, "maxWaitMs": max_wait_ms}
    if user is not None:
        req.update(user=user, password=password)
    return _json_lines(_node("amqp-client.mjs", req, timeout))


# -- RabbitMQ --------------------------------------------------------------------------------

RABBIT_LIB = "/usr/lib/rabbitmq/bin"
RABBIT_USER = "rabbitmq"
AMQP10_SASL_HEADER = b"AMQP\x03\x01\x00\x00"


def _erlang_literal(s):
    """An Erlang binary literal for a plain name (letters, digits, '.', '_', '-')."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", s):
        raise ValueError("name %r: letters, digits, '.', '_' and '-' only" % s)
    return '<<"%s">>' % s


class RabbitMQ:
    """A private RabbitMQ node with the AMQP 1.0 plugin, run as the rabbitmq user (which the
    Debian scripts require) in its own temporary folder: its own epmd, distribution port and
    AMQP listener on free 127.0.0.1 ports, management off. guest/guest works from loopback."""

    USER = "guest"
    PASSWORD = "guest"

    def __init__(self, name="rabbit"):
        self.name = name
        self.base = None
        self.proc = None
        self.epmd = None
        self.amqp_port = None
        self.dist_port = None
        self.epmd_port = None
        self.nodename = None
        self.start_seconds = None

    # -- files and environment ---------------------------------------------------------------

    def _prepare(self):
        """Makes the node's folder (owned by rabbitmq: the broker writes its data and logs
        there) and its config; picks the ports."""
        if not os.path.exists(os.path.join(RABBIT_LIB, "rabbitmq-server")):
            raise PeerError("rabbitmq-server is not installed (tools/deps --tests installs it)")
        if os.geteuid() != 0:
            raise PeerError("the RabbitMQ node runs as the rabbitmq user: run the tests as root")
        self.base = tempfile.mkdtemp(prefix="intake-rabbit-")
        for d in ("mnesia", "log", "home"):
            os.mkdir(os.path.join(self.base, d))
        self.amqp_port, self.dist_port, self.epmd_port = (harness.free_port() for _ in range(3))
        self.nodename = "intake-%s@localhost" % uuid.uuid4().hex[:12]
        files = {
            "rabbitmq.conf": "listeners.tcp.1 = 127.0.0.1:%d\n"
                             "distribution.listener.interface = 127.0.0.1\n"
                             "loopback_users.guest = true\n" % self.amqp_port,
            "enabled_plugins": "[rabbitmq_amqp1_0].\n",
            "rabbitmq-env.conf": "",
        }
        for fname, text in files.items():
            with open(os.path.join(self.base, fname), "w") as f:
                f.write(text)
        for root, dirs, names in os.walk(self.base):
            for n in [root] + [os.path.join(root, x) for x in dirs + names]:
                shutil.chown(n, RABBIT_USER, RABBIT_USER)

    def env(self):
        """The environment of the node and of rabbitmqctl for it (HOME holds the cookie)."""
        b = self.base
        return {
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HOME": os.path.join(b, "home"),
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "RABBITMQ_CONF_ENV_FILE": os.path.join(b, "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": os.path.join(b, "rabbitmq.conf"),
            "RABBITMQ_MNESIA_BASE": os.path.join(b, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(b, "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(b, "enabled_plugins"),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port), "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def _popen(self, args, out):
        return subprocess.Popen(args, env=self.env(), cwd=self.base, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, user=RABBIT_USER,
                                group=RABBIT_USER, extra_groups=[], start_new_session=True,
                                preexec_fn=_die_with_parent)

    # -- life cycle --------------------------------------------------------------------------

    def start(self, timeout=60):
        """Starts epmd and the node; returns once the AMQP 1.0 listener answers a protocol
        header (start_seconds says how long that took). Returns self."""
        self._prepare()
        t0 = time.monotonic()
        with open(os.path.join(self.base, "epmd.out"), "w") as out:
            self.epmd = self._popen(["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                                    out)
        self._wait(lambda: port_open(self.epmd_port), self.epmd, 10, "epmd")
        self._start_node(timeout)
        self.start_seconds = time.monotonic() - t0
        return self

    def _start_node(self, timeout):
        with open(os.path.join(self.base, "server.out"), "a") as out:
            out.write("--- %s: starting %s\n" % (time.strftime("%H:%M:%S"), self.nodename))
            out.flush()
            self.proc = self._popen([os.path.join(RABBIT_LIB, "rabbitmq-server")], out)
        self._wait(self._amqp10_ready, self.proc, timeout, "the AMQP 1.0 listener")

    def _wait(self, ready, proc, timeout, what):
        end = time.monotonic() + timeout * SLOW
        while time.monotonic() < end:
            if ready():
                return
            if proc.poll() is not None:
                raise PeerError("%s: %s exited with %d while waiting for %s:\n%s"
                                % (self.name, proc.args[0], proc.returncode, what, self.log_tail()))
            time.sleep(0.1)
        raise PeerError("%s: %s not up within %d s:\n%s" % (self.name, what, timeout * SLOW,
                                                             self.log_tail()))

    def _amqp10_ready(self):
        """True when the listener answers an AMQP 1.0 SASL header with the same header: the
        port opens before the AMQP 1.0 plugin has started."""
        try:
            with socket.create_connection(("127.0.0.1", self.amqp_port), timeout=1) as s:
                s.sendall(AMQP10_SASL_HEADER)
                got = b""
                while len(got) < 8:
                    chunk = s.recv(8 - len(got))
                    if not chunk:
                        break
                    got += chunk
                return got == AMQP10_SASL_HEADER
        except OSError:
            return False

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _stop_node(self, timeout):
        """SIGTERM to the server script, which stops the node gracefully (it exits 0)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise PeerError("%s did not stop within %d s of SIGTERM:\n%s"
                            % (self.name, timeout, self.log_tail()))
        return self.proc.returncode

    def stop(self, timeout=60, check=True):
        """Stops the node, then its epmd; returns the node's exit status (check: non-zero
        raises). The folder stays until cleanup()."""
        try:
            rc = self._stop_node(timeout)
        finally:
            if self.epmd is not None and self.epmd.poll() is None:
                self.epmd.terminate()
                self.epmd.wait(10)
        if check and rc not in (0, None):
            raise PeerError("%s exited with %d:\n%s" % (self.name, rc, self.log_tail()))
        return rc

    def restart(self, timeout=60):
        """Stops the node if it runs and starts it again with the same data, ports and epmd."""
        if self.running():
            rc = self._stop_node(timeout)
            if rc != 0:
                raise PeerError("%s exited with %d:\n%s" % (self.name, rc, self.log_tail()))
        t0 = time.monotonic()
        self._start_node(timeout)
        self.start_seconds = time.monotonic() - t0
        return self

    def cleanup(self):
        """Stops what still runs (exit status checked) and removes the folder."""
        try:
            if self.running() or (self.epmd is not None and self.epmd.poll() is None):
                self.stop()
        finally:
            if self.base:
                shutil.rmtree(self.base, ignore_errors=True)

    # -- administration ----------------------------------------------------------------------

    def ctl(self, *args, timeout=60):
        """Runs rabbitmqctl against this node; returns its stdout, raises PeerError on failure."""
        r = subprocess.run([os.path.join(RABBIT_LIB, "rabbitmqctl"), "-n", self.nodename, *args],
                           env=self.env(), cwd=self.base, capture_output=True, text=True,
                           user=RABBIT_USER, group=RABBIT_USER, extra_groups=[],
                           timeout=timeout * SLOW)
        if r.returncode != 0:
            raise PeerError("rabbitmqctl %s exited with %d: %s%s"
                            % (args[0], r.returncode, r.stdout[-1000:], r.stderr[-1000:]))
        return r.stdout

    def declare_queues(self, *names):
        """Declares durable queues (in one rabbitmqctl call: each costs a second or two). An
        existing queue is left as it is. Reach them as /amq/queue/NAME (/queue/NAME without
        a durable target terminus refuses an existing durable queue)."""
        self.ctl("eval", ", ".join(
            "rabbit_amqqueue:declare(rabbit_misc:r(<<\"/\">>, queue, %s), true, false, [], none, "
            "<<\"intake-test\">>)" % _erlang_literal(n) for n in names) + ".")

    def declare_queue_with_dlq(self, name, dlq=None):
        """Declares durable queues `name` and `dlq` (default name + ".dlq") and a policy that
        dead-letters what `name` rejects (or lets expire) into `dlq`. Returns the dlq name."""
        dlq = dlq or name + ".dlq"
        self.declare_queues(name, dlq)
        self.ctl("set_policy", "--apply-to", "queues", "dlx-" + name, "^%s$" % re.escape(name),
                 json.dumps({"dead-letter-exchange": "", "dead-letter-routing-key": dlq}))
        return dlq

    def queue_counts(self):
        """{queue name: messages ready + unacknowledged} from rabbitmqctl list_queues."""
        out = self.ctl("list_queues", "-q", "--no-table-headers", "name", "messages")
        counts = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
        return counts

    def log_tail(self, lines=60):
        if not self.base:
            return ""
        node_log = os.path.join(self.base, "log", (self.nodename or "") + ".log")
        return "%s\n--- %s\n%s" % (tail(os.path.join(self.base, "server.out"), lines), node_log,
                                   tail(node_log, lines))

    def print_log(self, why):
        sys.stderr.write("===== %s log (%s): %s\n%s===== end of %s log\n"
                         % (self.name, why, self.base, self.log_tail(200), self.name))


# -- test case glue --------------------------------------------------------------------------

def _test_failed(test):
    """Whether the running test (or one of its subtests) has failed so far. unittest resets
    its own success flag for each part (setUp, body, tearDown), so this looks at the result,
    where a failure is recorded as soon as it happens. Unknown counts as failed."""
    result = getattr(getattr(test, "_outcome", None), "result", None)
    if result is None:
        return True
    bad = list(getattr(result, "failures", [])) + list(getattr(result, "errors", []))
    return any(getattr(t, "test_case", t) is test for t, _ in bad)


class PeersMixin:
    """For a harness.IntakeTest: start_emulator() and start_rabbitmq() start peers that
    tearDown stops (before the test's folder is removed), printing their logs when the test
    failed. A peer that does not exit cleanly (a leak under ASan) fails the test."""

    def _peer_list(self):
        if not hasattr(self, "_sb_peers"):
            self._sb_peers = []
        return self._sb_peers

    def start_emulator(self, name="sbemu", binary=None, **kw):
        emu = Emulator(self.dir, name, binary)
        self._peer_list().append(emu)
        return emu.start(**kw)

    def start_rabbitmq(self, name="rabbit", **kw):
        rmq = RabbitMQ(name)
        self._peer_list().append(rmq)
        return rmq.start(**kw)

    def stop_peers(self):
        failed = _test_failed(self)
        errors = []
        for p in reversed(self._peer_list()):
            if failed or SHOW_LOGS:
                p.print_log("test failed" if failed else "SBPEERS_LOG")
            try:
                p.cleanup()
            except (PeerError, OSError, subprocess.SubprocessError) as e:
                errors.append(str(e))
        self._sb_peers = []
        if errors:
            self.fail("\n".join(errors))

    def tearDown(self):
        try:
            self.stop_peers()
        finally:
            super().tearDown()
