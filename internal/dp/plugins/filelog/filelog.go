// Package filelog is Kong's file-log plugin: one JSON entry per line
// appended to a file.
package filelog

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sync"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/logserializer"
)

// Name and Priority are Kong's.
const (
	Name     = "file-log"
	Priority = 9
)

func init() { plugin.Register(Name, Priority, New) }

// Config is the plugin configuration.
type Config struct {
	Path   string `json:"path"`
	Reopen bool   `json:"reopen"`
}

var pathRe = regexp.MustCompile("^[^\\s*&%`][^*&%`]*[^\\s*&%`]$")

// FileLog is a built file-log instance.
type FileLog struct {
	cfg    Config
	logger *slog.Logger

	mu sync.Mutex // guards f
	f  *os.File
}

var _ plugin.LogHandler = (*FileLog)(nil)

// New builds a file-log instance; the file is created if needed.
func New(raw json.RawMessage, env plugin.Env) (plugin.Instance, error) {
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("file-log: invalid config: %w", err)
	}
	if !pathRe.MatchString(cfg.Path) {
		return nil, fmt.Errorf("file-log: path: not a valid filename")
	}
	fl := &FileLog{cfg: cfg, logger: env.Logger().With("plugin", Name)}
	if !cfg.Reopen {
		f, err := open(cfg.Path)
		if err != nil {
			return nil, err
		}
		fl.f = f
	}
	return fl, nil
}

func open(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644) //nolint:gosec // 0644, as Kong's file-log creates it
	if err != nil {
		return nil, fmt.Errorf("file-log: %w", err)
	}
	return f, nil
}

// Log implements [plugin.LogHandler]. Each line is written with one write
// call so concurrent entries never interleave.
func (fl *FileLog) Log(c *plugin.Ctx) {
	line := append(logserializer.JSON(c), '\n')
	fl.mu.Lock()
	defer fl.mu.Unlock()
	f := fl.f
	if fl.cfg.Reopen {
		var err error
		if f, err = open(fl.cfg.Path); err != nil {
			fl.logger.Error("cannot open log file", "error", err)
			return
		}
		defer func() {
			if err := f.Close(); err != nil {
				fl.logger.Error("cannot close log file", "error", err)
			}
		}()
	}
	if _, err := f.Write(line); err != nil {
		fl.logger.Error("cannot write log file", "error", err)
	}
}

// Close closes the file.
func (fl *FileLog) Close() error {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.f != nil {
		return fl.f.Close()
	}
	return nil
}
