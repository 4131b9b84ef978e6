"""Majordomo peers that behave like the ZeroMQ Guide's (zguide) examples,
which people run unchanged against any MDP/0.1 broker. Written for these
tests from the zguide's description of its APIs, keeping the traits that
matter to a broker:

  mdcliapi   REQ client; per request: send, poll TIMEOUT, on no reply
             reconnect and resend, RETRIES attempts in all. It asserts that
             a reply has at least 3 frames, header MDPC01 and exactly the
             service it asked for: anything else crashes it (exit 1).
  mdcliapi2  DEALER client; send returns at once, recv polls TIMEOUT once
             and gives up (None) without retrying. It asserts the empty
             frame and the header but takes the service frame unchecked,
             so a broker failure reply would look like the service's answer.
  mdclient2  mdcliapi2 used as the zguide's async example: N requests to
             echo sent before any reply is read, then N replies read.
  mdwrkapi   worker; heartbeats and reads only inside recv(), so while the
             application handles a request (here: sleeps --job seconds) it
             sends nothing at all.
  hung       worker that registers, takes one request if any comes, and then
             neither sends nor reads again, staying connected.
  flood      plain DEALER speaking MDP/0.2: N requests with a send timeout,
             before reading any reply; reports where it blocked, if it did.

Each prints one JSON line as its result (after progress lines)."""
import argparse
import json
import sys
import time

import zmq

C1, W1, C2 = b"MDPC01", b"MDPW01", b"MDPC02"
READY, REQUEST, REPLY, HEARTBEAT, DISCONNECT = (bytes([i]) for i in range(1, 6))


def say(*words):
    print(*words, flush=True)


def result(**kv):
    say(json.dumps(kv))


def now_ms():
    return time.monotonic() * 1000


class SyncClient:
    """Like mdcliapi: REQ, timeout and retries, strict reply checks."""

    def __init__(self, ctx, endpoint, timeout, retries):
        self.ctx, self.endpoint = ctx, endpoint
        self.timeout, self.retries = timeout, retries
        self.sock = None
        self.attempts = 0
        self.connect()

    def connect(self):
        if self.sock is not None:
            self.sock.close(linger=0)
        self.sock = self.ctx.socket(zmq.REQ)
        self.sock.connect(self.endpoint)

    def send(self, service, body):
        request = [C1, service] + body
        for left in range(self.retries, 0, -1):
            self.attempts += 1
            self.sock.send_multipart(request)
            if self.sock.poll(self.timeout, zmq.POLLIN):
                msg = self.sock.recv_multipart()
                assert len(msg) >= 3, msg
                assert msg[0] == C1, msg
                assert msg[1] == service, "reply from service %r, asked %r" % (msg[1], service)
                return msg[2:]
            if left > 1:
                self.connect()  # a REQ socket cannot send again without a reply
        return None


class AsyncClient:
    """Like mdcliapi2: DEALER, one poll per recv, no retries."""

    def __init__(self, ctx, endpoint, timeout):
        self.timeout = timeout
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send(self, service, body):
        self.sock.send_multipart([b"", C1, service] + body)

    def recv(self):
        if not self.sock.poll(self.timeout, zmq.POLLIN):
            return None
        msg = self.sock.recv_multipart()
        assert len(msg) >= 4, msg
        assert msg[0] == b"", msg
        assert msg[1] == C1, msg
        return msg[3:]  # msg[2], the service, is not looked at


