package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zbroker/zbroker/clone"
	"github.com/zbroker/zbroker/majordomo"
	"github.com/zbroker/zbroker/zpipes"
)

// uniqueKeys reads one JSON value and fails on an object that repeats a
// key (encoding/json would silently keep the last).
func uniqueKeys(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			key := k.(string)
			if seen[key] {
				return fmt.Errorf("key %q repeated", key)
			}
			seen[key] = true
			if err := uniqueKeys(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token()
	case json.Delim('['):
		for dec.More() {
			if err := uniqueKeys(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token()
	}
	return err
}

// Every line of a debug log in JSON, with traffic on all three services,
// is one object without a repeated key; Clone logs its connections too.
func TestLogLinesJSONWithoutRepeatedKeys(t *testing.T) {
	name := uniqueName("json")
	out, done := startRun(t, "--log-format", "json", "-v", "--mdp-request-timeout", "100ms", name)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	zc, err := zpipes.Dial(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zc.Read(ctx, "never-opened"); err == nil {
		t.Fatal("READ of an unopened pipe was not refused")
	}
	zc.Disconnect()

	w, err := majordomo.NewWorker(majordomo.Endpoint(name), "echo", func(ctx context.Context, req *majordomo.Request) [][]byte {
		return req.Body
	}, majordomo.WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWorker := context.WithCancel(ctx)
	wdone := make(chan struct{})
	go func() { w.Run(wctx); close(wdone) }()
	mc, err := majordomo.NewClient(majordomo.Endpoint(name), majordomo.ClientOptions{Timeout: 5 * time.Second, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mc.Call(ctx, "echo", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.Call(ctx, "nobody", []byte("x")); err == nil {
		t.Fatal("a call to a service without workers succeeded")
	}
	mc.Close()
	stopWorker()
	<-wdone

	kv, err := clone.Connect(ctx, clone.ClientOptions{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.SetWait(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	kv.Close()
	waitLog(t, out, `"msg":"peer disconnected"`, `"socket":"collector"`)
	stopRun(t, out, done)

	for _, want := range []string{`"msg":"request failed"`, `"mdp_service":"nobody"`, `"msg":"worker ready"`, `"socket":"snapshot"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %s", want)
		}
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for _, line := range lines {
		dec := json.NewDecoder(strings.NewReader(line))
		if err := uniqueKeys(dec); err != nil || dec.More() {
			t.Errorf("%v: %s", err, line)
		}
	}
}
