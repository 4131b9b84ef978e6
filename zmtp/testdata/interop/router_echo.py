#!/usr/bin/env python3
"""libzmq ROUTER echo server for the zmtp interop tests.

usage: router_echo.py ENDPOINT

Binds ENDPOINT ("tcp://127.0.0.1:*" picks a port), prints the bound
endpoint on one line, then echoes every message to its sender. A message
consisting of the single frame b"QUIT" is answered with b"BYE" and ends
the script with status 0. Twenty seconds without a message is a failure.
"""
import sys

import zmq

import common


def main():
    ctx = zmq.Context()
    s = common.socket(ctx, zmq.ROUTER)
    s.bind(sys.argv[1])
    print(s.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
    while True:
        msg = common.recv(s, "a request")
        if msg[1:] == [b"QUIT"]:
            common.send(s, [msg[0], b"BYE"], "BYE")
            break
        common.send(s, msg, "echo")
    s.close()
    ctx.term()


if __name__ == "__main__":
    main()