class Worker:
    """Like mdwrkapi: all protocol work happens inside recv()."""

    def __init__(self, ctx, endpoint, service, heartbeat, liveness):
        self.ctx, self.endpoint, self.service = ctx, endpoint, service
        self.heartbeat, self.max_liveness = heartbeat, liveness
        self.sock = None
        self.reply_to = None
        self.connect()

    def connect(self):
        if self.sock is not None:
            self.sock.close(linger=0)
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.connect(self.endpoint)
        self.command(READY, [self.service])
        self.liveness = self.max_liveness
        self.heartbeat_at = now_ms() + self.heartbeat

    def command(self, cmd, rest=()):
        self.sock.send_multipart([b"", W1, cmd] + list(rest))

    def recv(self, reply):
        if reply is not None:
            self.command(REPLY, [self.reply_to, b""] + reply)
        while True:
            if self.sock.poll(self.heartbeat, zmq.POLLIN):
                msg = self.sock.recv_multipart()
                self.liveness = self.max_liveness
                assert len(msg) >= 3 and msg[0] == b"" and msg[1] == W1, msg
                cmd = msg[2]
                if cmd == REQUEST:
                    assert len(msg) >= 5 and msg[4] == b"", msg
                    self.reply_to = msg[3]
                    return msg[5:]
                if cmd == DISCONNECT:
                    say("disconnect")
                    self.connect()
                elif cmd != HEARTBEAT:
                    say("invalid", repr(msg))
            else:
                self.liveness -= 1
                if self.liveness == 0:
                    say("broker silent, reconnecting")
                    self.connect()
            if now_ms() > self.heartbeat_at:
                self.command(HEARTBEAT)
                self.heartbeat_at = now_ms() + self.heartbeat


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("mdcliapi", "mdcliapi2", "mdclient2", "mdwrkapi", "hung", "flood"))
    p.add_argument("endpoint")
    p.add_argument("service")
    p.add_argument("body", nargs="*")
    p.add_argument("--timeout", type=int, default=2500, help="client poll timeout, ms")
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--heartbeat", type=int, default=2500, help="worker heartbeat, ms")
    p.add_argument("--liveness", type=int, default=3)
    p.add_argument("--job", type=float, default=0, help="worker: seconds per request")
    a = p.parse_args()
    ctx = zmq.Context()
    service = a.service.encode()
    body = [b.encode() for b in a.body] or [b"Hello world"]

    if a.mode == "mdcliapi":
        c = SyncClient(ctx, a.endpoint, a.timeout, a.retries)
        start = time.monotonic()
        reply = c.send(service, body)
        result(reply=None if reply is None else [f.decode("latin-1") for f in reply],
               attempts=c.attempts, seconds=time.monotonic() - start)

    elif a.mode == "mdcliapi2":
        c = AsyncClient(ctx, a.endpoint, a.timeout)
        c.send(service, body)
        reply = c.recv()
        result(reply=None if reply is None else [f.decode("latin-1") for f in reply])

    elif a.mode == "mdclient2":
        c = AsyncClient(ctx, a.endpoint, a.timeout)
        for _ in range(a.requests):
            c.send(service, body)
        say("sent", a.requests)
        count = 0
        while count < a.requests:
            reply = c.recv()
            if reply is None:
                break
            assert reply == body, reply
            count += 1
        result(replies=count)

    elif a.mode == "flood":
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDTIMEO, a.timeout)
        s.setsockopt(zmq.RCVTIMEO, a.timeout)
        s.connect(a.endpoint)
        sent = 0
        try:
            for i in range(a.requests):
                s.send_multipart([C2, b"\x01", service, str(i).encode()])
                sent += 1
        except zmq.Again:
            result(blocked_after=sent)
            return 1
        say("sent", sent)
        seen = set()
        try:
            while len(seen) < sent:
                msg = s.recv_multipart()
                assert msg[:3] == [C2, b"\x03", service], msg
                seen.add(int(msg[3]))
        except zmq.Again:
            pass
        result(sent=sent, replies=len(seen))

    elif a.mode == "mdwrkapi":
        w = Worker(ctx, a.endpoint, service, a.heartbeat, a.liveness)
        say("ready")
        reply = None
        while True:
            request = w.recv(reply)
            say("got", b"|".join(request).decode("latin-1"))
            time.sleep(a.job)  # the application at work: no heartbeats
            reply = request

    elif a.mode == "hung":
        s = ctx.socket(zmq.DEALER)
        s.connect(a.endpoint)
        s.send_multipart([b"", W1, READY, service])
        say("ready")
        while True:
            msg = s.recv_multipart()
            if msg[2:3] == [REQUEST]:
                say("got", b"|".join(msg[5:]).decode("latin-1"))
                break
        while True:
            time.sleep(3600)  # connected, reading and saying nothing
    return 0


if __name__ == "__main__":
    sys.exit(main())
