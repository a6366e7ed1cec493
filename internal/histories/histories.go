// Package histories keeps the event histories the replay test of package
// backupworker replays: tests that drive items and vaults on a real server
// replay their histories with the current code, and save them as fixtures
// when RECOVERYVAULT_SAVE_HISTORY is set (go test ./starter/ ./worker/).
package histories

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"recoveryvault/internal/backupworker"
)

// Dir is where the fixtures are kept.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "backupworker", "testdata")
}

// Replay reads the history of run runID of workflowID ("" for its current
// run) from the server, replays it with this code, and saves it as
// fixture name when RECOVERYVAULT_SAVE_HISTORY is set.
func Replay(t testing.TB, c client.Client, workflowID, runID, name string) {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), workflowID, runID, false, 0)
	hist := &historypb.History{}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", workflowID, err)
		}
		hist.Events = append(hist.Events, e)
	}
	data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(hist)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if os.Getenv("RECOVERYVAULT_SAVE_HISTORY") != "" {
		path = filepath.Join(Dir(), name)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := backupworker.ReplayHistoryFile(path, workflowID); err != nil {
		t.Fatalf("the history of %s does not replay with this code: %v", workflowID, err)
	}
}
