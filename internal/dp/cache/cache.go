// Package cache keeps a runtime instance's last applied configuration and
// its node id on disk, so that an instance started while its control plane
// is unreachable can serve what it served before (DESIGN.md, "Offline
// first").
//
// # Files
//
// They live in the cache directory (created 0700 if missing):
//
//	node.id       the instance's UUID, one line; created once and kept
//	              forever, like Kong's <prefix>/kong.id.
//	config.cache  the last applied revision: a header line, then the body.
//	other files   written by other parts of the runtime through WriteFile
//	              (analytics.outbox: see package internal/dp/analytics).
//
// The header is
//
//	gantry-config-cache 1 <sha256 of body, hex> <body length in bytes>\n
//
// and the body is gzip'd JSON of the revision number, the configuration
// hash, the time it was saved and the Kong config_table. A file whose
// header is unknown, whose body is shorter or longer than announced, or
// whose checksum, gzip stream or JSON does not verify is refused as a
// whole ([ErrCorrupt]): a configuration is never half loaded.
//
// Writes are atomic: the new file is written under a temporary name in the
// same directory, fsync'ed, renamed over the old one, and the directory is
// fsync'ed, so a crash leaves either the old file or the new one.
//
// The cache holds the configuration as the control plane sent it,
// including credentials and private keys, unencrypted (as Kong's LMDB
// cache is); files are created 0600 and the directory 0700 for that
// reason.
package cache

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// File names inside the cache directory.
const (
	// ConfigFile holds the last applied revision.
	ConfigFile = "config.cache"
	// NodeIDFile holds the instance's node id.
	NodeIDFile = "node.id"
)

// magic starts the header line of ConfigFile; the number after it is the
// format version, bumped whenever the body changes shape.
const (
	magic         = "gantry-config-cache"
	formatVersion = 1
	// maxHeader bounds the header line, in bytes; a real one is < 120.
	maxHeader = 256
	// tempPattern names files being written; leftovers of a crash are
	// removed by New.
	tempPattern = ".tmp-*"
)

// Errors Load may wrap.
var (
	// ErrNotFound: there is no cached configuration.
	ErrNotFound = errors.New("no cached configuration")
	// ErrCorrupt: the cached configuration is truncated, damaged or not
	// in this format; it was not loaded.
	ErrCorrupt = errors.New("cached configuration is corrupt")
)

// Entry is one cached revision.
type Entry struct {
	// Revision is the group's revision number; 0 when the control plane
	// sent a Kong reconfigure frame, which has none.
	Revision int64 `json:"revision"`
	// ConfigHash is the configuration's 32-character Kong config hash, as
	// the control plane sent it.
	ConfigHash string `json:"config_hash"`
	// SavedAt is when the entry was written; set by Save.
	SavedAt time.Time `json:"saved_at"`
	// Config is the Kong config_table. Load decodes numbers as
	// json.Number, so that it re-encodes (and hashes) unchanged.
	Config map[string]any `json:"config_table"`
}

// Options configure a [Cache].
type Options struct {
	// Dir is the cache directory; required. It is created (0700) when
	// missing.
	Dir string
	// Now returns the current time; defaults to time.Now. Tests set it.
	Now func() time.Time
}

// Cache reads and writes the files of one cache directory. Its methods
// may be called from several goroutines, but two processes must not share
// a directory.
type Cache struct {
	dir string
	now func() time.Time
}

// New opens the cache directory, creating it when missing, and removes
// temporary files a crash may have left behind.
func New(opts Options) (*Cache, error) {
	if opts.Dir == "" {
		return nil, errors.New("cache: Dir is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache: create directory: %w", err)
	}
	leftovers, err := filepath.Glob(filepath.Join(opts.Dir, tempPattern))
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	for _, f := range leftovers {
		// Best effort: a leftover only wastes space.
		_ = os.Remove(f)
	}
	return &Cache{dir: opts.Dir, now: opts.Now}, nil
}

// Dir returns the cache directory.
func (c *Cache) Dir() string { return c.dir }

// Save writes e as the cached configuration, atomically, replacing any
// previous one. It sets e.SavedAt. ctx is checked before the write; a
// write in progress is not interrupted (it is short and must not be left
// half done).
func (c *Cache) Save(ctx context.Context, e *Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if e.Config == nil {
		return errors.New("cache: entry has no configuration")
	}
	e.SavedAt = c.now().UTC()
	body, err := encodeBody(e)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	var buf bytes.Buffer
	buf.Grow(len(body) + maxHeader)
	fmt.Fprintf(&buf, "%s %d %s %d\n", magic, formatVersion, hex.EncodeToString(sum[:]), len(body))
	buf.Write(body)
	if err := writeAtomic(c.dir, ConfigFile, buf.Bytes()); err != nil {
		return fmt.Errorf("cache: save revision %d: %w", e.Revision, err)
	}
	return nil
}

