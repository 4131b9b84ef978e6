package zmtp

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
)

// peerCred reads the credentials the kernel recorded for the other end of
// a unix socket (SO_PEERCRED): for an accepted connection, the client's
// uid, gid and pid when it called connect; for a dialed one, the
// listener's when it called listen. They cannot be forged by the peer.
func peerCred(nc net.Conn) (uid, gid, pid int, err error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, -1, -1, fmt.Errorf("no socket to ask for peer credentials")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, -1, -1, err
	}
	var cred *syscall.Ucred
	cerr := rc.Control(func(fd uintptr) {
		cred, err = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if cerr != nil {
		return -1, -1, -1, cerr
	}
	if err != nil {
		return -1, -1, -1, fmt.Errorf("SO_PEERCRED: %w", err)
	}
	return int(cred.Uid), int(cred.Gid), int(cred.Pid), nil
}

// supplementaryGroups reads the "Groups:" line of /proc/PID/status. It is
// a best effort with known limits: it reflects the process's groups when
// read, not when it connected; a peer that exited may have had its pid
// reused by another process (whose groups we would then read); and a peer
// in another pid namespace has pid 0 here and no groups to read. Callers
// therefore use it only to widen access for an already named gid.
func supplementaryGroups(pid int) ([]int, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("peer pid %d not visible", pid)
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	gids, err := parseGroups(data)
	if err != nil {
		return nil, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return gids, nil
}

// parseGroups reads the gids of the "Groups:" line of a /proc status file.
func parseGroups(status []byte) ([]int, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("Groups:"))
		if !ok {
			continue
		}
		var gids []int
		for _, f := range bytes.Fields(rest) {
			g, err := strconv.Atoi(string(f))
			if err != nil || g < 0 {
				return nil, fmt.Errorf("bad group %.32q", f)
			}
			gids = append(gids, g)
		}
		return gids, nil
	}
	return nil, fmt.Errorf("no Groups line")
}
