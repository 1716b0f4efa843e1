#!/usr/bin/env python3
"""A sockspec helper in Python: speaks docs/agent-protocol.md, version 1.

Only the standard library: socket for the plain steps, socketserver and
asyncio for `server` (the runtime's high-level APIs with their defaults).
Requests come as JSON lines on stdin, answers go as JSON lines to stdout;
descriptor 3, when the harness opened it, is a Unix socketpair end that
carries sockets (SCM_RIGHTS) for Export and Adopt.
"""

# asyncio, socketserver and ipaddress are imported where a step needs them:
# asyncio alone costs 40 ms of start-up here, and most helpers never use it.
import errno
import json
import os
import select
import socket
import stat
import struct
import sys
import time

PROTOCOL = 1

# The OS without its release: "freebsd14" -> "freebsd", "sunos5" -> "sunos".
OS = sys.platform.rstrip("0123456789")

# Error names sockspec knows (docs/agent-protocol.schema.json); any other
# code travels as ERRNO_<n>. The harness derives the name from `raw` again.
PORTABLE = {
    "EACCES", "EADDRINUSE", "EADDRNOTAVAIL", "EAFNOSUPPORT", "EALREADY", "EBADF",
    "ECONNABORTED", "ECONNREFUSED", "ECONNRESET", "EFAULT", "EHOSTUNREACH",
    "EINPROGRESS", "EINTR", "EINVAL", "EISCONN", "EMFILE", "EMSGSIZE", "ENETDOWN",
    "ENETUNREACH", "ENOBUFS", "ENODEV", "ENOMEM", "ENOPROTOOPT", "ENOTCONN",
    "ENOTSOCK", "EOPNOTSUPP", "EPERM", "EPIPE", "EPROTONOSUPPORT", "EPROTOTYPE",
    "ESHUTDOWN", "ETIMEDOUT", "EWOULDBLOCK",
}
ALIASES = {"EAGAIN": "EWOULDBLOCK", "ENOTSUP": "EOPNOTSUPP"}


class Unsupported(Exception):
    """A request this runtime cannot express."""

    def __init__(self, what, reason):
        super().__init__(reason)
        self.what = what
        self.reason = reason


class NoOption(Exception):
    """An option this OS lacks: the outcome `unsupported`."""


def done(outcome="ok", raw=None, detail=None, extra_ports=None):
    return {"outcome": outcome, "raw": raw, "detail": detail, "extra_ports": extra_ports or []}


def err_done(e, detail=None):
    code = e.errno
    if code is None:
        return done("ERRNO_-1", None, detail or str(e))
    name = errno.errorcode.get(code, "")
    name = ALIASES.get(name, name)
    if name not in PORTABLE:
        name = "ERRNO_%d" % code
    return done(name, code, detail or e.strerror or str(e))


def secs(d):
    return d["secs"] + d["nanos"] / 1e9


def port_number(p):
    if isinstance(p, dict) and "Number" in p:
        return p["Number"]
    if p == "Zero":
        return 0
    raise ValueError("unresolved port %r" % (p,))


def fam_of(family):
    return socket.AF_INET6 if family == "V6" else socket.AF_INET


def fam_of_addr(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def sockaddr(addr, port):
    return (addr, port, 0, 0) if ":" in addr else (addr, port)


def endpoint(sa):
    """A socket address as Rust's SocketAddr writes it, mapped IPv4 unmapped."""
    host, port = sa[0], sa[1]
    if port == 0:
        return None
    host = host.split("%")[0]
    if ":" in host:
        if host.lower().startswith("::ffff:") and "." in host:
            return "%s:%d" % (host[7:], port)
        return "[%s]:%d" % (host, port)
    return "%s:%d" % (host, port)


def wait_readable(socks, timeout):
    r, _, _ = select.select(socks, [], [], max(0.0, timeout))
    return r


def unacked(sock):
    """How many bytes the kernel still holds for the peer to acknowledge, as
    the built-in agent counts them (sys::unacked): SIOCOUTQ on Linux (=
    TIOCOUTQ, write_seq - snd_una), SO_NWRITE on macOS, FIONWRITE on FreeBSD
    and NetBSD (values of their <sys/socket.h> and <sys/filio.h>, as the libc
    crate has them). None where the OS has no such count."""
    if OS in ("darwin", "ios"):
        return sock.getsockopt(socket.SOL_SOCKET, 0x1024)  # SO_NWRITE
    if OS in ("linux", "android"):
        import termios
        request = termios.TIOCOUTQ
    else:
        request = {"freebsd": 0x40046677, "netbsd": 0x40046679}.get(OS)
        if request is None:
            return None
    import fcntl
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), request, b"\0" * 4))[0]


