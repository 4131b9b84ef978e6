#!/usr/bin/env python3
"""A Clustered Hashmap Protocol (ZeroMQ RFC 12/CHP) peer written against
libzmq (pyzmq), for zbroker's clone interop tests.

usage: chp_peer.py MODE SNAPSHOT PUBLISHER COLLECTOR [args...]

modes:
  publish N SUBTREE OTHER  send N KVSETs to the collector: key SUBTREE<i%500>
                           (every 10th to OTHER<i> instead), body str(i);
                           the last one is SUBTREE + "done". Pauses after
                           N/4 until a line arrives on stdin.
  join SUBTREE             late joiner: subscribe, snapshot, apply live
                           updates until SUBTREE+"done"; print JSON summary
  ttl KEY                  set KEY with ttl=0.3, print what the subscriber
                           sees (set, then delete) as JSON lines
  restart TIMEOUT          sync "", then resync whenever the server is
                           silent for TIMEOUT seconds or its sequence goes
                           back; print a JSON line per sync; exit after the
                           second sync that contains the key "/new"
  serve                    a minimal libzmq CHP server (for the Go client)
  populate N TTLKEY TTL    set /p/0../p/N-1 and TTLKEY (ttl=TTL), wait until
                           TTLKEY's update is published and a snapshot has
                           them all, print it as JSON
  watch KEY TIMEOUT        subscribe, snapshot, print it as JSON, then print
                           live updates until KEY is deleted or TIMEOUT
  garbage                  send malformed messages to collector and snapshot,
                           then one good KVSET and a good ICANHAZ?
"""
import json
import os
import struct
import sys
import time

import zmq

ctx = zmq.Context()


def kvmsg(key, seq=0, uuid=b"", props=b"", body=b""):
    return [key, struct.pack(">Q", seq), uuid, props, body]


def parse(frames):
    assert len(frames) == 5, frames
    key, seq, uuid, props, body = frames
    assert len(seq) == 8
    return key.decode(), struct.unpack(">Q", seq)[0], uuid, props.decode(), body


def collector(ep):
    # XPUB rather than PUB so we can wait for the server's subscription
    # instead of sleeping (a PUB drops what it sends before that).
    s = ctx.socket(zmq.XPUB)
    s.setsockopt(zmq.SNDHWM, 0)  # a (X)PUB drops past its HWM otherwise
    s.connect(ep)
    sub = s.recv()
    assert sub[:1] == b"\x01", sub
    return s


def subscriber(ep, subtree):
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.SUBSCRIBE, subtree.encode())
    s.setsockopt(zmq.SUBSCRIBE, b"HUGZ")
    s.connect(ep)
    return s


def snapshot(ep, subtree):
    d = ctx.socket(zmq.DEALER)
    d.setsockopt(zmq.LINGER, 0)
    d.connect(ep)
    d.send_multipart([b"ICANHAZ?", subtree.encode()])
    kv = {}
    while True:
        if not d.poll(5000):
            raise SystemExit("no snapshot reply")
        key, seq, _, _, body = parse(d.recv_multipart())
        if key == "KTHXBAI":
            assert body == subtree.encode(), body
            d.close()
            return kv, seq
        assert key.startswith(subtree), key
        kv[key] = body.decode()


def mode_publish(snap_ep, pub_ep, coll_ep, n, subtree, other):
    s = collector(coll_ep)
    n = int(n)
    for i in range(n):
        if i == n // 4:
            sys.stdin.readline()  # the test's go-ahead: a joiner is joining
        if i > n // 4 and i % 100 == 0:
            time.sleep(0.001)  # keep the flow going while it joins
        key = other + str(i) if i % 10 == 9 else subtree + str(i % 500)
        if i == n - 1:
            key = subtree + "done"
        s.send_multipart(kvmsg(key.encode(), 0, os.urandom(16), b"", str(i).encode()))
    time.sleep(0.2)  # let the queue flush before the context ends
    s.close(linger=2000)


