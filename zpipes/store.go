package zpipes

// Store keeps the chunks queued in every pipe: the storage seam between
// the broker's protocol logic (server.go) and where chunks live. Memory
// (NewMemoryStore, the default) keeps them in this process; a durable
// store keeps them in a log on disk (zpipes/logstore) or in a replicated
// stream, behind the same interface.
//
// Threading: the server's owner goroutine is the only caller of every
// method of a Store and of its Queues; none of them may block on other
// goroutines for long (a local pread is fine, a network round trip is
// not). Work a store does on its own goroutines (writing and syncing a
// log, waiting for a publish acknowledgement) comes back to the owner as
// notes on Notes(); the server passes each note to Handle, in the owner
// goroutine, which applies it to the store's state and says what it
// completed. So a store needs no locks of its own for the state the owner
// sees.
//
// Acknowledgement: Queue.Append returns true when the chunk is stored in
// the sense the store promises (memory: at once); otherwise the WRITE's
// OK is withheld until Handle returns its token in Done.Stored. A store
// that cannot store a chunk for now (disk full) keeps it pending and
// retries: the OK stays withheld and the writer's backpressure follows.
//
// Order: each writer's chunks are kept in the order appended; Next serves
// chunks given back by Return first, then round robin over the writers
// that have chunks, so a heavy writer cannot starve a light one. A store
// that recovers chunks from a previous run keeps this fair-queuing state.
//
// Consumption: the server calls Consumed for chunks taken by Next once
// they are written in full into the reader's socket, and Return for those
// that never were (the reader died first). A durable store records the
// consumption; after a crash it may deliver again only chunks that were
// taken but not yet recorded as consumed. It may bound how many such
// chunks are outstanding by having Next report nothing ready, and later
// list the pipe in Done.Ready.
type Store interface {
	// Queue returns the named pipe's queue, creating an empty one. The
	// same Queue is returned until it is released.
	Queue(pipe string) Queue
	// Recovered lists the pipes that hold chunks kept from a previous
	// run, for the server to serve. Called once, before any other method.
	Recovered() []RecoveredPipe
	// Notes delivers the store's messages for the owner goroutine, to be
	// passed to Handle. A nil channel (never ready) for a store that does
	// everything synchronously.
	Notes() <-chan Note
	// Handle applies a note in the owner goroutine.
	Handle(n Note) Done
	// Close stops the store after the server has stopped, flushing what
	// it holds, and says what it keeps for the next run.
	Close() (Kept, error)
}

// Queue is one pipe's chunks in a Store.
type Queue interface {
	// NewWriter returns an identifier, unique within the store, for a
	// writer's chunks in this pipe.
	NewWriter() WriterID
	// Append queues chunk at the tail of writer w's chunks. It returns
	// true when the chunk is stored already; otherwise token comes back
	// in Done.Stored from Handle once it is. Tokens come back in the
	// order of their Appends (the server matches them to its WRITEs in
	// that order); a store whose acknowledgements arrive out of order
	// (one stream per pipe, say) holds later ones back. The memory and
	// log stores serve a chunk from Next at once, stored or not (a
	// reader may get it before its writer gets the OK); a store may also
	// serve it only once stored. The chunk is not modified and may be
	// kept.
	Append(w WriterID, chunk []byte, token any) (stored bool)
	// Next takes the next chunk in fair-queuing order. ok is false when
	// nothing is ready (the queue is empty, or the store bounds its
	// unconfirmed chunks and lists the pipe in Done.Ready later).
	Next() (c Chunk, ok bool)
	// Consumed records that chunks taken by Next reached the reader.
	Consumed(cs []Chunk)
	// Return puts chunks taken by Next that never reached the reader
	// back at the head of the queue, in the order given (the order they
	// were taken), to be served before all others.
	Return(cs []Chunk)
	// Queued reports how many chunks of writer w are queued.
	Queued(w WriterID) int
	// Release drops the pipe: it holds no chunks, none is out with a
	// reader, and nobody has it open. A durable store deletes what it
	// kept of the pipe. The Queue must not be used afterwards.
	Release()
}

// WriterID identifies one writer's chunks within a pipe.
type WriterID uint64

// Chunk is a chunk taken from a Queue. ID is the store's own reference
// (zero for the memory store); Data must not be modified.
type Chunk struct {
	Data []byte
	ID   uint64
}

// RecoveredPipe is a pipe that a store found holding chunks at start.
type RecoveredPipe struct {
	Name   string
	Chunks int
	Bytes  int64 // payload bytes
}

// Note is a message from a store's goroutines to the owner goroutine.
type Note any

// Done is what a note completed. Its slices are valid until the next
// call of Handle.
type Done struct {
	// Stored lists the tokens of Appends now stored: their WRITEs'
	// OKs may be sent.
	Stored []any
	// Ready lists pipes whose Next may return chunks it refused before.
	Ready []string
	// Held reports chunks that came into or left this process other
	// than by Append, Next and Return: a replicated store's chunks leave
	// once another host has them, and arrive when prefetched for this
	// host's reader. The server's limits count what is held here.
	Held []Held
	// Refused lists pipes whose reader the store cannot serve (a
	// replicated store: another host serves the pipe's reader). The
	// server answers the reader's waiting READs with the reason as an
	// ERROR, and the pipe has no reader.
	Refused []Refusal
}

// Refusal is a pipe whose reader a store refused, and why.
type Refusal struct {
	Pipe   string
	Reason string
}

// Held is a change in the chunks a store holds in this process for one
// pipe (negative when they left).
type Held struct {
	Pipe   string
	Chunks int
	Bytes  int64 // payload bytes
}

// ReaderTracker is implemented by a Queue that holds chunks for the
// pipe's reader (a replicated store prefetches them): the server calls
// ReaderLeft when the reader leaves, and the queue lets the chunks it
// holds for it go (reporting them in a later Done.Held) so that a reader
// elsewhere gets them.
type ReaderTracker interface {
	ReaderLeft()
}

// Kept is what a store keeps for the next run when it closes.
type Kept struct {
	Pipes  int
	Chunks int
	Bytes  int64
}

// AckWaiter is implemented by a Queue that bounds the chunks taken
// without recorded consumption (to bound what a crash delivers again):
// the server calls AwaitAck for each chunk Next returned for an
// acknowledging reader. Such a chunk stays taken until it is acknowledged
// (Consumed) or its reader leaves (Return), which may take long; the
// queue does not count it against that bound, as delivering it again
// after a crash is what the reader asked for.
type AckWaiter interface {
	AwaitAck(c Chunk)
}
