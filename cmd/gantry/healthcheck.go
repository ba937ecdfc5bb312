package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// newHealthcheckCmd is the container health check: a minimal image has no shell or curl, so the
// binary probes itself. One image runs both roles, so by default it asks the control plane's
// /readyz and the runtime's /status/ready at the addresses the container's GANTRY_LISTEN and
// GANTRY_STATUS_LISTEN name (the defaults when unset) and passes when either answers 2xx.
func newHealthcheckCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "healthcheck [URL...]",
		Short: "Exit 0 when a local control plane or runtime answers its readiness endpoint (for container health checks)",
		Long: `Send GET to each URL in turn and exit 0 at the first 2xx answer, 1 when none answers 2xx.

With no URL it asks the control plane's /readyz on GANTRY_LISTEN (default :8080) and the runtime's
/status/ready on GANTRY_STATUS_LISTEN (default :8100), on 127.0.0.1 when the address has no host,
so that one image's HEALTHCHECK fits both 'gantry serve' and 'gantry runtime'.`,
		Example: `  gantry healthcheck
  gantry healthcheck http://127.0.0.1:9080/readyz`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, urls []string) error {
			timeout, _ := cmd.Flags().GetDuration("timeout")
			if len(urls) == 0 {
				urls = defaultHealthcheckURLs(os.Getenv)
			}
			return healthcheck(cmd.Context(), &http.Client{Timeout: timeout}, urls)
		},
	}
	cmd.Flags().Duration("timeout", 3*time.Second, "how long each request may take")
	perRun(cmd, "timeout")
	return cmd
}

// defaultHealthcheckURLs returns the readiness URLs of a control plane and a runtime listening on
// the addresses that getenv's GANTRY_LISTEN and GANTRY_STATUS_LISTEN name, or on their defaults.
func defaultHealthcheckURLs(getenv func(string) string) []string {
	addr := func(env, def string) string {
		a := getenv(env)
		if a == "" {
			a = def
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return a // not host:port: let the request report it
		}
		// A listener on every interface is reached on the loopback.
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		return net.JoinHostPort(host, port)
	}
	return []string{
		"http://" + addr("GANTRY_LISTEN", ":8080") + "/readyz",
		"http://" + addr("GANTRY_STATUS_LISTEN", ":8100") + "/status/ready",
	}
}

// healthcheck returns nil at the first URL answering 2xx, and an error naming every failure when
// none does.
func healthcheck(ctx context.Context, client *http.Client, urls []string) error {
	var failures []string
	for _, u := range urls {
		err := probe(ctx, client, u)
		if err == nil {
			return nil
		}
		failures = append(failures, err.Error())
	}
	return errors.New("not healthy: " + strings.Join(failures, "; "))
}

func probe(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return nil
}
