/*
 * libzmq DEALER client for the zmtp interop tests, compiled by the Go test:
 *     cc -o client client.c $(pkg-config --cflags --libs libzmq)
 * usage: client ENDPOINT
 *
 * Sends multipart messages (empty frames, long frames, 16 MiB frames),
 * checks each echo frame by frame, then pipelines 200 small messages
 * before reading their replies. Every receive has a timeout, so a deadlock
 * is a failure (exit status 1) rather than a hang.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define BIG (16u << 20)
#define TIMEOUT_MS 20000

static const char *endpoint;

static void fail(const char *what, int msg)
{
	fprintf(stderr, "client.c %s: FAIL: %s (message %d): %s\n", endpoint, what, msg,
		zmq_strerror(zmq_errno()));
	exit(1);
}

/* Frame j of message i: deterministic bytes, so a swap is caught. */
static void fill(unsigned char *p, size_t n, int i, int j)
{
	for (size_t k = 0; k < n; k++)
		p[k] = (unsigned char)((k + 7 * i + 13 * j) % 251);
}

static int check(const unsigned char *p, size_t n, int i, int j)
{
	for (size_t k = 0; k < n; k++)
		if (p[k] != (unsigned char)((k + 7 * i + 13 * j) % 251))
			return 0;
	return 1;
}

static void send_msg(void *s, int i, const size_t *sizes, int nframes)
{
	for (int j = 0; j < nframes; j++) {
		zmq_msg_t m;
		if (zmq_msg_init_size(&m, sizes[j]) != 0)
			fail("zmq_msg_init_size", i);
		fill(zmq_msg_data(&m), sizes[j], i, j);
		if (zmq_msg_send(&m, s, j < nframes - 1 ? ZMQ_SNDMORE : 0) < 0)
			fail("zmq_msg_send", i);
	}
}

static void recv_msg(void *s, int i, const size_t *sizes, int nframes)
{
	for (int j = 0;; j++) {
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, s, 0) < 0)
			fail("zmq_msg_recv (timeout or error)", i);
		if (j >= nframes)
			fail("echo has too many frames", i);
		if (zmq_msg_size(&m) != sizes[j]) {
			fprintf(stderr, "client.c: frame %d of message %d: got %zu bytes, want %zu\n", j, i,
				zmq_msg_size(&m), sizes[j]);
			exit(1);
		}
		if (!check(zmq_msg_data(&m), sizes[j], i, j))
			fail("echo frame content differs", i);
		int more = zmq_msg_more(&m);
		zmq_msg_close(&m);
		if (!more) {
			if (j != nframes - 1)
				fail("echo has too few frames", i);
			return;
		}
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: client ENDPOINT\n");
		return 2;
	}
	endpoint = argv[1];
	void *ctx = zmq_ctx_new();
	void *s = zmq_socket(ctx, ZMQ_DEALER);
	int timeout = TIMEOUT_MS, linger = 1000;
	zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
	zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
	if (zmq_connect(s, endpoint) != 0)
		fail("zmq_connect", -1);

	static const size_t m0[] = {5};
	static const size_t m1[] = {0};
	static const size_t m2[] = {0, 1, 0};
	static const size_t m3[] = {255, 256, 300};
	static const size_t m4[] = {BIG};
	static const size_t m5[] = {4, BIG, 0};
	const size_t *msgs[] = {m0, m1, m2, m3, m4, m5};
	const int counts[] = {1, 1, 3, 3, 1, 3};
	const int n = sizeof counts / sizeof counts[0];
	for (int i = 0; i < n; i++) {
		send_msg(s, i, msgs[i], counts[i]);
		recv_msg(s, i, msgs[i], counts[i]);
	}

	static const size_t small[] = {8, 0};
	for (int i = 100; i < 300; i++)
		send_msg(s, i, small, 2);
	for (int i = 100; i < 300; i++)
		recv_msg(s, i, small, 2);

	zmq_close(s);
	zmq_ctx_term(ctx);
	puts("ok");
	return 0;
}
