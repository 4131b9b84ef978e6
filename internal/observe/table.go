package observe

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteTable prints a Report for people, as `zbroker status` does.
func WriteTable(w io.Writer, r Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	health := "healthy"
	if !r.Healthy {
		health = "UNHEALTHY"
	}
	fmt.Fprintf(tw, "broker %s: %s at %s\n", EscapeName(r.Broker), health, r.Time.Format("2006-01-02 15:04:05Z"))
	var conns [][]string
	if z := r.Zpipes; z != nil {
		fmt.Fprintf(tw, "\nzpipes: %s\n", serving(z.Health))
		fmt.Fprintf(tw, "  connections %d, pipes %d, queued %d chunks, %d bytes, held writes %d, unacknowledged %d\n",
			z.Connections, z.Pipes, z.QueuedChunks, z.QueuedBytes, z.HeldWrites, z.Unacked)
		fmt.Fprintf(tw, "  chunks written %d, read %d, returned %d, acknowledged %d\n", z.ChunksWritten, z.ChunksRead, z.ChunksReturned, z.ChunksAcked)
		if len(z.PipeList) > 0 {
			fmt.Fprintln(tw, "\n  PIPE\tDEPTH\tBYTES\tWRITERS\tREADER\tHELD\tUNACKED")
			for _, p := range z.PipeList {
				fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%s\t%d\t%d\n", p.Name, p.Depth, p.Bytes, p.Writers, yesNo(p.Reader), p.HeldWrites, p.Unacked)
			}
			more(tw, z.Pipes-len(z.PipeList), "pipes")
		}
		for _, c := range z.ConnList {
			conns = append(conns, connRow("zpipes", c))
		}
	}
	if m := r.Majordomo; m != nil {
		fmt.Fprintf(tw, "\nmajordomo: %s\n", serving(m.Health))
		fmt.Fprintf(tw, "  connections %d, services %d, workers %d (%d idle), queued %d, in flight %d\n",
			m.Connections, m.Services, m.Workers, m.IdleWorkers, m.Queued, m.InFlight)
		var failures []string
		for _, code := range slices.Sorted(maps.Keys(m.Failures)) {
			failures = append(failures, code+": "+strconv.FormatUint(m.Failures[code], 10))
		}
		if len(failures) == 0 {
			failures = []string{"none"}
		}
		fmt.Fprintf(tw, "  requests %d, failures %s\n", m.Requests, strings.Join(failures, ", "))
		if len(m.ServiceList) > 0 {
			fmt.Fprintln(tw, "\n  SERVICE\tWORKERS\tIDLE\tQUEUED\tIN FLIGHT")
			for _, s := range m.ServiceList {
				fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\n", s.Name, s.Workers, s.Idle, s.Queued, s.InFlight)
			}
			more(tw, m.Services-len(m.ServiceList), "services")
		}
		for _, c := range m.ConnList {
			conns = append(conns, connRow("majordomo", c))
		}
	}
	if k := r.Clone; k != nil {
		fmt.Fprintf(tw, "\nclone: %s\n", serving(k.Health))
		fmt.Fprintf(tw, "  keys %d, sequence %d, subscribers %d, publishers %d\n", k.Keys, k.Sequence, k.Subscribers, k.Publishers)
		fmt.Fprintf(tw, "  updates %d, expired %d, snapshots %d, rejected %d\n", k.Updates, k.Expired, k.Snapshots, k.Rejected)
		for _, c := range k.ConnList {
			conns = append(conns, connRow("clone", c))
		}
	}
	if len(conns) > 0 {
		fmt.Fprintln(tw, "\nSERVICE\tCONN\tTYPE\tPEER\tROLE\tDETAIL")
		for _, row := range conns {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
	}
	return tw.Flush()
}

func serving(h Health) string {
	if h.Serving {
		return "serving"
	}
	return "NOT SERVING: " + h.Error
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func more(w io.Writer, n int, what string) {
	if n > 0 {
		fmt.Fprintf(w, "  (%d more %s not listed)\n", n, what)
	}
}

func connRow(service string, c Conn) []string {
	peer := c.Addr
	if c.UID != nil && c.PID != nil {
		peer = fmt.Sprintf("uid %d pid %d", *c.UID, *c.PID)
	}
	role := c.Role
	if role == "" {
		role = "-"
	}
	return []string{service, strconv.FormatUint(c.ID, 10), c.Type, peer, role, c.Detail}
}
