package activities

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"recoveryvault/internal/storetest"
	"recoveryvault/internal/treediff"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
)

// TestStoreActivitiesRoundTripAndClassifyBadInput runs the store's side of
// the activities, past the check of their caller (caller_test.go).
func TestStoreActivitiesRoundTripAndClassifyBadInput(t *testing.T) {
	a := &Activities{Store: storetest.New(t)}
	ctx := t.Context()
	src := treediff.WriteSample(t)

	b, err := a.backup(ctx, item.BackupInput{VaultID: "vault1", ItemID: "vm1", Point: protocol.RecoveryPoint{ID: "rp-1"}, SourcePath: src})
	require.NoError(t, err)
	assert.Equal(t, 3, b.Files, "three regular files; the symlink and directories are not counted")
	assert.Equal(t, "rp-1", b.Point.ID)
	assert.Len(t, b.Point.SHA256, 64)

	target := filepath.Join(t.TempDir(), "out")
	r, err := a.restore(ctx, item.RestoreInput{VaultID: "vault1", ItemID: "vm1", Point: b.Point, TargetPath: target})
	require.NoError(t, err)
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
	_, err = a.backup(ctx, item.BackupInput{VaultID: "vault1", ItemID: "vm1", Point: protocol.RecoveryPoint{ID: "rp-2"}, SourcePath: "/does/not/exist"})
	nonRetryable(err, protocol.ErrTypeSourceMissing)
	_, err = a.restore(ctx, item.RestoreInput{VaultID: "vault1", ItemID: "vm1", Point: protocol.RecoveryPoint{ID: "rp-9"}, TargetPath: filepath.Join(t.TempDir(), "x")})
	nonRetryable(err, protocol.ErrTypeUnknownRecoveryPoint)
	_, err = a.restore(ctx, item.RestoreInput{VaultID: "vault1", ItemID: "vm1", Point: b.Point, TargetPath: target})
	nonRetryable(err, protocol.ErrTypeTargetNotEmpty)

	require.NoError(t, a.purge(ctx, item.PurgeInput{VaultID: "vault1", ItemID: "vm1", Report: item.ReportInput{VaultID: "vault1"}}))
	ids, err := a.Store.List(t.Context(), "vault1", "vm1")
	require.NoError(t, err)
	assert.Empty(t, ids)
	assert.NoError(t, a.purge(ctx, item.PurgeInput{VaultID: "vault1", ItemID: "vm1", Report: item.ReportInput{VaultID: "vault1"}}),
		"purging a purged item succeeds")
}

// TestSkippedFileNamesNeverReachAHistory: an activity's result is written
// to the item's history; the names of what a backup skipped are not.
func TestSkippedFileNamesNeverReachAHistory(t *testing.T) {
	a := &Activities{Store: storetest.New(t)}
	src := treediff.WriteSample(t)
	require.NoError(t, syscall.Mkfifo(filepath.Join(src, "secret-plan-pipe"), 0o600))
	b, err := a.backup(t.Context(), item.BackupInput{VaultID: "vault1", ItemID: "vm1", Point: protocol.RecoveryPoint{ID: "rp-1"}, SourcePath: src})
	require.NoError(t, err)
	assert.Equal(t, 1, b.Skipped)
	data, err := json.Marshal(b)
	require.NoError(t, err)
	assert.NotContains(t, string(data), "secret-plan")
}

func TestLogNotifierWritesOneStructuredLineWithoutClashingKeys(t *testing.T) {
	var buf bytes.Buffer
	n := LogNotifier{Logger: slog.New(slog.NewJSONHandler(&buf, nil))}
	require.NoError(t, n.Notify(t.Context(), protocol.Alert{Kind: protocol.AlertSoftDeleted, VaultID: "v", ItemID: "i", RequestedBy: "mallory", PurgeTime: time.Unix(0, 0),
		Signer: "mallory (SHA256:abc)"}))
	var line map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
	assert.Equal(t, "softDeleted", line["kind"])
	assert.Equal(t, "mallory", line["requestedBy"])
	assert.Equal(t, "mallory (SHA256:abc)", line["signer"], "the key that signed the operation")
	assert.Contains(t, line, "at")
	assert.Contains(t, line, "purgeTime")
	assert.Equal(t, 1, bytes.Count(buf.Bytes(), []byte(`"time"`)), "one time key per line")
}

// TestEveryActivityTheWorkflowsNameIsImplemented: the workflows call
// activities by name, so a name with no method would fail at run time.
func TestEveryActivityTheWorkflowsNameIsImplemented(t *testing.T) {
	typ := reflect.TypeOf(&Activities{})
	for _, name := range protocol.ActivityNames {
		_, ok := typ.MethodByName(name)
		assert.True(t, ok, "activities.Activities has no method %s", name)
	}
}
