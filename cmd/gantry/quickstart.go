package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/password"
	"github.com/gantry-gw/gantry/internal/cp/server"
	"github.com/gantry-gw/gantry/internal/dp/agent"
	"github.com/spf13/cobra"
)

func newQuickstartCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quickstart",
		Short: "Run a control plane and a local runtime instance connected to its default group",
		Long: `Run everything a first look at Gantry needs in one process: the control plane (embedded SQLite in
--data-dir) and a runtime instance of the default runtime group, with a client certificate generated
and pinned for it. Configure the default group through the API and the instance proxies it at once.

The admin token is kept in <data-dir>/quickstart/admin-token (or taken from GANTRY_ADMIN_TOKEN), the
administrator's console password in <data-dir>/quickstart/admin-password (or taken from
GANTRY_ADMIN_PASSWORD; the email from GANTRY_ADMIN_EMAIL), and the instance's certificate in
<data-dir>/quickstart/, so a restart finds everything again.`,
		Example: `  gantry quickstart
  gantry quickstart --listen :9080 --proxy-listen :9001 --data-dir /tmp/gantry`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	addControlPlaneFlags(f)
	addRuntimeListenFlags(f, "", "runtime cache directory; <data-dir>/runtime when empty")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		log, err := setup(cmd)
		if err != nil {
			return err
		}
		get := func(name string) string { return flagString(cmd, name) }
		shutdown, _ := f.GetDuration("shutdown-timeout")
		return runQuickstart(cmd.Context(), quickstartOptions{
			listen: get("listen"), clusterListen: get("cluster-listen"), dataDir: get("data-dir"), region: get("region"),
			proxyListen: get("proxy-listen"), proxyTLSListen: get("proxy-tls-listen"), statusListen: get("status-listen"),
			cacheDir: get("cache-dir"), shutdownTimeout: shutdown, out: cmd.OutOrStdout(), runtime: runtimeOptions{log: log},
		})
	}
	return cmd
}

type quickstartOptions struct {
	listen, clusterListen, dataDir, region    string
	proxyListen, proxyTLSListen, statusListen string
	cacheDir                                  string
	shutdownTimeout                           time.Duration
	out                                       io.Writer
	runtime                                   runtimeOptions
}

