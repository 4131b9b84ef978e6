package zpipes

// chunkOverhead is what each queued chunk is charged beyond its payload
// against the memory limits, so a flood of empty chunks is bounded too.
const chunkOverhead = 64

// cost is what a queued chunk is charged against the memory limits. A
// small chunk is decoded in one allocation with its WRITE and pipe-name
// frames and keeps them alive, so the name is charged too.
func (p *pipe) cost(chunk []byte) int64 { return p.costOf(1, int64(len(chunk))) }

// costOf is what chunks holding payload bytes in all are charged.
func (p *pipe) costOf(chunks int, payload int64) int64 {
	return payload + int64(chunks)*(int64(len(p.name))+chunkOverhead)
}

// writerQueue is the server's account of one writer connection's use of a
// pipe; its chunks are in the store under id.
type writerQueue struct {
	writer *client
	id     WriterID
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
	q    Queue     // its chunks, fair-queued by the store
	aw   AckWaiter // q, if it is one
	// writers maps each writer connection to its account while the
	// connection has the pipe open or WRITEs held back.
	writers map[*client]*writerQueue
	bytes   int64 // cost of all queued chunks
	chunks  int
	// taken counts chunks taken from the queue for the reader and not
	// yet known to be in its socket: the pipe is kept until they are,
	// as they may come back.
	taken   int
	openers int
	reader  *client
	ack     *ackState // what the reader holds, if it acknowledges
	waiting []*slot   // the reader's READs waiting for a chunk, in order
	stalled []stalledWrite
}

func newPipe(name string, q Queue) *pipe {
	aw, _ := q.(AckWaiter)
	return &pipe{name: name, q: q, aw: aw, writers: map[*client]*writerQueue{}}
}

// queueOf returns the writer's account, creating it.
func (p *pipe) queueOf(c *client) *writerQueue {
	q := p.writers[c]
	if q == nil {
		q = &writerQueue{writer: c, id: p.q.NewWriter()}
		p.writers[c] = q
	}
	return q
}

// dropIfUnused forgets a writer's account once it holds nothing back and
// the writer no longer has the pipe open. While a live connection has
// chunks queued the account stays, so chunks it writes after opening the
// pipe again queue behind them; a departed connection writes no more.
func (p *pipe) dropIfUnused(q *writerQueue) {
	if q.held == 0 && p.writers[q.writer] == q && q.writer.open[p.name] == nil &&
		(q.writer.gone || p.q.Queued(q.id) == 0) {
		delete(p.writers, q.writer)
	}
}

// idle reports whether nothing refers to the pipe any more, so it can be
// released.
func (p *pipe) idle() bool {
	return p.openers == 0 && p.chunks == 0 && p.taken == 0 && len(p.stalled) == 0
}
