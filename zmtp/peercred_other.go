//go:build !linux

package zmtp

import "net"

// peerCred is Linux-only: elsewhere ipc peers are refused unless the
// access rules allow any local peer.
func peerCred(net.Conn) (uid, gid, pid int, err error) { return -1, -1, -1, errNoPeerCred }

func supplementaryGroups(int) ([]int, error) { return nil, errNoPeerCred }
