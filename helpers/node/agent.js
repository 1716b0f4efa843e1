#!/usr/bin/env node
// A sockspec helper in Node.js: speaks docs/agent-protocol.md, version 1.
//
// Only the standard library: net for TCP, dgram for UDP. Node creates a TCP
// socket only where its API does (net.connect, net.Server.listen) and sets
// no option it has no API for, so the steps it cannot express (a TCP bind
// or listen of its own, SO_LINGER, shutdown(SHUT_RD), socket hand-off, ...)
// are answered `Unsupported`, never emulated.
'use strict';

const fs = require('fs');
const net = require('net');
const dgram = require('dgram');
const readline = require('readline');

const PROTOCOL = 1;
const PORTABLE = new Set([
  'EACCES', 'EADDRINUSE', 'EADDRNOTAVAIL', 'EAFNOSUPPORT', 'EALREADY', 'EBADF',
  'ECONNABORTED', 'ECONNREFUSED', 'ECONNRESET', 'EFAULT', 'EHOSTUNREACH',
  'EINPROGRESS', 'EINTR', 'EINVAL', 'EISCONN', 'EMFILE', 'EMSGSIZE', 'ENETDOWN',
  'ENETUNREACH', 'ENOBUFS', 'ENODEV', 'ENOMEM', 'ENOPROTOOPT', 'ENOTCONN',
  'ENOTSOCK', 'EOPNOTSUPP', 'EPERM', 'EPIPE', 'EPROTONOSUPPORT', 'EPROTOTYPE',
  'ESHUTDOWN', 'ETIMEDOUT', 'EWOULDBLOCK',
]);
const ALIASES = { EAGAIN: 'EWOULDBLOCK', ENOTSUP: 'EOPNOTSUPP' };
// Where libuv's UV_UDP_REUSEADDR is SO_REUSEPORT (see pendingOpt).
// Options dgram sets on a bound socket only.
// The sockets this process has open besides descriptor 3 (the harness's
// descriptor channel) and 0-2 (stderr may be a log collector's socket), as
// the OS lists them: /proc/self/fd on Linux,
// /dev/fd on macOS, else the first 1024 descriptors (libuv takes the lowest
// free one). null on Windows, where sockets are not descriptors.
function openSockets() {
  if (process.platform === 'win32') return null;
  let fds;
  try {
    fds = fs.readdirSync(process.platform === 'linux' ? '/proc/self/fd' : '/dev/fd').map(Number);
    if (process.platform !== 'linux' && process.platform !== 'darwin') throw new Error('incomplete');
  } catch (_) {
    fds = [...Array(1024).keys()];
  }
  let n = 0;
  for (const fd of fds) {
    try {
      if (fd > 3 && fs.fstatSync(fd).isSocket()) n += 1;
    } catch (_) {
      // not open
    }
  }
  return n;
}
// The options dgram sets through methods of a bound socket (setBroadcast
// and the multicast ones): asked for before the bind, they wait for it.
const MCAST = ['MulticastLoop', 'Join', 'Leave', 'MulticastIf', 'Broadcast'];
const REUSE_IS_REUSEPORT = ['darwin', 'freebsd', 'openbsd', 'netbsd'].includes(process.platform);

class Unsupported extends Error {
  constructor(what, reason) {
    super(reason);
    this.what = what;
    this.reason = reason;
  }
}

const done = (outcome = 'ok', raw = null, detail = null) =>
  ({ outcome, raw, detail, extra_ports: [] });

function errDone(e, detail) {
  // libuv's codes are negated errno values.
  const raw = typeof e.errno === 'number' ? Math.abs(e.errno) : null;
  let name = ALIASES[e.code] || e.code;
  if (!PORTABLE.has(name)) name = raw === null ? 'ERRNO_-1' : `ERRNO_${raw}`;
  return done(name, raw, detail || e.message);
}

