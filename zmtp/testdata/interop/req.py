#!/usr/bin/env python3
"""libzmq REQ client for the zmtp interop tests: sends each message of
common.messages() (REQ adds the empty delimiter frame) and checks the echo.

usage: req.py ENDPOINT
"""
import sys

import zmq

import common


def main():
    ctx = zmq.Context()
    s = common.socket(ctx, zmq.REQ)
    s.connect(sys.argv[1])
    for i, msg in enumerate(common.messages()):
        common.send(s, msg, "request %d" % i)
        got = common.recv(s, "reply %d" % i)
        common.check_equal(got, msg, "reply %d" % i)
    s.close()
    ctx.term()
    print("ok")


if __name__ == "__main__":
    main()
