/* The zpipes-bench load generator on libzmq (--client libzmq): the same
 * load as load.go (see BENCHMARKS.md, "The load") from one thread with
 * zmq_poll, so the baseline's client has no Go in it either.
 *
 * usage: load ENDPOINT SIZE WRITERS PIPES WINDOW WARMUP_NS DURATION_NS PREFIX
 *
 * Writes to stdout, one line each: "start" and "end" when the measured
 * window opens and closes, "progress N" (chunks read so far) every 250 ms,
 * "error TEXT" for each problem, and at the end "hist INDEX COUNT" for
 * each non-empty latency bucket (hist.go's layout), "max NS", and last
 * "result CHUNKS WRITTEN READ FILLERS". Exit status 1 on a fatal error. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define HIST_SUB 128
#define HIST_BUCKETS (HIST_SUB + 57 * HIST_SUB)
#define FILLER 0xFF

static uint64_t hist[HIST_BUCKETS], hist_max;

static void hist_add(int64_t ns) {
	uint64_t v = ns < 0 ? 0 : (uint64_t)ns;
	int i;
	if (v < HIST_SUB) {
		i = (int)v;
	} else {
		int shift = (64 - __builtin_clzll(v)) - 8;
		i = HIST_SUB + shift * HIST_SUB + (int)(v >> shift) - HIST_SUB;
	}
	hist[i]++;
	if (v > hist_max) hist_max = v;
}

static struct timespec base;
static int64_t now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)(t.tv_sec - base.tv_sec) * 1000000000 + (t.tv_nsec - base.tv_nsec);
}

static int errors;
static void fail(int fatal, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	/* The first ten, and always the fatal one: it says why the run died. */
	if (errors++ < 10 || fatal) {
		printf("error ");
		vprintf(fmt, ap);
		printf("\n");
	}
	va_end(ap);
	if (fatal) {
		printf("result 0 0 0 0\n");
		fflush(stdout);
		exit(1);
	}
}

typedef struct {
	void *sock;
	int id;
	int64_t sent, acked;
	unsigned char **ring; /* WINDOW+1 chunk buffers sent without copying */
	int slot;
} writer_t;

typedef struct {
	char name[256];
	size_t namelen;
	writer_t *w;
	void *rsock;
	int64_t posted, got, exp; /* READs posted, replies taken, expected at the end */
	int64_t written, taken;   /* the gate: written - taken <= WINDOW*WRITERS */
	int64_t real, fillers, in_window;
	int64_t *last_seq, *per_writer;
} pipe_t;

static size_t size;
static int writers, npipes, window;
static int stopped;

static void nofree(void *data, void *hint) { (void)data, (void)hint; }

static void send_cmd(void *s, const char *cmd, pipe_t *p, int more) {
	zmq_send(s, cmd, strlen(cmd), ZMQ_SNDMORE);
	zmq_send(s, p->name, p->namelen, more ? ZMQ_SNDMORE : 0);
}

/* recv_one takes one message; returns its single frame in m (1), or 0 when
 * there is none waiting. More than one frame is an error reply. */
