// Package provision serves what a new runtime instance needs from the control plane itself: the
// control plane's own gantry binary (GET /downloads/gantry/{os}/{arch}) and its SHA-256, an install
// script that downloads, verifies and starts it (GET /install.sh), and a Kubernetes manifest per
// runtime group. The binary and the script hold no secret and are served without authentication;
// the enrollment token is always given by the user.
package provision

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	goruntime "runtime"
	"strings"
	"sync"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/store"
)

// DefaultImage is the container image the Kubernetes manifest runs.
const DefaultImage = "ghcr.io/gantry-gw/gantry:latest"

// Mounter is where the routes go: *api.API satisfies it. Mount must authenticate, MountPublic
// must not; LookupGroup must return the caller's group or an error (an *api.Problem for a 404).
type Mounter interface {
	Mount(pattern string, h http.Handler)
	MountPublic(pattern string, h http.Handler)
	LookupGroup(r *http.Request, id string) (store.RuntimeGroup, error)
}

// Options configure New.
type Options struct {
	// Executable is the file served as the gantry binary; the running executable when empty.
	Executable string
	// GOOS and GOARCH name Executable's platform, the only one served; this process's when empty.
	GOOS, GOARCH string
	// ClusterEndpoint is the groups' control_plane_endpoint, which manifests' runtimes connect to.
	ClusterEndpoint string
	// Image is the container image of manifests' runtimes; DefaultImage when empty.
	Image  string
	Logger *slog.Logger
}

// Service serves the downloads, the install script and the manifests. Build it with New and
// Close it when the server stops.
type Service struct {
	opts Options
	log  *slog.Logger

	// file is the executable, opened once: a binary replaced on disk by an upgrade (a rename)
	// does not change what is served, so the bytes always match the cached checksum.
	file    *os.File
	size    int64
	modTime time.Time
	openErr error
	sum     func() (string, error)
}

// New opens the executable. A failure to open it is logged, not returned: the control plane
// still starts and answers the downloads with 503.
func New(opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.GOOS == "" {
		opts.GOOS = goruntime.GOOS
	}
	if opts.GOARCH == "" {
		opts.GOARCH = goruntime.GOARCH
	}
	if opts.Image == "" {
		opts.Image = DefaultImage
	}
	s := &Service{opts: opts, log: opts.Logger.With("component", "provision")}
	s.openErr = s.open()
	if s.openErr != nil {
		s.log.Warn("the gantry binary cannot be served for download", "err", s.openErr)
	}
	s.sum = sync.OnceValues(s.computeSum)
	return s
}

func (s *Service) open() error {
	path := s.opts.Executable
	if path == "" {
		var err error
		if path, err = os.Executable(); err != nil {
			return fmt.Errorf("find the running executable: %w", err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open the executable: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("stat the executable: %w", err)
	}
	s.file, s.size, s.modTime = f, fi.Size(), fi.ModTime()
	return nil
}

// Close releases the executable.
func (s *Service) Close() error {
	if s.file == nil {
		return nil
	}
	return s.file.Close()
}

// computeSum hashes the opened executable once; ReadAt through a SectionReader does not move
// the file offset, so downloads may run meanwhile.
func (s *Service) computeSum() (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(s.file, 0, s.size)); err != nil {
		return "", fmt.Errorf("hash the executable: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Mount registers, without authentication:
//
//	GET /downloads/gantry/{os}/{arch}          the binary (this control plane's platform only)
//	GET /downloads/gantry/{os}/{arch}.sha256   its checksum in sha256sum format
//	GET /install.sh                            the install script
//
// and, authenticated, under both /v2/runtime-groups and /v2/control-planes:
//
//	GET {base}/{groupId}/kubernetes-manifest?token=gent_…   Secret, Deployment and Service (YAML)
//
// GET patterns answer HEAD too.
func (s *Service) Mount(m Mounter) {
	m.MountPublic("GET /downloads/gantry/{os}/{arch}", http.HandlerFunc(s.download))
	m.MountPublic("GET /install.sh", http.HandlerFunc(s.installScript))
	for _, base := range api.GroupBasePaths {
		m.Mount("GET "+base+"/{groupId}/kubernetes-manifest", s.manifestHandler(m))
	}
}

// download answers the binary or, for an {arch} ending in .sha256, its checksum.
func (s *Service) download(w http.ResponseWriter, r *http.Request) {
	goos, arch := r.PathValue("os"), r.PathValue("arch")
	arch, wantSum := strings.CutSuffix(arch, ".sha256")
	if goos != s.opts.GOOS || arch != s.opts.GOARCH {
		api.WriteProblem(w, r, &api.Problem{Status: http.StatusNotFound, Detail: fmt.Sprintf(
			"This control plane serves the gantry binary for %s/%s only, the platform it runs on; get the %s/%s binary from a Gantry release or build it (GOOS=%s GOARCH=%s go build ./cmd/gantry).",
			s.opts.GOOS, s.opts.GOARCH, goos, arch, goos, arch)})
		return
	}
	if s.openErr != nil {
		api.WriteProblem(w, r, &api.Problem{Status: http.StatusServiceUnavailable,
			Detail: "This control plane cannot read its own executable, so it cannot serve it; the server log says why."})
		return
	}
	if wantSum {
		sum, err := s.sum()
		if err != nil {
			api.WriteProblem(w, r, api.ServerProblem(w, r, s.log, err))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		http.ServeContent(w, r, "", s.modTime, strings.NewReader(sum+"  gantry\n"))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="gantry"`)
	// ServeContent streams from the file and sets Content-Length; it answers HEAD and ranges.
	http.ServeContent(w, r, "", s.modTime, io.NewSectionReader(s.file, 0, s.size))
}

//go:embed install.sh
var installScript []byte

// apiPlaceholder is replaced in install.sh by the control plane API's base URL.
const apiPlaceholder = "@@GANTRY_API@@"

// safeHost accepts host[:port] and [ipv6][:port]; anything else must not reach the script,
// where it would be shell code in the hands of whoever sent the Host header.
var safeHost = regexp.MustCompile(`^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

// Script returns the install script with apiURL as its default download source. apiURL must
// be a URL safe inside single quotes (no quote); an empty one makes --api required.
func Script(apiURL string) []byte {
	return bytes.Replace(installScript, []byte(apiPlaceholder), []byte(apiURL), 1)
}

// APIURL is the base URL a request reached the API at: its TLS state and Host header, or ""
// when the Host is not a plain host name or address.
func APIURL(r *http.Request) string {
	if !safeHost.MatchString(r.Host) {
		return ""
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Service) installScript(w http.ResponseWriter, r *http.Request) {
	body := Script(APIURL(r))
	w.Header().Set("Content-Type", "text/x-shellscript; charset=utf-8")
	// The script depends on the Host it was asked for.
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Vary", "Host")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}
