package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"
)

// applyConfigFile sets flags from a file of "name value" (or name=value)
// lines; blank lines and lines starting with # are skipped. Keeping the
// file's vocabulary identical to the flags means one set of docs.
func applyConfigFile(fs *flag.FlagSet, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, _ := strings.Cut(line, "=")
		if !strings.Contains(line, "=") {
			name, value, _ = strings.Cut(line, " ")
		}
		name = strings.TrimLeft(strings.TrimSpace(name), "-")
		if name == "config" {
			return fmt.Errorf("%s:%d: config files cannot include others", path, n)
		}
		if fs.Lookup(name) == nil {
			return fmt.Errorf("%s:%d: unknown setting %q", path, n, name)
		}
		if err := fs.Set(name, strings.TrimSpace(value)); err != nil {
			return fmt.Errorf("%s:%d: %s: %v", path, n, name, err)
		}
	}
	return sc.Err()
}
