#!/usr/bin/env python3
"""Sends malformed and unexpected Majordomo traffic to a broker, from
several libzmq sockets, then checks the broker is still answering on a
fresh socket. Prints "ok".

usage: mdp_garbage.py ENDPOINT SERVICE ROUNDS
"""
import sys
import time

import zmq

import mdp

JUNK = [
    [b""],
    [b"", b""],
    [b"hello"],
    [b"", b"MDPC01"],                          # no service
    [b"", b"MDPC01", b""],                     # empty service
    [b"", b"MDPC03", b"echo", b"x"],           # unknown version
    [b"MDPC02"],                               # no command
    [b"MDPC02", b"\x07", b"echo", b"x"],       # unknown client command
    [b"MDPC02", b"\x03", b"echo", b"x"],       # FINAL from a client
    [b"MDPC02", b"\x01\x01", b"echo", b"x"],   # two-byte command
    [b"", b"MDPW01"],                          # no command
    [b"", b"MDPW01", b"\x09"],                 # unknown command
    [b"", b"MDPW01", b"\x02", b"a", b"", b"x"],  # REQUEST from a worker
    [b"", b"MDPW01", b"\x03", b"\x00" * 8, b"", b"x"],  # REPLY, not registered
    [b"", b"MDPW01", b"\x04"],                 # HEARTBEAT, not registered
    [b"MDPW02", b"\x03", b"zz", b"x"],         # PARTIAL without empty frame
    [b"MDPW02", b"\x01"],                      # READY without service
    [b"", b"MDPW01", b"\x01", b"mmi.evil"],    # READY in the mmi. namespace
    [b"\xff" * 300] * 40,
]


def main():
    endpoint, service, rounds = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
    ctx = zmq.Context()
    socks = [mdp.socket(ctx, zmq.DEALER) for _ in range(3)]
    for s in socks:
        s.connect(endpoint)
    for r in range(rounds):
        for i, msg in enumerate(JUNK):
            socks[(r + i) % len(socks)].send_multipart(msg)
    # A registered worker that then breaks the protocol is disconnected.
    w = mdp.socket(ctx, zmq.DEALER)
    w.connect(endpoint)
    w.send_multipart([b"", mdp.W1, mdp.W1_READY, b"garbage-svc"])
    w.send_multipart([b"", mdp.W1, b"\x0f", b"junk"])
    msg = mdp.recv(w, "DISCONNECT after an invalid command")
    if msg != [b"", mdp.W1, mdp.W1_DISCONNECT]:
        mdp.fail("want DISCONNECT, got %r" % msg)
    # The broker still serves a well-formed request.
    c = mdp.socket(ctx, zmq.REQ)
    c.connect(endpoint)
    c.send_multipart([mdp.C1, service, b"still there?"])
    got = mdp.recv(c, "a reply after the garbage")
    if got[:2] != [mdp.C1, service] or got[-1] != b"still there?":
        mdp.fail("unexpected reply %r" % got)
    time.sleep(0.05)
    for s in socks + [w, c]:
        s.close(0)
    ctx.term()
    print("ok", flush=True)


if __name__ == "__main__":
    main()