def mode_join(snap_ep, pub_ep, coll_ep, subtree):
    sub = subscriber(pub_ep, subtree)
    # Any message (HUGZ at least) proves the subscriptions are in place.
    if not sub.poll(5000):
        raise SystemExit("no message on the subscriber")
    first = sub.recv_multipart()
    print(json.dumps({"subscribed": True}), flush=True)
    time.sleep(0.03)  # the test resumes the flow: ask in the middle of it
    kv, snap_seq = snapshot(snap_ep, subtree)
    seq = snap_seq
    live = 0
    done = subtree + "done" in kv
    pending = [first]
    while not done:
        frames = pending.pop() if pending else sub.recv_multipart()
        key, s, _, _, body = parse(frames)
        if key == "HUGZ" or s <= seq:
            continue
        assert key.startswith(subtree), key
        seq = s
        live += 1
        if body:
            kv[key] = body.decode()
        else:
            kv.pop(key, None)
        done = key == subtree + "done"
    print(json.dumps({"snapshot_seq": snap_seq, "live": live, "seq": seq, "map": kv}))


def mode_ttl(snap_ep, pub_ep, coll_ep, key):
    sub = subscriber(pub_ep, key)
    if not sub.poll(5000):
        raise SystemExit("no message on the subscriber")
    sub.recv_multipart()
    c = collector(coll_ep)
    t0 = time.time()
    c.send_multipart(kvmsg(key.encode(), 0, os.urandom(16), b"ttl=0.3\n", b"ephemeral"))
    seen = 0
    while seen < 2:
        if not sub.poll(5000):
            raise SystemExit("no update")
        k, s, _, props, body = parse(sub.recv_multipart())
        if k == "HUGZ":
            continue
        seen += 1
        print(json.dumps({"key": k, "seq": s, "props": props, "body": body.decode(),
                          "after": round(time.time() - t0, 3)}), flush=True)


def mode_restart(snap_ep, pub_ep, coll_ep, timeout):
    timeout = float(timeout)
    sub = subscriber(pub_ep, "")
    syncs = 0
    while True:
        # (Re)synchronize: wait for a message, then take a snapshot.
        if not sub.poll(10000):
            raise SystemExit("server never came back")
        sub.recv_multipart()
        kv, seq = snapshot(snap_ep, "")
        syncs += 1
        print(json.dumps({"sync": syncs, "seq": seq, "map": kv}), flush=True)
        if "/new" in kv:
            return
        while True:
            if not sub.poll(int(timeout * 1000)):
                print(json.dumps({"silent": timeout}), flush=True)
                break
            key, s, _, _, body = parse(sub.recv_multipart())
            if key == "HUGZ":
                continue
            if s < seq:
                print(json.dumps({"sequence_went_back": [seq, s]}), flush=True)
                break
            if s > seq:
                seq = s
                if body:
                    kv[key] = body.decode()
                else:
                    kv.pop(key, None)
                if key == "/new":
                    print(json.dumps({"live": key, "seq": s}), flush=True)
                    return


def mode_garbage(snap_ep, pub_ep, coll_ep):
    c = collector(coll_ep)
    for msg in [
        [b"only one frame"],
        [b"/k", b"short", b"", b"", b"v"],
        [b"/k", b"\0" * 8, b"bad uuid", b"", b"v"],
        [b"/k", b"\0" * 8, b"", b"noequals\n", b"v"],
        [b"", b"\0" * 8, b"", b"", b"v"],
        kvmsg(b"HUGZ", body=b"reserved"),
        kvmsg(b"/k", props=b"ttl=soon\n", body=b"v"),
        [b"/k", b"\0" * 8, b"", b"", b"v", b"extra"],
    ]:
        c.send_multipart(msg)
    d = ctx.socket(zmq.DEALER)
    d.connect(snap_ep)
    for msg in [[b"GIMME"], [b"ICANHAZ?"], [b"ICANHAZ?", b"/", b"extra"], [b""]]:
        d.send_multipart(msg)
    c.send_multipart(kvmsg(b"/good", 0, os.urandom(16), b"", b"fine"))
    # The good update goes through the collector, the snapshot through
    # another socket: ask until the snapshot has it.
    for _ in range(100):
        kv, seq = snapshot(snap_ep, "/good")
        if "/good" in kv:
            print(json.dumps({"seq": seq, "map": kv}))
            break
        time.sleep(0.05)
    else:
        raise SystemExit("good update never reached the snapshot")
    c.close(linger=1000)


