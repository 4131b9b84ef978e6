package clone_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/zbroker/zbroker/clone"
)

// exampleServer starts an in-process Clone server under a name of its
// own, as a real program would run `zbroker NAME`, and returns the name.
func exampleServer() (name string, stop func()) {
	name = fmt.Sprintf("example-%d-%x", os.Getpid(), rand.Uint64())
	srv, err := clone.Start(clone.Options{Name: name, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	return name, func() { srv.Close() }
}

// A client mirroring the keys under /config/.
func Example() {
	broker, stop := exampleServer() // normally: "default"
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := clone.Connect(ctx, clone.ClientOptions{Name: broker, Subtree: "/config/",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	updates, stopWatching := c.Watch() // every change, in the server's order
	defer stopWatching()

	// SetWait returns once the server has published the change; Set does
	// not wait. A TTL of 0 keeps the value until it is changed.
	if err := c.SetWait(ctx, "/config/colour", []byte("blue"), time.Minute); err != nil {
		log.Fatal(err)
	}
	if err := c.SetWait(ctx, "/config/size", []byte("L"), 0); err != nil {
		log.Fatal(err)
	}
	v, ok := c.Get("/config/size")
	fmt.Printf("size=%s %v\n", v, ok)
	for range 2 {
		u := <-updates // Value nil: the key was deleted
		fmt.Printf("update %d: %s=%s\n", u.Seq, u.Key, u.Value)
	}
	// Output:
	// size=L true
	// update 1: /config/colour=blue
	// update 2: /config/size=L
}

// Serving from a program of its own instead of zbroker (not run here: it
// would take the name of a running broker).
func ExampleStart() {
	srv, err := clone.Start(clone.Options{Name: "default"}) // or SnapshotEndpoint: "tcp://*:5556", ...
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	fmt.Println(srv.Endpoints()) // real ports for tcp ":0"
	fmt.Println(srv.Stats())     // Keys, Sequence, Subscribers, Publishers, Updates, Expired, Snapshots, Rejected
}
