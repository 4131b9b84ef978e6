package observe

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/zbroker/zbroker/zmtp"
)

// The control endpoint answers `zbroker status` without HTTP. Its
// protocol, over a DEALER (or REQ) socket:
//
//	request:  "STATS" [limit]      limit: decimal, default DefaultLimit
//	reply:    "OK" <Report as JSON>
//	          "ERROR" <reason>
const (
	cmdStats   = "STATS"
	replyOK    = "OK"
	replyError = "ERROR"
)

// ControlEndpoint is the control endpoint of the broker called name.
func ControlEndpoint(name string) string { return "ipc://@/zbroker/" + name + "/control" }

// ControlServer answers STATS requests on the control endpoint.
type ControlServer struct {
	sock    *zmtp.Socket
	stopped chan struct{}
}

// ListenControl binds endpoint and answers requests in the background.
// opts.Guard decides who may connect, as for the services' endpoints.
func ListenControl(endpoint string, b *Broker, opts zmtp.Options) (*ControlServer, error) {
	opts.SocketType = "ROUTER"
	opts.MaxMessageSize, opts.MaxFrames = 1024, 4
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	sock, err := zmtp.Listen(endpoint, opts)
	if err != nil {
		return nil, err
	}
	c := &ControlServer{sock: sock, stopped: make(chan struct{})}
	go c.run(b)
	return c, nil
}

// Endpoint is where the control endpoint listens.
func (c *ControlServer) Endpoint() string { return c.sock.Endpoint() }

// Close stops answering.
func (c *ControlServer) Close() {
	c.sock.Close()
	<-c.stopped
}

// run answers one request at a time: a report takes milliseconds, and
// one at a time bounds what a flood of requests can cost the services.
func (c *ControlServer) run(b *Broker) {
	defer close(c.stopped)
	for batch := range c.sock.Events() {
		for _, ev := range batch.Events {
			if ev.Type != zmtp.Message {
				continue
			}
			env, req := ev.Frames[:0], ev.Frames
			if ev.Conn.PeerType() == "REQ" && len(req) > 0 && len(req[0]) == 0 {
				env, req = req[:1], req[1:]
			}
			ev.Conn.Send(append(env[:len(env):len(env)], answer(b, req)...))
		}
		batch.Release()
	}
}

func answer(b *Broker, req [][]byte) [][]byte {
	fail := func(reason string) [][]byte { return [][]byte{[]byte(replyError), []byte(reason)} }
	if len(req) == 0 || string(req[0]) != cmdStats || len(req) > 2 {
		return fail(`unknown request: want "STATS" [limit]`)
	}
	limit := DefaultLimit
	if len(req) == 2 {
		n, err := strconv.Atoi(string(req[1]))
		if err != nil || n < 0 || n > maxListed {
			return fail(fmt.Sprintf("limit: want a number from 0 to %d", maxListed))
		}
		limit = n
	}
	js, err := json.Marshal(b.Report(context.Background(), limit))
	if err != nil {
		return fail(err.Error())
	}
	return [][]byte{[]byte(replyOK), js}
}

// QueryControl asks the broker at a control endpoint for a Report, listing
// at most limit pipes, services and connections per service. On ipc the
// broker must run as our uid, root or brokerUID (if not 0).
func QueryControl(ctx context.Context, endpoint string, limit, brokerUID int) (Report, error) {
	var r Report
	conn, err := zmtp.Dial(ctx, endpoint, zmtp.Options{SocketType: "DEALER", MaxMessageSize: 256 << 20, BrokerUID: brokerUID})
	if err != nil {
		return r, err
	}
	defer conn.Close()
	if err := conn.Send([][]byte{[]byte(cmdStats), []byte(strconv.Itoa(limit))}); err != nil {
		return r, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	reply, err := conn.Recv()
	if err != nil {
		if ctx.Err() != nil {
			return r, fmt.Errorf("%s: no answer: %w", endpoint, ctx.Err())
		}
		return r, err
	}
	switch {
	case len(reply) == 2 && string(reply[0]) == replyOK:
		if err := json.Unmarshal(reply[1], &r); err != nil {
			return r, fmt.Errorf("%s: bad reply: %w", endpoint, err)
		}
		return r, nil
	case len(reply) == 2 && string(reply[0]) == replyError:
		return r, fmt.Errorf("%s: %s", endpoint, reply[1])
	}
	return r, fmt.Errorf("%s: unexpected reply of %d frames", endpoint, len(reply))
}
