package kongpeer

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestReadFrame(t *testing.T) {
	t.Parallel()
	long := bytes.Repeat([]byte("x"), 300)
	tests := []struct {
		name    string
		in      []byte
		max     int64
		want    rawFrame
		wantErr error
	}{
		{name: "small binary", in: []byte{0x82, 3, 'a', 'b', 'c'}, max: 100,
			want: rawFrame{fin: true, opcode: OpBinary, payload: []byte("abc")}},
		{name: "16-bit length", in: append([]byte{0x82, 126, 0x01, 0x2c}, long...), max: 1000,
			want: rawFrame{fin: true, opcode: OpBinary, payload: long}},
		{name: "64-bit length", in: append([]byte{0x82, 127, 0, 0, 0, 0, 0, 0, 0x01, 0x2c}, long...), max: 1000,
			want: rawFrame{fin: true, opcode: OpBinary, payload: long}},
		{name: "first fragment", in: []byte{0x02, 1, 'a'}, max: 100,
			want: rawFrame{fin: false, opcode: OpBinary, payload: []byte("a")}},
		{name: "empty close", in: []byte{0x88, 0}, max: 100, want: rawFrame{fin: true, opcode: OpClose, payload: []byte{}}},
		{name: "masked", in: []byte{0x82, 0x81, 1, 2, 3, 4, 'a'}, max: 100, wantErr: ErrProtocol},
		{name: "reserved bit", in: []byte{0xc2, 1, 'a'}, max: 100, wantErr: ErrProtocol},
		{name: "too large", in: append([]byte{0x82, 126, 0x01, 0x2c}, long...), max: 299, wantErr: ErrProtocol},
		{name: "fragmented ping", in: []byte{0x09, 0}, max: 100, wantErr: ErrProtocol},
		{name: "long ping", in: append([]byte{0x89, 126, 0, 126}, long[:126]...), max: 1000, wantErr: ErrProtocol},
		{name: "truncated", in: []byte{0x82, 5, 'a'}, max: 100, wantErr: io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := readFrame(bufio.NewReader(bytes.NewReader(tt.in)), tt.max)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.fin != tt.want.fin || got.opcode != tt.want.opcode || !bytes.Equal(got.payload, tt.want.payload) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestAppendFrame checks client frames: final, masked, and unmasking to
// the payload.
func TestAppendFrame(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 32, 125, 126, 70000} {
		payload := bytes.Repeat([]byte{0xa5}, n)
		b, err := appendFrame(nil, OpPing, payload)
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != 0x80|byte(OpPing) || b[1]&0x80 == 0 {
			t.Fatalf("n=%d: header %x", n, b[:2])
		}
		off := 2
		switch {
		case n > 0xffff:
			off += 8
		case n > 125:
			off += 2
		}
		mask, body := b[off:off+4], b[off+4:]
		if len(body) != n {
			t.Fatalf("n=%d: body length %d", n, len(body))
		}
		for i := range body {
			body[i] ^= mask[i%4]
		}
		if !bytes.Equal(body, payload) {
			t.Errorf("n=%d: payload does not unmask", n)
		}
	}
	if acceptKey("dGhlIHNhbXBsZSBub25jZQ==") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" { // RFC 6455 section 1.3
		t.Error("acceptKey does not match RFC 6455's example")
	}
}
