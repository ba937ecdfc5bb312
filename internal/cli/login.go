package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// Login is the connection gantry login stores for later commands.
type Login struct {
	Server string `yaml:"server"`
	Token  string `yaml:"token"`
}

// LoginPath returns the file of the stored login: gantry/config.yaml in the user's configuration
// directory.
func LoginPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the user's configuration directory: %w", err)
	}
	return filepath.Join(dir, "gantry", "config.yaml"), nil
}

// LoadLogin returns the stored login; no file is an empty Login and no error.
func LoadLogin() (Login, error) {
	path, err := LoginPath()
	if err != nil {
		return Login{}, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Login{}, nil
	}
	if err != nil {
		return Login{}, fmt.Errorf("read the stored login: %w", err)
	}
	var l Login
	if err := yaml.Unmarshal(b, &l); err != nil {
		return Login{}, fmt.Errorf("the stored login %s is not valid YAML (run 'gantry logout' to remove it): %w", path, err)
	}
	return l, nil
}

// SaveLogin stores l, readable by the user only (the token is a secret), and returns the file.
func SaveLogin(l Login) (string, error) {
	path, err := LoginPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	b, err := yaml.Marshal(l)
	if err != nil {
		return "", fmt.Errorf("encode login: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", tmp, err)
	}
	// WriteFile keeps the mode of a file that already exists.
	if err := os.Chmod(tmp, 0o600); err != nil {
		return "", fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("store login: %w", err)
	}
	return path, nil
}

// RemoveLogin deletes the stored login; removed is false when there was none.
func RemoveLogin() (path string, removed bool, err error) {
	path, err = LoginPath()
	if err != nil {
		return "", false, err
	}
	err = os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return path, false, nil
	}
	if err != nil {
		return path, false, fmt.Errorf("remove the stored login: %w", err)
	}
	return path, true, nil
}
