package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestAuditRetentionFlag: --audit-retention defaults to 365 days and refuses less than a day
// before anything starts.
func TestAuditRetentionFlag(t *testing.T) {
	serve, _, err := newRootCmd().Find([]string{"serve"})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := serve.Flags().GetDuration("audit-retention"); err != nil || d != 365*24*time.Hour {
		t.Fatalf("default = %s, %v", d, err)
	}
	root := newRootCmd()
	root.SetArgs([]string{"serve", "--audit-retention", "1h", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0"})
	root.SilenceErrors, root.SilenceUsage = true, true
	err = root.Execute()
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--audit-retention") {
		t.Fatalf("err = %v, want a usage error naming --audit-retention", err)
	}
}
