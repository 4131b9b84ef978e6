package zmtp

import (
	"bufio"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
	"golang.org/x/crypto/nacl/secretbox"
)

// The CURVE mechanism: ZMTP-CURVE (ZeroMQ RFC 25) carrying the CurveZMQ
// handshake and message boxes (RFC 26). The cryptography is NaCl's box
// and secretbox from golang.org/x/crypto; this file only lays out bytes.

// CurveKey is a Curve25519 key, public or secret.
type CurveKey [32]byte

// String is the key in Z85, as libzmq and czmq write keys.
func (k CurveKey) String() string {
	s, _ := Z85Encode(k[:])
	return s
}

// ParseCurveKey decodes a key written as 40 Z85 characters.
func ParseCurveKey(s string) (CurveKey, error) {
	var k CurveKey
	if len(s) != 40 {
		return k, fmt.Errorf("zmtp: a CURVE key is 40 Z85 characters, got %d", len(s))
	}
	b, err := Z85Decode(s)
	if err != nil {
		return k, err
	}
	copy(k[:], b)
	return k, nil
}

// NewCurveKeyPair makes a new long-term key pair (libzmq's
// zmq_curve_keypair).
func NewCurveKeyPair() (public, secret CurveKey, err error) {
	pub, sec, err := box.GenerateKey(rand.Reader)
	if err != nil {
		return public, secret, err
	}
	return *pub, *sec, nil
}

// CurvePublicKey derives the public key of a secret key (libzmq's
// zmq_curve_public).
func CurvePublicKey(secret CurveKey) (CurveKey, error) {
	var k CurveKey
	p, err := curve25519.X25519(secret[:], curve25519.Basepoint)
	if err != nil {
		return k, fmt.Errorf("zmtp: unusable CURVE secret key: %w", err)
	}
	copy(k[:], p)
	return k, nil
}

// CurveOptions switch a Socket or a dialed Conn from NULL to CURVE. A
// listening Socket is the CURVE server, a dialed Conn the client.
type CurveOptions struct {
	// PublicKey and SecretKey are our long-term key pair.
	PublicKey, SecretKey CurveKey
	// ServerKey is, for Dial, the long-term public key of the server.
	ServerKey CurveKey
	// Authorize, for a Socket, decides whether a client that proved it
	// holds the secret of this long-term public key may connect. nil
	// admits every client that knows the server's key.
	Authorize func(client CurveKey) error
}

// ForEndpoint is o for a tcp endpoint and nil (NULL) for any other: it is
// zbroker's rule that CURVE guards tcp, while ipc peers are checked by
// their credentials. o may be nil.
func (o *CurveOptions) ForEndpoint(endpoint string) *CurveOptions {
	if o == nil || !strings.HasPrefix(endpoint, "tcp://") {
		return nil
	}
	return o
}

// withClientKey adds the CURVE client key, if any, to log attributes.
func withClientKey(k *CurveKey, attrs ...any) []any {
	if k != nil {
		attrs = append(attrs, "client_key", k.String())
	}
	return attrs
}

// ErrCurveRefused wraps the Authorize error of a refused client.
var ErrCurveRefused = errors.New("zmtp: CURVE client key refused")

const (
	helloSize      = 2 + 72 + 32 + 8 + 80 // data of HELLO: version, padding, C', nonce, box
	welcomeSize    = 16 + 144             // long nonce, box of S' and cookie
	cookieSize     = 16 + 80              // long nonce, secretbox of C' and s'
	initiateMin    = cookieSize + 8 + box.Overhead + 32 + 16 + 80
	readyMin       = 8 + box.Overhead
	messageCommand = "\x07MESSAGE"
	// curveFrameOverhead is what a MESSAGE adds to the frame it carries:
	// its name, a short nonce, the box's tag and the flags byte.
	curveFrameOverhead = len(messageCommand) + 8 + box.Overhead + 1
)

// Inner flags of a MESSAGE box (libzmq's msg_t flags). The outer frame is
// an ordinary frame without MORE, as libzmq sends it.
const (
	curveMore    = 0x01
	curveCommand = 0x02
)

