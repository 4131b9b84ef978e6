// Package curvekey reads and writes CURVE key files (docs/curve.md): a
// secret key is 40 Z85 characters on one line, or a czmq secret
// certificate; admitted client keys are a list of Z85 keys, or a czmq
// certificate directory.
package curvekey

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/zbroker/zbroker/zmtp"
)

// czmqKey finds `name = "KEY"` in a czmq certificate (ZPL format).
var czmqKey = regexp.MustCompile(`(?m)^\s*(public-key|secret-key)\s*=\s*"([^"]{40})"`)

func certKey(data []byte, name string) (string, bool) {
	for _, m := range czmqKey.FindAllSubmatch(data, -1) {
		if string(m[1]) == name {
			return string(m[2]), true
		}
	}
	return "", false
}

// LoadSecret reads a secret key file and returns the key pair. A file that
// group or others may read or write is refused: the key is the broker's
// (or the client's) identity.
func LoadSecret(path string) (public, secret zmtp.CurveKey, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return public, secret, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return public, secret, fmt.Errorf("%s is open to group or others (mode %04o): refusing a secret key others may read; chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return public, secret, err
	}
	text, ok := certKey(data, "secret-key")
	if !ok {
		text = firstLine(data)
	}
	if secret, err = zmtp.ParseCurveKey(text); err != nil {
		return public, secret, fmt.Errorf("%s: want a secret key as 40 Z85 characters (or a czmq secret certificate): %w", path, err)
	}
	public, err = zmtp.CurvePublicKey(secret)
	return public, secret, err
}

// firstLine is the first field of the first line that is neither blank
// nor a comment.
func firstLine(data []byte) string {
	for _, l := range strings.Split(string(data), "\n") {
		if f, ok := keyField(l); ok {
			return f
		}
	}
	return ""
}

// keyField returns a line's key and false for a blank or comment line.
// Z85 has '#' among its characters, but never first in a group of five
// (it would exceed 32 bits), so a key cannot start with one.
func keyField(line string) (string, bool) {
	f := strings.Fields(line)
	if len(f) == 0 || strings.HasPrefix(f[0], "#") {
		return "", false
	}
	return f[0], true
}

// WriteSecret writes secret to a new file only its owner can read.
func WriteSecret(path string, secret zmtp.CurveKey) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err = fmt.Fprintln(f, secret); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadClients reads the admitted client keys: a file of Z85 keys, one per
// line, with # comments (on a line of their own, or after the key and a
// space); or a czmq certificate directory, whose public
// certificates (files not ending in _secret) each carry a public-key.
func LoadClients(path string) ([]zmtp.CurveKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return loadCertDir(path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var keys []zmtp.CurveKey
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		field, ok := keyField(sc.Text())
		if !ok {
			continue
		}
		k, err := zmtp.ParseCurveKey(field)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if rest := strings.Fields(sc.Text())[1:]; len(rest) > 0 && !strings.HasPrefix(rest[0], "#") {
			return nil, fmt.Errorf("%s:%d: text after the key (start a comment with #)", path, n)
		}
		keys = append(keys, k)
	}
	return keys, sc.Err()
}

func loadCertDir(dir string) ([]zmtp.CurveKey, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var keys []zmtp.CurveKey
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), "_secret") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		text, ok := certKey(data, "public-key")
		if !ok {
			return nil, fmt.Errorf("%s: no public-key in this czmq certificate", path)
		}
		k, err := zmtp.ParseCurveKey(text)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// ErrNotAdmitted is the refusal of a key not on the list.
var ErrNotAdmitted = errors.New("key not in the admitted client keys")

// Admit returns an Authorize function admitting exactly keys.
func Admit(keys []zmtp.CurveKey) func(zmtp.CurveKey) error {
	set := make(map[zmtp.CurveKey]struct{}, len(keys))
	for _, k := range keys {
		set[k] = struct{}{}
	}
	return func(k zmtp.CurveKey) error {
		if _, ok := set[k]; ok {
			return nil
		}
		return ErrNotAdmitted
	}
}
