//go:build !unix

package sqlstore

// dirLock is a no-op where flock(2) does not exist: a second process on the same SQLite directory
// is not detected there.
type dirLock struct{}

func lockDataDir(string) (*dirLock, error) { return &dirLock{}, nil }

func (l *dirLock) release() {}
