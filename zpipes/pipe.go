package zpipes

import "github.com/zbroker/zbroker/internal/deque"

// chunkOverhead is what each queued chunk is charged beyond its payload
// against the memory limits, so a flood of empty chunks is bounded too.
const chunkOverhead = 64

// cost is what a queued chunk is charged against the memory limits. A
// small chunk is decoded in one allocation with its WRITE and pipe-name
// frames and keeps them alive, so the name is charged too.
func (p *pipe) cost(chunk []byte) int64 {
	return int64(len(chunk)+len(p.name)) + chunkOverhead
}

// writerQueue holds one writer connection's chunks in its own order.
type writerQueue struct {
	writer *client
	chunks deque.Deque[[]byte]
	inRing bool
	held   int // this writer's WRITEs held back by the limits
	pass   int // last admission pass that had to skip this writer
}

// stalledWrite is a WRITE held back because its pipe or the broker is over
// its memory limit; its OK is withheld until it is admitted.
type stalledWrite struct {
	c     *client
	q     *writerQueue
	slot  *slot
	chunk []byte
}

// pipe is one named pipe. Only the server goroutine touches it.
type pipe struct {
	name string
	// writers maps each writer connection to its queue while the queue
	// holds chunks or the connection has the pipe open.
	writers map[*client]*writerQueue
	// ring lists the queues that hold chunks; the reader is served round
	// robin across them so a heavy writer cannot starve a light one.
	ring []*writerQueue
	next int
	// returned holds chunks taken back from a reader that died before
	// they were written to its socket; they are served first.
	returned deque.Deque[[]byte]
	bytes    int64 // cost of all queued chunks
	chunks   int
	openers  int
	reader   *client
	waiting  []*slot // the reader's READs waiting for a chunk, in order
	stalled  []stalledWrite
}

func newPipe(name string) *pipe {
	return &pipe{name: name, writers: map[*client]*writerQueue{}}
}

// queueOf returns the writer's queue, creating it.
func (p *pipe) queueOf(c *client) *writerQueue {
	q := p.writers[c]
	if q == nil {
		q = &writerQueue{writer: c}
		p.writers[c] = q
	}
	return q
}

// dropIfUnused forgets a writer's queue once it is empty, holds nothing
// back and the writer no longer has the pipe open.
func (p *pipe) dropIfUnused(q *writerQueue) {
	if q.chunks.Len() == 0 && q.held == 0 && p.writers[q.writer] == q && q.writer.open[p.name] == nil {
		delete(p.writers, q.writer)
	}
}

func (p *pipe) push(q *writerQueue, chunk []byte) {
	q.chunks.PushBack(chunk)
	if !q.inRing {
		q.inRing = true
		p.ring = append(p.ring, q)
	}
	p.bytes += p.cost(chunk)
	p.chunks++
}

// pop takes the next chunk: returned chunks first, then round robin over
// the writers' queues. ok is false when the pipe is empty.
func (p *pipe) pop() (chunk []byte, ok bool) {
	if p.returned.Len() > 0 {
		chunk = p.returned.PopFront()
	} else if len(p.ring) > 0 {
		if p.next >= len(p.ring) {
			p.next = 0
		}
		q := p.ring[p.next]
		chunk = q.chunks.PopFront()
		if q.chunks.Len() == 0 {
			q.inRing = false
			last := len(p.ring) - 1
			copy(p.ring[p.next:], p.ring[p.next+1:])
			p.ring[last] = nil
			p.ring = p.ring[:last]
			p.dropIfUnused(q)
		} else {
			p.next++
		}
	} else {
		return nil, false
	}
	p.bytes -= p.cost(chunk)
	p.chunks--
	return chunk, true
}

// giveBack re-queues chunks a dead reader never received, ahead of all
// others and in the order they were first read.
func (p *pipe) giveBack(chunks [][]byte) {
	for i := len(chunks) - 1; i >= 0; i-- {
		p.returned.PushFront(chunks[i])
	}
	for _, ch := range chunks {
		p.bytes += p.cost(ch)
		p.chunks++
	}
}

// idle reports whether nothing refers to the pipe any more, so it can be
// released.
func (p *pipe) idle() bool {
	return p.openers == 0 && p.chunks == 0 && len(p.stalled) == 0
}
