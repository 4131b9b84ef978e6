/*
 * zpipes_client: a zpipes client written against libzmq's C API, used by
 * the Go interop tests.
 *
 *   zpipes_client [-p] ENDPOINT COMMAND...
 *
 * Each COMMAND is one multipart message: its frames in hex, separated by
 * commas; an empty string between commas (or an empty COMMAND) is an
 * empty frame. Commands are sent on one DEALER socket in order; each reply
 * is printed as one line, its frames in hex separated by commas. With -p
 * every command is sent before the first reply is read (pipelining);
 * otherwise each command waits for its reply.
 *
 * Every receive times out after 10 s (ZMQ_RCVTIMEO), sends after 10 s
 * (ZMQ_SNDTIMEO): a hang exits with status 3 instead of blocking the test.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static void die(const char *what)
{
	fprintf(stderr, "zpipes_client: %s: %s\n", what, zmq_strerror(zmq_errno()));
	exit(zmq_errno() == EAGAIN ? 3 : 2);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	fprintf(stderr, "zpipes_client: bad hex digit %c\n", c);
	exit(2);
}

/* send_command sends the frames of one COMMAND argument. */
static void send_command(void *sock, const char *arg)
{
	const char *p = arg;
	for (;;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n % 2) {
			fprintf(stderr, "zpipes_client: odd hex length in %s\n", arg);
			exit(2);
		}
		unsigned char *buf = malloc(n / 2 + 1);
		for (size_t i = 0; i < n / 2; i++)
			buf[i] = (unsigned char)(hexval(p[2 * i]) << 4 | hexval(p[2 * i + 1]));
		if (zmq_send(sock, buf, n / 2, end ? ZMQ_SNDMORE : 0) < 0)
			die("zmq_send");
		free(buf);
		if (!end)
			return;
		p = end + 1;
	}
}

/* recv_reply reads one multipart reply and prints it as one line. */
static void recv_reply(void *sock)
{
	int more = 1;
	int first = 1;
	while (more) {
		zmq_msg_t msg;
		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, sock, 0) < 0)
			die("zmq_msg_recv");
		const unsigned char *d = zmq_msg_data(&msg);
		size_t n = zmq_msg_size(&msg);
		if (!first)
			putchar(',');
		first = 0;
		for (size_t i = 0; i < n; i++)
			printf("%02x", d[i]);
		more = zmq_msg_more(&msg);
		zmq_msg_close(&msg);
	}
	putchar('\n');
	fflush(stdout);
}

int main(int argc, char **argv)
{
	int pipeline = 0;
	int argi = 1;
	if (argi < argc && strcmp(argv[argi], "-p") == 0) {
		pipeline = 1;
		argi++;
	}
	if (argc - argi < 1) {
		fprintf(stderr, "usage: zpipes_client [-p] ENDPOINT COMMAND...\n");
		return 2;
	}
	const char *endpoint = argv[argi++];

	void *ctx = zmq_ctx_new();
	void *sock = zmq_socket(ctx, ZMQ_DEALER);
	int timeout = 10000, linger = 2000;
	zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
	zmq_setsockopt(sock, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
	zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
	if (zmq_connect(sock, endpoint) != 0)
		die("zmq_connect");

	if (pipeline) {
		for (int i = argi; i < argc; i++)
			send_command(sock, argv[i]);
		for (int i = argi; i < argc; i++)
			recv_reply(sock);
	} else {
		for (int i = argi; i < argc; i++) {
			send_command(sock, argv[i]);
			recv_reply(sock);
		}
	}
	zmq_close(sock);
	zmq_ctx_term(ctx);
	return 0;
}
