package zmtp

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// Fuzzing the CURVE decoders: libzmq once had a stack overflow in its
// CURVE server reachable before authentication. Each target feeds one
// command's data to the step that decodes it, in a handshake whose keys
// and nonces are fixed (so the seeds are valid in every fuzz process).

func fixedRand() randSource {
	return randSource{rand.NewChaCha8([32]byte{'z', 'b', 'r', 'o', 'k', 'e', 'r'})}
}

type curveFixture struct {
	srv                             *curveServer
	cli                             *curveClient
	hello, welcome, initiate, ready []byte // command data, without the name
	message                         []byte // a client's MESSAGE body
}

// commandData strips the frame header and name from a command we built.
func commandData(t testing.TB, frame []byte) []byte {
	_, data, err := parseCommand(frame[2:])
	if frame[0]&flagLong != 0 {
		_, data, err = parseCommand(frame[9:])
	}
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func newCurveFixture(t testing.TB) *curveFixture {
	r := fixedRand()
	f := &curveFixture{
		srv: &curveServer{cfg: serverCurve(), rand: r},
		cli: &curveClient{cfg: clientCurve(testServerPublic), rand: r},
	}
	f.hello = commandData(t, f.cli.hello())
	w, err := f.srv.onHello(f.hello)
	if err != nil {
		t.Fatal(err)
	}
	f.welcome = commandData(t, w)
	md := appendMetadata(nil, [2]string{"Socket-Type", "DEALER"})
	i, err := f.cli.onWelcome(f.welcome, md)
	if err != nil {
		t.Fatal(err)
	}
	f.initiate = commandData(t, i)
	if _, _, _, err := f.srv.onInitiate(f.initiate); err != nil {
		t.Fatal(err)
	}
	f.ready = commandData(t, f.srv.ready(appendMetadata(nil, [2]string{"Socket-Type", "ROUTER"})))
	frame := newCurveSealer(&f.cli.shared, false, 2).appendFrame(nil, curveMore, "", []byte("payload"))
	f.message = frame[2:]
	return f
}

func addSeeds(f *testing.F, valid []byte) {
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(append(bytes.Clone(valid), 0))
	f.Add([]byte{})
}

func FuzzCurveHello(f *testing.F) {
	addSeeds(f, newCurveFixture(f).hello)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &curveServer{cfg: serverCurve(), rand: fixedRand()}
		welcome, err := s.onHello(data)
		if err == nil && (len(data) != helloSize || len(welcome) != 2+8+welcomeSize) {
			t.Fatalf("accepted a HELLO of %d bytes, answered %d", len(data), len(welcome))
		}
	})
}

func FuzzCurveWelcome(f *testing.F) {
	addSeeds(f, newCurveFixture(f).welcome)
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &curveClient{cfg: clientCurve(testServerPublic), rand: fixedRand()}
		c.hello()
		if _, err := c.onWelcome(data, nil); err == nil && len(data) != welcomeSize {
			t.Fatalf("accepted a WELCOME of %d bytes", len(data))
		}
	})
}

func FuzzCurveInitiate(f *testing.F) {
	addSeeds(f, newCurveFixture(f).initiate)
	f.Fuzz(func(t *testing.T, data []byte) {
		fx := newCurveFixture(t)
		client, md, _, err := fx.srv.onInitiate(data)
		if err != nil {
			return
		}
		if client != testClientPublic {
			t.Fatalf("authenticated %s", client)
		}
		parseMetadata(md)
	})
}

func FuzzCurveReady(f *testing.F) {
	addSeeds(f, newCurveFixture(f).ready)
	f.Fuzz(func(t *testing.T, data []byte) {
		fx := newCurveFixture(t)
		md, n, err := fx.cli.onReady(data)
		if err != nil {
			return
		}
		if len(md) != len(data)-readyMin || n == 0 {
			t.Fatalf("READY of %d bytes gave %d of metadata, nonce %d", len(data), len(md), n)
		}
		parseMetadata(md)
	})
}

func FuzzCurveMessage(f *testing.F) {
	addSeeds(f, newCurveFixture(f).message)
	f.Fuzz(func(t *testing.T, data []byte) {
		fx := newCurveFixture(t)
		o := newCurveOpener(&fx.srv.shared, false, 2)
		flags, body, err := o.open(data)
		if err != nil {
			return
		}
		if len(body) != len(data)-curveFrameOverhead || o.last <= 2 || flags&^(flagMore|flagCommand) != 0 {
			t.Fatalf("MESSAGE of %d bytes: body %d, nonce %d, flags %#x", len(data), len(body), o.last, flags)
		}
		if _, _, err := o.open(data); err == nil {
			t.Fatal("the same MESSAGE opened twice")
		}
	})
}

// TestCurveFixtureDeterministic: the fuzz seeds are only worth something
// if every process builds the same handshake.
func TestCurveFixtureDeterministic(t *testing.T) {
	a, b := newCurveFixture(t), newCurveFixture(t)
	for i, pair := range [][2][]byte{{a.hello, b.hello}, {a.welcome, b.welcome}, {a.initiate, b.initiate}, {a.ready, b.ready}, {a.message, b.message}} {
		if !bytes.Equal(pair[0], pair[1]) {
			t.Errorf("command %d differs between two fixtures", i)
		}
	}
	if _, _, err := newCurveOpener(&b.srv.shared, false, 2).open(a.message); err != nil {
		t.Errorf("one fixture's MESSAGE does not open in another: %v", err)
	}
}
