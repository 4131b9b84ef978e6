// Package majordomo is zbroker's Majordomo service: a service-oriented
// request-reply broker speaking the Majordomo Protocol, both MDP/0.1
// (ZeroMQ RFC 7) and MDP/0.2 (RFC 18, streaming replies), with the
// Majordomo Management Interface (RFC 8), plus a Go client and worker.
//
// # Endpoint and versions
//
// A broker named NAME listens on Endpoint(NAME) = "ipc://@/majordomo/NAME"
// (Options.Endpoint overrides it, e.g. "tcp://*:5555"). Clients and
// workers of both versions share the one ROUTER endpoint; every message is
// dispatched by its header frame (MDPC01, MDPC02, MDPW01, MDPW02), so one
// service may have workers of both versions and be called by clients of
// both versions.
//
// Wire forms (each a multipart message; "" is an empty frame):
//
//	0.1 client → broker   "" MDPC01 SERVICE BODY...       (REQ adds the "")
//	0.1 broker → client   "" MDPC01 SERVICE BODY...
//	0.2 client → broker   MDPC02 0x01 SERVICE BODY...
//	0.2 broker → client   MDPC02 0x02|0x03 SERVICE BODY...   (PARTIAL|FINAL)
//	0.1 worker            "" MDPW01 CMD ...   READY 0x01 SERVICE, REQUEST 0x02,
//	                      REPLY 0x03, HEARTBEAT 0x04, DISCONNECT 0x05
//	0.2 worker            MDPW02 CMD ...      READY 0x01 SERVICE, REQUEST 0x02,
//	                      PARTIAL 0x03, FINAL 0x04, HEARTBEAT 0x05, DISCONNECT 0x06
//	REQUEST/REPLY/PARTIAL/FINAL to/from workers carry ADDRESS "" BODY...
//
// As RFC 18 says, 0.2 commands have no leading empty frame. The broker is
// lenient: a 0.2 command may start with an empty frame, a 0.1 client
// request may omit it, and a REQ-style envelope (routing frames up to the
// first empty frame, e.g. through a proxy) is accepted; replies go back
// behind exactly the envelope the request came with.
//
// The transport gives the broker a connection per peer rather than
// libzmq's identity frames, so the client ADDRESS frame handed to workers
// is the broker's own request id, 8 bytes big-endian. Workers must echo it
// unchanged; it lets the broker accept exactly one reply per hand-off and
// drop late replies from a worker it has already given up on.
//
// A 0.1 client served by a 0.2 worker receives only the FINAL (PARTIALs
// have no 0.1 form and are dropped); a 0.2 client served by a 0.1 worker
// receives the REPLY as a FINAL.
//
// # Dispatch
//
// Each worker serves one service and holds at most one request at a time.
// Idle workers are used least recently used first. Waiting requests are
// kept per service and per client connection and served round robin
// between clients (FIFO within one client), so a client with a backlog
// does not hold up others. A client connection with Options.MaxPending
// requests waiting or in progress is not read further until workers
// answer some: backpressure on that client only. A client may send any
// number of requests before it reads a reply (the zguide's mdclient2
// does): its replies wait for it up to Options.ClientQueueLimit bytes
// (default 64 MiB; zbroker --mdp-client-queue), and only past that is the
// client not read until it reads replies. No count of messages stops a
// client, so a client blocked sending while it has not started reading
// cannot deadlock.
//
// # Heartbeats and failures
//
// The broker sends HEARTBEAT to every worker it has sent nothing else to
// for Options.HeartbeatInterval (default 2500 ms), and counts any message
// from a worker as a heartbeat. An idle worker silent for
// HeartbeatLiveness intervals (default 3) is expired: the broker sends it
// DISCONNECT and forgets it.
//
// A worker holding a request is not expired for silence until
// Options.BusyTimeout (default 15 minutes; zbroker --mdp-busy-timeout),
// counted from the request or its last message, whichever is later:
// single-threaded workers such as the zguide's mdwrkapi send nothing while
// their handler runs. A request is never given to a second worker while
// the first holds it on a live connection; when a busy worker does reach
// the busy timeout it is expired and the request fails (504) rather than
// run twice. The Go Worker heartbeats while its handler runs.
//
// A worker whose connection ends is noticed at once, from the transport's
// Disconnected event, and its request is re-dispatched immediately, not
// after the liveness window. A request is handed out at most
// Options.MaxAttempts times (default 3). A 0.2 request whose worker is lost
// after it has streamed PARTIALs is not re-dispatched (the client would see
// them twice): it fails with 502.
//
// Workers that send a command the protocol does not allow at that point
// (REPLY for a request they do not hold, a second READY, a version change,
// a malformed command) are sent DISCONNECT and dropped, their request
// re-dispatched. A worker command from a connection that has not sent
// READY (e.g. a worker that survived a broker restart) gets DISCONNECT, so
// the worker reconnects and registers again. READY for a service in the
// mmi. namespace gets DISCONNECT, as RFC 8 requires. Malformed messages
// from clients are logged (the first few per connection at Warn, then at
// Debug) and dropped; nothing malformed affects any other peer.
//
// # Failure replies (opt-in)
//
// RFC 7 and 18 define no failure reply: a request the broker cannot get a
// reply for simply gets none, and the client times out and retries. That
// is what a client gets unless it asks for failure replies, so clients
// written to the RFCs (the zguide's mdcliapi asserts that a reply names the
// service it asked for; mdcliapi2 does not look) are never surprised.
//
// A client asks by sending, on its connection, a request to the service
// "mmi.failures" (MMIFailures) with the body "on"; the broker answers
// "200" ("400" for a body other than "on" or "off"; "off" switches them
// off again). It applies to the requests that follow on that connection
// (the broker reads a connection in order, so the client need not wait
// for the answer), and must be sent again on every new connection. The Go
// Client does this on each connection it makes.
//
// The broker then answers such a client, when it cannot get a reply for a
// request, in the request's own version and envelope, with a reply from
// the reserved service "mmi.error" (ErrorService) whose body is three
// frames:
//
//	CODE  REQUESTED-SERVICE  REASON
//
//	0.1:  "" MDPC01 mmi.error 504 echo "no worker for service echo within 30s"
//	0.2:  MDPC02 0x03 mmi.error 504 echo "no worker ..."      (a FINAL)
//
// No worker can ever reply as "mmi.error" (workers may not register mmi.*
// services), so a failure can always be told from a reply by the service
// frame. Clients that insist the reply's service equal the requested one
// (as the zguide's example client asserts) will treat a failure as an
// error, which it is. Codes:
//
//	400  the request was malformed but answerable (no body frame)
//	502  workers died MaxAttempts times while holding the request, or a
//	     0.2 worker was lost after streaming PARTIALs
//	503  the service already has RequestQueueLimit requests waiting
//	504  no worker took the request within RequestTimeout (default 30s;
//	     counted each time the request is queued), or the worker holding
//	     it was silent for BusyTimeout
//
// The Go Client returns failures as *ServiceError.
//
// # MMI
//
// Services starting with "mmi." are answered by the broker, with a normal
// reply from that service (0.1 REPLY or 0.2 FINAL):
//
//	mmi.service NAME   "200" if NAME has at least one worker, else "404"
//	mmi.workers NAME   the number of workers of NAME, in decimal ("0", "3");
//	                   a zbroker extension
//	mmi.failures on|off  "200": failure replies on or off for this
//	                   connection (see above); a zbroker extension
//	mmi.anything-else  "501"
//
// # Go client and worker
//
// Client (NewClient) makes one DEALER connection per Client: Call and
// Stream send a request and wait for its reply with a per-attempt timeout,
// reconnecting and resending on a timeout (Retries times); Send and Recv
// are the asynchronous form. Worker (NewWorker, Run) registers, serves
// requests one at a time with a Handler (which may stream PARTIALs with
// Request.Partial under 0.2), heartbeats from a separate goroutine, and
// reconnects with exponential backoff when the broker is lost or sends
// DISCONNECT. Both take a Version (V1 or V2).
package majordomo
