/* A bare zpipes relay on libzmq: the baseline zpipes-bench measures
 * zbroker against (see BENCHMARKS.md). One thread, one ROUTER socket, one
 * FIFO of chunks and one FIFO of waiting READs per pipe name, no checks
 * beyond not crashing: the same minimum as internal/relay, without Go or
 * zbroker's transport in the way.
 *
 * usage: relay ENDPOINT [SECRET_KEY]   prints "ready" once bound; exits
 * when its standard input closes (the bench holds it open) or on SIGTERM.
 * With a secret key (40 Z85 characters) the socket is a CURVE server that
 * admits any client: the CURVE baseline of BENCHMARKS.md. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define MAXFRAMES 6

/* A FIFO of zmq_msg_t in a growing ring. */
typedef struct {
	zmq_msg_t *v;
	size_t head, len, cap;
} fifo;

static zmq_msg_t *fifo_push(fifo *f) {
	if (f->len == f->cap) {
		size_t ncap = f->cap ? 2 * f->cap : 16;
		zmq_msg_t *nv = malloc(ncap * sizeof *nv);
		if (!nv) { perror("relay: malloc"); exit(1); }
		for (size_t i = 0; i < f->len; i++)
			memcpy(&nv[i], &f->v[(f->head + i) % f->cap], sizeof *nv);
		free(f->v);
		f->v = nv, f->head = 0, f->cap = ncap;
	}
	return &f->v[(f->head + f->len++) % f->cap];
}

static zmq_msg_t *fifo_pop(fifo *f) {
	zmq_msg_t *m = &f->v[f->head];
	f->head = (f->head + 1) % f->cap;
	f->len--;
	return m;
}

typedef struct pipe_s {
	struct pipe_s *next;
	size_t namelen;
	char *name;
	fifo chunks;  /* chunk messages */
	/* A waiting READ is two entries: its identity, then a message whose
	 * size says whether it sent an empty delimiter to echo (1) or not. */
	fifo waiters;
} pipe_t;

#define NBUCKETS 4096
static pipe_t *buckets[NBUCKETS];

static pipe_t *pipe_of(const void *name, size_t len) {
	unsigned h = 2166136261u;
	for (size_t i = 0; i < len; i++) h = (h ^ ((const unsigned char *)name)[i]) * 16777619u;
	pipe_t **b = &buckets[h % NBUCKETS];
	for (pipe_t *p = *b; p; p = p->next)
		if (p->namelen == len && memcmp(p->name, name, len) == 0) return p;
	pipe_t *p = calloc(1, sizeof *p);
	if (!p || !(p->name = malloc(len + 1))) { perror("relay: malloc"); exit(1); }
	memcpy(p->name, name, len);
	p->namelen = len;
	p->next = *b;
	*b = p;
	return p;
}

static void *sock;

/* reply sends id [delimiter] body, taking ownership of body (and of id). */
static void reply(zmq_msg_t *id, int env, zmq_msg_t *body) {
	zmq_msg_send(id, sock, ZMQ_SNDMORE);
	if (env) zmq_send(sock, "", 0, ZMQ_SNDMORE);
	zmq_msg_send(body, sock, 0);
}

static void reply_str(zmq_msg_t *id, int env, const char *s) {
	zmq_msg_t m;
	zmq_msg_init_size(&m, strlen(s));
	memcpy(zmq_msg_data(&m), s, strlen(s));
	reply(id, env, &m);
}

static void bad(zmq_msg_t *id, int env) {
	zmq_msg_send(id, sock, ZMQ_SNDMORE);
	if (env) zmq_send(sock, "", 0, ZMQ_SNDMORE);
	zmq_send(sock, "ERROR", 5, ZMQ_SNDMORE);
	zmq_send(sock, "bad command", 11, 0);
}

static int is(zmq_msg_t *m, const char *word) {
	size_t n = strlen(word);
	return zmq_msg_size(m) == n && memcmp(zmq_msg_data(m), word, n) == 0;
}

/* handle takes one message of n frames (f[0] is the identity) and
 * consumes f[0] and the chunk; the caller closes the rest. */
