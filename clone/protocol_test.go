package clone

import (
	"bytes"
	"errors"
	"testing"
)

func TestKVMsgRoundTrip(t *testing.T) {
	m := KVMsg{Key: "/a/b", Seq: 0x0102030405060708, UUID: bytes.Repeat([]byte{7}, 16), Body: []byte("v")}
	m.SetProp("ttl", "5")
	m.SetProp("owner", "me=you")
	f, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if string(f[1]) != "\x01\x02\x03\x04\x05\x06\x07\x08" || string(f[3]) != "ttl=5\nowner=me=you\n" {
		t.Fatalf("frames %q", f)
	}
	d, err := Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := d.Prop("owner"); v != "me=you" || d.Seq != m.Seq || d.Key != m.Key || !bytes.Equal(d.UUID, m.UUID) {
		t.Fatalf("decoded %+v", d)
	}
}

func TestDecodeRejects(t *testing.T) {
	seq := make([]byte, 8)
	for name, f := range map[string][][]byte{
		"four frames":  {[]byte("k"), seq, nil, nil},
		"empty key":    {nil, seq, nil, nil, nil},
		"short seq":    {[]byte("k"), seq[:7], nil, nil, nil},
		"uuid 15":      {[]byte("k"), seq, make([]byte, 15), nil, nil},
		"prop no =":    {[]byte("k"), seq, nil, []byte("ttl\n"), nil},
		"prop no name": {[]byte("k"), seq, nil, []byte("=1\n"), nil},
		"long key":     {bytes.Repeat([]byte("k"), 256), seq, nil, nil, nil},
	} {
		if _, err := Decode(f); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v", name, err)
		}
	}
	// A missing final newline is tolerated.
	m, err := Decode([][]byte{[]byte("k"), seq, nil, []byte("a=1\nb=2"), nil})
	if err != nil || len(m.Props) != 2 {
		t.Fatalf("%+v %v", m, err)
	}
}

func FuzzDecode(f *testing.F) {
	seq := make([]byte, 8)
	add := func(fr ...[]byte) {
		var b []byte
		for _, x := range fr {
			b = append(b, byte(len(x)))
			b = append(b, x...)
		}
		f.Add(b)
	}
	add([]byte("/k"), seq, nil, nil, []byte("v"))
	add([]byte("KTHXBAI"), seq, nil, nil, []byte("/sub/"))
	add([]byte("/k"), seq, make([]byte, 16), []byte("ttl=1\n"), nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		// data is frames, each a one-byte length then the bytes.
		var fr [][]byte
		for len(data) > 0 {
			n := min(int(data[0]), len(data)-1)
			fr = append(fr, data[1:1+n])
			data = data[1+n:]
		}
		m, err := Decode(fr)
		if err != nil {
			return
		}
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		m2, err := Decode(enc)
		if err != nil {
			t.Fatal(err)
		}
		enc2, _ := m2.Encode()
		for i := range enc {
			if !bytes.Equal(enc[i], enc2[i]) {
				t.Fatalf("frame %d: %q then %q", i, enc[i], enc2[i])
			}
		}
	})
}
