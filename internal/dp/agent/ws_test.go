package agent

import (
	"net"
	"testing"
	"time"
)

// discardConn is a net.Conn whose writes vanish; it measures the framing
// cost alone.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }
func (discardConn) SetReadDeadline(time.Time) error  { return nil }
func (discardConn) Close() error                     { return nil }

// TestPingDoesNotAllocate: pings go out every interval for the life of the
// process; framing one reuses the connection's buffer.
func TestPingDoesNotAllocate(t *testing.T) {
	w := &wsConn{conn: discardConn{}}
	hash := []byte("0123456789abcdef0123456789abcdef")
	if err := w.write(opPing, hash); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { _ = w.write(opPing, hash) }); n != 0 {
		t.Fatalf("a ping allocates %v times, want 0", n)
	}
}

func BenchmarkPing(b *testing.B) {
	w := &wsConn{conn: discardConn{}}
	hash := []byte("0123456789abcdef0123456789abcdef")
	b.ReportAllocs()
	for b.Loop() {
		_ = w.write(opPing, hash) // discardConn never fails
	}
}
