#!/usr/bin/env python3
"""libzmq DEALER client for the zmtp interop tests.

usage: dealer.py ENDPOINT echo
       dealer.py ENDPOINT pipeline COUNT SIZE
       dealer.py ENDPOINT idle SECONDS HEARTBEAT(0|1)

echo:     send each message of common.messages() and check the echo.
pipeline: send COUNT requests of SIZE bytes before reading any reply,
          then check all COUNT replies arrive, in order.
idle:     request, stay idle for SECONDS, then request again 10 times;
          with HEARTBEAT=1 libzmq PINGs every 100 ms and drops the
          connection if nothing comes back within 400 ms. A socket
          monitor makes any disconnect or reconnect a failure.
"""
import sys
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

import common


def echo(s):
    for i, msg in enumerate(common.messages()):
        common.send(s, msg, "message %d" % i)
        got = common.recv(s, "echo of message %d" % i)
        common.check_equal(got, msg, "echo of message %d" % i)


def pipeline(s, count, size):
    pad = b"p" * size
    for i in range(count):
        common.send(s, [b"%d" % i, pad], "request %d" % i)
    for i in range(count):
        got = common.recv(s, "reply %d of %d" % (i, count))
        common.check_equal(got, [b"%d" % i, pad], "reply %d" % i)


def idle(s, mon, seconds):
    common.send(s, [b"hb", b"first"], "first request")
    common.check_equal(common.recv(s, "first reply"), [b"hb", b"first"], "first reply")
    time.sleep(seconds)
    for i in range(10):
        common.send(s, [b"hb", b"%d" % i], "request %d" % i)
        common.check_equal(common.recv(s, "reply %d" % i), [b"hb", b"%d" % i], "reply %d" % i)
        time.sleep(0.02)
    connects = disconnects = 0
    while True:
        try:
            ev = recv_monitor_message(mon, zmq.NOBLOCK)
        except zmq.Again:
            break
        if ev["event"] == zmq.EVENT_CONNECTED:
            connects += 1
        elif ev["event"] == zmq.EVENT_DISCONNECTED:
            disconnects += 1
    if connects != 1 or disconnects != 0:
        common.fail("connection was not stable: %d connects, %d disconnects" % (connects, disconnects))


def main():
    endpoint, mode = sys.argv[1], sys.argv[2]
    ctx = zmq.Context()
    opts = {}
    if mode == "pipeline":
        # Unlimited queues on the libzmq side: the client buffers every
        # request and reply itself, so only the broker can deadlock.
        opts = {"SNDHWM": 0, "RCVHWM": 0}
    if mode == "idle" and sys.argv[4] == "1":
        opts = {"HEARTBEAT_IVL": 100, "HEARTBEAT_TIMEOUT": 400, "HEARTBEAT_TTL": 1000}
    s = common.socket(ctx, zmq.DEALER, **opts)
    mon = s.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
    s.connect(endpoint)
    if mode == "echo":
        echo(s)
    elif mode == "pipeline":
        pipeline(s, int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "idle":
        idle(s, mon, float(sys.argv[3]))
    else:
        common.fail("unknown mode %r" % mode)
    s.disable_monitor()
    mon.close(0)
    s.close()
    ctx.term()
    print("ok")


if __name__ == "__main__":
    main()
