package backupworker

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"recoveryvault/workflows/protocol"
)

// fixtures are the histories recorded on a real server, by the workflow
// each is of (record them again with RECOVERYVAULT_SAVE_HISTORY=1 go test
// ./starter/ ./worker/): the lifecycle of an item, a vault's guard holding
// and releasing a burst, a delete approved under multi-user authorization
// at the item and at its vault, and both continuing as new, each run.
var fixtures = map[string]string{
	"item-lifecycle.json":   protocol.WorkflowID("vault1", "vm1"),
	"vault-guard.json":      protocol.VaultWorkflowID("burst"),
	"item-approval.json":    protocol.WorkflowID("vault7", "vm1"),
	"vault-approval.json":   protocol.VaultWorkflowID("vault7"),
	"item-continued.json":   protocol.WorkflowID("vault1", "vm1"),
	"item-continuing.json":  protocol.WorkflowID("vault1", "vm1"),
	"vault-continued.json":  protocol.VaultWorkflowID("vault1"),
	"vault-continuing.json": protocol.VaultWorkflowID("vault1"),
}

// TestReplaySavedHistories replays every fixture: a change that would break
// running items or vaults fails here.
func TestReplaySavedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(t, err)
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	require.ElementsMatch(t, slices.Collect(maps.Keys(fixtures)), names, "every fixture is recorded and replayed")
	for name, id := range fixtures {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, ReplayHistoryFile(filepath.Join("testdata", name), id))
		})
	}
}

// TestReplayDetectsAChangedLifecycle proves the replay can fail: the saved
// history with its first update renamed is not what this code would do.
func TestReplayDetectsAChangedLifecycle(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "item-lifecycle.json"))
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
