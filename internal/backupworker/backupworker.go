// Package backupworker wires the BackupItem workflow and its activities to a
// Temporal worker; the worker command and the tests share it.
package backupworker

import (
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/activities"
	"recoveryvault/workflows"
)

// New returns a worker for the backup task queue with its recovery points
// under storeRoot and the given settings.
func New(c client.Client, storeRoot string, s workflows.Settings) worker.Worker {
	w := worker.New(c, workflows.TaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.NewBackupItem(s), workflow.RegisterOptions{Name: workflows.WorkflowType})
	w.RegisterActivity(&activities.Activities{Store: &activities.Store{Root: storeRoot}})
	return w
}
