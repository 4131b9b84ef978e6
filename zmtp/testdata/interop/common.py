"""Shared helpers for the zmtp interop scripts (run with a python that has
pyzmq, e.g. Debian's /usr/bin/python3 from python3-zmq)."""
import os
import sys

import zmq

# Every blocking call is bounded so that a deadlock fails the script
# instead of hanging the Go test.
TIMEOUT_MS = 20000

BIG = 16 << 20


def fail(msg):
    sys.stderr.write("%s: FAIL: %s\n" % (sys.argv[0], msg))
    sys.stderr.flush()
    sys.exit(1)


def big_frame(seed):
    """A 16 MiB frame whose content depends on seed, so a swap is caught."""
    block = bytes((seed + i) % 251 for i in range(4096))
    return block * (BIG // len(block))


def messages():
    """The multipart messages every echo exchange sends: short, empty
    frames, a long (>255 byte) frame, and 16 MiB frames."""
    return [
        [b"hello"],
        [b""],
        [b"", b"a", b""],
        [b"x" * 300, b"y"],
        [bytes(range(256)) * 3, b"", b"z" * 255, b"w" * 256],
        [big_frame(1)],
        [b"head", big_frame(2), b""],
    ]


def socket(ctx, kind, **opts):
    s = ctx.socket(kind)
    s.setsockopt(zmq.LINGER, 1000)
    s.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    s.setsockopt(zmq.SNDTIMEO, TIMEOUT_MS)
    for name, value in opts.items():
        s.setsockopt(getattr(zmq, name), value)
    curve(s)
    return s


def curve(s):
    """Put s on CURVE when the test asks for it, so every script runs over
    CURVE unchanged: ZMTP_CURVE_CLIENT="SERVER_PUBLIC PUBLIC SECRET" makes
    a client, ZMTP_CURVE_SERVER="SECRET" a server (keys in Z85)."""
    client = os.environ.get("ZMTP_CURVE_CLIENT")
    if client:
        server_public, public, secret = client.split()
        s.setsockopt(zmq.CURVE_SERVERKEY, server_public.encode())
        s.setsockopt(zmq.CURVE_PUBLICKEY, public.encode())
        s.setsockopt(zmq.CURVE_SECRETKEY, secret.encode())
    server = os.environ.get("ZMTP_CURVE_SERVER")
    if server:
        s.setsockopt(zmq.CURVE_SERVER, 1)
        s.setsockopt(zmq.CURVE_SECRETKEY, server.encode())


def recv(s, what):
    try:
        return s.recv_multipart()
    except zmq.Again:
        fail("timed out after %d ms waiting for %s" % (TIMEOUT_MS, what))


def send(s, frames, what):
    try:
        s.send_multipart(frames)
    except zmq.Again:
        fail("timed out after %d ms sending %s" % (TIMEOUT_MS, what))


def describe(frames):
    return [len(f) for f in frames]


def check_equal(got, want, what):
    if got != want:
        fail("%s: got frames of sizes %s, want %s (first got %r)" % (
            what, describe(got), describe(want), [f[:16] for f in got]))