const secs = (d) => d.secs + d.nanos / 1e9;
const portNumber = (p) => {
  if (p && typeof p === 'object' && 'Number' in p) return p.Number;
  if (p === 'Zero') return 0;
  throw new Error(`unresolved port ${JSON.stringify(p)}`);
};

function endpoint(host, port) {
  if (!host || !port) return null;
  host = host.split('%')[0];
  if (host.includes(':')) {
    const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
    return m ? `${m[1]}:${port}` : `[${host}]:${port}`;
  }
  return `${host}:${port}`;
}

// A queue of events (connections, data, datagrams) a step can wait for.
class Queue {
  constructor() {
    this.items = [];
    this.waiters = [];
    this.watchers = new Set();
  }
  push(x) {
    const w = this.waiters.shift();
    if (w) w(x);
    else {
      this.items.push(x);
      for (const f of this.watchers) f();
    }
  }
  // Everything queued now.
  take() {
    const out = this.items;
    this.items = [];
    return out;
  }
  next(ms) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    return new Promise((resolve) => {
      const w = (x) => {
        clearTimeout(t);
        resolve(x);
      };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((y) => y !== w);
        resolve(null);
      }, Math.max(0, ms));
      this.waiters.push(w);
    });
  }
}

// True once any of `queues` holds an item; false after `ms` without one.
function waitAny(queues, ms) {
  if (queues.some((q) => q.items.length)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const finish = (v) => {
      clearTimeout(t);
      for (const q of queues) q.watchers.delete(wake);
      resolve(v);
    };
    const wake = () => finish(true);
    const t = setTimeout(() => finish(false), Math.max(0, ms));
    for (const q of queues) q.watchers.add(wake);
  });
}

// Whether two address literals name the same address (as the kernel's
// getsockname compares: an IPv4-mapped IPv6 address is not the IPv4 one).
function sameIp(a, b) {
  const fam = net.isIP(a);
  if (!fam || fam !== net.isIP(b)) return false;
  if (fam === 4) return a === b;
  // The URL parser writes an IPv6 address in one canonical form.
  const canon = (x) => new URL(`http://[${x}]/`).hostname;
  return canon(a) === canon(b);
}

// An interface as dgram's multicast methods take it: an address, or on
// IPv6 an interface name as the scope of `::` (libuv reads `::%eth1` with
// uv_ip6_addr, whose scope id becomes the interface index).
function mcastIface(family, iface) {
  if (net.isIP(iface)) return iface;
  if (family === 'V6') return `::%${iface}`;
  throw new Unsupported(`an IPv4 multicast interface by name (${iface})`, 'dgram takes an IPv4 interface by address only');
}

// Closes a stream with a reset (SO_LINGER 0), so it leaves no TIME_WAIT.
function reset(c) {
  if (typeof c.resetAndDestroy === 'function') c.resetAndDestroy();
  else c.destroy();
}

// A TCP stream read in paused mode: Node reads from the kernel only until
// its buffer holds highWaterMark bytes, so an unread stream pushes back on
// its peer as a kernel socket does (a flowing stream would read on its own,
// and a peer's `fill` would never fill). `read` reads once, like recv.
class Reader {
  constructor(s) {
    this.s = s;
    this.ended = false;
    this.error = null;
    this.wake = null;
    const poke = () => this.wake && this.wake();
    s.on('readable', poke);
    s.on('end', () => {
      this.ended = true;
      poke();
    });
    s.on('error', (e) => {
      this.error = e;
      poke();
    });
  }

  // {kind: 'data', n}, {kind: 'eof'}, {kind: 'error', e}, or null after `ms`.
  async read(ms) {
    const until = Date.now() + Math.max(0, ms);
    for (;;) {
      const b = this.s.read();
      if (b) return { kind: 'data', n: b.length };
      if (this.error) return { kind: 'error', e: this.error };
      if (this.ended) return { kind: 'eof' };
      const left = until - Date.now();
      if (left <= 0) return null;
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
  }
}

class Agent {
  constructor() {
    this.socks = new Map();
  }

