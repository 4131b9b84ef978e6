package clone

import "time"

// Replica is a Clone map kept outside the server and shared with the
// servers on other hosts (the JetStream KV bucket of internal/cluster).
// Unlike a Journal, which records what this server sequenced, a replica
// sequences: the server submits what its collector receives and applies,
// publishes and serves what the replica delivers, so every host has the
// same keys under the same sequence numbers and a client may move between
// hosts without resynchronizing. Expiry is the replica's too (it delivers
// a delete when a TTL runs out). With a replica the Journal stays the
// memory one: the replica is the store.
type Replica interface {
	// Initial is the map when the server starts and the sequence it
	// is at; Changes then delivers every later change in sequence order.
	Initial() ([]Entry, uint64)
	Changes() <-chan Change
	// Submit hands over an update from a client; it must not block
	// for long (the server's goroutine calls it). ttl is zero for a
	// value that does not expire.
	Submit(e Entry, ttl time.Duration)
}

// Change is an entry a Replica sequenced.
type Change struct {
	Entry
	// Expired marks a delete made by a TTL running out.
	Expired bool
}
