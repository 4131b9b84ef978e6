#!/usr/bin/python3
"""A real libzmq (pyzmq) zpipes client, driven line by line by a Go test.

usage: peer.py ENDPOINT SOCKTYPE LIFETIME_SECONDS

SOCKTYPE is DEALER or REQ. The process connects one socket to ENDPOINT and
runs an event loop over that socket and stdin. It never blocks on the socket
(sends are queued here and written with NOBLOCK), so it keeps reading
replies while it writes. Every message received is printed at once, one
line each, and stdout is flushed after each line: a line on stdout means the
message reached this process.

Frames are written in base64, "-" standing for an empty frame.

Commands (stdin, one per line):
  send F...                        queue one multipart message
  writes PIPE N PREFIX SIZE WINDOW [START]
                                   queue N "WRITE PIPE chunk" commands; chunk
                                   i is PREFIX + "%08d" % i, padded with "."
                                   to SIZE bytes, i from START (default 0);
                                   sent while fewer than WINDOW commands
                                   await their reply
  reads PIPE N WINDOW              queue N "READ PIPE" commands, same window
  blast PIPE N PREFIX              synchronous: send N WRITEs (chunks
                                   PREFIX + "%08d" % i) without reading any
                                   reply, then receive N replies; prints
                                   "blast OKS FIRST_BAD" (RCVTIMEO/SNDTIMEO 5s)
  stop                             drop every command not yet sent
  status                           print "status SENT RECEIVED UNSENT"
  quit                             close the socket (linger 2s) and exit 0

Output lines: "ready", "msg F...", "status ...", "blast ...", "error TEXT".

Timeouts: LIFETIME_SECONDS is a hard limit (SIGALRM ends the process), and
the process exits when stdin closes, so it never outlives its test; the Go
side bounds every wait for a line, so a hang fails fast there.
"""
import base64
import collections
import os
import signal
import sys

import zmq


def enc(frame):
    return base64.b64encode(frame).decode("ascii") if frame else "-"


def dec(tok):
    return b"" if tok == "-" else base64.b64decode(tok)


out = sys.stdout.buffer


def emit(line):
    out.write(line.encode("ascii") + b"\n")
    out.flush()


def main():
    endpoint, socktype, lifetime = sys.argv[1], sys.argv[2], float(sys.argv[3])
    signal.alarm(max(1, int(lifetime)))

    ctx = zmq.Context()
    sock = ctx.socket(getattr(zmq, socktype))
    sock.setsockopt(zmq.LINGER, 2000)
    sock.connect(endpoint)
    is_req = socktype == "REQ"

    # pending holds what is still to be sent: lists of frames, or
    # (generator, window) tuples for bulk commands.
    pending = collections.deque()
    sent = received = 0
    stdin_buf = bytearray()

    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    poller.register(0, zmq.POLLIN)
    emit("ready")

    def gen_writes(pipe, n, prefix, size, start):
        pad = b""
        for i in range(start, start + n):
            chunk = prefix + b"%08d" % i
            if len(chunk) < size:
                if len(pad) != size - len(chunk):
                    pad = b"." * (size - len(chunk))
                chunk += pad
            yield [b"WRITE", pipe, chunk]

    def gen_reads(pipe, n):
        for _ in range(n):
            yield [b"READ", pipe]

    def next_message():
        """The next message to send now, or None (nothing, or window full)."""
        outstanding = sent - received
        if is_req and outstanding > 0:
            return None
        while pending:
            head = pending[0]
            if isinstance(head, list):
                return pending.popleft()
            gen, window = head
            if outstanding >= window:
                return None
            msg = next(gen, None)
            if msg is None:
                pending.popleft()
                continue
            return msg
        return None

    def blast(pipe, n, prefix):
        nonlocal sent, received
        sent0, received0 = sent, received
        sock.setsockopt(zmq.SNDTIMEO, 5000)
        sock.setsockopt(zmq.RCVTIMEO, 5000)
        try:
            for i in range(n):
                sock.send_multipart([b"WRITE", pipe, prefix + b"%08d" % i])
                sent += 1
            oks, first_bad = 0, "-"
            for i in range(n):
                frames = sock.recv_multipart()
                received += 1
                if frames == [b"OK"]:
                    oks += 1
                elif first_bad == "-":
                    first_bad = "%d:%s" % (i, ",".join(enc(f) for f in frames))
            emit("blast %d %s" % (oks, first_bad))
        except zmq.Again:
            emit("error blast: no progress for 5s after sending %d of %d WRITEs and receiving %d replies"
                 % (sent - sent0, n, received - received0))
        finally:
            sock.setsockopt(zmq.SNDTIMEO, -1)
            sock.setsockopt(zmq.RCVTIMEO, -1)

    def command(line):
        words = line.decode("ascii").split()
        if not words:
            return
        op, args = words[0], words[1:]
        if op == "send":
            pending.append([dec(a) for a in args])
        elif op == "writes":
            pipe, n, prefix, size, window = dec(args[0]), int(args[1]), dec(args[2]), int(args[3]), int(args[4])
            start = int(args[5]) if len(args) > 5 else 0
            pending.append((gen_writes(pipe, n, prefix, size, start), window))
        elif op == "reads":
            pipe, n, window = dec(args[0]), int(args[1]), int(args[2])
            pending.append((gen_reads(pipe, n), window))
        elif op == "blast":
            blast(dec(args[0]), int(args[1]), dec(args[2]))
        elif op == "stop":
            pending.clear()
        elif op == "status":
            emit("status %d %d %d" % (sent, received, len(pending)))
        elif op == "quit":
            sock.close()
            ctx.term()
            sys.exit(0)
        else:
            emit("error unknown command %r" % op)

    while True:
        msg = next_message()
        poller.modify(sock, zmq.POLLIN | (zmq.POLLOUT if msg is not None else 0))
        if msg is not None:
            pending.appendleft(msg)  # put back; sent below when writable
        events = dict(poller.poll(1000))
        if events.get(sock, 0) & zmq.POLLIN:
            for _ in range(1000):
                if is_req and sent == received:
                    break  # a REQ socket may not recv without a request out
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                received += 1
                emit("msg " + " ".join(enc(f) for f in frames))
        if events.get(sock, 0) & zmq.POLLOUT:
            for _ in range(1000):
                msg = next_message()
                if msg is None:
                    break
                try:
                    sock.send_multipart(msg, zmq.NOBLOCK)
                except zmq.Again:
                    pending.appendleft(msg)
                    break
                sent += 1
        if events.get(0, 0) & (zmq.POLLIN | zmq.POLLERR):  # POLLHUP shows as POLLERR
            data = os.read(0, 1 << 20)
            if not data:
                os._exit(0)  # stdin closed: the test is gone
            searched = len(stdin_buf)
            stdin_buf += data
            while True:
                nl = stdin_buf.find(b"\n", searched)
                if nl < 0:
                    break
                line = bytes(stdin_buf[:nl])
                del stdin_buf[: nl + 1]
                searched = 0
                command(line)


if __name__ == "__main__":
    main()