static void handle(zmq_msg_t *f, int n) {
	int env = 0, c = 1;
	if (n > 1 && zmq_msg_size(&f[1]) == 0) env = 1, c = 2;
	if (n - c < 2) { bad(&f[0], env); return; }
	zmq_msg_t *cmd = &f[c], *name = &f[c + 1];
	if (is(cmd, "OPEN") || is(cmd, "CLOSE")) {
		reply_str(&f[0], env, "OK");
	} else if (is(cmd, "WRITE")) {
		if (n - c < 3) { bad(&f[0], env); return; }
		pipe_t *p = pipe_of(zmq_msg_data(name), zmq_msg_size(name));
		reply_str(&f[0], env, "OK");
		zmq_msg_t *chunk = &f[c + 2];
		if (p->waiters.len > 0) {
			zmq_msg_t *id = fifo_pop(&p->waiters);
			zmq_msg_t *flag = fifo_pop(&p->waiters);
			int wenv = zmq_msg_size(flag) == 1;
			zmq_msg_close(flag);
			reply(id, wenv, chunk);
		} else {
			zmq_msg_t *q = fifo_push(&p->chunks);
			zmq_msg_init(q);
			zmq_msg_move(q, chunk);
		}
	} else if (is(cmd, "READ")) {
		pipe_t *p = pipe_of(zmq_msg_data(name), zmq_msg_size(name));
		if (p->chunks.len > 0) {
			reply(&f[0], env, fifo_pop(&p->chunks));
			return;
		}
		zmq_msg_t *w = fifo_push(&p->waiters);
		zmq_msg_init(w);
		zmq_msg_move(w, &f[0]);
		zmq_msg_init_size(fifo_push(&p->waiters), env);
	} else {
		bad(&f[0], env);
	}
}

int main(int argc, char **argv) {
	if (argc != 2 && argc != 3) {
		fprintf(stderr, "usage: relay ENDPOINT [SECRET_KEY]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	void *ctx = zmq_ctx_new();
	sock = zmq_socket(ctx, ZMQ_ROUTER);
	int zero = 0;
	/* The bench bounds what is in flight; a high-water mark would drop. */
	zmq_setsockopt(sock, ZMQ_SNDHWM, &zero, sizeof zero);
	zmq_setsockopt(sock, ZMQ_RCVHWM, &zero, sizeof zero);
	zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
	if (argc == 3) {
		int one = 1;
		zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one);
		if (zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, argv[2], strlen(argv[2])) != 0) {
			fprintf(stderr, "relay: CURVE secret key: %s\n", zmq_strerror(errno));
			return 1;
		}
	}
	if (zmq_bind(sock, argv[1]) != 0) {
		fprintf(stderr, "relay: bind %s: %s\n", argv[1], zmq_strerror(errno));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	zmq_pollitem_t items[2] = {{sock, 0, ZMQ_POLLIN, 0}, {NULL, 0, ZMQ_POLLIN, 0}};
	zmq_msg_t f[MAXFRAMES];
	for (;;) {
		if (zmq_poll(items, 2, -1) < 0) {
			if (errno == EINTR) continue;
			break;
		}
		if (items[1].revents) {
			char buf[256];
			if (read(0, buf, sizeof buf) <= 0) break; /* stdin closed */
		}
		for (int batch = 0; batch < 1024; batch++) {
			int n = 0, more = 1, rc = 0;
			while (more) {
				zmq_msg_t *m = &f[n < MAXFRAMES ? n : MAXFRAMES - 1];
				if (n >= MAXFRAMES) zmq_msg_close(m);
				zmq_msg_init(m);
				rc = zmq_msg_recv(m, sock, n == 0 ? ZMQ_DONTWAIT : 0);
				if (rc < 0) break;
				more = zmq_msg_more(m);
				if (n < MAXFRAMES) n++;
			}
			if (rc < 0) {
				for (int i = 0; i <= n && i < MAXFRAMES; i++) zmq_msg_close(&f[i]);
				break;
			}
			handle(f, n);
			for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
		}
	}
	zmq_close(sock);
	zmq_ctx_term(ctx);
	return 0;
}
