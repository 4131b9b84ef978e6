// Package wal is zbroker's write-ahead log: numbered segment files of
// checksummed records, written by one goroutine with group commit, read
// back and repaired at start. zpipes (zpipes/logstore) and Clone
// (clone/logjournal) keep their durable state in it.
//
// # File format
//
// Numbered segment files (%016x.wal), each a 32-byte header (magic
// "ZBRKWAL\n", version, kind, segment number, CRC-32C) and records
// (length, CRC-32C, type, their own position, payload). The format is
// specified, with the owners' record payloads, in one place:
// docs/durability.md ("Format, version 1"). The position makes a record
// valid only where it was written, so a record that a chunk happens to
// contain is never taken for a real one when resynchronizing.
//
// # Damage
//
// Open reads every segment in order and checks every record. A record
// that fails its check with no valid record after it in its segment is a
// torn tail (a write cut short by a crash or power loss): the segment is
// truncated there and a warning logged. A bad record followed by valid
// ones is damage in the middle: it is reported (file, offset, bytes
// skipped) and reading resumes at the next valid record. A bad segment
// header, or a file that is not a segment, stops Open with an error: the
// owner would otherwise start with silently missing data.
package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

const (
	// Version is the format version this package writes and reads.
	Version = 1
	// HeaderSize is the size of a segment header.
	HeaderSize = 32
	// RecordHeader is the size of a record's header.
	RecordHeader = 20
	// MaxPayload bounds one record's payload.
	MaxPayload = 1 << 30
	segBits    = 40
)

var magic = [8]byte{'Z', 'B', 'R', 'K', 'W', 'A', 'L', '\n'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Pos is where a record starts: segment number << 40 | offset. Positions
// grow with every record appended.
type Pos uint64

// MakePos returns the position of offset off in segment seg.
func MakePos(seg uint64, off int64) Pos { return Pos(seg<<segBits | uint64(off)) }

// Seg is the position's segment number.
func (p Pos) Seg() uint64 { return uint64(p) >> segBits }

// Off is the position's offset in its segment.
func (p Pos) Off() int64 { return int64(uint64(p) & (1<<segBits - 1)) }

func (p Pos) String() string { return fmt.Sprintf("%s+%d", segName(p.Seg()), p.Off()) }

func segName(seg uint64) string { return fmt.Sprintf("%016x.wal", seg) }

// appendHeader appends a segment header.
func appendHeader(dst []byte, kind string, seg uint64) []byte {
	start := len(dst)
	dst = append(dst, magic[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, Version)
	var k [8]byte
	copy(k[:], kind)
	dst = append(dst, k[:]...)
	dst = binary.LittleEndian.AppendUint64(dst, seg)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// checkHeader verifies a segment header.
func checkHeader(b []byte, kind string, seg uint64) error {
	if len(b) < HeaderSize {
		return errors.New("shorter than a segment header")
	}
	if [8]byte(b[:8]) != magic {
		return errors.New("not a zbroker log segment (bad magic)")
	}
	if crc32.Checksum(b[:28], castagnoli) != binary.LittleEndian.Uint32(b[28:]) {
		return errors.New("segment header checksum mismatch")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != Version {
		return fmt.Errorf("segment format version %d, this zbroker reads %d", v, Version)
	}
	var k [8]byte
	copy(k[:], kind)
	if [8]byte(b[12:20]) != k {
		return fmt.Errorf("segment of kind %q, want %q", string(b[12:20]), kind)
	}
	if s := binary.LittleEndian.Uint64(b[20:]); s != seg {
		return fmt.Errorf("segment header says number %d, file name %d", s, seg)
	}
	return nil
}

// AppendRecord appends a record at position pos, its payload the
// concatenation of parts.
func AppendRecord(dst []byte, typ byte, pos Pos, parts ...[]byte) []byte {
	dst = appendRecordHeader(dst, typ, pos, parts...)
	for _, p := range parts {
		dst = append(dst, p...)
	}
	return dst
}

// appendRecordHeader appends the header of the record AppendRecord would
// append, without its payload.
func appendRecordHeader(dst []byte, typ byte, pos Pos, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, 0, 0, 0, 0, typ, 0, 0, 0)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(pos))
	crc := crc32.Update(0, castagnoli, dst[start:start+4])
	crc = crc32.Update(crc, castagnoli, dst[start+8:])
	for _, p := range parts {
		crc = crc32.Update(crc, castagnoli, p)
	}
	binary.LittleEndian.PutUint32(dst[start+4:], crc)
	return dst
}

// Errors of DecodeRecord.
var (
	ErrShort    = errors.New("record cut short")
	ErrChecksum = errors.New("record checksum mismatch")
	ErrBad      = errors.New("malformed record")
)

// DecodeRecord decodes the record at the start of b, which must have been
// written at position pos. It returns the record's type, its payload (a
// sub-slice of b) and its total size.
func DecodeRecord(b []byte, pos Pos) (typ byte, payload []byte, size int, err error) {
	if len(b) < RecordHeader {
		return 0, nil, 0, ErrShort
	}
	n := binary.LittleEndian.Uint32(b)
	if n > MaxPayload || b[8] == 0 || b[9]|b[10]|b[11] != 0 {
		return 0, nil, 0, ErrBad
	}
	if Pos(binary.LittleEndian.Uint64(b[12:])) != pos {
		return 0, nil, 0, ErrBad
	}
	size = RecordHeader + int(n)
	if len(b) < size {
		return 0, nil, 0, ErrShort
	}
	crc := crc32.Update(0, castagnoli, b[:4])
	crc = crc32.Update(crc, castagnoli, b[8:size])
	if crc != binary.LittleEndian.Uint32(b[4:]) {
		return 0, nil, 0, ErrChecksum
	}
	return b[8], b[RecordHeader:size], size, nil
}
