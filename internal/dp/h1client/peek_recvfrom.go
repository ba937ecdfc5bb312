//go:build unix && !(linux && (amd64 || arm64))

package h1client

import "syscall"

// recvPeek is recvfrom(fd, b, MSG_PEEK|MSG_DONTWAIT).
func recvPeek(fd int, b []byte) (int, error) {
	n, _, err := syscall.Recvfrom(fd, b, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return n, err
}
