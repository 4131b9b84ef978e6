# zbroker — see README.md. Targets: run build deps test lint fuzz bench clean.

GO          ?= go
ARGS        ?= default
FUZZTIME    ?= 60s
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all run build deps test lint fuzz bench clean

all: build

# Build and run the broker in the foreground: make run ARGS="-v mybroker"
run:
	$(GO) build -o bin/zbroker ./cmd/zbroker
	./bin/zbroker $(ARGS)

build:
	$(GO) build -o bin/zbroker ./cmd/zbroker
	$(GO) build -o bin/zpipe ./cmd/zpipe
	$(GO) build -o bin/mdp ./cmd/mdp
	$(GO) build -o bin/zclone ./cmd/zclone
	$(GO) build -o bin/zpipes-bench ./cmd/zpipes-bench

# Check (or apt-get install) python3-zmq, libzmq3-dev, pkg-config, gcc.
deps:
	@bash scripts/deps.sh

# The whole suite; .ci/run runs exactly this.
test:
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