def mode_serve(snap_ep, pub_ep, coll_ep):
    """A minimal CHP server on libzmq (no TTL), for testing the Go client:
    binds the three endpoints, HUGZ every 0.1s, exits on the key /quit."""
    snap = ctx.socket(zmq.ROUTER)
    snap.bind(snap_ep)
    pub = ctx.socket(zmq.PUB)
    pub.bind(pub_ep)
    coll = ctx.socket(zmq.SUB)
    coll.setsockopt(zmq.SUBSCRIBE, b"")
    coll.bind(coll_ep)
    print(json.dumps({"listening": True}), flush=True)
    poller = zmq.Poller()
    poller.register(snap, zmq.POLLIN)
    poller.register(coll, zmq.POLLIN)
    kv, seq, next_hugz = {}, 0, time.time()
    while True:
        wait = max(0, next_hugz - time.time())
        events = dict(poller.poll(int(wait * 1000)))
        if time.time() >= next_hugz:
            pub.send_multipart(kvmsg(b"HUGZ"))
            next_hugz = time.time() + 0.1
        if snap in events:
            msg = snap.recv_multipart()
            if len(msg) != 3 or msg[1] != b"ICANHAZ?":
                continue
            ident, _, subtree = msg
            for key in sorted(kv):
                if key.startswith(subtree):
                    s_, uuid, body = kv[key]
                    snap.send_multipart([ident] + kvmsg(key, s_, uuid, b"", body))
            snap.send_multipart([ident] + kvmsg(b"KTHXBAI", seq, body=subtree))
        if coll in events:
            key, _, uuid, props, body = coll.recv_multipart()
            if key == b"/quit":
                print(json.dumps({"seq": seq, "keys": len(kv)}), flush=True)
                return
            seq += 1
            if body:
                kv[key] = (seq, uuid, body)
            else:
                kv.pop(key, None)
            pub.send_multipart(kvmsg(key, seq, uuid, props, body))


def mode_populate(snap_ep, pub_ep, coll_ep, n, ttl_key, ttl):
    n = int(n)
    # Updates are published only once stored, in order: once TTLKEY's
    # comes back, every set before it is in the log too. A snapshot alone
    # may show changes not yet stored (docs/durability.md).
    sub = subscriber(pub_ep, ttl_key)
    if not sub.poll(5000):
        raise SystemExit("no message on the subscriber")
    c = collector(coll_ep)
    for i in range(n):
        c.send_multipart(kvmsg(b"/p/%d" % i, 0, os.urandom(16), b"", str(i).encode()))
    c.send_multipart(kvmsg(ttl_key.encode(), 0, os.urandom(16), ("ttl=%s\n" % ttl).encode(), b"eph"))
    deadline = time.time() + 10
    while time.time() < deadline:
        if sub.poll(100) and parse(sub.recv_multipart())[0] == ttl_key:
            break
    else:
        raise SystemExit("%s was never published" % ttl_key)
    while True:
        kv, seq = snapshot(snap_ep, "")
        if len(kv) == n + 1 or time.time() > deadline:
            break
        time.sleep(0.05)
    print(json.dumps({"seq": seq, "map": kv}), flush=True)


def mode_watch(snap_ep, pub_ep, coll_ep, key, timeout):
    sub = subscriber(pub_ep, "")
    if not sub.poll(5000):
        raise SystemExit("no message on the subscriber")
    kv, seq = snapshot(snap_ep, "")
    print(json.dumps({"seq": seq, "map": kv}), flush=True)
    deadline = time.time() + float(timeout)
    while time.time() < deadline:
        if not sub.poll(100):
            continue
        k, s, _, _, body = parse(sub.recv_multipart())
        if k == "HUGZ":
            continue
        print(json.dumps({"key": k, "seq": s, "body": body.decode()}), flush=True)
        if k == key and not body:
            return


if __name__ == "__main__":
    mode = sys.argv[1]
    globals()["mode_" + mode](*sys.argv[2:])
