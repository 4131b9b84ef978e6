package clone

import (
	"iter"
	"time"
)

// Journal keeps the Clone map and its sequence number across restarts:
// the storage seam of the Clone server. The map itself always lives in
// the server's memory (snapshots are served from it); a Journal records
// every change so that Load can rebuild it. MemoryJournal (the default)
// keeps nothing; clone/logjournal keeps a log on disk; a replicated
// backend can sit behind the same interface.
//
// Threading: the server's owner goroutine is the only caller. Work done
// on the journal's own goroutines comes back as notes on Notes(), which
// the server passes to Handle in the owner goroutine.
//
// Ordering: the server publishes an update only once the journal has it
// stored, so a sequence number published is never reused after a restart.
// (Snapshots are not held back; see Server.unstored.)
type Journal interface {
	// Load returns the entries and last sequence number kept from the
	// previous run. Entries carry absolute expiry deadlines; some may
	// have passed while the server was down. Called once, first.
	Load() (entries []Entry, seq uint64, err error)
	// Record appends one change, numbered u.Seq (one more than the
	// last): a value (Body not empty) or the deletion of u.Key (Body
	// empty). It returns true when the change is stored already;
	// otherwise Handle later reports the sequence number up to which
	// all changes are stored. The entry's slices are not modified and
	// may be kept.
	Record(u Entry) (stored bool)
	// Notes delivers the journal's messages for Handle; nil for a
	// journal that does everything synchronously.
	Notes() <-chan Note
	// Handle applies a note and returns the sequence number through
	// which every change is stored (0: no progress).
	Handle(n Note) (storedThrough uint64)
	// CompactWanted reports that the journal would like Compact called,
	// because it holds much more history than live entries.
	CompactWanted() bool
	// Compact replaces the history with the live entries, as of seq.
	Compact(live iter.Seq[Entry], seq uint64) error
	// Close flushes and stops the journal after the server stopped.
	Close() error
}

// Entry is one key's value as the Clone server holds and a Journal
// records it. Its slices are private copies, never modified.
type Entry struct {
	Key     string
	Seq     uint64
	UUID    []byte
	Props   []Prop // as received, "ttl" included
	Body    []byte // empty: the key is deleted
	Expires time.Time
}

// Note is a message from a journal's goroutines to the owner goroutine.
type Note any

// MemoryJournal keeps nothing: the map is lost when the process ends.
type MemoryJournal struct{}

func (MemoryJournal) Load() ([]Entry, uint64, error)        { return nil, 0, nil }
func (MemoryJournal) Record(Entry) bool                     { return true }
func (MemoryJournal) Notes() <-chan Note                    { return nil }
func (MemoryJournal) Handle(Note) uint64                    { return 0 }
func (MemoryJournal) CompactWanted() bool                   { return false }
func (MemoryJournal) Compact(iter.Seq[Entry], uint64) error { return nil }
func (MemoryJournal) Close() error                          { return nil }

// EncodeProps encodes properties as CHP frames them ("name=value\n"...),
// for journals to store an entry's properties.
func EncodeProps(props []Prop) ([]byte, error) { return encodeProps(props) }

// DecodeProps decodes what EncodeProps encoded.
func DecodeProps(b []byte) ([]Prop, error) { return decodeProps(b) }
