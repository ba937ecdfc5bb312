package h1client

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/h1"
)

// Body yields an upstream response body per its framing, reading from the
// connection's buffer. A Body is a value meant to live in per-request
// state: Init prepares it for one response, without allocating.
type Body struct {
	c       *Conn
	timeout time.Duration
	remain  int64 // bytes left: in the body (length) or in the current chunk
	chunked bool
	toClose bool // read until the peer closes
	started bool // a chunk-size line was read, so a chunk's CRLF follows
	done    bool
	err     error
}

// Init prepares b to read the body of the response whose head h was just
// read from c; each read waits at most timeout.
func (b *Body) Init(c *Conn, h *Head, timeout time.Duration) {
	*b = Body{c: c, timeout: timeout}
	switch {
	case h.Bodyless:
		b.done = true
	case h.Chunked:
		b.chunked = true
	case h.Length >= 0:
		b.remain = h.Length
		b.done = h.Length == 0
	default:
		b.toClose = true
	}
}

// Done reports whether the body was read to the clean end of its framing:
// after Next returned io.EOF.
func (b *Body) Done() bool { return b.done }

// Buffered reports how many bytes of the connection are already buffered,
// so that a streaming caller flushes its client when none are.
func (b *Body) Buffered() int { return b.c.br.Buffered() }

// Next returns the next piece of body: a slice of the connection buffer
// when bytes are already buffered (no copy), else it reads into buf. The
// slice is valid until the next call. It returns io.EOF after the last
// piece, once the framing ended cleanly.
func (b *Body) Next(buf []byte) ([]byte, error) {
	if b.done {
		return nil, io.EOF
	}
	if b.err != nil {
		return nil, b.err
	}
	p, err := b.next(buf)
	if err != nil {
		b.err = err
		return nil, err
	}
	if b.done {
		b.c.state = stateDone
		if len(p) == 0 {
			return nil, io.EOF
		}
	}
	return p, nil
}

// next is Next without the bookkeeping: it sets b.done at the clean end of
// the body and returns an error only for a failure.
func (b *Body) next(buf []byte) ([]byte, error) {
	br := b.c.br
	if b.chunked && b.remain == 0 {
		if err := b.chunkHeader(); err != nil || b.done {
			return nil, err
		}
	}
	want := len(buf)
	if !b.toClose && int64(want) > b.remain {
		want = int(b.remain)
	}
	var p []byte
	if nb := br.Buffered(); nb > 0 {
		if nb < want {
			want = nb
		}
		p, _ = br.Peek(want)
		_, _ = br.Discard(want)
	} else {
		_ = b.c.nc.SetReadDeadline(time.Now().Add(b.timeout))
		n, err := br.Read(buf[:want])
		if n == 0 && err != nil {
			if b.toClose && errors.Is(err, io.EOF) {
				b.done = true
				return nil, nil
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		p = buf[:n]
	}
	if !b.toClose {
		b.remain -= int64(len(p))
		// For chunked bodies the CRLF after the chunk data is consumed
		// with the next chunk header.
		if b.remain == 0 && !b.chunked {
			b.done = true
		}
	}
	return p, nil
}

// chunkHeader reads the CRLF ending the previous chunk (if any), then the
// next chunk-size line; a zero size consumes the trailer section, bounded
// as a head is. Every framing line must end with CRLF.
func (b *Body) chunkHeader() error {
	if b.started {
		l, err := b.readLine(maxChunkLine)
		if err != nil {
			return err
		}
		if len(l) != 0 {
			return ErrMalformed
		}
	}
	b.started = true
	l, err := b.readLine(maxChunkLine)
	if err != nil {
		return err
	}
	if i := bytes.IndexByte(l, ';'); i >= 0 {
		l = l[:i] // Chunk extensions are ignored.
	}
	l = bytes.TrimRight(l, " \t")
	size, ok := h1.ChunkSize(l)
	if !ok {
		return ErrMalformed
	}
	if size > 0 {
		b.remain = size
		return nil
	}
	// Last chunk: discard the trailer section up to the blank line, within
	// the bounds of a head.
	opts := &b.c.pool.t.opts
	budget := headBudget{bytes: opts.MaxHeaderBytes, fields: opts.MaxHeaderFields}
	for {
		l, err := b.readLine(-1)
		if err != nil {
			return err
		}
		if !budget.take(len(l)+2, len(l) > 0) {
			return ErrTrailerTooLarge
		}
		if len(l) == 0 {
			break
		}
	}
	b.done = true
	return nil
}

// maxChunkLine bounds a chunk-size line (with its extensions) and a chunk
// data terminator, in bytes without the CRLF.
const maxChunkLine = 4096

// readLine reads one CRLF-terminated line of chunk framing, at most limit
// bytes long (the read buffer's size when negative).
func (b *Body) readLine(limit int) ([]byte, error) {
	br := b.c.br
	if br.Buffered() == 0 {
		_ = b.c.nc.SetReadDeadline(time.Now().Add(b.timeout))
	}
	l, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, ErrMalformed
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	l, ok := h1.CutCRLF(l)
	if !ok || (limit >= 0 && len(l) > limit) {
		return nil, ErrMalformed
	}
	return l, nil
}

// copyBufSize is the size of the pooled body copy buffers. 32 KiB matches
// io.Copy's default and amortises syscalls for large bodies.
const copyBufSize = 32 << 10

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// WriteBody streams body to the upstream: exactly length bytes, or
// chunk-encoded when chunked (the length is unknown). Each write refreshes
// the write deadline, so the exchange's write timeout bounds the time
// between two successive writes, as nginx's proxy_send_timeout does. A
// failure to read body is a *BodyReadError (a body longer than length
// too), a failure to write a *WriteError. It does not flush the end.
func (c *Conn) WriteBody(body io.Reader, length int64, chunked bool) error {
	if body == nil || body == http.NoBody || (!chunked && length <= 0) {
		return nil
	}
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	remain := length
	var hdr [20]byte
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if !chunked {
				if int64(n) > remain {
					return errBodyTooLong
				}
				remain -= int64(n)
			}
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
			c.readArmed = false // The wait for the answer starts after the body.
			if chunked {
				h := h1.AppendHex(hdr[:0], n)
				h = append(h, '\r', '\n')
				c.bw.Write(h)
			}
			c.bw.Write(buf[:n])
			if chunked {
				c.bw.WriteString("\r\n")
			}
			if c.bw.Buffered() > 0 && c.bw.Available() < 512 {
				if err := c.Flush(); err != nil {
					return err
				}
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return &BodyReadError{Err: rerr}
		}
	}
	if !chunked && remain != 0 {
		return &BodyReadError{Err: io.ErrUnexpectedEOF}
	}
	if chunked {
		c.bw.WriteString("0\r\n\r\n")
	}
	return nil
}
