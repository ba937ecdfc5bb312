package agent

import (
	"bufio"
	"bytes"
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
	w.write(opPing, hash)
	if n := testing.AllocsPerRun(1000, func() { w.write(opPing, hash) }); n != 0 {
		t.Fatalf("a ping allocates %v times, want 0", n)
	}
}

// TestFrameEncoding checks the three length forms and the masking against
// an unmasking reader.
func TestFrameEncoding(t *testing.T) {
	for _, n := range []int{0, 125, 126, 0xFFFF, 0x10000} {
		var buf bytes.Buffer
		w := &wsConn{conn: bufConn{&buf}}
		payload := bytes.Repeat([]byte{'x'}, n)
		if err := w.write(opBinary, payload); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		if b[0] != 0x80|opBinary || b[1]&0x80 == 0 {
			t.Fatalf("n=%d: header %x: want FIN, binary, masked", n, b[:2])
		}
		// Re-read it as a server would, unmasking.
		hdr := 2
		switch {
		case n >= 0x10000:
			hdr = 10
		case n >= 126:
			hdr = 4
		}
		mask := b[hdr : hdr+4]
		body := bytes.Clone(b[hdr+4:])
		for i := range body {
			body[i] ^= mask[i&3]
		}
		if !bytes.Equal(body, payload) {
			t.Fatalf("n=%d: payload does not round-trip", n)
		}
		// And the reader accepts the unmasked form of it.
		srv := append([]byte{b[0], b[1] & 0x7F}, b[2:hdr]...)
		srv = append(srv, payload...)
		r := &wsConn{br: bufio.NewReader(bytes.NewReader(srv)), maxPayload: 1 << 20}
		fin, op, got, err := r.readFrame()
		if err != nil || !fin || op != opBinary || !bytes.Equal(got, payload) {
			t.Fatalf("n=%d: readFrame = %v %v %d bytes %v", n, fin, op, len(got), err)
		}
	}
}

func TestReadFrameRefusesBadFrames(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
	}{
		{"masked from server", []byte{0x82, 0x81, 1, 2, 3, 4, 'x'}},
		{"reserved bits", []byte{0xC2, 0x01, 'x'}},
		{"over the limit", []byte{0x82, 0x7F, 0, 0, 0, 0, 0, 0x10, 0, 0}},
		{"long control frame", append([]byte{0x89, 0x7E, 0, 200}, make([]byte, 200)...)},
		{"fragmented control frame", []byte{0x09, 0x00}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &wsConn{br: bufio.NewReader(bytes.NewReader(tt.frame)), maxPayload: 1 << 20}
			if _, _, _, err := r.readFrame(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

type bufConn struct{ b *bytes.Buffer }

func (c bufConn) Read([]byte) (int, error)         { return 0, nil }
func (c bufConn) Write(p []byte) (int, error)      { return c.b.Write(p) }
func (c bufConn) Close() error                     { return nil }
func (c bufConn) LocalAddr() net.Addr              { return nil }
func (c bufConn) RemoteAddr() net.Addr             { return nil }
func (c bufConn) SetDeadline(time.Time) error      { return nil }
func (c bufConn) SetReadDeadline(time.Time) error  { return nil }
func (c bufConn) SetWriteDeadline(time.Time) error { return nil }

func BenchmarkPing(b *testing.B) {
	w := &wsConn{conn: discardConn{}}
	hash := []byte("0123456789abcdef0123456789abcdef")
	b.ReportAllocs()
	for b.Loop() {
		w.write(opPing, hash)
	}
}
