package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream's fast batches (ADR-50; nats.go 1.55 has no API for them).
// The batch is in each message's reply subject,
// <inbox>.<batch id>.<flow>.<gap mode>.<batch seq>.<op>.$FI. In gap mode
// "fail" the stream stores the messages in order, each as a plain publish
// would (message IDs deduplicate), and ends the batch at the first one it
// refuses (full, fenced) or misses: the messages after it are not stored.
// Its answer, a PubAck with the batch's "count", tells how many of the
// first messages are stored (or were already: duplicates count).
const (
	fastGapFail = "fail"
	// fastFlow asks for a flow-control message every fastFlow messages
	// stored (at most 500): they are only informative here, a batch is
	// at most maxAtomicBatch messages.
	fastFlow = 500
)

// Operations of a fast batch's messages.
const (
	fastOpStart = iota
	fastOpAppend
	fastOpCommit
)

// fastReply is any of the answers to a fast batch's messages: flow
// control ("ack", "gap"), a message's error ("err"), the batch's PubAck
// or an error answering one message as a plain publish.
type fastReply struct {
	Type  string              `json:"type"`
	Batch string              `json:"batch"`
	Count int                 `json:"count"`
	Error *jetstream.APIError `json:"error"`
}

// sendFast publishes items as one fast batch and returns how many of the
// first are stored, with the error that stopped the batch if not all.
func (q *pipeQueue) sendFast(ctx context.Context, items []pubItem) (int, error) {
	id := q.s.newID("-f")
	nc := q.s.js.Conn()
	inbox := nc.NewInbox() + "." + id
	// Room for every message's answer: a dropped one would cost a retry.
	replies := make(chan *nats.Msg, len(items)+8)
	sub, err := nc.ChanSubscribe(inbox+".>", replies)
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	for i, it := range items {
		op := fastOpAppend
		switch {
		case i == 0:
			op = fastOpStart
		case i == len(items)-1:
			op = fastOpCommit
		}
		reply := fmt.Sprintf("%s.%d.%s.%d.%d.$FI", inbox, fastFlow, fastGapFail, i+1, op)
		msg := &nats.Msg{Subject: q.subject, Reply: reply, Data: it.chunk, Header: nats.Header{jetstream.MsgIDHeader: {it.id}}}
		if err := nc.PublishMsg(msg); err != nil {
			return 0, err
		}
	}
	var stopped error // why the batch ended early, if the server said
	for {
		select {
		case m := <-replies:
			if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
				return 0, nats.ErrNoResponders // no stream (deleted)
			}
			var r fastReply
			if json.Unmarshal(m.Data, &r) != nil {
				continue
			}
			switch {
			case r.Type == "err" && r.Error != nil:
				stopped = r.Error // the batch's PubAck follows
			case r.Type != "":
				// Flow control.
			case r.Error != nil:
				if r.Error.ErrorCode == errFastUnknown {
					continue // a message after the batch ended
				}
				if fastSeq(m.Subject) == 1 {
					return 0, r.Error // refused from the first: nothing stored
				}
				stopped = r.Error
			case r.Batch == id:
				n := min(r.Count, len(items))
				if n == len(items) {
					return n, nil
				}
				if stopped == nil {
					stopped = fmt.Errorf("fast batch stopped after %d of %d chunks", n, len(items))
				}
				return n, stopped
			}
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// fastSeq is the batch sequence in a fast batch's reply subject.
func fastSeq(reply string) uint64 {
	f := strings.Split(reply, ".")
	if len(f) < 3 {
		return 0
	}
	seq, _ := strconv.ParseUint(f[len(f)-3], 10, 64)
	return seq
}
