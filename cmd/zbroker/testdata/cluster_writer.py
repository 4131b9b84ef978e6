#!/usr/bin/env python3
"""A libzmq (pyzmq) zpipes writer for the cluster failover tests.

usage: cluster_writer.py ENDPOINT PIPE PREFIX N WINDOW

Opens PIPE over a DEALER and writes chunks PREFIX + "%06d" % i for i in
range(N), with at most WINDOW WRITEs awaiting their OK. Prints
"done N" once every WRITE has its OK. An ERROR reply, or 120 s without
any reply, exits 1 with a reason; SIGALRM ends it after 300 s.
"""
import signal
import sys

import zmq


def fail(msg):
    sys.stderr.write("cluster_writer.py: FAIL: %s\n" % msg)
    sys.exit(1)


def main():
    endpoint, pipe, prefix = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
    n, window = int(sys.argv[4]), int(sys.argv[5])
    signal.alarm(300)
    sock = zmq.Context().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 120000)
    sock.connect(endpoint)

    def reply():
        try:
            frames = sock.recv_multipart()
        except zmq.Again:
            fail("no reply in 120 s")
        if frames != [b"OK"]:
            fail("reply %r" % frames)

    sock.send_multipart([b"OPEN", pipe])
    reply()
    sent = acked = 0
    while acked < n:
        while sent < n and sent - acked < window:
            sock.send_multipart([b"WRITE", pipe, prefix + b"%06d" % sent])
            sent += 1
        reply()
        acked += 1
    print("done %d" % acked, flush=True)


main()
