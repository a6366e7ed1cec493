package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"recoveryvault/internal/testtool"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
)

// temporalCLI finds the Temporal CLI (testtool.TemporalCLI).
func temporalCLI(t *testing.T) string { return testtool.TemporalCLI(t) }

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestTemporalCLIDrivesAnItemInDevMode drives one item through stop,
// delete, undelete and resume with the Temporal CLI alone, against dev mode.
func TestTemporalCLIDrivesAnItemInDevMode(t *testing.T) {
	cli := temporalCLI(t)
	cfg := config{dataDir: t.TempDir(), port: freePort(t)}
	startDevMode(t, cfg)
	address := fmt.Sprintf("127.0.0.1:%d", cfg.port)
	temporal := func(args ...string) (string, error) {
		cmd := exec.Command(cli, append(args, "--address", address, "--namespace", "default")...)
		// No profile of the machine's user may redirect the CLI elsewhere.
		cmd.Env = append(os.Environ(), "TEMPORAL_CONFIG_FILE="+filepath.Join(t.TempDir(), "none.toml"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	mustCLI := func(args ...string) string {
		t.Helper()
		out, err := temporal(args...)
		require.NoError(t, err, "temporal %s:\n%s", strings.Join(args, " "), out)
		return out
	}
	id := protocol.WorkflowID("vault1", "cli1")
	status := func() item.Status {
		t.Helper()
		var q struct {
			QueryResult []item.Status `json:"queryResult"`
		}
		out := mustCLI("workflow", "query", "--workflow-id", id, "--name", "status", "-o", "json")
		require.NoError(t, json.Unmarshal([]byte(out), &q), out)
		require.Len(t, q.QueryResult, 1)
		return q.QueryResult[0]
	}
	eventually := func(what string, cond func(item.Status) bool) item.Status {
		t.Helper()
		var st item.Status
		require.Eventually(t, func() bool { st = status(); return cond(st) }, 30*time.Second, 200*time.Millisecond, what)
		return st
	}
	src := writeItemSource(t)

	mustCLI("workflow", "start", "--task-queue", protocol.TaskQueue, "--type", protocol.WorkflowType, "--workflow-id", id,
		"--input", fmt.Sprintf(`{"vaultId":"vault1","itemId":"cli1","sourcePath":%q,"policy":{"frequency":"24h","retentionDays":30}}`, src))
	st := eventually("first backup", func(s item.Status) bool { return len(s.RecoveryPoints) == 1 })
	rp := st.RecoveryPoints[0].ID

	mustCLI("workflow", "signal", "--workflow-id", id, "--name", "stop")
	eventually("stopped", func(s item.Status) bool { return s.ProtectionState == protocol.ProtectionStopped })

	mustCLI("workflow", "signal", "--workflow-id", id, "--name", "delete", "--input", `{"requestedBy":"alice","reason":"cli"}`)
	st = eventually("soft-deleted", func(s item.Status) bool { return s.ProtectionState == protocol.SoftDeleted })
	assert.True(t, st.IsScheduledForDeferredDelete)
	assert.NotEmpty(t, st.DeferredDeleteTimeInUTC)

	out, err := temporal("workflow", "update", "execute", "--workflow-id", id, "--name", "restore",
		"--input", fmt.Sprintf(`{"recoveryPointId":%q,"targetPath":%q}`, rp, filepath.Join(t.TempDir(), "r")))
	assert.Error(t, err, "a restore of soft-deleted data is refused")
	assert.Contains(t, out, "item cli1 is soft-deleted: undelete it before restoring")

	require.Eventually(t, func() bool {
		out := mustCLI("workflow", "list", "--query", "BackupVaultId = 'vault1' AND BackupItemState = 'SoftDeleted'", "-o", "json")
		return strings.Contains(out, id)
	}, 20*time.Second, 200*time.Millisecond, "listed as soft-deleted")

	mustCLI("workflow", "signal", "--workflow-id", id, "--name", "undelete", "--input", `"text"`)
	st = eventually("malformed signal audited", func(s item.Status) bool {
		last := s.Audit[len(s.Audit)-1]
		return last.Operation == "undelete" && last.Outcome == protocol.OutcomeRejected
	})
	assert.Equal(t, protocol.SoftDeleted, st.ProtectionState, "a malformed signal changes nothing")

	var upd struct {
		Result item.Status `json:"result"`
	}
	out = mustCLI("workflow", "update", "execute", "--workflow-id", id, "--name", "undelete", "-o", "json")
	require.NoError(t, json.Unmarshal([]byte(out), &upd), out)
	assert.Equal(t, protocol.ProtectionStopped, upd.Result.ProtectionState)
	assert.Empty(t, upd.Result.DeferredDeleteTimeInUTC)

	out = mustCLI("workflow", "update", "execute", "--workflow-id", id, "--name", "resume", "--input", `{}`, "-o", "json")
	require.NoError(t, json.Unmarshal([]byte(out), &upd), out)
	assert.Equal(t, protocol.Protected, upd.Result.ProtectionState)

	var desc struct {
		WorkflowExecutionInfo struct {
			Status           string `json:"status"`
			SearchAttributes struct {
				IndexedFields map[string]struct {
					Data string `json:"data"`
				} `json:"indexedFields"`
			} `json:"searchAttributes"`
		} `json:"workflowExecutionInfo"`
	}
	out = mustCLI("workflow", "describe", "--workflow-id", id, "-o", "json")
	require.NoError(t, json.Unmarshal([]byte(out), &desc), out)
	assert.Equal(t, "WORKFLOW_EXECUTION_STATUS_RUNNING", desc.WorkflowExecutionInfo.Status)
	state, err := base64.StdEncoding.DecodeString(desc.WorkflowExecutionInfo.SearchAttributes.IndexedFields["BackupItemState"].Data)
	require.NoError(t, err)
	assert.Equal(t, `"Protected"`, string(state), "the search attribute follows the state")
	assert.Len(t, status().RecoveryPoints, 1, "every recovery point kept")
}