func nonce(prefix string, tail []byte) *[24]byte {
	var n [24]byte
	copy(n[:], prefix)
	copy(n[len(prefix):], tail)
	return &n
}

func shortNonce(prefix string, v uint64) *[24]byte {
	var n [24]byte
	copy(n[:], prefix)
	binary.BigEndian.PutUint64(n[16:], v)
	return &n
}

// randSource is where a handshake takes its keys and nonces: crypto/rand,
// or a fixed stream when a fuzz test needs the same handshake in every
// process.
type randSource struct{ r io.Reader }

func (s randSource) reader() io.Reader {
	if s.r == nil {
		return rand.Reader
	}
	return s.r
}

func (s randSource) bytes(n int) []byte {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.reader(), b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return b
}

func (s randSource) transientKeys() (pub, sec CurveKey) {
	p, k, err := box.GenerateKey(s.reader())
	if err != nil {
		panic(err)
	}
	return *p, *k
}

func (k *CurveKey) p() *[32]byte { return (*[32]byte)(k) }

// curveServer is the server's side of one CurveZMQ handshake.
type curveServer struct {
	cfg            *CurveOptions
	rand           randSource
	clientTmp      CurveKey // C'
	tmpPub, tmpSec CurveKey // S', s'
	cookieKey      [32]byte
	shared         [32]byte // box key of C' and s'
	helloNonce     uint64
}

// onHello checks a HELLO and returns the WELCOME to send.
func (s *curveServer) onHello(data []byte) ([]byte, error) {
	if len(data) != helloSize {
		return nil, protoErr("CURVE HELLO of %d bytes, want %d", len(data), helloSize)
	}
	if data[0] != 1 || data[1] != 0 {
		return nil, protoErr("CURVE version %d.%d not supported (need 1.0)", data[0], data[1])
	}
	copy(s.clientTmp[:], data[74:106])
	s.helloNonce = binary.BigEndian.Uint64(data[106:114])
	sig, ok := box.Open(nil, data[114:], nonce("CurveZMQHELLO---", data[106:114]), s.clientTmp.p(), s.cfg.SecretKey.p())
	if !ok {
		return nil, protoErr("cannot open the CURVE HELLO box: the client expects another server key")
	}
	if subtle.ConstantTimeCompare(sig, make([]byte, 64)) != 1 {
		return nil, protoErr("CURVE HELLO signature is not zero")
	}
	s.tmpPub, s.tmpSec = s.rand.transientKeys()
	copy(s.cookieKey[:], s.rand.bytes(32))
	box.Precompute(&s.shared, s.clientTmp.p(), s.tmpSec.p())

	cookieNonce := s.rand.bytes(16)
	cookie := secretbox.Seal(cookieNonce, append(s.clientTmp[:], s.tmpSec[:]...), nonce("COOKIE--", cookieNonce), &s.cookieKey)
	welcomeNonce := s.rand.bytes(16)
	plain := append(s.tmpPub[:], cookie...)
	data = box.Seal(welcomeNonce, plain, nonce("WELCOME-", welcomeNonce), s.clientTmp.p(), s.cfg.SecretKey.p())
	return appendCommand(nil, "WELCOME", data), nil
}