  hello() {
    return {
      Hello: {
        protocol: PROTOCOL,
        pid: process.pid,
        identity: null,
        implementation: { runtime: 'node', version: process.versions.node },
        capabilities: ['clear'],
      },
    };
  }

  addrs() {
    const out = [];
    for (const name of [...this.socks.keys()].sort()) {
      const s = this.socks.get(name);
      let local = null;
      let peer = null;
      try {
        if (s.kind === 'stream' && s.obj) {
          local = endpoint(s.obj.localAddress, s.obj.localPort);
          peer = endpoint(s.obj.remoteAddress, s.obj.remotePort);
        } else if (s.kind === 'server' && s.obj.address()) {
          const a = s.obj.address();
          local = endpoint(a.address, a.port);
        } else if (s.kind === 'dgram' && s.obj && s.bound) {
          const a = s.obj.address();
          local = endpoint(a.address, a.port);
          if (s.connected) {
            const r = s.obj.remoteAddress();
            peer = endpoint(r.address, r.port);
          }
        }
      } catch (_) {
        // not bound yet
      }
      out.push([name, { local, peer }]);
    }
    return out;
  }

  async handle(msg) {
    if (msg === 'Exit') process.exit(0);
    if (msg !== 'Clear' && (!msg || typeof msg !== 'object')) {
      return { Failed: `bad request: ${JSON.stringify(msg)}` };
    }
    const [kind, body] = msg === 'Clear' ? ['Clear', null] : Object.entries(msg)[0];
    try {
      if (kind === 'Clear') return await this.clear();
      if (kind === 'Exec') {
        const deadline = Date.now() + body.left_ms;
        const d = await this.exec(body.action, deadline);
        return { Done: { done: d, addrs: this.addrs() } };
      }
      if (kind === 'Export' || kind === 'Adopt') {
        throw new Unsupported('a socket hand-off', 'Node cannot send or receive a descriptor over a Unix socket');
      }
      return { Failed: `unknown request ${kind}` };
    } catch (e) {
      if (e instanceof Unsupported) return { Unsupported: { what: e.what, reason: e.reason } };
      return { Failed: `${e.name}: ${e.message}` };
    }
  }

  // Closes every socket it holds, and the connections its servers took in
  // that no step accepted, then counts the sockets the OS says it still has
  // open: the harness keeps a helper for another test only when none is
  // left. (Node's own lists are no guide: getActiveResourcesInfo() goes on
  // naming handles whose descriptors are closed.)
  async clear() {
    const ended = [];
    const end = (o, how) => ended.push(new Promise((resolve) => {
      try {
        how(o, resolve);
      } catch (_) {
        resolve(); // closed already; the count below tells
      }
    }));
    const destroy = (c, resolve) => {
      if (c.closed) resolve();
      else {
        c.once('close', resolve);
        c.destroy();
      }
    };
    for (const s of this.socks.values()) {
      if (!s.obj) continue;
      if (s.kind === 'server') {
        for (const c of s.conns.take()) end(c, destroy);
        end(s.obj, (o, resolve) => o.close(() => resolve()));
      } else if (s.kind === 'dgram') end(s.obj, (o, resolve) => o.close(resolve));
      else end(s.obj, destroy);
    }
    this.socks.clear();
    await Promise.all(ended);
    await new Promise(setImmediate);
    return { Cleared: { sockets: openSockets() } };
  }

  slot(name) {
    const s = this.socks.get(name);
    if (!s) throw Object.assign(new Error(name), { notHere: true });
    return s;
  }

  async exec(action, deadline) {
    const [kind, a] = Object.entries(action)[0];
    const fn = this[`step_${kind}`];
    if (!fn) throw new Unsupported(`step \`${kind}\``, 'the Node helper does not implement it');
    const left = () => Math.max(0, deadline - Date.now());
    try {
      return await fn.call(this, a, left);
    } catch (e) {
      if (e.notHere) return done('not_run', null, `socket \`${e.message}\` is not open here`);
      if (e instanceof Unsupported || !e.code) throw e;
      return errDone(e);
    }
  }