// runQuickstart runs the control plane, provisions the default group's instance through the public
// API (as a user's script would), and runs that instance until ctx ends.
func runQuickstart(ctx context.Context, o quickstartOptions) error {
	log := o.runtime.log
	qsDir := filepath.Join(o.dataDir, "quickstart")
	if err := os.MkdirAll(qsDir, 0o700); err != nil {
		return &usageError{fmt.Errorf("--data-dir: %w", err)}
	}
	token, newToken, err := quickstartToken(qsDir)
	if err != nil {
		return err
	}
	adminEmail := os.Getenv("GANTRY_ADMIN_EMAIL")
	if adminEmail == "" {
		adminEmail = server.DefaultAdminEmail
	}
	adminPassword, newPassword, err := quickstartPassword(qsDir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	apiAddr, clusterAddr := make(chan net.Addr, 1), make(chan net.Addr, 1)
	cpDone := make(chan error, 1)
	go func() {
		cpDone <- server.Run(ctx, server.Options{
			Listen: o.listen, DataDir: o.dataDir, Region: o.region, AdminToken: token, AdminEmail: adminEmail, AdminPassword: adminPassword,
			ClusterListen: o.clusterListen, ClusterEndpoint: "https://" + hostPort("localhost", o.clusterListen),
			ShutdownTimeout: o.shutdownTimeout, Logger: log, Out: io.Discard, Version: version,
			Ready: func(a net.Addr) { apiAddr <- a }, ClusterReady: func(a net.Addr) { clusterAddr <- a },
		})
	}()
	var api, cluster net.Addr
	for api == nil || cluster == nil {
		select {
		case api = <-apiAddr:
		case cluster = <-clusterAddr:
		case err := <-cpDone:
			return fmt.Errorf("control plane: %w", err)
		case <-ctx.Done():
			return <-cpDone
		}
	}
	apiURL := "http://" + loopback(api)
	// stopCP stops the control plane and adds its own error, if any, to err.
	stopCP := func(err error) error {
		cancel()
		return errors.Join(err, <-cpDone)
	}
	groupID, err := quickstartCertificate(ctx, apiURL, token, qsDir)
	if err != nil {
		return stopCP(fmt.Errorf("provision the runtime instance: %w", err))
	}
	tlsCfg, certs, err := runtimeTLS(loopback(cluster), filepath.Join(qsDir, "runtime.crt"), filepath.Join(qsDir, "runtime.key"),
		filepath.Join(qsDir, "ca.crt"), "localhost")
	if err != nil {
		return stopCP(err)
	}
	cacheDir := o.cacheDir
	if cacheDir == "" {
		cacheDir = filepath.Join(o.dataDir, "runtime")
	}
	hostname, _ := os.Hostname()
	if hostname == "" {
		hostname = "quickstart"
	}

	var banner strings.Builder
	fmt.Fprintf(&banner, "\nGantry quickstart\n")
	fmt.Fprintf(&banner, "  API:            %s   (default runtime group %s)\n", apiURL, groupID)
	if newToken {
		fmt.Fprintf(&banner, "  admin token:    %s   (saved in %s)\n", token, filepath.Join(qsDir, "admin-token"))
	} else {
		fmt.Fprintf(&banner, "  admin token:    in %s or GANTRY_ADMIN_TOKEN\n", filepath.Join(qsDir, "admin-token"))
	}
	switch {
	case newPassword:
		fmt.Fprintf(&banner, "  admin login:    %s / %s   (password saved in %s)\n", adminEmail, adminPassword, filepath.Join(qsDir, "admin-password"))
	case os.Getenv("GANTRY_ADMIN_PASSWORD") != "":
		fmt.Fprintf(&banner, "  admin login:    %s / the password in GANTRY_ADMIN_PASSWORD\n", adminEmail)
	default:
		fmt.Fprintf(&banner, "  admin login:    %s / the password in %s\n", adminEmail, filepath.Join(qsDir, "admin-password"))
	}
	fmt.Fprintf(&banner, "  Kong Admin API: %s/v2/runtime-groups/%s/core-entities\n", apiURL, groupID)
	fmt.Fprintf(&banner, "\nTry it:\n  export TOKEN=$(cat %s)\n", filepath.Join(qsDir, "admin-token"))
	// The example's upstream is the control plane's own API, so that it works without the
	// internet and without a port the README's tour uses for its upstream.
	fmt.Fprintf(&banner, "  curl -s -H \"Authorization: Bearer $TOKEN\" %s/v2/runtime-groups/%s/core-entities/services -d name=self -d url=%s\n", apiURL, groupID, apiURL)
	fmt.Fprintf(&banner, "  curl -s -H \"Authorization: Bearer $TOKEN\" %s/v2/runtime-groups/%s/core-entities/services/self/routes -d 'paths[]=/self'\n", apiURL, groupID)
	fmt.Fprintf(&banner, "  curl -s http://%s/self/healthz      # the runtime applies it within a second\n\n", hostPort("localhost", o.proxyListen))
	// The banner only informs: an unwritable output is no reason not to serve.
	_, _ = io.WriteString(o.out, banner.String())

	rt := o.runtime
	rt.controlPlane, rt.tls, rt.certs = loopback(cluster), tlsCfg, certs
	rt.proxyListen, rt.proxyTLSListen, rt.statusListen, rt.cacheDir = o.proxyListen, o.proxyTLSListen, o.statusListen, cacheDir
	rt.hostname, rt.labels = hostname, map[string]string{"quickstart": "true"}
	rt.pingInterval, rt.shutdownTimeout, rt.out = agent.DefaultPingInterval, o.shutdownTimeout, o.out
	rtErr := runRuntime(ctx, rt)
	cancel()
	cpErr := <-cpDone
	return errors.Join(rtErr, cpErr)
}

// quickstartToken returns the admin token: GANTRY_ADMIN_TOKEN, else the one saved by an earlier
// quickstart, else a new one saved now (0600). newToken reports the last case.
func quickstartToken(dir string) (token string, newToken bool, err error) {
	if t := os.Getenv("GANTRY_ADMIN_TOKEN"); t != "" {
		return t, false, nil
	}
	path := filepath.Join(dir, "admin-token")
	if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b)), false, nil
	}
	token = auth.NewToken()
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("save the admin token: %w", err)
	}
	return token, true, nil
}