// onInitiate checks an INITIATE and returns the client's long-term key,
// its metadata and the INITIATE's short nonce.
func (s *curveServer) onInitiate(data []byte) (client CurveKey, md []byte, n uint64, err error) {
	if len(data) < initiateMin {
		return client, nil, 0, protoErr("CURVE INITIATE of %d bytes, want at least %d", len(data), initiateMin)
	}
	cookie, ok := secretbox.Open(nil, data[16:cookieSize], nonce("COOKIE--", data[:16]), &s.cookieKey)
	if !ok || subtle.ConstantTimeCompare(cookie, append(s.clientTmp[:], s.tmpSec[:]...)) != 1 {
		return client, nil, 0, protoErr("CURVE INITIATE carries a bad cookie")
	}
	n = binary.BigEndian.Uint64(data[cookieSize:])
	if n <= s.helloNonce {
		return client, nil, 0, protoErr("CURVE INITIATE nonce %d not above HELLO's %d", n, s.helloNonce)
	}
	plain, ok := box.OpenAfterPrecomputation(nil, data[cookieSize+8:], nonce("CurveZMQINITIATE", data[cookieSize:cookieSize+8]), &s.shared)
	if !ok {
		return client, nil, 0, protoErr("cannot open the CURVE INITIATE box")
	}
	copy(client[:], plain[:32])
	vouch, ok := box.Open(nil, plain[48:128], nonce("VOUCH---", plain[32:48]), client.p(), s.tmpSec.p())
	if !ok {
		return client, nil, 0, protoErr("cannot open the CURVE vouch of client %s", client)
	}
	if subtle.ConstantTimeCompare(vouch, append(s.clientTmp[:], s.cfg.PublicKey[:]...)) != 1 {
		return client, nil, 0, protoErr("CURVE vouch of client %s names other keys", client)
	}
	return client, plain[128:], n, nil
}

// ready builds the READY (short nonce 1) carrying our metadata.
func (s *curveServer) ready(md []byte) []byte {
	const n = 1
	data := binary.BigEndian.AppendUint64(nil, n)
	data = box.SealAfterPrecomputation(data, md, shortNonce("CurveZMQREADY---", n), &s.shared)
	return appendCommand(nil, "READY", data)
}

// curveClient is the client's side of one CurveZMQ handshake.
type curveClient struct {
	cfg            *CurveOptions
	rand           randSource
	tmpPub, tmpSec CurveKey // C', c'
	shared         [32]byte // box key of S' and c'
}

// hello builds the HELLO (short nonce 1).
func (c *curveClient) hello() []byte {
	c.tmpPub, c.tmpSec = c.rand.transientKeys()
	data := make([]byte, 0, helloSize)
	data = append(data, 1, 0)
	data = append(data, make([]byte, 72)...)
	data = append(data, c.tmpPub[:]...)
	data = binary.BigEndian.AppendUint64(data, 1)
	data = box.Seal(data, make([]byte, 64), shortNonce("CurveZMQHELLO---", 1), c.cfg.ServerKey.p(), c.tmpSec.p())
	return appendCommand(nil, "HELLO", data)
}

// onWelcome checks a WELCOME and returns the INITIATE (short nonce 2)
// carrying our metadata.
func (c *curveClient) onWelcome(data, md []byte) ([]byte, error) {
	if len(data) != welcomeSize {
		return nil, protoErr("CURVE WELCOME of %d bytes, want %d", len(data), welcomeSize)
	}
	plain, ok := box.Open(nil, data[16:], nonce("WELCOME-", data[:16]), c.cfg.ServerKey.p(), c.tmpSec.p())
	if !ok {
		return nil, protoErr("cannot open the CURVE WELCOME box: the server does not hold the key we expect")
	}
	var serverTmp CurveKey
	copy(serverTmp[:], plain[:32])
	box.Precompute(&c.shared, serverTmp.p(), c.tmpSec.p())

	vouchNonce := c.rand.bytes(16)
	vouch := box.Seal(vouchNonce, append(c.tmpPub[:], c.cfg.ServerKey[:]...), nonce("VOUCH---", vouchNonce), serverTmp.p(), c.cfg.SecretKey.p())
	inner := make([]byte, 0, 32+len(vouch)+len(md))
	inner = append(append(append(inner, c.cfg.PublicKey[:]...), vouch...), md...)
	const n = 2
	out := append(make([]byte, 0, cookieSize+8+box.Overhead+len(inner)), plain[32:]...) // the cookie
	out = binary.BigEndian.AppendUint64(out, n)
	out = box.SealAfterPrecomputation(out, inner, shortNonce("CurveZMQINITIATE", n), &c.shared)
	return appendCommand(nil, "INITIATE", out), nil
}