def connection_failed(sock):
    """A reset under the socket: POLLERR, not POLLHUP (which also follows a
    shutdown of both directions; see sys::connection_failed)."""
    p = select.poll()
    p.register(sock, select.POLLOUT)
    return any(ev & select.POLLERR for _, ev in p.poll(0))


def multicast_all(v6):
    """IP_MULTICAST_ALL / IPV6_MULTICAST_ALL's level and name: Linux only
    (ip(7), ipv6(7)), as in sockspec's own agent; values of
    include/uapi/linux/in.h and in6.h, which Python's socket module lacks."""
    if OS != "linux":
        raise NoOption("IP_MULTICAST_ALL does not exist on this OS")
    return (socket.IPPROTO_IPV6, 29) if v6 else (socket.IPPROTO_IP, 49)


class Slot:
    def __init__(self, sock, proto, family, nonblocking=False, close=None):
        self.sock = sock
        self.proto = proto
        self.family = family
        self.nonblocking = nonblocking
        # For servers made by a high-level API: how that API closes them.
        self.close = close


class Agent:
    def __init__(self):
        self.socks = {}
        self.loop = None
        try:
            os.fstat(3)
            self.chan = socket.socket(fileno=3)
        except OSError:
            self.chan = None

    # -- the protocol --------------------------------------------------------

    def hello(self):
        caps = ["pass"] if self.chan is not None and hasattr(socket, "send_fds") else []
        caps.append("clear")
        return {"Hello": {
            "protocol": PROTOCOL,
            "pid": os.getpid(),
            "identity": None,
            "implementation": {"runtime": "python", "version": "%d.%d.%d" % sys.version_info[:3]},
            "capabilities": caps,
        }}

    def addrs(self):
        out = []
        for name, s in sorted(self.socks.items()):
            try:
                local = endpoint(s.sock.getsockname())
            except OSError:
                local = None
            try:
                peer = endpoint(s.sock.getpeername())
            except OSError:
                peer = None
            out.append([name, {"local": local, "peer": peer}])
        return out

    def handle(self, msg):
        if msg == "Exit":
            os._exit(0)
        if msg != "Clear" and (not isinstance(msg, dict) or len(msg) != 1):
            return {"Failed": "bad request: %r" % (msg,)}
        kind, body = ("Clear", None) if msg == "Clear" else next(iter(msg.items()))
        try:
            if kind == "Clear":
                return self.clear()
            if kind == "Exec":
                deadline = time.monotonic() + body["left_ms"] / 1000.0
                d = self.exec(body["action"], deadline)
                return {"Done": {"done": d, "addrs": self.addrs()}}
            if kind == "Export":
                return self.export(body["sock"])
            if kind == "Adopt":
                return self.adopt(body)
            return {"Failed": "unknown request %s" % kind}
        except Unsupported as u:
            return {"Unsupported": {"what": u.what, "reason": u.reason}}
        except Exception as e:  # a helper bug, not an outcome
            return {"Failed": "%s: %s" % (type(e).__name__, e)}

    def clear(self):
        """Closes every socket, as the `close` step would, and the event loop
        (whose self-pipe is a socket pair); the harness keeps the helper for
        another test only when the OS lists no socket left."""
        for s in list(self.socks.values()):
            try:
                (s.close or s.sock.close)()
            except OSError:
                pass  # the count below tells
        self.socks.clear()
        if self.loop is not None:
            self.loop.close()
            self.loop = None
        return {"Cleared": {"sockets": self.open_sockets()}}

    def open_sockets(self):
        """Sockets this process has open besides the descriptor channel and
        stdin, stdout and stderr (which may be a log collector's socket), as
        the OS lists them: /proc/self/fd on Linux, /dev/fd on macOS, else
        the first 1024 descriptors (the OS gives the lowest free one). None
        on Windows, where sockets are not descriptors."""
        if os.name != "posix":
            return None
        try:
            fds = [int(f) for f in os.listdir("/proc/self/fd" if sys.platform == "linux" else "/dev/fd")]
            if sys.platform not in ("linux", "darwin"):
                fds = range(1024)  # /dev/fd lists 0-2 only without fdescfs (FreeBSD)
        except OSError:
            fds = range(1024)
        chan = self.chan.fileno() if self.chan is not None else -1
        n = 0
        for fd in fds:
            try:
                n += fd > 2 and fd != chan and stat.S_ISSOCK(os.fstat(fd).st_mode)
            except OSError:
                pass
        return n

    def export(self, name):
        if "pass" not in self.hello()["Hello"]["capabilities"]:
            raise Unsupported("a socket hand-off", "no descriptor channel")
        s = self.socks.pop(name, None)
        if s is None:
            return {"Failed": "no socket `%s` here" % name}
        socket.send_fds(self.chan, [b"\0"], [s.sock.fileno()])
        s.sock.close()
        return {"Exported": {"blob": None, "nonblocking": s.nonblocking}}

    def adopt(self, body):
        if "pass" not in self.hello()["Hello"]["capabilities"]:
            raise Unsupported("a socket hand-off", "no descriptor channel")
        _, fds, _, _ = socket.recv_fds(self.chan, 1, 1)
        if not fds:
            return {"Failed": "no descriptor arrived on the channel"}
        sock = socket.socket(fileno=fds[0])
        self.socks[body["sock"]] = Slot(sock, body["proto"], body["family"], body["nonblocking"])
        return "Adopted"

    # -- steps ---------------------------------------------------------------

    def slot(self, name):
        s = self.socks.get(name)
        if s is None:
            raise LookupError(name)
        return s

    def exec(self, action, deadline):
        kind, a = next(iter(action.items()))
        fn = getattr(self, "step_" + kind.lower(), None)
        if fn is None:
            raise Unsupported("step `%s`" % kind, "the Python helper does not implement it")
        left = lambda: max(0.0, deadline - time.monotonic())
        try:
            return fn(a, left)
        except LookupError as e:
            return done("not_run", detail="socket `%s` is not open here" % e.args[0])
        except NoOption as e:
            return done("unsupported", detail=str(e))
        except OSError as e:
            return err_done(e)

    def step_socket(self, a, left):
        ty = socket.SOCK_STREAM if a["proto"] == "Tcp" else socket.SOCK_DGRAM
        sock = socket.socket(fam_of(a["family"]), ty)
        s = Slot(sock, a["proto"], a["family"])
        for o in a["opts"]:
            try:
                self.set_opt(s, o, {"Bool": True})
            except OSError as e:
                sock.close()
                return err_done(e, "setting %s: %s" % (o, e))
            except NoOption as e:
                sock.close()
                return done("unsupported", detail=str(e))
        self.socks[a["name"]] = s
        return done()

    def step_setopt(self, a, left):
        self.set_opt(self.slot(a["sock"]), a["opt"], a["value"])
        return done()

    def set_opt(self, s, opt, value):
        sock, v6 = s.sock, s.family == "V6"
        b = value.get("Bool") if isinstance(value, dict) else None
        if opt == "ReuseAddr":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(b))
        elif opt == "ReusePort":
            if not hasattr(socket, "SO_REUSEPORT"):
                raise NoOption("SO_REUSEPORT does not exist on this OS")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(b))
        elif opt in ("ReusePortLb", "ExclusiveAddrUse", "ExclBind"):
            const = {"ReusePortLb": "SO_REUSEPORT_LB", "ExclusiveAddrUse": "SO_EXCLUSIVEADDRUSE",
                     "ExclBind": "SO_EXCLBIND"}[opt]
            if not hasattr(socket, const):
                raise NoOption("%s does not exist on this OS" % const)
            sock.setsockopt(socket.SOL_SOCKET, getattr(socket, const), int(b))
        elif opt == "Linger":
            n = value["Linger"]
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack("ii", 0 if n is None else 1, n or 0))
        elif opt == "V6Only":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(b))
        elif opt == "NonBlocking":
            sock.setblocking(not b)
            s.nonblocking = bool(b)
        elif opt == "MulticastLoop":
            if v6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, int(b))
            else:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, int(b))
        elif opt in ("Join", "Leave"):
            g = value["Group"]
            group, iface = g["group"], g["iface"]
            if ":" in group:
                idx = socket.if_nametoindex(iface)
                mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", idx)
                name = socket.IPV6_JOIN_GROUP if opt == "Join" else socket.IPV6_LEAVE_GROUP
                sock.setsockopt(socket.IPPROTO_IPV6, name, mreq)
            else:
                mreq = socket.inet_aton(group) + socket.inet_aton(iface)
                name = socket.IP_ADD_MEMBERSHIP if opt == "Join" else socket.IP_DROP_MEMBERSHIP
                sock.setsockopt(socket.IPPROTO_IP, name, mreq)
        elif opt == "MulticastAll":
            sock.setsockopt(*multicast_all(v6), int(b))
        elif opt == "Broadcast":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, int(b))
        elif opt == "BindToDevice":
            # Linux's, by name (socket(7)); Python has the constant there only.
            if not hasattr(socket, "SO_BINDTODEVICE"):
                raise NoOption("SO_BINDTODEVICE does not exist on this OS")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, value["Iface"].encode())
        elif opt == "BoundIf":
            # By interface index: IP_BOUND_IF / IPV6_BOUND_IF of macOS's
            # netinet/in.h and netinet6/in6.h, and of illumos (ip(4P)), as
            # the libc crate has them; Python's socket module has neither.
            names = {"darwin": (25, 125), "ios": (25, 125), "sunos": (0x41, 0x41)}.get(OS)
            if names is None:
                raise NoOption("IP_BOUND_IF does not exist on this OS")
            level, name = (socket.IPPROTO_IPV6, names[1]) if v6 else (socket.IPPROTO_IP, names[0])
            sock.setsockopt(level, name, socket.if_nametoindex(value["Iface"]))
        elif opt == "MulticastIf":
            i = value["Iface"]
            if ":" not in i and i.count(".") == 3:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(i))
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF,
                                struct.pack("@I", socket.if_nametoindex(i)))
        else:
            raise Unsupported("option %s" % opt, "the Python helper does not know it")

    def step_getopt(self, a, left):
        s = self.slot(a["sock"])
        opt, sock = a["opt"], s.sock
        flag = lambda level, name: done("true" if sock.getsockopt(level, name) else "false")
        if opt == "ReuseAddr":
            return flag(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        if opt == "ReusePort":
            if not hasattr(socket, "SO_REUSEPORT"):
                raise NoOption("SO_REUSEPORT does not exist on this OS")
            return flag(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        if opt in ("ReusePortLb", "ExclusiveAddrUse", "ExclBind"):
            # As set_opt: the OS's constant where Python's socket module has it.
            const = {"ReusePortLb": "SO_REUSEPORT_LB", "ExclusiveAddrUse": "SO_EXCLUSIVEADDRUSE",
                     "ExclBind": "SO_EXCLBIND"}[opt]
            if not hasattr(socket, const):
                raise NoOption("%s does not exist on this OS" % const)
            return flag(socket.SOL_SOCKET, getattr(socket, const))
        if opt == "V6Only":
            return flag(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
        if opt == "Linger":
            on, n = struct.unpack("ii", sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8))
            return done(str(n) if on else "false")
        if opt == "NonBlocking":
            return done("true" if s.nonblocking else "false")
        if opt == "MulticastLoop":
            if s.family == "V6":
                return flag(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP)
            return flag(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP)
        if opt == "MulticastAll":
            return flag(*multicast_all(s.family == "V6"))
        if opt == "Broadcast":
            return flag(socket.SOL_SOCKET, socket.SO_BROADCAST)
        raise Unsupported("reading option %s" % opt, "it cannot be read back")

    def step_bind(self, a, left):
        self.slot(a["sock"]).sock.bind(sockaddr(a["addr"], port_number(a["port"])))
        return done()

    def step_getsockname(self, a, left):
        # True when the socket's local address is the one named (ports aside).
        import ipaddress
        local = self.slot(a["sock"]).sock.getsockname()[0]
        return done("true" if ipaddress.ip_address(local) == ipaddress.ip_address(a["addr"]) else "false")

    def step_listen(self, a, left):
        self.slot(a["sock"]).sock.listen(a["backlog"])
        return done()

    def step_connect(self, a, left):
        s = self.slot(a["sock"])
        target = sockaddr(a["addr"], port_number(a["port"]))
        if s.nonblocking:
            s.sock.connect(target)
            return done()
        # Like the built-in agent: non-blocking, then wait until the deadline.
        s.sock.setblocking(False)
        try:
            code = s.sock.connect_ex(target)
            if code in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
                _, w, _ = select.select([], [s.sock], [], left())
                if not w:
                    return done("timeout", detail="no answer to the connection request")
                code = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                return err_done(OSError(code, os.strerror(code)))
            return done()
        finally:
            s.sock.setblocking(True)

    def step_accept(self, a, left):
        s = self.slot(a["sock"])
        if not s.nonblocking and not wait_readable([s.sock], left()):
            return done("timeout", detail="no connection to accept")
        new, _ = s.sock.accept()
        new.setblocking(True)
        self.socks[a["name"]] = Slot(new, s.proto, s.family)
        return done()

    def step_send(self, a, left):
        sock = self.slot(a["sock"]).sock
        data = b"s" * a["bytes"]
        if a["to"] is not None:
            addr, port = a["to"]
            n = sock.sendto(data, sockaddr(addr, port_number(port)))
        else:
            n = sock.send(data)
        return done(detail=None if n == len(data) else "sent %d of %d bytes" % (n, len(data)))

    def step_recv(self, a, left):
        ready = self.step_readable(a, left)
        if ready["outcome"] != "ok":
            return ready
        s = self.slot(a["sock"])
        data = s.sock.recv(65536)
        if not data and s.proto == "Tcp":
            return done("eof")
        return done("data", detail="%d bytes" % len(data))

    def step_readable(self, a, left):
        s = self.slot(a["sock"])
        if not wait_readable([s.sock], min(secs(a["wait"]), left())):
            return done("timeout")
        return done()

    def step_acked(self, a, left):
        if os.name != "posix":
            # Windows counts through WSAIoctl(SIO_TCP_INFO), which Python's
            # socket.ioctl does not offer.
            raise Unsupported("step `Acked`", "Python's socket.ioctl has no SIO_TCP_INFO")
        sock = self.slot(a["sock"]).sock
        wait = min(secs(a["wait"]), left())
        started, looks = time.monotonic(), 0
        while True:
            looks += 1
            reset = "the connection failed (reset) before all was acknowledged"
            try:
                n = unacked(sock)
            except OSError as e:
                # A reset may leave the count refused (as sockspec's own agent).
                return done(detail=reset) if connection_failed(sock) else err_done(e)
            if n is None:
                if connection_failed(sock):
                    return done(detail=reset)
                return done("unsupported",
                            detail="this OS does not say how many bytes a TCP socket has unacknowledged")
            if n <= 0:
                return done(detail="acknowledged after %d look(s), %.1f ms"
                            % (looks, (time.monotonic() - started) * 1000))
            if connection_failed(sock):
                return done(detail=reset)
            if time.monotonic() - started >= wait:
                return done("timeout", detail="%d bytes still unacknowledged" % n)
            time.sleep(0.001)

    def step_shutdown(self, a, left):
        how = {"Read": socket.SHUT_RD, "Write": socket.SHUT_WR, "Both": socket.SHUT_RDWR}[a["how"]]
        self.slot(a["sock"]).sock.shutdown(how)
        return done()

    def step_close(self, a, left):
        s = self.socks.pop(a["sock"], None)
        if s is None:
            return done("not_run", detail="socket `%s` is not open here" % a["sock"])
        started = time.monotonic()
        try:
            if s.close is not None:
                s.close()
            else:
                s.sock.close()
            d = done()
        except OSError as e:
            d = err_done(e)
        took = time.monotonic() - started
        if a["bands"]:
            band = next((b["name"] for b in a["bands"] if secs(b["min"]) <= took <= secs(b["max"])),
                        "out_of_band")
            d["outcome"] = "%s@%s" % (d["outcome"], band)
            d["detail"] = "took %.1f ms" % (took * 1000)
        return d

    def step_fill(self, a, left):
        s = self.slot(a["sock"])
        s.sock.setblocking(False)
        queued, chunk = 0, b"f" * 65536
        try:
            while queued <= 256 << 20:
                try:
                    queued += s.sock.send(chunk)
                except BlockingIOError:
                    return done(detail="%d bytes queued" % queued)
            return done("timeout", detail="the send buffer never filled (256 MB queued)")
        finally:
            if not s.nonblocking:
                s.sock.setblocking(True)

    def step_drain(self, a, left):
        sock = self.slot(a["sock"]).sock
        got = 0
        while True:
            if not wait_readable([sock], secs(a["wait"])):
                return done("timeout", detail="read %d bytes, then nothing" % got)
            try:
                data = sock.recv(65536)
            except OSError as e:
                return err_done(e, "read %d bytes, then %s" % (got, e))
            if not data:
                return done("eof", detail="read %d bytes, then end of stream" % got)
            got += len(data)

    def step_fanout(self, a, left):
        sender = self.slot(a["sender"]).sock
        rx = [(r, self.slot(r).sock) for r in a["receivers"]]
        tag = "sockspec-fanout-%d-" % os.getpid()
        count, quiet = a["count"], secs(a["wait"])
        target = sockaddr(a["addr"], port_number(a["port"]))
        for seq in range(count):
            try:
                sender.sendto(("%s%d" % (tag, seq)).encode(), target)
            except OSError as e:
                return err_done(e, "sending datagram %d" % seq)
        got = [set() for _ in rx]
        until = time.monotonic() + quiet
        while sum(len(g) for g in got) < len(rx) * count:
            ready = wait_readable([s for _, s in rx], until - time.monotonic())
            if not ready:
                break
            for i, (_, s) in enumerate(rx):
                if s in ready:
                    text = s.recvfrom(512)[0].decode(errors="replace")
                    if text.startswith(tag) and text[len(tag):].isdigit():
                        seq = int(text[len(tag):])
                        if seq < count and seq not in got[i]:
                            got[i].add(seq)
                            until = time.monotonic() + quiet
        detail = "%d datagrams; received %s" % (
            count, " ".join("%s:%d" % (n, len(g)) for (n, _), g in zip(rx, got)))
        if a["observe"] == "Who":
            who = sorted(n for (n, _), g in zip(rx, got) if g)
            return done("who=" + ("+".join(who) if who else "none"), detail=detail)
        reach = [sum(1 for g in got if seq in g) for seq in range(count)]
        n = len(rx)
        if all(r == 0 for r in reach):
            each = "none"
        elif n > 1 and all(r == n for r in reach):
            each = "all"
        elif all(r == 1 for r in reach):
            each = "one"
        else:
            each = "mixed"
        return done("each=" + each, detail=detail)

    def step_spread(self, a, left):
        ls = [(n, self.slot(n).sock) for n in a["listeners"]]
        target = sockaddr(a["addr"], port_number(a["port"]))
        per, keep, ports = [0] * len(ls), [], []
        end = time.monotonic() + left()

        def accept_ready(wait):
            ready = wait_readable([s for _, s in ls], wait)
            for i, (_, s) in enumerate(ls):
                if s in ready:
                    try:
                        c, _ = s.accept()
                    except OSError:
                        continue
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    keep.append(c)
                    per[i] += 1
            return bool(ready)

        for _ in range(a["count"]):
            c = socket.socket(fam_of_addr(a["addr"]), socket.SOCK_STREAM)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.settimeout(max(0.001, end - time.monotonic()))
            try:
                c.connect(target)
            except OSError as e:
                return err_done(e) if e.errno is not None else done("timeout")
            ports.append(c.getsockname()[1])
            keep.append(c)
            accept_ready(0)
        while sum(per) < a["count"]:
            if not accept_ready(min(0.5, max(0.0, end - time.monotonic()))):
                break
        hit = sum(1 for c in per if c)
        detail = "%d connections accepted as %s across %d listeners" % (
            a["count"], "/".join(map(str, per)), len(ls))
        if a["observe"] == "Who":
            who = sorted(n for (n, _), c in zip(ls, per) if c)
            d = done("who=" + ("+".join(who) if who else "none"), detail=detail)
        else:
            d = done(str(hit), detail=detail)
        d["extra_ports"] = ports
        for c in keep:
            c.close()
        return d

    def step_server(self, a, left):
        """A server made by a high-level API with its defaults."""
        addr, port, api = a["addr"], port_number(a["port"]), a["api"]
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        fam = "V6" if family == socket.AF_INET6 else "V4"
        if api == "default":
            import socketserver
            base = socketserver.TCPServer if a["proto"] == "Tcp" else socketserver.UDPServer
            # Only the family changes (the class attribute says AF_INET).
            cls = base if family == socket.AF_INET else type("V6", (base,), {"address_family": family})
            srv = cls((addr, port), socketserver.BaseRequestHandler)
            slot = Slot(srv.socket, a["proto"], fam, close=srv.server_close)
            detail = "socketserver.%s" % base.__name__
        elif api == "asyncio":
            import asyncio
            loop = self.event_loop()
            if a["proto"] == "Tcp":
                srv = loop.run_until_complete(asyncio.start_server(lambda r, w: None, addr, port))
                fd = srv.sockets[0].fileno()

                def close(srv=srv):
                    srv.close()
                    loop.run_until_complete(srv.wait_closed())
                detail = "asyncio.start_server"
            else:
                transport, _ = loop.run_until_complete(loop.create_datagram_endpoint(
                    asyncio.DatagramProtocol, local_addr=(addr, port)))
                fd = transport.get_extra_info("socket").fileno()

                def close(transport=transport):
                    transport.close()
                    loop.run_until_complete(asyncio.sleep(0))
                detail = "loop.create_datagram_endpoint"
            # The event loop does not run between steps: steps use a second
            # descriptor of the same socket (left non-blocking, as asyncio
            # keeps it; steps wait for readiness first), and closing the
            # step's socket closes both.
            sock = socket.socket(fileno=os.dup(fd))

            def close_both(sock=sock, close=close):
                sock.close()
                close()
            slot = Slot(sock, a["proto"], fam, close=close_both)
        else:
            raise Unsupported("server api `%s`" % api, "Python has default and asyncio")
        self.socks[a["name"]] = slot
        return done(detail=detail)

    def event_loop(self):
        if self.loop is None:
            import asyncio
            self.loop = asyncio.new_event_loop()
        return self.loop


def main():
    agent = Agent()
    out = sys.stdout

    def reply(msg):
        out.write(json.dumps(msg, separators=(",", ":")) + "\n")
        out.flush()

    reply(agent.hello())
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError as e:
            reply({"Failed": "bad request: %s" % e})
            continue
        reply(agent.handle(msg))


if __name__ == "__main__":
    main()
