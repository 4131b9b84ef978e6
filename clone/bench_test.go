package clone

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/zbroker/zbroker/zmtp"
)

// BenchmarkFanout10 measures updates per second through the server: one
// publisher sends b.N KVSETs (100-byte values) to the collector, and the
// benchmark ends when each of 10 subscribers has received all b.N KVPUBs.
func BenchmarkFanout10(b *testing.B) {
	const subscribers = 10
	s := startServer(b, Options{HeartbeatInterval: time.Hour})
	ep := s.Endpoints()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	ready := make(chan struct{}, subscribers)
	for range subscribers {
		sub, err := zmtp.Dial(ctx, ep.Publisher, zmtp.Options{SocketType: "SUB", Logger: quietLogger})
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Close()
		sub.Send([][]byte{[]byte("\x01")}) // everything; HUGZ at once
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := 0
			for got < b.N {
				f, err := sub.Recv()
				if err != nil {
					b.Error(err)
					return
				}
				if string(f[0]) == KeyHUGZ {
					ready <- struct{}{}
					continue
				}
				got++
			}
		}()
	}
	for range subscribers {
		<-ready
	}
	pub, err := zmtp.Dial(ctx, ep.Collector, zmtp.Options{SocketType: "PUB", Logger: quietLogger})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	go func() {
		for {
			if _, err := pub.Recv(); err != nil {
				return
			}
		}
	}()
	keys := make([][]byte, 1000)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("/bench/%d", i))
	}
	body := make([]byte, 100)
	seq := make([]byte, 8)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		pub.Send([][]byte{keys[i%len(keys)], seq, nil, nil, body})
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "updates/s")
	b.ReportMetric(float64(b.N*subscribers)/el.Seconds(), "deliveries/s")
}
