// Command gantry is the Gantry control plane, runtime and CLI in one binary.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes: 0 success, 1 a runtime failure, 2 a usage or configuration error, 3 a diff that
// found changes (exitDiff).
const (
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run())
}

// run executes the command line and returns the process's exit code; main exits only after run's
// deferred calls have run.
func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := newRootCmd()
	if err := cmd.ExecuteContext(ctx); err != nil {
		var ce *exitCodeError
		if errors.As(err, &ce) {
			return ce.code
		}
		fmt.Fprintln(os.Stderr, "Error:", err)
		var ue *usageError
		// Cobra's own complaint about an unknown verb of the root command is a usage error too.
		if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command ") {
			return exitUsage
		}
		return exitFailure
	}
	return 0
}

// usageError marks errors in flags, arguments or configuration files.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }
