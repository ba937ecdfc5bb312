//go:build linux && (amd64 || arm64)

package h1client

import (
	"syscall"
	"unsafe"
)

// recvPeek is recvfrom(fd, b, MSG_PEEK|MSG_DONTWAIT) as a raw system call:
// it never blocks, so it needs none of the scheduler's bookkeeping around a
// system call that syscall.Recvfrom does, which measurably shows in the
// one peek every reused connection costs.
func recvPeek(fd int, b []byte) (int, error) {
	// The buffer's address is passed as the system call's argument, the
	// conversion unsafe.Pointer's rules allow for syscalls.
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd),
		uintptr(unsafe.Pointer(&b[0])), //nolint:gosec // a buffer for the kernel to fill, as syscall.Recvfrom passes it
		uintptr(len(b)), syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}
