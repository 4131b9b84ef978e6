package zpipes

import "fmt"

// refusePipe answers an OPEN over MaxPipesPerConnection: a flood of pipe
// names from one connection stops there. The first refusal on a
// connection is logged with its peer; the client sees each one.
func (s *Server) refusePipe(c *client, env [][]byte) {
	if !c.capLogged {
		c.capLogged = true
		s.log.Warn("OPEN refused: too many pipes open on one connection", "conn", c.conn.ID(),
			"peer", c.conn.Peer(), "limit", s.opts.MaxPipesPerConnection)
	}
	s.respond(c, env, [][]byte{errFrame, []byte(fmt.Sprintf("too many pipes open on this connection (limit %d)", s.opts.MaxPipesPerConnection))}, delivery{}, 0)
}
