#!/usr/bin/env python3
"""A Majordomo client on libzmq, per RFC 7 / RFC 18. Prints one JSON
object with what it received (frames decoded as latin-1) and exits 0, or
fails with status 1.

usage: mdp_client.py ENDPOINT VERSION MODE SERVICE [ARGS...] [--socket req|dealer] [--failures]

  --failures            first ask zbroker for failure replies (a request
                        to mmi.failures with body "on"; answer "200")

  call SERVICE BODY...  one request; prints {"service", "body", "partials"}
  seq SERVICE COUNT     COUNT requests one after the other with body
                        [b"<i>"]; prints {"first": {frame0: count}}
  many SERVICE COUNT    COUNT requests sent at once on one DEALER, then
                        every reply collected; checks each request was
                        answered exactly once (last body frame = b"<i>")
  stream SERVICE N      (MDP/0.2) expects N PARTIALs b"0".."N-1" then a
                        FINAL, in order
"""
import argparse
import json

import zmq

import mdp


class Client:
    def __init__(self, endpoint, version, kind):
        self.v2 = version == 2
        self.req = kind == "req"
        self.ctx = zmq.Context()
        self.sock = mdp.socket(self.ctx, zmq.REQ if self.req else zmq.DEALER)
        self.sock.connect(endpoint)

    def send(self, service, body):
        if self.v2:
            frames = [mdp.C2, mdp.C2_REQUEST, service] + body
        else:
            frames = [mdp.C1, service] + body
        if not self.req and not self.v2:
            frames = [b""] + frames  # a DEALER adds 0.1's empty frame itself
        self.sock.send_multipart(frames)

    def recv(self):
        """Returns (final, service, body)."""
        msg = mdp.recv(self.sock, "a reply")
        if not self.req and not self.v2:
            if not msg or msg[0] != b"":
                mdp.fail("MDP/0.1 reply without empty frame: %r" % msg[:3])
            msg = msg[1:]
        if self.v2:
            if len(msg) < 3 or msg[0] != mdp.C2 or msg[1] not in (mdp.C2_PARTIAL, mdp.C2_FINAL):
                mdp.fail("bad MDP/0.2 reply %r" % msg[:4])
            return msg[1] == mdp.C2_FINAL, msg[2], msg[3:]
        if len(msg) < 2 or msg[0] != mdp.C1:
            mdp.fail("bad MDP/0.1 reply %r" % msg[:3])
        return True, msg[1], msg[2:]

    def call(self, service, body):
        self.send(service, body)
        partials = []
        while True:
            final, svc, rbody = self.recv()
            if final:
                return svc, rbody, partials
            partials.append(mdp.text(rbody))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("endpoint")
    p.add_argument("version", type=int, choices=(1, 2))
    p.add_argument("mode", choices=("call", "seq", "many", "stream"))
    p.add_argument("service")
    p.add_argument("args", nargs="*")
    p.add_argument("--socket", choices=("req", "dealer"))
    p.add_argument("--failures", action="store_true")
    a = p.parse_args()
    kind = a.socket or ("req" if a.version == 1 and a.mode in ("call", "seq") else "dealer")
    c = Client(a.endpoint, a.version, kind)
    if a.failures:
        svc, body, _ = c.call(b"mmi.failures", [b"on"])
        if svc != b"mmi.failures" or body != [b"200"]:
            mdp.fail("opt-in answered %r %r" % (svc, body))
    service = a.service.encode()
    out = {}
    if a.mode == "call":
        svc, body, partials = c.call(service, [x.encode() for x in a.args])
        out = {"service": svc.decode("latin-1"), "body": mdp.text(body), "partials": partials}
    elif a.mode == "seq":
        first = {}
        for i in range(int(a.args[0])):
            svc, body, _ = c.call(service, [b"%d" % i])
            if svc != service or body[-1] != b"%d" % i:
                mdp.fail("request %d: got %r %r" % (i, svc, body))
            k = body[0].decode("latin-1")
            first[k] = first.get(k, 0) + 1
        out = {"first": first}
    elif a.mode == "many":
        n = int(a.args[0])
        for i in range(n):
            c.send(service, [b"%d" % i])
        seen = set()
        for _ in range(n):
            final, svc, body = c.recv()
            if not final or svc != service:
                mdp.fail("unexpected reply %r %r" % (svc, body[:3]))
            i = int(body[-1])
            if i in seen or not 0 <= i < n:
                mdp.fail("reply %d twice or out of range" % i)
            seen.add(i)
        out = {"replies": len(seen)}
    elif a.mode == "stream":
        n = int(a.args[0])
        svc, body, partials = c.call(service, [b"go"])
        want = [["%d" % i] for i in range(n)]
        if partials != want:
            mdp.fail("partials out of order or missing: got %d, first %r" % (len(partials), partials[:5]))
        out = {"service": svc.decode("latin-1"), "body": mdp.text(body), "partials": len(partials)}
    c.sock.close(0)
    c.ctx.term()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
