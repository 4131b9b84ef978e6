"""Majordomo protocol constants and framing for the interop scripts,
written from ZeroMQ RFC 7 (MDP/0.1), RFC 18 (MDP/0.2) and RFC 8 (MMI).
Run the scripts with a python that has pyzmq (Debian's /usr/bin/python3
with python3-zmq)."""
import sys

import zmq

C1, W1 = b"MDPC01", b"MDPW01"
C2, W2 = b"MDPC02", b"MDPW02"

# MDP/0.1 worker commands
W1_READY, W1_REQUEST, W1_REPLY, W1_HEARTBEAT, W1_DISCONNECT = (bytes([i]) for i in range(1, 6))
# MDP/0.2 worker commands
W2_READY, W2_REQUEST, W2_PARTIAL, W2_FINAL, W2_HEARTBEAT, W2_DISCONNECT = (bytes([i]) for i in range(1, 7))
# MDP/0.2 client commands
C2_REQUEST, C2_PARTIAL, C2_FINAL = (bytes([i]) for i in range(1, 4))

TIMEOUT_MS = 15000


def fail(msg):
    sys.stderr.write("%s: FAIL: %s\n" % (sys.argv[0], msg))
    sys.stderr.flush()
    sys.exit(1)


def say(*words):
    print(*words, flush=True)


def socket(ctx, kind):
    s = ctx.socket(kind)
    s.setsockopt(zmq.LINGER, 500)
    s.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    s.setsockopt(zmq.SNDTIMEO, TIMEOUT_MS)
    return s


def recv(s, what):
    try:
        return s.recv_multipart()
    except zmq.Again:
        fail("timed out after %d ms waiting for %s" % (TIMEOUT_MS, what))


def text(frames):
    return [f.decode("latin-1") for f in frames]
