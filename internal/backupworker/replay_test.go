package backupworker

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"recoveryvault/workflows/protocol"
)

// TestReplaySavedHistories replays event histories recorded on a real server
// (recorded with RECOVERYVAULT_SAVE_HISTORY=1 go test ./starter/). A
// change that would break running items fails here.
func TestReplaySavedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no saved histories under testdata/")
	// The workflow each history is of; an item's by default.
	ids := map[string]string{
		"guard-vault.json": protocol.VaultWorkflowID("burst"),
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			id, ok := ids[filepath.Base(f)]
			if !ok {
				id = protocol.WorkflowID("vault1", "vm1")
			}
			require.NoError(t, ReplayHistoryFile(f, id))
		})
	}
}

// TestReplayDetectsAChangedLifecycle proves the replay can fail: the saved
// history with its first update renamed is not what this code would do.
func TestReplayDetectsAChangedLifecycle(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "lifecycle-vault.json"))
	require.NoError(t, err)
	// protojson varies its spacing from run to run: match any.
	first := regexp.MustCompile(`("activityType":\s*\{\s*"name":\s*)"Backup"`).FindIndex(data)
	require.NotNil(t, first, "the saved history has no Backup activity to alter")
	changed := string(data[:first[0]]) + regexp.MustCompile(`"Backup"$`).ReplaceAllString(string(data[first[0]:first[1]]), `"Restore"`) + string(data[first[1]:])
	require.NotEqual(t, string(data), changed, "the saved history has no Backup activity to alter")
	path := filepath.Join(t.TempDir(), "changed.json")
	require.NoError(t, os.WriteFile(path, []byte(changed), 0o644))
	require.Error(t, ReplayHistoryFile(path, protocol.WorkflowID("vault1", "vm1")))
}
