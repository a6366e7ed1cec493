package activities

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"recoveryvault/internal/treediff"
	"recoveryvault/store"
)

func TestActivitiesRoundTripAndClassifyBadInput(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	a := &Activities{Store: &store.Store{Root: t.TempDir()}}
	env.RegisterActivity(a)
	src := treediff.WriteSample(t)

	v, err := env.ExecuteActivity(a.Backup, BackupInput{VaultID: "vault1", ItemID: "vm1", RecoveryPointID: "rp-1", SourcePath: src})
	require.NoError(t, err)
	var b BackupResult
	require.NoError(t, v.Get(&b))
	assert.Equal(t, 3, b.Files, "three regular files; the symlink and directories are not counted")
	assert.Len(t, b.RecoveryPoint.SHA256, 64)

	target := filepath.Join(t.TempDir(), "out")
	v, err = env.ExecuteActivity(a.Restore, RestoreInput{VaultID: "vault1", ItemID: "vm1", RecoveryPointID: "rp-1", SHA256: b.RecoveryPoint.SHA256, TargetPath: target})
	require.NoError(t, err)
	var r RestoreResult
	require.NoError(t, v.Get(&r))
	assert.Equal(t, 3, r.Files)
	diffs, err := treediff.Diff(src, target)
	require.NoError(t, err)
	assert.Empty(t, diffs, "the restore is identical to its source")

	nonRetryable := func(err error, typ string) {
		t.Helper()
		var app *temporal.ApplicationError
		require.True(t, errors.As(err, &app), "want an application error, got %v", err)
		assert.Equal(t, typ, app.Type())
		assert.True(t, app.NonRetryable())
	}
	_, err = env.ExecuteActivity(a.Backup, BackupInput{VaultID: "vault1", ItemID: "vm1", RecoveryPointID: "rp-2", SourcePath: "/does/not/exist"})
	nonRetryable(err, ErrTypeSourceMissing)
	_, err = env.ExecuteActivity(a.Restore, RestoreInput{VaultID: "vault1", ItemID: "vm1", RecoveryPointID: "rp-9", TargetPath: filepath.Join(t.TempDir(), "x")})
	nonRetryable(err, ErrTypeUnknownRecoveryPoint)
	_, err = env.ExecuteActivity(a.Restore, RestoreInput{VaultID: "vault1", ItemID: "vm1", RecoveryPointID: "rp-1", TargetPath: target})
	nonRetryable(err, ErrTypeTargetNotEmpty)

	v, err = env.ExecuteActivity(a.DeleteRecoveryPoints, DeleteInput{VaultID: "vault1", ItemID: "vm1", All: true})
	require.NoError(t, err)
	var d DeleteResult
	require.NoError(t, v.Get(&d))
	assert.Equal(t, 1, d.Removed)
	_, err = os.Stat(filepath.Join(a.Store.Root, "vault1", "vm1"))
	assert.True(t, os.IsNotExist(err))
	_, err = env.ExecuteActivity(a.DeleteRecoveryPoints, DeleteInput{VaultID: "vault1", ItemID: "vm1", All: true})
	assert.NoError(t, err, "purging a purged item succeeds")
}

func TestLogNotifierWritesOneStructuredLineWithoutClashingKeys(t *testing.T) {
	var buf bytes.Buffer
	n := LogNotifier{Logger: slog.New(slog.NewJSONHandler(&buf, nil))}
	require.NoError(t, n.Notify(t.Context(), Alert{Kind: AlertSoftDeleted, VaultID: "v", ItemID: "i", RequestedBy: "mallory", PurgeTime: time.Unix(0, 0)}))
	var line map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
	assert.Equal(t, "softDeleted", line["kind"])
	assert.Equal(t, "mallory", line["requestedBy"])
	assert.Contains(t, line, "at")
	assert.Contains(t, line, "purgeTime")
	assert.Equal(t, 1, bytes.Count(buf.Bytes(), []byte(`"time"`)), "one time key per line")
}
