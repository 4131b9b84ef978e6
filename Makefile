# zbroker — see README.md. Targets: run build install deps test lint fuzz bench clean.

GO          ?= go
ARGS        ?= default
FUZZTIME    ?= 60s
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Stamp the binaries with the VCS revision (zbroker --version) when git
# can read the tree; a tarball or a tree git refuses still builds. Without
# the symbol table and DWARF (-s -w) the broker, which embeds a NATS server
# for cluster mode, is 21 MB instead of 30; stack traces and pprof keep
# their function names (they come from the runtime's own tables).
VCS         := $(shell git rev-parse --git-dir >/dev/null 2>&1 && echo auto || echo false)
GOBUILD      = $(GO) build -buildvcs=$(VCS) -trimpath -ldflags='-s -w'

# make install PREFIX=/usr/local DESTDIR=/staging
PREFIX      ?= /usr/local
DESTDIR     ?=
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man/man1
UNITDIR     ?= $(PREFIX)/lib/systemd/system
DOCDIR      ?= $(PREFIX)/share/doc/zbroker
TOOLS       := zbroker zpipe mdp zclone

.PHONY: all run check-go build install deps test lint fuzz bench clean

all: build

# Build the tools and run the broker in the foreground: make run ARGS="-v mybroker"
run: check-go
	$(GOBUILD) -o bin/ $(addprefix ./cmd/,$(TOOLS))
	./bin/zbroker $(ARGS)

check-go:
	@command -v $(GO) >/dev/null || { echo "make: Go is not installed: see https://go.dev/doc/install (zbroker needs Go 1.26 or newer)"; exit 1; }

build: check-go
	$(GOBUILD) -o bin/ ./cmd/zbroker ./cmd/zpipe ./cmd/mdp ./cmd/zclone ./cmd/zpipes-bench

# The four tools (not the benchmark), their man pages (from --help), the
# systemd unit and the docs.
install: check-go
	$(GOBUILD) -o bin/ $(addprefix ./cmd/,$(TOOLS))
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)
	install -m 0755 $(addprefix bin/,$(TOOLS)) $(DESTDIR)$(BINDIR)/
	bash scripts/manpage.sh bin/zbroker "ZeroMQ broker for zpipes, Majordomo and Clone" > $(DESTDIR)$(MANDIR)/zbroker.1
	bash scripts/manpage.sh bin/zpipe "use a zbroker's named pipes from the shell" > $(DESTDIR)$(MANDIR)/zpipe.1
	bash scripts/manpage.sh bin/mdp "Majordomo client, echo worker and MMI query tool" > $(DESTDIR)$(MANDIR)/mdp.1
	bash scripts/manpage.sh bin/zclone "read and write a Clone server's key-value map" > $(DESTDIR)$(MANDIR)/zclone.1
	sed 's|@BINDIR@|$(BINDIR)|g' dist/zbroker.service > $(DESTDIR)$(UNITDIR)/zbroker.service
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 dist/zbroker.conf $(DESTDIR)$(DOCDIR)/zbroker.conf.example

# Check (or apt-get install) python3-zmq, libzmq3-dev, pkg-config, gcc.
deps:
	@bash scripts/deps.sh

# The whole suite; .ci/run runs exactly this.
test: check-go
	@bash scripts/test.sh

lint:
	@bash scripts/gofmt-check.sh
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Longer fuzzing of every Fuzz target: make fuzz FUZZTIME=10m
fuzz:
	@bash scripts/fuzz.sh $(FUZZTIME)

# Benchmarks (see BENCHMARKS.md): make bench BENCH_ARGS="--repeat 5"
BENCH_ARGS ?=
bench:
	$(GO) run ./cmd/zpipes-bench $(BENCH_ARGS)
	$(GO) test -run '^$$' -bench . -benchmem ./zpipes/ ./zmtp/ ./majordomo/ ./clone/

clean:
	rm -rf bin
