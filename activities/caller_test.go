package activities

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"recoveryvault/internal/storetest"
	"recoveryvault/internal/treediff"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
)

// TestActivitiesScheduledByAnotherWorkflowAreRefusedAndChangeNothing: the
// test environment's workflow is not an item, so every activity that
// touches an item's data refuses it, alerts, and leaves the store as it was.
func TestActivitiesScheduledByAnotherWorkflowAreRefusedAndChangeNothing(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	var log bytes.Buffer
	a := &Activities{Store: storetest.New(t), Notifier: LogNotifier{Logger: slog.New(slog.NewJSONHandler(&log, nil))}}
	env.RegisterActivity(a)
	src := treediff.WriteSample(t)
	point, err := a.backup(t.Context(), item.BackupInput{VaultID: "vault1", ItemID: "vm1", Point: protocol.RecoveryPoint{ID: "rp-1"}, SourcePath: src})
	require.NoError(t, err)

	report := item.ReportInput{VaultID: "vault1"}
	for name, call := range map[string]func() error{
		"Purge": func() error {
			_, err := env.ExecuteActivity(a.Purge, item.PurgeInput{VaultID: "vault1", ItemID: "vm1", Report: report})
			return err
		},
		"Collect": func() error {
			_, err := env.ExecuteActivity(a.Collect, item.CollectInput{VaultID: "vault1", ItemID: "vm1", RecoveryPointIDs: []string{"rp-1"}})
			return err
		},
		"Restore": func() error {
			_, err := env.ExecuteActivity(a.Restore, item.RestoreInput{VaultID: "vault1", ItemID: "vm1", Point: point.Point, TargetPath: t.TempDir() + "/out"})
			return err
		},
		"Backup": func() error {
			_, err := env.ExecuteActivity(a.Backup, item.BackupInput{VaultID: "vault1", ItemID: "vm1", Point: protocol.RecoveryPoint{ID: "rp-2"}, SourcePath: src})
			return err
		},
		"Lock": func() error {
			_, err := env.ExecuteActivity(a.Lock, item.LockInput{VaultID: "vault1", ItemID: "vm1"})
			return err
		},
		"Notify": func() error {
			_, err := env.ExecuteActivity(a.Notify, protocol.Alert{Kind: protocol.AlertPurged, VaultID: "vault1"})
			return err
		},
		"Signal": func() error {
			_, err := env.ExecuteActivity(a.Signal, protocol.MessageInput{WorkflowID: "backup-item/vault1/vm1", WorkflowType: protocol.WorkflowType, Name: "deleteApproved"})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			log.Reset()
			err := call()
			var app *temporal.ApplicationError
			require.True(t, errors.As(err, &app), "want a refusal, got %v", err)
			assert.Equal(t, protocol.ErrTypeForbidden, app.Type())
			assert.Contains(t, app.Message(), "default-test-workflow-id", "the refusal names the caller")
			assert.Contains(t, log.String(), protocol.AlertForbiddenCaller, "the refusal is alerted")
		})
	}
	ids, err := a.Store.List(t.Context(), "vault1", "vm1")
	require.NoError(t, err)
	assert.Equal(t, []string{"rp-1"}, ids, "the item's data is as it was")
}

// runs answers DescribeWorkflowExecution as a server would for one run.
type runs struct {
	typ, queue string
	status     enumspb.WorkflowExecutionStatus
	err        error
	asked      int
}

func (r *runs) DescribeWorkflowExecution(_ context.Context, id, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	r.asked++
	if r.err != nil {
		return nil, r.err
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{
		ExecutionConfig: &workflowpb.WorkflowExecutionConfig{TaskQueue: &taskqueuepb.TaskQueue{Name: r.queue}},
		WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
			Execution: &commonpb.WorkflowExecution{WorkflowId: id, RunId: runID},
			Type:      &commonpb.WorkflowType{Name: r.typ}, Status: r.status,
		},
	}, nil
}

func TestARunIsOursOnlyWithOurTypeOnOurQueueWhileItRuns(t *testing.T) {
	running := enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	for _, c := range []struct {
		name string
		runs runs
		want bool
	}{
		{"ours", runs{typ: protocol.WorkflowType, queue: protocol.TaskQueue, status: running}, true},
		{"our type on another queue", runs{typ: protocol.WorkflowType, queue: "attacker", status: running}, false},
		{"another type on our queue", runs{typ: "Attack", queue: protocol.TaskQueue, status: running}, false},
		{"ours, terminated", runs{typ: protocol.WorkflowType, queue: protocol.TaskQueue, status: enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var cache runCache
			ok, err := cache.ours(t.Context(), &c.runs, "backup-item/v/i", "run-1", protocol.WorkflowType)
			require.NoError(t, err)
			assert.Equal(t, c.want, ok)
			ok, err = cache.ours(t.Context(), &c.runs, "backup-item/v/i", "run-1", protocol.WorkflowType)
			require.NoError(t, err)
			assert.Equal(t, c.want, ok)
			if c.want {
				assert.Equal(t, 1, c.runs.asked, "a run found ours is remembered by its run ID")
			}
		})
	}
	var cache runCache
	_, err := cache.ours(t.Context(), &runs{err: errors.New("unavailable")}, "backup-item/v/i", "run-1", protocol.WorkflowType)
	assert.Error(t, err, "a question the server did not answer is an error, retried, not a refusal")
}

func TestACallerMatchesOnlyItsTypeAndWorkflowID(t *testing.T) {
	for _, c := range []struct {
		caller   caller
		typ, id  string
		expected bool
	}{
		{itemCaller("v", "i"), protocol.WorkflowType, "backup-item/v/i", true},
		{itemCaller("v", "i"), protocol.WorkflowType, "backup-item/v/j", false},
		{itemCaller("v", "i"), "Attack", "backup-item/v/i", false},
		{itemCaller("v", "i"), protocol.VaultWorkflowType, "backup-item/v/i", false},
		{anyItemOf("v"), protocol.WorkflowType, "backup-item/v/i", true},
		{anyItemOf("v"), protocol.WorkflowType, "backup-item/v/", false},
		{anyItemOf("v"), protocol.WorkflowType, "backup-item/w/i", false},
		{vaultCaller("v"), protocol.VaultWorkflowType, "vault/v", true},
		{vaultCaller("v"), protocol.VaultWorkflowType, "vault/w", false},
		{vaultCaller("v"), protocol.WorkflowType, "vault/v", false},
	} {
		assert.Equal(t, c.expected, c.caller.matches(c.typ, c.id), "%+v for %s %s", c.caller, c.typ, c.id)
	}
	assert.Equal(t, "v", vaultOf("backup-item/v/i"))
	assert.Equal(t, "", vaultOf("vault/v"))
}
