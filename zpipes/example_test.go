package zpipes_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/zbroker/zbroker/zmtp"
	"github.com/zbroker/zbroker/zpipes"
)

// exampleBroker starts an in-process broker under a name of its own, as a
// real program would run `zbroker NAME`, and returns the name.
func exampleBroker() (name string, stop func()) {
	name = fmt.Sprintf("example-%d-%x", os.Getpid(), rand.Uint64())
	srv, err := zpipes.Start(zpipes.Options{Name: name, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	return name, func() { srv.Close() }
}

func Example() {
	broker, stop := exampleBroker() // normally: a running `zbroker`
	defer stop()
	ctx := context.Background()

	c, err := zpipes.Dial(ctx, broker)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect()

	if err := c.Open(ctx, "greetings"); err != nil {
		log.Fatal(err)
	}
	for _, s := range []string{"hello", "world"} {
		if err := c.Write(ctx, "greetings", []byte(s)); err != nil {
			log.Fatal(err)
		}
	}
	for range 2 {
		chunk, err := c.Read(ctx, "greetings")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s\n", chunk)
	}
	if err := c.Close(ctx, "greetings"); err != nil {
		log.Fatal(err)
	}
	// Output:
	// hello
	// world
}

// Keep up to 100 WRITEs in flight instead of waiting for each OK.
func ExamplePipeline() {
	broker, stop := exampleBroker()
	defer stop()
	ctx := context.Background()
	c, err := zpipes.Dial(ctx, broker)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect()

	pl := zpipes.NewPipeline(100)
	pl.Add(ctx, c.OpenAsync("numbers"))
	for i := range 10000 {
		if err := pl.Add(ctx, c.WriteAsync("numbers", []byte(fmt.Sprint(i)))); err != nil {
			log.Fatal(err)
		}
	}
	if err := pl.Flush(ctx); err != nil {
		log.Fatal(err)
	}

	last, n := "", 0
	for range 10000 {
		chunk, err := c.Read(ctx, "numbers")
		if err != nil {
			log.Fatal(err)
		}
		last = string(chunk)
		n++
	}
	fmt.Println(n, "chunks, the last one", last)
	// Output: 10000 chunks, the last one 9999
}

// A Writer and a Reader carry a byte stream through a pipe; WithEOS marks
// its end with an empty chunk, as the zpipe command does.
func ExampleNewWriter() {
	broker, stop := exampleBroker()
	defer stop()
	ctx := context.Background()
	producer, err := zpipes.Dial(ctx, broker)
	if err != nil {
		log.Fatal(err)
	}
	defer producer.Disconnect()
	consumer, err := zpipes.Dial(ctx, broker)
	if err != nil {
		log.Fatal(err)
	}
	defer consumer.Disconnect()

	written := make(chan error, 1)
	go func() {
		w := zpipes.NewWriter(producer, "text", zpipes.WithEOS())
		io.Copy(w, strings.NewReader("one stream,\nmany chunks\n"))
		written <- w.Close() // waits for every OK
	}()

	r := zpipes.NewReader(consumer, "text", zpipes.WithEOS())
	defer r.Close()
	if _, err := io.Copy(os.Stdout, r); err != nil { // ends at the EOS chunk
		log.Fatal(err)
	}
	// The EOS chunk can arrive before the writer has its OK.
	if err := <-written; err != nil {
		log.Fatal(err)
	}
	// Output:
	// one stream,
	// many chunks
}

// Refusals by the broker are *BrokerError; the connection stays usable.
func ExampleBrokerError() {
	broker, stop := exampleBroker()
	defer stop()
	ctx := context.Background()
	c, err := zpipes.Dial(ctx, broker)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect()

	err = c.Write(ctx, "not-opened", []byte("data"))
	var be *zpipes.BrokerError
	if errors.As(err, &be) {
		fmt.Println("refused:", be.Reason)
	}
	fmt.Println("still usable:", c.Open(ctx, "not-opened") == nil)
	// Output:
	// refused: pipe not open on this connection
	// still usable: true
}

// A Read that times out is not lost: the next Read of the pipe takes over
// the READ already sent, so chunks arrive once and in order.
func ExampleClient_Read_timeout() {
	broker, stop := exampleBroker()
	defer stop()
	ctx := context.Background()
	c, err := zpipes.Dial(ctx, broker)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect()
	writer, err := zpipes.Dial(ctx, broker)
	if err != nil {
		log.Fatal(err)
	}
	defer writer.Disconnect()
	c.Open(ctx, "jobs")
	writer.Open(ctx, "jobs")

	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	_, err = c.Read(short, "jobs") // nothing there yet
	cancel()
	fmt.Println(err)

	writer.Write(ctx, "jobs", []byte("job 1"))
	writer.Write(ctx, "jobs", []byte("job 2"))
	for range 2 {
		chunk, _ := c.Read(ctx, "jobs")
		fmt.Printf("%s\n", chunk)
	}
	// Output:
	// context deadline exceeded
	// job 1
	// job 2
}

// Dial reports a broker that is not running with ErrNoBroker.
func ExampleDial_noBroker() {
	_, err := zpipes.Dial(context.Background(), fmt.Sprintf("nobody-%x", rand.Uint64()))
	fmt.Println(errors.Is(err, zpipes.ErrNoBroker))
	// Output: true
}

// A client of a broker whose tcp endpoints are on CURVE (docs/curve.md).
func ExampleWithCurve() {
	// The broker's key pair; a real broker reads its secret key with
	// --curve-secret-key-file, and its clients know only the public key.
	brokerPublic, brokerSecret, _ := zmtp.NewCurveKeyPair()
	srv, err := zpipes.Start(zpipes.Options{Endpoint: "tcp://127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Curve: &zmtp.CurveOptions{PublicKey: brokerPublic, SecretKey: brokerSecret}})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	endpoint := srv.Endpoint() // normally: the broker's tcp://HOST:PORT
	ctx := context.Background()

	public, secret, _ := zmtp.NewCurveKeyPair() // or curvekey.LoadSecret("me.key")
	c, err := zpipes.DialEndpoint(ctx, endpoint, zpipes.WithCurve(&zmtp.CurveOptions{
		ServerKey: brokerPublic, // the broker's public key: zmtp.ParseCurveKey("rq:rM>}U?...")
		PublicKey: public,       // our key pair, admitted by --curve-clients
		SecretKey: secret,
	}))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect()
	if err := c.Open(ctx, "secrets"); err != nil {
		log.Fatal(err)
	}
	if err := c.Write(ctx, "secrets", []byte("sent encrypted")); err != nil {
		log.Fatal(err)
	}
	chunk, err := c.Read(ctx, "secrets")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", chunk)
	// Output:
	// sent encrypted
}

// An acknowledging reader: a chunk it has not acknowledged when it goes
// goes to the next reader first. Here it closes the pipe; its process
// dying, or Disconnect, does the same.
func ExampleClient_OpenAck() {
	broker, stop := exampleBroker()
	defer stop()
	ctx := context.Background()
	dial := func() *zpipes.Client {
		c, err := zpipes.Dial(ctx, broker)
		if err != nil {
			log.Fatal(err)
		}
		return c
	}
	w := dial()
	defer w.Disconnect()
	w.Open(ctx, "jobs")
	for _, job := range []string{"job 1", "job 2", "job 3"} {
		if err := w.Write(ctx, "jobs", []byte(job)); err != nil {
			log.Fatal(err)
		}
	}

	worker := dial()
	if err := worker.OpenAck(ctx, "jobs"); err != nil {
		log.Fatal(err) // a broker without the extension: use Open
	}
	for range 2 {
		job, err := worker.Read(ctx, "jobs")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("worker 1 did %s\n", job)
	}
	worker.Ack(ctx, "jobs", 1) // done with job 1 only, then it goes
	worker.Close(ctx, "jobs")
	worker.Disconnect()

	next := dial()
	defer next.Disconnect()
	next.OpenAck(ctx, "jobs")
	for range 2 {
		job, err := next.Read(ctx, "jobs")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("worker 2 did %s\n", job)
	}
	next.Ack(ctx, "jobs", 2)
	// Output:
	// worker 1 did job 1
	// worker 1 did job 2
	// worker 2 did job 2
	// worker 2 did job 3
}
