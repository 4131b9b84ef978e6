package majordomo_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"os"

	"github.com/zbroker/zbroker/majordomo"
)

// exampleBroker starts an in-process broker under a name of its own, as a
// real program would run `zbroker NAME`, and returns its endpoint.
func exampleBroker() (endpoint string, stop func()) {
	name := fmt.Sprintf("example-%d-%x", os.Getpid(), rand.Uint64())
	srv, err := majordomo.Start(majordomo.Options{Name: name, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	return srv.Endpoint(), func() { srv.Close() }
}

// A worker serving "echo" and a client calling it, over MDP/0.2.
func Example() {
	endpoint, stop := exampleBroker() // normally: majordomo.Endpoint("default")
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	w, err := majordomo.NewWorker(endpoint, "echo",
		func(ctx context.Context, req *majordomo.Request) [][]byte {
			req.Partial([]byte("working")) // MDP/0.2 only: a PARTIAL reply
			return req.Body                // the FINAL reply
		}, majordomo.WorkerOptions{Version: majordomo.V2})
	if err != nil {
		log.Fatal(err)
	}
	go w.Run(ctx) // heartbeats, reconnects with backoff, DISCONNECT on return

	c, err := majordomo.NewClient(endpoint, majordomo.ClientOptions{Version: majordomo.V2})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	final, err := c.Stream(ctx, "echo", [][]byte{[]byte("hello")}, func(partial [][]byte) {
		fmt.Printf("partial: %s\n", partial[0])
	})
	if err != nil { // a *majordomo.ServiceError for a failure reply
		log.Fatal(err)
	}
	fmt.Printf("final: %s\n", final[0])
	// Output:
	// partial: working
	// final: hello
}

// Serving from a program of its own instead of zbroker (not run here: it
// would take the name of a running broker).
func ExampleStart() {
	srv, err := majordomo.Start(majordomo.Options{Name: "default"}) // or Endpoint: "tcp://*:5555"
	if err != nil {
		log.Fatal(err) // wraps zmtp.ErrAddrInUse if a broker of that name runs
	}
	defer srv.Close()
}
