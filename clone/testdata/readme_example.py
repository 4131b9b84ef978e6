# A minimal CHP client with python3-zmq: mirror the subtree "/config/",
# set one key, print what arrives. Run against `zbroker` (name "default").
import os, struct, sys, zmq

NAME = sys.argv[1] if len(sys.argv) > 1 else "default"
EP = "ipc://@/clone/" + NAME + "/"
SUBTREE = b"/config/"
ctx = zmq.Context()

def kvmsg(key, body, props=b""):
    return [key, struct.pack(">Q", 0), os.urandom(16), props, body]

# 1. Subscribe first (subtree + HUGZ), and wait for a message: the server
#    answers a HUGZ subscription with a HUGZ, so the subscription is live.
sub = ctx.socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, SUBTREE)
sub.setsockopt(zmq.SUBSCRIBE, b"HUGZ")
sub.connect(EP + "updates")
sub.recv_multipart()

# 2. Snapshot: ICANHAZ? -> KVSYNC... KTHXBAI(sequence).
snap = ctx.socket(zmq.DEALER)
snap.connect(EP + "snapshot")
snap.send_multipart([b"ICANHAZ?", SUBTREE])
kv = {}
while True:
    key, seq, uuid, props, body = snap.recv_multipart()
    if key == b"KTHXBAI":
        sequence = struct.unpack(">Q", seq)[0]
        break
    kv[key] = body

# 3. Publish an update through the collector. The server's SUB must
#    subscribe to us before a PUB sends anything: XPUB lets us wait for it.
pub = ctx.socket(zmq.XPUB)
pub.connect(EP + "collector")
pub.recv()
pub.send_multipart(kvmsg(SUBTREE + b"colour", b"blue", b"ttl=60\n"))

# 4. Apply updates numbered above the snapshot; HUGZ just says "alive".
while True:
    key, seq, uuid, props, body = sub.recv_multipart()
    seq = struct.unpack(">Q", seq)[0]
    if key == b"HUGZ" or seq <= sequence:
        continue
    sequence = seq
    if body:
        kv[key] = body
    else:
        kv.pop(key, None)
    print(seq, key.decode(), body.decode())
    if key == SUBTREE + b"colour":
        break