  // Node reads a socket into its own buffer as data arrives, so it cannot
  // wait on what the kernel holds unread, and it has no ioctl or
  // getsockopt to count unacknowledged bytes.
  step_Readable() {
    throw new Unsupported('step `Readable`', 'Node reads a socket as data arrives: it cannot wait without reading');
  }

  step_Acked() {
    throw new Unsupported('step `Acked`', 'Node cannot count a socket\'s unacknowledged bytes (no ioctl, no getsockopt)');
  }

  step_Socket(a) {
    // Node makes the socket where its API does: net.connect / dgram bind.
    const opts = { reuseAddr: false, ipv6Only: false };
    for (const o of a.opts) this.pendingOpt(a.proto, o, { Bool: true }, opts);
    this.socks.set(a.name, {
      kind: a.proto === 'Tcp' ? 'stream' : 'dgram', proto: a.proto, family: a.family, obj: null, opts,
    });
    return done('ok', null, 'deferred: Node creates the socket in the step that needs it');
  }

  pendingOpt(proto, opt, value, opts) {
    const on = value && value.Bool;
    // dgram's reuseAddr is libuv's UV_UDP_REUSEADDR, which sets SO_REUSEPORT
    // instead of SO_REUSEADDR on macOS and the BSDs (uv__sock_reuseaddr,
    // https://github.com/libuv/libuv/blob/6179e7af87413396d5853a1c3722c8b5749336c8/src/unix/udp.c#L394-L430):
    // it expresses the option the OS really gets, and only that one.
    if (proto === 'Udp' && (opt === 'ReuseAddr' || opt === 'ReusePort')) {
      const real = REUSE_IS_REUSEPORT ? 'ReusePort' : 'ReuseAddr';
      if (opt !== real) {
        throw new Unsupported(
          `option ${opt} on a Udp socket`,
          `Node's only reuse option (dgram reuseAddr) sets ${real === 'ReuseAddr' ? 'SO_REUSEADDR' : 'SO_REUSEPORT'} on ${process.platform}`,
        );
      }
      opts.reuseAddr = !!on;
    } else if (proto === 'Udp' && opt === 'V6Only') opts.ipv6Only = !!on;
    else if (proto === 'Udp' && MCAST.includes(opt)) {
      // dgram's multicast methods need a bound socket: a Node program calls
      // them once bound, before it sends; so does the helper.
      opts.later = (opts.later || []).concat([[opt, value]]);
    } else throw new Unsupported(`option ${opt} on a ${proto} socket`, 'Node has no API that sets it');
  }

  step_SetOpt(a) {
    const s = this.slot(a.sock);
    const v = a.value;
    if (s.kind === 'dgram' && s.obj && s.bound) {
      if (!MCAST.includes(a.opt)) {
        throw new Unsupported(`option ${a.opt} after bind`, 'Node sets it only when it creates the socket');
      }
      this.mcast(s, a.opt, v);
      return done();
    }
    if (s.obj) throw new Unsupported(`option ${a.opt} now`, 'Node has no API for it on this socket');
    this.pendingOpt(s.proto, a.opt, v, s.opts);
    return done();
  }

  // One of dgram's methods for MCAST's options, on a bound socket.
  mcast(s, opt, v) {
    if (opt === 'MulticastLoop') s.obj.setMulticastLoopback(!!v.Bool);
    else if (opt === 'Broadcast') s.obj.setBroadcast(!!v.Bool);
    else if (opt === 'Join') s.obj.addMembership(v.Group.group, mcastIface(s.family, v.Group.iface));
    else if (opt === 'Leave') s.obj.dropMembership(v.Group.group, mcastIface(s.family, v.Group.iface));
    else s.obj.setMulticastInterface(mcastIface(s.family, v.Iface));
  }

  // The multicast options asked for before the bind, now that it is bound.
  applyLater(s) {
    const later = (s.opts && s.opts.later) || [];
    s.opts && (s.opts.later = []);
    for (const [opt, v] of later) {
      try {
        this.mcast(s, opt, v);
      } catch (e) {
        if (e instanceof Unsupported || !e.code) throw e;
        return errDone(e, `${opt}, set once bound: ${e.message}`);
      }
    }
    return done();
  }

