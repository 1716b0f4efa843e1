#!/usr/bin/env node
// A sockspec helper in Node.js: speaks docs/agent-protocol.md, version 1.
//
// Only the standard library: net for TCP, dgram for UDP. Node creates a TCP
// socket only where its API does (net.connect, net.Server.listen) and sets
// no option it has no API for, so the steps it cannot express (a TCP bind
// or listen of its own, SO_LINGER, shutdown(SHUT_RD), socket hand-off, ...)
// are answered `Unsupported`, never emulated.
'use strict';

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
  }
  push(x) {
    const w = this.waiters.shift();
    if (w) w(x);
    else this.items.push(x);
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

// A TCP stream: what it read and how it ended, in order.
function watchStream(s) {
  const q = new Queue();
  s.on('data', (b) => q.push({ kind: 'data', n: b.length }));
  s.on('end', () => q.push({ kind: 'eof' }));
  s.on('error', (e) => q.push({ kind: 'error', e }));
  return q;
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
        capabilities: [],
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
    if (!msg || typeof msg !== 'object') return { Failed: `bad request: ${JSON.stringify(msg)}` };
    const [kind, body] = Object.entries(msg)[0];
    try {
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
    if (proto === 'Udp' && opt === 'ReuseAddr') opts.reuseAddr = !!on;
    else if (proto === 'Udp' && opt === 'V6Only') opts.ipv6Only = !!on;
    else throw new Unsupported(`option ${opt} on a ${proto} socket`, 'Node has no API that sets it');
  }

  step_SetOpt(a) {
    const s = this.slot(a.sock);
    const v = a.value;
    if (s.kind === 'dgram' && s.obj && s.bound) {
      if (a.opt === 'MulticastLoop') s.obj.setMulticastLoopback(!!v.Bool);
      else if (a.opt === 'Join') s.obj.addMembership(v.Group.group, v.Group.iface);
      else if (a.opt === 'Leave') s.obj.dropMembership(v.Group.group, v.Group.iface);
      else if (a.opt === 'MulticastIf') s.obj.setMulticastInterface(v.Iface);
      else throw new Unsupported(`option ${a.opt} after bind`, 'Node sets it only when it creates the socket');
      return done();
    }
    if (s.obj) throw new Unsupported(`option ${a.opt} now`, 'Node has no API for it on this socket');
    this.pendingOpt(s.proto, a.opt, v, s.opts);
    return done();
  }

  step_Bind(a) {
    const s = this.slot(a.sock);
    if (s.kind !== 'dgram') {
      throw new Unsupported('a TCP bind', 'Node binds a TCP socket only inside net.Server.listen or net.connect');
    }
    s.obj = dgram.createSocket({
      type: s.family === 'V6' ? 'udp6' : 'udp4', reuseAddr: s.opts.reuseAddr, ipv6Only: s.opts.ipv6Only,
    });
    return this.bindDgram(s, a.addr, portNumber(a.port));
  }

  bindDgram(s, addr, port) {
    s.messages = new Queue();
    s.obj.on('message', (m, r) => s.messages.push({ n: m.length, text: m.toString(), from: r }));
    return new Promise((resolve) => {
      const onErr = (e) => resolve(errDone(e));
      s.obj.once('error', onErr);
      s.obj.bind({ port, address: addr }, () => {
        s.obj.removeListener('error', onErr);
        s.obj.on('error', () => {});
        s.bound = true;
        resolve(done());
      });
    });
  }

  step_Server(a) {
    if (a.api !== 'default') throw new Unsupported(`server api \`${a.api}\``, 'Node has one: net / dgram');
    const port = portNumber(a.port);
    if (a.proto === 'Udp') {
      const s = {
        kind: 'dgram', proto: 'Udp', family: a.addr.includes(':') ? 'V6' : 'V4',
        obj: dgram.createSocket(a.addr.includes(':') ? 'udp6' : 'udp4'),
      };
      return this.bindDgram(s, a.addr, port).then((d) => {
        if (d.outcome === 'ok') this.socks.set(a.name, s);
        d.detail = d.detail || 'dgram.createSocket().bind()';
        return d;
      });
    }
    const srv = net.createServer();
    const conns = new Queue();
    srv.on('connection', (c) => conns.push(c));
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

  step_Connect(a, left) {
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
      if (!s.obj) {
        s.obj = dgram.createSocket({ type: s.family === 'V6' ? 'udp6' : 'udp4', reuseAddr: s.opts.reuseAddr });
        s.messages = new Queue();
        s.obj.on('message', (m, r) => s.messages.push({ n: m.length, text: m.toString(), from: r }));
        s.obj.on('error', () => {});
        s.bound = true; // connect binds it
      }
      return go();
    }
    if (s.obj) throw new Unsupported('a second connect', 'Node connects a socket it creates');
    return new Promise((resolve) => {
      const c = net.connect({ host: a.addr, port });
      s.obj = c;
      s.events = watchStream(c);
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
    this.socks.set(a.name, { kind: 'stream', proto: 'Tcp', obj: c, events: watchStream(c) });
    return done();
  }

  step_Send(a) {
    const s = this.slot(a.sock);
    const data = Buffer.alloc(a.bytes, 's');
    return new Promise((resolve) => {
      const cb = (e) => resolve(e ? errDone(e) : done());
      if (s.kind === 'dgram') {
        if (!s.obj) {
          // dgram binds an unbound socket to a port of the OS's choice on its first send.
          s.obj = dgram.createSocket({ type: s.family === 'V6' ? 'udp6' : 'udp4', reuseAddr: s.opts.reuseAddr });
          s.messages = new Queue();
          s.obj.on('message', (m) => s.messages.push({ n: m.length }));
          s.obj.on('error', () => {});
          s.bound = true;
        }
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
    const ev = await s.events.next(wait);
    if (!ev) return done('timeout');
    if (ev.kind === 'data') return done('data', null, `${ev.n} bytes`);
    if (ev.kind === 'eof') return done('eof');
    return errDone(ev.e);
  }

  async step_Drain(a) {
    const s = this.slot(a.sock);
    let got = 0;
    for (;;) {
      const ev = await s.events.next(secs(a.wait) * 1000);
      if (!ev) return done('timeout', null, `read ${got} bytes, then nothing`);
      if (ev.kind === 'eof') return done('eof', null, `read ${got} bytes, then end of stream`);
      if (ev.kind === 'error') return errDone(ev.e, `read ${got} bytes, then ${ev.e.message}`);
      got += ev.n;
    }
  }

  step_Shutdown(a) {
    const s = this.slot(a.sock);
    if (a.how !== 'Write' || s.kind !== 'stream' || !s.obj) {
      throw new Unsupported(`shutdown(${a.how})`, 'Node half-closes a stream with end() only');
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
