package wsframe

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	t.Parallel()
	long := bytes.Repeat([]byte("x"), 300)
	tests := []struct {
		name    string
		in      []byte
		max     int64
		want    Frame
		wantErr error
	}{
		{name: "small binary", in: []byte{0x82, 3, 'a', 'b', 'c'}, max: 100,
			want: Frame{Fin: true, Op: OpBinary, Payload: []byte("abc")}},
		{name: "16-bit length", in: append([]byte{0x82, 126, 0x01, 0x2c}, long...), max: 1000,
			want: Frame{Fin: true, Op: OpBinary, Payload: long}},
		{name: "64-bit length", in: append([]byte{0x82, 127, 0, 0, 0, 0, 0, 0, 0x01, 0x2c}, long...), max: 1000,
			want: Frame{Fin: true, Op: OpBinary, Payload: long}},
		{name: "first fragment", in: []byte{0x02, 1, 'a'}, max: 100,
			want: Frame{Fin: false, Op: OpBinary, Payload: []byte("a")}},
		{name: "empty close", in: []byte{0x88, 0}, max: 100, want: Frame{Fin: true, Op: OpClose, Payload: []byte{}}},
		{name: "masked", in: []byte{0x82, 0x81, 1, 2, 3, 4, 'a'}, max: 100, wantErr: ErrProtocol},
		{name: "reserved bit", in: []byte{0xc2, 1, 'a'}, max: 100, wantErr: ErrProtocol},
		{name: "too large", in: append([]byte{0x82, 126, 0x01, 0x2c}, long...), max: 299, wantErr: ErrProtocol},
		{name: "64-bit length over the limit", in: []byte{0x82, 0x7F, 0, 0, 0, 0, 0, 0x10, 0, 1}, max: 1 << 20, wantErr: ErrProtocol},
		{name: "fragmented ping", in: []byte{0x09, 0}, max: 100, wantErr: ErrProtocol},
		{name: "long ping", in: append([]byte{0x89, 126, 0, 126}, long[:126]...), max: 1000, wantErr: ErrProtocol},
		{name: "truncated", in: []byte{0x82, 5, 'a'}, max: 100, wantErr: io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Read(bufio.NewReader(bytes.NewReader(tt.in)), tt.max)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Fin != tt.want.Fin || got.Op != tt.want.Op || !bytes.Equal(got.Payload, tt.want.Payload) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestAppend checks client frames in the three length forms: final, masked, unmasking to the
// payload, and read back by Read once unmasked.
func TestAppend(t *testing.T) {
	t.Parallel()
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	for _, n := range []int{0, 32, 125, 126, 0xffff, 0x10000} {
		payload := bytes.Repeat([]byte{0xa5}, n)
		b := Append(nil, OpBinary, payload, mask)
		if b[0] != 0x80|byte(OpBinary) || b[1]&0x80 == 0 {
			t.Fatalf("n=%d: header %x: want FIN, binary, masked", n, b[:2])
		}
		off := 2
		switch {
		case n > 0xffff:
			off += 8
		case n > 125:
			off += 2
		}
		if !bytes.Equal(b[off:off+4], mask[:]) {
			t.Fatalf("n=%d: mask %x", n, b[off:off+4])
		}
		body := bytes.Clone(b[off+4:])
		for i := range body {
			body[i] ^= mask[i%4]
		}
		if !bytes.Equal(body, payload) {
			t.Fatalf("n=%d: payload does not unmask", n)
		}
		srv := append([]byte{b[0], b[1] & 0x7F}, b[2:off]...)
		f, err := Read(bufio.NewReader(bytes.NewReader(append(srv, payload...))), 1<<20)
		if err != nil || !f.Fin || f.Op != OpBinary || !bytes.Equal(f.Payload, payload) {
			t.Fatalf("n=%d: Read = %+v %v", n, f.Fin, err)
		}
	}
	if AcceptKey("dGhlIHNhbXBsZSBub25jZQ==") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" { // RFC 6455 section 1.3
		t.Error("AcceptKey does not match RFC 6455's example")
	}
}

func TestParseClose(t *testing.T) {
	if code, reason, ok := ParseClose([]byte{0x03, 0xe8, 'b', 'y', 'e'}); !ok || code != 1000 || reason != "bye" {
		t.Errorf("got %d %q %v", code, reason, ok)
	}
	if _, _, ok := ParseClose(nil); ok {
		t.Error("an empty close payload has no code")
	}
}

func TestHandshake(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		answer  func(w http.ResponseWriter, key string)
		status  int
		wantErr error
	}{
		{"upgrade", func(w http.ResponseWriter, key string) {
			w.Header().Set("Upgrade", "websocket")
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Sec-WebSocket-Accept", AcceptKey(key))
			w.WriteHeader(http.StatusSwitchingProtocols)
		}, 0, nil},
		{"refused with a reason", func(w http.ResponseWriter, key string) {
			http.Error(w, "runtime group deleted", http.StatusForbidden)
		}, http.StatusForbidden, nil},
		{"wrong accept key", func(w http.ResponseWriter, key string) {
			w.Header().Set("Upgrade", "websocket")
			w.Header().Set("Sec-WebSocket-Accept", AcceptKey("other"))
			w.WriteHeader(http.StatusSwitchingProtocols)
		}, 0, ErrProtocol},
		{"extension not offered", func(w http.ResponseWriter, key string) {
			w.Header().Set("Upgrade", "websocket")
			w.Header().Set("Sec-WebSocket-Accept", AcceptKey(key))
			w.Header().Set("Sec-WebSocket-Extensions", "permessage-deflate")
			w.WriteHeader(http.StatusSwitchingProtocols)
		}, 0, ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.RequestURI() != "/v1/outlet?node_id=x" || r.Header.Get("Sec-WebSocket-Version") != "13" {
					http.Error(w, "bad request "+r.URL.RequestURI(), http.StatusBadRequest)
					return
				}
				tt.answer(w, r.Header.Get("Sec-WebSocket-Key"))
			}))
			defer srv.Close()
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_, err = Handshake(conn, srv.Listener.Addr().String(), "/v1/outlet?node_id=x", 0)
			var se *StatusError
			switch {
			case tt.status != 0:
				if !errors.As(err, &se) || se.StatusCode != tt.status || !strings.Contains(string(se.Body), "runtime group deleted") {
					t.Fatalf("err = %v, want a %d StatusError with the reason", err, tt.status)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			}
		})
	}
}