  step_Bind(a) {
    const s = this.slot(a.sock);
    if (s.kind !== 'dgram') {
      throw new Unsupported('a TCP bind', 'Node binds a TCP socket only inside net.Server.listen or net.connect');
    }
    if (s.obj) throw new Unsupported('a second bind', 'Node binds a dgram socket once, when it makes it');
    this.makeDgram(s);
    return this.bindDgram(s, a.addr, portNumber(a.port));
  }

  // dgram.createSocket with the options the socket step asked for; the
  // datagrams it receives are queued for recv and fanout.
  makeDgram(s) {
    const type = s.family === 'V6' ? 'udp6' : 'udp4';
    // A `server` passes no option at all: dgram's defaults.
    s.obj = s.opts
      ? dgram.createSocket({ type, reuseAddr: s.opts.reuseAddr, ipv6Only: s.opts.ipv6Only })
      : dgram.createSocket(type);
    s.messages = new Queue();
    s.obj.on('message', (m, r) => s.messages.push({ n: m.length, text: m.toString(), from: r }));
  }

  // A dgram socket used before any bind: Node binds it to a port of the
  // OS's choice in that first connect or send.
  // With multicast options waiting, it binds explicitly (to the wildcard
  // and port 0, as Node's own implicit bind) and sets them first. Answers
  // a Done when that fails.
  async implicitDgram(s) {
    if (s.obj) return null;
    this.makeDgram(s);
    if (s.opts && s.opts.later && s.opts.later.length) {
      const d = await this.bindDgram(s, s.family === 'V6' ? '::' : '0.0.0.0', 0);
      return d.outcome === 'ok' ? null : d;
    }
    s.obj.on('error', () => {});
    s.bound = true;
    return null;
  }

  bindDgram(s, addr, port) {
    return new Promise((resolve) => {
      const onErr = (e) => resolve(errDone(e));
      s.obj.once('error', onErr);
      s.obj.bind({ port, address: addr }, () => {
        s.obj.removeListener('error', onErr);
        s.obj.on('error', () => {});
        s.bound = true;
        resolve(this.applyLater(s));
      });
    });
  }

  step_Server(a) {
    if (a.api !== 'default') throw new Unsupported(`server api \`${a.api}\``, 'Node has one: net / dgram');
    const port = portNumber(a.port);
    if (a.proto === 'Udp') {
      const s = { kind: 'dgram', proto: 'Udp', family: a.addr.includes(':') ? 'V6' : 'V4', obj: null };
      this.makeDgram(s);
      return this.bindDgram(s, a.addr, port).then((d) => {
        // A server that could not bind is no server: its socket goes.
        if (d.outcome === 'ok') this.socks.set(a.name, s);
        else s.obj.close();
        d.detail = d.detail || 'dgram.createSocket().bind()';
        return d;
      });
    }
    const srv = net.createServer();
    const conns = new Queue();
    srv.on('connection', (c) => {
      // A connection reset before a step takes it must not end the helper.
      c.on('error', () => {});
      conns.push(c);
    });
    return new Promise((resolve) => {
      const onErr = (e) => resolve(errDone(e));
      srv.once('error', onErr);
      srv.listen({ host: a.addr, port }, () => {
        srv.removeListener('error', onErr);
        srv.on('error', () => {});
        this.socks.set(a.name, { kind: 'server', proto: 'Tcp', obj: srv, conns });
        resolve(done('ok', null, 'net.createServer().listen()'));
      });
    });
  }

  step_Listen() {
    throw new Unsupported('a listen of its own', 'Node listens only through net.Server.listen (the `server` step)');
  }

