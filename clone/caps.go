package clone

import "fmt"

// overCap says why an update may not be stored: a new key when the map
// holds MaxKeys, or a value that would take the map past MaxBytes.
// Deletes always pass. CHP has no reply to a KVSET, so a refused update
// is dropped and logged (as other rejected messages are); it is never
// published, so a SetWait for it times out.
func (s *Server) overCap(m *KVMsg) error {
	if len(m.Body) == 0 {
		return nil
	}
	old := s.store.m[m.Key]
	if old == nil && len(s.store.m) >= s.opts.MaxKeys {
		return fmt.Errorf("update of new key %.64q refused: the map holds %d keys (limit %d)", m.Key, len(s.store.m), s.opts.MaxKeys)
	}
	grown := s.store.bytes + entrySize(&Entry{Key: m.Key, Body: m.Body, UUID: m.UUID, Props: m.Props})
	if old != nil {
		grown -= entrySize(&old.Entry)
	}
	if grown > s.opts.MaxBytes {
		return fmt.Errorf("update of key %.64q refused: the map would hold %d bytes (limit %d)", m.Key, grown, s.opts.MaxBytes)
	}
	return nil
}
