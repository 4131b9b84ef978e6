package majordomo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/zbroker/zbroker/zmtp"
)

// ErrTimeout is returned by Call and Stream when no reply came within the
// timeout on any attempt.
var ErrTimeout = errors.New("majordomo: no reply within the timeout")

// ClientOptions configure a Client. Zero fields take their defaults.
type ClientOptions struct {
	// Version of MDP to speak: V1 (default) or V2.
	Version Version
	// Timeout is how long Call waits for a reply on one attempt (with V2,
	// also the longest gap between PARTIALs). Default 2500 ms.
	Timeout time.Duration
	// Retries is how many times Call resends a request after a timeout,
	// each time on a new connection as the specs recommend. Default 3;
	// -1 for none.
	Retries int
	Logger  *slog.Logger
	// BrokerUID is the uid the broker must run as on ipc (root is always
	// trusted); default our own. Another uid is refused with a
	// *zmtp.UntrustedBrokerError: it may be a squatter on the name.
	BrokerUID int
	// Curve, for a tcp endpoint, connects with CURVE (docs/curve.md):
	// the broker's public key in ServerKey and our key pair. It is not
	// used on ipc, where the broker speaks NULL.
	Curve *zmtp.CurveOptions
}

// Client talks MDP/Client to a broker over one DEALER connection, made on
// first use and remade after a timeout or a lost connection.
//
// Use either the synchronous Call/Stream or the asynchronous Send/Recv on
// one Client, not both at once. A Client is not safe for concurrent use:
// MDP replies carry no request id, so use one Client per goroutine.
type Client struct {
	endpoint string
	opts     ClientOptions
	log      *slog.Logger
	conn     *zmtp.Conn
	in       chan inbound
	done     chan struct{}
	// optIns counts MMIFailures answers still owed on this connection,
	// which Recv must not return as replies.
	optIns int
	// service and serviceBytes are the last service named, kept so that
	// requests to it share one (never modified) frame and replies from
	// it one string.
	service      string
	serviceBytes []byte
	// lists holds the frame lists of requests made with Send, and
	// counts every message sent on conn.
	lists sentLists
}

// serviceFrame returns service as a frame, shared between the requests
// to the same service.
func (c *Client) serviceFrame(service string) []byte {
	if c.serviceBytes == nil || service != c.service {
		c.service, c.serviceBytes = service, []byte(service)
	}
	return c.serviceBytes
}

// serviceName returns the service frame of a reply as a string.
func (c *Client) serviceName(f []byte) string {
	if c.serviceBytes != nil && string(f) == c.service {
		return c.service
	}
	return string(f)
}

type inbound struct {
	frames [][]byte
	err    error
}

// Reply is one message from the broker to a client.
type Reply struct {
	// Service is the service that answered (the one requested).
	Service string
	Body    [][]byte
	// Final is false for an MDP/0.2 PARTIAL; more replies follow.
	Final bool
}