// onReady opens a READY and returns the server's metadata and nonce.
func (c *curveClient) onReady(data []byte) (md []byte, n uint64, err error) {
	if len(data) < readyMin {
		return nil, 0, protoErr("CURVE READY of %d bytes, want at least %d", len(data), readyMin)
	}
	md, ok := box.OpenAfterPrecomputation(nil, data[8:], nonce("CurveZMQREADY---", data[:8]), &c.shared)
	if !ok {
		return nil, 0, protoErr("cannot open the CURVE READY box")
	}
	return md, binary.BigEndian.Uint64(data[:8]), nil
}

// curveSealer boxes outgoing frames; the writer goroutine owns it.
type curveSealer struct {
	shared [32]byte
	nonce  [24]byte // prefix, then the last short nonce used
	last   uint64
	plain  []byte // scratch: flags byte and frame body
}

func newCurveSealer(shared *[32]byte, asServer bool, last uint64) *curveSealer {
	s := &curveSealer{shared: *shared, last: last}
	copy(s.nonce[:], messagePrefix(asServer))
	return s
}

func messagePrefix(fromServer bool) string {
	if fromServer {
		return "CurveZMQMESSAGES"
	}
	return "CurveZMQMESSAGEC"
}

// appendFrame appends body boxed in a MESSAGE frame. A command (the
// inner COMMAND flag set) has its name prepended inside the box.
func (s *curveSealer) appendFrame(dst []byte, inner byte, command string, body []byte) []byte {
	plain := s.plain[:0]
	var pooled *[]byte
	if len(body) > scratchKeep {
		pooled = getBuf(1 + len(body))
		plain = *pooled
	}
	plain = append(plain, inner)
	if command != "" {
		plain = append(plain, byte(len(command)))
		plain = append(plain, command...)
	}
	plain = append(plain, body...)
	s.last++
	binary.BigEndian.PutUint64(s.nonce[16:], s.last)
	dst = appendFrameHeader(dst, 0, len(messageCommand)+8+box.Overhead+len(plain))
	dst = append(dst, messageCommand...)
	dst = append(dst, s.nonce[16:]...)
	dst = box.SealAfterPrecomputation(dst, plain, &s.nonce, &s.shared)
	if pooled != nil {
		*pooled = plain
		putBuf(pooled)
	} else {
		s.plain = plain
	}
	return dst
}

// scratchKeep is the largest scratch buffer a connection keeps for itself
// between frames; larger ones come from bigBufs and go back, so an idle
// connection holds little memory whatever it once carried.
const scratchKeep = 8 << 10

// bigBufs recycles the buffers of large frames among all connections.
// They travel as pointers, which sync.Pool stores without allocating.
var bigBufs sync.Pool // of *[]byte

// getBuf returns a buffer, empty, of capacity n or more.
func getBuf(n int) *[]byte {
	p, _ := bigBufs.Get().(*[]byte)
	if p == nil {
		p = new([]byte)
	}
	if cap(*p) < n {
		*p = make([]byte, 0, max(n, 64<<10))
	}
	*p = (*p)[:0]
	return p
}

// putBuf gives p back to bigBufs, unless its buffer is huge.
func putBuf(p *[]byte) {
	if cap(*p) <= 4<<20 {
		bigBufs.Put(p)
	}
}

// curveOpener opens incoming MESSAGE frames; the reader goroutine owns it.
type curveOpener struct {
	shared [32]byte
	prefix string
	last   uint64 // nonces must strictly increase
	buf    []byte // scratch for the boxed frame
}

func newCurveOpener(shared *[32]byte, fromServer bool, last uint64) *curveOpener {
	return &curveOpener{shared: *shared, prefix: messagePrefix(fromServer), last: last}
}

// open checks and opens one MESSAGE frame body and returns the frame it
// carries with ZMTP frame flags (flagMore, flagCommand).
func (o *curveOpener) open(msg []byte) (flags byte, body []byte, err error) {
	if len(msg) < curveFrameOverhead || string(msg[:len(messageCommand)]) != messageCommand {
		return 0, nil, protoErr("expected a CURVE MESSAGE")
	}
	nb := msg[len(messageCommand) : len(messageCommand)+8]
	plain, ok := box.OpenAfterPrecomputation(make([]byte, 0, len(msg)-len(messageCommand)-8-box.Overhead),
		msg[len(messageCommand)+8:], nonce(o.prefix, nb), &o.shared)
	if !ok {
		return 0, nil, protoErr("cannot open a CURVE MESSAGE box")
	}
	n := binary.BigEndian.Uint64(nb)
	if n <= o.last {
		return 0, nil, protoErr("CURVE MESSAGE nonce %d not above %d: replayed or reordered", n, o.last)
	}
	o.last = n
	if plain[0]&curveMore != 0 {
		flags |= flagMore
	}
	if plain[0]&curveCommand != 0 {
		flags |= flagCommand
		if flags&flagMore != 0 {
			return 0, nil, protoErr("command frame with MORE flag")
		}
	}
	return flags, plain[1:], nil
}

