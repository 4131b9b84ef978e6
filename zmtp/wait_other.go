//go:build !linux

package zmtp

// readSmall does not wait where it cannot read the socket directly: the
// read buffer is taken at once and waits itself.
func (c *Conn) readSmall() error { return nil }

func (rs *readState) readInto(uintptr) bool { return true }

func (rs *readState) queued() int { return 0 }

func (rs *readState) inq(uintptr) {}
