// Package docs_test keeps the docs honest: every Go snippet in README.md,
// BENCHMARKS.md and docs/*.md must be the text of an example test (so it
// compiles and, with an Output comment, runs), and relative links must
// point at files that exist.
package docs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func markdownFiles(t *testing.T) []string {
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append(files, "../README.md", "../BENCHMARKS.md")
}

// exampleSources is the text of every example_test.go in the module.
func exampleSources(t *testing.T) string {
	var all strings.Builder
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.Name() == "example_test.go" {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			all.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all.String()
}

var goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

func TestGoSnippetsAreExampleTests(t *testing.T) {
	examples := exampleSources(t)
	n := 0
	for _, f := range markdownFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range goBlock.FindAllStringSubmatch(string(b), -1) {
			n++
			if !strings.Contains(examples, m[1]) {
				t.Errorf("%s: this Go snippet is not the text of an example test (copy it from example_test.go):\n%s", f, m[1])
			}
		}
	}
	if n == 0 {
		t.Fatal("no Go snippets found: is the pattern right?")
	}
}

var link = regexp.MustCompile(`\]\(([^)#:]+)(#[^)]*)?\)`)

// otherTopics are docs written with other features; a link to one that is
// missing is reported in the log rather than failing the suite.
var otherTopics = map[string]bool{"security.md": true, "curve.md": true, "durability.md": true, "cluster.md": true, "zguide.md": true}

func TestRelativeLinksResolve(t *testing.T) {
	for _, f := range markdownFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := filepath.Join(filepath.Dir(f), m[1])
			_, err := os.Stat(target)
			switch {
			case err != nil && otherTopics[filepath.Base(target)]:
				t.Logf("%s: link to %s: not written yet", f, m[1])
			case err != nil:
				t.Errorf("%s: link to %s: %v", f, m[1], err)
			}
		}
	}
}
