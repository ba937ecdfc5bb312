package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestDefaultHealthcheckURLs(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"defaults", nil, []string{"http://127.0.0.1:8080/readyz", "http://127.0.0.1:8100/status/ready"}},
		{"ports from the environment", map[string]string{"GANTRY_LISTEN": ":9080", "GANTRY_STATUS_LISTEN": ":9100"},
			[]string{"http://127.0.0.1:9080/readyz", "http://127.0.0.1:9100/status/ready"}},
		{"every interface is the loopback", map[string]string{"GANTRY_LISTEN": "0.0.0.0:8080", "GANTRY_STATUS_LISTEN": "[::]:8100"},
			[]string{"http://127.0.0.1:8080/readyz", "http://127.0.0.1:8100/status/ready"}},
		{"a named host is kept", map[string]string{"GANTRY_LISTEN": "10.1.2.3:8080", "GANTRY_STATUS_LISTEN": "[::1]:8100"},
			[]string{"http://10.1.2.3:8080/readyz", "http://[::1]:8100/status/ready"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := defaultHealthcheckURLs(func(k string) string { return c.env[k] })
			if !slices.Equal(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestHealthcheckCommand(t *testing.T) {
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
		}
	}))
	defer ready.Close()
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer unavailable.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr []string // substrings of the error; none means healthy
	}{
		{"first URL ready", []string{ready.URL + "/readyz"}, nil, nil},
		{"a later URL ready", []string{closedURL + "/readyz", ready.URL + "/readyz"}, nil, nil},
		{"503 is unhealthy", []string{unavailable.URL + "/readyz"}, nil, []string{"status 503"}},
		{"404 is unhealthy", []string{ready.URL + "/other"}, nil, []string{"status 404"}},
		{"nothing listening", []string{closedURL + "/readyz"}, nil, []string{closedURL}},
		// With no URL it probes GANTRY_LISTEN's /readyz, here the ready server.
		{"default from GANTRY_LISTEN", nil, map[string]string{
			"GANTRY_LISTEN": strings.TrimPrefix(ready.URL, "http://"), "GANTRY_STATUS_LISTEN": strings.TrimPrefix(closedURL, "http://")}, nil},
		{"defaults all failing", nil, map[string]string{
			"GANTRY_LISTEN": strings.TrimPrefix(unavailable.URL, "http://"), "GANTRY_STATUS_LISTEN": strings.TrimPrefix(closedURL, "http://")},
			[]string{"status 503", "/status/ready"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			root := newRootCmd()
			root.SetArgs(append([]string{"healthcheck", "--timeout", "2s"}, c.args...))
			root.SetOut(&bytes.Buffer{})
			err := root.ExecuteContext(t.Context())
			if len(c.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unhealthy: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("healthy, want an error")
			}
			for _, s := range c.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}
