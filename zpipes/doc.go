// Package zpipes is the named-pipes service of zbroker: pipes of binary
// chunks between processes, with many writers and one reader per pipe,
// spoken over ZeroMQ. The package holds both sides, like the Majordomo
// and Clone packages: the broker (Start, Server, the Store seam its
// backends implement) and the Go client (Dial, Client). docs/zpipes.md
// has the wire protocol and the guarantees.
//
// # Client
//
// A Client is one connection to a broker. Its synchronous methods Open,
// Write, Read and Close send one command each and wait for the reply;
// errors the broker reports are *BrokerError, distinct from the
// connection's errors (ErrNoBroker, ErrConnectionLost, ErrClosed,
// ErrProtocol):
//
//	c, err := zpipes.Dial(ctx, "default") // ipc://@/zpipes/default
//	if err != nil {
//		return err // errors.Is(err, zpipes.ErrNoBroker) if it is not running
//	}
//	defer c.Disconnect()
//	if err := c.Open(ctx, "jobs"); err != nil {
//		return err
//	}
//	if err := c.Write(ctx, "jobs", []byte("hello")); err != nil {
//		return err
//	}
//	chunk, err := c.Read(ctx, "jobs") // waits for a chunk
//
// # Pipelining
//
// The broker answers the commands of a connection in order, so a client
// may send many commands before collecting the replies. The Async methods
// (WriteAsync, ReadAsync, OpenAsync, CloseAsync) send a command and return
// a *Pending at once; a single goroutine per Client receives the replies
// and completes the Pendings in order. A Pipeline keeps a bounded window
// of them in flight and remembers the first error:
//
//	pl := zpipes.NewPipeline(256)
//	for _, chunk := range chunks {
//		if err := pl.Add(ctx, c.WriteAsync("jobs", chunk)); err != nil {
//			return err
//		}
//	}
//	err = pl.Flush(ctx) // all acknowledged, or the first error
//
// # Cancellation
//
// Commands cannot be withdrawn once sent. When the context of a
// synchronous call ends first, the call returns ctx.Err() but its reply is
// still received and discarded, so later replies stay matched to their
// commands. A cancelled WRITE may still be carried out, and a cancelled
// READ still takes a chunk out of the pipe; the Client keeps that READ and
// hands its chunk to the next Read of the same pipe (see Client.Read).
//
// # Streams
//
// NewWriter and NewReader adapt a pipe to io.Writer and io.Reader: each
// Write is one chunk, with a window of WRITEs in flight, and the Reader
// serves the chunks' bytes as one stream. Pipes have no end; with
// WithEOS both sides use the convention of the zpipe command, where an
// empty chunk marks the end of a stream:
//
//	w := zpipes.NewWriter(c, "logs", zpipes.WithEOS())
//	io.Copy(w, file)
//	err := w.Close() // sends the end-of-stream chunk, waits for every OK
//
//	r := zpipes.NewReader(c2, "logs", zpipes.WithEOS())
//	io.Copy(os.Stdout, r) // returns at the end-of-stream chunk
//	r.Close()
package zpipes
