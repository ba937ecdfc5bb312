package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseControlPlanes(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "cp:8005", want: []string{"cp:8005"}},
		{in: "https://cp.example.com:8005", want: []string{"cp.example.com:8005"}},
		{in: "https://cp.example.com:8005/", want: []string{"cp.example.com:8005"}},
		{in: "a:8005, b:8005,https://c:8005", want: []string{"a:8005", "b:8005", "c:8005"}},
		{in: "[::1]:8005", want: []string{"[::1]:8005"}},
		{in: "", wantErr: "at least one"},
		{in: " , ", wantErr: "at least one"},
		{in: "cp", wantErr: "want host:port"},
		{in: "a:8005,cp", wantErr: `"cp": want host:port`},
		{in: "http://cp:8080", wantErr: "speaks TLS"},
		{in: "wss://cp:8005", wantErr: "speaks TLS"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseControlPlanes(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				var usage *usageError
				if !errors.As(err, &usage) {
					t.Fatalf("err %T, want a usage error (exit code 2)", err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %v %v, want %v", got, err, tc.want)
			}
		})
	}
}
