//go:build unix

package h1client

import (
	"errors"
	"syscall"
)

// socketFD returns the descriptor of raw for peek, or -1 when it has none.
// The descriptor stays valid as long as the connection is open, and a
// connection is only peeked by its owner (Pool.Get, after taking it off the
// idle list), so nothing can close it meanwhile.
func socketFD(raw any) int {
	sc, ok := raw.(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	if err := rc.Control(func(s uintptr) { fd = int(s) }); err != nil {
		return -1
	}
	return fd
}

// peekSocket reports whether the socket fd has data waiting, was closed by
// the peer or failed: one non-blocking MSG_PEEK, straight on the
// descriptor. It bypasses the runtime poller on purpose: the poller would
// refuse the read once the connection's read deadline from its last
// exchange has passed, and that idle connection is still good.
func peekSocket(fd int, b []byte) bool {
	n, err := recvPeek(fd, b)
	return n > 0 || (n == 0 && err == nil) || (err != nil && !errors.Is(err, syscall.EAGAIN))
}
