#!/usr/bin/env python3
"""libzmq (pyzmq) clients of every zbroker service over CURVE.

usage: curve_services.py ZPIPES MAJORDOMO SNAPSHOT UPDATES COLLECTOR

ZBROKER_CURVE="SERVER_PUBLIC CLIENT_PUBLIC CLIENT_SECRET" (Z85) puts every
socket on CURVE. Runs, each checked: zpipes over a DEALER (a 16 MiB chunk
too) and a REQ; a Majordomo worker and client; Clone updates over SUB
(its subscription travels inside the CURVE box), the collector and a
snapshot. Prints "ok"; any failure exits 1 with a reason.
"""
import os
import struct
import sys
import time

import zmq

TIMEOUT_MS = 20000
ctx = zmq.Context()


def fail(msg):
    sys.stderr.write("curve_services.py: FAIL: %s\n" % msg)
    sys.exit(1)


def socket(kind, endpoint):
    s = ctx.socket(kind)
    s.setsockopt(zmq.LINGER, 1000)
    s.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    s.setsockopt(zmq.SNDTIMEO, TIMEOUT_MS)
    server, public, secret = os.environ["ZBROKER_CURVE"].split()
    s.setsockopt(zmq.CURVE_SERVERKEY, server.encode())
    s.setsockopt(zmq.CURVE_PUBLICKEY, public.encode())
    s.setsockopt(zmq.CURVE_SECRETKEY, secret.encode())
    s.connect(endpoint)
    return s


def exchange(s, msg, want, what):
    try:
        s.send_multipart(msg)
        got = s.recv_multipart()
    except zmq.Again:
        fail("timed out: %s" % what)
    if got != want:
        fail("%s: got %r, want %r" % (what, [f[:32] for f in got], [f[:32] for f in want]))


def zpipes(endpoint):
    d = socket(zmq.DEALER, endpoint)
    big = bytes(range(256)) * (16 << 12)  # 16 MiB
    exchange(d, [b"OPEN", b"curve"], [b"OK"], "zpipes OPEN over DEALER")
    exchange(d, [b"WRITE", b"curve", b"first"], [b"OK"], "zpipes WRITE over DEALER")
    exchange(d, [b"WRITE", b"curve", big], [b"OK"], "zpipes WRITE of 16 MiB over DEALER")
    exchange(d, [b"READ", b"curve"], [b"first"], "zpipes READ over DEALER")
    exchange(d, [b"READ", b"curve"], [big], "zpipes READ of 16 MiB over DEALER")
    r = socket(zmq.REQ, endpoint)
    exchange(r, [b"OPEN", b"curve-req"], [b"OK"], "zpipes OPEN over REQ")
    exchange(r, [b"WRITE", b"curve-req", b"by req"], [b"OK"], "zpipes WRITE over REQ")
    exchange(r, [b"READ", b"curve-req"], [b"by req"], "zpipes READ over REQ")


def majordomo(endpoint):
    w = socket(zmq.DEALER, endpoint)
    w.send_multipart([b"", b"MDPW01", b"\x01", b"curve.echo"])
    c = socket(zmq.DEALER, endpoint)
    c.send_multipart([b"", b"MDPC01", b"curve.echo", b"hello", b"world"])
    while True:
        try:
            msg = w.recv_multipart()
        except zmq.Again:
            fail("the worker got no request")
        if msg[:3] == [b"", b"MDPW01", b"\x02"]:
            break
        if msg[:3] != [b"", b"MDPW01", b"\x04"]:  # heartbeats are fine
            fail("worker got %r" % msg)
    client, body = msg[3], msg[5:]
    if body != [b"hello", b"world"]:
        fail("worker got body %r" % body)
    w.send_multipart([b"", b"MDPW01", b"\x03", client, b""] + body)
    try:
        got = c.recv_multipart()
    except zmq.Again:
        fail("the client got no reply")
    if got != [b"", b"MDPC01", b"curve.echo", b"hello", b"world"]:
        fail("client got %r" % got)


def kvmsg(key, body):
    return [key, struct.pack(">Q", 0), os.urandom(16), b"", body]


def clone(snapshot, updates, collector):
    sub = socket(zmq.SUB, updates)
    sub.setsockopt(zmq.SUBSCRIBE, b"/curve/")
    pub = socket(zmq.XPUB, collector)
    try:
        pub.recv()  # the broker's subscription: the collector is ready
    except zmq.Again:
        fail("the collector never subscribed")
    # Our own subscription may not have reached the broker yet: send
    # until an update comes back.
    sub.setsockopt(zmq.RCVTIMEO, 500)
    key = None
    for i in range(40):
        pub.send_multipart(kvmsg(b"/curve/%d" % i, b"value %d" % i))
        try:
            msg = sub.recv_multipart()
        except zmq.Again:
            continue
        if len(msg) != 5 or not msg[0].startswith(b"/curve/"):
            fail("update %r" % msg)
        key, body = msg[0], msg[4]
        break
    if key is None:
        fail("no update arrived over SUB")
    d = socket(zmq.DEALER, snapshot)
    d.send_multipart([b"ICANHAZ?", b"/curve/"])
    seen = {}
    while True:
        try:
            msg = d.recv_multipart()
        except zmq.Again:
            fail("snapshot timed out")
        if msg[0] == b"KTHXBAI":
            break
        seen[msg[0]] = msg[4]
    if seen.get(key) != body:
        fail("snapshot %r lacks %r=%r" % (seen, key, body))


def main():
    zp, mdp, snapshot, updates, collector = sys.argv[1:6]
    zpipes(zp)
    majordomo(mdp)
    clone(snapshot, updates, collector)
    print("ok", flush=True)
    os._exit(0)  # skip the linger of every socket


if __name__ == "__main__":
    main()