  async step_Connect(a, left) {
    const s = this.slot(a.sock);
    const port = portNumber(a.port);
    if (s.kind === 'dgram') {
      const go = () => new Promise((resolve) => {
        s.obj.connect(port, a.addr, (e) => {
          if (e) return resolve(errDone(e));
          s.connected = true;
          resolve(done());
        });
      });
      const failed = await this.implicitDgram(s);
      return failed || go();
    }
    if (s.obj) throw new Unsupported('a second connect', 'Node connects a socket it creates');
    return new Promise((resolve) => {
      const c = net.connect({ host: a.addr, port });
      s.obj = c;
      s.events = new Reader(c);
      const t = setTimeout(() => resolve(done('timeout', null, 'no answer to the connection request')), left());
      c.once('connect', () => {
        clearTimeout(t);
        resolve(done());
      });
      c.once('error', (e) => {
        clearTimeout(t);
        s.events = null;
        resolve(errDone(e));
      });
    });
  }

  async step_Accept(a, left) {
    const s = this.slot(a.sock);
    if (s.kind !== 'server') throw new Unsupported('accept on this socket', 'Node accepts only on a net.Server');
    const c = await s.conns.next(left());
    if (!c) return done('timeout', null, 'no connection to accept');
    this.socks.set(a.name, { kind: 'stream', proto: 'Tcp', obj: c, events: new Reader(c) });
    return done();
  }

  async step_Send(a) {
    const s = this.slot(a.sock);
    const data = Buffer.alloc(a.bytes, 's');
    const failed = s.kind === 'dgram' ? await this.implicitDgram(s) : null;
    if (failed) return failed;
    return new Promise((resolve) => {
      const cb = (e) => resolve(e ? errDone(e) : done());
      if (s.kind === 'dgram') {
        if (a.to) s.obj.send(data, portNumber(a.to[1]), a.to[0], cb);
        else s.obj.send(data, cb);
      } else if (s.kind === 'stream' && s.obj) {
        s.obj.write(data, cb);
      } else {
        throw new Unsupported('a send on this socket', 'it is not connected');
      }
    });
  }

  async step_Recv(a, left) {
    const s = this.slot(a.sock);
    const wait = Math.min(secs(a.wait) * 1000, left());
    if (s.kind === 'dgram') {
      const m = await s.messages.next(wait);
      return m ? done('data', null, `${m.n} bytes`) : done('timeout');
    }
    if (s.kind !== 'stream' || !s.events) throw new Unsupported('recv on this socket', 'it is not a stream');
    const ev = await s.events.read(wait);
    if (!ev) return done('timeout');
    if (ev.kind === 'data') return done('data', null, `${ev.n} bytes`);
    if (ev.kind === 'eof') return done('eof');
    return errDone(ev.e);
  }

  async step_Drain(a, left) {
    const s = this.slot(a.sock);
    if (s.kind !== 'stream' || !s.events) throw new Unsupported('drain on this socket', 'it is not a stream');
    let got = 0;
    for (;;) {
      const ev = await s.events.read(Math.min(secs(a.wait) * 1000, left()));
      if (!ev) return done('timeout', null, `read ${got} bytes, then nothing`);
      if (ev.kind === 'eof') return done('eof', null, `read ${got} bytes, then end of stream`);
      if (ev.kind === 'error') return errDone(ev.e, `read ${got} bytes, then ${ev.e.message}`);
      got += ev.n;
    }
  }

  step_GetOpt(a) {
    this.slot(a.sock);
    // Reading back what the helper was told would not be the kernel's answer.
    throw new Unsupported(`reading option ${a.opt}`, 'Node has no getsockopt: it cannot read an option back');
  }

  step_GetSockName(a) {
    const s = this.slot(a.sock);
    let local = null;
    try {
      if (s.kind === 'stream' && s.obj) local = s.obj.localAddress;
      else if (s.kind === 'server') local = s.obj.address() && s.obj.address().address;
      else if (s.kind === 'dgram' && s.obj && s.bound) local = s.obj.address().address;
    } catch (_) {
      // not bound yet: below
    }
    if (!local) {
      throw new Unsupported('getsockname of this socket', 'Node has not made it yet, or has no address for it');
    }
    return done(sameIp(local.split('%')[0], a.addr) ? 'true' : 'false', null, local);
  }

