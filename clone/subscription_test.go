package clone

import (
	"context"
	"fmt"
	"testing"

	"github.com/zbroker/zbroker/zmtp"
)

func TestManyTopicsMatchByLookup(t *testing.T) {
	sub := &subscriber{topics: map[string]int{}}
	for i := 0; i < 100; i++ {
		sub.topics[fmt.Sprintf("x/%03d", i)] = 1
	}
	sub.topics["a/b"] = 1
	for key, want := range map[string]bool{"a/b": true, "a/bc": true, "a/": false, "x/042/z": true, "y": false} {
		if got := sub.matches(key); got != want {
			t.Errorf("matches(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestSubscriberOverTopicLimitDisconnected(t *testing.T) {
	s := startServer(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	sub, err := zmtp.Dial(ctx, s.Endpoints().Publisher, zmtp.Options{SocketType: "SUB"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	waitFor(t, "the subscriber", func() bool { return s.Stats().Subscribers == 1 })
	for i := 0; i <= maxTopics; i++ {
		sub.Send([][]byte{append([]byte{1}, fmt.Sprintf("t/%06d", i)...)})
	}
	waitFor(t, "the subscriber to be dropped", func() bool { return s.Stats().Subscribers == 0 })
}