static int recv_one(void *s, zmq_msg_t *m, const char *who) {
	zmq_msg_init(m);
	if (zmq_msg_recv(m, s, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(m);
		if (errno == EAGAIN) return 0;
		fail(1, "%s: recv: %s", who, zmq_strerror(errno));
	}
	if (zmq_msg_more(m)) {
		zmq_msg_t m2;
		zmq_msg_init(&m2);
		zmq_msg_recv(&m2, s, 0);
		fail(1, "%s: answered with %d frames: %.*s %.*s", who, 2, (int)zmq_msg_size(m), (char *)zmq_msg_data(m),
		     (int)zmq_msg_size(&m2), (char *)zmq_msg_data(&m2));
	}
	return 1;
}

static void expect_ok(void *s, const char *who) {
	zmq_msg_t m;
	zmq_msg_init(&m);
	if (zmq_msg_recv(&m, s, 0) < 0) fail(1, "%s: recv: %s", who, zmq_strerror(errno));
	if (zmq_msg_more(&m) || zmq_msg_size(&m) != 2 || memcmp(zmq_msg_data(&m), "OK", 2) != 0)
		fail(1, "%s: want OK, got %.*s", who, (int)zmq_msg_size(&m), (char *)zmq_msg_data(&m));
	zmq_msg_close(&m);
}

static void write_chunk(pipe_t *p, writer_t *w) {
	unsigned char *buf = w->ring[w->slot];
	w->slot = (w->slot + 1) % (window + 1);
	if (size >= 16) {
		uint64_t word = (uint64_t)w->id << 48 | (uint64_t)w->sent;
		for (int i = 0; i < 8; i++) buf[8 + i] = (unsigned char)(word >> (56 - 8 * i));
	}
	if (size >= 8) {
		uint64_t t = (uint64_t)now();
		for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(t >> (56 - 8 * i));
	}
	send_cmd(w->sock, "WRITE", p, 1);
	/* The buffer is surely written once its OK is back, and it is reused
	 * only WINDOW+1 WRITEs later. */
	zmq_msg_t m;
	zmq_msg_init_data(&m, buf, size, nofree, NULL);
	zmq_msg_send(&m, w->sock, 0);
	w->sent++;
	p->written++;
}

static uint64_t be64(const unsigned char *b) {
	uint64_t v = 0;
	for (int i = 0; i < 8; i++) v = v << 8 | b[i];
	return v;
}

int main(int argc, char **argv) {
	if (argc != 9) {
		fprintf(stderr, "usage: load ENDPOINT SIZE WRITERS PIPES WINDOW WARMUP_NS DURATION_NS PREFIX\n");
		return 2;
	}
	const char *ep = argv[1];
	size = strtoull(argv[2], NULL, 10);
	writers = atoi(argv[3]), npipes = atoi(argv[4]), window = atoi(argv[5]);
	int64_t win_start = strtoll(argv[6], NULL, 10), win_end = win_start + strtoll(argv[7], NULL, 10);
	if (size < 1 || writers < 1 || npipes < 1 || window < 1) {
		fprintf(stderr, "load: size, writers, pipes and window must be at least 1\n");
		return 2;
	}
	void *ctx = zmq_ctx_new();
	int zero = 0;
	int nsock = npipes * (writers + 1) + 1;
	void **socks = calloc(nsock, sizeof *socks);
	for (int i = 0; i < nsock; i++) {
		socks[i] = zmq_socket(ctx, ZMQ_DEALER);
		zmq_setsockopt(socks[i], ZMQ_SNDHWM, &zero, sizeof zero);
		zmq_setsockopt(socks[i], ZMQ_RCVHWM, &zero, sizeof zero);
		zmq_setsockopt(socks[i], ZMQ_LINGER, &zero, sizeof zero);
		if (zmq_connect(socks[i], ep) != 0) fail(1, "connect %s: %s", ep, zmq_strerror(errno));
	}
	void *aux = socks[nsock - 1];
	pipe_t *pipes = calloc(npipes, sizeof *pipes);
	int k = 0;
	for (int i = 0; i < npipes; i++) {
		pipe_t *p = &pipes[i];
		p->namelen = snprintf(p->name, sizeof p->name, "%s-%d", argv[8], i);
		p->w = calloc(writers, sizeof *p->w);
		p->last_seq = malloc(writers * sizeof(int64_t));
		p->per_writer = calloc(writers, sizeof(int64_t));
		for (int j = 0; j < writers; j++) {
			writer_t *w = &p->w[j];
			w->sock = socks[k++], w->id = j;
			w->ring = malloc((window + 1) * sizeof *w->ring);
			for (int s = 0; s <= window; s++)
				if (!(w->ring[s] = calloc(1, size))) fail(1, "out of memory");
			p->last_seq[j] = -1;
		}
		p->rsock = socks[k++];
	}
	for (int i = 0; i < npipes; i++) {
		for (int j = 0; j < writers; j++) send_cmd(pipes[i].w[j].sock, "OPEN", &pipes[i], 0);
		send_cmd(pipes[i].rsock, "OPEN", &pipes[i], 0);
		send_cmd(aux, "OPEN", &pipes[i], 0);
	}
	for (int i = 0; i < nsock - 1; i++) expect_ok(socks[i], "OPEN");
	for (int i = 0; i < npipes; i++) expect_ok(aux, "OPEN");

	zmq_pollitem_t *items = calloc(nsock, sizeof *items);
	for (int i = 0; i < nsock; i++) items[i].socket = socks[i], items[i].events = ZMQ_POLLIN;
	clock_gettime(CLOCK_MONOTONIC, &base);
	int started = 0;
	int64_t next_progress = 250000000, total_read = 0, fillers_out = 0, deadline = 0;
	for (;;) {
		int64_t t = now();
		if (!started && t >= win_start) {
			started = 1;
			printf("start\n");
			fflush(stdout);
		}
		if (t >= next_progress) {
			printf("progress %lld\n", (long long)total_read);
			fflush(stdout);
			next_progress = t + 250000000;
		}
		if (!stopped && t >= win_end) {
			printf("end\n");
			fflush(stdout);
			stopped = 1;
			deadline = t + 30000000000LL;
			/* Every READ gets a chunk and every chunk a READ. */
			for (int i = 0; i < npipes; i++) {
				pipe_t *p = &pipes[i];
				if (p->posted < p->written) {
					for (int64_t n = p->posted; n < p->written; n++) send_cmd(p->rsock, "READ", p, 0);
					p->exp = p->written;
				} else {
					unsigned char *filler = malloc(size);
					memset(filler, FILLER, size);
					for (int64_t n = p->written; n < p->posted; n++) {
						send_cmd(aux, "WRITE", p, 1);
						zmq_send(aux, filler, size, 0);
						fillers_out++;
					}
					free(filler);
					p->exp = p->posted;
				}
			}
		}
		if (stopped && t > deadline) fail(1, "drain did not finish within 30s after the deadline (lost replies?)");
		if (!stopped) {
			for (int i = 0; i < npipes; i++) {
				pipe_t *p = &pipes[i];
				for (int j = 0; j < writers; j++) {
					writer_t *w = &p->w[j];
					while (w->sent - w->acked < window && p->written - p->taken < (int64_t)window * writers)
						write_chunk(p, w);
				}
				while (p->posted - p->got < window) {
					send_cmd(p->rsock, "READ", p, 0);
					p->posted++;
				}
			}
		} else {
			int done = fillers_out == 0;
			for (int i = 0; i < npipes && done; i++) {
				pipe_t *p = &pipes[i];
				if (p->got != p->exp) done = 0;
				for (int j = 0; j < writers; j++)
					if (p->w[j].acked != p->w[j].sent) done = 0;
			}
			if (done) break;
		}
		int64_t wait = 10;
		if (!started) wait = (win_start - t) / 1000000;
		else if (!stopped) wait = (win_end - t) / 1000000;
		if (wait > 10) wait = 10;
		if (wait < 0) wait = 0;
		if (zmq_poll(items, nsock, wait) < 0 && errno != EINTR) fail(1, "zmq_poll: %s", zmq_strerror(errno));
		zmq_msg_t m;
		for (int i = 0; i < npipes; i++) {
			pipe_t *p = &pipes[i];
			for (int j = 0; j < writers; j++) {
				writer_t *w = &p->w[j];
				while (recv_one(w->sock, &m, "writer")) {
					if (zmq_msg_size(&m) != 2 || memcmp(zmq_msg_data(&m), "OK", 2) != 0)
						fail(1, "pipe %s writer %d: WRITE answered with %zu bytes", p->name, j, zmq_msg_size(&m));
					zmq_msg_close(&m);
					w->acked++;
				}
			}
			while (recv_one(p->rsock, &m, "reader")) {
				t = now();
				p->got++;
				const unsigned char *c = zmq_msg_data(&m);
				if (zmq_msg_size(&m) != size) {
					fail(0, "pipe %s reader: chunk of %zu bytes, want %zu", p->name, zmq_msg_size(&m), size);
				} else if (c[0] == FILLER) {
					p->fillers++;
					zmq_msg_close(&m);
					continue;
				}
				p->real++;
				total_read++;
				if (size >= 16 && zmq_msg_size(&m) >= 16) {
					uint64_t word = be64(c + 8);
					int id = (int)(word >> 48);
					int64_t seq = (int64_t)(word & ((1ULL << 48) - 1));
					if (id >= writers)
						fail(0, "pipe %s reader: chunk from unknown writer %d", p->name, id);
					else if (seq <= p->last_seq[id])
						fail(0, "pipe %s reader: writer %d sequence went from %lld to %lld (reordered or duplicated)",
						     p->name, id, (long long)p->last_seq[id], (long long)seq);
					else
						p->last_seq[id] = seq, p->per_writer[id]++;
				}
				if (t >= win_start && t < win_end) {
					p->in_window++;
					if (size >= 8 && zmq_msg_size(&m) >= 8) hist_add(t - (int64_t)be64(c));
				}
				p->taken++;
				zmq_msg_close(&m);
			}
		}
		while (recv_one(aux, &m, "filler WRITE")) {
			if (zmq_msg_size(&m) != 2 || memcmp(zmq_msg_data(&m), "OK", 2) != 0) fail(1, "filler WRITE: not OK");
			zmq_msg_close(&m);
			fillers_out--;
		}
	}
	for (int i = 0; i < npipes; i++) {
		for (int j = 0; j < writers; j++) send_cmd(pipes[i].w[j].sock, "CLOSE", &pipes[i], 0);
		send_cmd(pipes[i].rsock, "CLOSE", &pipes[i], 0);
	}
	for (int i = 0; i < nsock - 1; i++) expect_ok(socks[i], "CLOSE");
	int64_t chunks = 0, written = 0, read = 0, fillers = 0;
	for (int i = 0; i < npipes; i++) {
		pipe_t *p = &pipes[i];
		chunks += p->in_window, read += p->real, fillers += p->fillers;
		for (int j = 0; j < writers; j++) {
			written += p->w[j].sent;
			if (size >= 16 && p->per_writer[j] != p->w[j].sent)
				fail(0, "pipe %s writer %d: wrote %lld chunks, reader got %lld of them", p->name, j,
				     (long long)p->w[j].sent, (long long)p->per_writer[j]);
		}
	}
	if (read != written) fail(0, "%lld chunks written, %lld read", (long long)written, (long long)read);
	for (int i = 0; i < HIST_BUCKETS; i++)
		if (hist[i]) printf("hist %d %llu\n", i, (unsigned long long)hist[i]);
	printf("max %llu\n", (unsigned long long)hist_max);
	printf("result %lld %lld %lld %lld\n", (long long)chunks, (long long)written, (long long)read, (long long)fillers);
	fflush(stdout);
	for (int i = 0; i < nsock; i++) zmq_close(socks[i]);
	zmq_ctx_term(ctx);
	return errors > 0;
}