  // Writes until the kernel takes no more at once. A write's callback comes
  // once libuv has handed all of it to the kernel (at once: on the next
  // tick); a callback that does not come means the send buffer is full, and
  // the rest of that chunk waits in Node for the peer to read.
  async step_Fill(a) {
    const s = this.slot(a.sock);
    if (s.kind !== 'stream' || !s.obj) throw new Unsupported('fill on this socket', 'Node writes only on a connected stream');
    const chunk = Buffer.alloc(64 * 1024, 'f');
    let queued = 0;
    while (queued <= 256 << 20) {
      const r = await new Promise((resolve) => {
        let t = null;
        s.obj.write(chunk, (e) => {
          clearTimeout(t);
          resolve(e ? { e } : { ok: true });
        });
        // Past the next turns of the event loop: no callback, no room.
        t = setTimeout(() => setImmediate(() => resolve(null)), 50);
      });
      if (r === null) return done('ok', null, `${queued} bytes queued, then a write waited`);
      if (r.e) return errDone(r.e, `${queued} bytes queued, then ${r.e.message}`);
      queued += chunk.length;
    }
    return done('timeout', null, 'the send buffer never filled (256 MB queued)');
  }

  async step_Fanout(a, left) {
    const s = this.slot(a.sender);
    if (s.kind !== 'dgram') throw new Unsupported('a fanout from this socket', 'it is not a dgram socket');
    const rx = a.receivers.map((n) => [n, this.slot(n)]);
    for (const [n, r] of rx) {
      if (r.kind !== 'dgram' || !r.obj || !r.bound) {
        throw new Unsupported(`a fanout to \`${n}\``, 'Node receives datagrams only on a dgram socket it has bound');
      }
    }
    const failed = await this.implicitDgram(s);
    if (failed) return failed;
    const tag = `sockspec-fanout-${process.pid}-`;
    const port = portNumber(a.port);
    for (let seq = 0; seq < a.count; seq++) {
      const e = await new Promise((resolve) => s.obj.send(Buffer.from(`${tag}${seq}`), port, a.addr, resolve));
      if (e) return errDone(e, `sending datagram ${seq}: ${e.message}`);
    }
    const quiet = Math.min(secs(a.wait) * 1000, left());
    const got = rx.map(() => new Set());
    const queues = rx.map(([, r]) => r.messages);
    let total = 0;
    let until = Date.now() + quiet;
    while (total < rx.length * a.count) {
      rx.forEach(([, r], i) => {
        for (const m of r.messages.take()) {
          const rest = m.text && m.text.startsWith(tag) ? m.text.slice(tag.length) : '';
          const seq = /^\d+$/.test(rest) ? Number(rest) : -1;
          if (seq >= 0 && seq < a.count && !got[i].has(seq)) {
            got[i].add(seq);
            total += 1;
            until = Date.now() + quiet;
          }
        }
      });
      const wait = until - Date.now();
      if (total === rx.length * a.count || wait <= 0) break;
      await waitAny(queues, wait);
    }
    const detail = `${a.count} datagrams; received ${rx.map(([n], i) => `${n}:${got[i].size}`).join(' ')}`;
    if (a.observe === 'Who') {
      const who = rx.filter((_, i) => got[i].size).map(([n]) => n).sort();
      return done(`who=${who.length ? who.join('+') : 'none'}`, null, detail);
    }
    const reach = [];
    for (let seq = 0; seq < a.count; seq++) reach.push(got.filter((g) => g.has(seq)).length);
    const n = rx.length;
    let each = 'mixed';
    if (reach.every((r) => r === 0)) each = 'none';
    else if (n > 1 && reach.every((r) => r === n)) each = 'all';
    else if (reach.every((r) => r === 1)) each = 'one';
    return done(`each=${each}`, null, detail);
  }

