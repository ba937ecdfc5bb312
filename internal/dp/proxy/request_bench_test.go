package proxy

import (
	"bufio"
	"io"
	"net/http"
	"testing"
)

// BenchmarkWriteRequestHead measures the upstream request head writer on
// the benchmark request (two client headers, no plugins).
func BenchmarkWriteRequestHead(b *testing.B) {
	r, _ := http.NewRequest("GET", "http://gw.example/bench", nil)
	r.RequestURI = "/bench"
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("User-Agent", "wrk")
	r.Header.Set("Accept", "*/*")
	fi := &fwdInfo{clientIP: "127.0.0.1", scheme: "http", port: "8000", host: "127.0.0.1:9000",
		reqIDName: gantryNames.reqID, reqID: "0123456789abcdef0123456789abcdef", via: true}
	bw := bufio.NewWriterSize(io.Discard, 8<<10)
	var m Match
	names := make([]header, 0, 32)
	b.ReportAllocs()
	for b.Loop() {
		names = writeRequestHead(bw, r, &m, fi, false, names)
		bw.Reset(io.Discard)
	}
}

// BenchmarkWriteRequestHeadPlugins is BenchmarkWriteRequestHead with the
// headers key-auth adds for a consumer.
func BenchmarkWriteRequestHeadPlugins(b *testing.B) {
	r, _ := http.NewRequest("GET", "http://gw.example/bench", nil)
	r.RequestURI = "/bench"
	r.RemoteAddr = "127.0.0.1:40000"
	for k, v := range map[string]string{"User-Agent": "wrk", "Accept": "*/*", "Apikey": "key-7", "X-Consumer-Id": "c7",
		"X-Consumer-Username": "user-7", "X-Credential-Identifier": "k7"} {
		r.Header.Set(k, v)
	}
	fi := &fwdInfo{clientIP: "127.0.0.1", scheme: "http", port: "8000", host: "127.0.0.1:9000",
		reqIDName: gantryNames.reqID, reqID: "0123456789abcdef0123456789abcdef", via: true}
	bw := bufio.NewWriterSize(io.Discard, 8<<10)
	var m Match
	hdrs := make([]header, 0, 32)
	b.ReportAllocs()
	for b.Loop() {
		hdrs = writeRequestHead(bw, r, &m, fi, false, hdrs)
		bw.Reset(io.Discard)
	}
}