func encodeBody(e *Entry) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	enc := json.NewEncoder(zw)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, fmt.Errorf("cache: encode: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("cache: compress: %w", err)
	}
	return buf.Bytes(), nil
}

// Load reads the cached configuration. It returns an error wrapping
// ErrNotFound when there is none, and one wrapping ErrCorrupt when the
// file does not verify; in both cases nothing is returned, never a part.
func (c *Cache) Load(ctx context.Context) (*Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path := filepath.Join(c.dir, ConfigFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("cache: read %s: %w", path, err)
	}
	e, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return e, nil
}

// decode verifies and decodes the contents of ConfigFile.
func decode(data []byte) (*Entry, error) {
	nl := bytes.IndexByte(data[:min(len(data), maxHeader)], '\n')
	if nl < 0 {
		return nil, fmt.Errorf("%w: no header line", ErrCorrupt)
	}
	fields := strings.Fields(string(data[:nl]))
	if len(fields) != 4 || fields[0] != magic {
		return nil, fmt.Errorf("%w: not a configuration cache file", ErrCorrupt)
	}
	if fields[1] != strconv.Itoa(formatVersion) {
		return nil, fmt.Errorf("%w: format version %s, this build reads %d", ErrCorrupt, fields[1], formatVersion)
	}
	want, err := hex.DecodeString(fields[2])
	if err != nil || len(want) != sha256.Size {
		return nil, fmt.Errorf("%w: bad checksum field", ErrCorrupt)
	}
	size, err := strconv.Atoi(fields[3])
	if err != nil || size < 0 {
		return nil, fmt.Errorf("%w: bad length field", ErrCorrupt)
	}
	body := data[nl+1:]
	if len(body) != size {
		return nil, fmt.Errorf("%w: body is %d bytes, header says %d (truncated or appended to)", ErrCorrupt, len(body), size)
	}
	if got := sha256.Sum256(body); !bytes.Equal(got[:], want) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	dec := json.NewDecoder(bufio.NewReader(zr))
	dec.UseNumber()
	var e Entry
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if e.Config == nil || e.ConfigHash == "" {
		return nil, fmt.Errorf("%w: entry without configuration or hash", ErrCorrupt)
	}
	return &e, nil
}

// NodeID returns the instance's node id from NodeIDFile, creating the
// file with a new random UUID the first time. The id identifies the
// instance in its group's catalogue, so it must survive restarts; a file
// that does not hold a UUID is an error rather than silently replaced,
// because replacing it would make the instance a different node.
func (c *Cache) NodeID() (string, error) {
	path := filepath.Join(c.dir, NodeIDFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(data))
		if _, perr := uuid.Parse(id); perr != nil {
			return "", fmt.Errorf("cache: %s does not hold a UUID (delete it to get a new node id): %w", path, perr)
		}
		return id, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("cache: read node id: %w", err)
	}
	id := uuid.NewString()
	if err := writeAtomic(c.dir, NodeIDFile, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("cache: write node id: %w", err)
	}
	return id, nil
}

// writeAtomic replaces dir/name with data: temp file, fsync, rename,
// fsync of the directory.
func writeAtomic(dir, name string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, tempPattern)
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			// The write failed already; the temporary file only has to go.
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := io.Copy(f, bytes.NewReader(data)); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	// The rename is durable only once the directory entry is.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	syncErr := d.Sync()
	_ = d.Close() // read-only: closing it loses nothing
	return syncErr
}

// WriteFile replaces the file name in the cache directory with data,
// atomically (temp file, fsync, rename, fsync of the directory), as Save
// does for the configuration; it is created 0600. Other runtime state that
// must survive a restart (the analytics outbox) is written with it; name
// must be a plain file name, not ConfigFile or NodeIDFile.
func (c *Cache) WriteFile(name string, data []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := writeAtomic(c.dir, name, data); err != nil {
		return fmt.Errorf("cache: write %s: %w", name, err)
	}
	return nil
}

// ReadFile returns the contents of the file name in the cache directory;
// its error wraps fs.ErrNotExist when there is none.
func (c *Cache) ReadFile(name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(c.dir, name))
	if err != nil {
		return nil, fmt.Errorf("cache: read %s: %w", name, err)
	}
	return data, nil
}

// checkName refuses names that would leave the directory or overwrite the
// files the cache manages itself.
func checkName(name string) error {
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." || strings.HasPrefix(name, ".tmp-") ||
		name == ConfigFile || name == NodeIDFile {
		return fmt.Errorf("cache: %q is not a file name the cache may write", name)
	}
	return nil
}
