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
	"recoveryvault/workflows"
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
	point, err := a.backup(t.Context(), workflows.BackupInput{VaultID: "vault1", ItemID: "vm1", Point: workflows.RecoveryPoint{ID: "rp-1"}, SourcePath: src})
	require.NoError(t, err)

	item := workflows.AnnounceInput{VaultID: "vault1"}
	for name, call := range map[string]func() error{
		"Purge": func() error {
			_, err := env.ExecuteActivity(a.Purge, workflows.PurgeInput{VaultID: "vault1", ItemID: "vm1", Announce: item})
			return err
		},
		"Collect": func() error {
			_, err := env.ExecuteActivity(a.Collect, workflows.CollectInput{VaultID: "vault1", ItemID: "vm1", RecoveryPointIDs: []string{"rp-1"}})
			return err
		},
		"Restore": func() error {
			_, err := env.ExecuteActivity(a.Restore, workflows.RestoreInput{VaultID: "vault1", ItemID: "vm1", Point: point.Point, TargetPath: t.TempDir() + "/out"})
			return err
		},
		"Backup": func() error {
			_, err := env.ExecuteActivity(a.Backup, workflows.BackupInput{VaultID: "vault1", ItemID: "vm1", Point: workflows.RecoveryPoint{ID: "rp-2"}, SourcePath: src})
			return err
		},
		"Lock": func() error {
			_, err := env.ExecuteActivity(a.Lock, workflows.LockInput{VaultID: "vault1", ItemID: "vm1"})
			return err
		},
		"Notify": func() error {
			_, err := env.ExecuteActivity(a.Notify, workflows.Alert{Kind: workflows.AlertPurged, VaultID: "vault1"})
			return err
		},
		"Signal": func() error {
			_, err := env.ExecuteActivity(a.Signal, workflows.MessageInput{WorkflowID: "backup-item/vault1/vm1", WorkflowType: workflows.WorkflowType, Name: "deleteApproved"})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			log.Reset()
			err := call()
			var app *temporal.ApplicationError
			require.True(t, errors.As(err, &app), "want a refusal, got %v", err)
			assert.Equal(t, workflows.ErrTypeForbidden, app.Type())
			assert.Contains(t, app.Message(), "default-test-workflow-id", "the refusal names the caller")
			assert.Contains(t, log.String(), workflows.AlertForbiddenCaller, "the refusal is alerted")
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
		{"ours", runs{typ: workflows.WorkflowType, queue: workflows.TaskQueue, status: running}, true},
		{"our type on another queue", runs{typ: workflows.WorkflowType, queue: "attacker", status: running}, false},
		{"another type on our queue", runs{typ: "Attack", queue: workflows.TaskQueue, status: running}, false},
		{"ours, terminated", runs{typ: workflows.WorkflowType, queue: workflows.TaskQueue, status: enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var cache runCache
			ok, err := cache.ours(t.Context(), &c.runs, "backup-item/v/i", "run-1", workflows.WorkflowType)
			require.NoError(t, err)
			assert.Equal(t, c.want, ok)
			ok, err = cache.ours(t.Context(), &c.runs, "backup-item/v/i", "run-1", workflows.WorkflowType)
			require.NoError(t, err)
			assert.Equal(t, c.want, ok)
			if c.want {
				assert.Equal(t, 1, c.runs.asked, "a run found ours is remembered by its run ID")
			}
		})
	}
	var cache runCache
	_, err := cache.ours(t.Context(), &runs{err: errors.New("unavailable")}, "backup-item/v/i", "run-1", workflows.WorkflowType)
	assert.Error(t, err, "a question the server did not answer is an error, retried, not a refusal")
}

func TestACallerMatchesOnlyItsTypeAndWorkflowID(t *testing.T) {
	for _, c := range []struct {
		caller   caller
		typ, id  string
		expected bool
	}{
		{itemCaller("v", "i"), workflows.WorkflowType, "backup-item/v/i", true},
		{itemCaller("v", "i"), workflows.WorkflowType, "backup-item/v/j", false},
		{itemCaller("v", "i"), "Attack", "backup-item/v/i", false},
		{itemCaller("v", "i"), workflows.VaultWorkflowType, "backup-item/v/i", false},
		{anyItemOf("v"), workflows.WorkflowType, "backup-item/v/i", true},
		{anyItemOf("v"), workflows.WorkflowType, "backup-item/v/", false},
		{anyItemOf("v"), workflows.WorkflowType, "backup-item/w/i", false},
		{vaultCaller("v"), workflows.VaultWorkflowType, "vault/v", true},
		{vaultCaller("v"), workflows.VaultWorkflowType, "vault/w", false},
		{vaultCaller("v"), workflows.WorkflowType, "vault/v", false},
	} {
		assert.Equal(t, c.expected, c.caller.matches(c.typ, c.id), "%+v for %s %s", c.caller, c.typ, c.id)
	}
	assert.Equal(t, "v", vaultOf("backup-item/v/i"))
	assert.Equal(t, "", vaultOf("vault/v"))
}
