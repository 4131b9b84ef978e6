#!/usr/bin/env python3
"""libzmq peers for the zmtp CURVE interop tests (keys come from the
environment, see common.curve).

usage: curve.py keypair
       curve.py refused ENDPOINT
       curve.py sub ENDPOINT

keypair: print a new key pair from zmq.curve_keypair(): public, secret.
refused: connect a DEALER and wait for libzmq's monitor to report the
         handshake failing; print the event's name and value. A handshake
         that succeeds is a failure.
sub:     subscribe to b"a" (libzmq sends the SUBSCRIBE through the CURVE
         box) and wait for a message [b"a", b"topic a"].
"""
import sys
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

import common

EVENTS = {getattr(zmq, n): n for n in dir(zmq) if n.startswith("EVENT_") and n != "EVENT_ALL"}


def refused(ctx, endpoint):
    s = common.socket(ctx, zmq.DEALER)
    mon = s.get_monitor_socket()
    s.connect(endpoint)
    deadline = time.time() + 15
    while time.time() < deadline:
        if not mon.poll(500):
            continue
        ev = recv_monitor_message(mon)
        name = EVENTS.get(ev["event"], str(ev["event"]))
        if ev["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            common.fail("handshake succeeded")
        if name.startswith("EVENT_HANDSHAKE_FAILED"):
            print(name, ev["value"], flush=True)
            s.disable_monitor()
            mon.close(0)
            s.close(0)
            return
    common.fail("no handshake failure reported")


def sub(ctx, endpoint):
    s = common.socket(ctx, zmq.SUB)
    s.setsockopt(zmq.SUBSCRIBE, b"a")
    s.connect(endpoint)
    common.check_equal(common.recv(s, "a published message"), [b"a", b"topic a"], "published message")
    s.close()
    print("ok")


def main():
    mode = sys.argv[1]
    if mode == "keypair":
        print(*(k.decode() for k in zmq.curve_keypair()))
        return
    ctx = zmq.Context()
    if mode == "refused":
        refused(ctx, sys.argv[2])
    elif mode == "sub":
        sub(ctx, sys.argv[2])
    else:
        common.fail("unknown mode %r" % mode)
    ctx.term()


if __name__ == "__main__":
    main()
