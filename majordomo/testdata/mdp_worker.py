#!/usr/bin/env python3
"""A Majordomo worker on a libzmq DEALER socket, per RFC 7 / RFC 18.

usage: mdp_worker.py ENDPOINT VERSION SERVICE [options]

Prints "ready" once READY is sent, "got BODY0" for each request (in
modes hang and mute, or with --announce),
"disconnect" when the broker sends DISCONNECT (then, unless
--exit-on-disconnect, reconnects on a new socket and registers again).

Modes (--mode):
  echo    reply with the request body
  tag     reply with [ID] + body, so the caller sees who served it
  hang    take the request, keep heartbeating, never reply (SIGKILL me)
  mute    take the request, then stop heartbeating (but keep reading),
          so the broker expires this worker
  silent  never heartbeat, from the start
  stream  (MDP/0.2) reply with --partials PARTIALs b"0".."N-1", then a
          FINAL b"done"
"""
import argparse
import time

import zmq

import mdp


class Worker:
    def __init__(self, a):
        self.a = a
        self.v2 = a.version == 2
        self.hdr = mdp.W2 if self.v2 else mdp.W1
        self.pre = [] if self.v2 else [b""]  # 0.1 commands start with an empty frame
        self.ctx = zmq.Context()
        self.sock = None
        self.heartbeating = a.mode != "silent"

    def send(self, cmd, *rest):
        self.sock.send_multipart(self.pre + [self.hdr, cmd] + list(rest))
        self.last_sent = time.monotonic()

    def connect(self):
        if self.sock is not None:
            self.sock.close(0)
        self.sock = mdp.socket(self.ctx, zmq.DEALER)
        self.sock.connect(self.a.endpoint)
        self.send(mdp.W1_READY, self.a.service.encode())
        self.last_recv = time.monotonic()
        mdp.say("ready")

    def heartbeat(self):
        return mdp.W2_HEARTBEAT if self.v2 else mdp.W1_HEARTBEAT

    def is_disconnect(self, c):
        return c == (mdp.W2_DISCONNECT if self.v2 else mdp.W1_DISCONNECT)

    def reply(self, addr, body):
        if self.v2:
            self.send(mdp.W2_FINAL, addr, b"", *body)
        else:
            self.send(mdp.W1_REPLY, addr, b"", *body)

    def handle(self, addr, body):
        mode = self.a.mode
        if mode in ("hang", "mute") or self.a.announce:
            mdp.say("got", body[0].decode("latin-1") if body else "")
        if mode == "echo":
            self.reply(addr, body)
        elif mode == "tag":
            self.reply(addr, [self.a.id.encode()] + body)
        elif mode == "stream":
            for i in range(self.a.partials):
                self.send(mdp.W2_PARTIAL, addr, b"", b"%d" % i)
            self.reply(addr, [b"done"])
        elif mode == "hang":
            pass
        elif mode == "mute":
            self.heartbeating = False

    def run(self):
        hb = self.a.hb_ms / 1000.0
        self.connect()
        poller = zmq.Poller()
        while True:
            poller = zmq.Poller()
            poller.register(self.sock, zmq.POLLIN)
            events = dict(poller.poll(int(hb * 250)))
            now = time.monotonic()
            if self.sock in events:
                msg = self.sock.recv_multipart()
                self.last_recv = now
                if not self.v2:
                    if not msg or msg[0] != b"":
                        mdp.fail("MDP/0.1 command without leading empty frame: %r" % msg[:3])
                    msg = msg[1:]
                if len(msg) < 2 or msg[0] != self.hdr:
                    mdp.fail("bad command from broker: %r" % msg[:3])
                cmd = msg[1]
                if cmd == mdp.W1_REQUEST:  # same code in both versions
                    if len(msg) < 4 or msg[3] != b"":
                        mdp.fail("bad REQUEST: %r" % msg)
                    self.handle(msg[2], msg[4:])
                elif self.is_disconnect(cmd):
                    mdp.say("disconnect")
                    if self.a.exit_on_disconnect:
                        return
                    self.heartbeating = self.a.mode != "silent"
                    self.connect()
                elif cmd != self.heartbeat():
                    mdp.fail("unexpected command %r" % cmd)
            if self.heartbeating and now - self.last_sent >= hb:
                self.send(self.heartbeat())
            if self.heartbeating and now - self.last_recv > hb * self.a.liveness:
                mdp.say("broker-lost", "%.3f" % (now - self.last_recv), "%.3f" % time.time())
                self.connect()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("endpoint")
    p.add_argument("version", type=int, choices=(1, 2))
    p.add_argument("service")
    p.add_argument("--mode", default="echo", choices=("echo", "tag", "hang", "mute", "silent", "stream"))
    p.add_argument("--id", default="w")
    p.add_argument("--partials", type=int, default=100)
    p.add_argument("--hb-ms", type=int, default=2500)
    p.add_argument("--liveness", type=int, default=3)
    p.add_argument("--exit-on-disconnect", action="store_true")
    p.add_argument("--announce", action="store_true", help='print "got BODY0" for every request')
    Worker(p.parse_args()).run()


if __name__ == "__main__":
    main()