  async step_Spread(a, left) {
    const ls = a.listeners.map((n) => [n, this.slot(n)]);
    for (const [n, l] of ls) {
      if (l.kind !== 'server') throw new Unsupported(`a spread over \`${n}\``, 'Node accepts only on a net.Server');
    }
    const end = Date.now() + left();
    const port = portNumber(a.port);
    const per = ls.map(() => 0);
    const keep = [];
    const ports = [];
    const queues = ls.map(([, l]) => l.conns);
    const acceptReady = () => ls.forEach(([, l], i) => {
      for (const c of l.conns.take()) {
        keep.push(c);
        per[i] += 1;
      }
    });
    const finish = (d) => {
      for (const c of keep) reset(c);
      d.extra_ports = ports;
      return d;
    };
    for (let k = 0; k < a.count; k++) {
      const r = await new Promise((resolve) => {
        const c = net.connect({ host: a.addr, port });
        c.on('error', () => {});
        keep.push(c);
        const t = setTimeout(() => resolve({ timeout: true }), Math.max(0, end - Date.now()));
        c.once('connect', () => {
          clearTimeout(t);
          resolve({ c });
        });
        c.once('error', (e) => {
          clearTimeout(t);
          resolve({ e });
        });
      });
      if (r.timeout) return finish(done('timeout', null, 'no answer to a connection request'));
      if (r.e) return finish(errDone(r.e));
      ports.push(r.c.localPort);
      acceptReady();
    }
    while (per.reduce((x, y) => x + y, 0) < a.count) {
      if (!(await waitAny(queues, Math.min(500, end - Date.now())))) break;
      acceptReady();
    }
    const hit = per.filter((c) => c > 0).length;
    const detail = `${a.count} connections accepted as ${per.join('/')} across ${ls.length} listeners`;
    if (a.observe === 'Who') {
      const who = ls.filter((_, i) => per[i]).map(([n]) => n).sort();
      return finish(done(`who=${who.length ? who.join('+') : 'none'}`, null, detail));
    }
    return finish(done(String(hit), null, detail));
  }

  step_Shutdown(a) {
    const s = this.slot(a.sock);
    if (a.how !== 'Write' || s.kind !== 'stream' || !s.obj) {
      throw new Unsupported(`shutdown(${a.how})`, 'Node half-closes a stream with end() only');
    }
    const held = s.obj.writableLength;
    if (held > 0) {
      // libuv's shutdown waits behind the writes Node still holds (after a
      // fill, until the peer reads): its answer comes later, as the kernel
      // sends a FIN after the data it holds.
      s.obj.end();
      return done('ok', null, `end(): the shutdown follows the ${held} bytes Node still holds`);
    }
    return new Promise((resolve) => s.obj.end(() => resolve(done())));
  }

  step_Close(a) {
    const s = this.socks.get(a.sock);
    if (!s) return done('not_run', null, `socket \`${a.sock}\` is not open here`);
    if (a.bands.length) throw new Unsupported('a timed close', 'Node closes asynchronously');
    this.socks.delete(a.sock);
    return new Promise((resolve) => {
      if (!s.obj) resolve(done());
      else if (s.kind === 'server') s.obj.close(() => resolve(done()));
      else if (s.kind === 'dgram') s.obj.close(() => resolve(done()));
      else if (s.obj.closed) {
        // Node already closed it (without allowHalfOpen it ends and closes
        // a stream once the peer has).
        resolve(done('ok', null, 'Node had closed it already, after the end of stream'));
      } else {
        s.obj.once('close', () => resolve(done()));
        s.obj.destroy();
      }
    });
  }
}

const agent = new Agent();
const reply = (m) => process.stdout.write(`${JSON.stringify(m)}\n`);
reply(agent.hello());
let chain = Promise.resolve();
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  chain = chain.then(async () => {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch (e) {
      reply({ Failed: `bad request: ${e.message}` });
      return;
    }
    reply(await agent.handle(msg));
  });
});
rl.on('close', () => chain.then(() => process.exit(0)));
