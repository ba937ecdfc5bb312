//go:build !unix

package h1client

// socketFD reports no descriptor: without a non-consuming peek here, idle
// connections are only checked for what is already buffered.
func socketFD(any) int { return -1 }

func peekSocket(int, []byte) bool { return false }