// NewClient returns a client of the broker at endpoint. It connects
// lazily.
func NewClient(endpoint string, opts ClientOptions) (*Client, error) {
	if opts.Version == 0 {
		opts.Version = V1
	}
	if !opts.Version.valid() {
		return nil, fmt.Errorf("majordomo: unknown protocol version %d", int(opts.Version))
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2500 * time.Millisecond
	}
	if opts.Retries == 0 {
		opts.Retries = 3
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Client{endpoint: endpoint, opts: opts, log: opts.Logger.With("mdp", "client")}, nil
}

// Close closes the connection, if any.
func (c *Client) Close() error {
	c.reset()
	return nil
}

func (c *Client) reset() {
	if c.conn != nil {
		c.conn.Close()
		close(c.done)
		c.conn, c.in, c.done, c.optIns = nil, nil, nil, 0
		c.lists.reset()
	}
}

func (c *Client) connect(ctx context.Context) error {
	if c.conn != nil {
		return nil
	}
	conn, err := zmtp.Dial(ctx, c.endpoint, zmtp.Options{SocketType: "DEALER", Logger: c.opts.Logger, BrokerUID: c.opts.BrokerUID, Curve: c.opts.Curve.ForEndpoint(c.endpoint)})
	if err != nil {
		return err
	}
	// Ask for failure replies before anything else; the broker reads the
	// connection in order, so no round trip is needed.
	if err := conn.Send(encodeClientRequest(c.opts.Version, MMIFailures, [][]byte{[]byte("on")})); err != nil {
		conn.Close()
		return err
	}
	c.lists.note(nil)
	in, done := make(chan inbound, 16), make(chan struct{})
	go func() {
		for {
			f, err := conn.Recv()
			select {
			case in <- inbound{frames: f, err: err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	c.conn, c.in, c.done, c.optIns = conn, in, done, 1
	return nil
}

func fixBody(body [][]byte) [][]byte {
	if len(body) == 0 {
		return [][]byte{{}} // MDP requires at least one body frame
	}
	return body
}

// Call sends a request to service and waits for its reply. On a timeout
// it reconnects and resends, up to Retries times. A failure reply from the
// broker is returned as a *ServiceError. With V2, PARTIALs are dropped
// and the FINAL's body returned; use Stream to see them.
func (c *Client) Call(ctx context.Context, service string, body ...[]byte) ([][]byte, error) {
	return c.Stream(ctx, service, body, nil)
}

// Stream is Call that passes each MDP/0.2 PARTIAL reply's body to partial,
// in order, before returning the FINAL's body. Once a PARTIAL has arrived
// the request is not resent (that would repeat the stream); a later
// timeout returns ErrTimeout.
func (c *Client) Stream(ctx context.Context, service string, body [][]byte, partial func([][]byte)) ([][]byte, error) {
	req := encodeClientRequestFrame(c.opts.Version, c.serviceFrame(service), fixBody(body))
	var lastErr error
	attempts := 1 + c.opts.Retries
	for a := 0; a < attempts; a++ {
		got, err, retry := c.attempt(ctx, req, service, partial)
		if !retry {
			return got, err
		}
		lastErr = err
		c.log.Debug("no reply, retrying", "service", service, "attempt", a+1, "err", err)
	}
	return nil, fmt.Errorf("majordomo: %s: no reply after %d attempts: %w", service, attempts, lastErr)
}

func (c *Client) attempt(ctx context.Context, req [][]byte, service string, partial func([][]byte)) (body [][]byte, err error, retry bool) {
	timer := time.NewTimer(c.opts.Timeout)
	defer timer.Stop()
	actx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	if c.conn != nil {
		// Nothing is owed on an idle connection: anything waiting is its
		// end (the broker restarted since the last call) or a stray.
		select {
		case in := <-c.in:
			if in.err != nil {
				c.reset()
			}
		default:
		}
	}
	err = c.connect(actx)
	if err == nil {
		if err = c.conn.Send(req); err != nil {
			// Died unnoticed since the last call: a fresh connection
			// now, not a whole timeout later.
			c.reset()
			if err = c.connect(actx); err == nil {
				err = c.conn.Send(req)
			}
		}
		if err == nil {
			c.lists.note(nil)
		}
	}
	cancel()
	if err != nil {
		c.reset()
		if ctx.Err() != nil {
			return nil, ctx.Err(), false
		}
		// Broker not there (yet): this attempt lasts its full timeout.
		select {
		case <-ctx.Done():
			return nil, ctx.Err(), false
		case <-timer.C:
			return nil, err, true
		}
	}
	streaming := false
	for {
		select {
		case <-ctx.Done():
			c.reset()
			return nil, ctx.Err(), false
		case <-timer.C:
			c.reset() // a late reply must not be taken for the next one
			return nil, ErrTimeout, !streaming
		case in := <-c.in:
			if in.err != nil {
				c.reset()
				if streaming {
					return nil, in.err, false
				}
				// Lost the broker: wait out the attempt, then resend.
				select {
				case <-ctx.Done():
					return nil, ctx.Err(), false
				case <-timer.C:
					return nil, in.err, true
				}
			}
			m, perr := parseForClient(c.opts.Version, in.frames)
			if perr != nil {
				c.log.Warn("malformed reply dropped", "reason", perr.reason)
				continue
			}
			if fe := failureOf(&m); fe != nil {
				if fe.Service == service {
					return nil, fe, false
				}
				continue
			}
			if string(m.service) != service {
				if c.optIns > 0 && string(m.service) == MMIFailures {
					c.optIns--
				} else {
					c.log.Debug("reply for another service dropped", "service", printable(m.service))
				}
				continue
			}
			if m.kind == kClientPartial {
				streaming = true
				if partial != nil {
					partial(cloneList(m.body))
				}
				timer.Reset(c.opts.Timeout)
				continue
			}
			return cloneList(m.body), nil, false
		}
	}
}

// Send sends a request without waiting for its reply; collect replies
// with Recv. Requests on one connection may be answered in any order.
func (c *Client) Send(ctx context.Context, service string, body ...[]byte) error {
	if err := c.connect(ctx); err != nil {
		return err
	}
	body = fixBody(body)
	req := appendClientRequest(c.lists.take(c.conn, clientRequestLen(body)), c.opts.Version, c.serviceFrame(service), body)
	if err := c.conn.Send(req); err != nil {
		c.reset()
		return err
	}
	c.lists.note(req)
	return nil
}

// Recv returns the next reply to a request made with Send. A failure
// reply is returned as a *ServiceError together with a Reply naming the
// service. If the connection is lost Recv returns its error; replies owed
// on it will not come, and the next Send reconnects.
func (c *Client) Recv(ctx context.Context) (Reply, error) {
	if c.conn == nil {
		return Reply{}, errors.New("majordomo: Recv without a connection (Send first)")
	}
	for {
		var in inbound
		// A reply already waiting needs no two-way select.
		select {
		case in = <-c.in:
		default:
			select {
			case <-ctx.Done():
				return Reply{}, ctx.Err()
			case in = <-c.in:
			}
		}
		if in.err != nil {
			c.reset()
			return Reply{}, in.err
		}
		m, perr := parseForClient(c.opts.Version, in.frames)
		if perr != nil {
			c.log.Warn("malformed reply dropped", "reason", perr.reason)
			continue
		}
		if fe := failureOf(&m); fe != nil {
			return Reply{Service: fe.Service, Final: true}, fe
		}
		if c.optIns > 0 && string(m.service) == MMIFailures {
			c.optIns--
			continue
		}
		return Reply{Service: c.serviceName(m.service), Body: cloneList(m.body), Final: m.kind == kFinal}, nil
	}
}
