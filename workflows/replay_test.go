package workflows

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReplaySavedHistories replays event histories recorded on a real server
// (regenerate with RECOVERYVAULT_SAVE_HISTORY=1 go test ./starter/). A
// change that would break running items fails here.
func TestReplaySavedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no saved histories under testdata/")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			require.NoError(t, ReplayHistoryFile(f, WorkflowID("vault1", "vm1")))
		})
	}
}

// TestReplayDetectsAChangedLifecycle proves the replay can fail: the saved
// history with its first update renamed is not what this code would do.
func TestReplayDetectsAChangedLifecycle(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "lifecycle.json"))
	require.NoError(t, err)
	changed := strings.Replace(string(data), `"activityType": {
          "name": "Backup"`, `"activityType": {
          "name": "Restore"`, 1)
	require.NotEqual(t, string(data), changed, "the saved history has no Backup activity to alter")
	path := filepath.Join(t.TempDir(), "changed.json")
	require.NoError(t, os.WriteFile(path, []byte(changed), 0o644))
	require.Error(t, ReplayHistoryFile(path, WorkflowID("vault1", "vm1")))
}