// readFrame reads one frame under CURVE: a boxed MESSAGE.
func (o *curveOpener) readFrame(br *bufio.Reader, budget int64, mem frameMemory) (flags byte, body []byte, err error) {
	_, msg, err := readFrameInto(br, budget+int64(curveFrameOverhead), o.buf, mem)
	if err != nil {
		return 0, nil, err
	}
	flags, body, err = o.open(msg)
	if cap(msg) <= scratchKeep {
		o.buf = msg[:0]
	} else {
		Recycle(msg) // opened into a buffer of its own: nobody holds msg
	}
	return flags, body, err
}

// curveHandshake runs the CURVE commands after the greetings. ours is our
// metadata; accept checks the peer's (a refused client gets an ERROR).
func curveHandshake(nc net.Conn, br *bufio.Reader, cfg *CurveOptions, asServer bool, ours []byte, accept func(metadata) error) (r mechResult, err error) {
	if asServer {
		return curveServerHandshake(nc, br, cfg, ours, accept)
	}
	c := &curveClient{cfg: cfg}
	if _, err = nc.Write(c.hello()); err != nil {
		return r, err
	}
	data, err := readCommand(br, "WELCOME")
	if err != nil {
		return r, err
	}
	initiate, err := c.onWelcome(data, ours)
	if err != nil {
		return r, err
	}
	if _, err = nc.Write(initiate); err != nil {
		return r, err
	}
	if data, err = readCommand(br, "READY"); err != nil {
		return r, err
	}
	md, n, err := c.onReady(data)
	if err != nil {
		return r, err
	}
	key := cfg.ServerKey
	r.peerKey = &key
	if r.md, err = parseMetadata(md); err != nil {
		return r, err
	}
	if err = accept(r.md); err != nil {
		return r, err
	}
	r.sealer = newCurveSealer(&c.shared, false, 2)
	r.opener = newCurveOpener(&c.shared, true, n)
	return r, nil
}

func curveServerHandshake(nc net.Conn, br *bufio.Reader, cfg *CurveOptions, ours []byte, accept func(metadata) error) (r mechResult, err error) {
	s := &curveServer{cfg: cfg}
	data, err := readCommand(br, "HELLO")
	if err != nil {
		return r, err
	}
	welcome, err := s.onHello(data)
	if err != nil {
		return r, err // no reply: the client has not shown it knows our key
	}
	if _, err = nc.Write(welcome); err != nil {
		return r, err
	}
	if data, err = readCommand(br, "INITIATE"); err != nil {
		return r, err
	}
	client, md, n, err := s.onInitiate(data)
	if err != nil {
		return r, err
	}
	r.peerKey = &client
	if cfg.Authorize != nil {
		if err := cfg.Authorize(client); err != nil {
			// "400" is the ZAP status libzmq reports to the client's
			// monitor as an authentication failure.
			nc.Write(errorCommand("400"))
			return r, fmt.Errorf("%w: %s: %v", ErrCurveRefused, client, err)
		}
	}
	if r.md, err = parseMetadata(md); err != nil {
		return r, err
	}
	if err = accept(r.md); err != nil {
		nc.Write(errorCommand(reasonOf(err)))
		return r, err
	}
	if _, err = nc.Write(s.ready(ours)); err != nil {
		return r, err
	}
	r.sealer = newCurveSealer(&s.shared, true, 1)
	r.opener = newCurveOpener(&s.shared, false, n)
	return r, nil
}
