package h1server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/gantry-gw/gantry/internal/dp/h1"
)

// reqBody is the request body of a Serve connection, read straight from the
// connection's buffer: Content-Length bytes or chunked framing.
type reqBody struct {
	c       *serverConn
	remain  int64 // bytes left in the body (length) or current chunk
	chunked bool
	started bool // a chunk was read, so its CRLF precedes the next size
	expect  bool // 100 Continue is owed before the first read
	done    bool
	closed  bool
	err     error
}

func (b *reqBody) reset() {
	*b = reqBody{c: b.c}
}

var errBodyClosed = http.ErrBodyReadAfterClose

func (b *reqBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errBodyClosed
	}
	return b.read(p)
}

func (b *reqBody) read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.expect {
		b.expect = false
		if !b.c.w.wroteHeader {
			b.c.bw.Write(continue11)
			if err := b.c.bw.Flush(); err != nil {
				b.err = err
				return 0, err
			}
		}
	}
	if b.chunked && b.remain == 0 {
		if err := b.nextChunk(); err != nil {
			b.err = err
			return 0, err
		}
		if b.done {
			b.c.bodyEnded()
			return 0, io.EOF
		}
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := b.c.br.Read(p)
	b.remain -= int64(n)
	if b.remain == 0 && !b.chunked {
		b.done = true
		b.c.bodyEnded()
		return n, io.EOF
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		b.err = err
		return n, err
	}
	return n, nil
}

var continue11 = []byte("HTTP/1.1 100 Continue\r\n\r\n")

// Chunked framing errors (RFC 9112 7.1). Every line of the framing ends
// with CRLF: RFC 9112 2.2's bare-LF tolerance covers the head only, and
// erratum 7633 keeps it out of chunked framing, so that no two parsers on
// the path can disagree on where a chunk ends.
var (
	errMalformedChunk = errors.New("h1server: malformed chunked request body")
	errChunkLF        = fmt.Errorf("%w: a line ends without CRLF", errMalformedChunk)
	errChunkLine      = fmt.Errorf("%w: a line over 4 KiB", errMalformedChunk)
	errChunkSize      = fmt.Errorf("%w: invalid chunk-size", errMalformedChunk)
	errChunkExt       = fmt.Errorf("%w: invalid chunk-ext", errMalformedChunk)
	errChunkEnd       = fmt.Errorf("%w: chunk data not followed by CRLF", errMalformedChunk)
	errTrailer        = fmt.Errorf("%w: invalid trailer field", errMalformedChunk)
	errTrailerSize    = fmt.Errorf("%w: trailer section over MaxHeaderBytes", errMalformedChunk)
)

// readChunkLine reads one line of the chunked framing and returns it
// without its CRLF.
func (b *reqBody) readChunkLine() ([]byte, error) {
	l, err := b.c.br.ReadSlice('\n')
	if err != nil {
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return nil, errChunkLine
		case errors.Is(err, io.EOF):
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line, ok := h1.CutCRLF(l)
	if !ok {
		return nil, errChunkLF
	}
	return line, nil
}

// nextChunk reads the CRLF closing the previous chunk and the next size
// line; a zero size consumes the trailer section and ends the body.
func (b *reqBody) nextChunk() error {
	if b.started {
		l, err := b.readChunkLine()
		if errors.Is(err, errChunkLF) || err == nil && len(l) != 0 {
			return errChunkEnd
		}
		if err != nil {
			return err
		}
	}
	b.started = true
	l, err := b.readChunkLine()
	if err != nil {
		return err
	}
	// chunk = chunk-size [ chunk-ext ] CRLF; chunk-ext = *( BWS ";" BWS
	// chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ). Extensions are
	// checked and ignored. Whitespace after a size without extension is
	// tolerated, as net/http does.
	size := l
	if i := bytes.IndexByte(l, ';'); i >= 0 {
		size = l[:i]
		if !validChunkExt(l[i+1:]) {
			return errChunkExt
		}
	}
	for len(size) > 0 && (size[len(size)-1] == ' ' || size[len(size)-1] == '\t') {
		size = size[:len(size)-1]
	}
	n, ok := h1.ChunkSize(trimZeros(size))
	if !ok {
		return errChunkSize
	}
	if n > 0 {
		b.remain = n
		return nil
	}
	// trailer-section = *( field-line CRLF ) and the final CRLF. The
	// fields are checked as header fields are, then dropped, as nginx
	// does.
	total := 0
	for {
		l, err := b.readChunkLine()
		if err != nil {
			return err
		}
		if len(l) == 0 {
			break
		}
		if total += len(l) + 2; total > b.c.opts.MaxHeaderBytes {
			return errTrailerSize
		}
		if !validFieldLine(l) {
			return errTrailer
		}
	}
	b.done = true
	return nil
}

// validChunkExt checks what follows a chunk-size's first ";" against RFC
// 9112 7.1.1: chunk-ext-name = token; chunk-ext-val = token /
// quoted-string; BWS around ";" and "="; trailing whitespace tolerated.
func validChunkExt(b []byte) bool {
	for {
		b = trimBWS(b)
		n := tokenLen(b)
		if n == 0 {
			return false
		}
		b = trimBWS(b[n:])
		if len(b) > 0 && b[0] == '=' {
			b = trimBWS(b[1:])
			if len(b) > 0 && b[0] == '"' {
				n = quotedLen(b)
			} else {
				n = tokenLen(b)
			}
			if n == 0 {
				return false
			}
			b = trimBWS(b[n:])
		}
		if len(b) == 0 {
			return true
		}
		if b[0] != ';' {
			return false
		}
		b = b[1:]
	}
}

func trimBWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// tokenLen returns the length of the token b starts with.
func tokenLen(b []byte) int {
	n := 0
	for n < len(b) && h1.IsTokenChar(b[n]) {
		n++
	}
	return n
}

// quotedLen returns the length of the quoted-string (RFC 9110 5.6.4) b
// starts with, or 0.
func quotedLen(b []byte) int {
	for i := 1; i < len(b); i++ {
		switch ch := b[i]; {
		case ch == '"':
			return i + 1
		case ch == '\\':
			// quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
			if i+1 == len(b) || (b[i+1] < ' ' && b[i+1] != '\t') || b[i+1] == 0x7f {
				return 0
			}
			i++
		case (ch < ' ' && ch != '\t') || ch == 0x7f:
			return 0
		}
	}
	return 0
}

// validFieldLine checks a trailer field line as parseHead checks header
// fields: no obs-fold, a token name right before the colon, a value
// without CTLs but HTAB.
func validFieldLine(l []byte) bool {
	colon := bytes.IndexByte(l, ':')
	if colon <= 0 || tokenLen(l) != colon {
		return false
	}
	for _, ch := range l[colon+1:] {
		if (ch < ' ' && ch != '\t') || ch == 0x7f {
			return false
		}
	}
	return true
}

func (b *reqBody) Close() error {
	b.closed = true
	return nil
}

// drain reads and discards up to maxDrain bytes of what the handler left
// unread; it reports whether the body ended, so the connection is reusable.
func (b *reqBody) drain() bool {
	var buf [4096]byte
	total := 0
	for total <= maxDrain {
		n, err := b.read(buf[:])
		total += n
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}