// quickstartPassword returns the administrator's console password: GANTRY_ADMIN_PASSWORD, else
// the one saved by an earlier quickstart, else a new one saved now (0600). newPassword reports
// the last case. The password is set only when the administrator has none yet; a password
// changed through the API is kept, and the saved file no longer tells it.
func quickstartPassword(dir string) (pw string, newPassword bool, err error) {
	if p := os.Getenv("GANTRY_ADMIN_PASSWORD"); p != "" {
		return p, false, nil
	}
	path := filepath.Join(dir, "admin-password")
	if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b)), false, nil
	}
	pw = password.Generate()
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("save the admin password: %w", err)
	}
	return pw, true, nil
}

// quickstartCertificate makes sure dir holds a valid client certificate pinned to the default
// group, generating one through the API when it is missing or expires within a day.
func quickstartCertificate(ctx context.Context, apiURL, token, dir string) (string, error) {
	var groups struct {
		Data []struct {
			ID        string `json:"id"`
			IsDefault bool   `json:"is_default"`
		} `json:"data"`
	}
	if err := apiCall(ctx, "GET", apiURL+"/v2/runtime-groups?filter[name][eq]=default", token, nil, &groups); err != nil {
		return "", err
	}
	groupID := ""
	for _, g := range groups.Data {
		if g.IsDefault {
			groupID = g.ID
		}
	}
	if groupID == "" {
		return "", errors.New("the default runtime group was not found")
	}
	certFile := filepath.Join(dir, "runtime.crt")
	if pair, err := tls.LoadX509KeyPair(certFile, filepath.Join(dir, "runtime.key")); err == nil {
		if leaf, err := x509.ParseCertificate(pair.Certificate[0]); err == nil && time.Until(leaf.NotAfter) > 24*time.Hour && groupOf(dir) == groupID {
			return groupID, nil
		}
	}
	var issued struct {
		Item struct {
			Cert string `json:"cert"`
		} `json:"item"`
		Key    string `json:"key"`
		CACert string `json:"ca_cert"`
	}
	body := map[string]string{"title": "quickstart runtime"}
	if err := apiCall(ctx, "POST", apiURL+"/v2/runtime-groups/"+groupID+"/dp-client-certificates/generate", token, body, &issued); err != nil {
		return "", err
	}
	if b, _ := pem.Decode([]byte(issued.Item.Cert)); b == nil || issued.Key == "" || issued.CACert == "" {
		return "", errors.New("the control plane returned no certificate")
	}
	for name, content := range map[string]string{"runtime.crt": issued.Item.Cert, "runtime.key": issued.Key, "ca.crt": issued.CACert, "group": groupID} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return "", err
		}
	}
	return groupID, nil
}

// groupOf returns the group id the saved certificate was issued for, so that a new data directory
// (a new default group) gets a new certificate.
func groupOf(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "group"))
	return strings.TrimSpace(string(b))
}

func apiCall(ctx context.Context, method, url, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, url, res.StatusCode, strings.TrimSpace(string(raw)))
	}
	return json.Unmarshal(raw, out)
}

// loopback turns a bound address into one to dial on this machine (":8080" binds every
// interface; dial 127.0.0.1).
func loopback(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// hostPort names a listen address for people: ":8000" becomes "localhost:8000".
func hostPort(defaultHost, listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = defaultHost
	}
	return net.JoinHostPort(host, port)
}
