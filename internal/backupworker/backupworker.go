// Package backupworker wires the BackupItem workflow and its activities to a
// Temporal worker; the worker command and the tests share it.
package backupworker

import (
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"recoveryvault/activities"
	"recoveryvault/workflows"
)

// New returns a worker for the backup task queue with its recovery points
// under storeRoot.
func New(c client.Client, storeRoot string) worker.Worker {
	w := worker.New(c, workflows.TaskQueue, worker.Options{})
	w.RegisterWorkflow(workflows.BackupItem)
	w.RegisterActivity(&activities.Activities{Store: &activities.Store{Root: storeRoot}})
	return w
}
